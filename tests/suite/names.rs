//! Terminal tricks (issue 14): names and paths with escape sequences, bidirectional
//! controls, spaces and quotes, through the owner's errors, both log formats, `status`,
//! `inspect` and the web view. No raw control character may reach the terminal, and a name
//! is one quoted field.

use std::fs;
use std::path::Path;
use std::time::Duration;

use super::util::{free_port, random_file, swarmshare, wait_until, Proc};
use super::web::{http, wait_listening};

fn is_bidi(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Asserts `text` holds no control character but newlines and tabs, and no bidi control.
fn assert_clean(what: &str, text: &str) {
    for c in text.chars() {
        let raw = (c.is_control() && c != '\n' && c != '\t') || is_bidi(c);
        assert!(
            !raw,
            "{what}: a raw {:?} reaches the terminal in:\n{}",
            c,
            text.escape_debug()
        );
    }
}

const HOSTILE: [&str; 5] = [
    "esc\x1b[31mred.bin",
    "osc\x1b]0;pwned\x07.bin",
    "c1\u{9b}31m.bin",
    "bidi\u{202e}nib.exe",
    "isolate\u{2066}x.bin",
];

#[test]
fn hostile_names_are_refused_and_shown_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    for name in HOSTILE {
        let file = tmp.path().join(name);
        random_file(&file, 1000, 3);
        for args in [
            vec![
                "owner".to_owned(),
                "0".to_owned(),
                file.to_str().unwrap().to_owned(),
            ],
            vec!["inspect".to_owned(), file.to_str().unwrap().to_owned()],
        ] {
            let out = swarmshare()
                .args(&args)
                .arg("--dir")
                .arg(tmp.path().join("d"))
                .output()
                .unwrap();
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            if args[0] == "owner" {
                assert!(!out.status.success(), "{name:?} was accepted");
                assert!(stderr.contains("\\u{"), "the name is shown escaped: {stderr}");
            }
            assert_clean(&format!("{} {name:?}", args[0]), &format!("{stdout}{stderr}"));
        }
    }
    // A directory path with escapes, from the user: the error names it escaped.
    let dir = tmp.path().join("st\x1b[2Jdir \u{202e}x");
    fs::create_dir(&dir).unwrap();
    let out = swarmshare().arg("status").arg(&dir).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\\u{1b}") && stderr.contains("\\u{202e}"),
        "{stderr}"
    );
    assert_clean("status error", &stderr);
}

fn run_owner_and_peer(tmp: &Path, format: &str, peer_dir: &Path) -> (Proc, u16, Proc) {
    let file = tmp.join("my \"quoted\" file.bin");
    random_file(&file, 700_000, 4);
    let (port, web) = (free_port(), free_port());
    let owner = Proc::start(
        tmp,
        &format!("owner-{format}"),
        &[
            "--log-format",
            format,
            "owner",
            &port.to_string(),
            file.to_str().unwrap(),
            "--bind",
            "127.0.0.1",
            "--dir",
            tmp.join(format!("owner-{format}")).to_str().unwrap(),
            "--http",
            &format!("127.0.0.1:{web}"),
        ],
    );
    wait_listening(web);
    let peer = Proc::start(
        tmp,
        &format!("peer-{format}"),
        &[
            "--log-format",
            format,
            "peer",
            &port.to_string(),
            &free_port().to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            peer_dir.to_str().unwrap(),
        ],
    );
    let done = peer_dir.join("my \"quoted\" file.bin");
    assert!(
        wait_until(Duration::from_secs(60), || done.exists()),
        "the peer did not complete"
    );
    (owner, web, peer)
}

#[test]
fn names_with_spaces_and_quotes_are_one_quoted_field_everywhere() {
    for format in ["human", "json"] {
        let tmp = tempfile::tempdir().unwrap();
        let peer_dir = tmp.path().join(format!("peer \x1b[7m{format}\u{202e}"));
        let (owner, web, peer) = run_owner_and_peer(tmp.path(), format, &peer_dir);
        let (_, state) = http(web, "GET", "/state", &format!("127.0.0.1:{web}"));
        assert!(state.contains(r#""name":"my \"quoted\" file.bin""#), "{state}");
        assert_clean("web view", &state);
        let owner_log = owner.output() + &owner.errors();
        let peer_log = peer.output() + &peer.errors();
        assert_clean(&format!("owner log ({format})"), &owner_log);
        assert_clean(&format!("peer log ({format})"), &peer_log);
        if format == "human" {
            // The path is one quoted field: `file="/tmp/.../my \"quoted\" file.bin"`.
            let field = owner_log.split("file=\"").nth(1).unwrap_or_default();
            assert!(field.contains(r#"my \"quoted\" file.bin" "#), "{owner_log}");
        }
        for json in [false, true] {
            let mut cmd = swarmshare();
            cmd.arg("status").arg(&peer_dir);
            if json {
                cmd.arg("--json");
            }
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let text = String::from_utf8_lossy(&out.stdout);
            assert_clean(&format!("status (json: {json})"), &text);
            assert!(text.contains("\\u{1b}") && text.contains("\\u{202e}"), "{text}");
        }
    }
}

#[test]
fn usage_errors_never_echo_an_argument_raw() {
    // CLICOLOR_FORCE makes clap style its errors as on a terminal, where it would echo the
    // offending argument with its escape sequences.
    for args in [
        vec!["owner", "5\x1b[31m", "x"],
        vec!["--b\x1b]0;pwned\x07"],
        vec!["owner", "5000", "x", "--peers", "\u{202e}7"],
    ] {
        let out = swarmshare()
            .args(&args)
            .env("CLICOLOR_FORCE", "1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_clean(
            &format!("usage error {args:?}"),
            &String::from_utf8_lossy(&out.stderr),
        );
    }
}
