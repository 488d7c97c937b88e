//! Foreign entries in a peer's store: whatever kind of entry someone leaves in
//! `.swarmshare/chunks/` or `.swarmshare/tmp/`, a restart deals with it and completes, and
//! nothing outside the directory is touched. Real processes, bounded time.

use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::durability::{start_ring, start_ring_with};
use super::protocol::STORE_DIR;
use super::swarm::Swarm;

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

fn socket(path: &Path) {
    // The socket file stays once the listener is dropped.
    drop(UnixListener::bind(path).unwrap());
}

/// Everything outside the peer's directory the test planted, to check it is untouched.
struct Outside {
    file: std::path::PathBuf,
    file_bytes: Vec<u8>,
    dir: std::path::PathBuf,
    fifo: std::path::PathBuf,
}

impl Outside {
    fn plant(root: &Path, chunk5: Vec<u8>) -> Outside {
        let base = root.join("outside");
        fs::create_dir_all(base.join("dir")).unwrap();
        fs::write(base.join("dir").join("keep"), b"keep me").unwrap();
        let file = base.join("file");
        fs::write(&file, &chunk5).unwrap();
        let fifo = base.join("fifo");
        mkfifo(&fifo);
        Outside {
            file,
            file_bytes: chunk5,
            dir: base.join("dir"),
            fifo,
        }
    }

    fn assert_untouched(&self) {
        assert_eq!(fs::read(&self.file).unwrap(), self.file_bytes, "outside file");
        assert_eq!(
            fs::read(self.dir.join("keep")).unwrap(),
            b"keep me",
            "outside dir"
        );
        assert_eq!(
            fs::read_dir(&self.dir).unwrap().count(),
            1,
            "nothing added outside"
        );
        let t = fs::symlink_metadata(&self.fifo).unwrap().file_type();
        assert!(t.is_fifo(), "outside FIFO still a FIFO");
    }
}

/// Peer `i` stopped cleanly, after a ring of two completed.
fn stop_after_completing(swarm: &mut Swarm, i: usize) {
    swarm.wait_all_complete(Duration::from_secs(60));
    assert!(swarm
        .peer(i)
        .terminate(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
}

/// Peer `i` started again without its file: it completes with the original's bytes.
fn restart_and_complete(swarm: &mut Swarm, i: usize) {
    fs::remove_file(swarm.peer_file(i)).unwrap();
    swarm.start_peer(i, swarm.ring_neighbor(i));
    swarm.wait_all_complete(Duration::from_secs(60));
    assert_eq!(
        fs::read(swarm.peer_file(i)).unwrap(),
        fs::read(&swarm.file).unwrap()
    );
}

#[test]
fn every_kind_of_foreign_entry_is_dealt_with_and_the_restart_completes() {
    // Chunk files on any filesystem (copies where blocks cannot be shared), as the seed
    // pictures them.
    let (mut swarm, manifest) = start_ring_with(2_000_000, 2, 51, &["--chunk-files", "copy"]);
    stop_after_completing(&mut swarm, 0);

    let dir = swarm.peer_dir(0);
    let store = dir.join(STORE_DIR);
    let chunks = store.join("chunks");
    let tmp = store.join("tmp");
    let chunk = |id: u32| chunks.join(format!("{id:07}"));
    let outside = Outside::plant(dir.parent().unwrap(), fs::read(chunk(5)).unwrap());
    for id in 1..=9 {
        fs::remove_file(chunk(id)).unwrap();
    }
    fs::create_dir(chunk(1)).unwrap();
    fs::write(chunk(1).join("notes"), b"someone's notes").unwrap();
    fs::create_dir(chunk(2)).unwrap();
    mkfifo(&chunk(3));
    socket(&chunk(4));
    symlink(&outside.file, chunk(5)).unwrap();
    symlink(&outside.dir, chunk(6)).unwrap();
    symlink(&outside.fifo, chunk(7)).unwrap();
    fs::write(chunk(8), vec![7u8; 150_000]).unwrap();
    fs::write(chunk(9), b"short").unwrap();
    fs::write(chunks.join("README.txt"), b"not a chunk").unwrap();
    fs::create_dir(tmp.join("sub")).unwrap();
    fs::write(tmp.join("sub").join("x"), b"x").unwrap();
    mkfifo(&tmp.join("fifo"));
    socket(&tmp.join("sock"));
    symlink(&outside.file, tmp.join("to-file")).unwrap();
    symlink(&outside.dir, tmp.join("to-dir")).unwrap();
    symlink(&outside.fifo, tmp.join("to-fifo")).unwrap();

    restart_and_complete(&mut swarm, 0);
    for id in 1..=9 {
        let meta = fs::symlink_metadata(chunk(id)).unwrap();
        assert!(meta.is_file(), "chunk {id} is a chunk file again");
        assert!(
            manifest.verify_chunk(id, &fs::read(chunk(id)).unwrap()),
            "chunk {id}"
        );
    }
    // The directory that held data was moved aside, its contents intact; the empty one too.
    let aside = store.join("aside");
    assert_eq!(
        fs::read(aside.join("0000001.1").join("notes")).unwrap(),
        b"someone's notes"
    );
    assert!(aside.join("0000002.1").is_dir());
    assert_eq!(
        fs::read(chunks.join("README.txt")).unwrap(),
        b"not a chunk",
        "left alone"
    );
    let leftovers: Vec<_> = fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(leftovers.is_empty(), "tmp emptied: {leftovers:?}");
    outside.assert_untouched();
    let log = swarm.peer(0).output() + &swarm.peer(0).errors();
    assert!(log.contains("left alone"), "foreign names reported: {log}");
}

#[test]
fn store_folders_that_are_not_directories_are_replaced_and_the_restart_completes() {
    let (mut swarm, _) = start_ring(1_000_000, 2, 52);
    stop_after_completing(&mut swarm, 1);
    let store = swarm.peer_dir(1).join(STORE_DIR);
    let outside = Outside::plant(swarm.peer_dir(1).parent().unwrap(), b"chunk".to_vec());
    // `tmp` a symlink to a directory outside; `chunks` a FIFO.
    fs::remove_dir_all(store.join("tmp")).unwrap();
    symlink(&outside.dir, store.join("tmp")).unwrap();
    fs::remove_dir_all(store.join("chunks")).unwrap();
    mkfifo(&store.join("chunks"));
    restart_and_complete(&mut swarm, 1);
    assert!(fs::symlink_metadata(store.join("tmp")).unwrap().is_dir());
    assert!(fs::symlink_metadata(store.join("chunks")).unwrap().is_dir());
    outside.assert_untouched();

    // Then both as regular files: `tmp` is removed, `chunks` (it may be someone's) moved aside.
    stop_after_completing(&mut swarm, 1);
    fs::remove_dir_all(store.join("tmp")).unwrap();
    fs::write(store.join("tmp"), b"a file").unwrap();
    fs::remove_dir_all(store.join("chunks")).unwrap();
    fs::write(store.join("chunks"), b"precious").unwrap();
    restart_and_complete(&mut swarm, 1);
    assert!(fs::symlink_metadata(store.join("tmp")).unwrap().is_dir());
    assert_eq!(
        fs::read(store.join("aside").join("chunks.1")).unwrap(),
        b"precious"
    );
}
