//! `push_mirror`: pushes the repository's branches and tags to the org's GitHub mirror so the
//! remote's `refs/heads/*` and `refs/tags/*` equal ours (creates, fast-forwards, force-updates,
//! deletes), natively: gitcore's send-pack client over reqwest, no git executable.
//!
//! The integration comes from the network service:
//! `GET {AURA_NETWORK_URL}/internal/orgs/{orgId}/integrations/github` with `X-Internal-Token`,
//! answering `{"owner": "acme", "token": "<installation token>", "repo"?: "<name on GitHub>",
//! "enabled"?: true}`; 404 (or `enabled: false`) means the org has none and the job succeeds
//! with nothing to do. Answers are cached for a minute per org. The remote is
//! `{GITHUB_BASE_URL}/{owner}/{repo}.git` (the Orbit repository's name unless `repo` says
//! otherwise), with the token as the Basic password of `x-access-token`.
//!
//! A mirror job pushes the refs as they are when it runs, so a later job supersedes queued
//! earlier ones (see [`crate::store::jobs::enqueue`]) and jobs of one repository run one at a time.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use entity::job;
use gitcore::client::send_pack;
use serde::Deserialize;
use uuid::Uuid;

use super::{JobError, Outcome};
use crate::state::AppState;
use crate::store;

/// The namespaces a mirror keeps equal.
const MIRRORED: [&str; 2] = ["refs/heads/", "refs/tags/"];

/// How long an integration lookup is reused.
const INTEGRATION_TTL: Duration = Duration::from_secs(60);

/// An org's GitHub integration, as the network service describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Integration {
    /// The GitHub account or organization.
    pub owner: String,
    /// A token allowed to push (sent as the Basic password of `x-access-token`).
    pub token: String,
    /// The repository's name on GitHub, when it differs from Orbit's.
    #[serde(default)]
    pub repo: Option<String>,
    /// Whether mirroring is on (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Integration lookups by org, for a minute.
#[derive(Debug, Default)]
pub struct IntegrationCache {
    entries: Mutex<HashMap<Uuid, (Instant, Option<Integration>)>>,
}

async fn integration(state: &AppState, org: Uuid) -> Result<Option<Integration>, JobError> {
    let cache = &state.jobs.integrations;
    if let Some((at, found)) = cache
        .entries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&org)
    {
        if at.elapsed() < INTEGRATION_TTL {
            return Ok(found.clone());
        }
    }
    let Some(base) = &state.config.aura_network_url else {
        return Ok(None);
    };
    let url = format!(
        "{}/internal/orgs/{org}/integrations/github",
        base.as_str().trim_end_matches('/')
    );
    let mut req = state
        .jobs
        .http
        .get(&url)
        .timeout(state.config.jobs.http_timeout);
    if let Some(token) = &state.config.jobs.network_token {
        req = req.header("X-Internal-Token", token);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| JobError::transient(format!("GET {url}: {}", gitcore::error_chain(&e))))?;
    let status = resp.status();
    let found = if status == reqwest::StatusCode::NOT_FOUND {
        None
    } else if status.is_success() {
        let i: Integration = resp.json().await.map_err(|e| {
            JobError::permanent(format!(
                "the integration at {url} is not the expected JSON: {e}"
            ))
        })?;
        i.enabled.unwrap_or(true).then_some(i)
    } else {
        let body = resp.text().await.unwrap_or_default();
        return Err(JobError::from_status(
            status,
            "the integration lookup",
            &body,
        ));
    };
    cache
        .entries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(org, (Instant::now(), found.clone()));
    Ok(found)
}

fn http_failure(status: reqwest::StatusCode, what: &str, body: &str) -> JobError {
    // Bad credentials or a missing repository do not fix themselves.
    if matches!(status.as_u16(), 401 | 403 | 404) {
        let text: String = body.chars().take(300).collect();
        JobError::permanent(format!("{what} answered {status}: {}", text.trim()))
    } else {
        JobError::from_status(status, what, body)
    }
}

/// Runs one mirror push.
pub async fn run(state: &AppState, job: &job::Model) -> Outcome {
    let repo_id = job
        .repo_id
        .ok_or_else(|| JobError::permanent("the job names no repository"))?;
    let Some(repo) = store::repos::find_by_id(&state.db, repo_id)
        .await
        .map_err(|e| JobError::transient(format!("metadata store: {e}")))?
    else {
        return Ok(Some(
            serde_json::json!({"skipped": "the repository is gone"}),
        ));
    };
    let Some(integration) = integration(state, repo.org_id).await? else {
        return Ok(Some(
            serde_json::json!({"skipped": "the org has no GitHub integration"}),
        ));
    };
    let name = integration
        .repo
        .clone()
        .unwrap_or_else(|| repo.name.clone());
    let remote = format!(
        "{}/{}/{}.git",
        state
            .config
            .jobs
            .github_base_url
            .as_str()
            .trim_end_matches('/'),
        integration.owner,
        name
    );
    let http = &state.jobs.http;
    let token = integration.token.clone();

    // The remote's refs.
    let adv_url = format!("{remote}/info/refs?service=git-receive-pack");
    let resp = http
        .get(&adv_url)
        .basic_auth("x-access-token", Some(&token))
        .timeout(state.config.jobs.http_timeout)
        .send()
        .await
        .map_err(|e| JobError::transient(format!("GET {adv_url}: {}", gitcore::error_chain(&e))))?;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp
        .bytes()
        .await
        .map_err(|e| JobError::transient(format!("GET {adv_url}: {e}")))?;
    if !status.is_success() {
        return Err(http_failure(
            status,
            "the mirror",
            &String::from_utf8_lossy(&body),
        ));
    }
    if content_type != "application/x-git-receive-pack-advertisement" {
        return Err(JobError::permanent(format!(
            "{remote} is not a smart-HTTP git server (content type {content_type:?})"
        )));
    }
    let advertised = send_pack::parse_advertisement(&body[..])
        .map_err(|e| JobError::permanent(gitcore::error_chain(&e)))?;

    // What to send, computed from our refs as they are now.
    let path = state.config.storage_root.join(&repo.storage_path);
    let repos = state.repos.clone();
    let adv = advertised.clone();
    let commands = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let r = repos.open(&path).map_err(|e| e.to_string())?;
        let snapshot = gitcore::refs::Snapshot::read(&r).map_err(|e| gitcore::error_chain(&e))?;
        Ok(send_pack::mirror_commands(&snapshot, &adv, &MIRRORED))
    })
    .await
    .map_err(|e| JobError::transient(e.to_string()))?
    .map_err(JobError::transient)?;
    if commands.is_empty() {
        return Ok(Some(
            serde_json::json!({"remote": remote, "upToDate": true, "refs": []}),
        ));
    }

    // The request streams from a blocking thread into the HTTP body.
    let (tx, stream) = crate::body_channel::channel(8);
    let path = state.config.storage_root.join(&repo.storage_path);
    let repos = state.repos.clone();
    let cmds = commands.clone();
    let permit = state
        .git_permits
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| JobError::transient(e.to_string()))?;
    let writer = tokio::task::spawn_blocking(move || -> Result<usize, String> {
        let _permit = permit;
        let r = repos.open(&path).map_err(|e| e.to_string())?;
        let out = io::BufWriter::with_capacity(64 * 1024, tx);
        let interrupt = AtomicBool::new(false);
        send_pack::write_request(&r, &cmds, &advertised, out, &interrupt)
            .map(|s| s.objects)
            .map_err(|e| gitcore::error_chain(&e))
    });
    let post_url = format!("{remote}/git-receive-pack");
    let sent = http
        .post(&post_url)
        .basic_auth("x-access-token", Some(&token))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-git-receive-pack-request",
        )
        .header(
            reqwest::header::ACCEPT,
            "application/x-git-receive-pack-result",
        )
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    let objects = writer
        .await
        .map_err(|e| JobError::transient(e.to_string()))?
        .map_err(|e| JobError::transient(format!("generating the push: {e}")))?;
    let resp = sent.map_err(|e| {
        JobError::transient(format!("POST {post_url}: {}", gitcore::error_chain(&e)))
    })?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| JobError::transient(format!("POST {post_url}: {e}")))?;
    if !status.is_success() {
        return Err(http_failure(
            status,
            "the mirror",
            &String::from_utf8_lossy(&body),
        ));
    }
    let report = send_pack::parse_report(&body[..])
        .map_err(|e| JobError::transient(gitcore::error_chain(&e)))?;
    let results: Vec<serde_json::Value> = commands
        .iter()
        .map(|c| {
            let outcome = report.refs.iter().find(|(n, _)| *n == c.name).map(|(_, r)| r);
            serde_json::json!({
                "ref": c.name,
                "oldSha": c.old.to_string(),
                "newSha": c.new.to_string(),
                "status": match outcome { Some(Ok(())) => "ok", Some(Err(_)) => "rejected", None => "unreported" },
                "reason": outcome.and_then(|r| r.as_ref().err()),
            })
        })
        .collect();
    if let Some(failure) = report.first_failure() {
        return Err(JobError::permanent(format!(
            "the mirror {remote} refused: {failure}"
        )));
    }
    Ok(Some(
        serde_json::json!({"remote": remote, "objects": objects, "refs": results}),
    ))
}
