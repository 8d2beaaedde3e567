//! Git data: branches, commits, diffs, trees, blobs and tags, read in-process from the bare
//! repository with `gitcore::read` (in `spawn_blocking`), answered as git would answer them.
//!
//! Reads need read access (public repositories are readable anonymously); creating and deleting
//! branches needs the writer role and a repository that is not archived. `{ref}` is a branch, a
//! tag, or a full or abbreviated sha; in tree and blob paths a branch name may contain `/` (the
//! longest existing ref wins). Errors: bad paths or names → 400, unknown ref or path → 404,
//! ambiguous short sha, existing branch or the default branch → 409.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use entity::repository;
use gitcore::read::{self, Repository};
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
use crate::store::{self, audit::Actor};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_branches, create_branch))
        .routes(routes!(get_branch, delete_branch))
        // PUT is only `{branch}/protection`, documented by `protection::Docs`.
        .route(
            "/repos/{org_id}/{repo}/branches/{*branch}",
            axum::routing::put(put_branch_protection),
        )
        .routes(routes!(list_commits, super::commits::create_commit))
        .routes(routes!(get_commit))
        .routes(routes!(get_diff))
        .routes(routes!(get_tree_root))
        .routes(routes!(get_tree_root_slash))
        .routes(routes!(get_tree))
        .routes(routes!(get_blob))
        .routes(routes!(list_tags))
}

impl From<read::Error> for ApiError {
    fn from(e: read::Error) -> Self {
        use read::Error as E;
        match e {
            E::InvalidPath { path, reason } => {
                ApiError::validation(format!("path: {path:?} is not allowed: {reason}"))
            }
            E::InvalidBranchName { name, .. } => {
                ApiError::validation(format!("name: {name:?} is not a valid branch name"))
            }
            E::UnknownRef { name } => {
                ApiError::not_found(format!("no branch, tag or commit matches {name:?}"))
            }
            E::WrongKind { name, kind, wanted } => {
                ApiError::not_found(format!("{name:?} names a {kind}, not a {wanted}"))
            }
            E::PathNotFound { path } => ApiError::not_found(format!("path {path:?} not found")),
            E::NotATree { path } => {
                ApiError::not_found(format!("path {path:?} is not a directory"))
            }
            E::NotABlob { path } => ApiError::not_found(format!("path {path:?} is not a file")),
            E::BranchNotFound { name } => ApiError::not_found(format!("branch {name:?} not found")),
            E::Ambiguous { prefix, candidates } => ApiError::conflict(format!(
                "the short sha {prefix:?} is ambiguous; use more digits"
            ))
            .with_details(json!({
                "candidates": candidates
                    .iter()
                    .map(|(id, kind)| json!({"sha": id.to_string(), "type": kind.to_string()}))
                    .collect::<Vec<_>>()
            })),
            E::BranchExists { name } => {
                ApiError::conflict(format!("branch {name:?} already exists"))
            }
            E::BranchNameConflict { name, existing } => ApiError::conflict(format!(
                "branch {name:?} cannot coexist with the existing branch {existing:?}"
            )),
            E::BranchChanged { name } => ApiError::conflict(format!(
                "branch {name:?} changed while it was being deleted; retry"
            )),
            E::BranchLocked { name } => ApiError::conflict(format!(
                "branch {name:?} is being updated by another request; retry"
            )),
            E::DefaultBranch { name } => {
                ApiError::conflict(format!("branch {name:?} is the default branch"))
            }
            e @ (E::Object { .. } | E::References(_) | E::RefUpdate { .. }) => {
                ApiError::internal(gitcore::error_chain(&e))
            }
        }
    }
}

/// Opens the repository of `repo` in a blocking task and runs `f` on it.
pub(crate) async fn with_repo<T, F>(
    state: &AppState,
    repo: &repository::Model,
    f: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Repository) -> Result<T, ApiError> + Send + 'static,
{
    let path = state.config.storage_root.join(&repo.storage_path);
    let repos = state.repos.clone();
    tokio::task::spawn_blocking(move || {
        let repo = repos
            .open(&path)
            .map_err(|e| ApiError::internal(gitcore::error_chain(&e)))?;
        f(&repo)
    })
    .await?
}

/// A person and a moment.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignatureDto {
    name: String,
    email: String,
    date: DateTime<Utc>,
}

impl From<read::Signature> for SignatureDto {
    fn from(s: read::Signature) -> Self {
        SignatureDto {
            name: s.name,
            email: s.email,
            date: DateTime::from_timestamp(s.seconds, 0).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct BranchDto {
    name: String,
    commit_sha: String,
    is_default: bool,
}

impl From<read::branches::Branch> for BranchDto {
    fn from(b: read::branches::Branch) -> Self {
        BranchDto {
            name: b.name,
            commit_sha: b.commit.to_string(),
            is_default: b.is_default,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CommitDto {
    sha: String,
    message: String,
    author: SignatureDto,
    committer: SignatureDto,
    parents: Vec<String>,
}

impl From<read::commit::Commit> for CommitDto {
    fn from(c: read::commit::Commit) -> Self {
        CommitDto {
            sha: c.id.to_string(),
            message: c.message,
            author: c.author.into(),
            committer: c.committer.into(),
            parents: c.parents.iter().map(ToString::to_string).collect(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileDiffDto {
    path: String,
    old_path: Option<String>,
    status: &'static str,
    additions: u32,
    deletions: u32,
    binary: bool,
    patch: String,
}

impl From<read::diff::FileDiff> for FileDiffDto {
    fn from(f: read::diff::FileDiff) -> Self {
        FileDiffDto {
            patch: String::from_utf8_lossy(&f.patch).into_owned(),
            path: f.path,
            old_path: f.old_path,
            status: f.status.as_str(),
            additions: f.additions,
            deletions: f.deletions,
            binary: f.binary,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct TreeEntryDto {
    name: String,
    path: String,
    #[serde(rename = "type")]
    kind: &'static str,
    mode: String,
    sha: String,
    size: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct BlobDto {
    path: String,
    sha: String,
    size: u64,
    encoding: &'static str,
    content: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct TagDto {
    name: String,
    target_sha: String,
    commit_sha: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tagger: Option<SignatureDto>,
}

impl From<read::tags::Tag> for TagDto {
    fn from(t: read::tags::Tag) -> Self {
        TagDto {
            name: t.name,
            target_sha: t.target.to_string(),
            commit_sha: t.commit.map(|c| c.to_string()),
            message: t.message,
            tagger: t.tagger.map(Into::into),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PageQuery {
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub(crate) limit: Option<u64>,
    /// Items to skip (default 0).
    pub(crate) offset: Option<u64>,
}

/// Applies `limit`/`offset` to an in-memory list.
fn paged<T>(items: Vec<T>, limit: u64, offset: u64) -> Vec<T> {
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    items.into_iter().skip(offset).take(limit).collect()
}

#[utoipa::path(
    get,
    path = "/repos/{org_id}/{repo}/branches",
    tag = "git",
    params(PageQuery),
    responses((status = 200, description = "OK", body = Vec<BranchDto>))
)]
async fn list_branches(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name)): Path<(Uuid, String)>,
    Query(q): Query<PageQuery>,
) -> Result<JsonOut<Vec<BranchDto>>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let a = access::load_content(&state, &caller, org_id, &name).await?;
    let branches = with_repo(&state, &a.repo, |r| Ok(read::branches::list(r)?)).await?;
    Ok(JsonOut(
        paged(branches, limit, offset)
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/repos/{org_id}/{repo}/branches/{*branch}",
    tag = "git",
    responses((status = 200, description = "The branch (or, for `{branch}/protection`, its ProtectionDto)", body = BranchDto))
)]
async fn get_branch(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, branch)): Path<(Uuid, String, String)>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    if let Some(b) = branch.strip_suffix("/protection") {
        return Ok(
            super::protection::get_protection(&state, &caller, org_id, &name, b)
                .await?
                .into_response(),
        );
    }
    Ok(get_branch_itself(&state, &caller, org_id, &name, branch)
        .await?
        .into_response())
}

async fn put_branch_protection(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, branch)): Path<(Uuid, String, String)>,
    Json(body): Json<super::protection::PutProtection>,
) -> Result<JsonOut<super::protection::ProtectionDto>, ApiError> {
    let Some(b) = branch.strip_suffix("/protection") else {
        return Err(ApiError::method_not_allowed());
    };
    super::protection::put_protection(&state, &caller, org_id, &name, b, body).await
}

async fn get_branch_itself(
    state: &AppState,
    caller: &Caller,
    org_id: Uuid,
    name: &str,
    branch: String,
) -> Result<JsonOut<BranchDto>, ApiError> {
    let a = access::load_content(state, caller, org_id, name).await?;
    let b = with_repo(state, &a.repo, move |r| {
        Ok(read::branches::get(r, &branch)?)
    })
    .await?;
    Ok(JsonOut(b.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBranch {
    name: String,
    /// A branch, tag or sha; the default branch when absent.
    from: Option<String>,
}

#[utoipa::path(
    post,
    path = "/repos/{org_id}/{repo}/branches",
    tag = "git",
    request_body = CreateBranch,
    responses((status = 200, description = "Created", body = BranchDto))
)]
async fn create_branch(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name)): Path<(Uuid, String)>,
    Json(body): Json<CreateBranch>,
) -> Result<JsonOut<BranchDto>, ApiError> {
    let a = access::load(&state.db, &caller, org_id, &name, Need::Write).await?;
    ensure_not_archived(&a.repo)?;
    let identity = caller.require()?;
    if body.name.len() > 255 || !gitcore::storage::is_valid_branch_name(&body.name) {
        return Err(ApiError::validation(format!(
            "name: {:?} is not a valid branch name",
            body.name
        )));
    }
    let from = body
        .from
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| a.repo.default_branch.clone());
    let actor = Actor {
        user_id: Some(identity.user_id),
        agent_id: None,
    };
    let commit = with_repo(&state, &a.repo, {
        let from = from.clone();
        move |r| Ok(read::resolve::commit(r, &from)?)
    })
    .await?;
    let repo = a.repo;
    let path = state.config.storage_root.join(&repo.storage_path);
    // Like repository creation: the event is written in the transaction, the branch is created
    // on disk last, and the transaction commits only once it exists.
    let created = state
        .db
        .transaction::<_, read::branches::Branch, ApiError>(move |txn| {
            Box::pin(async move {
                store::audit::record(
                    txn,
                    Some(repo.id),
                    "branch.created",
                    actor,
                    json!({"name": body.name, "sha": commit.to_string(), "from": from}),
                )
                .await?;
                let created = tokio::task::spawn_blocking(move || {
                    let r = gitcore::storage::open(&path)
                        .map_err(|e| ApiError::internal(gitcore::error_chain(&e)))?;
                    Ok::<_, ApiError>(read::branches::create(&r, &body.name, &commit.to_string())?)
                })
                .await??;
                Ok(created)
            })
        })
        .await?;
    Ok(JsonOut(created.into()))
}

#[utoipa::path(
    delete,
    path = "/repos/{org_id}/{repo}/branches/{*branch}",
    tag = "git",
    responses((status = 204, description = "Deleted"))
)]
async fn delete_branch(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, branch)): Path<(Uuid, String, String)>,
) -> Result<StatusCode, ApiError> {
    if let Some(b) = branch.strip_suffix("/protection") {
        return super::protection::delete_protection(&state, &caller, org_id, &name, b).await;
    }
    let a = access::load(&state.db, &caller, org_id, &name, Need::Write).await?;
    ensure_not_archived(&a.repo)?;
    let identity = caller.require()?;
    if branch == a.repo.default_branch {
        return Err(ApiError::conflict(format!(
            "branch {branch:?} is the default branch and cannot be deleted"
        )));
    }
    if store::protection::get(&state.db, a.repo.id, &branch)
        .await?
        .is_some_and(|r| !r.allow_deletion)
    {
        return Err(ApiError::conflict(format!(
            "branch {branch:?} is protected against deletion"
        )));
    }
    let actor = Actor {
        user_id: Some(identity.user_id),
        agent_id: None,
    };
    let current = with_repo(&state, &a.repo, {
        let branch = branch.clone();
        move |r| Ok(read::branches::get(r, &branch)?)
    })
    .await?;
    let repo = a.repo;
    let path = state.config.storage_root.join(&repo.storage_path);
    state
        .db
        .transaction::<_, (), ApiError>(move |txn| {
            Box::pin(async move {
                store::audit::record(
                    txn,
                    Some(repo.id),
                    "branch.deleted",
                    actor,
                    json!({"name": branch, "sha": current.commit.to_string()}),
                )
                .await?;
                // Compare-and-swap against the value recorded in the event.
                tokio::task::spawn_blocking(move || {
                    let r = gitcore::storage::open(&path)
                        .map_err(|e| ApiError::internal(gitcore::error_chain(&e)))?;
                    read::branches::delete(&r, &branch, Some(current.commit))?;
                    Ok::<_, ApiError>(())
                })
                .await??;
                Ok(())
            })
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct CommitsQuery {
    #[serde(rename = "ref")]
    reference: Option<String>,
    path: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u64>,
    /// Items to skip (default 0).
    offset: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/repos/{org_id}/{repo}/commits",
    tag = "git",
    params(CommitsQuery),
    responses((status = 200, description = "OK", body = Vec<CommitDto>))
)]
async fn list_commits(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name)): Path<(Uuid, String)>,
    Query(q): Query<CommitsQuery>,
) -> Result<JsonOut<Vec<CommitDto>>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    if let Some(p) = &q.path {
        read::validate_path(p)?;
    }
    let a = access::load_content(&state, &caller, org_id, &name).await?;
    let commits = with_repo(&state, &a.repo, move |r| {
        let start = match q.reference.as_deref().filter(|s| !s.is_empty()) {
            Some(name) => read::resolve::commit(r, name)?,
            None => match read::resolve::head_commit(r)? {
                Some(id) => id,
                None => return Ok(Vec::new()),
            },
        };
        let opts = read::log::Options {
            path: q.path.as_deref(),
            skip: usize::try_from(offset).unwrap_or(usize::MAX),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        };
        Ok(read::log::log(r, start, opts)?)
    })
    .await?;
    Ok(JsonOut(commits.into_iter().map(Into::into).collect()))
}

#[utoipa::path(
    get,
    path = "/repos/{org_id}/{repo}/commits/{sha}",
    tag = "git",
    responses((status = 200, description = "OK", body = CommitDto))
)]
async fn get_commit(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, sha)): Path<(Uuid, String, String)>,
) -> Result<JsonOut<CommitDto>, ApiError> {
    let a = access::load_content(&state, &caller, org_id, &name).await?;
    let c = with_repo(&state, &a.repo, move |r| Ok(read::commit::find(r, &sha)?)).await?;
    Ok(JsonOut(c.into()))
}

/// Whether the `Accept` header asks for `media_type`.
pub(crate) fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            part.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(media_type))
        })
}

/// A patch as `text/x-diff` (what `Accept: text/x-diff` asks of every diff route).
pub(crate) fn patch_response(patch: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(patch));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/x-diff"),
    );
    response
}

/// The patch of several files, concatenated, as `text/x-diff`.
pub(crate) fn files_patch_response(files: &[read::diff::FileDiff]) -> Response {
    patch_response(files.iter().flat_map(|f| f.patch.iter().copied()).collect())
}

#[utoipa::path(
    get,
    path = "/repos/{org_id}/{repo}/commits/{sha}/diff",
    tag = "git",
    responses((status = 200, description = "Per-file diff (JSON) or a patch (`Accept: text/x-diff`)", content((Vec<FileDiffDto> = "application/json"), (String = "text/x-diff"))))
)]
async fn get_diff(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, sha)): Path<(Uuid, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let a = access::load_content(&state, &caller, org_id, &name).await?;
    let diff = with_repo(&state, &a.repo, move |r| Ok(read::diff::commit(r, &sha)?)).await?;
    if accepts(&headers, "text/x-diff") {
        return Ok(patch_response(diff.patch()));
    }
    let files: Vec<FileDiffDto> = diff.files.into_iter().map(Into::into).collect();
    Ok(JsonOut(files).into_response())
}

#[utoipa::path(
    get,
    path = "/repos/{org_id}/{repo}/tree/{ref}",
    tag = "git",
    responses((status = 200, description = "OK", body = Vec<TreeEntryDto>))
)]
async fn get_tree_root(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, reference)): Path<(Uuid, String, String)>,
) -> Result<JsonOut<Vec<TreeEntryDto>>, ApiError> {
    tree(state, caller, org_id, name, reference, String::new()).await
}

#[utoipa::path(
    get,
    path = "/repos/{org_id}/{repo}/tree/{ref}/",
    tag = "git",
    responses((status = 200, description = "OK", body = Vec<TreeEntryDto>))
)]
async fn get_tree_root_slash(
    state: State<AppState>,
    caller: Caller,
    path: Path<(Uuid, String, String)>,
) -> Result<JsonOut<Vec<TreeEntryDto>>, ApiError> {
    get_tree_root(state, caller, path).await
}

#[utoipa::path(
    get,
    path = "/repos/{org_id}/{repo}/tree/{ref}/{*path}",
    tag = "git",
    responses((status = 200, description = "OK", body = Vec<TreeEntryDto>))
)]
async fn get_tree(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, reference, path)): Path<(Uuid, String, String, String)>,
) -> Result<JsonOut<Vec<TreeEntryDto>>, ApiError> {
    tree(state, caller, org_id, name, reference, path).await
}

async fn tree(
    state: AppState,
    caller: Caller,
    org_id: Uuid,
    name: String,
    reference: String,
    path: String,
) -> Result<JsonOut<Vec<TreeEntryDto>>, ApiError> {
    read::validate_path(&path)?;
    let a = access::load_content(&state, &caller, org_id, &name).await?;
    let listing = with_repo(&state, &a.repo, move |r| {
        Ok(read::tree::list(r, &reference, &path)?)
    })
    .await?;
    Ok(JsonOut(
        listing
            .entries
            .into_iter()
            .map(|e| TreeEntryDto {
                name: e.name,
                path: e.path,
                kind: e.kind.as_str(),
                mode: e.mode,
                sha: e.id.to_string(),
                size: e.size,
            })
            .collect(),
    ))
}

#[utoipa::path(
    get,
    path = "/repos/{org_id}/{repo}/blob/{ref}/{*path}",
    tag = "git",
    responses((status = 200, description = "The file (JSON) or its bytes (`Accept: application/octet-stream`)", content((BlobDto = "application/json"), (String = "application/octet-stream"))))
)]
async fn get_blob(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, reference, path)): Path<(Uuid, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read::validate_path(&path)?;
    let a = access::load_content(&state, &caller, org_id, &name).await?;
    let blob = with_repo(&state, &a.repo, move |r| {
        Ok(read::blob::read(r, &reference, &path)?)
    })
    .await?;
    if accepts(&headers, "application/octet-stream") {
        let mut response = Response::new(Body::from(blob.data));
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        return Ok(response);
    }
    let size = blob.data.len() as u64;
    let (encoding, content) = match String::from_utf8(blob.data) {
        Ok(text) => ("utf-8", text),
        Err(e) => (
            "base64",
            base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
        ),
    };
    Ok(JsonOut(BlobDto {
        path: blob.path,
        sha: blob.id.to_string(),
        size,
        encoding,
        content,
    })
    .into_response())
}

#[utoipa::path(
    get,
    path = "/repos/{org_id}/{repo}/tags",
    tag = "git",
    params(PageQuery),
    responses((status = 200, description = "OK", body = Vec<TagDto>))
)]
async fn list_tags(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name)): Path<(Uuid, String)>,
    Query(q): Query<PageQuery>,
) -> Result<JsonOut<Vec<TagDto>>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let a = access::load_content(&state, &caller, org_id, &name).await?;
    let tags = with_repo(&state, &a.repo, |r| Ok(read::tags::list(r)?)).await?;
    Ok(JsonOut(
        paged(tags, limit, offset)
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}
