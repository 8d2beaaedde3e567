//! Indexing a pushed pack and checking its objects in one traversal of its delta trees.
//!
//! `git index-pack` decodes every object once to hash it; gix's bundle writer does the same but
//! offers no hook for the decoded bytes, so checking them meant decoding every object again.
//! Here the pack streams to the quarantine as it arrives (its bytes as sent: the trailer
//! is verified on the way), the bases of a thin pack are appended at its end as `git index-pack
//! --fix-thin` does, and one parallel traversal of gix's delta tree hashes each object, parses
//! it, applies the fsck rules and collects its links. Links are checked afterwards against the
//! pack's own sorted ids, then the repository.
//!
//! The same pass proves, for free, whether the pack is closed (no link leaves it) and which of its
//! objects nothing in it links to: if those are all ref tips, the pack holds exactly what a clone
//! of them needs ([`Closure`]), and a clone can be answered with it as stored from the first
//! push on, with no enumeration in upkeep.
//!
//! A pack with a REF_DELTA against another object of the same pack (git sends OFS_DELTA there,
//! as Orbit advertises `ofs-delta`) cannot be laid out before its objects are hashed: such a pack
//! goes the older way ([`Indexed::Fallback`]).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use gix::hashtable::HashMap;
use gix::objs::{Exists as _, Find as _};
use gix::ObjectId;
use gix_pack::data::entry::Header;

use super::quarantine::{links_of, pack_error_message, unique_suffix};
use super::Options;
use crate::read::new_commits::Known;
use crate::write::pack_index::{self, IndexEntry};

/// What indexing made of the pushed pack.
pub(super) enum Indexed {
    /// Indexed and checked: the pack and its index in the quarantine.
    Done {
        data: PathBuf,
        index: PathBuf,
        closure: Option<Closure>,
        /// The pack's commits (time, parents), unless there are very many.
        commits: Option<Known>,
    },
    /// The pack had no objects.
    Empty,
    /// The pack as received, complete, at this path; index it the older way.
    Fallback(PathBuf),
}

/// A pack no object of which links outside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Closure {
    /// The pack's objects that no other object of it links to, sorted. In a DAG every object is
    /// reached from one of these, so the pack is exactly the reachable set of any tip set that
    /// contains them and lies inside the pack.
    pub unreferenced: Vec<ObjectId>,
    /// The pack's ids, sorted.
    pub ids: Vec<ObjectId>,
}

impl Closure {
    /// Whether the pack holds exactly the objects reachable from `tips` (sorted, distinct).
    pub(super) fn is_exactly_reachable_from(&self, tips: &[ObjectId]) -> bool {
        !tips.is_empty()
            && tips.iter().all(|t| self.ids.binary_search(t).is_ok())
            && self
                .unreferenced
                .iter()
                .all(|u| tips.binary_search(u).is_ok())
    }
}

/// Above this many objects nothing links to, a pack is no clone of a few refs: not recorded.
const MAX_UNREFERENCED: usize = 100_000;

#[derive(Clone, Copy)]
struct Node {
    offset: u64,
    crc32: u32,
    id: ObjectId,
}

/// Reads the pack from `input` into `pack_dir`, indexes and checks it.
pub(super) fn index_and_check(
    repo: &gix::Repository,
    input: &mut dyn BufRead,
    pack_dir: &Path,
    interrupt: &AtomicBool,
    options: &Options,
) -> Result<Indexed, String> {
    let tmp = pack_dir.join(format!("tmp_pack_{}", unique_suffix()));
    let (mut nodes, ref_bases, pack_end) = receive(input, &tmp, interrupt)?;
    if nodes.is_empty() {
        let _ = std::fs::remove_file(&tmp);
        return Ok(Indexed::Empty);
    }
    let mut appended: HashMap<ObjectId, u64> = HashMap::default();
    let pack_hash = if ref_bases.is_empty() {
        read_trailer(&tmp, pack_end)?
    } else {
        // A base the repository lacks is in the pack itself: known only once it is hashed.
        if !ref_bases.iter().all(|id| repo.objects.exists(id)) {
            return Ok(Indexed::Fallback(tmp));
        }
        fix_thin(repo, &tmp, pack_end, &ref_bases, &mut nodes, &mut appended)?
    };
    let index = pack_dir.join(format!("tmp_idx_{}", unique_suffix()));
    let (closure, commits) = traverse_and_write(
        repo, &tmp, &index, nodes, &appended, &pack_hash, interrupt, options,
    )
    .inspect_err(|_| {
        let _ = std::fs::remove_file(&index);
    })?;
    let data = pack_dir.join(format!("pack-{pack_hash}.pack"));
    let final_index = data.with_extension("idx");
    std::fs::rename(&tmp, &data)
        .and_then(|()| std::fs::rename(&index, &final_index))
        .map_err(|e| format!("could not store the pack: {e}"))?;
    Ok(Indexed::Done {
        data,
        index: final_index,
        closure,
        commits,
    })
}

/// Copies what it reads into a file, and stops once interrupted.
struct Tee<'a, R: ?Sized> {
    inner: &'a mut R,
    out: BufWriter<File>,
    interrupt: &'a AtomicBool,
}

impl<R: BufRead + ?Sized> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.interrupt.load(Ordering::Relaxed) {
            return Err(io::Error::other("interrupted"));
        }
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Streams the pack into `path`, verifying its entries and trailer. Answers the entries (offset,
/// CRC-32), the distinct REF_DELTA bases, and where the entries end (the trailer follows).
fn receive(
    input: &mut dyn BufRead,
    path: &Path,
    interrupt: &AtomicBool,
) -> Result<(Vec<Node>, Vec<ObjectId>, u64), String> {
    let file =
        File::create_new(path).map_err(|e| format!("could not create the pack file: {e}"))?;
    let mut tee = BufReader::with_capacity(
        64 * 1024,
        Tee {
            inner: input,
            out: BufWriter::with_capacity(256 * 1024, file),
            interrupt,
        },
    );
    let mut nodes = Vec::new();
    let mut ref_bases = Vec::new();
    let mut pack_end = 12;
    {
        let entries = gix_pack::data::input::BytesToEntriesIter::new_from_header(
            &mut tee,
            gix_pack::data::input::Mode::Verify,
            gix_pack::data::input::EntryDataMode::Crc32,
            gix::hash::Kind::Sha1,
        )
        .map_err(|e| pack_error_message(&e))?;
        nodes.reserve(entries.size_hint().0.min(1 << 22));
        for entry in entries {
            let entry = entry.map_err(|e| pack_error_message(&e))?;
            if let Header::RefDelta { base_id } = entry.header {
                ref_bases.push(base_id);
            }
            pack_end = entry.pack_offset + u64::from(entry.header_size) + entry.compressed_size;
            nodes.push(Node {
                offset: entry.pack_offset,
                crc32: entry.crc32.unwrap_or_default(),
                id: gix::hash::Kind::Sha1.null(),
            });
        }
    }
    let file = tee
        .into_inner()
        .out
        .into_inner()
        .map_err(|e| format!("could not write the pack file: {}", e.error()))?;
    // Whatever followed the trailer is not part of the pack.
    file.set_len(pack_end + 20)
        .map_err(|e| format!("could not write the pack file: {e}"))?;
    ref_bases.sort_unstable();
    ref_bases.dedup();
    Ok((nodes, ref_bases, pack_end))
}

fn read_trailer(path: &Path, pack_end: u64) -> Result<ObjectId, String> {
    let mut f = File::open(path).map_err(|e| format!("could not read the pack file: {e}"))?;
    let mut trailer = [0u8; 20];
    f.seek(SeekFrom::Start(pack_end))
        .and_then(|_| f.read_exact(&mut trailer))
        .map_err(|e| format!("could not read the pack file: {e}"))?;
    Ok(ObjectId::from(trailer))
}

/// Completes a thin pack: appends each base (whole, from the repository), fixes the object
/// count and writes the new trailer. Answers the new trailer.
fn fix_thin(
    repo: &gix::Repository,
    path: &Path,
    pack_end: u64,
    bases: &[ObjectId],
    nodes: &mut Vec<Node>,
    appended: &mut HashMap<ObjectId, u64>,
) -> Result<ObjectId, String> {
    let io_err = |e: io::Error| format!("could not complete the thin pack: {e}");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err)?;
    f.set_len(pack_end).map_err(io_err)?;
    f.seek(SeekFrom::Start(pack_end)).map_err(io_err)?;
    let mut out = BufWriter::new(&mut f);
    let mut offset = pack_end;
    let mut buf = Vec::new();
    for id in bases {
        // One base in memory at a time.
        let obj = match repo.objects.try_find(id, &mut buf) {
            Ok(Some(obj)) => obj,
            Ok(None) => return Err(format!("the delta base {id} vanished")),
            Err(e) => return Err(format!("could not read the delta base {id}: {e}")),
        };
        let entry = gix_pack::data::input::Entry::from_data_obj(&obj, offset, Default::default())
            .map_err(|e| format!("could not complete the thin pack: {e}"))?;
        let compressed = entry.compressed.as_deref().unwrap_or_default();
        entry
            .header
            .write_to(entry.decompressed_size, &mut out)
            .and_then(|_| out.write_all(compressed))
            .map_err(io_err)?;
        nodes.push(Node {
            offset,
            crc32: entry.crc32.unwrap_or_else(|| entry.compute_crc32()),
            id: *id,
        });
        appended.insert(*id, offset);
        offset += entry.bytes_in_pack();
    }
    out.flush().map_err(io_err)?;
    drop(out);
    let count = u32::try_from(nodes.len()).map_err(|_| "too many objects".to_owned())?;
    f.seek(SeekFrom::Start(8)).map_err(io_err)?;
    f.write_all(&count.to_be_bytes()).map_err(io_err)?;
    f.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
    let mut reader = BufReader::with_capacity(256 * 1024, (&mut f).take(offset));
    loop {
        let buf = reader.fill_buf().map_err(io_err)?;
        if buf.is_empty() {
            break;
        }
        hasher.update(buf);
        let n = buf.len();
        reader.consume(n);
    }
    let trailer = hasher
        .try_finalize()
        .map_err(|e| format!("could not hash the pack: {e}"))?;
    f.seek(SeekFrom::Start(offset)).map_err(io_err)?;
    f.write_all(trailer.as_slice()).map_err(io_err)?;
    f.flush().map_err(io_err)?;
    Ok(trailer)
}

/// Per traversal thread: the links seen (link → first object seen with it), handed over when
/// the thread is done with it.
struct Links {
    seen: HashMap<ObjectId, ObjectId>,
    /// The commits seen: id, committer time, parents.
    commits: Vec<PackCommit>,
    sink: Arc<Mutex<Sink>>,
    first_problem: Arc<Mutex<Option<String>>>,
}

type PackCommit = (ObjectId, i64, Vec<ObjectId>);

/// What the traversal threads hand over.
#[derive(Default)]
struct Sink {
    links: Vec<HashMap<ObjectId, ObjectId>>,
    commits: Vec<Vec<PackCommit>>,
}

/// Above this many commits a pack's commits are not handed to the caller.
const MAX_KNOWN_COMMITS: usize = 1 << 20;

impl Clone for Links {
    fn clone(&self) -> Self {
        Links {
            seen: HashMap::default(),
            commits: Vec::new(),
            sink: self.sink.clone(),
            first_problem: self.first_problem.clone(),
        }
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        if let Ok(mut sink) = self.sink.lock() {
            sink.links.push(std::mem::take(&mut self.seen));
            sink.commits.push(std::mem::take(&mut self.commits));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn traverse_and_write(
    repo: &gix::Repository,
    pack_path: &Path,
    index_path: &Path,
    nodes: Vec<Node>,
    appended: &HashMap<ObjectId, u64>,
    pack_hash: &ObjectId,
    interrupt: &AtomicBool,
    options: &Options,
) -> Result<(Option<Closure>, Option<Known>), String> {
    let hash = gix::hash::Kind::Sha1;
    let tree = gix_pack::cache::delta::Tree::from_offsets_in_pack(
        pack_path,
        nodes.into_iter(),
        &|n: &Node| n.offset,
        &|id| Ok(appended.get(id).copied()),
        &mut gix::progress::Discard,
        interrupt,
        hash,
    )
    .map_err(|e| format!("invalid pack: {}", crate::error_chain(&e)))?;
    let pack =
        gix_pack::data::File::at(pack_path, hash).map_err(|e| format!("unreadable pack: {e}"))?;
    let sink: Arc<Mutex<Sink>> = Default::default();
    let first_problem: Arc<Mutex<Option<String>>> = Default::default();
    let mut links = Links {
        seen: HashMap::default(),
        commits: Vec::new(),
        sink: sink.clone(),
        first_problem: first_problem.clone(),
    };
    let inspect = move |node: &mut Node,
                        _: &dyn gix::progress::Progress,
                        ctx: gix_pack::cache::delta::traverse::Context<'_>|
          -> gix_error::Result<()> {
        let fail = |links: &Links, problem: String| {
            if let Ok(mut slot) = links.first_problem.lock() {
                slot.get_or_insert_with(|| problem.clone());
            }
            gix_error::Error::from_error(io::Error::other(problem))
        };
        let Some(kind) = ctx.entry.header.as_kind() else {
            return Err(fail(&links, "a delta left unresolved".into()));
        };
        let id = gix::objs::compute_hash(hash, kind, ctx.decompressed)
            .map_err(|e| fail(&links, format!("could not hash an object: {e}")))?;
        node.id = id;
        let seen = &mut links.seen;
        let commit = links_of(id, kind, ctx.decompressed, &mut |link| {
            seen.entry(link.to_owned()).or_insert(id);
            Ok(())
        })
        .map_err(|problem| fail(&links, problem))?;
        if let Some((time, parents)) = commit {
            links.commits.push((id, time, parents));
        }
        Ok(())
    };
    let outcome = tree.traverse(
        |range, pack: &gix_pack::data::File| pack.entry_slice(range),
        &pack,
        pack.pack_end() as u64,
        inspect,
        gix_pack::cache::delta::traverse::Options {
            object_progress: Box::new(gix::progress::Discard),
            size_progress: &mut gix::progress::Discard,
            thread_limit: options.thread_limit,
            should_interrupt: interrupt,
            object_hash: hash,
            alloc_limit_bytes: Some(options.max_object_bytes),
        },
    );
    if let Some(problem) = first_problem.lock().ok().and_then(|mut p| p.take()) {
        return Err(problem);
    }
    let outcome = outcome.map_err(|e| format!("invalid pack: {}", crate::error_chain(&e)))?;
    let mut entries: Vec<IndexEntry> = outcome
        .roots
        .iter()
        .chain(outcome.children.iter())
        .map(|item| IndexEntry {
            id: item.data.id,
            crc32: item.data.crc32,
            offset: item.offset,
        })
        .collect();
    drop(outcome);
    entries.sort_unstable_by_key(|e| e.id);

    // Every link is an object of the pack or of the repository.
    let mut referenced = vec![false; entries.len()];
    let mut leaves_pack = false;
    // The ids starting with each byte, as an index's fan-out, and each id's first 8 bytes: a
    // search compares integers in that byte's range and whole ids only on a tie.
    let prefix = |id: &ObjectId| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&id.as_bytes()[..8]);
        u64::from_be_bytes(b)
    };
    let prefixes: Vec<u64> = entries.iter().map(|e| prefix(&e.id)).collect();
    let mut fanout = [0usize; 257];
    for e in &entries {
        fanout[e.id.first_byte() as usize + 1] += 1;
    }
    for i in 1..257 {
        fanout[i] += fanout[i - 1];
    }
    let position = |id: &ObjectId| -> Option<usize> {
        let first = id.first_byte() as usize;
        let (start, end) = (fanout[first], fanout[first + 1]);
        let p = prefix(id);
        let mut i = start + prefixes[start..end].partition_point(|&x| x < p);
        while i < end && prefixes[i] == p {
            if entries[i].id == *id {
                return Some(i);
            }
            i += 1;
        }
        None
    };
    let Sink {
        links: maps,
        commits,
    } = sink
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .unwrap_or_default();
    let count: usize = commits.iter().map(Vec::len).sum();
    let known = (count <= MAX_KNOWN_COMMITS).then(|| {
        let mut known = Known::default();
        known.reserve(count);
        for (id, time, parents) in commits.into_iter().flatten() {
            known.insert(id, (time, parents));
        }
        known
    });
    for map in maps {
        for (link, from) in map {
            match position(&link) {
                Some(pos) => referenced[pos] = true,
                None if repo.objects.exists(&link) => leaves_pack = true,
                None => return Err(format!("object {from} links to missing object {link}")),
            }
        }
    }

    let file =
        File::create_new(index_path).map_err(|e| format!("could not write the index: {e}"))?;
    let mut out = BufWriter::new(file);
    pack_index::write(&mut entries, pack_hash, &mut out)
        .and_then(|_| out.flush())
        .map_err(|e| format!("could not write the index: {e}"))?;

    // The same object twice (a base sent and also appended) makes no clone pack.
    let distinct = entries.windows(2).all(|w| w[0].id != w[1].id);
    let closure = (!leaves_pack && distinct)
        .then(|| {
            let unreferenced: Vec<ObjectId> = entries
                .iter()
                .zip(&referenced)
                .filter(|(_, r)| !**r)
                .map(|(e, _)| e.id)
                .take(MAX_UNREFERENCED + 1)
                .collect();
            (unreferenced.len() <= MAX_UNREFERENCED).then(|| Closure {
                unreferenced,
                ids: entries.iter().map(|e| e.id).collect(),
            })
        })
        .flatten();
    Ok((closure, known))
}
