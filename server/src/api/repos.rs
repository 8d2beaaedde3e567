//! Repositories: list, create, get, patch, delete (soft), archive.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json as JsonOut;
use chrono::{DateTime, Utc};
use entity::repository;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, DatabaseConnection, IntoActiveModel, TransactionTrait,
};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::access::{self, ensure_not_archived, Need};
use super::error::ApiError;
use super::extract::{Json, Path, Query};
use super::page::page;
use crate::auth::{Access, Caller};
use crate::config::Config;
use crate::state::AppState;
use crate::store::{self, audit::Actor, Role};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_repos, create_repo))
        .routes(routes!(get_repo, update_repo, delete_repo))
        .routes(routes!(archive_repo))
}

/// The repository object of the API.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepoDto {
    id: Uuid,
    org_id: Uuid,
    project_id: Uuid,
    owner_id: Uuid,
    name: String,
    description: Option<String>,
    visibility: String,
    default_branch: String,
    archived: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    clone_url: String,
}

impl RepoDto {
    /// Maps a row to the wire object.
    pub fn new(m: repository::Model, config: &Config) -> Self {
        Self {
            clone_url: format!("{}/{}/{}.git", config.public_base_url, m.org_id, m.name),
            id: m.id,
            org_id: m.org_id,
            project_id: m.project_id,
            owner_id: m.owner_id,
            name: m.name,
            description: m.description,
            visibility: m.visibility,
            default_branch: m.default_branch,
            archived: m.archived,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// `public` or `private`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Anyone may read.
    Public,
    /// Only collaborators may read.
    Private,
}

impl Visibility {
    fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }
}

/// Longest accepted description.
const MAX_DESCRIPTION: usize = 4096;

/// Checks a repository name: 1–100 of `[A-Za-z0-9._-]`, not starting with `.`, not ending in `.git`.
pub fn validate_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=100).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.starts_with('.')
        && !name.to_ascii_lowercase().ends_with(".git");
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "name: {name:?} is not a valid repository name (1-100 characters of A-Z a-z 0-9 . _ -, \
             not starting with '.', not ending in '.git')"
        )))
    }
}

fn validate_branch(branch: &str) -> Result<(), ApiError> {
    if branch.len() <= 255 && gitcore::storage::is_valid_branch_name(branch) {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "defaultBranch: {branch:?} is not a valid branch name"
        )))
    }
}

fn validate_description(d: &str) -> Result<(), ApiError> {
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(ApiError::validation(format!(
            "description: longer than {MAX_DESCRIPTION} characters"
        )));
    }
    Ok(())
}

/// What a new repository is made of.
#[derive(Debug, Clone)]
pub struct NewRepo {
    /// Its org.
    pub org_id: Uuid,
    /// Its project.
    pub project_id: Uuid,
    /// Its owner.
    pub owner_id: Uuid,
    /// Its name (validated).
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its visibility.
    pub visibility: Visibility,
    /// Its default branch (validated).
    pub default_branch: String,
}

impl NewRepo {
    /// Validates the parts of a new repository; the default branch defaults to `main`.
    pub fn validated(
        org_id: Uuid,
        project_id: Uuid,
        owner_id: Uuid,
        name: String,
        visibility: Visibility,
        description: Option<String>,
        default_branch: Option<String>,
    ) -> Result<Self, ApiError> {
        validate_name(&name)?;
        if let Some(d) = &description {
            validate_description(d)?;
        }
        let default_branch = default_branch.unwrap_or_else(|| "main".to_owned());
        validate_branch(&default_branch)?;
        Ok(Self {
            org_id,
            project_id,
            owner_id,
            name,
            description,
            visibility,
            default_branch,
        })
    }
}

/// Storage path of a repository, relative to the storage root: `ab/<uuid>.git`.
fn storage_path_for(id: Uuid) -> String {
    let simple = id.simple().to_string();
    format!("{}/{}.git", &simple[..2], id)
}

/// Creates the row, the owner's collaborator row, the audit event and the bare repository on
/// disk, all or nothing: the transaction commits only after the repository exists on disk.
pub async fn create_repository(
    state: &AppState,
    new: NewRepo,
    actor: Actor,
    source: &str,
) -> Result<repository::Model, ApiError> {
    if store::repos::find_live(&state.db, new.org_id, &new.name)
        .await?
        .is_some()
    {
        return Err(name_taken(&new.name));
    }
    let id = Uuid::new_v4();
    let now = Utc::now();
    let storage_path = storage_path_for(id);
    let disk_path = state.config.storage_root.join(&storage_path);
    let model = repository::ActiveModel {
        id: Set(id),
        org_id: Set(new.org_id),
        project_id: Set(new.project_id),
        owner_id: Set(new.owner_id),
        name: Set(new.name.clone()),
        name_lower: Set(new.name.to_lowercase()),
        description: Set(new.description.clone()),
        visibility: Set(new.visibility.as_str().to_owned()),
        default_branch: Set(new.default_branch.clone()),
        archived: Set(false),
        storage_path: Set(storage_path),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    };
    let source = source.to_owned();
    let created = state
        .db
        .transaction::<_, repository::Model, ApiError>(move |txn| {
            Box::pin(async move {
                let created = model
                    .insert(txn)
                    .await
                    .map_err(unique_as_taken(&new.name))?;
                store::collaborators::upsert(txn, id, new.owner_id, Role::Owner).await?;
                store::audit::record(
                    txn,
                    Some(id),
                    "repo.created",
                    actor,
                    json!({"name": new.name, "visibility": new.visibility.as_str(),
                           "defaultBranch": new.default_branch, "source": source}),
                )
                .await?;
                let branch = new.default_branch.clone();
                tokio::task::spawn_blocking(move || {
                    gitcore::storage::init_bare(&disk_path, &branch)
                })
                .await?
                .map_err(ApiError::internal)?;
                Ok(created)
            })
        })
        .await?;
    Ok(created)
}

fn name_taken(name: &str) -> ApiError {
    ApiError::conflict(format!(
        "a repository named {name:?} already exists in this org"
    ))
}

fn unique_as_taken(name: &str) -> impl FnOnce(sea_orm::DbErr) -> ApiError + '_ {
    move |e| match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => name_taken(name),
        _ => e.into(),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    org_id: Option<Uuid>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u64>,
    /// Items to skip (default 0).
    offset: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/repos",
    tag = "repos",
    params(ListQuery),
    responses((status = 200, description = "OK", body = Vec<RepoDto>))
)]
async fn list_repos(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<JsonOut<Vec<RepoDto>>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    if caller.0.is_none() && q.org_id.is_none() {
        caller.require()?;
    }
    let identity = caller.0.as_ref();
    let rows = store::repos::list(
        &state.db,
        store::repos::ListFor {
            user_id: identity.map(|i| i.user_id),
            org_id: q.org_id,
            scopes: identity.and_then(|i| i.scopes.as_ref()),
        },
        limit,
        offset,
    )
    .await?;
    Ok(JsonOut(
        rows.into_iter()
            .map(|m| RepoDto::new(m, &state.config))
            .collect(),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateRepo {
    org_id: Uuid,
    project_id: Uuid,
    name: String,
    visibility: Visibility,
    description: Option<String>,
    default_branch: Option<String>,
}

#[utoipa::path(
    post,
    path = "/repos",
    tag = "repos",
    request_body = CreateRepo,
    responses((status = 200, description = "Created", body = RepoDto))
)]
async fn create_repo(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateRepo>,
) -> Result<JsonOut<RepoDto>, ApiError> {
    let identity = caller.require()?;
    let new = NewRepo::validated(
        body.org_id,
        body.project_id,
        identity.user_id,
        body.name,
        body.visibility,
        body.description,
        body.default_branch,
    )?;
    if let Some(scopes) = &identity.scopes {
        if !scopes.allows(new.org_id, &new.name, Access::Write) {
            return Err(ApiError::forbidden(format!(
                "this token's scopes do not allow creating {}/{}",
                new.org_id, new.name
            )));
        }
    }
    let actor = Actor {
        user_id: Some(identity.user_id),
        agent_id: None,
    };
    let created = create_repository(&state, new, actor, "api").await?;
    Ok(JsonOut(RepoDto::new(created, &state.config)))
}

#[utoipa::path(
    get,
    path = "/repos/{org_id}/{repo}",
    tag = "repos",
    responses((status = 200, description = "OK", body = RepoDto))
)]
async fn get_repo(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name)): Path<(Uuid, String)>,
) -> Result<JsonOut<RepoDto>, ApiError> {
    let a = access::load(&state.db, &caller, org_id, &name, Need::Read).await?;
    Ok(JsonOut(RepoDto::new(a.repo, &state.config)))
}

/// `Some(None)` for an explicit `null`, `None` when absent.
fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateRepo {
    name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    description: Option<Option<String>>,
    visibility: Option<Visibility>,
    default_branch: Option<String>,
    /// `false` unarchives (the only change allowed on an archived repository).
    archived: Option<bool>,
}

#[utoipa::path(
    patch,
    path = "/repos/{org_id}/{repo}",
    tag = "repos",
    request_body = UpdateRepo,
    responses((status = 200, description = "OK", body = RepoDto))
)]
async fn update_repo(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name)): Path<(Uuid, String)>,
    Json(body): Json<UpdateRepo>,
) -> Result<JsonOut<RepoDto>, ApiError> {
    let a = access::load(&state.db, &caller, org_id, &name, Need::Admin).await?;
    let identity = caller.require()?;
    let repo = a.repo;
    if body.archived == Some(true) {
        return Err(ApiError::validation(
            "archived: use POST /repos/{orgId}/{repo}/archive to archive",
        ));
    }
    let unarchive = body.archived == Some(false) && repo.archived;
    if !unarchive {
        ensure_not_archived(&repo)?;
    }
    if let Some(n) = &body.name {
        validate_name(n)?;
        if let Some(scopes) = &identity.scopes {
            if !scopes.allows(org_id, n, Access::Write) {
                return Err(ApiError::forbidden(format!(
                    "this token's scopes do not allow renaming to {org_id}/{n}"
                )));
            }
        }
        if !n.eq_ignore_ascii_case(&repo.name)
            && store::repos::find_live(&state.db, org_id, n)
                .await?
                .is_some()
        {
            return Err(name_taken(n));
        }
    }
    if let Some(Some(d)) = &body.description {
        validate_description(d)?;
    }
    if let Some(b) = &body.default_branch {
        validate_branch(b)?;
    }

    let final_name = body.name.clone().unwrap_or_else(|| repo.name.clone());
    let mut changes = serde_json::Map::new();
    let mut active = repo.clone().into_active_model();
    if let Some(n) = body.name.filter(|n| *n != repo.name) {
        changes.insert("name".into(), json!({"from": repo.name, "to": n}));
        active.name_lower = Set(n.to_lowercase());
        active.name = Set(n);
    }
    if let Some(d) = body.description.filter(|d| *d != repo.description) {
        changes.insert(
            "description".into(),
            json!({"from": repo.description, "to": d}),
        );
        active.description = Set(d);
    }
    if let Some(v) = body.visibility.filter(|v| v.as_str() != repo.visibility) {
        changes.insert(
            "visibility".into(),
            json!({"from": repo.visibility, "to": v.as_str()}),
        );
        active.visibility = Set(v.as_str().to_owned());
    }
    let new_branch = body.default_branch.filter(|b| *b != repo.default_branch);
    if let Some(b) = &new_branch {
        changes.insert(
            "defaultBranch".into(),
            json!({"from": repo.default_branch, "to": b}),
        );
        active.default_branch = Set(b.clone());
    }
    if unarchive {
        changes.insert("archived".into(), json!({"from": true, "to": false}));
        active.archived = Set(false);
    }
    if changes.is_empty() {
        return Ok(JsonOut(RepoDto::new(repo, &state.config)));
    }
    active.updated_at = Set(Utc::now());
    let event = if unarchive && changes.len() == 1 {
        "repo.unarchived"
    } else {
        "repo.updated"
    };
    let actor = Actor {
        user_id: Some(identity.user_id),
        agent_id: None,
    };
    let disk_path = state.config.storage_root.join(&repo.storage_path);
    let updated = state
        .db
        .transaction::<_, repository::Model, ApiError>(move |txn| {
            Box::pin(async move {
                let updated = active
                    .update(txn)
                    .await
                    .map_err(unique_as_taken(&final_name))?;
                store::audit::record(
                    txn,
                    Some(repo.id),
                    event,
                    actor,
                    json!({ "changes": changes }),
                )
                .await?;
                if let Some(branch) = new_branch {
                    tokio::task::spawn_blocking(move || {
                        gitcore::storage::set_head(&disk_path, &branch)
                    })
                    .await?
                    .map_err(ApiError::internal)?;
                }
                Ok(updated)
            })
        })
        .await;
    crate::access_cache::changed();
    let updated = updated?;
    Ok(JsonOut(RepoDto::new(updated, &state.config)))
}

#[utoipa::path(
    delete,
    path = "/repos/{org_id}/{repo}",
    tag = "repos",
    responses((status = 204, description = "Deleted"))
)]
async fn delete_repo(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name)): Path<(Uuid, String)>,
) -> Result<StatusCode, ApiError> {
    let a = access::load(&state.db, &caller, org_id, &name, Need::Admin).await?;
    let actor = Actor {
        user_id: caller.0.as_ref().map(|i| i.user_id),
        agent_id: None,
    };
    soft_delete(&state.db, a.repo, actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Marks a repository deleted. Its data stays on disk until purged.
async fn soft_delete(
    db: &DatabaseConnection,
    repo: repository::Model,
    actor: Actor,
) -> Result<(), ApiError> {
    let id = repo.id;
    let payload = json!({"name": repo.name, "storagePath": repo.storage_path});
    let mut active = repo.into_active_model();
    let now = Utc::now();
    active.deleted_at = Set(Some(now));
    active.updated_at = Set(now);
    let done = db
        .transaction::<_, (), ApiError>(move |txn| {
            Box::pin(async move {
                active.update(txn).await?;
                store::audit::record(txn, Some(id), "repo.deleted", actor, payload).await?;
                Ok(())
            })
        })
        .await;
    crate::access_cache::changed();
    done?;
    Ok(())
}

#[utoipa::path(
    post,
    path = "/repos/{org_id}/{repo}/archive",
    tag = "repos",
    responses((status = 200, description = "Archived", body = RepoDto))
)]
async fn archive_repo(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name)): Path<(Uuid, String)>,
) -> Result<JsonOut<RepoDto>, ApiError> {
    let a = access::load(&state.db, &caller, org_id, &name, Need::Admin).await?;
    let actor = Actor {
        user_id: caller.0.as_ref().map(|i| i.user_id),
        agent_id: None,
    };
    let archived = archive(&state.db, a.repo, actor).await?;
    Ok(JsonOut(RepoDto::new(archived, &state.config)))
}

/// Archives a repository (idempotent: an archived one is returned unchanged, with no event).
pub async fn archive(
    db: &DatabaseConnection,
    repo: repository::Model,
    actor: Actor,
) -> Result<repository::Model, ApiError> {
    if repo.archived {
        return Ok(repo);
    }
    let id = repo.id;
    let mut active = repo.into_active_model();
    active.archived = Set(true);
    active.updated_at = Set(Utc::now());
    let updated = db
        .transaction::<_, repository::Model, ApiError>(move |txn| {
            Box::pin(async move {
                let updated = active.update(txn).await?;
                store::audit::record(txn, Some(id), "repo.archived", actor, json!({})).await?;
                Ok(updated)
            })
        })
        .await;
    crate::access_cache::changed();
    Ok(updated?)
}
