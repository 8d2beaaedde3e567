//! Upkeep locks the kernel releases when their holder dies: an advisory `flock` on a lock file
//! (`std::fs::File::try_lock`). A process killed with SIGKILL holds nothing afterwards, so a lock
//! file left on disk never blocks anyone; it is never removed, which keeps two processes from
//! locking two different files of one name. Processes on one host share these locks through
//! the storage root (`flock` is not reliable across NFS clients).

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

/// A held lock; dropping it releases the lock (the file stays).
#[derive(Debug)]
pub struct Held {
    _file: File,
    path: PathBuf,
}

impl Held {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes the lock at `path` (creating the file), or answers `None` when a live holder has it.
pub fn try_lock(path: &Path) -> io::Result<Option<Held>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(Held {
            _file: file,
            path: path.to_owned(),
        })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Takes the lock at `path` (creating the file), waiting while a live holder has it.
pub fn lock(path: &Path) -> io::Result<Held> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    file.lock()?;
    Ok(Held {
        _file: file,
        path: path.to_owned(),
    })
}

/// The file under a repository's git directory that every Orbit ref transaction holds.
pub const REF_TRANSACTION_LOCK: &str = "orbit-refs.flock";

/// Serialises the ref transactions of one repository across threads and processes, and removes
/// the `.lock` files of `names` (full ref names, or `HEAD`) and `packed-refs.lock` that a killed
/// writer left behind: every Orbit writer holds this lock for the whole of its transaction, so a
/// ref lock file found while holding it has no live owner (git's own answer, "Unable to create
/// '….lock': File exists", would otherwise block the ref until someone deletes the file by hand).
/// Hold the answer until the transaction is done.
pub fn ref_transaction<'a>(
    git_dir: &Path,
    names: impl IntoIterator<Item = &'a str>,
) -> io::Result<Held> {
    let held = lock(&git_dir.join(REF_TRANSACTION_LOCK))?;
    // A multi-ref transaction whose writer died half-way is undone first.
    if git_dir.join(crate::ref_journal::JOURNAL).exists() {
        let journal = crate::ref_journal::names(git_dir);
        remove_stale_ref_locks(git_dir, journal.iter().map(String::as_str))?;
        crate::ref_journal::recover(git_dir)?;
    }
    remove_stale_ref_locks(git_dir, names)?;
    Ok(held)
}

/// Removes the `.lock` files of `names` and `packed-refs.lock`; call only while holding the
/// ref-transaction lock (whoever left them is dead).
pub(crate) fn remove_stale_ref_locks<'a>(
    git_dir: &Path,
    names: impl IntoIterator<Item = &'a str>,
) -> io::Result<()> {
    let stale = names
        .into_iter()
        .map(|n| git_dir.join(format!("{n}.lock")))
        .chain(std::iter::once(git_dir.join("packed-refs.lock")));
    for path in stale {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates the lock file at `path` already locked: it is locked under a temporary name and then
/// renamed into place, so nobody can see `path` unlocked (and take it) before its creator holds it.
pub fn create_held(path: &Path) -> io::Result<Held> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    file.try_lock().map_err(|e| match e {
        TryLockError::WouldBlock => io::Error::other("a new lock file is held by someone else"),
        TryLockError::Error(e) => e,
    })?;
    std::fs::rename(&tmp, path)?;
    Ok(Held {
        _file: file,
        path: path.to_owned(),
    })
}

/// Whether a live process holds the lock at `path` (a missing file is not held).
pub fn is_held(path: &Path) -> bool {
    let Ok(file) = OpenOptions::new().read(true).write(true).open(path) else {
        return false;
    };
    matches!(file.try_lock(), Err(TryLockError::WouldBlock))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.lock` file left by a writer killed mid-transaction does not block the ref: the next
    /// update (under the transaction lock) removes it. Found by the crash test (`crash.rs`).
    #[test]
    fn a_ref_lock_left_by_a_killed_writer_does_not_block_the_next_update() {
        use crate::read::testutil::{git, init, open};
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        git(dir, &["commit", "-q", "--allow-empty", "-m", "one"]);
        let head = git(dir, &["rev-parse", "HEAD"]).trim().to_owned();
        let id = gix::ObjectId::from_hex(head.as_bytes()).expect("id");
        let stale = dir.join(".git/refs/heads/main.lock");
        std::fs::write(&stale, "0000000000000000000000000000000000000000\n").expect("write");
        std::fs::write(dir.join(".git/packed-refs.lock"), "").expect("write");
        crate::read::branches::set_ref(&open(dir), "refs/heads/main", id, "after a crash")
            .expect("the stale lock does not block");
        assert!(!stale.exists());
        assert!(!dir.join(".git/packed-refs.lock").exists());
        // While another transaction holds the lock, it waits instead.
        let held = ref_transaction(&dir.join(".git"), ["refs/heads/main"]).expect("lock");
        let path = held.path().to_owned();
        assert!(try_lock(&path).expect("try").is_none());
        drop(held);
        assert!(try_lock(&path).expect("try").is_some());
    }

    #[test]
    fn a_held_lock_excludes_others_until_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.lock");
        assert!(!is_held(&path));
        let held = try_lock(&path).expect("lock").expect("free");
        assert!(is_held(&path));
        assert!(
            try_lock(&path).expect("lock").is_none(),
            "a second holder is refused"
        );
        drop(held);
        assert!(!is_held(&path));
        assert!(
            try_lock(&path).expect("lock").is_some(),
            "free again, file still there"
        );
        assert!(path.exists());
    }
}
