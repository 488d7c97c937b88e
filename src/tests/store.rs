//! The chunk store on disk: one data file written once, verification on open, chunk
//! files as views, refusal of another swarm, assembly that never overwrites a different
//! file, an owner's file changed behind its back.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use crate::chunk_store::{ChunkBody, ChunkFiles, ChunkStore, StoreError, PARTIAL, STORE_DIR};
use crate::manifest::{hash_file, ChunkId, Manifest};

fn manifest_of(dir: &Path, bytes: &[u8]) -> Arc<Manifest> {
    let src = dir.join("src.bin");
    fs::write(&src, bytes).unwrap();
    Arc::new(hash_file(&src, "out.bin").unwrap())
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 256) as u8).collect()
}

fn chunk<'a>(m: &Manifest, bytes: &'a [u8], id: ChunkId) -> &'a [u8] {
    let layout = m.layout();
    let start = layout.chunk_offset(id).unwrap() as usize;
    &bytes[start..start + layout.chunk_len(id).unwrap() as usize]
}

/// Writes chunks `ids` as a downloading peer does, synced.
fn receive(store: &ChunkStore, m: &Manifest, bytes: &[u8], ids: &[ChunkId]) {
    for &id in ids {
        let cvs = m.verify_chunk_pieces(id, chunk(m, bytes, id)).unwrap();
        store
            .write_chunk(id, chunk(m, bytes, id), &cvs, &mut Default::default())
            .unwrap();
    }
    store.sync().unwrap();
}

fn chunk_file(dir: &Path, id: ChunkId) -> std::path::PathBuf {
    dir.join(STORE_DIR).join("chunks").join(format!("{id:07}"))
}

#[test]
fn each_byte_is_written_once_into_the_partial_file_and_it_becomes_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(700_000);
    let m = manifest_of(tmp.path(), &bytes);
    let dir = tmp.path().join("node");
    let (store, have) = ChunkStore::open(&dir, Arc::clone(&m), ChunkFiles::Never).unwrap();
    assert!(have.is_empty());
    let partial = dir.join(STORE_DIR).join(PARTIAL);
    assert_eq!(fs::metadata(&partial).unwrap().len(), 700_000, "sized at once");
    // Out of order, the short last chunk included.
    receive(&store, &m, &bytes, &[6, 2, 0, 4, 1, 5, 3]);
    let out = store.assemble().unwrap();
    assert_eq!(out, dir.join("out.bin"));
    assert_eq!(fs::read(&out).unwrap(), bytes);
    assert!(!partial.exists(), "the partial file became the file");
    assert_eq!(store.assemble().unwrap(), out, "assembling again keeps it");
    // Served from the finished file now.
    let Some(ChunkBody::File { offset, len, .. }) = store.chunk_range(6) else {
        panic!("chunk 6 is not served from the file");
    };
    assert_eq!((offset, len), (6 * 102_400, 700_000 - 6 * 102_400));
    drop(store);
    let (_, have) = ChunkStore::open(&dir, m, ChunkFiles::Never).unwrap();
    assert!(
        have.is_complete(),
        "a finished peer holds everything after a restart"
    );
}

#[test]
fn a_restart_keeps_exactly_the_chunks_that_verify_in_the_partial_file() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(700_000);
    let m = manifest_of(tmp.path(), &bytes);
    let dir = tmp.path().join("node");
    let (store, _) = ChunkStore::open(&dir, Arc::clone(&m), ChunkFiles::Never).unwrap();
    receive(&store, &m, &bytes, &[0, 2, 4, 6]);
    drop(store);
    // A byte of chunk 2 flipped on the disk.
    let partial = dir.join(STORE_DIR).join(PARTIAL);
    let mut on_disk = fs::read(&partial).unwrap();
    on_disk[2 * 102_400 + 7] ^= 1;
    fs::write(&partial, on_disk).unwrap();
    fs::write(dir.join(STORE_DIR).join("tmp").join("leftover"), b"x").unwrap();
    let (store, have) = ChunkStore::open(&dir, Arc::clone(&m), ChunkFiles::Never).unwrap();
    assert_eq!(have.iter().collect::<Vec<_>>(), vec![0, 4, 6]);
    let summary = fs::read_to_string(store.summary_path()).unwrap();
    assert_eq!(crate::summary::parse(&summary, 7).unwrap(), have);
    assert!(!dir.join(STORE_DIR).join("tmp").join("leftover").exists());
    // The rest arrives; the file checks out.
    receive(&store, &m, &bytes, &[1, 2, 3, 5]);
    assert_eq!(fs::read(store.assemble().unwrap()).unwrap(), bytes);
}

#[test]
fn chunk_files_left_by_an_older_layout_are_taken_into_the_partial_file() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(700_000);
    let m = manifest_of(tmp.path(), &bytes);
    let dir = tmp.path().join("node");
    drop(ChunkStore::open(&dir, Arc::clone(&m), ChunkFiles::Never).unwrap());
    fs::remove_file(dir.join(STORE_DIR).join(PARTIAL)).unwrap();
    fs::write(chunk_file(&dir, 1), chunk(&m, &bytes, 1)).unwrap();
    fs::write(chunk_file(&dir, 3), b"short").unwrap();
    let (store, have) = ChunkStore::open(&dir, Arc::clone(&m), ChunkFiles::Never).unwrap();
    assert_eq!(have.iter().collect::<Vec<_>>(), vec![1]);
    assert!(!chunk_file(&dir, 3).exists(), "a damaged chunk file is removed");
    let partial = fs::read(dir.join(STORE_DIR).join(PARTIAL)).unwrap();
    assert_eq!(&partial[102_400..204_800], chunk(&m, &bytes, 1));
    drop(store);
}

#[test]
fn chunk_files_are_made_only_as_asked_and_only_of_synced_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(700_000);
    let m = manifest_of(tmp.path(), &bytes);
    for (policy, expect) in [(ChunkFiles::Copy, true), (ChunkFiles::Never, false)] {
        let dir = tmp.path().join(format!("node-{policy:?}"));
        let (store, _) = ChunkStore::open(&dir, Arc::clone(&m), policy).unwrap();
        receive(&store, &m, &bytes, &[2, 6]);
        store.make_chunk_files(&[2, 6]).unwrap();
        for id in [2, 6] {
            let file = fs::read(chunk_file(&dir, id));
            assert_eq!(file.is_ok(), expect, "{policy:?}: chunk file {id}");
            if let Ok(file) = file {
                assert_eq!(file, chunk(&m, &bytes, id));
            }
        }
        assert!(!chunk_file(&dir, 0).exists());
    }
}

#[test]
fn refuses_a_directory_holding_another_swarm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let a = manifest_of(tmp.path(), &data(1000));
    ChunkStore::open(&dir, a, ChunkFiles::Auto).unwrap();
    let b = manifest_of(tmp.path(), &data(2000));
    let err = ChunkStore::open(&dir, b, ChunkFiles::Auto).unwrap_err();
    assert!(matches!(err, StoreError::OtherSwarm { .. }), "{err}");
    assert!(err.to_string().contains("another file"), "{err}");
}

#[test]
fn never_overwrites_a_different_file_with_the_same_name() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(1000);
    let m = manifest_of(tmp.path(), &bytes);
    let dir = tmp.path().join("node");
    fs::create_dir(&dir).unwrap();
    // Another size: found out at the end, never written over.
    fs::write(dir.join("out.bin"), b"precious").unwrap();
    let (store, _) = ChunkStore::open(&dir, Arc::clone(&m), ChunkFiles::Never).unwrap();
    receive(&store, &m, &bytes, &[0, 1, 2, 3, 4]);
    assert!(matches!(store.assemble(), Err(StoreError::Occupied(_))));
    assert_eq!(fs::read(dir.join("out.bin")).unwrap(), b"precious");
    drop(store);
    // The same size, other bytes, and no partial file: refused when the store opens.
    fs::remove_file(dir.join(STORE_DIR).join(PARTIAL)).unwrap();
    fs::write(dir.join("out.bin"), vec![7u8; 1000]).unwrap();
    let err = ChunkStore::open(&dir, m, ChunkFiles::Never).unwrap_err();
    assert!(matches!(err, StoreError::Occupied(_)), "{err}");
    assert_eq!(fs::read(dir.join("out.bin")).unwrap(), vec![7u8; 1000]);
}

#[test]
fn refuses_a_store_directory_that_is_a_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manifest_of(tmp.path(), &data(1000));
    let dir = tmp.path().join("node");
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir_all(&dir).unwrap();
    fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.join(STORE_DIR)).unwrap();
    assert!(matches!(
        ChunkStore::open(&dir, m, ChunkFiles::Auto),
        Err(StoreError::NotADirectory(_))
    ));
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written through the link"
    );
}

#[test]
fn symlinks_where_the_partial_file_or_a_chunk_file_belongs_are_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(300_000);
    let m = manifest_of(tmp.path(), &bytes);
    let dir = tmp.path().join("node");
    drop(ChunkStore::open(&dir, Arc::clone(&m), ChunkFiles::Never).unwrap());
    // Both links point outside the directory, at files holding exactly the right bytes.
    let (outside_file, outside_chunk) = (tmp.path().join("outside-file"), tmp.path().join("outside-chunk"));
    fs::write(&outside_file, &bytes).unwrap();
    fs::write(&outside_chunk, chunk(&m, &bytes, 2)).unwrap();
    let partial = dir.join(STORE_DIR).join(PARTIAL);
    fs::remove_file(&partial).unwrap();
    std::os::unix::fs::symlink(&outside_file, &partial).unwrap();
    std::os::unix::fs::symlink(&outside_chunk, chunk_file(&dir, 2)).unwrap();
    let (store, have) = ChunkStore::open(&dir, m, ChunkFiles::Never).unwrap();
    assert!(have.is_empty(), "nothing behind a link counts as held");
    assert!(
        fs::symlink_metadata(&partial).unwrap().is_file(),
        "the link became a file"
    );
    assert!(
        fs::symlink_metadata(chunk_file(&dir, 2)).is_err(),
        "the chunk link was removed"
    );
    assert_eq!(fs::read(&outside_file).unwrap(), bytes, "its target is untouched");
    assert_eq!(fs::read(&outside_chunk).unwrap().len(), 60_000);
    drop(store);
}

#[test]
fn bytes_that_are_not_the_manifests_never_yield_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(700_000);
    let m = manifest_of(tmp.path(), &bytes);
    let dir = tmp.path().join("node");
    let (store, _) = ChunkStore::open(&dir, Arc::clone(&m), ChunkFiles::Never).unwrap();
    receive(&store, &m, &bytes, &[0, 1, 2, 4, 5, 6]);
    // Written by mistake, with their own pieces.
    let mut wrong = chunk(&m, &bytes, 3).to_vec();
    wrong[500] ^= 1;
    assert!(m.verify_chunk_pieces(3, &wrong).is_none());
    let cvs = crate::manifest::tree::piece_cvs(m.layout(), 3, &wrong);
    store
        .write_chunk(3, &wrong, &cvs, &mut Default::default())
        .unwrap();
    assert!(matches!(store.assemble(), Err(StoreError::FileHashMismatch)));
    assert!(!dir.join("out.bin").exists());
}

#[test]
fn an_owner_serves_its_file_and_stops_trusting_it_once_it_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(600_000);
    let m = manifest_of(tmp.path(), &bytes);
    let src = tmp.path().join("src.bin");
    let before = fs::metadata(&src).unwrap();
    let dir = tmp.path().join("owner");
    let (store, have) = ChunkStore::open_owner(
        &dir,
        Arc::clone(&m),
        &src,
        &before,
        std::time::SystemTime::now(),
        ChunkFiles::Never,
    )
    .unwrap();
    assert!(have.is_complete());
    assert!(
        fs::read_dir(dir.join(STORE_DIR).join("chunks"))
            .unwrap()
            .next()
            .is_none(),
        "no copy of the file is made"
    );
    assert!(matches!(
        store.chunk_range(1),
        Some(ChunkBody::File { offset: 102_400, .. })
    ));
    // Changed in place: chunk 1 differs now, chunk 0 does not.
    let mut changed = bytes.clone();
    changed[102_400 + 9] ^= 1;
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(&src, &changed).unwrap();
    assert!(
        store.chunk_range(0).is_none(),
        "a changed file is read and verified first"
    );
    assert_eq!(
        store.read_verified(0).unwrap().as_deref(),
        Some(chunk(&m, &bytes, 0))
    );
    assert_eq!(
        store.read_verified(1).unwrap(),
        None,
        "a changed chunk is never sent"
    );
    drop(store);
    // Changed between hashing and opening: refused.
    let err = ChunkStore::open_owner(
        &dir,
        m,
        &src,
        &before,
        std::time::SystemTime::now(),
        ChunkFiles::Never,
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::SourceChanged(_)), "{err}");
}

/// The last chunks stored are sent from memory, the bytes that were
/// verified; older ones from the data file; a chunk that failed to verify is neither.
#[tokio::test]
async fn the_last_chunks_received_are_sent_from_memory() {
    use crate::holdings::{Added, Holdings, RECENT};
    let tmp = tempfile::tempdir().unwrap();
    let count = RECENT as u32 + 3;
    let bytes = data(count as usize * 102_400);
    let m = manifest_of(tmp.path(), &bytes);
    let (store, have) =
        ChunkStore::open(&tmp.path().join("node"), Arc::clone(&m), ChunkFiles::Never).unwrap();
    let holdings = Arc::new(Holdings::new(store, have));
    let add = |id: ChunkId, data: Vec<u8>| {
        let holdings = Arc::clone(&holdings);
        async move {
            let done = holdings
                .start_add(id, bytes::Bytes::from(data))
                .wait()
                .await
                .unwrap();
            holdings.settle(done).await.unwrap()
        }
    };
    assert!(matches!(add(1, vec![0; 102_400]).await, Added::HashMismatch));
    assert!(
        holdings.read(1).await.unwrap().is_none(),
        "a bad chunk is not held"
    );
    for id in 0..count {
        assert!(matches!(
            add(id, chunk(&m, &bytes, id).to_vec()).await,
            Added::New
        ));
    }
    for id in 0..count {
        match holdings.read(id).await.unwrap() {
            Some(ChunkBody::Memory(data)) if id >= count - RECENT as u32 => {
                assert_eq!(&data[..], chunk(&m, &bytes, id));
            }
            Some(ChunkBody::File { .. }) if id < count - RECENT as u32 => {}
            other => panic!("chunk {id}: {other:?}"),
        }
    }
}

/// The descriptor table's size, from `/proc/self/status`.
fn fd_table_size() -> usize {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find_map(|l| l.strip_prefix("FDSize:")).unwrap();
    line.trim().parse().unwrap()
}

#[test]
fn a_store_of_many_files_has_room_for_their_descriptors_from_the_start() {
    // Up to the open limit plus room for sockets: 4,000 files here (not 20,000: the
    // table never shrinks, and other tests share the process).
    crate::chunk_store::reserve_descriptors(4_000);
    let want = 4_000.min(crate::chunk_store::open_limit()) + 512;
    assert!(fd_table_size() >= want, "{} < {want}", fd_table_size());
}
