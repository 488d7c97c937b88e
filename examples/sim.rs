//! `cargo run --release --example sim -- --peers 1000 --size 1GiB --upload 10MB`: the real
//! download scheduler in a simulated swarm (see `swarmshare::sim`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use swarmshare::config::{parse_rate, parse_size};
use swarmshare::sim::{self, SimConfig};

/// Simulates a swarm: the owner and N peers, every transfer sharing its nodes' caps.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Peers (the owner not counted).
    #[arg(long, default_value_t = 100)]
    peers: usize,
    /// File size (`100MiB`, `1GiB`, bytes).
    #[arg(long, default_value = "100MiB", value_parser = parse_size)]
    size: u64,
    /// Upload cap of every node, owner included (`10MB` = 10,000,000 B/s).
    #[arg(long, default_value = "10MB", value_parser = parse_rate)]
    upload: u64,
    /// Download cap of every peer (default: none).
    #[arg(long, value_parser = parse_rate)]
    download: Option<u64>,
    /// Fraction of peers that upload `--slow-factor` times slower.
    #[arg(long, default_value_t = 0.0)]
    slow_fraction: f64,
    /// How much slower the slow peers upload.
    #[arg(long, default_value_t = 4.0)]
    slow_factor: f64,
    /// Download cap of the slow peers (default: as `--download`).
    #[arg(long, value_parser = parse_rate)]
    slow_download: Option<u64>,
    /// Idle identities at one address, known to every node.
    #[arg(long, default_value_t = 0)]
    idle_sybils: usize,
    /// Fraction of peers that leave once at a random time and come back.
    #[arg(long, default_value_t = 0.0)]
    churn: f64,
    /// How long a leaving peer stays away, seconds.
    #[arg(long, default_value_t = 30.0)]
    away: f64,
    /// One-way latency of every link, milliseconds.
    #[arg(long, default_value_t = 5.0)]
    latency_ms: f64,
    /// Peers join uniformly over this many seconds.
    #[arg(long, default_value_t = 1.0)]
    join_window: f64,
    /// Neighbor slots per peer.
    #[arg(long, default_value_t = swarmshare::config::DEFAULT_NEIGHBORS)]
    neighbors: usize,
    /// The owner's --peers (batch size); default: the number of peers.
    #[arg(long)]
    owner_peers: Option<u32>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Print the swarm's progress every simulated second on stderr.
    #[arg(long)]
    trace: bool,
    /// Draw the peers' completion times (over the lower bound) into this PNG file.
    #[arg(long, value_name = "FILE.png")]
    plot: Option<PathBuf>,
}

fn main() -> ExitCode {
    let a = Args::parse();
    let config = SimConfig {
        peers: a.peers.max(1),
        size: a.size,
        upload: a.upload as f64,
        download: a.download.map(|d| d as f64),
        slow_fraction: a.slow_fraction.clamp(0.0, 1.0),
        slow_factor: a.slow_factor.max(1.0),
        slow_download: a.slow_download.map(|d| d as f64),
        idle_sybils: a.idle_sybils,
        churn: a.churn.clamp(0.0, 1.0),
        away: Duration::from_secs_f64(a.away.max(0.0)),
        latency: Duration::from_secs_f64(a.latency_ms.max(0.0) / 1000.0),
        join_window: Duration::from_secs_f64(a.join_window.max(0.0)),
        neighbors: a.neighbors.max(1),
        owner_peers: a.owner_peers,
        seed: a.seed,
        trace: a.trace,
        ..SimConfig::default()
    };
    let r = sim::run(&config);
    if a.json {
        match serde_json::to_string(&r) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("sim: cannot write the report: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        let all = r
            .all_complete
            .map_or("not all".to_owned(), |t| format!("{t:.2} s"));
        println!(
            "{} peers, {} chunks, lower bound {:.2} s: all complete {all}",
            r.peers, r.chunks, r.bound
        );
        if a.slow_fraction > 0.0 {
            let fast = r
                .fast_complete
                .map_or("not all".to_owned(), |t| format!("{t:.2} s"));
            println!("peers that are not slow complete {fast}");
        }
        println!(
            "completion / bound: p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}  (p99 of peers that stayed {:.3})",
            r.p50_ratio, r.p90_ratio, r.p99_ratio, r.max_ratio, r.p99_ratio_stayers
        );
        println!(
            "owner upload / F {:.3}, duplicate chunks {}, {} events in {:.1} s of wall time",
            r.owner_upload_ratio, r.duplicates, r.events, r.wall_secs
        );
        let per = |n: u64| n as f64 / (r.peers.max(1) as f64 * f64::from(r.chunks.max(1)));
        let m = r.messages;
        println!(
            "per chunk per peer: requests {:.2}, list asks {:.2}, lists {:.2}",
            per(m.requests),
            per(m.list_asks),
            per(m.lists)
        );
    }
    if let Some(path) = &a.plot {
        if let Err(e) = plot(path, &r, &a) {
            eprintln!("sim: cannot draw {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if r.incomplete > 0 {
        eprintln!("sim: {} peers did not complete", r.incomplete);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Peers complete (y, a share of all) over completion time / lower bound (x).
fn plot(path: &Path, r: &sim::SimReport, a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| "the embedded font does not load")?;
    let done: Vec<f64> = r.completions.iter().copied().filter(|c| c.is_finite()).collect();
    let right = done.last().copied().unwrap_or(1.0).max(1.05) * 1.05;
    let left = done.first().copied().unwrap_or(1.0).min(1.0) * 0.95;
    let root = BitMapBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "{} peers, {} chunks, upload {} B/s (slow {:.0}% x1/{}), churn {:.0}%: p99 {:.3}",
        r.peers,
        r.chunks,
        a.upload,
        a.slow_fraction * 100.0,
        a.slow_factor,
        a.churn * 100.0,
        r.p99_ratio
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(left..right, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("completion time / lower bound")
        .y_desc("peers complete")
        .draw()?;
    let n = r.completions.len().max(1) as f64;
    let curve = done
        .iter()
        .enumerate()
        .flat_map(|(i, &x)| [(x, i as f64 / n), (x, (i + 1) as f64 / n)]);
    chart.draw_series(LineSeries::new(curve, &BLUE))?;
    chart.draw_series(LineSeries::new([(1.0, 0.0), (1.0, 1.0)], &RED))?;
    root.present()?;
    Ok(())
}
