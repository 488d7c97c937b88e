//! The web view (`--http`): refuses foreign `Host` headers (DNS rebinding), binds only the
//! address it is given, is read-only, and, driven by headless Chromium, shows every peer
//! of a live swarm reach 100% without a reload.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::swarm::Swarm;
use super::util::free_port;

/// One HTTP/1.1 request on a fresh connection; returns the status code and the body.
pub(super) fn http(port: u16, method: &str, path: &str, host: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (code, body)
}

pub(super) fn wait_listening(port: u16) {
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "port {port} never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Event streams one web view serves at once (README, "The live web view").
const MAX_STREAMS: usize = 32;

#[test]
fn web_view_refuses_foreign_hosts_and_binds_only_its_address() {
    let web = free_port();
    let mut swarm = Swarm::new(600_000, 1, 51);
    swarm.owner_args = vec!["--http".into(), format!("127.0.0.1:{web}")];
    swarm.start_owner(1);
    wait_listening(web);
    let own = format!("127.0.0.1:{web}");
    let (code, body) = http(web, "GET", "/", &own);
    assert_eq!(code, 200);
    assert!(body.contains("<canvas id=\"grid\""), "the page is served");
    assert_eq!(http(web, "GET", "/", &format!("localhost:{web}")).0, 200);
    let (code, state) = http(web, "GET", "/state", &own);
    assert_eq!(code, 200);
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["role"], "owner");
    assert_eq!(state["nodes"][0]["state"], "owner");
    // DNS rebinding: a foreign name pointing at this address is refused, on every route.
    for host in [
        "evil.example",
        "evil.example:80",
        &format!("evil.example:{web}"),
        "127.0.0.1",
        "",
    ] {
        for path in ["/", "/state", "/events"] {
            let (code, body) = http(web, "GET", path, host);
            assert_eq!(code, 403, "Host {host:?} on {path} was answered");
            assert!(
                !body.contains("swarm"),
                "nothing about the swarm leaks to {host:?}"
            );
        }
    }
    // A request whose target names another host, or with two Host headers, is refused.
    let absolute = http(web, "GET", "http://evil.example/state", &own);
    assert_eq!(absolute.0, 403, "absolute-form target for another host");
    let twice = http(web, "GET", "/state", &format!("{own}\r\nHost: evil.example"));
    assert!([400, 403].contains(&twice.0), "two Host headers: {}", twice.0);
    // Read-only.
    assert_eq!(http(web, "POST", "/state", &own).0, 405);
    // Bound to 127.0.0.1 only: another loopback address does not reach it.
    assert!(
        TcpStream::connect(("127.0.0.2", web)).is_err(),
        "reachable on 127.0.0.2"
    );

    // Event streams are bounded: the one past the limit is refused, the others stream.
    let stream = || {
        let mut s = TcpStream::connect(("127.0.0.1", web)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET /events HTTP/1.1\r\nHost: {own}\r\n\r\n").unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        (s, String::from_utf8_lossy(&head).into_owned())
    };
    let open: Vec<TcpStream> = (0..MAX_STREAMS)
        .map(|_| {
            let (s, head) = stream();
            assert_eq!(head, "HTTP/1.1 200", "an event stream within the limit");
            s
        })
        .collect();
    assert_eq!(stream().1, "HTTP/1.1 503", "one stream past the limit");
    drop(open);
    let t0 = Instant::now();
    while stream().1 != "HTTP/1.1 200" {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "streams are served again once others close"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("browser");
    let chromium = PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let ready = node_ok && chromium.exists() && dir.join("node_modules").join("playwright-core").exists();
    ready.then_some((dir, chromium))
}

#[test]
fn web_view_in_a_real_browser_fills_to_100_percent() {
    let Some((dir, chromium)) = browser_tools() else {
        // CI installs Chromium and playwright-core (.ci/run) and sets this, so there a
        // missing tool is a failure, not a skip.
        assert!(
            std::env::var_os("SWARMSHARE_BROWSER_TESTS").is_none(),
            "browser test required but node, {} or tests/browser/node_modules is missing",
            "/usr/bin/chromium"
        );
        println!("SKIPPED: no node, Chromium or playwright-core (see .ci/run to install them)");
        return;
    };
    let web = free_port();
    let mut swarm = Swarm::new(12_000_000, 3, 52);
    swarm.owner_args = vec!["--http".into(), format!("127.0.0.1:{web}")];
    // Slow enough that the page sees the grid fill in.
    swarm.peer_args = vec!["--download-limit".into(), "3MB".into()];
    swarm.start_owner(3);
    wait_listening(web);
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-view");
    let mut driver = Command::new("node");
    driver
        .arg(dir.join("swarm_view.mjs"))
        .arg(format!("http://127.0.0.1:{web}/"))
        .arg("3")
        .arg(&out)
        .arg("90")
        .env("CHROMIUM", &chromium);
    let browser = std::thread::spawn(move || driver.output().unwrap());
    std::thread::sleep(Duration::from_millis(1500));
    for i in 0..3 {
        let neighbor = swarm.ring_neighbor(i);
        swarm.start_peer(i, neighbor);
    }
    let result = browser.join().unwrap();
    let seen = String::from_utf8_lossy(&result.stdout);
    println!("browser: {seen}");
    println!("screenshots in {}", out.display());
    assert!(
        result.status.success(),
        "the page did not show 3 peers at 100% without a reload: {seen} {}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(out.join("swarm-complete.png").exists(), "screenshot saved");
    swarm.wait_all_complete(Duration::from_secs(60));
}

#[test]
fn a_half_sent_request_does_not_keep_the_node_up() {
    let web = free_port();
    let mut swarm = Swarm::new(600_000, 1, 53);
    swarm.owner_args = vec!["--http".into(), web.to_string()];
    swarm.start_owner(1);
    wait_listening(web);
    // Headers never finished, and an open event stream.
    let mut stalled = TcpStream::connect(("127.0.0.1", web)).unwrap();
    write!(stalled, "GET /state HTTP/1.1\r\nHost: 127.0.0.1:{web}\r\n").unwrap();
    let mut events = TcpStream::connect(("127.0.0.1", web)).unwrap();
    write!(events, "GET /events HTTP/1.1\r\nHost: 127.0.0.1:{web}\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let owner = swarm.owner.as_mut().unwrap();
    let status = owner.terminate(Duration::from_secs(10));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "the owner stopped cleanly within 10 s"
    );
    drop((stalled, events));
}
