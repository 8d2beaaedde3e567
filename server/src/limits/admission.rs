//! Admission control for git work: per repository, at most `GIT_MAX_CONCURRENT_PER_REPO`
//! upload-packs (and as many receive-packs) run at once; up to `GIT_MAX_QUEUE` more wait, each at
//! most `GIT_MAX_QUEUE_WAIT_SECS`. A full queue or a wait past the limit is refused before any
//! work starts (the handler answers 429 with `Retry-After`), so a clone storm on one repository
//! queues instead of exhausting memory, and other repositories are not starved.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

/// Which kind of git work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Work {
    /// Pack generation (clone, fetch).
    Upload,
    /// Pack ingestion (push).
    Receive,
}

#[derive(Debug)]
struct Gate {
    running: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// Why work was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The repository's queue is full.
    QueueFull,
    /// The wait in the queue passed the limit.
    Timeout,
}

/// Held while admitted work runs (and its reply streams).
#[derive(Debug)]
pub struct Ticket {
    _permit: OwnedSemaphorePermit,
}

/// The gates of every repository with git work in this process.
#[derive(Debug)]
pub struct Admission {
    gates: Mutex<HashMap<(Uuid, Work), Arc<Gate>>>,
    per_repo: usize,
    queue: usize,
    wait: Duration,
    queued: AtomicUsize,
}

impl Admission {
    /// Gates admitting `per_repo` at once with `queue` waiting at most `wait`.
    pub fn new(per_repo: usize, queue: usize, wait: Duration) -> Self {
        Self {
            gates: Mutex::default(),
            per_repo: per_repo.max(1),
            queue,
            wait,
            queued: AtomicUsize::new(0),
        }
    }

    /// How long a refused client should wait before retrying.
    pub fn retry_after(&self) -> Duration {
        (self.wait / 2).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// Requests waiting for a gate now, in all repositories.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    fn gate(&self, key: (Uuid, Work)) -> Arc<Gate> {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        if gates.len() > 4096 {
            let per_repo = self.per_repo;
            gates.retain(|_, g| {
                g.waiting.load(Ordering::Relaxed) > 0
                    || g.running.available_permits() < per_repo
                    || Arc::strong_count(g) > 1
            });
        }
        gates
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Gate {
                    running: Arc::new(Semaphore::new(self.per_repo)),
                    waiting: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    /// Waits for a turn to run `work` on `repo`.
    pub async fn enter(&self, repo: Uuid, work: Work) -> Result<Ticket, Refused> {
        let gate = self.gate((repo, work));
        if let Ok(permit) = gate.running.clone().try_acquire_owned() {
            return Ok(Ticket { _permit: permit });
        }
        if gate.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            gate.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::QueueFull);
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        let waited = tokio::time::timeout(self.wait, gate.running.clone().acquire_owned()).await;
        gate.waiting.fetch_sub(1, Ordering::AcqRel);
        self.queued.fetch_sub(1, Ordering::Relaxed);
        match waited {
            Ok(Ok(permit)) => Ok(Ticket { _permit: permit }),
            Ok(Err(_)) | Err(_) => Err(Refused::Timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admits_up_to_the_limit_queues_then_refuses() {
        let a = Arc::new(Admission::new(2, 1, Duration::from_millis(200)));
        let repo = Uuid::new_v4();
        let t1 = a.enter(repo, Work::Upload).await.expect("first");
        let _t2 = a.enter(repo, Work::Upload).await.expect("second");
        // Another repository, and pushes, have their own gates.
        let _other = a
            .enter(Uuid::new_v4(), Work::Upload)
            .await
            .expect("other repo");
        let _push = a.enter(repo, Work::Receive).await.expect("push");
        // The third waits; a fourth finds the queue full.
        let a2 = a.clone();
        let waiter = tokio::spawn(async move { a2.enter(repo, Work::Upload).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(a.queued(), 1);
        assert_eq!(
            a.enter(repo, Work::Upload).await.err(),
            Some(Refused::QueueFull)
        );
        drop(t1);
        assert!(
            waiter.await.expect("join").is_ok(),
            "the waiter got the freed turn"
        );
        // Nobody frees a turn now: the wait times out.
        let _t3 = a.enter(repo, Work::Upload).await;
        assert_eq!(
            a.enter(repo, Work::Upload).await.err(),
            Some(Refused::Timeout)
        );
    }
}
