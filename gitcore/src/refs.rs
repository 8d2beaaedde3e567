//! Reading the references a client may see: `HEAD`, `refs/heads/*`, `refs/tags/*` (and the rest of
//! `refs/`), each with its target and, for annotated tags, the peeled object.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use gix::bstr::ByteSlice;
use gix::ObjectId;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors reading references.
#[derive(Debug, thiserror::Error)]
#[error("could not read the references")]
pub struct Error(#[source] pub BoxError);

/// One advertised reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    /// Full name, e.g. `refs/heads/main`.
    pub name: String,
    /// What it points at.
    pub target: ObjectId,
    /// For an annotated tag: the object it finally points at.
    pub peeled: Option<ObjectId>,
}

/// The references of a repository and what `HEAD` is.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// All references under `refs/`, sorted by name.
    pub refs: Vec<Ref>,
    /// The branch `HEAD` points at (`refs/heads/...`), born or not.
    pub head_symref: Option<String>,
    /// The object `HEAD` resolves to, if born.
    pub head: Option<ObjectId>,
    /// Symbolic references under `refs/` (not in `refs`), sorted: with `refs`, every name
    /// under `refs/` that exists.
    pub symbolic: Vec<String>,
    /// What was learned about these refs, kept as long as the snapshot (see
    /// [`read_cached`](Self::read_cached)): their tips that are commits, and objects proven
    /// reachable from them.
    memo: Memo,
}

#[derive(Debug, Default)]
struct Memo {
    commit_tips: OnceLock<Vec<(ObjectId, i64)>>,
    reachable: Mutex<HashSet<ObjectId>>,
}

/// Objects remembered as reachable per snapshot, at most.
const REACHABLE_MEMO: usize = 4096;

impl Clone for Snapshot {
    /// A copy of the refs; what was learned about them is not carried over (the copy may be
    /// changed).
    fn clone(&self) -> Self {
        Self {
            refs: self.refs.clone(),
            head_symref: self.head_symref.clone(),
            head: self.head,
            symbolic: self.symbolic.clone(),
            memo: Memo::default(),
        }
    }
}

impl Snapshot {
    /// Reads the references of `repo`.
    pub fn read(repo: &gix::Repository) -> Result<Self, Error> {
        crate::ref_journal::recover_if_abandoned(repo.path());
        let platform = repo.references().map_err(|e| Error(e.into()))?;
        let mut refs = Vec::new();
        let mut symbolic = Vec::new();
        for r in platform
            .prefixed(b"refs/".as_bstr())
            .map_err(|e| Error(e.into()))?
        {
            let mut r = r.map_err(|e| Error(e.into()))?;
            let Some(target) = r.target().try_id().map(ToOwned::to_owned) else {
                // Symbolic refs under refs/ are not advertised.
                symbolic.push(r.name().as_bstr().to_str_lossy().into_owned());
                continue;
            };
            let name = r.name().as_bstr().to_str_lossy().into_owned();
            // Only annotated tags need peeling; finding that out from the object header avoids
            // inflating every commit a ref points at.
            let is_tag = repo
                .find_header(target)
                .map(|h| h.kind() == gix::objs::Kind::Tag)
                .unwrap_or(false);
            let peeled = if is_tag {
                match r.peel_to_id() {
                    Ok(id) if id.detach() != target => Some(id.detach()),
                    _ => None,
                }
            } else {
                None
            };
            refs.push(Ref {
                name,
                target,
                peeled,
            });
        }
        refs.sort_by(|a, b| a.name.cmp(&b.name));
        symbolic.sort();
        let head_symref = repo
            .head_name()
            .map_err(|e| Error(e.into()))?
            .map(|n| n.as_bstr().to_str_lossy().into_owned());
        let head = head_symref
            .as_ref()
            .and_then(|n| refs.iter().find(|r| &r.name == n))
            .map(|r| r.target);
        Ok(Self {
            refs,
            head_symref,
            head,
            symbolic,
            memo: Memo::default(),
        })
    }

    /// The distinct commits the refs point at or peel to, each with its commit time in
    /// seconds, newest first (once per snapshot; the times come from the per-process commit
    /// cache, so a new snapshot after a push reads only the commits it has not seen).
    pub fn commit_tips(&self, repo: &gix::Repository) -> &[(ObjectId, i64)] {
        self.memo.commit_tips.get_or_init(|| {
            let mut ids: Vec<ObjectId> = self
                .refs
                .iter()
                .map(|r| r.peeled.unwrap_or(r.target))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            let mut tips: Vec<(ObjectId, i64)> = ids
                .into_iter()
                .filter_map(|id| Some((id, crate::upload_pack::commit_time(repo, id)?)))
                .collect();
            tips.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            tips
        })
    }

    /// Whether `id` was proven reachable from these refs (by [`Self::remember_reachable`]).
    pub fn known_reachable(&self, id: &ObjectId) -> bool {
        self.memo.reachable.lock().is_ok_and(|set| set.contains(id))
    }

    /// Remembers that `id` is reachable from these refs. Objects reachable from refs are never
    /// pruned, and the snapshot is replaced when a ref changes, so this holds for its life.
    pub fn remember_reachable(&self, id: ObjectId) {
        if let Ok(mut set) = self.memo.reachable.lock() {
            if set.len() >= REACHABLE_MEMO {
                set.clear();
            }
            set.insert(id);
        }
    }

    /// The references of `repo` as [`read`](Self::read) gives them, from a per-process cache
    /// revalidated on every call: the cached snapshot is used only while `HEAD`, `packed-refs`
    /// and every directory under `refs/` still have the inode, size and change times they had
    /// before it was read (a loose ref is created, replaced or deleted by a rename or unlink in
    /// its directory; `packed-refs` is replaced by a rename). Any writer, in this process or in
    /// another one on the same storage, changes one of them. A snapshot whose files changed
    /// less than [`RACY`] before it was read is not kept, since a second change within the
    /// same timestamp tick could leave the times as they were (git's "racy" case).
    pub fn read_cached(repo: &gix::Repository) -> Result<Arc<Self>, Error> {
        let git_dir = repo.path().to_owned();
        let cache = CACHE.get_or_init(Default::default);
        let cached = cache.lock().ok().and_then(|c| c.get(&git_dir).cloned());
        if let Some((stamp, snapshot)) = cached {
            if stamp.still_valid(&git_dir) {
                return Ok(snapshot);
            }
        }
        let stamp = Stamp::take(&git_dir);
        let snapshot = Arc::new(Self::read(repo)?);
        if let (Some(stamp), Ok(mut c)) = (stamp.filter(|s| !s.is_racy()), cache.lock()) {
            if c.len() >= CACHE_REPOS && !c.contains_key(&git_dir) {
                c.clear(); // rare: more live repositories than entries; start over
            }
            c.insert(git_dir, (Arc::new(stamp), Arc::clone(&snapshot)));
        }
        Ok(snapshot)
    }

    /// Whether `id` is the target or peeled target of some advertised reference (or `HEAD`).
    pub fn is_tip(&self, id: &ObjectId) -> bool {
        self.head.as_ref() == Some(id)
            || self
                .refs
                .iter()
                .any(|r| &r.target == id || r.peeled.as_ref() == Some(id))
    }

    /// The current value of the reference `name`.
    pub fn get(&self, name: &str) -> Option<ObjectId> {
        self.refs
            .binary_search_by(|r| r.name.as_str().cmp(name))
            .ok()
            .map(|i| self.refs[i].target)
    }

    /// What the snapshot knows of the full name `name` under `refs/`: `Some(Some(id))` for a
    /// reference to an object, `Some(None)` for a name that does not exist, `None` for a
    /// symbolic reference (to be followed on disk).
    pub fn lookup(&self, name: &str) -> Option<Option<ObjectId>> {
        if let Some(id) = self.get(name) {
            return Some(Some(id));
        }
        match self.symbolic.binary_search_by(|s| s.as_str().cmp(name)) {
            Ok(_) => None,
            Err(_) => Some(None),
        }
    }
}

/// Repositories whose snapshot is kept per process.
const CACHE_REPOS: usize = 1024;

/// A snapshot read within this time of a change to its files is not cached.
pub const RACY: Duration = Duration::from_secs(1);

type Cache = Mutex<HashMap<PathBuf, (Arc<Stamp>, Arc<Snapshot>)>>;
static CACHE: OnceLock<Cache> = OnceLock::new();

/// What identifies one state of a file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        let m = std::fs::symlink_metadata(path).ok()?;
        Some(Self {
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// The state of every file a snapshot is read from (a missing one stamped as such).
#[derive(Debug)]
struct Stamp {
    files: Vec<(PathBuf, Option<FileStamp>)>,
    taken: std::time::SystemTime,
}

impl Stamp {
    /// Stamps `HEAD`, `packed-refs` and every directory under `refs/`; `None` when a directory
    /// cannot be listed.
    fn take(git_dir: &Path) -> Option<Self> {
        let taken = std::time::SystemTime::now();
        let mut files = vec![
            (git_dir.join("HEAD"), FileStamp::of(&git_dir.join("HEAD"))),
            (
                git_dir.join("packed-refs"),
                FileStamp::of(&git_dir.join("packed-refs")),
            ),
        ];
        let mut dirs = vec![git_dir.join("refs")];
        while let Some(dir) = dirs.pop() {
            let stamp = FileStamp::of(&dir);
            if stamp.is_some() {
                for entry in std::fs::read_dir(&dir).ok()? {
                    let entry = entry.ok()?;
                    if entry.file_type().ok()?.is_dir() {
                        dirs.push(entry.path());
                    }
                }
            }
            files.push((dir, stamp));
        }
        Some(Self { files, taken })
    }

    fn still_valid(&self, git_dir: &Path) -> bool {
        self.files.iter().all(|(p, s)| FileStamp::of(p) == *s) && git_dir.is_dir()
    }

    /// Whether some file changed within [`RACY`] of the stamp being taken.
    fn is_racy(&self) -> bool {
        let Ok(now) = self.taken.duration_since(std::time::UNIX_EPOCH) else {
            return true;
        };
        let now = now.as_nanos() as i128;
        let racy = RACY.as_nanos() as i128;
        self.files.iter().flat_map(|(_, s)| s).any(|s| {
            [s.mtime, s.ctime]
                .iter()
                .any(|(sec, nsec)| now - (*sec as i128 * 1_000_000_000 + *nsec as i128) < racy)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::testutil::{git, init, open};

    fn main_of(repo: &gix::Repository) -> Option<ObjectId> {
        Snapshot::read_cached(repo)
            .expect("refs")
            .get("refs/heads/main")
    }

    /// Every kind of ref change is seen through the cache: loose update, new branch in a new
    /// directory, packing, deletion of a packed ref, and `HEAD`.
    #[test]
    fn the_cached_snapshot_follows_every_ref_change() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        git(dir, &["commit", "-q", "--allow-empty", "-m", "a"]);
        let a = ObjectId::from_hex(git(dir, &["rev-parse", "HEAD"]).trim().as_bytes()).expect("id");
        git(dir, &["commit", "-q", "--allow-empty", "-m", "b"]);
        let b = ObjectId::from_hex(git(dir, &["rev-parse", "HEAD"]).trim().as_bytes()).expect("id");
        let repo = open(dir);
        let settle = || std::thread::sleep(RACY + Duration::from_millis(50));
        settle();
        assert_eq!(main_of(&repo), Some(b));
        let first = Snapshot::read_cached(&repo).expect("refs");
        assert!(
            Arc::ptr_eq(&first, &Snapshot::read_cached(&repo).expect("refs")),
            "cached"
        );

        git(dir, &["update-ref", "refs/heads/main", &a.to_string()]);
        assert_eq!(main_of(&repo), Some(a), "a loose update");
        settle();
        assert_eq!(main_of(&repo), Some(a));
        git(
            dir,
            &["update-ref", "refs/heads/feature/x/y", &b.to_string()],
        );
        assert_eq!(
            Snapshot::read_cached(&repo)
                .expect("refs")
                .get("refs/heads/feature/x/y"),
            Some(b),
            "a branch in new directories"
        );
        settle();
        git(dir, &["pack-refs", "--all"]);
        settle();
        assert_eq!(main_of(&repo), Some(a), "packed");
        git(dir, &["update-ref", "-d", "refs/heads/feature/x/y"]);
        assert_eq!(
            Snapshot::read_cached(&repo)
                .expect("refs")
                .get("refs/heads/feature/x/y"),
            None,
            "a packed ref deleted"
        );
        settle();
        git(dir, &["symbolic-ref", "HEAD", "refs/heads/other"]);
        assert_eq!(
            Snapshot::read_cached(&repo)
                .expect("refs")
                .head_symref
                .as_deref(),
            Some("refs/heads/other")
        );
    }

    /// A snapshot read right after a change is not kept: within one timestamp tick a second
    /// change could leave every stamp as it was.
    #[test]
    fn a_snapshot_of_a_fresh_change_is_not_cached() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        git(dir, &["commit", "-q", "--allow-empty", "-m", "a"]);
        let repo = open(dir);
        let first = Snapshot::read_cached(&repo).expect("refs");
        let second = Snapshot::read_cached(&repo).expect("refs");
        assert!(!Arc::ptr_eq(&first, &second));
    }
}
