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
