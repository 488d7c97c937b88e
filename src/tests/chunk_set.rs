//! `ChunkSet`: comparisons and the bitfield encoding.

use crate::chunk_set::{ChunkSet, ChunkSetError};
use proptest::prelude::*;

fn set(len: u32, ids: &[u32]) -> ChunkSet {
    let mut s = ChunkSet::empty(len);
    for &id in ids {
        s.insert(id);
    }
    s
}

#[test]
fn wanted_from_is_what_they_have_and_we_lack() {
    let mine = set(20, &[0, 1, 2, 10]);
    let theirs = set(20, &[1, 2, 3, 10, 11, 19]);
    assert_eq!(mine.wanted_from(&theirs), vec![3, 11, 19]);
    assert_eq!(theirs.wanted_from(&mine), vec![0]);
    assert!(mine.wanted_from(&mine).is_empty());
    // Different swarms (lengths) share nothing.
    assert!(mine.wanted_from(&set(21, &[5])).is_empty());
}

#[test]
fn counts_insert_remove_complete() {
    let mut s = ChunkSet::empty(9);
    assert!(s.is_empty() && !s.is_complete());
    assert!(s.insert(8));
    assert!(!s.insert(8), "second insert is not new");
    assert!(!s.insert(9), "out of range ignored");
    assert_eq!(s.count(), 1);
    assert!(s.remove(8) && !s.remove(8));
    assert!(ChunkSet::full(9).is_complete());
    assert_eq!(ChunkSet::full(9).missing().count(), 0);
    assert_eq!(s.missing().count(), 9);
}

#[test]
fn bitfield_refuses_wrong_length_and_spare_bits() {
    assert_eq!(
        ChunkSet::from_bitfield(9, &[0]),
        Err(ChunkSetError::Length {
            len: 9,
            expected: 2,
            got: 1
        })
    );
    // 9 chunks: the second byte's low 7 bits are spare.
    assert_eq!(
        ChunkSet::from_bitfield(9, &[0, 0x01]),
        Err(ChunkSetError::SpareBits { len: 9 })
    );
    assert_eq!(ChunkSet::from_bitfield(9, &[0xff, 0x80]).unwrap().count(), 9);
    assert_eq!(ChunkSet::from_bitfield(0, &[]).unwrap().count(), 0);
}

proptest! {
    #[test]
    fn bitfield_round_trip(bits in proptest::collection::vec(any::<bool>(), 0..300)) {
        let ids: Vec<u32> = bits.iter().enumerate().filter(|(_, &b)| b).map(|(i, _)| i as u32).collect();
        let s = set(bits.len() as u32, &ids);
        let back = ChunkSet::from_bitfield(s.len(), s.as_bitfield()).unwrap();
        prop_assert_eq!(&back, &s);
        prop_assert_eq!(back.iter().collect::<Vec<_>>(), ids);
    }
}
