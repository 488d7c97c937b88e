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
    // Killed once the summary lists part of the file, before it can have all of it.
    let dir = swarm.peer_dir(0);
    let store = dir.join(".swarmshare");
    let listed_now = || {
        let text = std::fs::read_to_string(store.join("summary")).unwrap_or_default();
        super::protocol::summary_ids(&text)
    };
    let seen = super::util::wait_until(Duration::from_secs(60), || listed_now().len() >= 40);
    assert!(seen, "peer1 committed chunks");
    swarm.peer(0).kill9();
    // A listed chunk cut in half in the partial file, as a crash of the disk might leave it.
    let victim = listed_now()[0];
    let partial = store.join("partial");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&partial).unwrap();
        let at = manifest.layout().chunk_offset(victim).unwrap() + 51_200;
        f.write_all_at(&[0u8; 51_200], at).unwrap();
    }

    let status = json_of(&["status", dir.to_str().unwrap(), "--json"]);

    // The independent check: every chunk's bytes in the partial file against the
    // manifest; damaged: listed, yet not verifying.
    let listed_ids = listed_now();
    let on_disk = std::fs::read(&partial).unwrap();
    let layout = manifest.layout();
    let (mut verified, mut damaged) = (Vec::new(), Vec::new());
    for id in 0..chunks {
        let at = layout.chunk_offset(id).unwrap() as usize;
        let bytes = &on_disk[at..at + layout.chunk_len(id).unwrap() as usize];
        if manifest.verify_chunk(id, bytes) {
            verified.push(u64::from(id));
        } else if listed_ids.contains(&id) {
            damaged.push(u64::from(id));
        }
    }
    let missing: Vec<u64> = (0..u64::from(chunks))
        .filter(|id| !verified.contains(id))
        .collect();
    assert!(!verified.is_empty() && !missing.is_empty(), "killed mid-transfer");
    assert_eq!(damaged.len(), 1, "the chunk cut in half is the one damaged chunk");
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
    // Read-only: the damage is still there.
    assert_eq!(std::fs::read(&partial).unwrap(), on_disk);

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
