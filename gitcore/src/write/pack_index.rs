//! Pack index files (`.idx`, version 2), as `git index-pack` writes them: the same bytes for the
//! same pack.
//!
//! Layout: `\377tOc`, version 2, a 256-entry fan-out, the sorted ids, their CRC-32s, their
//! 31-bit offsets (high bit set: an index into the 64-bit offsets that follow), the pack's
//! checksum, then the SHA-1 of everything before it.

use std::io::{self, Write};

use gix::ObjectId;

/// One object of a pack: its id, the CRC-32 of its entry as stored, and where the entry starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub id: ObjectId,
    pub crc32: u32,
    pub offset: u64,
}

const LARGE_OFFSET: u64 = 0x7fff_ffff;

/// Writes the index of a pack whose trailer is `pack_hash`; `entries` are sorted here by id.
/// Returns the index's own checksum.
pub fn write(
    entries: &mut [IndexEntry],
    pack_hash: &ObjectId,
    out: &mut dyn Write,
) -> io::Result<ObjectId> {
    entries.sort_unstable_by_key(|e| e.id);
    let mut out = Hashing {
        inner: io::BufWriter::with_capacity(64 * 1024, out),
        hasher: gix::hash::hasher(gix::hash::Kind::Sha1),
    };
    out.write_all(b"\xfftOc")?;
    out.write_all(&2u32.to_be_bytes())?;
    let mut fanout = [0u32; 256];
    for e in entries.iter() {
        fanout[e.id.first_byte() as usize] += 1;
    }
    let mut running = 0u32;
    for count in fanout {
        running += count;
        out.write_all(&running.to_be_bytes())?;
    }
    for e in entries.iter() {
        out.write_all(e.id.as_slice())?;
    }
    for e in entries.iter() {
        out.write_all(&e.crc32.to_be_bytes())?;
    }
    let mut large = Vec::new();
    for e in entries.iter() {
        let field = if e.offset > LARGE_OFFSET {
            large.push(e.offset);
            (large.len() as u32 - 1) | 0x8000_0000
        } else {
            e.offset as u32
        };
        out.write_all(&field.to_be_bytes())?;
    }
    for offset in large {
        out.write_all(&offset.to_be_bytes())?;
    }
    out.write_all(pack_hash.as_slice())?;
    let Hashing { inner, hasher } = out;
    let inner = inner.into_inner().map_err(|e| e.into_error())?;
    let checksum = hasher
        .try_finalize()
        .map_err(|e| io::Error::other(format!("hashing the index: {e}")))?;
    inner.write_all(checksum.as_slice())?;
    inner.flush()?;
    Ok(checksum)
}

struct Hashing<W: Write> {
    inner: W,
    hasher: gix::hash::Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::testutil::{git, init};

    /// The index of a pack git made, rebuilt from the offsets and CRCs git recorded, is git's
    /// index byte for byte, with 64-bit offsets too.
    #[test]
    fn the_index_equals_gits_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        init(dir.path());
        std::fs::write(dir.path().join("a"), "one\n").expect("write");
        git(dir.path(), &["add", "a"]);
        git(dir.path(), &["commit", "-qm", "one"]);
        std::fs::write(dir.path().join("a"), "one\ntwo\n").expect("write");
        git(dir.path(), &["commit", "-qam", "two"]);
        git(dir.path(), &["repack", "-adq"]);
        let pack_dir = dir.path().join(".git/objects/pack");
        let idx_path = std::fs::read_dir(&pack_dir)
            .expect("pack dir")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "idx"))
            .expect("an index");
        let theirs = std::fs::read(&idx_path).expect("read idx");
        let index =
            gix_pack::index::File::at(&idx_path, gix::hash::Kind::Sha1).expect("open index");
        let mut entries: Vec<IndexEntry> = index
            .iter()
            .map(|e| IndexEntry {
                id: e.oid,
                crc32: e.crc32.expect("v2 has crc32"),
                offset: e.pack_offset,
            })
            .collect();
        entries.reverse();
        let pack_hash = index.pack_checksum().to_owned();
        let mut ours = Vec::new();
        let checksum = write(&mut entries, &pack_hash, &mut ours).expect("write");
        assert_eq!(ours, theirs);
        assert_eq!(checksum, index.index_checksum());

        // An offset past 2 GiB goes into the 64-bit table; git's reader finds it there.
        entries[0].offset = (1 << 33) + 12;
        let mut big = Vec::new();
        write(&mut entries, &pack_hash, &mut big).expect("write");
        let path = dir.path().join("big.idx");
        std::fs::write(&path, &big).expect("write");
        let reread = gix_pack::index::File::at(&path, gix::hash::Kind::Sha1).expect("reread");
        let found = reread.lookup(entries[0].id.as_ref()).expect("listed");
        assert_eq!(reread.pack_offset_at_index(found), (1 << 33) + 12);
        assert_eq!(reread.num_objects() as usize, entries.len());
    }
}
