//! Pull requests: list, create, get, patch, close, reopen, and the reads on what a pull request
//! would land (diff, commits). Mergeability, conflicts, merging and following pushes are in
//! [`super::pulls_merge`].
//!
//! `{id}` is the pull request's UUID or its number in the repository (`/pulls/7`). Reads need
//! read access; creating needs the writer role; patch, close and reopen need the author or a
//! writer; every write needs a token scope that allows writing and a repository that is not
//! archived. Each change writes its audit event (`pull.opened|updated|closed|reopened`) in the
//! same transaction. Each pull request's source tip is published as `refs/pull/<number>/head`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use chrono::{DateTime, Utc};
use entity::{pull_request, repository};
use gitcore::read;
use gitcore::ObjectId;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::access::{self, ensure_not_archived, Authorized, Need};
use super::error::ApiError;
use super::extract::{Json, Path, Query};
use super::git_data::{
    accepts, files_patch_response, with_repo, CommitDto, FileDiffDto, PageQuery,
};
use super::page::page;
use super::pulls_merge;
use crate::auth::Caller;
use crate::state::AppState;
use crate::store::{self, audit::Actor, pulls};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module and of [`super::pulls_merge`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, patch))
        .routes(routes!(close))
        .routes(routes!(reopen))
        .routes(routes!(diff))
        .routes(routes!(commits))
        .routes(routes!(pulls_merge::mergeability))
        .routes(routes!(pulls_merge::conflicts))
        .routes(routes!(pulls_merge::merge))
}

/// A pull request on the wire.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullDto {
    id: Uuid,
    number: i64,
    repo_id: Uuid,
    source_branch: String,
    target_branch: String,
    title: String,
    description: Option<String>,
    status: String,
    author_id: Uuid,
    head_sha: String,
    base_sha: String,
    merge_commit_sha: Option<String>,
    merge_strategy: Option<String>,
    merged_by: Option<Uuid>,
    merged_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<pull_request::Model> for PullDto {
    fn from(m: pull_request::Model) -> Self {
        Self {
            id: m.id,
            number: m.number,
            repo_id: m.repo_id,
            source_branch: m.source_branch,
            target_branch: m.target_branch,
            title: m.title,
            description: m.description,
            status: m.status,
            author_id: m.author_id,
            head_sha: m.head_sha,
            base_sha: m.base_sha,
            merge_commit_sha: m.merge_commit_sha,
            merge_strategy: m.merge_strategy,
            merged_by: m.merged_by,
            merged_at: m.merged_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// The pull request `id` (UUID or number) of `org_id/name`, with access checked for `need`.
pub(crate) async fn load(
    state: &AppState,
    caller: &Caller,
    org_id: Uuid,
    name: &str,
    id: &str,
    need: Need,
) -> Result<(Authorized, pull_request::Model), ApiError> {
    enum Key {
        Id(Uuid),
        Number(i64),
    }
    let key = if let Ok(uuid) = Uuid::parse_str(id) {
        Key::Id(uuid)
    } else if let Some(n) = id.parse::<i64>().ok().filter(|n| *n > 0) {
        Key::Number(n)
    } else {
        return Err(ApiError::validation(format!(
            "id: {id:?} is neither a pull request UUID nor a pull request number"
        )));
    };
    let a = access::load(&state.db, caller, org_id, name, need).await?;
    let pr = match key {
        Key::Id(uuid) => pulls::find(&state.db, a.repo.id, uuid).await?,
        Key::Number(n) => pulls::find_by_number(&state.db, a.repo.id, n).await?,
    }
    .ok_or_else(|| ApiError::not_found("pull request not found"))?;
    Ok((a, pr))
}

/// The author of `pr` or a writer, with a token that may write, on a repository not archived.
fn ensure_author_or_writer(
    caller: &Caller,
    a: &Authorized,
    pr: &pull_request::Model,
) -> Result<Uuid, ApiError> {
    let identity = caller.require()?;
    let author = identity.user_id == pr.author_id && access::scope_allows_write(caller, &a.repo);
    if !(author || access::may_write(caller, a)) {
        return Err(ApiError::forbidden(
            "this needs the pull request's author or the writer role on the repository",
        ));
    }
    ensure_not_archived(&a.repo)?;
    Ok(identity.user_id)
}

fn actor(user_id: Uuid) -> Actor {
    Actor {
        user_id: Some(user_id),
        agent_id: None,
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    status: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u64>,
    /// Items to skip (default 0).
    offset: Option<u64>,
}

#[utoipa::path(
    get,
    operation_id = "list_pulls",
    path = "/repos/{org_id}/{repo}/pulls",
    tag = "pulls",
    params(ListQuery),
    responses((status = 200, description = "OK", body = Vec<PullDto>))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name)): Path<(Uuid, String)>,
    Query(q): Query<ListQuery>,
) -> Result<JsonOut<Vec<PullDto>>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let status = match q.status.as_deref() {
        None | Some("open") => Some(pulls::OPEN),
        Some("closed") => Some(pulls::CLOSED),
        Some("merged") => Some(pulls::MERGED),
        Some("all") => None,
        Some(other) => {
            return Err(ApiError::validation(format!(
                "status: {other:?} is not one of open, closed, merged, all"
            )))
        }
    };
    let a = access::load(&state.db, &caller, org_id, &name, Need::Read).await?;
    let rows = pulls::list(&state.db, a.repo.id, status, limit, offset).await?;
    Ok(JsonOut(rows.into_iter().map(Into::into).collect()))
}

#[utoipa::path(
    get,
    operation_id = "get_pull",
    path = "/repos/{org_id}/{repo}/pulls/{id}",
    tag = "pulls",
    responses((status = 200, description = "OK", body = PullDto))
)]
async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, id)): Path<(Uuid, String, String)>,
) -> Result<JsonOut<PullDto>, ApiError> {
    let (_, pr) = load(&state, &caller, org_id, &name, &id, Need::Read).await?;
    Ok(JsonOut(pr.into()))
}

const MAX_TITLE: usize = 512;
const MAX_DESCRIPTION: usize = 64 * 1024;

fn validate_title(title: &str) -> Result<String, ApiError> {
    let t = title.trim();
    if t.is_empty() || t.chars().count() > MAX_TITLE {
        return Err(ApiError::validation(format!(
            "title: must be 1 to {MAX_TITLE} characters"
        )));
    }
    Ok(t.to_owned())
}

fn validate_description(d: Option<String>) -> Result<Option<String>, ApiError> {
    match d {
        Some(d) if d.len() > MAX_DESCRIPTION => Err(ApiError::validation(format!(
            "description: must be at most {MAX_DESCRIPTION} bytes"
        ))),
        d => Ok(d),
    }
}

fn validate_branch(field: &str, name: &str) -> Result<(), ApiError> {
    if name.len() > 255 || !gitcore::storage::is_valid_branch_name(name) {
        return Err(ApiError::validation(format!(
            "{field}: {name:?} is not a valid branch name"
        )));
    }
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreatePull {
    source_branch: String,
    target_branch: String,
    title: String,
    description: Option<String>,
}

/// How many times an insert is retried when a concurrent one took the same number.
const NUMBER_ATTEMPTS: usize = 8;

#[utoipa::path(
    post,
    operation_id = "create_pull",
    path = "/repos/{org_id}/{repo}/pulls",
    tag = "pulls",
    request_body = CreatePull,
    responses((status = 200, description = "Created", body = PullDto))
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name)): Path<(Uuid, String)>,
    Json(body): Json<CreatePull>,
) -> Result<JsonOut<PullDto>, ApiError> {
    validate_branch("sourceBranch", &body.source_branch)?;
    validate_branch("targetBranch", &body.target_branch)?;
    if body.source_branch == body.target_branch {
        return Err(ApiError::validation(
            "sourceBranch: must differ from targetBranch",
        ));
    }
    let title = validate_title(&body.title)?;
    let description = validate_description(body.description)?;
    let a = access::load(&state.db, &caller, org_id, &name, Need::Write).await?;
    ensure_not_archived(&a.repo)?;
    let user = caller.require()?.user_id;
    let (source, target) = (body.source_branch.clone(), body.target_branch.clone());
    let (head, base) = with_repo(&state, &a.repo, move |r| {
        let head = read::branches::get(r, &source)?.commit;
        let base = read::branches::get(r, &target)?.commit;
        let ahead = gitcore::merge::commits_between(r, base, head)
            .map_err(|e| ApiError::internal(gitcore::error_chain(&e)))?;
        if ahead.is_empty() {
            return Err(ApiError::validation(format!(
                "sourceBranch: there are no commits on {source:?} that {target:?} does not have"
            )));
        }
        Ok((head, base))
    })
    .await?;
    let open_conflict = || {
        ApiError::conflict(format!(
            "an open pull request from {:?} into {:?} exists already",
            body.source_branch, body.target_branch
        ))
    };
    if pulls::find_open_pair(
        &state.db,
        a.repo.id,
        &body.source_branch,
        &body.target_branch,
    )
    .await?
    .is_some()
    {
        return Err(open_conflict());
    }
    let new = pulls::New {
        repo_id: a.repo.id,
        source_branch: body.source_branch.clone(),
        target_branch: body.target_branch.clone(),
        title,
        description,
        author_id: user,
        head_sha: head.to_string(),
        base_sha: base.to_string(),
    };
    let mut attempt = 0;
    let pr = loop {
        attempt += 1;
        let new = new.clone();
        let result = state
            .db
            .transaction::<_, pull_request::Model, sea_orm::DbErr>(move |txn| {
                Box::pin(async move {
                    let pr = pulls::insert(txn, new).await?;
                    store::audit::record(
                        txn,
                        Some(pr.repo_id),
                        "pull.opened",
                        actor(pr.author_id),
                        json!({
                            "pullId": pr.id, "number": pr.number,
                            "sourceBranch": pr.source_branch, "targetBranch": pr.target_branch,
                            "headSha": pr.head_sha, "baseSha": pr.base_sha, "title": pr.title,
                        }),
                    )
                    .await?;
                    Ok(pr)
                })
            })
            .await;
        match result {
            Ok(pr) => break pr,
            Err(sea_orm::TransactionError::Transaction(e)) if pulls::is_number_collision(&e) => {
                if attempt >= NUMBER_ATTEMPTS {
                    return Err(ApiError::conflict(
                        "too many pull requests are being opened at once; retry",
                    ));
                }
            }
            Err(sea_orm::TransactionError::Transaction(e)) if pulls::is_open_pair_collision(&e) => {
                return Err(open_conflict())
            }
            Err(
                sea_orm::TransactionError::Transaction(e)
                | sea_orm::TransactionError::Connection(e),
            ) => return Err(e.into()),
        }
    };
    publish_head(&state, &a.repo, pr.number, head).await;
    Ok(JsonOut(pr.into()))
}

/// Points `refs/pull/<number>/head` at `head`. A failure is logged: the ref is a convenience,
/// refreshed by the next push to the source.
pub(crate) async fn publish_head(
    state: &AppState,
    repo: &repository::Model,
    number: i64,
    head: ObjectId,
) {
    let result = with_repo(state, repo, move |r| {
        read::branches::set_ref(
            r,
            &format!("refs/pull/{number}/head"),
            head,
            "pull request head",
        )
        .map_err(|e| ApiError::internal(gitcore::error_chain(&e)))
    })
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, repo = %repo.id, number, "could not publish the pull request head ref");
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PatchPull {
    title: Option<String>,
    description: Option<String>,
}

#[utoipa::path(
    patch,
    operation_id = "update_pull",
    path = "/repos/{org_id}/{repo}/pulls/{id}",
    tag = "pulls",
    request_body = PatchPull,
    responses((status = 200, description = "OK", body = PullDto))
)]
async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, id)): Path<(Uuid, String, String)>,
    Json(body): Json<PatchPull>,
) -> Result<JsonOut<PullDto>, ApiError> {
    let title = body.title.as_deref().map(validate_title).transpose()?;
    let description = validate_description(body.description)?;
    let (a, pr) = load(&state, &caller, org_id, &name, &id, Need::Read).await?;
    let user = ensure_author_or_writer(&caller, &a, &pr)?;
    let mut changes = serde_json::Map::new();
    if let Some(t) = title.filter(|t| *t != pr.title) {
        changes.insert("title".into(), json!({"from": pr.title, "to": t}));
    }
    if let Some(d) = description.filter(|d| Some(d) != pr.description.as_ref()) {
        changes.insert(
            "description".into(),
            json!({"from": pr.description, "to": d}),
        );
    }
    if changes.is_empty() {
        return Ok(JsonOut(pr.into()));
    }
    let id = pr.id;
    let repo_id = pr.repo_id;
    let updated = state
        .db
        .transaction::<_, pull_request::Model, ApiError>(move |txn| {
            Box::pin(async move {
                let mut q = pull_request::Entity::update_many()
                    .col_expr(pull_request::Column::UpdatedAt, Expr::value(Utc::now()));
                if let Some(t) = changes.get("title").and_then(|c| c["to"].as_str()) {
                    q = q.col_expr(pull_request::Column::Title, Expr::value(t));
                }
                if let Some(d) = changes.get("description").and_then(|c| c["to"].as_str()) {
                    q = q.col_expr(pull_request::Column::Description, Expr::value(d));
                }
                q.filter(pull_request::Column::Id.eq(id)).exec(txn).await?;
                store::audit::record(
                    txn,
                    Some(repo_id),
                    "pull.updated",
                    actor(user),
                    json!({"pullId": id, "changes": changes}),
                )
                .await?;
                pull_request::Entity::find_by_id(id)
                    .one(txn)
                    .await?
                    .ok_or_else(|| ApiError::not_found("pull request not found"))
            })
        })
        .await?;
    Ok(JsonOut(updated.into()))
}

#[utoipa::path(
    post,
    operation_id = "close_pull",
    path = "/repos/{org_id}/{repo}/pulls/{id}/close",
    tag = "pulls",
    responses((status = 200, description = "OK", body = PullDto))
)]
async fn close(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, id)): Path<(Uuid, String, String)>,
) -> Result<JsonOut<PullDto>, ApiError> {
    let (a, pr) = load(&state, &caller, org_id, &name, &id, Need::Read).await?;
    let user = ensure_author_or_writer(&caller, &a, &pr)?;
    match pr.status.as_str() {
        pulls::CLOSED => return Ok(JsonOut(pr.into())),
        pulls::MERGED => {
            return Err(ApiError::conflict(
                "the pull request is merged and cannot be closed",
            ))
        }
        _ => {}
    }
    set_status(&state, pr, pulls::OPEN, pulls::CLOSED, "pull.closed", user)
        .await
        .map(JsonOut)
}

#[utoipa::path(
    post,
    operation_id = "reopen_pull",
    path = "/repos/{org_id}/{repo}/pulls/{id}/reopen",
    tag = "pulls",
    responses((status = 200, description = "OK", body = PullDto))
)]
async fn reopen(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, id)): Path<(Uuid, String, String)>,
) -> Result<JsonOut<PullDto>, ApiError> {
    let (a, pr) = load(&state, &caller, org_id, &name, &id, Need::Read).await?;
    let user = ensure_author_or_writer(&caller, &a, &pr)?;
    match pr.status.as_str() {
        pulls::OPEN => return Ok(JsonOut(pr.into())),
        pulls::MERGED => {
            return Err(ApiError::conflict(
                "the pull request is merged and cannot be reopened",
            ))
        }
        _ => {}
    }
    let source = pr.source_branch.clone();
    with_repo(&state, &a.repo, move |r| {
        match read::branches::get(r, &source) {
            Ok(_) => Ok(()),
            Err(read::Error::BranchNotFound { .. }) => Err(ApiError::conflict(format!(
                "the source branch {source:?} no longer exists"
            ))),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    if pulls::find_open_pair(&state.db, pr.repo_id, &pr.source_branch, &pr.target_branch)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(format!(
            "another open pull request from {:?} into {:?} exists",
            pr.source_branch, pr.target_branch
        )));
    }
    set_status(
        &state,
        pr,
        pulls::CLOSED,
        pulls::OPEN,
        "pull.reopened",
        user,
    )
    .await
    .map(JsonOut)
}

/// Moves `pr` from status `from` to `to` (compare-and-swap on the status) with its event.
async fn set_status(
    state: &AppState,
    pr: pull_request::Model,
    from: &'static str,
    to: &'static str,
    event: &'static str,
    user: Uuid,
) -> Result<PullDto, ApiError> {
    let (id, repo_id) = (pr.id, pr.repo_id);
    let result = state
        .db
        .transaction::<_, pull_request::Model, ApiError>(move |txn| {
            Box::pin(async move {
                let done = pull_request::Entity::update_many()
                    .col_expr(pull_request::Column::Status, Expr::value(to))
                    .col_expr(pull_request::Column::UpdatedAt, Expr::value(Utc::now()))
                    .filter(pull_request::Column::Id.eq(id))
                    .filter(pull_request::Column::Status.eq(from))
                    .exec(txn)
                    .await?;
                if done.rows_affected != 1 {
                    return Err(ApiError::conflict(
                        "the pull request changed meanwhile; retry",
                    ));
                }
                store::audit::record(
                    txn,
                    Some(repo_id),
                    event,
                    actor(user),
                    json!({"pullId": id}),
                )
                .await?;
                pull_request::Entity::find_by_id(id)
                    .one(txn)
                    .await?
                    .ok_or_else(|| ApiError::not_found("pull request not found"))
            })
        })
        .await;
    match result {
        Ok(pr) => Ok(pr.into()),
        Err(sea_orm::TransactionError::Transaction(e)) => Err(e),
        Err(sea_orm::TransactionError::Connection(e)) => {
            if let Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) = e.sql_err() {
                return Err(ApiError::conflict(
                    "another open pull request for the same branches exists",
                ));
            }
            Err(e.into())
        }
    }
}

/// The (target, source) tips a pull request is about: the branches' current tips while it is
/// open (the recorded ones for a branch that is gone), the recorded ones once it is closed or
/// merged.
pub(crate) fn tips(
    r: &read::Repository,
    pr: &pull_request::Model,
) -> Result<(Option<ObjectId>, Option<ObjectId>), ApiError> {
    let recorded = |sha: &str| ObjectId::from_hex(sha.as_bytes()).ok();
    if pr.status != pulls::OPEN {
        return Ok((recorded(&pr.base_sha), recorded(&pr.head_sha)));
    }
    let tip = |branch: &str| match read::branches::get(r, branch) {
        Ok(b) => Ok(Some(b.commit)),
        Err(read::Error::BranchNotFound { .. }) => Ok(None),
        Err(e) => Err(ApiError::from(e)),
    };
    Ok((tip(&pr.target_branch)?, tip(&pr.source_branch)?))
}

#[utoipa::path(
    get,
    operation_id = "get_pull_diff",
    path = "/repos/{org_id}/{repo}/pulls/{id}/diff",
    tag = "pulls",
    responses((status = 200, description = "Per-file diff (JSON) or a patch (`Accept: text/x-diff`)", content((Vec<FileDiffDto> = "application/json"), (String = "text/x-diff"))))
)]
async fn diff(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, id)): Path<(Uuid, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (a, pr) = load(&state, &caller, org_id, &name, &id, Need::Read).await?;
    let files = with_repo(&state, &a.repo, move |r| {
        let (target, source) = tips(r, &pr)?;
        let source = source.or_else(|| ObjectId::from_hex(pr.head_sha.as_bytes()).ok());
        let Some(source) = source else {
            return Ok(Vec::new());
        };
        let git = |e: gitcore::merge::Error| ApiError::internal(gitcore::error_chain(&e));
        let base_tree = match target {
            Some(t) => match gitcore::merge::merge_bases(r, t, source)
                .map_err(git)?
                .first()
            {
                Some(b) => Some(gitcore::merge::tree_of(r, *b).map_err(git)?),
                None => None,
            },
            None => None,
        };
        let head_tree = gitcore::merge::tree_of(r, source).map_err(git)?;
        Ok(read::diff::trees(r, base_tree, Some(head_tree))?)
    })
    .await?;
    if accepts(&headers, "text/x-diff") {
        return Ok(files_patch_response(&files));
    }
    let files: Vec<FileDiffDto> = files.into_iter().map(Into::into).collect();
    Ok(JsonOut(files).into_response())
}

#[utoipa::path(
    get,
    operation_id = "list_pull_commits",
    path = "/repos/{org_id}/{repo}/pulls/{id}/commits",
    tag = "pulls",
    params(PageQuery),
    responses((status = 200, description = "OK", body = Vec<CommitDto>))
)]
async fn commits(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, id)): Path<(Uuid, String, String)>,
    Query(q): Query<PageQuery>,
) -> Result<JsonOut<Vec<CommitDto>>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let (a, pr) = load(&state, &caller, org_id, &name, &id, Need::Read).await?;
    let commits = with_repo(&state, &a.repo, move |r| {
        let (target, source) = tips(r, &pr)?;
        let (Some(target), Some(source)) = (target, source) else {
            return Ok(Vec::new());
        };
        let ids = gitcore::merge::commits_between(r, target, source)
            .map_err(|e| ApiError::internal(gitcore::error_chain(&e)))?;
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        let take = usize::try_from(limit).unwrap_or(usize::MAX);
        ids.into_iter()
            .skip(skip)
            .take(take)
            .map(|id| Ok(read::commit::read(r, id)?))
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await?;
    Ok(JsonOut(commits.into_iter().map(Into::into).collect()))
}
