//! Chunk hashes and the whole-file hash from the chunks' shares of the file's BLAKE3 tree:
//! one hashing pass per chunk both checks it and prepares the file's check, which then
//! needs no reading back.
//!
//! BLAKE3 hashes a file as a binary tree over 1 KiB blocks. A 100 KiB chunk starts on a
//! 4 KiB boundary, so its bytes are a run of whole subtrees of that tree, its *pieces*:
//! aligned, power-of-two sized, only the file's very last piece possibly shorter. A piece's
//! chaining value depends on nothing but its bytes and its offset
//! ([`blake3::hazmat`]), so it is computed while the verified chunk is still in memory;
//! once every chunk's pieces are known, merging them gives the file's hash, exactly
//! [`blake3::hash`] of the whole file (tested against it below and by proptest).
//!
//! A chunk's hash in the manifest is derived from the same values ([`chunk_hash`]), so
//! checking a chunk and computing its pieces are one pass over its bytes.
//!
//! Layouts whose chunk size is not a whole number of 1 KiB blocks (most files under
//! 500 KiB) have no pieces; their chunks are hashed whole and their file is hashed by
//! reading it.

pub use blake3::hazmat::ChainingValue;
use blake3::hazmat::{self, HasherExt, Mode};
use blake3::CHUNK_LEN;

use super::{ChunkId, Layout};

/// Bytes per chaining value.
pub const CV_LEN: usize = 32;
/// The most pieces one chunk splits into, for any layout (at most 9 in the small layouts;
/// checked for every layout with pieces in the tests).
pub const MAX_PIECES: usize = 16;
/// The most pieces a 100 KiB chunk splits into (checked for every chunk of the largest
/// file in the tests).
pub const MAX_PIECES_FULL: usize = 6;

/// The most pieces any chunk of `layout` splits into: the room kept per chunk for its
/// chaining values.
pub fn max_pieces(layout: &Layout) -> usize {
    if layout.chunk_size() == super::CHUNK_SIZE {
        MAX_PIECES_FULL
    } else {
        MAX_PIECES
    }
}

/// The BLAKE3 derive-key context of a chunk hash made from pieces (see [`chunk_hash`]).
pub const CHUNK_CONTEXT: &str = "swarmshare 2026-11-26 chunk hash from BLAKE3 tree pieces";

/// Chunk `id`'s hash as the manifest records it, with its pieces' chaining values: for a
/// layout with pieces, BLAKE3 in derive-key mode with [`CHUNK_CONTEXT`] over the pieces'
/// chaining values in order (32 bytes each); otherwise BLAKE3 of the chunk's bytes, and no
/// values. `data` must be the chunk's length (the caller checks).
pub fn chunk_hash(layout: &Layout, id: ChunkId, data: &[u8]) -> ([u8; 32], Vec<ChainingValue>) {
    if !has_pieces(layout) {
        return (*blake3::hash(data).as_bytes(), Vec::new());
    }
    static KEY: std::sync::LazyLock<hazmat::ContextKey> =
        std::sync::LazyLock::new(|| hazmat::hash_derive_key_context(CHUNK_CONTEXT));
    let cvs = piece_cvs(layout, id, data);
    let mut hasher = blake3::Hasher::new_from_context_key(&KEY);
    for cv in &cvs {
        hasher.update(cv);
    }
    (*hasher.finalize().as_bytes(), cvs)
}

/// Whether files of this layout are checked from their pieces.
pub fn has_pieces(layout: &Layout) -> bool {
    layout.chunk_size() as usize % CHUNK_LEN == 0
}

/// Chunk `id`'s pieces as (offset in the file, length), in file order. Empty for an `id`
/// out of range or a layout without pieces.
pub fn pieces(layout: &Layout, id: ChunkId) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (Some(start), Some(len), true) = (layout.chunk_offset(id), layout.chunk_len(id), has_pieces(layout))
    else {
        return out;
    };
    let end = start + u64::from(len);
    let mut offset = start;
    while offset < end {
        let rest = end - offset;
        let max = hazmat::max_subtree_len(offset).unwrap_or(u64::MAX);
        // Only the last subtree of the whole file may be short; any other is a whole
        // power of two blocks.
        let take = if end == layout.file_size() && rest <= max {
            rest
        } else {
            floor_pow2(rest.min(max))
        };
        out.push((offset, take));
        offset += take;
    }
    out
}

fn floor_pow2(n: u64) -> u64 {
    1 << (63 - n.leading_zeros())
}

/// The chaining values of chunk `id`'s pieces, given its verified bytes.
pub fn piece_cvs(layout: &Layout, id: ChunkId, data: &[u8]) -> Vec<ChainingValue> {
    let start = layout.chunk_offset(id).unwrap_or(0);
    pieces(layout, id)
        .into_iter()
        .filter_map(|(offset, len)| {
            let from = usize::try_from(offset - start).ok()?;
            let bytes = data.get(from..from + usize::try_from(len).ok()?)?;
            let mut hasher = blake3::Hasher::new();
            hasher.set_input_offset(offset);
            Some(hasher.update(bytes).finalize_non_root())
        })
        .collect()
}

/// The file's BLAKE3 hash from every piece's chaining value, given in file order (chunk 0's
/// pieces first). `None` if the values do not fit the layout (too few, too many, or a
/// layout without pieces).
pub fn root(layout: &Layout, cvs: impl IntoIterator<Item = ChainingValue>) -> Option<[u8; 32]> {
    if !has_pieces(layout) {
        return None;
    }
    let mut cvs = cvs.into_iter();
    let (l, r, all_used) = {
        let mut pieces = (0..layout.chunk_count())
            .flat_map(|id| pieces(layout, id))
            .zip(cvs.by_ref())
            .peekable();
        let size = layout.file_size();
        // A file has at least 5 chunks, so never fits one piece: the root has two children.
        let left = hazmat::left_subtree_len(size);
        let l = node(0, left, &mut pieces)?;
        let r = node(left, size, &mut pieces)?;
        (l, r, pieces.next().is_none())
    };
    (all_used && cvs.next().is_none()).then(|| *hazmat::merge_subtrees_root(&l, &r, Mode::Hash).as_bytes())
}

/// The chaining value of the tree node covering `[start, end)`: a piece, or the merge of
/// its two children (split where BLAKE3 splits it).
fn node<I>(start: u64, end: u64, pieces: &mut std::iter::Peekable<I>) -> Option<ChainingValue>
where
    I: Iterator<Item = ((u64, u64), ChainingValue)>,
{
    if let Some(&((offset, len), cv)) = pieces.peek() {
        if offset == start && offset + len == end {
            pieces.next();
            return Some(cv);
        }
    }
    if end - start <= CHUNK_LEN as u64 {
        return None;
    }
    let mid = start + hazmat::left_subtree_len(end - start);
    let l = node(start, mid, pieces)?;
    let r = node(mid, end, pieces)?;
    Some(hazmat::merge_subtrees_non_root(&l, &r, Mode::Hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::MAX_CHUNKS;

    fn data(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
            .collect()
    }

    fn root_of(bytes: &[u8]) -> Option<[u8; 32]> {
        let layout = Layout::for_size(bytes.len() as u64).unwrap();
        let cvs = (0..layout.chunk_count()).flat_map(|id| {
            let start = layout.chunk_offset(id).unwrap() as usize;
            let len = layout.chunk_len(id).unwrap() as usize;
            piece_cvs(&layout, id, &bytes[start..start + len])
        });
        root(&layout, cvs.collect::<Vec<_>>())
    }

    #[test]
    fn the_merged_pieces_are_the_files_blake3_hash() {
        // Around the smallest file with pieces, whole and partial last blocks, and a
        // last chunk of one byte or exactly 100 KiB.
        for size in [
            5_120, 10_240, 511_999, 512_000, 512_001, 513_024, 600_000, 614_400, 614_401, 1_048_576,
            3_000_017,
        ] {
            let bytes = data(size);
            assert_eq!(
                root_of(&bytes),
                Some(*blake3::hash(&bytes).as_bytes()),
                "size {size}"
            );
        }
    }

    #[test]
    fn small_layouts_have_no_pieces() {
        let layout = Layout::for_size(300_000).unwrap();
        assert!(!has_pieces(&layout));
        assert!(pieces(&layout, 0).is_empty());
        assert_eq!(root(&layout, Vec::new()), None);
    }

    #[test]
    fn wrong_or_missing_values_never_give_the_hash() {
        let bytes = data(700_000);
        let layout = Layout::for_size(700_000).unwrap();
        let mut cvs: Vec<ChainingValue> = (0..layout.chunk_count())
            .flat_map(|id| {
                let start = layout.chunk_offset(id).unwrap() as usize;
                let len = layout.chunk_len(id).unwrap() as usize;
                piece_cvs(&layout, id, &bytes[start..start + len])
            })
            .collect();
        let want = *blake3::hash(&bytes).as_bytes();
        assert_eq!(root(&layout, cvs.clone()), Some(want));
        assert_eq!(root(&layout, cvs[..cvs.len() - 1].to_vec()), None, "one short");
        let mut more = cvs.clone();
        more.push([0; 32]);
        assert_eq!(root(&layout, more), None, "one too many");
        cvs[3][0] ^= 1;
        assert_ne!(root(&layout, cvs), Some(want), "a changed value");
    }

    #[test]
    fn small_layouts_stay_within_max_pieces() {
        // Every chunk size with pieces below 100 KiB, with whole and partial last chunks.
        for k in 1..100u64 {
            for size in [5 * k * 1024, 5 * k * 1024 - 1 - (k * 1024 / 2)] {
                let Ok(layout) = Layout::for_size(size) else {
                    continue;
                };
                if !has_pieces(&layout) {
                    continue;
                }
                for id in 0..layout.chunk_count() {
                    let n = pieces(&layout, id).len();
                    assert!(n <= max_pieces(&layout), "size {size} chunk {id}: {n} pieces");
                }
            }
        }
    }

    #[test]
    fn no_chunk_has_more_than_max_pieces_and_pieces_tile_the_file() {
        let layout = Layout::for_size(u64::from(MAX_CHUNKS) * 102_400 - 1).unwrap();
        assert_eq!(max_pieces(&layout), MAX_PIECES_FULL);
        let mut next = 0;
        for id in 0..layout.chunk_count() {
            let p = pieces(&layout, id);
            assert!(p.len() <= MAX_PIECES_FULL, "chunk {id}: {} pieces", p.len());
            for (offset, len) in p {
                assert_eq!(offset, next);
                assert!(len > 0);
                next = offset + len;
            }
        }
        assert_eq!(next, layout.file_size());
    }

    #[test]
    fn a_chunk_hash_changes_with_any_byte_and_with_the_position() {
        let layout = Layout::for_size(1_000_000).unwrap();
        let bytes = data(102_400);
        let (h1, cvs) = chunk_hash(&layout, 1, &bytes);
        assert_eq!(cvs, piece_cvs(&layout, 1, &bytes));
        assert_eq!(chunk_hash(&layout, 1, &bytes).0, h1, "deterministic");
        assert_ne!(
            chunk_hash(&layout, 2, &bytes).0,
            h1,
            "the same bytes at another offset"
        );
        for at in [0, 4_095, 4_096, 65_535, 102_399] {
            let mut changed = bytes.clone();
            changed[at] ^= 0x80;
            assert_ne!(chunk_hash(&layout, 1, &changed).0, h1, "byte {at}");
        }
        // Without pieces: the plain hash of the bytes.
        let small = Layout::for_size(300_000).unwrap();
        assert_eq!(
            chunk_hash(&small, 1, &bytes[..60_000]),
            (*blake3::hash(&bytes[..60_000]).as_bytes(), Vec::new())
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        #[test]
        fn any_size_merges_to_the_files_hash(size in 512_000usize..2_500_000) {
            let bytes = data(size);
            proptest::prop_assert_eq!(root_of(&bytes), Some(*blake3::hash(&bytes).as_bytes()));
        }
    }
}
