//! Live events as server-sent events: `GET /repos/{o}/{r}/events/stream` (owner) and
//! `GET /admin/events/stream` (`X-Internal-Token`). Each audit event is sent once as
//! `id: <event id>`, `event: <type>`, `data: <the event JSON of /events>`; a client that
//! reconnects with `Last-Event-ID` first gets every event after that one, replayed from the audit
//! table. Comments keep idle connections alive.
//!
//! The stream polls the audit table (every 500 ms), so events written by any Orbit process on the
//! same database arrive. Transactions commit in a different order than their timestamps, so each
//! poll looks back a few seconds and skips events it already sent.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use uuid::Uuid;

use super::access::{self, Need};
use super::error::ApiError;
use super::events::EventDto;
use super::extract::Path;
use crate::auth::{Caller, Internal};
use crate::state::AppState;
use crate::store;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// How often the audit table is read.
const POLL: Duration = Duration::from_millis(500);
/// How far back each poll looks, for transactions that committed late.
const LOOK_BACK: Duration = Duration::from_secs(5);
/// Events read per poll at most.
const BATCH: u64 = 200;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(repo_stream))
        .routes(routes!(admin_stream))
}

struct Cursor {
    state: AppState,
    repo_id: Option<Uuid>,
    /// Events at or after this time are read on the next poll.
    since: DateTime<Utc>,
    /// Ids already sent that may come back in a look-back window.
    sent: VecDeque<(DateTime<Utc>, Uuid)>,
    sent_ids: HashSet<Uuid>,
    ready: VecDeque<Event>,
    first: bool,
}

impl Cursor {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some((Ok(e), self));
            }
            if !self.first {
                tokio::time::sleep(POLL).await;
            }
            self.first = false;
            let from = self.since
                - chrono::Duration::from_std(LOOK_BACK).unwrap_or(chrono::Duration::seconds(5));
            let rows =
                match store::audit::from_time(&self.state.db, self.repo_id, from, BATCH).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream: reading the audit table failed");
                        continue;
                    }
                };
            let full = rows.len() as u64 == BATCH;
            for row in rows {
                if self.sent_ids.contains(&row.id) {
                    continue;
                }
                self.since = self.since.max(row.created_at);
                self.sent.push_back((row.created_at, row.id));
                self.sent_ids.insert(row.id);
                let id = row.id.to_string();
                let kind = row.event_type.clone();
                let data = serde_json::to_string(&EventDto::from(row)).unwrap_or_default();
                self.ready
                    .push_back(Event::default().id(id).event(kind).data(data));
            }
            // Forget what fell out of the look-back window.
            let horizon = self.since
                - chrono::Duration::from_std(LOOK_BACK * 2)
                    .unwrap_or(chrono::Duration::seconds(10));
            while self.sent.front().is_some_and(|(t, _)| *t < horizon) {
                if let Some((_, id)) = self.sent.pop_front() {
                    self.sent_ids.remove(&id);
                }
            }
            if full {
                // More are waiting: no sleep before the next read.
                self.first = true;
            }
        }
    }
}

/// Where a stream starts: after `Last-Event-ID` when the client sends one we know, else now.
async fn start(
    state: &AppState,
    repo_id: Option<Uuid>,
    headers: &HeaderMap,
) -> Result<Cursor, ApiError> {
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v.trim()).ok());
    let mut cursor = Cursor {
        state: state.clone(),
        repo_id,
        since: Utc::now(),
        sent: VecDeque::new(),
        sent_ids: HashSet::new(),
        ready: VecDeque::new(),
        first: true,
    };
    // Without Last-Event-ID, what happened before the connection is not replayed: mark the
    // look-back window as sent.
    let mut seen_upto = None;
    if let Some(id) = last {
        if let Some(e) = store::audit::get(&state.db, id).await? {
            if repo_id.is_none() || e.repo_id == repo_id {
                seen_upto = Some((e.created_at, e.id));
            }
        }
    }
    let (t, mark_all) = match seen_upto {
        Some((t, _)) => (t, false),
        None => (cursor.since, true),
    };
    cursor.since = t;
    // Everything in the look-back window at or before the starting point counts as sent.
    let from = t - chrono::Duration::from_std(LOOK_BACK).unwrap_or(chrono::Duration::seconds(5));
    let earlier = store::audit::from_time(&state.db, repo_id, from, 10_000).await?;
    for e in earlier {
        let before =
            e.created_at < t || (e.created_at == t && seen_upto.is_some_and(|(_, id)| e.id <= id));
        if before || (mark_all && e.created_at <= t) {
            cursor.sent.push_back((e.created_at, e.id));
            cursor.sent_ids.insert(e.id);
        }
    }
    Ok(cursor)
}

fn sse(cursor: Cursor) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold(cursor, Cursor::next);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[utoipa::path(
    get,
    path = "/repos/{org_id}/{repo}/events/stream",
    tag = "events",
    responses((status = 200, description = "Server-sent events: `id`, `event` (the event type), `data` (the event JSON); resume with `Last-Event-ID`", body = String, content_type = "text/event-stream"))
)]
async fn repo_stream(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name)): Path<(Uuid, String)>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let a = access::load(&state.db, &caller, org_id, &name, Need::Admin).await?;
    Ok(sse(start(&state, Some(a.repo.id), &headers).await?))
}

#[utoipa::path(
    get,
    path = "/admin/events/stream",
    tag = "admin",
    responses((status = 200, description = "Server-sent events of every repository", body = String, content_type = "text/event-stream"))
)]
async fn admin_stream(
    State(state): State<AppState>,
    _internal: Internal,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    Ok(sse(start(&state, None, &headers).await?))
}
