//! Directory trees end to end: the real binary shares a folder, peers rebuild it file by
//! file (swarm mode and the seed's ring), never write through a symlink planted in their
//! destination, and resume after kill -9 without rewriting finished files.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::swarm::{events_of, Swarm};
use super::util::{random_file, wait_until};

/// The tree: nested directories, an empty directory, empty and 1-byte files, an
/// executable, sizes around one chunk, and a few MiB.
fn make_tree(root: &Path) -> PathBuf {
    let share = root.join("share");
    let file = |rel: &str, size: usize, seed: u64| {
        let p = share.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        random_file(&p, size, seed);
    };
    file("a/b/c/deep.bin", 3 << 20, 1);
    file("a/one", 1, 2);
    file("a/zero", 0, 3);
    file("sizes/102399", 102_399, 4);
    file("sizes/102400", 102_400, 5);
    file("sizes/102401", 102_401, 6);
    file("top-one", 1, 7);
    file("bin/run", 4321, 8);
    std::fs::set_permissions(share.join("bin/run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(share.join("empty/inner")).unwrap();
    file("z/mib", (2 << 20) + 17, 9);
    share
}

/// `find NAME -printf '%y %P %s %m\n' | sort`, run in `dir`.
fn listing(dir: &Path) -> String {
    if !dir.is_dir() {
        return String::new();
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg("find share -printf '%y %P %s %m\\n' | sort")
        .current_dir(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every regular file under `a` has the same bytes under `b`.
fn same_bytes(a: &Path, b: &Path) {
    for entry in std::fs::read_dir(a).unwrap() {
        let entry = entry.unwrap();
        let (pa, pb) = (entry.path(), b.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            same_bytes(&pa, &pb);
        } else {
            assert!(
                std::fs::read(&pa).unwrap() == std::fs::read(&pb).unwrap(),
                "{} differs",
                pb.display()
            );
        }
    }
}

fn tree_swarm(n: usize, seed: u64) -> (Swarm, PathBuf) {
    let mut swarm = Swarm::new(1, n, seed);
    let share = make_tree(&swarm.root.path().join("owner"));
    swarm.file = share.clone();
    (swarm, share)
}

fn wait_trees(swarm: &Swarm, expected: &str, limit: Duration) {
    let n = swarm.ports.len();
    let done = wait_until(limit, || (0..n).all(|i| listing(&swarm.peer_dir(i)) == expected));
    if !done {
        let mut report = String::new();
        for p in swarm.peers.iter().flatten().chain(swarm.owner.iter()) {
            report += &format!("\n--- {} stderr: {}", p.name, p.errors());
        }
        panic!("not every peer rebuilt the tree within {limit:?}{report}");
    }
}

fn check_peers(swarm: &Swarm, share: &Path) {
    for i in 0..swarm.ports.len() {
        same_bytes(share, &swarm.peer_dir(i).join("share"));
        let p = swarm.peers[i].as_ref().unwrap();
        let done = || -> Vec<String> {
            events_of(p)
                .into_iter()
                .filter(|e| e["event"] == "file_complete")
                .filter_map(|e| e["path"].as_str().map(str::to_owned))
                .collect()
        };
        // The log is written behind (at most every 20 ms): a file can be in place a moment
        // before its line is in the log.
        wait_until(Duration::from_secs(10), || done().len() >= 8);
        let done = done();
        // One event per non-empty file (an empty file is made complete at once).
        assert_eq!(done.len(), 8, "peer{}: {done:?}", i + 1);
        assert!(done.iter().any(|p| p.contains("a/b/c/deep.bin")), "{done:?}");
        assert!(
            !swarm.peer_dir(i).join(".swarmshare/parts").exists(),
            "parts are gone once complete"
        );
    }
}

#[test]
fn a_tree_is_rebuilt_exactly_by_four_peers_in_swarm_mode() {
    let (mut swarm, share) = tree_swarm(4, 71);
    let expected = listing(share.parent().unwrap());
    assert!(
        expected.contains("f bin/run 4321 755") && expected.contains("d empty/inner"),
        "{expected}"
    );
    swarm.start_owner(4);
    for i in 0..4 {
        swarm.start_swarm_peer(i);
    }
    wait_trees(&swarm, &expected, Duration::from_secs(60));
    check_peers(&swarm, &share);
}

#[test]
fn a_tree_is_rebuilt_exactly_around_the_seeds_ring() {
    let (swarm, share) = tree_swarm(4, 72);
    let mut swarm = swarm.pure_ring();
    let expected = listing(share.parent().unwrap());
    swarm.start_owner(4);
    for i in 0..4 {
        let neighbor = swarm.ring_neighbor(i);
        swarm.start_peer(i, neighbor);
    }
    wait_trees(&swarm, &expected, Duration::from_secs(60));
    check_peers(&swarm, &share);
}

#[test]
fn a_symlink_planted_in_the_destination_is_never_followed() {
    let (mut swarm, _share) = tree_swarm(1, 73);
    let outside = swarm.root.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let dest = swarm.peer_dir(0).join("share");
    std::fs::create_dir_all(&dest).unwrap();
    // Where the tree has directory "a", a symlink to a folder outside DIR.
    std::os::unix::fs::symlink(&outside, dest.join("a")).unwrap();
    swarm.start_owner(1);
    swarm.start_swarm_peer(0);
    let p = swarm.peer(0);
    let status = p.wait_for(Duration::from_secs(30)).expect("the peer exits");
    assert_ne!(status.code(), Some(0), "stderr: {}", p.errors());
    let err = p.errors();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("share/a") && err.contains("symlinks are never followed"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside DIR"
    );
    assert!(
        std::fs::symlink_metadata(dest.join("a"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the symlink is left"
    );
}

#[test]
fn kill_9_halfway_through_500_files_resumes_without_rewriting_finished_ones() {
    let mut swarm = Swarm::new(1, 1, 74);
    let share = swarm.root.path().join("owner/share");
    for i in 0..500u64 {
        let p = share.join(format!("d{}/f{i:03}", i % 7));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        random_file(&p, 20_000 + (i as usize * 37) % 30_000, i);
    }
    swarm.file = share.clone();
    // Slow enough to stop halfway: about 17 MB at 4 MB/s.
    swarm.owner_args = vec!["--upload-limit".into(), "4MB".into()];
    // Fewer descriptors than the tree has files: owner and peer keep a bounded number of
    // them open (this limit, less 512 for sockets and the rest: 88).
    swarm.nofile = Some(600);
    swarm.start_owner(1);
    swarm.start_swarm_peer(0);
    let dest = swarm.peer_dir(0).join("share");
    let count = |d: &Path| walk_files(d).len();
    assert!(
        wait_until(Duration::from_secs(30), || dest.exists() && count(&dest) >= 150),
        "files appear as they complete"
    );
    // 500 files, but a bounded number open at once (88 data files and a few others).
    let pid = swarm.peer(0).pid();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    assert!(open < 150, "{open} descriptors open");
    swarm.peer(0).kill9();
    let before: Vec<(PathBuf, i64, i64)> = walk_files(&dest)
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).unwrap();
            (p, m.mtime(), m.mtime_nsec())
        })
        .collect();
    assert!(
        before.len() < 500,
        "killed before the end: {} files",
        before.len()
    );
    swarm.start_swarm_peer(0);
    let expected = listing(share.parent().unwrap());
    assert!(
        wait_until(Duration::from_secs(60), || listing(&swarm.peer_dir(0))
            == expected),
        "the restarted peer completes the tree; stderr: {}",
        swarm.peer(0).errors()
    );
    same_bytes(&share, &dest);
    // Files closed and opened again are still known as the ones it checked.
    let out = swarm.peer(0).output();
    assert!(!out.contains("changed after it was checked"), "a false alarm");
    for (p, s, ns) in before {
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(
            (m.mtime(), m.mtime_nsec()),
            (s, ns),
            "{} was rewritten",
            p.display()
        );
    }
}

fn walk_files(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk_files(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn a_tree_file_edited_while_the_owner_serves_it_is_never_sent_unchecked() {
    let (mut swarm, share) = tree_swarm(1, 75);
    swarm.start_owner(1);
    // The owner binds its port before it hashes: it has hashed and opened the tree once it
    // names the swarm. Then a file changes, same size.
    let owner_ready = || {
        swarm
            .owner
            .as_ref()
            .is_some_and(|o| o.errors().contains(" is swarm "))
    };
    assert!(
        wait_until(Duration::from_secs(30), owner_ready),
        "the owner never named its swarm"
    );
    let edited = share.join("sizes/102400");
    let mut bytes = std::fs::read(&edited).unwrap();
    bytes[50_000] ^= 0xff;
    std::fs::write(&edited, &bytes).unwrap();
    swarm.start_swarm_peer(0);
    let dest = swarm.peer_dir(0).join("share");
    // Every other file arrives; the edited one never does, with either contents.
    let others = || {
        ["a/b/c/deep.bin", "z/mib", "bin/run", "top-one"]
            .iter()
            .all(|p| dest.join(p).exists())
    };
    assert!(
        wait_until(Duration::from_secs(30), others),
        "stderr: {}",
        swarm.peer(0).errors()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !dest.join("sizes/102400").exists(),
        "a file made of unchecked bytes"
    );
    let owner = swarm.owner.as_ref().unwrap().output();
    assert!(!owner.contains("panicked"), "{owner}");
}
