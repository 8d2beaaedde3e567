//! Shared application state, handed to handlers through `State` and `FromRef`.

use std::sync::Arc;

use axum::extract::FromRef;
use sea_orm::DatabaseConnection;

use crate::auth::Authenticator;
use crate::config::Config;

/// Everything a handler may need. Cheap to clone.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// The metadata store.
    pub db: DatabaseConnection,
    /// Credential verification.
    pub auth: Arc<Authenticator>,
    /// The configuration in effect.
    pub config: Arc<Config>,
    /// Repository rows and roles for git reads, kept for a moment.
    pub access: Arc<crate::access_cache::AccessCache>,
    /// Open repositories.
    pub repos: Arc<crate::repo_cache::RepoCache>,
    /// Permits for blocking git work (advertisements, upload-pack, receive-pack): four per core
    /// (at least 8), so a burst of requests queues instead of growing the blocking pool and
    /// its memory. A permit is held while a reply streams, so a slow reader holds one.
    pub git_permits: Arc<tokio::sync::Semaphore>,
    /// Mergeability answers by (repository, target tip, source tip).
    pub merges: Arc<crate::merge_cache::MergeCache>,
    /// Merges into one branch take turns (within this process).
    pub merge_queue: Arc<crate::branch_locks::BranchLocks>,
    /// Rate limits per caller.
    pub limiter: Arc<crate::limits::Limiter>,
    /// Identical upload-pack answers, shared (none when `GIT_PACK_CACHE_MAX_BYTES=0`).
    pub pack_cache: Option<Arc<gitcore::pack_cache::PackCache>>,
    /// Per-repository admission of git work.
    pub admission: Arc<crate::limits::admission::Admission>,
    /// The job queue's in-process side (wake-ups, the HTTP client of handlers).
    pub jobs: Arc<crate::jobs::Queue>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}
