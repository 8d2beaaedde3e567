//! Admin routes (`X-Internal-Token`): every repository, with storage status, and archiving.

use axum::extract::State;
use axum::Json as JsonOut;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::ApiError;
use super::events::{EventDto, EventQuery};
use super::extract::{Path, Query};
use super::page::page;
use super::repos::{archive, RepoDto};
use crate::auth::Internal;
use crate::state::AppState;
use crate::store::{self, audit::Actor};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_admin_repos))
        .routes(routes!(get_admin_repo))
        .routes(routes!(archive_admin_repo))
        .routes(routes!(list_admin_events))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct AdminListQuery {
    #[serde(default)]
    include_deleted: bool,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u64>,
    /// Items to skip (default 0).
    offset: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct AdminRepoDto {
    #[serde(flatten)]
    repo: RepoDto,
    deleted_at: Option<chrono::DateTime<chrono::Utc>>,
    storage_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    storage: Option<StorageDto>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct StorageDto {
    on_disk: bool,
    size_bytes: u64,
    ref_count: u64,
    head_branch: Option<String>,
    /// Pack files under `objects/pack`.
    pack_count: usize,
    /// Whether consolidation is due or queued (more packs than the threshold, or an upkeep job
    /// queued or running).
    upkeep_pending: bool,
    error: Option<String>,
}

impl AdminRepoDto {
    fn new(m: entity::repository::Model, state: &AppState, storage: Option<StorageDto>) -> Self {
        Self {
            deleted_at: m.deleted_at,
            storage_path: m.storage_path.clone(),
            repo: RepoDto::new(m, &state.config),
            storage,
        }
    }
}

#[utoipa::path(
    get,
    path = "/admin/repos",
    tag = "admin",
    params(AdminListQuery),
    responses((status = 200, description = "OK", body = Vec<AdminRepoDto>))
)]
async fn list_admin_repos(
    State(state): State<AppState>,
    _internal: Internal,
    Query(q): Query<AdminListQuery>,
) -> Result<JsonOut<Vec<AdminRepoDto>>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let rows = store::repos::list_all(&state.db, q.include_deleted, limit, offset).await?;
    Ok(JsonOut(
        rows.into_iter()
            .map(|m| AdminRepoDto::new(m, &state, None))
            .collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/admin/repos/{id}",
    tag = "admin",
    params(("id" = Uuid, Path, description = "Repository id")),
    responses((status = 200, description = "OK", body = AdminRepoDto))
)]
async fn get_admin_repo(
    State(state): State<AppState>,
    _internal: Internal,
    Path(id): Path<Uuid>,
) -> Result<JsonOut<AdminRepoDto>, ApiError> {
    let repo = store::repos::find_by_id(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("repository not found"))?;
    let path = state.config.storage_root.join(&repo.storage_path);
    let (status, pack_count) = tokio::task::spawn_blocking(move || {
        (
            gitcore::storage::status(&path),
            gitcore::storage::pack_files(&path).map_or(0, |p| p.len()),
        )
    })
    .await?;
    let queued = store::jobs::pending(&state.db, store::jobs::Kind::RepoUpkeep, id).await?;
    let upkeep_pending = queued || pack_count > crate::jobs::upkeep::CONSOLIDATE_ABOVE_PACKS;
    let storage = match status {
        Ok(s) => StorageDto {
            on_disk: s.on_disk,
            size_bytes: s.size_bytes,
            ref_count: s.ref_count,
            head_branch: s.head_branch,
            pack_count,
            upkeep_pending,
            error: None,
        },
        Err(e) => {
            tracing::warn!(repo = %id, error = %e, "storage status failed");
            StorageDto {
                on_disk: true,
                size_bytes: 0,
                ref_count: 0,
                head_branch: None,
                pack_count,
                upkeep_pending,
                error: Some("the repository on disk could not be read".into()),
            }
        }
    };
    Ok(JsonOut(AdminRepoDto::new(repo, &state, Some(storage))))
}

#[utoipa::path(
    post,
    path = "/admin/repos/{id}/archive",
    tag = "admin",
    params(("id" = Uuid, Path, description = "Repository id")),
    responses((status = 200, description = "Archived", body = RepoDto))
)]
async fn archive_admin_repo(
    State(state): State<AppState>,
    _internal: Internal,
    Path(id): Path<Uuid>,
) -> Result<JsonOut<RepoDto>, ApiError> {
    let repo = store::repos::find_by_id(&state.db, id)
        .await?
        .filter(|r| r.deleted_at.is_none())
        .ok_or_else(|| ApiError::not_found("repository not found"))?;
    let archived = archive(&state.db, repo, Actor::default()).await?;
    Ok(JsonOut(RepoDto::new(archived, &state.config)))
}

#[utoipa::path(
    get,
    path = "/admin/events",
    tag = "admin",
    params(EventQuery),
    responses((status = 200, description = "OK", body = Vec<EventDto>))
)]
async fn list_admin_events(
    State(state): State<AppState>,
    _internal: Internal,
    Query(q): Query<EventQuery>,
) -> Result<JsonOut<Vec<EventDto>>, ApiError> {
    let (filter, limit, offset) = q.filter(None)?;
    let rows = store::audit::list(&state.db, &filter, limit, offset).await?;
    Ok(JsonOut(rows.into_iter().map(Into::into).collect()))
}
