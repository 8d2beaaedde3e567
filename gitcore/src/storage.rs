//! Bare repositories on disk: creation, `HEAD`, and a storage status report.
//!
//! Invariants:
//! - repositories are created natively with gix, never by running `git`;
//! - `HEAD` of a repository is always a symbolic reference to `refs/heads/<default branch>`;
//! - nothing here removes data: deletion is the caller's business, and is never synchronous.

use std::path::{Path, PathBuf};

use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::{FullName, Target};
use gix::ObjectId;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of [`init_bare()`], [`set_head()`] and [`status()`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The branch name is not a valid git branch name.
    #[error("invalid branch name {name:?}")]
    InvalidBranchName {
        /// The name that was rejected.
        name: String,
        /// Why gix rejected it.
        #[source]
        source: BoxError,
    },
    /// Something already exists at the path where a new repository should go.
    #[error("a repository already exists at {path}")]
    AlreadyExists {
        /// The path that was found occupied.
        path: PathBuf,
    },
    /// Creating the directories of the repository failed.
    #[error("could not create the parent directory {path}")]
    CreateParent {
        /// The directory that could not be created.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// gix could not initialise the repository.
    #[error("could not initialise a bare repository at {path}")]
    Init {
        /// The path of the repository.
        path: PathBuf,
        /// The gix error.
        #[source]
        source: BoxError,
    },
    /// gix could not open the repository.
    #[error("could not open the repository at {path}")]
    Open {
        /// The path of the repository.
        path: PathBuf,
        /// The gix error.
        #[source]
        source: BoxError,
    },
    /// Writing `HEAD` failed.
    #[error("could not point HEAD of {path} at {branch}")]
    SetHead {
        /// The path of the repository.
        path: PathBuf,
        /// The branch `HEAD` should have pointed at.
        branch: String,
        /// The gix error.
        #[source]
        source: BoxError,
    },
    /// Reading references failed.
    #[error("could not read the references of {path}")]
    References {
        /// The path of the repository.
        path: PathBuf,
        /// The gix error.
        #[source]
        source: BoxError,
    },
}

/// Returns the full reference name `refs/heads/<branch>` if `branch` is a valid branch name.
///
/// Beyond the ref-name rules, `@` alone and names starting with `-` are refused, as
/// `git check-ref-format --branch` does.
pub fn branch_ref_name(branch: &str) -> Result<FullName, Error> {
    let invalid = |source: BoxError| Error::InvalidBranchName {
        name: branch.to_owned(),
        source,
    };
    if branch.is_empty() || branch == "@" || branch.starts_with('-') {
        return Err(invalid("not usable as a branch name".into()));
    }
    FullName::try_from(format!("refs/heads/{branch}")).map_err(|e| invalid(Box::new(e)))
}

/// Returns whether `branch` is a valid branch name by git's rules (`git check-ref-format --branch`).
pub fn is_valid_branch_name(branch: &str) -> bool {
    branch_ref_name(branch).is_ok()
}

/// Creates an empty bare repository at `path` whose `HEAD` points at `refs/heads/<default_branch>`.
///
/// Parent directories are created. Fails if `path` already exists and is not an empty directory,
/// so an existing repository is never overwritten.
pub fn init_bare(path: &Path, default_branch: &str) -> Result<(), Error> {
    let head = branch_ref_name(default_branch)?;
    if path.exists()
        && std::fs::read_dir(path)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Error::AlreadyExists {
            path: path.to_owned(),
        });
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| Error::CreateParent {
            path: parent.to_owned(),
            source,
        })?;
    }
    let repo = gix::init_bare(path).map_err(|e| Error::Init {
        path: path.to_owned(),
        source: Box::new(e),
    })?;
    write_head(&repo, head, default_branch)
}

/// Points `HEAD` of the bare repository at `path` to `refs/heads/<branch>`.
///
/// The branch does not need to exist (an unborn `HEAD`, as in a fresh repository).
pub fn set_head(path: &Path, branch: &str) -> Result<(), Error> {
    let head = branch_ref_name(branch)?;
    let repo = open(path)?;
    write_head(&repo, head, branch)
}

fn write_head(repo: &gix::Repository, target: FullName, branch: &str) -> Result<(), Error> {
    let edit = RefEdit {
        change: Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: false,
                message: "orbit: set default branch".into(),
            },
            expected: PreviousValue::Any,
            new: Target::Symbolic(target),
        },
        name: FullName::try_from("HEAD").map_err(|e| Error::SetHead {
            path: repo.path().to_owned(),
            branch: branch.to_owned(),
            source: Box::new(e),
        })?,
        deref: false,
    };
    let _refs =
        crate::lock::ref_transaction(repo.path(), ["HEAD"]).map_err(|e| Error::SetHead {
            path: repo.path().to_owned(),
            branch: branch.to_owned(),
            source: Box::new(e),
        })?;
    repo.edit_references_as(Some(edit), None)
        .map(|_| ())
        .map_err(|e| Error::SetHead {
            path: repo.path().to_owned(),
            branch: branch.to_owned(),
            source: e.into(),
        })
}

/// Opens the bare repository at `path`, without consulting environment variables or global config.
///
/// The object store gets room for many more pack indices than are on disk now: handles are
/// cached and live long, and every push adds a pack (gix cannot grow the slots of an open store).
pub fn open(path: &Path) -> Result<gix::Repository, Error> {
    let slots = gix::odb::store::init::Slots::AsNeededByDiskState {
        multiplier: 2.0,
        minimum: 1024,
    };
    gix::open_opts(
        path,
        gix::open::Options::isolated().object_store_slots(slots),
    )
    .map(with_delta_cache)
    .map_err(|e| Error::Open {
        path: path.to_owned(),
        source: Box::new(e),
    })
}

/// Memory one handle's delta-base cache may hold; 0 turns the cache off. Set once at startup
/// ([`set_delta_cache_bytes`]).
static DELTA_CACHE_BYTES: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(16 << 20);

/// Sets the memory of each handle's delta-base cache (0: none), for handles made from now on.
pub fn set_delta_cache_bytes(bytes: usize) {
    DELTA_CACHE_BYTES.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

/// Gives `repo` a delta-base cache (the last 64 bases decoded, in at most the bytes set by
/// [`set_delta_cache_bytes`], 16 MiB by default), so a
/// walk over trees in a deep delta chain does not re-resolve each from the chain's start. The
/// cache is per handle (handles cloned for threads get their own), so memory is bounded per
/// request, not by repository size. gix leaves handles without one unless built with
/// `max-performance`; a handle made from a shared repository needs this again.
pub fn with_delta_cache(mut repo: gix::Repository) -> gix::Repository {
    let bytes = DELTA_CACHE_BYTES.load(std::sync::atomic::Ordering::Relaxed);
    if bytes > 0 {
        repo.objects.set_pack_cache(move || {
            Box::new(gix_pack::cache::lru::StaticLinkedList::<64>::new(bytes))
        });
    }
    repo
}

/// What is on disk for one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Whether a readable git repository exists at the path.
    pub on_disk: bool,
    /// Total size in bytes of the files under the repository directory.
    pub size_bytes: u64,
    /// Number of references (loose and packed), `HEAD` excluded.
    pub ref_count: u64,
    /// The branch `HEAD` points at, if it is symbolic.
    pub head_branch: Option<String>,
}

/// Reports what is on disk at `path`. A missing directory is not an error: `on_disk` is `false`.
pub fn status(path: &Path) -> Result<Status, Error> {
    if !path.is_dir() {
        return Ok(Status {
            on_disk: false,
            size_bytes: 0,
            ref_count: 0,
            head_branch: None,
        });
    }
    let repo = open(path)?;
    let refs_err = |e: BoxError| Error::References {
        path: path.to_owned(),
        source: e,
    };
    let platform = repo.references().map_err(|e| refs_err(e.into()))?;
    let mut ref_count = 0u64;
    for r in platform.all().map_err(|e| refs_err(e.into()))? {
        r.map_err(|e| refs_err(e.into()))?;
        ref_count += 1;
    }
    let head_branch = repo
        .head_name()
        .map_err(|e| refs_err(e.into()))?
        .and_then(|n| {
            n.as_bstr()
                .strip_prefix(b"refs/heads/")
                .map(|b| String::from_utf8_lossy(b).into_owned())
        });
    Ok(Status {
        on_disk: true,
        size_bytes: dir_size(path),
        ref_count,
        head_branch,
    })
}

/// Sums file sizes under `dir`, skipping what cannot be read (a concurrent writer may race us).
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_a_bare_repository_with_head_on_the_default_branch() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("ab").join("repo.git");
        init_bare(&path, "trunk").expect("init");
        let repo = open(&path).expect("open");
        assert!(repo.is_bare());
        assert_eq!(
            repo.head_name().expect("head").expect("symbolic").as_bstr(),
            "refs/heads/trunk"
        );
        let st = status(&path).expect("status");
        assert!(st.on_disk);
        assert_eq!(st.ref_count, 0);
        assert_eq!(st.head_branch.as_deref(), Some("trunk"));
        assert!(st.size_bytes > 0);
    }

    #[test]
    fn init_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("repo.git");
        init_bare(&path, "main").expect("init");
        assert!(matches!(
            init_bare(&path, "main"),
            Err(Error::AlreadyExists { .. })
        ));
    }

    #[test]
    fn set_head_moves_head_and_rejects_bad_names() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("repo.git");
        init_bare(&path, "main").expect("init");
        set_head(&path, "feature/x").expect("set head");
        assert_eq!(
            status(&path).expect("status").head_branch.as_deref(),
            Some("feature/x")
        );
        for bad in ["a..b", "", "-x", "@", "x.lock", "a b", "x/"] {
            assert!(set_head(&path, bad).is_err(), "{bad:?} accepted");
            assert!(!is_valid_branch_name(bad), "{bad:?} valid");
        }
    }

    #[test]
    fn consolidation_merges_packs_and_keeps_every_object() {
        use crate::read::testutil::{git, init};
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        for i in 0..6 {
            std::fs::write(
                dir.join(format!("f{i}.txt")),
                format!("file {i}\n").repeat(50),
            )
            .expect("write");
            git(dir, &["add", "-A"]);
            git(dir, &["commit", "-q", "-m", &format!("c{i}")]);
            git(dir, &["repack", "-q", "-d"]); // one new pack per commit, like a push
        }
        let repo_dir = dir.join(".git");
        let before: std::collections::BTreeSet<String> =
            git(dir, &["rev-list", "--objects", "--all"])
                .lines()
                .map(str::to_owned)
                .collect();
        assert!(pack_files(&repo_dir).expect("packs").len() >= 6);
        assert_eq!(
            consolidate(&repo_dir, 10).expect("no-op").packs_merged,
            0,
            "under the threshold"
        );
        let done = consolidate(&repo_dir, 2).expect("consolidate");
        assert!(done.packs_merged >= 6, "{done:?}");
        let packs = pack_files(&repo_dir).expect("packs");
        assert_eq!(
            packs.len(),
            1,
            "{done:?} {packs:?} {}",
            git(dir, &["count-objects", "-v"])
        );
        let after: std::collections::BTreeSet<String> =
            git(dir, &["rev-list", "--objects", "--all"])
                .lines()
                .map(str::to_owned)
                .collect();
        assert_eq!(before, after);
        git(dir, &["fsck", "--strict", "--no-dangling"]);
        // The lock file stays (never unlinked, see crate::lock) but nobody holds it.
        assert!(!crate::lock::is_held(&consolidation_lock_path(&repo_dir)));
    }

    #[test]
    fn consolidation_puts_what_a_clone_needs_in_a_pack_of_its_own() {
        use crate::read::testutil::{git, init};
        use crate::upload_pack::reuse;
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        for i in 0..4 {
            std::fs::write(dir.join("f.txt"), "line\n".repeat(30 + i)).expect("write");
            git(dir, &["add", "-A"]);
            git(dir, &["commit", "-q", "-m", &format!("c{i}")]);
            git(dir, &["repack", "-q", "-d"]);
        }
        // A ref a clone does not ask for, and a commit no ref reaches (kept: nothing is pruned).
        std::fs::write(dir.join("pr.txt"), "pull request\n").expect("write");
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", "pr"]);
        git(dir, &["update-ref", "refs/pull/1/head", "HEAD"]);
        git(dir, &["reset", "-q", "--hard", "HEAD~1"]);
        git(dir, &["commit", "-q", "--allow-empty", "-m", "orphaned"]);
        let orphan = git(dir, &["rev-parse", "HEAD"]).trim().to_owned();
        git(dir, &["reset", "-q", "--hard", "HEAD~1"]);
        git(dir, &["tag", "-a", "-m", "t", "v1"]);
        git(dir, &["repack", "-q", "-d"]);
        let repo_dir = dir.join(".git");
        let done = consolidate(&repo_dir, 0).expect("consolidate");
        assert!(done.packs_merged >= 5, "{done:?}");
        assert_eq!(pack_files(&repo_dir).expect("packs").len(), 2);
        let manifest = reuse::read_manifest(&repo_dir).expect("recorded");
        let clone_objects = git(dir, &["rev-list", "--objects", "--branches", "--tags"])
            .lines()
            .count();
        assert_eq!(manifest.objects as usize, clone_objects);
        git(dir, &["cat-file", "-e", &orphan]);
        git(dir, &["cat-file", "-e", "refs/pull/1/head:pr.txt"]);
        git(dir, &["fsck", "--strict", "--no-dangling"]);
        let wants = reuse::tests::clone_wants(dir);
        let (pack, count) = reuse::tests::fetch(&repo_dir, &wants, &["ofs-delta"]);
        assert_eq!(count, clone_objects);
        let stored =
            std::fs::read(repo_dir.join("objects/pack").join(&manifest.pack)).expect("pack");
        assert!(pack == stored);
        reuse::tests::index_pack_accepts(&pack, clone_objects);
    }

    #[test]
    fn status_of_missing_directory_is_not_on_disk() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let st = status(&tmp.path().join("nope")).expect("status");
        assert!(!st.on_disk);
    }
}

/// Errors of [`consolidate`].
#[derive(Debug, thiserror::Error)]
pub enum ConsolidateError {
    /// The repository could not be opened.
    #[error("could not open the repository to consolidate its packs")]
    Open(#[source] Error),
    /// Listing, writing, indexing or removing pack files failed.
    #[error("could not consolidate packs: {0}")]
    Io(String),
}

/// What [`consolidate`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consolidated {
    /// Packs before.
    pub packs_before: usize,
    /// Packs merged into the new one (0 when nothing was done).
    pub packs_merged: usize,
    /// Objects in the new pack.
    pub objects: usize,
    /// Set when another live process holds the consolidation lock (nothing was done).
    pub skipped_locked: bool,
    /// Files a killed consolidation left behind, removed before this one started.
    pub stale_removed: usize,
}

/// The consolidation lock of a repository's packs (see [`crate::lock`]).
pub fn consolidation_lock_path(path: &Path) -> PathBuf {
    path.join("objects")
        .join("pack")
        .join("orbit-consolidate.lock")
}

/// Removes what a killed consolidation left in `pack_dir`: its `tmp-orbit-consolidate-*` pack
/// and gix's `.tmp*` files of an interrupted index write. Call only while holding the
/// consolidation lock (no other consolidation runs, and pushes never write there directly).
fn remove_stale_upkeep_files(pack_dir: &Path) -> usize {
    let mut removed = 0;
    for entry in std::fs::read_dir(pack_dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if (name.starts_with("tmp-orbit-consolidate-") || name.starts_with(".tmp"))
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// The `.pack` files (with their `.idx`) under `objects/pack` of the repository at `path`.
pub fn pack_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let dir = path.join("objects").join("pack");
    let mut packs = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "pack") && p.with_extension("idx").is_file() {
            packs.push(p);
        }
    }
    packs.sort();
    Ok(packs)
}

/// Merges every pack of the repository at `path` into one when there are more than
/// `max_packs`: each push adds a pack, and lookups (and gix's store slots) grow with their
/// number. Nothing is pruned: every object of every merged pack is kept. What a clone of the
/// branches and tags needs goes into one pack, recorded for verbatim reuse by clones
/// ([`crate::upload_pack::reuse`]); everything else into a second. Stored deltas whose base
/// sits in the same source pack and the same new pack are copied; others are re-encoded whole.
///
/// Safe against concurrent pushes (packs that appear meanwhile are left alone) and readers
/// (old packs are removed only after the new one is in place; open maps stay valid). At most
/// one consolidation runs per repository (an advisory lock, [`crate::lock`]); a second call
/// returns at once with `skipped_locked`. Files a killed consolidation left are removed first.
pub fn consolidate(path: &Path, max_packs: usize) -> Result<Consolidated, ConsolidateError> {
    let io = |what: &str, e: &dyn std::fmt::Display| ConsolidateError::Io(format!("{what}: {e}"));
    let mut done = Consolidated::default();
    let pack_dir = path.join("objects").join("pack");
    // A lock the kernel drops with its holder: a consolidation killed midway never blocks the
    // next one, and a live one (in any process on this storage root) is never taken over.
    let Some(_lock) = crate::lock::try_lock(&consolidation_lock_path(path))
        .map_err(|e| io("taking the consolidation lock", &e))?
    else {
        done.skipped_locked = true;
        return Ok(done);
    };
    done.stale_removed = remove_stale_upkeep_files(&pack_dir)
        + crate::receive_pack::sweep_stale_quarantines(
            &path.join("objects"),
            crate::receive_pack::STALE_QUARANTINE,
        );
    let packs = pack_files(path).map_err(|e| io("listing packs", &e))?;
    done.packs_before = packs.len();
    if packs.len() <= max_packs {
        return Ok(done);
    }

    // Every object of the packs listed now.
    let mut ids = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for pack in &packs {
        let index = gix_pack::index::File::at(pack.with_extension("idx"), gix::hash::Kind::Sha1)
            .map_err(|e| io("reading an index", &e))?;
        for entry in index.iter() {
            if seen.insert(entry.oid) {
                ids.push(entry.oid);
            }
        }
    }
    let repo = open(path).map_err(ConsolidateError::Open)?;
    // What a clone of the branches and tags needs goes in a pack of its own, recorded for
    // verbatim reuse (`upload_pack::reuse`); the rest (other refs, unreachable objects) in a
    // second one. A repository whose history cannot be walked keeps everything in one pack.
    let interrupt = std::sync::atomic::AtomicBool::new(false);
    let clone_set = crate::refs::Snapshot::read(&repo)
        .ok()
        .and_then(|snapshot| {
            let tips = crate::upload_pack::reuse::clone_tips(&snapshot);
            let needed =
                crate::upload_pack::reuse::reachable(&repo, &snapshot, &tips, &interrupt).ok()?;
            (!tips.is_empty()).then_some((tips, needed))
        });
    let mut parts = Vec::new();
    match clone_set {
        Some((tips, needed)) => {
            let in_clone: std::collections::HashSet<ObjectId> = needed.iter().copied().collect();
            let rest: Vec<ObjectId> = ids
                .into_iter()
                .filter(|id| !in_clone.contains(id))
                .collect();
            parts.push((needed, Some(tips)));
            if !rest.is_empty() {
                parts.push((rest, None));
            }
        }
        None => parts.push((ids, None)),
    }
    let mut written = Vec::new();
    for (n, (ids, tips)) in parts.into_iter().enumerate() {
        let objects = ids.len();
        done.objects += objects;
        let pack = write_indexed_pack(&repo, ids, &pack_dir, n)?;
        if let Some(tips) = tips {
            let count = u32::try_from(objects).map_err(|e| io("counting objects", &e))?;
            crate::upload_pack::reuse::write_manifest(path, &pack, count, &tips)
                .map_err(|e| io("recording the clone pack", &e))?;
        }
        written.push(pack);
    }
    for old in &packs {
        if written.contains(old) {
            continue; // the same content as one already there
        }
        // Index first, so no new reader picks the pack up, then the data.
        std::fs::remove_file(old.with_extension("idx"))
            .map_err(|e| io("removing an old index", &e))?;
        let _ = std::fs::remove_file(old);
        done.packs_merged += 1;
    }
    Ok(done)
}

/// Writes `ids` as a pack into `pack_dir`, indexes it there, and returns its path.
fn write_indexed_pack(
    repo: &gix::Repository,
    ids: Vec<ObjectId>,
    pack_dir: &Path,
    n: usize,
) -> Result<PathBuf, ConsolidateError> {
    let io = |what: &str, e: &dyn std::fmt::Display| ConsolidateError::Io(format!("{what}: {e}"));
    let tmp = pack_dir.join(format!(
        "tmp-orbit-consolidate-{}-{n}.pack",
        std::process::id()
    ));
    let result = (|| -> Result<PathBuf, ConsolidateError> {
        {
            let file = std::fs::File::create(&tmp).map_err(|e| io("creating the new pack", &e))?;
            let mut out = std::io::BufWriter::new(file);
            let interrupt = std::sync::atomic::AtomicBool::new(false);
            crate::pack::write(repo, ids, None, &mut out, &interrupt, Some(1))
                .map_err(|e| io("writing the new pack", &e))?;
            std::io::Write::flush(&mut out).map_err(|e| io("writing the new pack", &e))?;
        }
        let mut input = std::io::BufReader::new(
            std::fs::File::open(&tmp).map_err(|e| io("reopening the new pack", &e))?,
        );
        let interrupt = std::sync::atomic::AtomicBool::new(false);
        let outcome = gix_pack::Bundle::write_to_directory(
            &mut input,
            Some(pack_dir),
            &mut gix::progress::Discard,
            &interrupt,
            None::<gix::odb::Handle>,
            gix::hash::Kind::Sha1,
            gix_pack::bundle::write::Options {
                thread_limit: Some(1),
                ..Default::default()
            },
        )
        .map_err(|e| io("indexing the new pack", &e))?;
        if let Some(keep) = outcome.keep_path {
            let _ = std::fs::remove_file(keep);
        }
        outcome
            .data_path
            .ok_or_else(|| ConsolidateError::Io("the new pack was not written".into()))
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}
