//! Internal routes (`X-Internal-Token`): auto-creation of repositories by the platform.

use axum::extract::State;
use axum::Json as JsonOut;
use serde::Deserialize;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::Json;
use super::repos::{create_repository, NewRepo, RepoDto, Visibility};
use crate::auth::Internal;
use crate::state::AppState;
use crate::store::{self, audit::Actor};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_internal_repo))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InternalCreate {
    org_id: Uuid,
    project_id: Uuid,
    owner_id: Uuid,
    name: String,
    visibility: Visibility,
    description: Option<String>,
    default_branch: Option<String>,
}

/// Idempotent for the same org, name and owner: the existing repository is returned. The same
/// name with another owner is a conflict.
#[utoipa::path(
    post,
    path = "/internal/repos",
    tag = "internal",
    request_body = InternalCreate,
    responses((status = 200, description = "Created", body = RepoDto))
)]
async fn create_internal_repo(
    State(state): State<AppState>,
    _internal: Internal,
    Json(body): Json<InternalCreate>,
) -> Result<JsonOut<RepoDto>, ApiError> {
    let new = NewRepo::validated(
        body.org_id,
        body.project_id,
        body.owner_id,
        body.name,
        body.visibility,
        body.description,
        body.default_branch,
    )?;
    let (org_id, owner_id, name) = (new.org_id, new.owner_id, new.name.clone());
    if let Some(existing) = store::repos::find_live(&state.db, org_id, &name).await? {
        return same_owner(existing, owner_id, &state);
    }
    let actor = Actor::default();
    match create_repository(&state, new, actor, "internal").await {
        Ok(created) => Ok(JsonOut(RepoDto::new(created, &state.config))),
        Err(e) if e.status() == axum::http::StatusCode::CONFLICT => {
            // Lost a race with an identical call: answer what won, if it is the same owner's.
            match store::repos::find_live(&state.db, org_id, &name).await? {
                Some(existing) => same_owner(existing, owner_id, &state),
                None => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

fn same_owner(
    existing: entity::repository::Model,
    owner_id: Uuid,
    state: &AppState,
) -> Result<JsonOut<RepoDto>, ApiError> {
    if existing.owner_id == owner_id {
        Ok(JsonOut(RepoDto::new(existing, &state.config)))
    } else {
        Err(ApiError::conflict(format!(
            "a repository named {:?} already exists in this org with another owner",
            existing.name
        )))
    }
}
