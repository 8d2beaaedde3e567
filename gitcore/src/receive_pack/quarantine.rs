//! The quarantine a pushed pack is indexed and checked in before anything becomes visible, and
//! the sweep of quarantines left by killed pushes.

use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::objs::Exists as _;

use super::index::{Closure, Indexed};
use super::Options;

/// A pack indexed into `objects/incoming-*/pack`, not yet visible.
pub(super) struct Quarantine {
    pub(super) dir: PathBuf,
    pub(super) objects_dir: PathBuf,
    pub(super) pack: Option<(PathBuf, PathBuf)>,
    /// Held while the push lives: a sweep in any process leaves a held quarantine alone and
    /// removes one whose holder died at once.
    pub(super) _lock: Option<crate::lock::Held>,
    /// Set when the pack links to nothing outside it (see [`Closure`]).
    pub(super) closure: Option<Closure>,
    /// The pack's commits, as the check pass parsed them.
    pub(super) commits: Option<crate::read::new_commits::Known>,
}

/// The lock file inside a quarantine.
pub(super) const QUARANTINE_LOCK: &str = "orbit-push.lock";

impl Quarantine {
    /// Moves the pack into `objects/pack` (data first, then index) and removes the quarantine.
    pub(super) fn publish(mut self) -> io::Result<()> {
        if let Some((data, index)) = self.pack.take() {
            let pack_dir = self.objects_dir.join("pack");
            for file in [&data, &index] {
                let name = file
                    .file_name()
                    .ok_or_else(|| io::Error::other("pack file without a name"))?;
                std::fs::rename(file, pack_dir.join(name))?;
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }

    /// Where the pack will be once published.
    pub(super) fn published_pack(&self) -> Option<PathBuf> {
        let (data, _) = self.pack.as_ref()?;
        Some(self.objects_dir.join("pack").join(data.file_name()?))
    }

    pub(super) fn discard(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// The quarantine and the repository's objects together.
    pub(super) fn odb(&self) -> io::Result<gix::odb::Handle> {
        gix::odb::at(&self.dir, gix::hash::Kind::Sha1)
    }
}

impl Drop for Quarantine {
    fn drop(&mut self) {
        if self.pack.is_some() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A reader that fails once more than `limit` bytes were read.
pub(super) struct Limited<R> {
    inner: R,
    remaining: u64,
    limit: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.remaining {
            return Err(io::Error::other(format!(
                "pack exceeds the maximum size of {} bytes",
                self.limit
            )));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// A quarantine without a lock file (made by an older Orbit, or in its first instant) untouched
/// for this long belongs to a push that died with its server.
pub const STALE_QUARANTINE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Removes the `incoming-*` quarantines under `objects_dir` whose push is gone: a server killed
/// in the middle of a push cannot clean its own. A quarantine's push holds its lock file while
/// it runs (in whatever process); one whose lock nobody holds is removed at once. Without a
/// lock file, one not modified for `older_than` is removed.
pub fn sweep_stale_quarantines(objects_dir: &Path, older_than: std::time::Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(objects_dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("incoming-") {
            continue;
        }
        // A lock file not yet renamed into place (`.new`) may belong to a push starting right
        // now: such a quarantine goes by age only.
        let lock = entry.path().join(QUARANTINE_LOCK);
        let stale = if lock.exists() {
            // Hold the dead push's lock while removing, so no one else acts on it meanwhile.
            match crate::lock::try_lock(&lock) {
                Ok(Some(held)) => {
                    let removed = std::fs::remove_dir_all(entry.path()).is_ok();
                    drop(held);
                    removed as usize
                }
                _ => 0,
            }
        } else {
            let newest = newest_mtime(&entry.path());
            let old = newest
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= older_than);
            (old && std::fs::remove_dir_all(entry.path()).is_ok()) as usize
        };
        if stale > 0 {
            removed += 1;
        }
    }
    removed
}

/// The newest modification time of `dir` and the files directly in it or in `dir/pack`.
pub(super) fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = std::fs::metadata(dir).and_then(|m| m.modified()).ok();
    for sub in [dir.to_owned(), dir.join("pack")] {
        for e in std::fs::read_dir(sub).into_iter().flatten().flatten() {
            if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                newest = Some(newest.map_or(t, |n| n.max(t)));
            }
        }
    }
    newest
}

/// Indexes the incoming pack into a fresh quarantine and checks every object in it.
/// Returns the reason shown to the user on failure; nothing is left behind then.
pub(super) fn ingest(
    repo: &gix::Repository,
    input: &mut impl Read,
    interrupt: &AtomicBool,
    options: &Options,
) -> Result<Quarantine, String> {
    let objects_dir = repo.objects.store_ref().path().to_owned();
    sweep_stale_quarantines(&objects_dir, STALE_QUARANTINE);
    let dir = objects_dir.join(format!("incoming-{}", unique_suffix()));
    let pack_dir = dir.join("pack");
    let mut q = Quarantine {
        dir: dir.clone(),
        objects_dir: objects_dir.clone(),
        pack: None,
        _lock: None,
        closure: None,
        commits: None,
    };
    let mut setup = || -> io::Result<()> {
        std::fs::create_dir_all(&pack_dir)?;
        q._lock = Some(crate::lock::create_held(&dir.join(QUARANTINE_LOCK))?);
        std::fs::create_dir_all(dir.join("info"))?;
        let abs = std::fs::canonicalize(&objects_dir)?;
        std::fs::write(
            dir.join("info").join("alternates"),
            format!("{}\n", abs.display()),
        )
    };
    if let Err(e) = setup() {
        q.discard();
        return Err(format!("could not create the quarantine: {e}"));
    }
    // Mark the quarantine as owned so Drop cleans it on every early return below.
    q.pack = Some((PathBuf::new(), PathBuf::new()));
    let mut limited = BufReader::with_capacity(
        64 * 1024,
        Limited {
            inner: input,
            remaining: options.max_pack_bytes,
            limit: options.max_pack_bytes,
        },
    );
    let pack_dir_abs = pack_dir.clone();
    match super::index::index_and_check(repo, &mut limited, &pack_dir_abs, interrupt, options)? {
        Indexed::Done {
            data,
            index,
            closure,
            commits,
        } => {
            q.pack = Some((data, index));
            q.closure = closure;
            q.commits = commits;
        }
        Indexed::Empty => q.pack = None,
        Indexed::Fallback(received) => {
            let indexed = index_received(repo, &q, &received, interrupt, options);
            let _ = std::fs::remove_file(&received);
            q.pack = indexed?;
        }
    }
    Ok(q)
}

/// Indexes a complete pack already received into the quarantine with gix's bundle writer, then
/// checks its objects in a second pass (packs [`super::index`] cannot lay out up front).
fn index_received(
    repo: &gix::Repository,
    q: &Quarantine,
    received: &Path,
    interrupt: &AtomicBool,
    options: &Options,
) -> Result<Option<(PathBuf, PathBuf)>, String> {
    let file =
        std::fs::File::open(received).map_err(|e| format!("could not read the pack: {e}"))?;
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let bundle = gix_pack::Bundle::write_to_directory(
        &mut reader,
        Some(&q.dir.join("pack")),
        &mut gix::progress::Discard,
        interrupt,
        Some(repo.objects.clone()),
        gix::hash::Kind::Sha1,
        gix_pack::bundle::write::Options {
            thread_limit: options.thread_limit,
            iteration_mode: gix_pack::data::input::Mode::Verify,
            index_version: Default::default(),
            alloc_limit_bytes: Some(options.max_object_bytes),
            compression: Default::default(),
        },
    )
    .map_err(|e| pack_error_message(&e))?;
    if let Some(keep) = &bundle.keep_path {
        let _ = std::fs::remove_file(keep);
    }
    match (bundle.data_path, bundle.index_path) {
        (Some(data), Some(index)) => {
            check_objects(q, &data, &index, options, interrupt)?;
            Ok(Some((data, index)))
        }
        _ => Ok(None),
    }
}

pub(super) fn pack_error_message(e: &dyn std::error::Error) -> String {
    let msg = crate::error_chain(e);
    if msg.contains("maximum size") {
        // The size limit is the cause worth showing.
        if let Some(i) = msg.find("pack exceeds") {
            return msg[i..].to_owned();
        }
    }
    format!("invalid pack: {msg}")
}

pub(super) fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos:x}", std::process::id())
}

/// Every object of the new pack decodes, passes the fsck rules, and links only to objects that
/// exist (in the pack or the repository).
///
/// One pass over the pack's delta trees (gix's `traverse_with_index`), on all cores: each object
/// is decoded once, bases before their deltas, never by re-resolving a delta chain. Blobs link to
/// nothing and their ids were computed from their bytes while indexing, so they are only decoded
/// as the bases they may be; commits, trees and tags are parsed and their links looked up.
pub(super) fn check_objects(
    q: &Quarantine,
    data_path: &Path,
    index_path: &Path,
    options: &Options,
    interrupt: &AtomicBool,
) -> Result<(), String> {
    let kind = gix::hash::Kind::Sha1;
    let index = gix_pack::index::File::at(index_path, kind)
        .map_err(|e| format!("unreadable index: {e}"))?;
    let pack =
        gix_pack::data::File::at(data_path, kind).map_err(|e| format!("unreadable pack: {e}"))?;
    let odb = q
        .odb()
        .map_err(|e| format!("could not open the quarantine: {e}"))?;
    // The first problem found, as the client should read it (the traversal wraps errors).
    let first: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
    let found = first.clone();
    let processor = move |object_kind: gix::objs::Kind,
                          data: &[u8],
                          entry: &gix_pack::index::Entry,
                          _: &dyn gix::progress::Progress|
          -> gix_error::Result<()> {
        let id = entry.oid;
        let problem = match check_object(&odb, id, object_kind, data) {
            Ok(()) => return Ok(()),
            Err(problem) => problem,
        };
        if let Ok(mut slot) = found.lock() {
            slot.get_or_insert_with(|| problem.clone());
        }
        Err(gix_error::Error::from_error(io::Error::other(problem)))
    };
    let outcome = index.traverse_with_index(
        &pack,
        processor,
        &mut gix::progress::Discard,
        interrupt,
        gix_pack::index::traverse::with_index::Options {
            thread_limit: options.thread_limit,
            check: gix_pack::index::traverse::SafetyCheck::SkipFileAndObjectChecksumVerification,
            alloc_limit_bytes: Some(options.max_object_bytes),
        },
    );
    if let Some(problem) = first.lock().ok().and_then(|mut slot| slot.take()) {
        return Err(problem);
    }
    outcome
        .map(|_| ())
        .map_err(|e| format!("invalid pack: {}", crate::error_chain(&e)))
}

/// One decoded object: its links exist, and a tree passes the fsck rules.
fn check_object(
    odb: &gix::odb::Handle,
    id: gix::ObjectId,
    kind: gix::objs::Kind,
    data: &[u8],
) -> Result<(), String> {
    links_of(id, kind, data, &mut |link| {
        if odb.exists(link) {
            Ok(())
        } else {
            Err(format!("object {id} links to missing object {link}"))
        }
    })
    .map(|_| ())
}

/// Parses one decoded object (a tree also against the fsck rules) and calls `each` with every
/// object it links to: a commit's tree and parents, a tree's entries but submodule commits, a
/// tag's target. Blobs link to nothing. For a commit, answers its committer time and parents.
pub(super) fn links_of(
    id: gix::ObjectId,
    kind: gix::objs::Kind,
    data: &[u8],
    each: &mut dyn FnMut(&gix::oid) -> Result<(), String>,
) -> Result<Option<(i64, Vec<gix::ObjectId>)>, String> {
    let hash = gix::hash::Kind::Sha1;
    let malformed = |e: &dyn std::fmt::Display| format!("object {id} is malformed: {e}");
    match kind {
        gix::objs::Kind::Blob => Ok(None),
        gix::objs::Kind::Commit => {
            let c = gix::objs::CommitRef::from_bytes(data, hash).map_err(|e| malformed(&e))?;
            each(&c.tree())?;
            let parents: Vec<gix::ObjectId> = c.parents().collect();
            for p in &parents {
                each(p)?;
            }
            let time = c
                .committer()
                .map(|s| s.seconds())
                .map_err(|e| malformed(&e))?;
            Ok(Some((time, parents)))
        }
        gix::objs::Kind::Tree => {
            // Entry by entry: no list of entries is built.
            let mut fsck = crate::fsck::TreeChecker::default();
            for e in gix::objs::TreeRefIter::from_bytes(data, hash) {
                let e = e.map_err(|e| malformed(&e))?;
                fsck.entry(e.filename.as_ref(), e.mode.is_tree())
                    .map_err(|e| format!("tree {id}: {e}"))?;
                if !e.mode.is_commit() {
                    each(e.oid)?;
                }
            }
            Ok(None)
        }
        gix::objs::Kind::Tag => {
            let t = gix::objs::TagRef::from_bytes(data, hash).map_err(|e| malformed(&e))?;
            each(&t.target()).map(|()| None)
        }
    }
}
