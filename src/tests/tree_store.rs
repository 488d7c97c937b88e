//! A tree's files on a downloading peer's disk: a small file whose bytes come whole in
//! one chunk is made without a name and appears at its path, whole, with the commit that
//! makes it durable; a file spanning chunks is downloaded under `parts/` and moved.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::chunk_store::{ChunkFiles, ChunkStore, STORE_DIR};
use crate::manifest::{manifest_for, ChunkId, EntryKind, Manifest};

fn write(path: &Path, len: usize, seed: usize, executable: bool) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let bytes: Vec<u8> = (0..len).map(|i| ((i * 7 + seed * 13) % 251) as u8).collect();
    fs::write(path, bytes).unwrap();
    if executable {
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// The swarm's byte stream: the tree's files one after the other.
fn stream(share: &Path, m: &Manifest) -> Vec<u8> {
    let mut all = Vec::new();
    for e in m.tree().unwrap().entries() {
        if let EntryKind::File { offset, .. } = e.kind {
            assert_eq!(offset, all.len() as u64);
            all.extend(fs::read(share.join(&e.path)).unwrap());
        }
    }
    all
}

fn receive(store: &ChunkStore, m: &Manifest, all: &[u8], id: ChunkId) {
    let layout = m.layout();
    let start = layout.chunk_offset(id).unwrap() as usize;
    let bytes = &all[start..start + layout.chunk_len(id).unwrap() as usize];
    let cvs = m.verify_chunk_pieces(id, bytes).unwrap();
    store
        .write_chunk(id, bytes, &cvs, &mut Default::default())
        .unwrap();
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn small_files_whole_in_a_chunk_appear_at_their_paths_only_once_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    // 30 files of 3,000 bytes and an executable of 5,000: all in chunk 0. Then a file of
    // 600,000 bytes from chunk 0 to chunk 5.
    for i in 0..30 {
        write(&share.join(format!("d/f{i:02}")), 3_000, i, false);
    }
    write(&share.join("e/run.sh"), 5_000, 99, true);
    write(&share.join("z/big.bin"), 600_000, 7, false);
    let m = Arc::new(manifest_for(&share).unwrap());
    assert_eq!(m.layout().chunk_size(), 102_400);
    let all = stream(&share, &m);
    let dir = tmp.path().join("node");
    let (store, have) = ChunkStore::open(&dir, Arc::clone(&m), ChunkFiles::Never).unwrap();
    assert!(have.is_empty());
    let parts = dir.join(STORE_DIR).join("parts");
    assert_eq!(names_in(&parts), Vec::<String>::new());

    receive(&store, &m, &all, 0);
    // The small files are whole, but nowhere by name until the commit; the big file is
    // downloading under parts/.
    assert_eq!(names_in(&parts).len(), 1, "{:?}", names_in(&parts));
    assert!(!dir.join("share/d/f00").exists());
    assert!(!dir.join("share/e").exists());
    // Served from memory meanwhile (the open file without a name).
    assert!(store.chunk_range(0).is_some(), "chunk 0 cannot be read back");

    store.sync().unwrap();
    for i in 0..30 {
        let path = format!("d/f{i:02}");
        assert_eq!(
            fs::read(dir.join("share").join(&path)).unwrap(),
            fs::read(share.join(&path)).unwrap()
        );
    }
    let mode = |p: &str| {
        fs::metadata(dir.join("share").join(p))
            .unwrap()
            .permissions()
            .mode()
    };
    assert_eq!(
        fs::read(dir.join("share/e/run.sh")).unwrap(),
        fs::read(share.join("e/run.sh")).unwrap()
    );
    assert_ne!(mode("e/run.sh") & 0o111, 0, "the executable bit is kept");
    assert_eq!(mode("d/f00") & 0o111, 0);
    assert_eq!(names_in(&parts).len(), 1, "only the big file is downloading");
    assert!(!dir.join("share/z/big.bin").exists());

    for id in 1..m.layout().chunk_count() {
        receive(&store, &m, &all, id);
    }
    store.sync().unwrap();
    assert_eq!(
        fs::read(dir.join("share/z/big.bin")).unwrap(),
        fs::read(share.join("z/big.bin")).unwrap()
    );
    // Read back from their places, as a restart would.
    drop(store);
    let (_, have) = ChunkStore::open(&dir, m, ChunkFiles::Never).unwrap();
    assert!(have.is_complete());
}

#[test]
fn small_files_whole_in_a_chunk_not_committed_before_a_crash_are_fetched_again() {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    // 200 files of 3,000 bytes: 34 whole in chunk 0, the 35th across chunks 0 and 1.
    for i in 0..200 {
        write(&share.join(format!("f{i:03}")), 3_000, i, false);
    }
    let m = Arc::new(manifest_for(&share).unwrap());
    assert_eq!(m.layout().chunk_size(), 102_400);
    let all = stream(&share, &m);
    let dir = tmp.path().join("node");
    let (store, _) = ChunkStore::open(&dir, Arc::clone(&m), ChunkFiles::Never).unwrap();
    receive(&store, &m, &all, 0);
    store.sync().unwrap();
    receive(&store, &m, &all, 1);
    // A crash: no commit after chunk 1.
    drop(store);
    let (store, have) = ChunkStore::open(&dir, Arc::clone(&m), ChunkFiles::Never).unwrap();
    assert!(have.contains(0), "chunk 0 was committed");
    assert!(!have.contains(1), "chunk 1's files never got a name");
    let placed = names_in(&dir.join("share"));
    assert_eq!(placed.len(), 34, "the files whole in chunk 0: {placed:?}");
    assert_eq!(placed.last().map(String::as_str), Some("f033"));
    // Only the files across chunks (0 and 1, 1 and 2) are under parts/, by name.
    assert_eq!(
        names_in(&dir.join(STORE_DIR).join("parts")),
        ["0000034", "0000068"]
    );
    // Fetched again, they are placed as before.
    receive(&store, &m, &all, 1);
    store.sync().unwrap();
    assert_eq!(names_in(&dir.join("share")).len(), 68);
    assert_eq!(
        fs::read(dir.join("share/f050")).unwrap(),
        fs::read(share.join("f050")).unwrap()
    );
}

/// 200 files of 3,000 bytes (34 whole in chunk 0, the 35th across chunks 0 and 1) in a
/// temporary folder: the folder, the tree, its manifest and stream, a node directory.
type Files200 = (tempfile::TempDir, PathBuf, Arc<Manifest>, Vec<u8>, PathBuf);

fn files_200() -> Files200 {
    let tmp = tempfile::tempdir().unwrap();
    let share = tmp.path().join("share");
    for i in 0..200 {
        write(&share.join(format!("f{i:03}")), 3_000, i, false);
    }
    let m = Arc::new(manifest_for(&share).unwrap());
    let all = stream(&share, &m);
    let dir = tmp.path().join("node");
    (tmp, share, m, all, dir)
}

#[test]
fn a_commit_stopped_among_its_moves_leaves_every_chunk_whole_for_a_restart() {
    let (_tmp, share, m, all, dir) = files_200();
    let (store, _) = ChunkStore::open(&dir, Arc::clone(&m), ChunkFiles::Never).unwrap();
    // Something of another's where the sixth file of chunk 0 belongs: the commit moves
    // five files into place and stops there.
    fs::create_dir_all(dir.join("share")).unwrap();
    fs::write(dir.join("share/f005"), b"not ours").unwrap();
    receive(&store, &m, &all, 0);
    assert!(store.sync().is_err());
    assert_eq!(names_in(&dir.join("share")).len(), 6);
    let placed: Vec<_> = (0..5)
        .map(|i| {
            fs::metadata(dir.join(format!("share/f{i:03}")))
                .unwrap()
                .modified()
                .unwrap()
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // The process dies here, and with it chunk 0's files that had no name yet. The
    // obstacle is taken away; the next start finds the commit's record, takes the five
    // files it had placed back to parts/ (ours, not someone else's), and fetches chunk 0
    // again.
    drop(store);
    fs::remove_file(dir.join("share/f005")).unwrap();
    let (store, have) = ChunkStore::open(&dir, Arc::clone(&m), ChunkFiles::Never).unwrap();
    assert!(!have.contains(0), "chunk 0 lost the files that had no name");
    assert_eq!(names_in(&dir.join("share")), Vec::<String>::new());
    assert!(!dir.join(STORE_DIR).join("parts/placing").exists());
    receive(&store, &m, &all, 0);
    store.sync().unwrap();
    assert_eq!(names_in(&dir.join("share")).len(), 34);
    for f in ["f000", "f004", "f020"] {
        assert_eq!(
            fs::read(dir.join("share").join(f)).unwrap(),
            fs::read(share.join(f)).unwrap()
        );
    }
    // The five it had placed held their bytes: the chunk fetched again leaves them as
    // they were.
    for (i, before) in placed.iter().enumerate() {
        let now = fs::metadata(dir.join(format!("share/f{i:03}")))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(now, *before, "f{i:03} was rewritten");
    }
}

#[test]
fn files_a_stopped_commit_had_placed_are_verified_again_and_not_rewritten() {
    let (_tmp, _share, m, all, dir) = files_200();
    let (store, _) = ChunkStore::open(&dir, Arc::clone(&m), ChunkFiles::Never).unwrap();
    receive(&store, &m, &all, 0);
    store.sync().unwrap();
    assert_eq!(names_in(&dir.join("share")).len(), 34);
    let before = fs::metadata(dir.join("share/f003")).unwrap().modified().unwrap();
    drop(store);
    // As if the process died after the moves and before the record went: it lists the
    // first ten files.
    let record: Vec<u8> = (0u32..10)
        .flat_map(|i| {
            use std::os::unix::fs::MetadataExt;
            let m = fs::metadata(dir.join(format!("share/f{i:03}"))).unwrap();
            [
                &i.to_be_bytes()[..],
                &m.dev().to_be_bytes(),
                &m.ino().to_be_bytes(),
            ]
            .concat()
        })
        .collect();
    fs::write(dir.join(STORE_DIR).join("parts/placing"), record).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (store, have) = ChunkStore::open(&dir, Arc::clone(&m), ChunkFiles::Never).unwrap();
    assert!(have.contains(0));
    assert_eq!(names_in(&dir.join("share")).len(), 34, "placed again at once");
    assert_eq!(
        names_in(&dir.join(STORE_DIR).join("parts")).len(),
        1,
        "only the file across chunks 0 and 1"
    );
    assert_eq!(
        fs::metadata(dir.join("share/f003")).unwrap().modified().unwrap(),
        before
    );
    drop(store);
}

#[test]
fn a_tree_trimmed_while_it_downloaded_is_not_called_complete() {
    let (_tmp, _share, m, all, dir) = files_200();
    let (store, _) = ChunkStore::open(&dir, Arc::clone(&m), ChunkFiles::Never).unwrap();
    receive(&store, &m, &all, 0);
    store.sync().unwrap();
    // The user moves a finished file away; the rest arrives.
    fs::rename(dir.join("share/f010"), dir.join("elsewhere")).unwrap();
    for id in 1..m.layout().chunk_count() {
        receive(&store, &m, &all, id);
    }
    let err = store.assemble().unwrap_err().to_string();
    assert!(err.contains("f010") && err.contains("moved or removed"), "{err}");
    // Put back, it is complete.
    fs::rename(dir.join("elsewhere"), dir.join("share/f010")).unwrap();
    store.assemble().unwrap();
}

#[test]
fn a_file_put_where_a_stopped_commit_was_to_place_one_is_never_taken() {
    let (_tmp, _share, m, all, dir) = files_200();
    let (store, _) = ChunkStore::open(&dir, Arc::clone(&m), ChunkFiles::Never).unwrap();
    // Someone's file, of the very size, where the sixth file of chunk 0 belongs: the commit
    // records chunk 0's files, places five and stops there.
    fs::create_dir_all(dir.join("share")).unwrap();
    let theirs = vec![7u8; 3_000];
    fs::write(dir.join("share/f005"), &theirs).unwrap();
    receive(&store, &m, &all, 0);
    assert!(store.sync().is_err());
    drop(store);
    // Restarted with it still there: the record lists f005, but that file is not the one
    // the commit would have placed, so it stays where it is, untouched, and the start
    // refuses to go on over it.
    let err = ChunkStore::open(&dir, Arc::clone(&m), ChunkFiles::Never).unwrap_err();
    assert!(err.to_string().contains("f005"), "{err}");
    assert_eq!(fs::read(dir.join("share/f005")).unwrap(), theirs);
}
