//! In-process queues for merges into one branch: merges into the same target wait for each other
//! instead of racing and retrying. Correctness does not depend on them (the target moves by
//! compare-and-swap, which also covers other processes and pushes); they only keep merges from
//! failing under contention inside one process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

type Locks = HashMap<(Uuid, String), Arc<tokio::sync::Mutex<()>>>;

/// One async mutex per (repository, branch), created on demand, dropped when unused.
#[derive(Debug, Default)]
pub struct BranchLocks {
    map: Mutex<Locks>,
}

impl BranchLocks {
    /// Waits for the branch's turn; the guard releases it.
    pub async fn lock(&self, repo: Uuid, branch: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut map = match self.map.lock() {
                Ok(m) => m,
                Err(poisoned) => poisoned.into_inner(),
            };
            // Forget locks nobody holds or waits for.
            map.retain(|_, m| Arc::strong_count(m) > 1);
            map.entry((repo, branch.to_owned())).or_default().clone()
        };
        m.lock_owned().await
    }
}
