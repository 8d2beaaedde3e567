//! Mergeability answers, cached per (repository, target tip, source tip). The key names commits
//! by id, so an entry never goes stale: a push changes a tip and with it the key. Processes that
//! share the storage root each keep their own cache and compute the same answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use gitcore::merge::Analysis;
use gitcore::ObjectId;
use uuid::Uuid;

type Key = (Uuid, ObjectId, ObjectId);

/// The cache: at most `capacity` answers, least recently used out.
#[derive(Debug)]
pub struct MergeCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tick: u64,
    map: HashMap<Key, (Arc<Analysis>, u64)>,
}

impl MergeCache {
    /// A cache of at most `capacity` answers.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The cached answer for merging `source` into `target` in `repo`.
    pub fn get(&self, repo: Uuid, target: ObjectId, source: ObjectId) -> Option<Arc<Analysis>> {
        let mut inner = self.inner.lock().ok()?;
        inner.tick += 1;
        let tick = inner.tick;
        inner.map.get_mut(&(repo, target, source)).map(|(a, used)| {
            *used = tick;
            a.clone()
        })
    }

    /// Remembers an answer.
    pub fn put(&self, repo: Uuid, analysis: Arc<Analysis>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.tick += 1;
        let tick = inner.tick;
        if inner.map.len() >= self.capacity {
            if let Some(oldest) = inner
                .map
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| *k)
            {
                inner.map.remove(&oldest);
            }
        }
        inner
            .map
            .insert((repo, analysis.target, analysis.source), (analysis, tick));
    }
}
