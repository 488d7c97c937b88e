//! `ChunkSet`: which chunks of a swarm a node holds, as a bitfield.
//!
//! It is the peer's in-memory "have" list, the payload of the wire's chunk ID list
//! (one bit per chunk, most significant bit first, as in BitTorrent's bitfield), and the
//! input to the picker's comparisons. Pure data, no I/O.

use crate::manifest::ChunkId;

/// A set of chunk IDs in `0..len`.
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkSet {
    len: u32,
    count: u32,
    bits: Vec<u8>,
}

/// Why a bitfield was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkSetError {
    /// The byte count does not match the chunk count.
    #[error("bitfield for {len} chunks must be {expected} bytes, got {got}")]
    Length {
        /// Chunk count.
        len: u32,
        /// Bytes expected.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// Bits past the last chunk are set.
    #[error("bitfield for {len} chunks has bits set past the last chunk")]
    SpareBits {
        /// Chunk count.
        len: u32,
    },
}

/// Bytes needed for a bitfield of `len` chunks.
pub(crate) fn bitfield_len(len: u32) -> usize {
    (len as usize).div_ceil(8)
}

fn mask(id: ChunkId) -> u8 {
    0x80 >> (id % 8)
}

impl ChunkSet {
    /// The empty set over `len` chunks.
    pub fn empty(len: u32) -> ChunkSet {
        ChunkSet {
            len,
            count: 0,
            bits: vec![0; bitfield_len(len)],
        }
    }

    /// The set holding all `len` chunks.
    pub fn full(len: u32) -> ChunkSet {
        let mut set = ChunkSet::empty(len);
        for id in 0..len {
            set.insert(id);
        }
        set
    }

    /// Parses a bitfield of exactly `bitfield_len(len)` bytes with no spare bits set.
    pub fn from_bitfield(len: u32, bytes: &[u8]) -> Result<ChunkSet, ChunkSetError> {
        let expected = bitfield_len(len);
        if bytes.len() != expected {
            return Err(ChunkSetError::Length {
                len,
                expected,
                got: bytes.len(),
            });
        }
        let spare = (expected * 8) as u64 - u64::from(len);
        if let Some(last) = bytes.last() {
            let spare_mask = ((1u16 << spare) - 1) as u8;
            if last & spare_mask != 0 {
                return Err(ChunkSetError::SpareBits { len });
            }
        }
        let count = bytes.iter().map(|b| b.count_ones()).sum();
        Ok(ChunkSet {
            len,
            count,
            bits: bytes.to_vec(),
        })
    }

    /// The bitfield, most significant bit first.
    pub fn as_bitfield(&self) -> &[u8] {
        &self.bits
    }

    /// The number of chunks the set ranges over.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// How many chunks are in the set.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether no chunk is in the set.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether every chunk is in the set.
    pub fn is_complete(&self) -> bool {
        self.count == self.len
    }

    /// Whether `id` is in the set (false when out of range).
    pub fn contains(&self, id: ChunkId) -> bool {
        id < self.len && self.bits[(id / 8) as usize] & mask(id) != 0
    }

    /// Adds `id`; returns whether it was new. Out-of-range IDs are ignored.
    pub fn insert(&mut self, id: ChunkId) -> bool {
        if id >= self.len || self.contains(id) {
            return false;
        }
        self.bits[(id / 8) as usize] |= mask(id);
        self.count += 1;
        true
    }

    /// Removes `id`; returns whether it was present.
    pub fn remove(&mut self, id: ChunkId) -> bool {
        if !self.contains(id) {
            return false;
        }
        self.bits[(id / 8) as usize] &= !mask(id);
        self.count -= 1;
        true
    }

    /// The chunk IDs in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = ChunkId> + '_ {
        (0..self.len).filter(|&id| self.contains(id))
    }

    /// The chunk IDs not in the set, ascending.
    pub fn missing(&self) -> impl Iterator<Item = ChunkId> + '_ {
        (0..self.len).filter(|&id| !self.contains(id))
    }

    /// Adds every chunk of `other` (a set over a different chunk count adds nothing).
    pub fn union_with(&mut self, other: &ChunkSet) {
        if self.len != other.len {
            return;
        }
        for (mine, theirs) in self.bits.iter_mut().zip(&other.bits) {
            *mine |= theirs;
        }
        self.count = self.bits.iter().map(|b| b.count_ones()).sum();
    }

    /// The missing chunk IDs as ranges (`"3-7, 12, 40-99"`), at most `max_ranges` of them
    /// and then how many more IDs there are, so a log line stays short.
    pub fn missing_ranges(&self, max_ranges: usize) -> String {
        let mut ranges: Vec<(ChunkId, ChunkId)> = Vec::new();
        for id in self.missing() {
            match ranges.last_mut() {
                Some((_, end)) if *end + 1 == id => *end = id,
                _ => ranges.push((id, id)),
            }
        }
        let shown: Vec<String> = ranges
            .iter()
            .take(max_ranges)
            .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
            .collect();
        let mut out = shown.join(", ");
        let rest: u32 = ranges.iter().skip(max_ranges).map(|&(a, b)| b - a + 1).sum();
        if rest > 0 {
            out.push_str(&format!(" and {rest} more"));
        }
        out
    }

    /// Up to `max` chunks that `theirs` holds (every chunk, if `None`) and `self` lacks,
    /// scanning from byte `start` (any value; taken modulo the length) and wrapping: a
    /// cheap random sample of the candidates when `start` is random, whatever the size.
    pub fn sample_wanted(&self, theirs: Option<&ChunkSet>, start: usize, max: usize) -> Vec<ChunkId> {
        let mut out = Vec::with_capacity(max.min(64));
        if theirs.is_some_and(|t| t.len != self.len) || self.bits.is_empty() || max == 0 {
            return out;
        }
        let words = self.bits.len().div_ceil(8);
        let first = start % words;
        for w in (first..words).chain(0..first) {
            let lo = w * 8;
            let hi = (lo + 8).min(self.bits.len());
            let word = |bytes: &[u8]| {
                let mut buf = [0u8; 8];
                buf[..hi - lo].copy_from_slice(&bytes[lo..hi]);
                u64::from_be_bytes(buf)
            };
            let offered = theirs.map_or(u64::MAX, |t| word(&t.bits));
            let mut want = offered & !word(&self.bits);
            while want != 0 {
                let bit = want.leading_zeros();
                want &= !(1u64 << (63 - bit));
                let id = (lo as u32) * 8 + bit;
                if id >= self.len {
                    break;
                }
                out.push(id);
                if out.len() >= max {
                    return out;
                }
            }
        }
        out
    }

    /// The chunks `other` holds that `self` lacks: what `other` can give us.
    /// Sets over different chunk counts share nothing.
    pub fn wanted_from(&self, other: &ChunkSet) -> Vec<ChunkId> {
        if self.len != other.len {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (i, (mine, theirs)) in self.bits.iter().zip(&other.bits).enumerate() {
            let want = theirs & !mine;
            for bit in 0..8 {
                if want & (0x80 >> bit) != 0 {
                    out.push(i as u32 * 8 + bit);
                }
            }
        }
        out
    }
}

impl std::fmt::Debug for ChunkSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkSet({}/{}: ", self.count, self.len)?;
        f.debug_list().entries(self.iter()).finish()?;
        f.write_str(")")
    }
}
