//! Open repositories, cached (bounded, least recently used out) so requests do not re-open and
//! re-read configuration each time. Each request takes a thread-local handle from the shared one.
//!
//! A cached handle stays correct as the repository changes: references are read from disk on
//! each use, and packs added by a push are picked up by the object store on a lookup miss.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The cache.
#[derive(Debug)]
pub struct RepoCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tick: u64,
    map: HashMap<PathBuf, (gitcore::ThreadSafeRepository, u64)>,
}

impl RepoCache {
    /// A cache of at most `capacity` repositories.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// A handle on the repository at `path` for this thread, opening it if needed. Blocking.
    pub fn open(&self, path: &Path) -> Result<gitcore::Repository, gitcore::storage::Error> {
        if let Ok(mut inner) = self.inner.lock() {
            inner.tick += 1;
            let tick = inner.tick;
            if let Some((repo, used)) = inner.map.get_mut(path) {
                *used = tick;
                return Ok(gitcore::storage::with_delta_cache(repo.to_thread_local()));
            }
        }
        let repo = gitcore::storage::open(path)?;
        let shared = repo.clone().into_sync();
        if let Ok(mut inner) = self.inner.lock() {
            if inner.map.len() >= self.capacity {
                if let Some(oldest) = inner
                    .map
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(p, _)| p.clone())
                {
                    inner.map.remove(&oldest);
                }
            }
            let tick = inner.tick;
            inner.map.insert(path.to_owned(), (shared, tick));
        }
        Ok(repo)
    }
}
