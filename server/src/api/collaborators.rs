//! Collaborators of a repository (owner only).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json as JsonOut;
use chrono::{DateTime, Utc};
use sea_orm::TransactionTrait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::access::{self, ensure_not_archived, Need};
use super::error::ApiError;
use super::extract::{Json, Path, Query};
use super::page::page;
use crate::auth::Caller;
use crate::state::AppState;
use crate::store::{self, audit::Actor, Role};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_collaborators))
        .routes(routes!(put_collaborator, delete_collaborator))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct CollaboratorDto {
    user_id: Uuid,
    role: String,
    created_at: DateTime<Utc>,
}

impl From<entity::collaborator::Model> for CollaboratorDto {
    fn from(m: entity::collaborator::Model) -> Self {
        Self {
            user_id: m.user_id,
            role: m.role,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u64>,
    /// Items to skip (default 0).
    offset: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/repos/{org_id}/{repo}/collaborators",
    tag = "collaborators",
    params(PageQuery),
    responses((status = 200, description = "OK", body = Vec<CollaboratorDto>))
)]
async fn list_collaborators(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name)): Path<(Uuid, String)>,
    Query(q): Query<PageQuery>,
) -> Result<JsonOut<Vec<CollaboratorDto>>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let a = access::load(&state.db, &caller, org_id, &name, Need::Admin).await?;
    let rows = store::collaborators::list(&state.db, a.repo.id, limit, offset).await?;
    Ok(JsonOut(rows.into_iter().map(Into::into).collect()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum RoleIn {
    Owner,
    Writer,
    Reader,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PutCollaborator {
    role: RoleIn,
}

#[utoipa::path(
    put,
    path = "/repos/{org_id}/{repo}/collaborators/{user_id}",
    tag = "collaborators",
    request_body = PutCollaborator,
    responses((status = 200, description = "OK", body = CollaboratorDto))
)]
async fn put_collaborator(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, user_id)): Path<(Uuid, String, Uuid)>,
    Json(body): Json<PutCollaborator>,
) -> Result<JsonOut<CollaboratorDto>, ApiError> {
    let a = access::load(&state.db, &caller, org_id, &name, Need::Admin).await?;
    ensure_not_archived(&a.repo)?;
    if user_id == a.repo.owner_id {
        return Err(ApiError::conflict(
            "the repository owner's role cannot be changed",
        ));
    }
    let role = match body.role {
        RoleIn::Owner => Role::Owner,
        RoleIn::Writer => Role::Writer,
        RoleIn::Reader => Role::Reader,
    };
    let actor = actor_of(&caller);
    let repo_id = a.repo.id;
    let row = state
        .db
        .transaction::<_, entity::collaborator::Model, ApiError>(move |txn| {
            Box::pin(async move {
                let (row, previous) = store::collaborators::upsert(txn, repo_id, user_id, role).await?;
                if previous != Some(role) {
                    let event = if previous.is_some() { "collaborator.updated" } else { "collaborator.added" };
                    store::audit::record(
                        txn,
                        Some(repo_id),
                        event,
                        actor,
                        json!({"userId": user_id, "role": role.as_str(), "previousRole": previous.map(Role::as_str)}),
                    )
                    .await?;
                }
                Ok(row)
            })
        })
        .await;
    crate::access_cache::changed();
    Ok(JsonOut(row?.into()))
}

#[utoipa::path(
    delete,
    path = "/repos/{org_id}/{repo}/collaborators/{user_id}",
    tag = "collaborators",
    responses((status = 204, description = "Deleted"))
)]
async fn delete_collaborator(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, user_id)): Path<(Uuid, String, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let a = access::load(&state.db, &caller, org_id, &name, Need::Admin).await?;
    ensure_not_archived(&a.repo)?;
    if user_id == a.repo.owner_id {
        return Err(ApiError::conflict("the repository owner cannot be removed"));
    }
    let actor = actor_of(&caller);
    let repo_id = a.repo.id;
    let done = state
        .db
        .transaction::<_, (), ApiError>(move |txn| {
            Box::pin(async move {
                if !store::collaborators::remove(txn, repo_id, user_id).await? {
                    return Err(ApiError::not_found("collaborator not found"));
                }
                store::audit::record(
                    txn,
                    Some(repo_id),
                    "collaborator.removed",
                    actor,
                    json!({"userId": user_id}),
                )
                .await?;
                Ok(())
            })
        })
        .await;
    crate::access_cache::changed();
    done?;
    Ok(StatusCode::NO_CONTENT)
}

fn actor_of(caller: &Caller) -> Actor {
    Actor {
        user_id: caller.0.as_ref().map(|i| i.user_id),
        agent_id: None,
    }
}
