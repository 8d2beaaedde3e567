//! `webhook_delivery`: one POST of an event to a repository's webhook, signed like GitHub's.
//!
//! Headers: `X-Orbit-Event` (push, pull_request, branch), `X-Orbit-Delivery` (the delivery id),
//! `X-Orbit-Hook-Id`, and, when the hook has a secret, `X-Orbit-Signature-256: sha256=<hex HMAC-SHA256
//! of the body>`. Each attempt is recorded on the delivery (status, the first 2 KiB of the answer,
//! duration). 2xx succeeds; 4xx other than 408/429 fails at once; the rest retries with backoff.

use std::time::Instant;

use entity::job;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{JobError, Outcome};
use crate::state::AppState;
use crate::store::hooks::{self, Attempt};

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Runs one delivery attempt.
pub async fn run(state: &AppState, job: &job::Model) -> Outcome {
    let id = job
        .payload
        .get("deliveryId")
        .and_then(|v| v.as_str())
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .ok_or_else(|| JobError::permanent("the job has no delivery id"))?;
    let db_err = |e: sea_orm::DbErr| JobError::transient(format!("metadata store: {e}"));
    let Some(delivery) = hooks::delivery(&state.db, id).await.map_err(db_err)? else {
        return Ok(Some(
            serde_json::json!({"skipped": "the webhook was deleted"}),
        ));
    };
    let Some(hook) = hooks::get(&state.db, delivery.repo_id, delivery.hook_id)
        .await
        .map_err(db_err)?
    else {
        return Ok(Some(
            serde_json::json!({"skipped": "the webhook was deleted"}),
        ));
    };
    let body = serde_json::to_vec(&delivery.payload)
        .map_err(|e| JobError::permanent(format!("payload: {e}")))?;
    let mut req = state
        .jobs
        .http
        .post(&hook.url)
        .timeout(state.config.jobs.webhook_timeout)
        .header("Content-Type", "application/json")
        .header("X-Orbit-Event", &delivery.event)
        .header("X-Orbit-Delivery", delivery.id.to_string())
        .header("X-Orbit-Hook-Id", hook.id.to_string());
    if let Some(secret) = hook.secret.as_deref().filter(|s| !s.is_empty()) {
        req = req.header("X-Orbit-Signature-256", signature(secret, &body));
    }
    let started = Instant::now();
    let result = req.body(body).send().await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let last = job.attempts >= job.max_attempts;
    let (attempt, outcome) = match result {
        Ok(resp) => {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let snippet: String = text.chars().take(2048).collect();
            if status.is_success() {
                (
                    Attempt {
                        state: "succeeded",
                        status: Some(i32::from(status.as_u16())),
                        body: Some(snippet),
                        duration_ms,
                        error: None,
                    },
                    Ok(Some(serde_json::json!({"status": status.as_u16()}))),
                )
            } else {
                let e = JobError::from_status(status, "the webhook receiver", &text);
                (
                    Attempt {
                        state: if last || !e.retryable {
                            "failed"
                        } else {
                            "pending"
                        },
                        status: Some(i32::from(status.as_u16())),
                        body: Some(snippet),
                        duration_ms,
                        error: Some(e.message.clone()),
                    },
                    Err(e),
                )
            }
        }
        Err(e) => {
            let what = if e.is_timeout() {
                format!(
                    "timed out after {}s",
                    state.config.jobs.webhook_timeout.as_secs()
                )
            } else {
                gitcore::error_chain(&e)
            };
            let e = JobError::transient(format!("POST {}: {what}", hook.url));
            (
                Attempt {
                    state: if last { "failed" } else { "pending" },
                    status: None,
                    body: None,
                    duration_ms,
                    error: Some(e.message.clone()),
                },
                Err(e),
            )
        }
    };
    hooks::record_attempt(&state.db, delivery, attempt)
        .await
        .map_err(db_err)?;
    outcome
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_matches_githubs_documented_example() {
        // GitHub's documented test vector for X-Hub-Signature-256.
        assert_eq!(
            super::signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
