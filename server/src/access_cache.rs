//! What a read of repository content needs from the database — the repository row and the
//! caller's role on it — kept for a moment, so a burst of clones and fetches does not query for
//! each request.
//!
//! - Only content reads use it: git's `info/refs` and upload-pack, and the REST git data,
//!   compare, blame and archive reads (`api::access::load_content`). Pushes, writes, and the
//!   repository and collaborator resources themselves query the database every time.
//! - In this process a change is seen at once: every write to a repository row or a
//!   collaborator calls [`changed`], which moves a process-wide generation; an entry taken
//!   under an older generation is not used. The generation is read *before* the query and
//!   bumped *after* the write commits, so an entry can never hold data older than its
//!   generation claims.
//! - Another process (another Orbit node on the same database) sees a change within the TTL
//!   (`GIT_ACCESS_CACHE_MS`, 1 s by default; 0 turns the cache off).
//! - "Not found" is never kept: a repository created elsewhere is visible at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use entity::repository;
use uuid::Uuid;

use crate::store::Role;

/// Entries kept in each map before the expired ones are swept out (and, if that is not
/// enough, all of them).
const MAX_ENTRIES: usize = 8192;

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Records that a repository row or a collaborator changed (call after the write commits).
pub fn changed() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// The generation to stamp an entry with: read it before the query the entry comes from.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    at: Instant,
    generation: u64,
}

#[derive(Debug)]
struct Map<K, V> {
    inner: Mutex<HashMap<K, Entry<V>>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> Map<K, V> {
    fn new() -> Self {
        Self {
            inner: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K, ttl: Duration) -> Option<V> {
        let now = generation();
        let inner = self.inner.lock().ok()?;
        let e = inner.get(key)?;
        (e.generation == now && e.at.elapsed() < ttl).then(|| e.value.clone())
    }

    fn put(&self, key: K, value: V, generation: u64, ttl: Duration) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.len() >= MAX_ENTRIES {
            let now = self::generation();
            inner.retain(|_, e| e.generation == now && e.at.elapsed() < ttl);
            if inner.len() >= MAX_ENTRIES {
                inner.clear();
            }
        }
        inner.insert(
            key,
            Entry {
                value,
                at: Instant::now(),
                generation,
            },
        );
    }
}

/// The cache of one process.
#[derive(Debug)]
pub struct AccessCache {
    ttl: Duration,
    repos: Map<(Uuid, String), repository::Model>,
    roles: Map<(Uuid, Uuid), Option<Role>>,
}

impl AccessCache {
    /// A cache whose entries live `ttl` (zero: nothing is kept).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            repos: Map::new(),
            roles: Map::new(),
        }
    }

    fn on(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The live repository `name` (already lower-cased) of `org_id`, if kept.
    pub fn repo(&self, org_id: Uuid, name_lower: &str) -> Option<repository::Model> {
        if !self.on() {
            return None;
        }
        self.repos.get(&(org_id, name_lower.to_owned()), self.ttl)
    }

    /// Keeps a repository row read under `generation`.
    pub fn put_repo(&self, generation: u64, row: &repository::Model) {
        if self.on() {
            self.repos.put(
                (row.org_id, row.name.to_lowercase()),
                row.clone(),
                generation,
                self.ttl,
            );
        }
    }

    /// The role of `user_id` on repository `repo_id`, if kept (`Some(None)`: known to have none).
    pub fn role(&self, repo_id: Uuid, user_id: Uuid) -> Option<Option<Role>> {
        if !self.on() {
            return None;
        }
        self.roles.get(&(repo_id, user_id), self.ttl)
    }

    /// Keeps a role read under `generation`.
    pub fn put_role(&self, generation: u64, repo_id: Uuid, user_id: Uuid, role: Option<Role>) {
        if self.on() {
            self.roles
                .put((repo_id, user_id), role, generation, self.ttl);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str) -> repository::Model {
        let now = chrono::Utc::now();
        repository::Model {
            id: Uuid::new_v4(),
            org_id: Uuid::new_v4(),
            project_id: Uuid::new_v4(),
            owner_id: Uuid::new_v4(),
            name: name.to_owned(),
            name_lower: name.to_lowercase(),
            description: None,
            visibility: "private".into(),
            default_branch: "main".into(),
            storage_path: "x".into(),
            archived: false,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        }
    }

    #[test]
    fn an_entry_is_served_until_a_change_or_the_ttl() {
        let c = AccessCache::new(Duration::from_millis(300));
        let r = row("Repo");
        let user = Uuid::new_v4();
        // Tests in this binary run in parallel and may call `changed` too: retry the read
        // under a stable generation.
        let mut seen = false;
        for _ in 0..50 {
            let g = generation();
            c.put_repo(g, &r);
            c.put_role(g, r.id, user, Some(Role::Reader));
            if c.repo(r.org_id, "repo").is_some_and(|m| m.id == r.id)
                && c.role(r.id, user) == Some(Some(Role::Reader))
            {
                seen = true;
                break;
            }
        }
        assert!(seen, "a fresh entry is served");
        assert_eq!(c.repo(r.org_id, "other"), None);
        assert_eq!(c.role(r.id, Uuid::new_v4()), None);

        changed();
        assert_eq!(c.repo(r.org_id, "repo"), None, "a change drops it");
        assert_eq!(c.role(r.id, user), None);

        c.put_repo(generation(), &r);
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(c.repo(r.org_id, "repo"), None, "the TTL drops it");
    }

    #[test]
    fn an_entry_read_before_a_change_is_not_served_after_it() {
        let c = AccessCache::new(Duration::from_secs(60));
        let r = row("r");
        let before = generation();
        // The write commits and bumps while the read was in flight.
        changed();
        c.put_repo(before, &r);
        assert_eq!(c.repo(r.org_id, "r"), None);
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let c = AccessCache::new(Duration::ZERO);
        let r = row("r");
        c.put_repo(generation(), &r);
        assert_eq!(c.repo(r.org_id, "r"), None);
    }

    #[test]
    fn a_full_map_is_swept_not_grown() {
        let c = AccessCache::new(Duration::from_secs(60));
        for _ in 0..(MAX_ENTRIES + 10) {
            c.put_repo(generation(), &row(&Uuid::new_v4().to_string()));
        }
        let n = c.repos.inner.lock().map(|m| m.len()).unwrap_or(0);
        assert!(n <= MAX_ENTRIES, "{n}");
    }
}
