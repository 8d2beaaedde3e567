//! Audit events of a repository (owner only), and the shared event DTO.

use axum::extract::State;
use axum::Json as JsonOut;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::access::{self, Need};
use super::error::ApiError;
use super::extract::{Path, Query};
use super::page::page;
use crate::auth::Caller;
use crate::state::AppState;
use crate::store;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events))
}

/// An audit event on the wire.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventDto {
    id: Uuid,
    repo_id: Option<Uuid>,
    event_type: String,
    actor_id: Option<Uuid>,
    agent_id: Option<Uuid>,
    payload: serde_json::Value,
    created_at: DateTime<Utc>,
}

impl From<entity::audit_event::Model> for EventDto {
    fn from(m: entity::audit_event::Model) -> Self {
        Self {
            id: m.id,
            repo_id: m.repo_id,
            event_type: m.event_type,
            actor_id: m.actor_id,
            agent_id: m.agent_id,
            payload: m.payload,
            created_at: m.created_at,
        }
    }
}

/// Query of event listings: `event_type` (or `eventType`), `since`, `until` (RFC 3339), paging.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    #[serde(alias = "eventType")]
    event_type: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u64>,
    /// Items to skip (default 0).
    offset: Option<u64>,
}

impl EventQuery {
    /// The store filter and page for this query, scoped to `repo_id` when given.
    pub fn filter(
        self,
        repo_id: Option<Uuid>,
    ) -> Result<(store::audit::Filter, u64, u64), ApiError> {
        let (limit, offset) = page(self.limit, self.offset)?;
        Ok((
            store::audit::Filter {
                repo_id,
                event_type: self.event_type,
                since: self.since,
                until: self.until,
            },
            limit,
            offset,
        ))
    }
}

#[utoipa::path(
    get,
    path = "/repos/{org_id}/{repo}/events",
    tag = "events",
    params(EventQuery),
    responses((status = 200, description = "OK", body = Vec<EventDto>))
)]
async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name)): Path<(Uuid, String)>,
    Query(q): Query<EventQuery>,
) -> Result<JsonOut<Vec<EventDto>>, ApiError> {
    let a = access::load(&state.db, &caller, org_id, &name, Need::Admin).await?;
    let (filter, limit, offset) = q.filter(Some(a.repo.id))?;
    let rows = store::audit::list(&state.db, &filter, limit, offset).await?;
    Ok(JsonOut(rows.into_iter().map(Into::into).collect()))
}
