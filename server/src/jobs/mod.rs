//! The durable job queue's workers: tokio tasks inside `orbit serve` that claim jobs from the
//! metadata store (see [`crate::store::jobs`]), run their handler, and record the outcome.
//!
//! - A claimed job carries a lease; the worker renews it while the handler runs, so a long push
//!   mirror is not taken over, and a worker that died (SIGKILL, lost host) leaves a lease that
//!   expires and lets another worker, of any process, run the job again.
//! - Handlers are idempotent: a feed post carries its push id as the dedup key, a webhook delivery
//!   its delivery id, and a push mirror computes what to push from the refs when it runs.
//! - A failure the handler calls retryable is retried with exponential backoff and jitter until the
//!   kind's `max_attempts`; then, or on a permanent failure, the job stays `failed` with its last
//!   error, visible in `/admin/jobs/failed` and retryable there.

pub mod feed;
pub mod mirror;
pub mod upkeep;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use entity::job;
use rand::Rng;
use tokio::sync::Notify;

use crate::state::AppState;
use crate::store::jobs::{self as queue, Finish, Kind};

/// What a handler reports.
pub type Outcome = Result<Option<serde_json::Value>, JobError>;

/// Why a handler failed.
#[derive(Debug, Clone)]
pub struct JobError {
    /// Whether trying again may help (network errors, 5xx, 408, 429).
    pub retryable: bool,
    /// What went wrong, for `lastError`.
    pub message: String,
}

impl JobError {
    /// A failure worth retrying.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            message: message.into(),
        }
    }

    /// A failure that retrying will not fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            message: message.into(),
        }
    }

    /// Classifies an HTTP answer that was not 2xx: 4xx other than 408 and 429 is permanent.
    pub fn from_status(status: reqwest::StatusCode, what: &str, body: &str) -> Self {
        let text: String = body.chars().take(300).collect();
        let message = format!("{what} answered {status}: {}", text.trim());
        if status.is_client_error()
            && status != reqwest::StatusCode::REQUEST_TIMEOUT
            && status != reqwest::StatusCode::TOO_MANY_REQUESTS
        {
            Self::permanent(message)
        } else {
            Self::transient(message)
        }
    }
}

/// The queue's in-process side: wakes idle workers when this process enqueues, and the HTTP
/// client handlers share.
#[derive(Debug)]
pub struct Queue {
    wake: Notify,
    /// The HTTP client of feed posts, webhooks and integration lookups (rustls, platform roots).
    pub http: reqwest::Client,
    /// This process's worker identity prefix (host, pid), for leases.
    pub owner: String,
    /// GitHub integrations of orgs, looked up by mirror jobs.
    pub integrations: mirror::IntegrationCache,
}

impl Queue {
    /// A queue handle for this process.
    pub fn new() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "host".to_owned());
        let http = reqwest::Client::builder()
            .user_agent(concat!("orbit/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            wake: Notify::new(),
            http,
            owner: format!("{host}:{}", std::process::id()),
            integrations: mirror::IntegrationCache::default(),
        }
    }

    /// Wakes the workers of this process (call after a transaction that enqueued jobs commits).
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }
}

impl Default for Queue {
    fn default() -> Self {
        Self::new()
    }
}

/// Starts `config.jobs.workers` worker tasks. They stop when `shutdown` is notified.
pub fn spawn_workers(state: &AppState, shutdown: Arc<Notify>) {
    for n in 0..state.config.jobs.workers {
        let state = state.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let owner = format!("{}:w{n}", state.jobs.owner);
            tokio::select! {
                () = worker(&state, &owner) => {}
                () = shutdown.notified() => {}
            }
        });
    }
    if state.config.jobs.workers > 0 {
        tracing::info!(workers = state.config.jobs.workers, "job workers started");
    }
}

async fn worker(state: &AppState, owner: &str) {
    let cfg = &state.config.jobs;
    loop {
        // Register for a wake-up before looking, so an enqueue in between is not missed.
        let woken = state.jobs.wake.notified();
        match queue::claim(&state.db, owner, cfg.lease).await {
            Ok(Some(job)) => run_one(state, owner, job).await,
            Ok(None) => {
                let _ = tokio::time::timeout(cfg.poll, woken).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "job queue: claim failed");
                tokio::time::sleep(cfg.poll).await;
            }
        }
    }
}

/// The delay before the retry that follows attempt `attempt` (1-based): `base · 2^(attempt-1)`,
/// capped at 10 minutes, times a random factor in [0.5, 1.0] (jitter, so failures of many jobs
/// against one service do not come back in step).
pub fn backoff(base: Duration, attempt: i32) -> Duration {
    let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 20)).unwrap_or(0);
    let full = base
        .saturating_mul(1u32 << exp)
        .min(Duration::from_secs(600));
    full.mul_f64(rand::rng().random_range(0.5..=1.0))
}

async fn run_one(state: &AppState, owner: &str, job: job::Model) {
    let cfg = &state.config.jobs;
    let id = job.id;
    if job.attempts > job.max_attempts {
        // Its workers kept dying (lease expiries count as attempts): stop here.
        let _ = queue::finish(
            &state.db,
            id,
            owner,
            Finish::Failed(format!(
                "gave up after {} attempts (the last ones did not finish: the worker stopped)",
                job.max_attempts
            )),
        )
        .await;
        return;
    }
    // Renew the lease while the handler runs.
    let renew = {
        let db = state.db.clone();
        let owner = owner.to_owned();
        let lease = cfg.lease;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                match queue::renew(&db, id, &owner, lease).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!(error = %e, %id, "job lease renewal failed"),
                }
            }
        })
    };
    let outcome = match Kind::parse(&job.kind) {
        Some(Kind::FeedPost) => feed::run(state, &job).await,
        Some(Kind::WebhookDelivery) => webhook::run(state, &job).await,
        Some(Kind::RepoUpkeep) => upkeep::run(state, &job).await,
        Some(Kind::PushMirror) => mirror::run(state, &job).await,
        None => Err(JobError::permanent(format!(
            "unknown job kind {:?}",
            job.kind
        ))),
    };
    renew.abort();
    let finish = match outcome {
        Ok(result) => {
            tracing::info!(%id, kind = %job.kind, attempt = job.attempts, "job succeeded");
            let mut result = result.unwrap_or_else(|| serde_json::json!({}));
            if let Some(map) = result.as_object_mut() {
                map.insert("worker".to_owned(), owner.into());
            }
            Finish::Succeeded(Some(result))
        }
        Err(e) if e.retryable && job.attempts < job.max_attempts => {
            let delay = backoff(cfg.retry_base, job.attempts);
            tracing::warn!(%id, kind = %job.kind, attempt = job.attempts, error = %e.message,
                retry_in_ms = delay.as_millis() as u64, "job failed; will retry");
            Finish::Retry {
                error: e.message,
                at: Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default(),
            }
        }
        Err(e) => {
            tracing::warn!(%id, kind = %job.kind, attempt = job.attempts, error = %e.message,
                "job failed for good");
            Finish::Failed(e.message)
        }
    };
    match queue::finish(&state.db, id, owner, finish).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(%id, "job lease was lost before it finished; its new holder decides")
        }
        Err(e) => {
            tracing::error!(error = %e, %id, "could not record a job's outcome (its lease will expire and it runs again)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let base = Duration::from_secs(2);
        for attempt in 1..=12 {
            let full = base
                .saturating_mul(1 << (attempt - 1))
                .min(Duration::from_secs(600));
            for _ in 0..50 {
                let d = backoff(base, attempt);
                assert!(d <= full && d >= full / 2, "{attempt}: {d:?} vs {full:?}");
            }
        }
        assert!(backoff(base, 40) <= Duration::from_secs(600));
        assert!(backoff(base, 0) <= base);
    }
}
