//! `feed_post`: a post in the network service's feed after a push.
//!
//! `POST {AURA_NETWORK_URL}/internal/posts` with `X-Internal-Token` and the body built when the
//! push was accepted (see [`post_body`]); `Idempotency-Key` carries the push id so the service can
//! tell a repeat (a worker that died after posting, before recording success). 2xx succeeds; a 4xx
//! other than 408/429 fails at once; anything else (5xx, timeouts, refused connections) retries.

use entity::job;

use super::{JobError, Outcome};
use crate::state::AppState;

/// One updated ref of a push, as the feed wants it.
#[derive(Debug, Clone)]
pub struct PushedRef {
    /// Full ref name.
    pub name: String,
    /// Before (zeros for a create).
    pub old: String,
    /// After (zeros for a delete).
    pub new: String,
}

/// Who pushed what, for [`post_body`].
#[derive(Debug, Clone)]
pub struct Push<'a> {
    /// The repository.
    pub repo: &'a entity::repository::Model,
    /// The push's id (the dedup key).
    pub push_id: uuid::Uuid,
    /// The pushing user.
    pub user_id: Option<uuid::Uuid>,
    /// The agent (`X-Agent-Id`).
    pub agent_id: Option<uuid::Uuid>,
    /// The updated refs.
    pub refs: &'a [PushedRef],
    /// The new commits, newest first (at most 100).
    pub commit_shas: &'a [String],
    /// How many new commits in all.
    pub commit_count: usize,
}

/// The JSON body of a push's feed post.
pub fn post_body(p: &Push<'_>) -> serde_json::Value {
    serde_json::json!({
        "postType": "push",
        "orgId": p.repo.org_id,
        "projectId": p.repo.project_id,
        "repoId": p.repo.id,
        "repoName": p.repo.name,
        "pushId": p.push_id,
        "userId": p.user_id,
        "agentId": p.agent_id,
        "refs": p.refs.iter().map(|r| serde_json::json!({"ref": r.name, "oldSha": r.old, "newSha": r.new})).collect::<Vec<_>>(),
        "commitShas": p.commit_shas,
        "commitCount": p.commit_count,
    })
}

/// Runs one feed post.
pub async fn run(state: &AppState, job: &job::Model) -> Outcome {
    let Some(base) = &state.config.aura_network_url else {
        return Err(JobError::permanent(
            "AURA_NETWORK_URL is not set: there is no network service to post to",
        ));
    };
    let url = format!("{}/internal/posts", base.as_str().trim_end_matches('/'));
    let mut req = state
        .jobs
        .http
        .post(&url)
        .timeout(state.config.jobs.http_timeout)
        .json(&job.payload);
    if let Some(token) = &state.config.jobs.network_token {
        req = req.header("X-Internal-Token", token);
    }
    if let Some(push_id) = job.payload.get("pushId").and_then(|v| v.as_str()) {
        req = req.header("Idempotency-Key", push_id);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| JobError::transient(format!("POST {url}: {}", gitcore::error_chain(&e))))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(Some(serde_json::json!({"status": status.as_u16()})));
    }
    let body = resp.text().await.unwrap_or_default();
    Err(JobError::from_status(status, "the network service", &body))
}
