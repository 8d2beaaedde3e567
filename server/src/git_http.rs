//! Git smart HTTP: `info/refs`, `git-upload-pack` and `git-receive-pack` for registered
//! repositories at `/{orgId}/{repo}.git/...` (the `.git` suffix is optional).
//!
//! The protocol itself is gitcore's, run on a blocking thread. Request bodies stream in through a
//! bounded channel (gzip-decoded when git compressed them) and upload-pack responses stream out
//! the same way, so memory does not grow with the repository and a client that goes away stops
//! the work. receive-pack reports are small: they are collected, the push is audited, then sent.

use std::io::{self, Read, Write};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use futures_util::StreamExt;
use gitcore::advertise::Service;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::api::access::{self, Need};
use crate::auth::{Caller, Identity};
use crate::state::AppState;
use crate::store;

/// The git routes. They are not under `/v1` and have no body size limit of their own (packs are
/// limited by `GIT_MAX_PACK_BYTES` inside receive-pack).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{org_id}/{repo}/info/refs", get(info_refs))
        .route("/{org_id}/{repo}/git-upload-pack", post(upload_pack))
        .route("/{org_id}/{repo}/git-receive-pack", post(receive_pack))
        .layer(DefaultBodyLimit::disable())
}

/// A git-facing failure: plain text, and the two `WWW-Authenticate` headers on 401 so git's
/// credential machinery prompts (Basic) and token clients know what to send (Bearer).
#[derive(Debug)]
pub(crate) struct GitError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl GitError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 429 for work the repository's gate did not admit.
    fn busy(state: &AppState, why: crate::limits::admission::Refused) -> Self {
        let secs = state.admission.retry_after().as_secs().max(1);
        let what = match why {
            crate::limits::admission::Refused::QueueFull => "too many git requests are queued",
            crate::limits::admission::Refused::Timeout => "git requests waited too long",
        };
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!("the repository is busy ({what} for it); retry in {secs}s"),
            retry_after: Some(secs),
        }
    }
}

impl IntoResponse for GitError {
    fn into_response(self) -> Response {
        let mut r = (self.status, format!("{}\n", self.message)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            let h = r.headers_mut();
            h.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"orbit\""),
            );
            h.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"orbit\""),
            );
        }
        r
    }
}

/// The JWT in a git request: Basic with the JWT as password (any user name), Basic
/// `<jwt>:x-oauth-basic`, or Bearer.
pub(crate) fn git_token(headers: &HeaderMap) -> Result<Option<String>, GitError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || GitError::new(StatusCode::UNAUTHORIZED, "invalid credentials");
    let value = value.to_str().map_err(|_| bad())?;
    let (scheme, rest) = value.split_once(' ').ok_or_else(bad)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Some(rest.to_owned()).filter(|t| !t.is_empty()));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (user, pass) = decoded.split_once(':').unwrap_or((decoded.as_str(), ""));
    let token = if pass == "x-oauth-basic" || pass.is_empty() {
        user
    } else {
        pass
    };
    Ok(Some(token.to_owned()).filter(|t| !t.is_empty()))
}

/// The token verified by the rate limiter for this request, if any.
type Verified = Option<axum::Extension<crate::auth::Verified>>;

async fn git_caller(
    state: &AppState,
    headers: &HeaderMap,
    verified: &Verified,
) -> Result<Option<Identity>, GitError> {
    match git_token(headers)? {
        None => Ok(None),
        Some(jwt) if verified.as_ref().is_some_and(|v| v.jwt == jwt) => {
            Ok(verified.as_ref().map(|v| v.identity.clone()))
        }
        Some(jwt) => match state.auth.verify_jwt(&jwt).await {
            Ok(id) => Ok(Some(id)),
            Err(e) => Err(GitError::new(
                StatusCode::UNAUTHORIZED,
                format!("invalid token: {e}"),
            )),
        },
    }
}

/// Finds the repository and checks the caller may do `need`, answering as git clients expect:
/// anonymous callers get 401 (so git asks for credentials), authenticated ones 404 for what they
/// may not see and 403 for what they may see but not change.
async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    verified: &Verified,
    org_id: &str,
    repo: &str,
    need: Need,
) -> Result<(entity::repository::Model, Option<Identity>), GitError> {
    let identity = git_caller(state, headers, verified).await?;
    let anonymous = identity.is_none();
    let hidden = || {
        if anonymous {
            GitError::new(StatusCode::UNAUTHORIZED, "authentication required")
        } else {
            GitError::new(StatusCode::NOT_FOUND, "repository not found")
        }
    };
    let name = repo.strip_suffix(".git").unwrap_or(repo);
    let org_id = Uuid::parse_str(org_id).map_err(|_| hidden())?;
    if need != Need::Read && anonymous {
        // An anonymous push is refused before any role lookup; the message says why when the
        // repository exists (and is the plain 401 of any anonymous request when it does not).
        let _ = store::repos::find_live(&state.db, org_id, name)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(hidden)?;
        return Err(GitError::new(
            StatusCode::UNAUTHORIZED,
            "authentication required to push",
        ));
    }
    let caller = Caller(identity.clone());
    let decided = if need == Need::Read {
        let (row, role) = access::cached_row_and_role(state, org_id, name, identity.as_ref())
            .await
            .map_err(|e| internal(&e.message()))?;
        access::decide(&caller, row.ok_or_else(hidden)?, role, need)
    } else {
        let row = store::repos::find_live(&state.db, org_id, name)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(hidden)?;
        access::authorize(&state.db, &caller, row, need).await
    };
    match decided {
        Ok(a) => Ok((a.repo, identity)),
        Err(e) => Err(match e.status() {
            StatusCode::NOT_FOUND => hidden(),
            StatusCode::FORBIDDEN => GitError::new(
                StatusCode::FORBIDDEN,
                format!("permission denied: {}", e.message()),
            ),
            StatusCode::UNAUTHORIZED => {
                GitError::new(StatusCode::UNAUTHORIZED, "authentication required")
            }
            _ => GitError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error"),
        }),
    }
}

fn internal(e: &dyn std::fmt::Display) -> GitError {
    tracing::error!(error = %e, "git request failed");
    GitError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
}

fn wants_v2(headers: &HeaderMap) -> bool {
    headers
        .get("git-protocol")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(':').any(|p| p.trim() == "version=2"))
}

#[derive(Debug, Deserialize)]
struct InfoRefsQuery {
    service: Option<String>,
}

async fn info_refs(
    State(state): State<AppState>,
    headers: HeaderMap,
    verified: Verified,
    Path((org_id, repo)): Path<(String, String)>,
    Query(q): Query<InfoRefsQuery>,
) -> Result<Response, GitError> {
    let service = q
        .service
        .as_deref()
        .and_then(Service::parse)
        .ok_or_else(|| {
            GitError::new(
                StatusCode::FORBIDDEN,
                "only smart HTTP is served (service=git-upload-pack or git-receive-pack)",
            )
        })?;
    let need = match service {
        Service::UploadPack => Need::Read,
        Service::ReceivePack => Need::Write,
    };
    let (row, _) = authorize(&state, &headers, &verified, &org_id, &repo, need).await?;
    let path = state.config.storage_root.join(&row.storage_path);
    let v2 = service == Service::UploadPack && wants_v2(&headers);
    let repos = state.repos.clone();
    let permit = git_permit(&state).await?;
    let body = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let _permit = permit;
        let repo = repos.open(&path).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        if v2 {
            gitcore::advertise::info_refs_v2(&mut out).map_err(|e| e.to_string())?;
        } else {
            let snapshot =
                gitcore::refs::Snapshot::read_cached(&repo).map_err(|e| e.to_string())?;
            gitcore::advertise::info_refs_v0(&mut out, service, &snapshot)
                .map_err(|e| e.to_string())?;
        }
        Ok(out)
    })
    .await
    .map_err(|e| internal(&e))?
    .map_err(|e| internal(&e))?;
    Ok(git_response(
        &format!("application/x-{}-advertisement", service.name()),
        Body::from(body),
    ))
}

/// Waits for a permit to run blocking git work.
async fn git_permit(state: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, GitError> {
    state
        .git_permits
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| internal(&e))
}

fn git_response(content_type: &str, body: Body) -> Response {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, max-age=0, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// Reads a request body from a channel fed by the async side.
struct BodyReader {
    rx: mpsc::Receiver<Result<Bytes, io::Error>>,
    current: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(b)) => self.current = b,
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Writes response bytes into a channel drained by the HTTP body; fails once the client is gone
/// or has not read anything for the idle timeout.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    runtime: tokio::runtime::Handle,
    idle: Duration,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let item = Ok(Bytes::copy_from_slice(buf));
        let sent = self
            .runtime
            .block_on(tokio::time::timeout(self.idle, self.tx.send(item)));
        match sent {
            Ok(Ok(())) => Ok(buf.len()),
            Ok(Err(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client went away",
            )),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            )),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Streams `body` into a blocking reader. A body that sends nothing for `idle` fails the read.
/// Wrap it with [`decoded`] on the blocking thread (a gzip decoder reads as soon as it is made).
fn body_reader(body: Body, idle: Duration) -> BodyReader {
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(8);
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        loop {
            let chunk = match tokio::time::timeout(idle, stream.next()).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(_) => {
                    let _ = tx
                        .send(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("the request body was idle for {}s", idle.as_secs()),
                        )))
                        .await;
                    break;
                }
            };
            let item = chunk.map_err(io::Error::other);
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    BodyReader {
        rx,
        current: Bytes::new(),
    }
}

/// The request body, gzip-decoded when git compressed it. Call on a blocking thread only: a
/// gzip decoder reads the header as soon as it is made.
fn decoded(reader: BodyReader, gzip: bool) -> Box<dyn Read + Send> {
    if gzip {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else {
        Box::new(reader)
    }
}

fn is_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim().eq_ignore_ascii_case("gzip") || v.trim().eq_ignore_ascii_case("x-gzip")
        })
}

async fn upload_pack(
    State(state): State<AppState>,
    headers: HeaderMap,
    verified: Verified,
    Path((org_id, repo)): Path<(String, String)>,
    body: Body,
) -> Result<Response, GitError> {
    let (row, _) = authorize(&state, &headers, &verified, &org_id, &repo, Need::Read).await?;
    let ticket = state
        .admission
        .enter(row.id, crate::limits::admission::Work::Upload)
        .await
        .map_err(|why| GitError::busy(&state, why))?;
    let path = state.config.storage_root.join(&row.storage_path);
    let protocol = if wants_v2(&headers) {
        gitcore::upload_pack::Protocol::V2
    } else {
        gitcore::upload_pack::Protocol::V0
    };
    let idle = state.config.git_idle_timeout;
    let body = body_reader(body, idle);
    let gzip = is_gzip(&headers);
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(16);
    let interrupt = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Handle::current();
    let repos = state.repos.clone();
    let pack_cache = state.pack_cache.clone();
    watch_disconnect(&tx, interrupt.clone());
    let permit = git_permit(&state).await?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let _ticket = ticket;
        let started = std::time::Instant::now();
        let input = decoded(body, gzip);
        let out = ChannelWriter { tx, runtime, idle };
        let result = repos
            .open(&path)
            .map_err(|e| e.to_string())
            .and_then(|repo| {
                gitcore::upload_pack::serve(
                    &repo,
                    protocol,
                    input,
                    out,
                    &interrupt,
                    &gitcore::upload_pack::Options {
                        pack_cache,
                        ..Default::default()
                    },
                )
                .map_err(|e| gitcore::error_chain(&e))
            });
        match result {
            Ok(outcome) => {
                crate::metrics::git_operation(
                    "upload-pack",
                    outcome.objects,
                    0,
                    started.elapsed().as_secs_f64(),
                );
                tracing::debug!(?outcome, "upload-pack served")
            }
            Err(e) => tracing::warn!(error = %e, "upload-pack ended with an error"),
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(git_response(
        "application/x-git-upload-pack-result",
        Body::from_stream(stream),
    ))
}

/// Sets `interrupt` once the client stops listening (the response body was dropped), so work
/// that has not written anything yet (history walks, object selection) stops too. Holds only
/// a weak sender: the body still ends when the writer is done.
fn watch_disconnect(tx: &mpsc::Sender<Result<Bytes, io::Error>>, interrupt: Arc<AtomicBool>) {
    let weak = tx.downgrade();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            match weak.upgrade() {
                None => return,
                Some(tx) if tx.is_closed() => {
                    interrupt.store(true, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
                Some(_) => {}
            }
        }
    });
}

async fn receive_pack(
    State(state): State<AppState>,
    headers: HeaderMap,
    verified: Verified,
    Path((org_id, repo)): Path<(String, String)>,
    body: Body,
) -> Result<Response, GitError> {
    let (row, identity) =
        authorize(&state, &headers, &verified, &org_id, &repo, Need::Write).await?;
    let ticket = state
        .admission
        .enter(row.id, crate::limits::admission::Work::Receive)
        .await
        .map_err(|why| GitError::busy(&state, why))?;
    let path = state.config.storage_root.join(&row.storage_path);
    let protected = crate::api::protection::push_rules(&state, &row)
        .await
        .map_err(|e| internal(&e))?;
    let options = gitcore::receive_pack::Options {
        protected,
        max_pack_bytes: state.config.git_max_pack_bytes,
        max_object_bytes: state.config.git_max_object_bytes,
        max_ref_updates: state.config.git_max_ref_updates,
        read_only: row
            .archived
            .then(|| "the repository is archived (read-only)".to_owned()),
        thread_limit: None,
    };
    let body = body_reader(body, state.config.git_idle_timeout);
    let gzip = is_gzip(&headers);
    let permit = git_permit(&state).await?;
    let repos = state.repos.clone();
    let result = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let _ticket = ticket;
        let input = decoded(body, gzip);
        let mut out = Vec::new();
        let interrupt = AtomicBool::new(false);
        let outcome = gitcore::receive_pack::serve(&path, input, &mut out, &interrupt, &options);
        let commits = match &outcome {
            Ok(o) if o.updated().next().is_some() => pushed_commits(&repos, &path, o),
            _ => (Vec::new(), 0),
        };
        // Upkeep is due when packs pile up, or when a push brought enough history that walks
        // should have a commit-graph of it.
        let upkeep = gitcore::storage::pack_files(&path).map_or(0, |p| p.len())
            > crate::jobs::upkeep::CONSOLIDATE_ABOVE_PACKS
            || commits.1 >= crate::jobs::upkeep::GRAPH_AFTER_COMMITS;
        (out, outcome, (commits, upkeep))
    })
    .await
    .map_err(|e| internal(&e))?;
    let (report, outcome, ((commit_ids, commit_count), upkeep_due)) = result;
    match outcome {
        Ok(outcome) => {
            crate::metrics::git_operation("receive-pack", 0, 0, 0.0);
            if outcome.updated().next().is_some() {
                let agent_id = headers
                    .get("x-agent-id")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| Uuid::parse_str(v.trim()).ok());
                let actor = store::audit::Actor {
                    user_id: identity.as_ref().map(|i| i.user_id),
                    agent_id,
                };
                let refs: Vec<crate::jobs::feed::PushedRef> = outcome
                    .updated()
                    .map(|c| crate::jobs::feed::PushedRef {
                        name: c.name.clone(),
                        old: c.old.to_string(),
                        new: c.new.to_string(),
                    })
                    .collect();
                let commit_shas: Vec<String> = commit_ids.iter().map(|c| c.to_string()).collect();
                let push = crate::jobs::feed::Push {
                    repo: &row,
                    push_id: Uuid::new_v4(),
                    user_id: actor.user_id,
                    agent_id: actor.agent_id,
                    refs: &refs,
                    commit_shas: &commit_shas,
                    commit_count,
                };
                if let Err(e) =
                    record_push(&state, &push, actor, &outcome.push_options, upkeep_due).await
                {
                    // The refs already moved; losing the audit row must not fail the push.
                    tracing::error!(error = %e, repo = %row.id, "could not record the push (audit event and jobs)");
                }
                state.jobs.wake();
                let branches: Vec<(String, gitcore::ObjectId)> = outcome
                    .updated()
                    .filter_map(|c| {
                        c.name
                            .strip_prefix("refs/heads/")
                            .map(|b| (b.to_owned(), c.new))
                    })
                    .collect();
                if !branches.is_empty() {
                    crate::api::pulls_merge::follow_updates(&state, &row, branches, actor).await;
                }
            }
        }
        Err(e) => tracing::info!(error = %e, "receive-pack ended with an error"),
    }
    Ok(git_response(
        "application/x-git-receive-pack-result",
        Body::from(report),
    ))
}

/// The commits a push brought (newest first, at most 100) and how many in all: reachable from
/// the new tips and from no ref as it was before the push. A failure here only empties the list.
fn pushed_commits(
    repos: &crate::repo_cache::RepoCache,
    path: &std::path::Path,
    outcome: &gitcore::receive_pack::Outcome,
) -> (Vec<gitcore::ObjectId>, usize) {
    let run = || -> Result<(Vec<gitcore::ObjectId>, usize), String> {
        let repo = repos.open(path).map_err(|e| e.to_string())?;
        let snapshot = gitcore::refs::Snapshot::read(&repo).map_err(|e| e.to_string())?;
        let updated: std::collections::HashSet<&str> =
            outcome.updated().map(|c| c.name.as_str()).collect();
        let mut hidden: Vec<gitcore::ObjectId> = snapshot
            .refs
            .iter()
            .filter(|r| !updated.contains(r.name.as_str()))
            .map(|r| r.peeled.unwrap_or(r.target))
            .collect();
        hidden.extend(outcome.updated().map(|c| c.old));
        let tips: Vec<gitcore::ObjectId> = outcome.updated().map(|c| c.new).collect();
        gitcore::read::new_commits::new_commits_with(
            &repo,
            &tips,
            &hidden,
            100,
            outcome.pack_commits.as_ref().map(|c| &*c.0),
        )
        .map_err(|e| gitcore::error_chain(&e))
    };
    run().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "could not list the commits of a push");
        (Vec::new(), 0)
    })
}

/// Records an accepted push in one transaction: its audit event (which queues the repository's
/// webhook deliveries) and its feed post when a network service is configured. A push the client
/// sees acknowledged has its jobs; one that failed has none (nothing is recorded for it).
pub(crate) async fn record_push(
    state: &AppState,
    push: &crate::jobs::feed::Push<'_>,
    actor: store::audit::Actor,
    push_options: &[String],
    upkeep_due: bool,
) -> Result<(), sea_orm::DbErr> {
    use sea_orm::TransactionTrait;
    let refs: Vec<serde_json::Value> = push
        .refs
        .iter()
        .map(|r| json!({"ref": r.name, "old": r.old, "new": r.new}))
        .collect();
    let payload = json!({
        "pushId": push.push_id,
        "refs": refs,
        "pushOptions": push_options,
        "commitShas": push.commit_shas,
        "commitCount": push.commit_count,
    });
    let txn = state.db.begin().await?;
    store::audit::record(&txn, Some(push.repo.id), "push", actor, payload).await?;
    if state.config.aura_network_url.is_some() {
        store::jobs::enqueue(
            &txn,
            store::jobs::NewJob {
                kind: store::jobs::Kind::FeedPost,
                repo_id: Some(push.repo.id),
                dedup_key: Some(push.push_id.to_string()),
                payload: crate::jobs::feed::post_body(push),
            },
        )
        .await?;
        // The mirror job finds out whether the org has a GitHub integration when it runs.
        if push
            .refs
            .iter()
            .any(|r| r.name.starts_with("refs/heads/") || r.name.starts_with("refs/tags/"))
        {
            store::jobs::enqueue(
                &txn,
                store::jobs::NewJob {
                    kind: store::jobs::Kind::PushMirror,
                    repo_id: Some(push.repo.id),
                    dedup_key: Some(push.push_id.to_string()),
                    payload: json!({"pushId": push.push_id}),
                },
            )
            .await?;
        }
    }
    if upkeep_due
        && !store::jobs::pending(&txn, store::jobs::Kind::RepoUpkeep, push.repo.id).await?
    {
        store::jobs::enqueue(
            &txn,
            store::jobs::NewJob {
                kind: store::jobs::Kind::RepoUpkeep,
                repo_id: Some(push.repo.id),
                dedup_key: None,
                payload: json!({"reason": "packs or a large push (consolidation, commit-graph)"}),
            },
        )
        .await?;
    }
    txn.commit().await
}
