//! A blobless clone (`filter blob:none`) answered from the stored clone pack ([`super::reuse`]):
//! its commits, trees and tags copied as they are stored — compressed, deltas included — with
//! the blobs left out. No walk, no tree reading, no inflating.
//!
//! The stored pack holds exactly the objects reachable from the clone's tips, so its entries
//! that are not blobs are exactly what `blob:none` asks for. An entry's type is read from its
//! header; a delta has its base's type (git deltas objects only against objects of the same
//! type, and a delta's result is by definition of its base's type), so a kept delta's base is
//! kept too. Leaving entries out moves the ones after them: each `OFS_DELTA` gets its distance
//! recomputed for the new positions, everything else goes out byte for byte, and the trailer is
//! the SHA-1 of what was sent.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use gix::ObjectId;

const BLOB: u8 = 3;
const OFS_DELTA: u8 = 6;
const REF_DELTA: u8 = 7;
/// Not a delta.
const NO_BASE: u32 = u32::MAX;

/// The plan of a blobless answer from one stored pack.
pub struct Blobless {
    pack: gix_pack::data::File,
    /// Entry offsets, ascending, then the end of the last entry.
    bounds: Vec<u64>,
    /// The entry each one is a delta of ([`NO_BASE`]: none).
    base_of: Vec<u32>,
    /// Whether each entry goes out.
    keep: Vec<bool>,
    /// Entries that go out.
    pub objects: u32,
}

impl std::fmt::Debug for Blobless {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobless")
            .field("pack", &self.pack.path())
            .field("objects", &self.objects)
            .finish_non_exhaustive()
    }
}

/// An entry's type and the length of its type-and-size header.
fn type_and_size_len(raw: &[u8]) -> Option<(u8, usize)> {
    let kind = (raw.first()? >> 4) & 7;
    let mut i = 0;
    while raw.get(i)? & 0x80 != 0 {
        i += 1;
    }
    Some((kind, i + 1))
}

/// An `OFS_DELTA` distance as git encodes it, and the bytes it takes.
fn ofs_distance(raw: &[u8]) -> Option<(u64, usize)> {
    let mut used = 0;
    let mut c = *raw.first()?;
    let mut n = u64::from(c & 0x7f);
    while c & 0x80 != 0 {
        used += 1;
        c = *raw.get(used)?;
        n = n.checked_add(1)?.checked_mul(128)? | u64::from(c & 0x7f);
    }
    Some((n, used + 1))
}

/// Encodes an `OFS_DELTA` distance as git does.
fn encode_ofs(mut n: u64) -> Vec<u8> {
    let mut bytes = vec![(n & 0x7f) as u8];
    n >>= 7;
    while n != 0 {
        n -= 1;
        bytes.push(0x80 | (n & 0x7f) as u8);
        n >>= 7;
    }
    bytes.reverse();
    bytes
}

impl Blobless {
    /// Reads the headers of every entry of `pack` (with its `.idx` beside it) and plans the
    /// answer. `None` if anything is not as a self-contained v2 pack should be.
    pub fn plan(pack_path: &Path) -> Option<Blobless> {
        let kind = gix::hash::Kind::Sha1;
        let index = gix_pack::index::File::at(pack_path.with_extension("idx"), kind).ok()?;
        let pack = gix_pack::data::File::at(pack_path, kind).ok()?;
        if pack.num_objects() != index.num_objects() {
            return None;
        }
        let mut bounds = index.sorted_offsets();
        bounds.push(pack.pack_end() as u64);
        let n = bounds.len() - 1;
        let mut types = vec![0u8; n];
        let mut base_of = vec![NO_BASE; n];
        for i in 0..n {
            let raw = pack.entry_slice(bounds[i]..bounds[i + 1])?;
            let (t, size_len) = type_and_size_len(raw)?;
            let base_offset = match t {
                1..=4 => {
                    types[i] = t;
                    continue;
                }
                OFS_DELTA => {
                    let (distance, _) = ofs_distance(raw.get(size_len..)?)?;
                    bounds[i].checked_sub(distance)?
                }
                REF_DELTA => {
                    let id = ObjectId::try_from(raw.get(size_len..size_len + 20)?).ok()?;
                    index.pack_offset_at_index(index.lookup(id)?)
                }
                _ => return None,
            };
            let j = bounds[..n].binary_search(&base_offset).ok()?;
            if j == i || (t == OFS_DELTA && j > i) {
                return None;
            }
            base_of[i] = u32::try_from(j).ok()?;
            types[i] = types[j];
        }
        // A REF_DELTA may name a base stored after it (and deltas of it then came out unknown):
        // settle them, a chain link per round.
        loop {
            let mut unknown = false;
            let mut settled = false;
            for i in 0..n {
                if types[i] == 0 {
                    let t = types[base_of[i] as usize];
                    if t == 0 {
                        unknown = true;
                    } else {
                        types[i] = t;
                        settled = true;
                    }
                }
            }
            if !unknown {
                break;
            }
            if !settled {
                return None;
            }
        }
        let keep: Vec<bool> = types.iter().map(|t| *t != BLOB).collect();
        let objects = u32::try_from(keep.iter().filter(|k| **k).count()).ok()?;
        Some(Blobless {
            pack,
            bounds,
            base_of,
            keep,
            objects,
        })
    }

    /// Objects in the stored pack.
    pub fn objects_in_pack(&self) -> u32 {
        self.pack.num_objects()
    }

    /// Writes the pack (header, kept entries, trailer) to `out`; returns the objects sent.
    pub fn stream(self, out: &mut (impl Write + ?Sized)) -> io::Result<usize> {
        let corrupt = || io::Error::other("the stored pack changed under the reader");
        let mut w = Hashing {
            inner: BufWriter::with_capacity(crate::pkt::MAX_BAND_DATA, out),
            hasher: gix::hash::hasher(gix::hash::Kind::Sha1),
        };
        w.write_all(b"PACK")?;
        w.write_all(&2u32.to_be_bytes())?;
        w.write_all(&self.objects.to_be_bytes())?;
        let n = self.keep.len();
        let mut new_at = vec![0u64; n];
        let mut pos = 12u64;
        for i in 0..n {
            if !self.keep[i] {
                continue;
            }
            let raw = self
                .pack
                .entry_slice(self.bounds[i]..self.bounds[i + 1])
                .ok_or_else(corrupt)?;
            new_at[i] = pos;
            let (t, size_len) = type_and_size_len(raw).ok_or_else(corrupt)?;
            if t == OFS_DELTA {
                let rest = &raw[size_len..];
                let (_, ofs_len) = ofs_distance(rest).ok_or_else(corrupt)?;
                let base = self.base_of[i] as usize;
                let ofs = encode_ofs(pos - new_at[base]);
                w.write_all(&raw[..size_len])?;
                w.write_all(&ofs)?;
                w.write_all(&rest[ofs_len..])?;
                pos += (size_len + ofs.len() + rest.len() - ofs_len) as u64;
            } else {
                w.write_all(raw)?;
                pos += raw.len() as u64;
            }
        }
        let trailer = w.hasher.try_finalize().map_err(io::Error::other)?;
        w.inner.write_all(trailer.as_bytes())?;
        w.inner.flush()?;
        Ok(self.objects as usize)
    }
}

/// A writer that hashes what passes through it.
struct Hashing<W: Write> {
    inner: W,
    hasher: gix::hash::Hasher,
}

impl<W: Write> Hashing<W> {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.inner.write_all(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ofs_distances_round_trip_as_git_encodes_them() {
        for n in [
            1u64,
            127,
            128,
            129,
            16_383,
            16_384,
            16_511,
            16_512,
            1 << 40,
            u64::MAX >> 8,
        ] {
            let enc = encode_ofs(n);
            assert_eq!(ofs_distance(&enc), Some((n, enc.len())), "{n}");
        }
        // git's own bytes: 128 is 0x80 0x00.
        assert_eq!(encode_ofs(128), vec![0x80, 0x00]);
        assert_eq!(ofs_distance(&[0x80]), None, "cut short");
        assert_eq!(ofs_distance(&[0xff; 12]), None, "overflow");
    }
}
