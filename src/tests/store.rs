//! The chunk store on disk: layout, verification on open, refusal of another swarm,
//! assembly that never overwrites a different file.

use std::fs;
use std::sync::Arc;

use crate::chunk_store::{ChunkStore, StoreError, STORE_DIR};
use crate::manifest::{hash_file, Manifest};

fn manifest_of(dir: &std::path::Path, bytes: &[u8]) -> Arc<Manifest> {
    let src = dir.join("src.bin");
    fs::write(&src, bytes).unwrap();
    Arc::new(hash_file(&src, "out.bin").unwrap())
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 256) as u8).collect()
}

#[test]
fn import_assemble_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(300_000);
    let m = manifest_of(tmp.path(), &bytes);
    let dir = tmp.path().join("node");
    let (store, mut have) = ChunkStore::open(&dir, Arc::clone(&m)).unwrap();
    assert!(have.is_empty());
    store.import(&tmp.path().join("src.bin"), &mut have).unwrap();
    assert!(have.is_complete());
    for id in 0..5 {
        assert!(dir
            .join(STORE_DIR)
            .join("chunks")
            .join(format!("{id:07}"))
            .is_file());
    }
    let summary = fs::read_to_string(store.summary_path()).unwrap();
    assert_eq!(crate::summary::parse(&summary, 5).unwrap(), have);
    let out = store.assemble(None).unwrap();
    assert_eq!(out, dir.join("out.bin"));
    assert_eq!(fs::read(&out).unwrap(), bytes);
    // Assembling again keeps the identical file.
    assert_eq!(store.assemble(None).unwrap(), out);

    // Reopen after damage: a flipped byte and a truncated chunk are dropped, the rest kept.
    let chunk = |id: u32| dir.join(STORE_DIR).join("chunks").join(format!("{id:07}"));
    let mut c1 = fs::read(chunk(1)).unwrap();
    c1[10] ^= 0xff;
    fs::write(chunk(1), c1).unwrap();
    fs::write(chunk(3), b"short").unwrap();
    fs::write(dir.join(STORE_DIR).join("tmp").join("leftover"), b"x").unwrap();
    drop(store);
    let (_store, have) = ChunkStore::open(&dir, m).unwrap();
    assert_eq!(have.iter().collect::<Vec<_>>(), vec![0, 2, 4]);
    assert!(!chunk(1).exists() && !chunk(3).exists());
    assert!(!dir.join(STORE_DIR).join("tmp").join("leftover").exists());
}

#[test]
fn refuses_a_directory_holding_another_swarm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let a = manifest_of(tmp.path(), &data(1000));
    ChunkStore::open(&dir, a).unwrap();
    let b = manifest_of(tmp.path(), &data(2000));
    let err = ChunkStore::open(&dir, b).unwrap_err();
    assert!(matches!(err, StoreError::OtherSwarm { .. }), "{err}");
    assert!(err.to_string().contains("another file"), "{err}");
}

#[test]
fn never_overwrites_a_different_file_with_the_same_name() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manifest_of(tmp.path(), &data(1000));
    let dir = tmp.path().join("node");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("out.bin"), b"precious").unwrap();
    let (store, mut have) = ChunkStore::open(&dir, m).unwrap();
    store.import(&tmp.path().join("src.bin"), &mut have).unwrap();
    assert!(matches!(store.assemble(None), Err(StoreError::Occupied(_))));
    assert_eq!(fs::read(dir.join("out.bin")).unwrap(), b"precious");
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
        ChunkStore::open(&dir, m),
        Err(StoreError::NotADirectory(_))
    ));
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written through the link"
    );
}

#[test]
fn a_symlinked_chunk_file_is_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(300_000);
    let m = manifest_of(tmp.path(), &bytes);
    let dir = tmp.path().join("node");
    let (store, mut have) = ChunkStore::open(&dir, Arc::clone(&m)).unwrap();
    store.import(&tmp.path().join("src.bin"), &mut have).unwrap();
    // Chunk 2's file becomes a symlink to a file outside the directory, holding chunk 2's
    // exact bytes (so only the link itself is wrong).
    let outside = tmp.path().join("outside");
    fs::write(&outside, store.read_chunk(2).unwrap()).unwrap();
    let chunk = store.chunk_path(2);
    fs::remove_file(&chunk).unwrap();
    std::os::unix::fs::symlink(&outside, &chunk).unwrap();
    assert!(
        store.read_chunk(2).is_err(),
        "reading a chunk does not follow a symlink"
    );
    drop(store);
    let (_, have) = ChunkStore::open(&dir, m).unwrap();
    assert!(!have.contains(2), "a symlinked chunk does not count as held");
    assert!(fs::symlink_metadata(&chunk).is_err(), "the symlink was removed");
    assert_eq!(
        fs::read(&outside).unwrap().len(),
        60_000,
        "its target is untouched"
    );
}

#[test]
fn a_chunk_file_is_opened_for_sending_only_at_its_chunk_length() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(600_000);
    let m = manifest_of(tmp.path(), &bytes);
    let dir = tmp.path().join("node");
    let (store, mut have) = ChunkStore::open(&dir, Arc::clone(&m)).unwrap();
    store.import(&tmp.path().join("src.bin"), &mut have).unwrap();
    // Six chunks of 102,400 bytes, the last one 600,000 - 5 × 102,400.
    let (_, len) = store.open_chunk(5).unwrap();
    assert_eq!(len, 600_000 - 5 * 102_400);
    let (_, len) = store.open_chunk(0).unwrap();
    assert_eq!(len, 102_400);
    // Changed behind the store's back: a frame of that length must never be promised.
    let path = store.chunk_path(1);
    fs::write(&path, &bytes[..1000]).unwrap();
    let err = store.open_chunk(1).unwrap_err().to_string();
    assert!(err.contains("1000 bytes") && err.contains("102400"), "{err}");
    fs::write(&path, data(102_401)).unwrap();
    assert!(store.open_chunk(1).is_err(), "a longer file is refused too");
    fs::remove_file(&path).unwrap();
    assert!(
        store.open_chunk(1).is_err(),
        "a missing file is an error, not an empty chunk"
    );
}

#[test]
fn a_file_joined_partly_as_chunks_arrive_and_partly_at_the_end_checks_out() {
    // 700,000 bytes: 100 KiB chunks, so the hash comes from the chunks' tree pieces.
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(700_000);
    let m = manifest_of(tmp.path(), &bytes);
    let dir = tmp.path().join("node");
    let (store, mut have) = ChunkStore::open(&dir, Arc::clone(&m)).unwrap();
    store.import(&tmp.path().join("src.bin"), &mut have).unwrap();
    let layout = *m.layout();
    let chunk = |id: u32| {
        let start = layout.chunk_offset(id).unwrap() as usize;
        &bytes[start..start + layout.chunk_len(id).unwrap() as usize]
    };
    let mut partial = store.start_partial().unwrap();
    // Out of order, the short last chunk included; the rest is copied in by `assemble`.
    for id in [6, 2, 0, 4] {
        let cvs = m.verify_chunk_pieces(id, chunk(id)).unwrap();
        store.write_partial(&mut partial, id, chunk(id), &cvs).unwrap();
    }
    let out = store.assemble(Some(partial)).unwrap();
    assert_eq!(fs::read(&out).unwrap(), bytes);

    // Bytes that are not the manifest's (written by mistake, with their own pieces) never
    // yield a file.
    fs::remove_file(&out).unwrap();
    let mut partial = store.start_partial().unwrap();
    let mut wrong = chunk(3).to_vec();
    wrong[500] ^= 1;
    assert!(m.verify_chunk_pieces(3, &wrong).is_none());
    let cvs = crate::manifest::tree::piece_cvs(&layout, 3, &wrong);
    store.write_partial(&mut partial, 3, &wrong, &cvs).unwrap();
    assert!(matches!(
        store.assemble(Some(partial)),
        Err(StoreError::FileHashMismatch)
    ));
    assert!(!out.exists());
}
