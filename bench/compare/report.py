#!/usr/bin/env python3
"""bench/compare report: OUT/results.jsonl -> a table on stdout and OUT/results.md, and the
plot OUT/completion.png (peers complete over seconds since the peers started; one panel per
scenario, one line per tool). Matplotlib if it imports, else gnuplot, else no plot.

Usage: report.py OUT [HEADER_LINE ...]

Lower bound (Kurose & Ross), for the capped scenarios only:
  D_min = max(F/u_s, F/d_min, N*F/(u_s + sum u_i)), u_s = u_i = cap, d_min unlimited.
Uncapped on loopback there is no meaningful bound: the ratio is "-".
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap

MIB = 1024 * 1024


def lower_bound(rec):
    cap = rec.get("cap")
    if not cap:
        return None
    f, n = rec["file_size"], rec["n"]
    return max(f / cap, 0.0, n * f / (cap + n * cap))  # F/d_min = 0: downloads unlimited


GIB = 1024 * MIB


def size_label(b):
    for unit, k in (("G", GIB), ("M", MIB), ("K", 1024)):
        if b >= k and b % k == 0:
            return "%d%s" % (b // k, unit)
    return str(b)


def panel(rec):
    """The scenario with its file system and file size: what a panel of the plot shows."""
    return "%s %s %s" % (rec["scenario"], rec.get("fs", "?"), size_label(rec["file_size"]))


def row(rec):
    tool, scen, n = rec["tool"], rec["scenario"], rec["n"]
    fs, size = rec.get("fs", "?"), size_label(rec["file_size"])
    if rec.get("skipped"):
        return [tool, scen, fs, size, str(n), "skipped", "-", "-", "-", "-", "-", "-"]
    t = rec.get("time_all")
    lb = lower_bound(rec)
    ts = "%.2f" % t if t is not None else "FAILED"
    ratio = "%.2f" % (t / lb) if (t is not None and lb) else "-"
    up = "%.2f" % (rec["owner_up"] / rec["file_size"]) if rec.get("owner_up") is not None else "?"
    rss = [x for x in rec.get("peer_rss_kib", []) if x is not None]
    cpu = [x for x in rec.get("peer_cpu_s", []) if x is not None]
    rss_s = "%.1f" % (max(rss) / 1024) if rss else "?"
    whole = cpu and len(cpu) == len(rec.get("peer_cpu_s", []))
    cpu_s = "%.1f" % sum(cpu) if whole else ("?" if not cpu else "%.1f+" % sum(cpu))
    per_gib = "%.2f" % (sum(cpu) / (n * rec["file_size"] / GIB)) if whole and t is not None else "?"
    disk = [x for x in rec.get("peer_disk_written", []) if x is not None]
    disk_s = "%.2f / %.2f" % (max(disk) / rec["file_size"], sum(disk) / len(disk) / rec["file_size"]) if disk else "?"
    return [tool, scen, fs, size, str(n), ts, ratio, up, rss_s, cpu_s, per_gib, disk_s]


HEAD = ["tool", "scenario", "fs", "F", "N", "time to all-complete (s)", "ratio to lower bound",
        "owner upload / F", "max peak RSS per peer (MiB)", "total peer CPU (s)",
        "peer CPU s per GiB delivered", "written to disk per peer / F (max / mean)"]
LEFT = 4  # columns aligned left


def markdown(rows):
    """rows[0] is the header; the first LEFT columns align left, the rest right."""
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for k, r in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w[i]) if i < LEFT else c.rjust(w[i]) for i, c in enumerate(r)) + " |")
        if k == 0:
            lines.append("|" + "|".join("-" * (w[i] + 1) + (":" if i >= LEFT else "-") for i in range(len(w))) + "|")
    return "\n".join(lines)


def table(recs):
    return markdown([HEAD] + [row(r) for r in recs])


def plot_matplotlib(recs, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    scens = []
    for r in recs:
        if panel(r) not in scens and r.get("completions"):
            scens.append(panel(r))
    width = max(8.0, 5.5 * len(scens))
    fig, axes = plt.subplots(1, len(scens), figsize=(width, 5.0), squeeze=False)
    styles = {"swarmshare-ring": ("tab:blue", "-"), "swarmshare-swarm": ("tab:cyan", "-"),
              "aria2": ("tab:red", "--"), "libtorrent": ("tab:green", "-.")}
    for ax, s in zip(axes[0], scens):
        lb = None
        for r in recs:
            if panel(r) != s or r.get("skipped") or not r.get("completions"):
                continue
            xs = [0.0] + r["completions"]
            ys = list(range(len(xs)))
            color, ls = styles.get(r["tool"], (None, "-"))
            label = r["tool"] + ("" if r.get("time_all") is not None else " (failed)")
            ax.step(xs, ys, where="post", color=color, linestyle=ls, label=label, linewidth=1.8)
            lb = lower_bound(r) or lb
            n = r["n"]
        if lb:
            ax.axvline(lb, color="gray", linestyle=":", label="lower bound %.1f s" % lb)
        ax.set_title(s)
        ax.set_xlabel("seconds since the peers started")
        ax.set_ylabel("peers complete")
        ax.set_xlim(left=0)
        ax.set_ylim(0, max((r["n"] for r in recs if panel(r) == s), default=1) + 0.5)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle("\n".join(textwrap.wrap(title, int(width * 13))), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_gnuplot(recs, path, title):
    d = os.path.dirname(path)
    cmds = ['set terminal pngcairo size 1400,500', 'set output "%s"' % path,
            'set xlabel "seconds since the peers started"', 'set ylabel "peers complete"',
            'set key bottom right font ",9"', 'set xrange [0:*]']
    scens = []
    for r in recs:
        if panel(r) not in scens and r.get("completions"):
            scens.append(panel(r))
    cmds.append('set multiplot layout 1,%d title "%s"' % (len(scens), title.replace('"', "'")))
    for s in scens:
        plots = []
        for r in recs:
            if panel(r) != s or r.get("skipped") or not r.get("completions"):
                continue
            dat = os.path.join(d, "plot-%s-%s.dat" % (r["tool"], s.replace(" ", "-")))
            with open(dat, "w") as f:
                f.write("0 0\n")
                for k, x in enumerate(r["completions"], 1):
                    f.write("%f %d\n" % (x, k))
            plots.append('"%s" using 1:2 with steps lw 2 title "%s"' % (dat, r["tool"]))
        n = max(r["n"] for r in recs if panel(r) == s)
        cmds.append('set title "%s"' % s)
        cmds.append("set yrange [0:%g]" % (n + 0.5))
        cmds.append("plot " + ", ".join(plots) if plots else 'plot 0 notitle')
    cmds.append("unset multiplot")
    subprocess.run(["gnuplot"], input="\n".join(cmds).encode(), check=True)


def per_gib(rec):
    cpu = rec.get("peer_cpu_s") or []
    if rec.get("time_all") is None or not cpu or None in cpu:
        return None
    return sum(cpu) / (rec["n"] * rec["file_size"] / GIB)


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def medians(recs):
    """With more than one round: per tool and scenario, the median over the rounds of the
    time, its ratio to the bound and the peer CPU per GiB, and each round's CPU per GiB
    divided by aria2's in the same round (paired, so a noisy round counts against both)."""
    groups = {}
    for r in recs:
        if not r.get("skipped"):
            groups.setdefault((r["tool"], r["scenario"], r.get("fs", "?"), r["file_size"]), []).append(r)
    aria = {(r["scenario"], r.get("fs", "?"), r["file_size"], r.get("round", 0)): per_gib(r)
            for r in recs if r["tool"] == "aria2" and not r.get("skipped")}
    head = ["tool", "scenario", "fs", "F", "N", "rounds", "median time (s)", "median ratio to lower bound",
            "median peer CPU s per GiB", "CPU per GiB / aria2's, per round (median; min-max)"]
    rows = [head]
    for (tool, scen, fs, size), rs in groups.items():
        t = median(r.get("time_all") for r in rs)
        lbs = [lower_bound(r) for r in rs]
        ratio = median(r["time_all"] / lb for r, lb in zip(rs, lbs) if lb and r.get("time_all") is not None)
        cpu = median(per_gib(r) for r in rs)
        pair = []
        for r in rs:
            mine, theirs = per_gib(r), aria.get((scen, fs, size, r.get("round", 0)))
            if mine is not None and theirs:
                pair.append(mine / theirs)
        pair_s = "-" if not pair or tool == "aria2" else "%.2f; %.2f-%.2f" % (median(pair), min(pair), max(pair))
        rows.append([tool, scen, fs, size_label(size), str(rs[0]["n"]), str(len(rs)),
                     "%.2f" % t if t is not None else "-", "%.2f" % ratio if ratio is not None else "-",
                     "%.2f" % cpu if cpu is not None else "-", pair_s])
    return markdown(rows)


def main():
    out = sys.argv[1]
    header = sys.argv[2:]
    recs = []
    path = os.path.join(out, "results.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    recs.append(json.loads(line))
    if not recs:
        print("no results in %s" % os.path.join(out, "results.jsonl"))
        return
    tab = table(recs)
    if any(r.get("round", 0) for r in recs):
        tab += "\n\nMedians over the rounds:\n\n" + medians(recs)
    notes = []
    for r in recs:
        why = [x for x in (r.get("note"), r.get("skipped")) if x]
        lb = lower_bound(r)
        if lb and r.get("time_all") is not None and r["time_all"] < lb:
            why.append("faster than the lower bound: some process did not honour its upload cap")
        if why:
            notes.append("- %s / %s: %s" % (r["tool"], panel(r), "; ".join(why)))
    caps = sorted({r["cap"] for r in recs if r.get("cap")})
    legend = [
        "Time: from starting the N peers (the owner/seeder already serving) until the last peer has the verified file.",
        "Ratio: time / D_min, D_min = max(F/u_s, F/d_min, N*F/(u_s + sum u_i)) with every upload capped "
        "(%s B/s) and downloads unlimited; \"-\" for uncapped runs on loopback (no meaningful bound)."
        % ", ".join(str(c) for c in caps) if caps else "Ratio: \"-\": uncapped on loopback there is no meaningful bound.",
        "Owner upload / F: payload bytes the owner/seeder sent, divided by the file size (\"?\" = not obtainable).",
        "RSS: VmHWM of each peer process (libtorrent peers are Python processes: the interpreter is included).",
        "CPU: utime+stime of all N peers, summed (owner/seeder not included); per GiB delivered: that sum over N x F.",
        "Written to disk: each peer's write_bytes - cancelled_write_bytes (/proc/PID/io, or wait4's ru_oublock for a "
        "peer that exited), over F: bytes it made the kernel send to the storage device (tmpfs: 0).",
        "fs: tmpfs (the folders in RAM: network and CPU only) or disk (this machine's own file system; syncing on).",
    ]
    text = "\n".join(header) + ("\n\n" if header else "") + tab + "\n"
    if notes:
        text += "\nNotes:\n" + "\n".join(notes) + "\n"
    text += "\n" + "\n".join(legend) + "\n"
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    print(tab)
    if notes:
        print("\nNotes:\n" + "\n".join(notes))
    png = os.path.join(out, "completion.png")
    title = ("peers complete over time. " + " ".join(header)) if header else "peers complete over time"
    plotted = [r for r in recs if r.get("completions")]
    if not plotted:
        print("\nno completions to plot")
        return
    try:
        plot_matplotlib(recs, png, title)
    except ImportError:
        if shutil.which("gnuplot"):
            plot_gnuplot(recs, png, title)
        else:
            print("\nno matplotlib and no gnuplot: no plot")
            return
    print("\nplot: %s\ntable: %s" % (png, os.path.join(out, "results.md")))


if __name__ == "__main__":
    main()
