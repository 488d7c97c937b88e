//! What `swarmshare status` and `swarmshare inspect` print: a short table for people, or
//! one JSON object (`--json`) for scripts. Pure rendering of data read elsewhere.

use serde_json::{json, Value};

use crate::chunk_set::ChunkSet;
use crate::chunk_store::DirStatus;
use crate::manifest::{hex, EntryKind, Manifest};
use crate::text::{printable, Quoted};

/// Chunk-ID ranges shown at most in a human line.
const RANGES_SHOWN: usize = 12;

/// The manifest a file would have, as JSON.
pub(crate) fn manifest_json(m: &Manifest) -> Value {
    let layout = m.layout();
    json!({
        "name": printable(std::ffi::OsStr::new(m.name())),
        "size": layout.file_size(),
        "chunk_size": layout.chunk_size(),
        "chunks": layout.chunk_count(),
        "last_chunk_size": layout.chunk_len(layout.chunk_count().saturating_sub(1)).unwrap_or(0),
        "swarm": m.swarm_id().to_string(),
        "file_hash": hex(m.file_hash()),
        "tree": m.tree().map(tree_json),
    })
}

/// A tree's entries, as JSON: each file with its path, size and executable bit, each
/// empty directory with its path.
fn tree_json(tree: &crate::manifest::Tree) -> Value {
    let entries: Vec<Value> = tree
        .entries()
        .iter()
        .map(|e| match e.kind {
            EntryKind::File { size, executable, .. } => json!({
                "path": printable(std::ffi::OsStr::new(&e.path)),
                "size": size,
                "executable": executable,
            }),
            EntryKind::EmptyDir => json!({ "path": printable(std::ffi::OsStr::new(&e.path)), "dir": true }),
        })
        .collect();
    json!({ "entries": entries })
}

/// "N files, M empty directories" for a tree.
fn tree_counts(tree: &crate::manifest::Tree) -> String {
    let files = tree
        .entries()
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::File { .. }))
        .count();
    format!(
        "{files} files, {} empty directories",
        tree.entries().len() - files
    )
}

/// The manifest a file would have, for people.
pub(crate) fn manifest_text(m: &Manifest) -> String {
    let layout = m.layout();
    let last = layout
        .chunk_len(layout.chunk_count().saturating_sub(1))
        .unwrap_or(0);
    format!(
        "file        {}\nsize        {} bytes\nchunks      {} of {} bytes (the last {} bytes)\nswarm       {}\nfile hash   {} (BLAKE3)\n",
        Quoted(m.name()),
        layout.file_size(),
        layout.chunk_count(),
        layout.chunk_size(),
        last,
        m.swarm_id(),
        hex(m.file_hash()),
    ) + &m
        .tree()
        .map(|t| format!("tree        {} (the size and hash are of their bytes one after the other)\n", tree_counts(t)))
        .unwrap_or_default()
}

/// A directory's state, as JSON: every list is of chunk IDs, ascending.
pub(crate) fn status_json(s: &DirStatus) -> Value {
    let missing: Vec<u32> = s.verified.missing().collect();
    let summary = match &s.summary {
        None => json!({ "present": false }),
        Some(Err(e)) => json!({ "present": true, "valid": false, "error": e }),
        Some(Ok(listed)) => json!({
            "present": true,
            "valid": true,
            "listed": listed.count(),
            "listed_not_verified": unverified(listed, &s.verified),
        }),
    };
    json!({
        "dir": printable(s.dir.as_os_str()),
        "manifest": manifest_json(&s.manifest),
        "peer_id": s.peer_id.map(|id| id.to_string()),
        "chunks": s.manifest.layout().chunk_count(),
        "verified_count": s.verified.count(),
        "verified": s.verified.iter().collect::<Vec<u32>>(),
        "missing": missing,
        "damaged": s.damaged,
        "summary": summary,
        "file": s.file.as_str(),
        "complete": s.file == crate::chunk_store::FileState::Verified
            || (s.files.is_none() && s.verified.is_complete()),
        "temporary_files": s.temporary,
        "files_in_place": s.files.map(|(done, _)| done),
        "files": s.files.map(|(_, all)| all),
    })
}

/// A directory's state, for people.
pub(crate) fn status_text(s: &DirStatus) -> String {
    let m = &s.manifest;
    let count = m.layout().chunk_count();
    let held = s.verified.count();
    let mut out = format!(
        "directory   {}\nfile        {} ({} bytes): {}\nswarm       {}\n",
        Quoted(&s.dir),
        Quoted(m.name()),
        m.layout().file_size(),
        match s.file {
            crate::chunk_store::FileState::Verified => "present and verified",
            crate::chunk_store::FileState::Absent => "not assembled yet",
            crate::chunk_store::FileState::Other => "a file with other contents is in the way",
        },
        m.swarm_id(),
    );
    if let Some((done, all)) = s.files {
        out += &format!("files       {done} of {all} in place in the tree\n");
    }
    out += &format!(
        "chunks      {held} of {count} verified ({:.1}%)\n",
        f64::from(held) * 100.0 / f64::from(count.max(1))
    );
    if held < count {
        out += &format!("missing     {}\n", s.verified.missing_ranges(RANGES_SHOWN));
    }
    if !s.damaged.is_empty() {
        out += &format!(
            "damaged     {} chunk file(s) fail their hash: {} (a restart discards them)\n",
            s.damaged.len(),
            ids_text(&s.damaged)
        );
    }
    out += &match &s.summary {
        None => "summary     none (a restart rebuilds it)\n".to_owned(),
        Some(Err(e)) => format!("summary     unreadable: {e} (a restart rebuilds it)\n"),
        Some(Ok(listed)) => {
            let bad = unverified(listed, &s.verified);
            if bad.is_empty() {
                format!("summary     lists {} chunks, all verified\n", listed.count())
            } else {
                format!(
                    "summary     lists {} chunks; {} of them do not verify: {}\n",
                    listed.count(),
                    bad.len(),
                    ids_text(&bad)
                )
            }
        }
    };
    if s.temporary > 0 {
        out += &format!(
            "temporary   {} leftover file(s) in .swarmshare/tmp\n",
            s.temporary
        );
    }
    if let Some(id) = s.peer_id {
        out += &format!("peer id     {id}\n");
    }
    out
}

fn unverified(listed: &ChunkSet, verified: &ChunkSet) -> Vec<u32> {
    listed.iter().filter(|&id| !verified.contains(id)).collect()
}

fn ids_text(ids: &[u32]) -> String {
    let shown: Vec<String> = ids.iter().take(20).map(u32::to_string).collect();
    let more = ids.len().saturating_sub(20);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}
