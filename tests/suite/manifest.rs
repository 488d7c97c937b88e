//! Split arithmetic at its boundaries, and the manifest's encoding and hashing.

use swarmshare::manifest::{
    check_file_name, hash_file, Layout, LayoutError, Manifest, ManifestError, CHUNK_SIZE,
};

fn layout(size: u64) -> (u32, u32, u32) {
    let l = Layout::for_size(size).unwrap();
    let last = l.chunk_len(l.chunk_count() - 1).unwrap();
    (l.chunk_size(), l.chunk_count(), last)
}

#[test]
fn split_boundaries() {
    // The smallest shareable file: 5 chunks of one byte.
    assert_eq!(layout(5), (1, 5, 1));
    // Just under 500 KiB: 5 chunks of ceil(size / 5).
    assert_eq!(layout(499_999), (100_000, 5, 99_999));
    // Exactly 500 KiB = 5 × 100 KiB.
    assert_eq!(layout(512_000), (CHUNK_SIZE, 5, CHUNK_SIZE));
    // One byte more: a sixth chunk of one byte.
    assert_eq!(layout(512_001), (CHUNK_SIZE, 6, 1));
    // An exact multiple of 100 KiB, and one byte over.
    assert_eq!(layout(20 * 102_400), (CHUNK_SIZE, 20, CHUNK_SIZE));
    assert_eq!(layout(20 * 102_400 + 1), (CHUNK_SIZE, 21, 1));
    // Between 400 KiB and 500 KiB the small-file rule still applies.
    assert_eq!(layout(450_000), (90_000, 5, 90_000));
    // Tiny sizes where ceil(size/5) would give fewer than 5 chunks use floor(size/5).
    assert_eq!(layout(6), (1, 6, 1));
    assert_eq!(layout(7), (1, 7, 1));
    assert_eq!(layout(16), (3, 6, 1));
    assert_eq!(layout(9), (2, 5, 1));
}

#[test]
fn tiny_sizes_split_as_the_readme_says() {
    // README "How files are split": (size, chunk size, chunks, last chunk), 5-20 bytes.
    let table = [
        (5, 1, 5, 1),
        (6, 1, 6, 1),
        (7, 1, 7, 1),
        (8, 1, 8, 1),
        (9, 2, 5, 1),
        (10, 2, 5, 2),
        (11, 2, 6, 1),
        (12, 2, 6, 2),
        (13, 3, 5, 1),
        (14, 3, 5, 2),
        (15, 3, 5, 3),
        (16, 3, 6, 1),
        (17, 4, 5, 1),
        (18, 4, 5, 2),
        (19, 4, 5, 3),
        (20, 4, 5, 4),
    ];
    for (size, chunk, count, last) in table {
        assert_eq!(layout(size), (chunk, count, last), "{size} bytes");
    }
    assert!(matches!(
        Layout::for_size(4),
        Err(LayoutError::TooSmall { size: 4 })
    ));
}

#[test]
fn never_fewer_than_five_nonempty_chunks() {
    for size in (5..3000).chain([511_999, 512_000, 512_001, 1 << 30]) {
        let l = Layout::for_size(size).unwrap();
        assert!(l.chunk_count() >= 5, "size {size}");
        let total: u64 = (0..l.chunk_count())
            .map(|id| u64::from(l.chunk_len(id).unwrap()))
            .sum();
        assert_eq!(total, size, "size {size}");
        assert!((0..l.chunk_count()).all(|id| l.chunk_len(id).unwrap() >= 1));
        assert_eq!(l.chunk_len(l.chunk_count()), None);
    }
}

#[test]
fn too_small_sizes_are_errors() {
    assert_eq!(Layout::for_size(0), Err(LayoutError::TooSmall { size: 0 }));
    assert_eq!(Layout::for_size(4), Err(LayoutError::TooSmall { size: 4 }));
    assert!(matches!(
        Layout::for_size(u64::MAX),
        Err(LayoutError::TooLarge { .. })
    ));
}

fn sample(dir: &std::path::Path, bytes: &[u8]) -> Manifest {
    let path = dir.join("f.bin");
    std::fs::write(&path, bytes).unwrap();
    hash_file(&path, "f.bin").unwrap()
}

#[test]
fn manifest_hashes_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let m = sample(dir.path(), &data);
    assert_eq!(m.layout().chunk_count(), 7);
    assert_eq!(m.file_hash(), blake3::hash(&data).as_bytes());
    // Chunk 0 is three whole subtrees of the file's BLAKE3 tree: 64 KiB at 0, 32 KiB at
    // 64 KiB, 4 KiB at 96 KiB; its hash is derived from their chaining values (PROTOCOL.md).
    let cv = |from: usize, to: usize| {
        use blake3::hazmat::HasherExt;
        let mut h = blake3::Hasher::new();
        h.set_input_offset(from as u64);
        h.update(&data[from..to]).finalize_non_root()
    };
    let pieces = [cv(0, 65_536), cv(65_536, 98_304), cv(98_304, 102_400)].concat();
    assert_eq!(
        *m.chunk_hash(0).unwrap(),
        blake3::derive_key(swarmshare::manifest::tree::CHUNK_CONTEXT, &pieces)
    );
    // A file under 500 KiB whose chunks are not whole 1 KiB blocks: chunks hashed whole.
    let small = sample(dir.path(), &data[..300_000]);
    assert_eq!(
        small.chunk_hash(1).unwrap(),
        blake3::hash(&data[60_000..120_000]).as_bytes()
    );
    assert!(m.verify_chunk(6, &data[6 * 102_400..]));
    assert!(!m.verify_chunk(6, &data[6 * 102_400 + 1..]), "wrong length");
    assert!(!m.verify_chunk(7, b"x"), "out of range");
    let decoded = Manifest::decode(m.encoded()).unwrap();
    assert_eq!(decoded, m);
    assert_eq!(decoded.swarm_id(), m.swarm_id());
    assert_eq!(m.swarm_id().0, *blake3::hash(m.encoded()).as_bytes());

    // One different byte anywhere in the file gives another swarm.
    let mut other = data.clone();
    other[650_000] ^= 1;
    let m2 = sample(dir.path(), &other);
    assert_ne!(m2.swarm_id(), m.swarm_id());
    assert_eq!(m2.chunk_hash(0), m.chunk_hash(0));
    assert_ne!(m2.chunk_hash(6), m.chunk_hash(6));
}

#[test]
fn manifest_decode_refuses_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let m = sample(dir.path(), &[7u8; 1000]);
    let good = m.encoded().to_vec();
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        Manifest::decode(&trailing),
        Err(ManifestError::Length { .. })
    ));
    assert!(matches!(
        Manifest::decode(&good[..good.len() - 1]),
        Err(ManifestError::Length { .. })
    ));
    assert!(matches!(
        Manifest::decode(&good[..10]),
        Err(ManifestError::Truncated { .. })
    ));
    let mut magic = good.clone();
    magic[0] = b'X';
    assert_eq!(Manifest::decode(&magic), Err(ManifestError::BadMagic));
    let mut count = good.clone();
    count[23] += 1; // chunk count 5 -> 6
    assert!(matches!(
        Manifest::decode(&count),
        Err(ManifestError::LayoutMismatch { .. })
    ));
}

#[test]
fn manifest_refuses_names_that_are_not_one_plain_file_name() {
    for bad in [
        "",
        ".",
        "..",
        "../x",
        "/etc/x",
        "a/b",
        "a\\b",
        "nul\0byte",
        "tab\tname",
    ] {
        assert!(check_file_name(bad).is_err(), "{bad:?} accepted");
    }
    assert!(check_file_name(&"x".repeat(256)).is_err());
    for good in ["file.bin", "movie 2026.mkv", ".hidden", "ünïcødé.txt"] {
        assert!(check_file_name(good).is_ok(), "{good:?} refused");
    }
    // A manifest carrying a bad name is refused at decode, with the reason.
    let dir = tempfile::tempdir().unwrap();
    let m = sample(dir.path(), &[1u8; 100]);
    let mut bytes = m.encoded().to_vec();
    // Same length name: "f.bin" -> "../xx" would need 5 bytes: "../ab".
    let name_at = 56;
    bytes[name_at..name_at + 5].copy_from_slice(b"../ab");
    let err = Manifest::decode(&bytes).unwrap_err();
    assert!(err.to_string().contains("path separator"), "{err}");
}

#[test]
fn a_version_1_manifest_is_refused_naming_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let m = sample(dir.path(), &[7u8; 600_000]);
    let mut old = m.encoded().to_vec();
    assert_eq!(old[4], 2, "this build writes manifest version 2");
    old[4] = 1;
    let err = Manifest::decode(&old).unwrap_err();
    assert_eq!(err, ManifestError::UnsupportedVersion(1));
    let line = err.to_string();
    assert!(
        line.contains("version 1") && line.contains("reads versions 2 and 3"),
        "{line}"
    );
    assert!(!line.contains('\n'));

    // A directory left by a version-1 run: `status` says why in one line, exits 2, and
    // leaves every file as it was.
    let node = dir.path().join("node");
    let store = node.join(".swarmshare");
    std::fs::create_dir_all(store.join("chunks")).unwrap();
    std::fs::write(store.join("manifest"), &old).unwrap();
    std::fs::write(store.join("chunks").join("0000000"), [7u8; 102_400]).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_swarmshare"))
        .args(["status", node.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("unsupported manifest version 1"), "{stderr}");
    assert_eq!(std::fs::read(store.join("manifest")).unwrap(), old);
    assert_eq!(
        std::fs::read(store.join("chunks").join("0000000")).unwrap(),
        [7u8; 102_400]
    );
}
