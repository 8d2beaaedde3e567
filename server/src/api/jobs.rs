//! The job queue for operators (`X-Internal-Token`): `GET /admin/jobs`, `GET /admin/jobs/failed`,
//! `GET /admin/jobs/{id}`, `POST /admin/jobs/{id}/retry`.

use axum::extract::State;
use axum::Json as JsonOut;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{Path, Query};
use super::page::page;
use crate::auth::Internal;
use crate::state::AppState;
use crate::store::jobs::{self, Filter, Kind, RetryOutcome, STATES};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(list_failed_jobs))
        .routes(routes!(get_job))
        .routes(routes!(retry_job))
}

/// A job as operators see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobDto {
    id: Uuid,
    kind: String,
    repo_id: Option<Uuid>,
    dedup_key: Option<String>,
    state: String,
    attempts: i32,
    max_attempts: i32,
    last_error: Option<String>,
    result: Option<serde_json::Value>,
    payload: serde_json::Value,
    run_after: DateTime<Utc>,
    lease_owner: Option<String>,
    lease_expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl From<entity::job::Model> for JobDto {
    fn from(m: entity::job::Model) -> Self {
        Self {
            id: m.id,
            kind: m.kind,
            repo_id: m.repo_id,
            dedup_key: m.dedup_key,
            state: m.state,
            attempts: m.attempts,
            max_attempts: m.max_attempts,
            last_error: m.last_error,
            result: m.result,
            payload: m.payload,
            run_after: m.run_after,
            lease_owner: m.lease_owner,
            lease_expires_at: m.lease_expires_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
            finished_at: m.finished_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct JobsQuery {
    state: Option<String>,
    kind: Option<String>,
    repo_id: Option<Uuid>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u64>,
    /// Items to skip (default 0).
    offset: Option<u64>,
}

async fn list(state: &AppState, q: JobsQuery) -> Result<JsonOut<Vec<JobDto>>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    if let Some(s) = &q.state {
        if !STATES.contains(&s.as_str()) {
            return Err(ApiError::validation(format!(
                "state: unknown state {s:?} (queued, running, succeeded, failed)"
            )));
        }
    }
    if let Some(k) = &q.kind {
        if Kind::parse(k).is_none() {
            return Err(ApiError::validation(format!(
                "kind: unknown kind {k:?} (feed_post, push_mirror, webhook_delivery, repo_upkeep)"
            )));
        }
    }
    let filter = Filter {
        state: q.state,
        kind: q.kind,
        repo_id: q.repo_id,
    };
    let rows = jobs::list(&state.db, &filter, limit, offset).await?;
    Ok(JsonOut(rows.into_iter().map(Into::into).collect()))
}

#[utoipa::path(
    get,
    path = "/admin/jobs",
    tag = "admin",
    params(JobsQuery),
    responses((status = 200, description = "OK", body = Vec<JobDto>))
)]
async fn list_jobs(
    State(state): State<AppState>,
    _internal: Internal,
    Query(q): Query<JobsQuery>,
) -> Result<JsonOut<Vec<JobDto>>, ApiError> {
    list(&state, q).await
}

#[utoipa::path(
    get,
    path = "/admin/jobs/failed",
    tag = "admin",
    params(JobsQuery),
    responses((status = 200, description = "OK", body = Vec<JobDto>))
)]
async fn list_failed_jobs(
    State(state): State<AppState>,
    _internal: Internal,
    Query(mut q): Query<JobsQuery>,
) -> Result<JsonOut<Vec<JobDto>>, ApiError> {
    q.state = Some("failed".to_owned());
    list(&state, q).await
}

fn job_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("job not found"))
}

#[utoipa::path(
    get,
    path = "/admin/jobs/{id}",
    tag = "admin",
    responses((status = 200, description = "OK", body = JobDto))
)]
async fn get_job(
    State(state): State<AppState>,
    _internal: Internal,
    Path(id): Path<String>,
) -> Result<JsonOut<JobDto>, ApiError> {
    let job = jobs::get(&state.db, job_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("job not found"))?;
    Ok(JsonOut(job.into()))
}

#[utoipa::path(
    post,
    path = "/admin/jobs/{id}/retry",
    tag = "admin",
    responses((status = 200, description = "Queued again", body = JobDto))
)]
async fn retry_job(
    State(state): State<AppState>,
    _internal: Internal,
    Path(id): Path<String>,
) -> Result<JsonOut<JobDto>, ApiError> {
    match jobs::retry(&state.db, job_id(&id)?).await? {
        RetryOutcome::Queued(job) => {
            state.jobs.wake();
            Ok(JsonOut((*job).into()))
        }
        RetryOutcome::NotFound => Err(ApiError::not_found("job not found")),
        RetryOutcome::NotFailed(s) => Err(ApiError::conflict(format!(
            "only a failed job can be retried; this one is {s}"
        ))),
    }
}
