//! Trees in the manifest: what a directory's manifest lists, its byte format (written out
//! here independently of the encoder), and every hostile table refused naming its entry.

use std::os::unix::fs::PermissionsExt;

use swarmshare::manifest::entries::{MAX_DEPTH, MAX_ENTRIES, MAX_PATH_LEN};
use swarmshare::manifest::{manifest_for, EntryKind, Layout, Manifest, ManifestError, Tree};

/// An entry as the tests write it: path, and for a file its size and executable bit.
type Spec<'a> = (&'a str, Option<(u64, bool)>);

fn file(path: &str, size: u64) -> Spec<'_> {
    (path, Some((size, false)))
}

fn dir(path: &str) -> Spec<'_> {
    (path, None)
}

/// A version-3 manifest encoded by hand from PROTOCOL.md ("Trees"), not by the encoder:
/// the entries as given, in the order given, chunk hashes all zero.
fn raw(name: &str, entries: &[Spec]) -> Vec<u8> {
    let mut table = Vec::new();
    let mut total = 0u64;
    for (path, f) in entries {
        table.push(match f {
            Some((_, false)) => 0,
            Some((_, true)) => 1,
            None => 2,
        });
        table.extend_from_slice(&(path.len() as u16).to_be_bytes());
        table.extend_from_slice(path.as_bytes());
        if let Some((size, _)) = f {
            table.extend_from_slice(&size.to_be_bytes());
            total += size;
        }
    }
    let layout = Layout::for_size(total).unwrap();
    let mut m = b"SWMF".to_vec();
    m.extend_from_slice(&[3, 0]);
    m.extend_from_slice(&(name.len() as u16).to_be_bytes());
    m.extend_from_slice(&total.to_be_bytes());
    m.extend_from_slice(&layout.chunk_size().to_be_bytes());
    m.extend_from_slice(&layout.chunk_count().to_be_bytes());
    m.extend_from_slice(&[0u8; 32]);
    m.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    m.extend_from_slice(&(table.len() as u32).to_be_bytes());
    m.extend_from_slice(name.as_bytes());
    m.extend_from_slice(&table);
    m.extend_from_slice(&vec![0u8; 32 * layout.chunk_count() as usize]);
    m
}

fn build(entries: &[Spec]) -> Result<Tree, ManifestError> {
    Tree::new(entries.iter().map(|(p, f)| (p.to_string(), *f)).collect())
}

/// The entry a refusal names, and its reason.
fn refused(entries: &[Spec]) -> (String, String) {
    let from_table = build(entries).expect_err("the table should be refused");
    let from_bytes = Manifest::decode(&raw("tree", entries)).expect_err("the manifest should be refused");
    assert_eq!(
        from_table, from_bytes,
        "the encoder's checks and the decoder's agree"
    );
    match from_bytes {
        ManifestError::BadEntry { path, reason } => {
            // The one-line message prints the path escaped.
            let line = from_table.to_string();
            assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line:?}");
            (path, reason)
        }
        other => panic!("expected a refused entry, got {other}"),
    }
}

#[test]
fn a_directory_is_listed_hashed_as_one_stream_and_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("share");
    let w = |rel: &str, len: usize| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let bytes: Vec<u8> = (0..len).map(|i| (i * 31 + rel.len()) as u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        bytes
    };
    let a = w("a.txt", 102_401);
    let empty = w("b/empty", 0);
    let c = w("b/c/one", 1);
    let tool = w("bin/tool", 5000);
    std::fs::set_permissions(root.join("bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(root.join("void/deeper")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("b/link")).unwrap();
    // A swarmshare store inside the tree (its node key is a secret) is never shared.
    std::fs::create_dir_all(root.join(".swarmshare/chunks")).unwrap();
    std::fs::write(root.join(".swarmshare/node_key"), b"secret").unwrap();

    let m = manifest_for(&root).unwrap();
    assert_eq!(m.name(), "share");
    assert_eq!(m.encoded()[4], 3, "a tree is a version-3 manifest");
    let tree = m.tree().expect("a tree");
    let listed: Vec<_> = tree.entries().iter().map(|e| (e.path.as_str(), e.kind)).collect();
    let f = |size, executable, offset| EntryKind::File {
        size,
        executable,
        offset,
    };
    assert_eq!(
        listed,
        [
            ("a.txt", f(102_401, false, 0)),
            ("b/c/one", f(1, false, 102_401)),
            ("b/empty", f(0, false, 102_402)),
            ("bin/tool", f(5000, true, 102_402)),
            ("void/deeper", EntryKind::EmptyDir),
        ],
        "sorted by bytes, the symlink and the store skipped, only the innermost empty directory listed"
    );
    let stream = [a, c, empty, tool].concat();
    assert_eq!(m.layout().file_size(), stream.len() as u64);
    assert_eq!(m.file_hash(), blake3::hash(&stream).as_bytes());
    let layout = *m.layout();
    for id in 0..layout.chunk_count() {
        let at = layout.chunk_offset(id).unwrap() as usize;
        let len = layout.chunk_len(id).unwrap() as usize;
        assert!(m.verify_chunk(id, &stream[at..at + len]), "chunk {id}");
    }
    // Chunk 1 starts inside a.txt and runs on into the next files.
    let spans: Vec<usize> = tree.files_in(102_400, 102_400).map(|(i, _)| i).collect();
    assert_eq!(spans, [0, 1, 3], "the empty file holds no byte of any chunk");

    let decoded = Manifest::decode(m.encoded()).unwrap();
    assert_eq!(decoded, m);
    // The hand-written encoding of the same table is byte for byte the encoder's, but
    // for the hashes the helper leaves zero.
    let specs: Vec<Spec> = vec![
        file("a.txt", 102_401),
        file("b/c/one", 1),
        file("b/empty", 0),
        ("bin/tool", Some((5000, true))),
        dir("void/deeper"),
    ];
    let by_hand = raw("share", &specs);
    let enc = m.encoded();
    assert_eq!(by_hand.len(), enc.len());
    assert_eq!(by_hand[..24], enc[..24], "header up to the stream hash");
    let hashes = 32 * layout.chunk_count() as usize;
    assert_eq!(
        by_hand[56..by_hand.len() - hashes],
        enc[56..enc.len() - hashes],
        "counts, name and table"
    );

    // Any change to the tree is another swarm: a mode bit, a name, an empty directory.
    std::fs::set_permissions(root.join("bin/tool"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let m2 = manifest_for(&root).unwrap();
    assert_ne!(m2.swarm_id(), m.swarm_id());
    std::fs::remove_dir(root.join("void/deeper")).unwrap();
    assert_ne!(manifest_for(&root).unwrap().swarm_id(), m2.swarm_id());
}

#[test]
fn one_file_keeps_its_version_2_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("f.bin");
    std::fs::write(&p, vec![7u8; 300_000]).unwrap();
    let m = manifest_for(&p).unwrap();
    assert_eq!(m.encoded()[4], 2);
    assert!(m.tree().is_none());
}

#[test]
fn paths_that_could_escape_or_deceive_are_refused_naming_them() {
    let long_component = "x".repeat(256);
    let long_path = vec!["y".repeat(200); 16].join("/");
    assert!(long_path.len() > MAX_PATH_LEN);
    let deep = vec!["d"; MAX_DEPTH + 1].join("/");
    let cases: Vec<(&str, &str)> = vec![
        ("../escape", "\"..\" component"),
        ("a/../../escape", "\"..\" component"),
        ("a/./b", "\".\" component"),
        ("/etc/passwd", "absolute"),
        ("a//b", "empty component"),
        ("a/", "empty component"),
        ("evil\u{1b}]0;owned\u{7}", "control character"),
        ("red\u{1b}[31m", "control character"),
        ("nul\0byte", "control character"),
        ("new\nline", "control character"),
        ("bidi\u{202e}txt.exe", "bidirectional"),
        ("back\\slash", "backslash"),
        (&long_component, "longer than 255 bytes"),
        (&long_path, "longer than 3072 bytes"),
        (&deep, "deeper than 64"),
    ];
    for (path, why) in cases {
        let (named, reason) = refused(&[file(path, 10)]);
        assert_eq!(named, path);
        assert!(reason.contains(why), "{path:?}: {reason}");
    }
}

#[test]
fn entries_that_collide_are_refused_naming_the_second() {
    let cases: Vec<(Vec<Spec>, &str, &str)> = vec![
        (
            vec![file("Readme", 5), file("readme", 5)],
            "readme",
            "only in case",
        ),
        (vec![file("A/x", 5), file("a/y", 5)], "a/y", "only in case"),
        // "é" precomposed and as e + combining acute: one name on many file systems.
        (
            vec![file("cafe\u{301}", 5), file("caf\u{e9}", 5)],
            "caf\u{e9}",
            "normalization",
        ),
        (vec![file("a", 5), file("a/b", 5)], "a/b", "is a file"),
        (
            vec![dir("d"), file("d/x", 5)],
            "d/x",
            "listed as an empty directory",
        ),
        (vec![file("same", 5), file("same", 5)], "same", "listed twice"),
        (vec![file("b", 5), file("a", 5)], "a", "ascending order"),
    ];
    for (entries, named, why) in cases {
        let (path, reason) = refused(&entries);
        assert_eq!(path, named, "{entries:?}");
        assert!(reason.contains(why), "{entries:?}: {reason}");
    }
    // Directories that differ in case are refused too, via their files.
    assert!(build(&[file("x/Data/1", 5), file("x/data/2", 5)]).is_err());
    // What is fine: the same name in different directories, a prefix that is not a
    // directory, an empty file beside its directory's other files.
    build(&[file("a-b", 5), file("a/b", 5), file("a/c/b", 0), file("c/b", 1)]).unwrap();
}

#[test]
fn too_many_entries_are_refused_before_they_are_parsed() {
    let mut m = raw("tree", &[file("a", 10)]);
    // The entry count sits at bytes 56..60.
    m[56..60].copy_from_slice(&(MAX_ENTRIES as u32 + 1).to_be_bytes());
    assert_eq!(
        Manifest::decode(&m),
        Err(ManifestError::TooManyEntries(MAX_ENTRIES + 1))
    );
    // A count that promises more entries than the table holds.
    let mut m = raw("tree", &[file("a", 10)]);
    m[56..60].copy_from_slice(&2u32.to_be_bytes());
    assert!(matches!(Manifest::decode(&m), Err(ManifestError::BadTable(_))));
    // A table length past the cap is refused from the header alone.
    let mut m = raw("tree", &[file("a", 10)]);
    m[60..64].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(Manifest::decode(&m), Err(ManifestError::BadTable(_))));
}

#[test]
fn sizes_that_do_not_add_up_are_refused() {
    let mut m = raw("tree", &[file("a", 600_000), file("b", 100)]);
    // Declare one byte more than the files hold (the layout is the same).
    m[8..16].copy_from_slice(&600_101u64.to_be_bytes());
    assert_eq!(
        Manifest::decode(&m),
        Err(ManifestError::TreeSize {
            declared: 600_101,
            listed: 600_100
        })
    );
}

#[test]
fn the_owner_refuses_a_tree_it_could_not_share_safely() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("share");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("ok"), vec![1u8; 100]).unwrap();
    std::fs::write(root.join("bad\u{1b}[2J"), vec![1u8; 100]).unwrap();
    let e = manifest_for(&root).unwrap_err().to_string();
    assert!(e.contains("control character") && !e.contains('\u{1b}'), "{e}");
}

/// Each hostile table, served by a scripted owner: the peer exits 1 with one line naming
/// the entry (escaped), and its directory stays as it was: nothing created in it or
/// beside it.
#[test]
fn a_peer_refuses_each_hostile_tree_before_writing_anything() {
    use super::scripted;
    use std::time::Duration;
    let long = "n".repeat(256);
    let deep = vec!["d"; MAX_DEPTH + 1].join("/");
    let cases: Vec<(Vec<Spec>, &str)> = vec![
        (vec![file("../escape", 600)], "\"..\" component"),
        (vec![file("/etc/x", 600)], "absolute"),
        (vec![file("a//b", 600)], "empty component"),
        (vec![file("t\u{1b}[2Jx", 600)], "control character"),
        (vec![file("nul\0x", 600)], "control character"),
        (vec![file(&long, 600)], "longer than 255 bytes"),
        (vec![file(&deep, 600)], "deeper than"),
        (vec![file("Same", 300), file("same", 300)], "only in case"),
        (
            vec![file("cafe\u{301}", 300), file("caf\u{e9}", 300)],
            "normalization",
        ),
        (vec![file("a", 300), file("a/b", 300)], "is a file"),
        (vec![dir("d"), file("d/x", 600)], "empty directory"),
    ];
    for (entries, why) in cases {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("peer");
        std::fs::create_dir_all(&dir).unwrap();
        let (port, owner) = scripted::owner(raw("tree", &entries), scripted::until_closed);
        let mut p = scripted::peer_of(root.path(), port);
        let status = p.wait_for(Duration::from_secs(20)).expect("peer exits");
        owner.join().unwrap();
        assert_eq!(status.code(), Some(1), "{entries:?}: stderr: {}", p.errors());
        let err = p.errors();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("refused") && err.contains(why), "{entries:?}: {err}");
        assert!(
            !err.contains('\u{1b}') && !err.contains('\0'),
            "printed escaped: {err:?}"
        );
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            left.is_empty(),
            "{entries:?}: the peer's directory changed: {left:?}"
        );
        let beside: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "peer" && !n.starts_with("peer."))
            .collect();
        assert!(
            beside.is_empty(),
            "{entries:?}: written outside its directory: {beside:?}"
        );
    }
}

#[test]
fn files_in_skips_empty_directories_between_files() {
    let tree = build(&[file("a", 10), dir("b"), file("c", 10), file("d", 0), file("e", 5)]).unwrap();
    let at = |offset, len| tree.files_in(offset, len).map(|(i, _)| i).collect::<Vec<_>>();
    assert_eq!(at(0, 5), [0]);
    assert_eq!(at(5, 10), [0, 2]);
    assert_eq!(at(10, 10), [2], "the empty file holds no bytes");
    assert_eq!(at(19, 2), [2, 4]);
}
