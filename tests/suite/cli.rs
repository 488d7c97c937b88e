//! Bad input on the command line: one clear line on stderr, exit code 2, nothing written.

use std::time::Duration;

use super::util::{free_port, Proc};

fn owner_refuses(contents: Option<&[u8]>, is_dir: bool, expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("input");
    if is_dir {
        std::fs::create_dir(&target).unwrap();
    } else if let Some(bytes) = contents {
        std::fs::write(&target, bytes).unwrap();
    }
    let work = dir.path().join("work");
    let port = free_port().to_string();
    let mut p = Proc::start(
        dir.path(),
        "owner",
        &[
            "owner",
            &port,
            target.to_str().unwrap(),
            "--bind",
            "127.0.0.1",
            "--dir",
            work.to_str().unwrap(),
        ],
    );
    let status = p.wait_for(Duration::from_secs(10)).expect("owner exits");
    assert_eq!(status.code(), Some(2), "stderr: {}", p.errors());
    let err = p.errors();
    assert_eq!(err.lines().count(), 1, "one line expected: {err:?}");
    assert!(err.starts_with("error: ") && err.contains(expect), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !work.exists(),
        "the owner wrote into its directory before refusing"
    );
}

#[test]
fn owner_refuses_an_empty_file() {
    owner_refuses(Some(b""), false, "too small");
}

#[test]
fn owner_refuses_a_four_byte_file() {
    owner_refuses(Some(b"abcd"), false, "too small");
}

#[test]
fn owner_refuses_a_missing_file() {
    owner_refuses(None, false, "No such file");
}

#[test]
fn owner_refuses_an_empty_directory() {
    // A directory is shared as a tree; one with no bytes in it has nothing to share.
    owner_refuses(None, true, "too small to share");
}

fn exits_2(args: &[&str], expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Proc::start(dir.path(), "cli", args);
    let status = p.wait_for(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(2), "stderr: {}", p.errors());
    assert!(p.errors().contains(expect), "{}", p.errors());
}

#[test]
fn peer_refuses_a_bad_neighbor_address() {
    exits_2(
        &["peer", "5000", "5001", "no:such:thing"],
        "not a port or HOST:PORT",
    );
    exits_2(&["peer", "5000", "5001", "0"], "port 0");
}

#[test]
fn peer_refuses_its_own_port_as_owner() {
    exits_2(&["peer", "5001", "5001", "5002"], "own port");
}

#[test]
fn demo_refuses_one_peer() {
    exits_2(&["demo", "--peers", "1"], "--peers must be at least 2");
}

#[test]
fn peer_whose_dir_is_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, b"I am a file").unwrap();
    let mut p = Proc::start(
        dir.path(),
        "peer",
        &[
            "peer",
            &free_port().to_string(),
            &free_port().to_string(),
            &free_port().to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            not_a_dir.to_str().unwrap(),
        ],
    );
    let status = p.wait_for(Duration::from_secs(10)).expect("peer exits");
    assert_eq!(status.code(), Some(2), "stderr: {}", p.errors());
    let err = p.errors();
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains("is not a plain directory"), "{err}");
    assert_eq!(std::fs::read(&not_a_dir).unwrap(), b"I am a file");
}

#[test]
fn peer_arguments_that_do_not_fit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let cases: [(&[&str], &str); 3] = [
        (&["peer", &port], "PORT alone with --join"),
        (
            &["peer", "5000", &port, "--neighbors", "0"],
            "--neighbors must be between 1 and 32",
        ),
        (&["peer", "5000", "notaport"], "is not a port number"),
    ];
    for (args, expect) in cases {
        let mut all = args.to_vec();
        all.extend(["--dir", dir.path().to_str().unwrap()]);
        let mut p = Proc::start(dir.path(), "peer", &all);
        let status = p.wait_for(Duration::from_secs(10)).expect("peer exits");
        assert_eq!(status.code(), Some(2), "{args:?}: {}", p.errors());
        let err = p.errors();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}

#[test]
fn every_subcommand_has_help_with_an_example_and_completions_and_man_are_generated() {
    for sub in ["owner", "peer", "demo", "status", "inspect", "completions", "man"] {
        let out = super::util::swarmshare().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub} --help");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Example"), "{sub} --help has no example:\n{text}");
    }
    let bash = super::util::swarmshare()
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(bash.status.success());
    let script = String::from_utf8_lossy(&bash.stdout);
    assert!(
        script.contains("_swarmshare()") && script.contains("inspect"),
        "a bash completion for every subcommand"
    );
    let man = super::util::swarmshare().arg("man").output().unwrap();
    assert!(man.status.success());
    let roff = String::from_utf8_lossy(&man.stdout);
    assert!(
        roff.contains(".TH swarmshare 1") && roff.contains("status"),
        "a man page naming the subcommands"
    );
    exits_2(&["completions", "tcsh"], "tcsh");
    exits_2(&["demo", "--http", "nowhere"], "PORT or IP:PORT");
}

#[test]
fn progress_bars_on_a_terminal_and_plain_lines_otherwise() {
    let bin = env!("CARGO_BIN_EXE_swarmshare");
    let cmd = format!("{bin} demo --peers 2 --size 2MiB --no-http");
    // Not a terminal: log lines only, no bars.
    let plain = super::util::swarmshare()
        .args(["demo", "--peers", "2", "--size", "2MiB", "--no-http"])
        .output()
        .unwrap();
    assert!(plain.status.success());
    let all = [plain.stdout, plain.stderr].concat();
    let text = String::from_utf8_lossy(&all);
    assert!(
        text.contains("chunk received"),
        "log lines when not on a terminal"
    );
    assert!(
        !text.contains("chunks/s"),
        "no progress bar when not on a terminal"
    );
    // On a terminal (a pseudo-terminal from util-linux's `script`): a bar per peer.
    let Ok(tty) = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
    else {
        println!("SKIPPED: no `script` command to make a terminal");
        return;
    };
    assert!(tty.status.success(), "{}", String::from_utf8_lossy(&tty.stderr));
    let screen = String::from_utf8_lossy(&tty.stdout);
    for peer in ["peer1", "peer2"] {
        assert!(screen.contains(peer), "a bar for {peer}");
    }
    assert!(
        screen.contains("chunks/s") && screen.contains("complete in"),
        "bars with rate and outcome"
    );
}
