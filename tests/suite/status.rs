//! `swarmshare status` and `swarmshare inspect` against real directories: after a kill -9
//! mid-transfer (and a damaged chunk file), `status --json` reports exactly what an
//! independent check of the directory finds.

use std::time::Duration;

use serde_json::Value;
use swarmshare::manifest::hash_file;

use super::swarm::Swarm;
use super::util::swarmshare;

fn json_of(args: &[&str]) -> Value {
    let out = swarmshare().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "swarmshare {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

#[test]
fn status_json_matches_the_directory_after_kill_9() {
    let mut swarm = Swarm::new(20_000_000, 2, 41);
    let manifest = hash_file(&swarm.file, "payload.bin").unwrap();
    let chunks = manifest.layout().chunk_count();
    // Slow enough to be caught mid-transfer.
    swarm.peer_args = vec!["--download-limit".into(), "10MB".into()];
    swarm.start_owner(2);
    swarm.start_peer(0, swarm.ports[1]);
    swarm.start_peer(1, swarm.ports[0]);
    // Killed once part of the file is committed to chunks/, before it can have all of it.
    let committed = swarm.peer_dir(0).join(".swarmshare").join("chunks");
    let seen = super::util::wait_until(Duration::from_secs(60), || {
        std::fs::read_dir(&committed).map_or(0, Iterator::count) >= 40
    });
    assert!(seen, "peer1 committed chunks");
    swarm.peer(0).kill9();
    let dir = swarm.peer_dir(0);
    let store = dir.join(".swarmshare");
    // A chunk file cut short, as a crash of the disk might leave one.
    let victim = std::fs::read_dir(store.join("chunks"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let len = std::fs::metadata(&victim).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let status = json_of(&["status", dir.to_str().unwrap(), "--json"]);

    // The independent check: every chunk file's bytes against the manifest.
    let (mut verified, mut damaged) = (Vec::new(), Vec::new());
    for id in 0..chunks {
        match std::fs::read(store.join("chunks").join(format!("{id:07}"))) {
            Ok(bytes) if manifest.verify_chunk(id, &bytes) => verified.push(u64::from(id)),
            Ok(_) => damaged.push(u64::from(id)),
            Err(_) => {}
        }
    }
    let missing: Vec<u64> = (0..u64::from(chunks))
        .filter(|id| !verified.contains(id))
        .collect();
    assert!(!verified.is_empty() && !missing.is_empty(), "killed mid-transfer");
    assert_eq!(
        damaged.len(),
        1,
        "the truncated chunk file is the one damaged file"
    );
    assert_eq!(ids(&status["verified"]), verified);
    assert_eq!(ids(&status["missing"]), missing);
    assert_eq!(ids(&status["damaged"]), damaged);
    assert_eq!(status["verified_count"].as_u64(), Some(verified.len() as u64));
    assert_eq!(status["chunks"].as_u64(), Some(u64::from(chunks)));
    assert_eq!(status["file"], "absent");
    assert_eq!(status["complete"], false);
    assert_eq!(status["manifest"]["swarm"], manifest.swarm_id().to_string());
    // The summary lists only verified chunks, except the one damaged behind its back.
    let text = std::fs::read_to_string(store.join("summary")).unwrap();
    let listed = super::protocol::summary_ids(&text);
    assert!(listed.iter().all(|&id| id < chunks), "every listed ID is a chunk");
    assert_eq!(status["summary"]["listed"].as_u64(), Some(listed.len() as u64));
    let bad: Vec<u64> = listed
        .iter()
        .copied()
        .map(u64::from)
        .filter(|id| !verified.contains(id))
        .collect();
    assert_eq!(ids(&status["summary"]["listed_not_verified"]), bad);
    assert!(
        bad.iter().all(|id| damaged.contains(id)),
        "only the damaged chunk can be listed unverified"
    );
    // Read-only: the damaged file is still there.
    assert_eq!(std::fs::metadata(&victim).unwrap().len(), len / 2);

    // Restarted, the peer completes; status then says so.
    swarm.start_peer(0, swarm.ports[1]);
    swarm.wait_all_complete(Duration::from_secs(90));
    let done = json_of(&["status", dir.to_str().unwrap(), "--json"]);
    assert_eq!(done["file"], "verified");
    assert_eq!(done["complete"], true);
    assert_eq!(done["missing"].as_array().unwrap().len(), 0);
    assert_eq!(done["damaged"].as_array().unwrap().len(), 0);
}

#[test]
fn inspect_gives_the_manifest_the_owner_would_serve() {
    let swarm = Swarm::new(1_234_567, 1, 42);
    let manifest = hash_file(&swarm.file, "payload.bin").unwrap();
    let v = json_of(&["inspect", swarm.file.to_str().unwrap(), "--json"]);
    assert_eq!(v["swarm"], manifest.swarm_id().to_string());
    assert_eq!(v["name"], "payload.bin");
    assert_eq!(v["size"].as_u64(), Some(1_234_567));
    assert_eq!(
        v["chunks"].as_u64(),
        Some(u64::from(manifest.layout().chunk_count()))
    );
    assert_eq!(
        v["chunk_size"].as_u64(),
        Some(u64::from(manifest.layout().chunk_size()))
    );
    let out = swarmshare()
        .args(["status", swarm.logs().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a directory without a store is refused"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("holds no swarmshare data"), "{err}");
    let gone = swarm.logs().join("no-such-dir");
    let out = swarmshare()
        .args(["status", gone.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a directory that does not exist is bad input"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}
