//! `GET /repos/{o}/{r}/compare/{base}...{head}` (and `{base}..{head}`): how two revisions
//! relate, like GitHub's compare: the merge base, how far `head` is ahead of and behind `base`,
//! the commits of `git log base..head` (in that order, at most 250), and the files changed —
//! against the merge base for three dots (`git diff base...head`), against `base` itself for two
//! (`git diff base head`). `Accept: text/x-diff` answers the patch as `git diff -M` prints it.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use gitcore::read;
use gitcore::ObjectId;
use serde::Serialize;
use uuid::Uuid;

use super::access;
use super::error::ApiError;
use super::extract::Path;
use super::git_data::{accepts, files_patch_response, with_repo, CommitDto, FileDiffDto};
use crate::auth::Caller;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Commits listed at most (the counts cover all of them).
const MAX_COMMITS: usize = 250;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(compare))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct CompareDto {
    base_sha: String,
    head_sha: String,
    merge_base_sha: Option<String>,
    ahead_by: usize,
    behind_by: usize,
    total_commits: usize,
    commits: Vec<CommitDto>,
    files: Vec<FileDiffDto>,
}

/// `base...head` or `base..head` (ref names cannot contain `..`, so the first one splits).
fn parse(spec: &str) -> Result<(String, String, bool), ApiError> {
    let (base, head, three) = match spec.split_once("...") {
        Some((b, h)) => (b, h, true),
        None => match spec.split_once("..") {
            Some((b, h)) => (b, h, false),
            None => {
                return Err(ApiError::validation(format!(
                    "compare needs base...head or base..head, not {spec:?}"
                )))
            }
        },
    };
    if base.is_empty() || head.is_empty() {
        return Err(ApiError::validation(
            "compare needs both a base and a head revision",
        ));
    }
    Ok((base.to_owned(), head.to_owned(), three))
}

#[utoipa::path(
    get,
    operation_id = "compare_refs",
    path = "/repos/{org_id}/{repo}/compare/{*spec}",
    tag = "git",
    responses((status = 200, description = "`{base}...{head}` (from their merge base) or `{base}..{head}`: commits and per-file diff (JSON) or a patch (`Accept: text/x-diff`)", content((CompareDto = "application/json"), (String = "text/x-diff"))))
)]
async fn compare(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, spec)): Path<(Uuid, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (base, head, three_dot) = parse(&spec)?;
    let a = access::load_content(&state, &caller, org_id, &name).await?;
    let git = |e: gitcore::merge::Error| ApiError::internal(gitcore::error_chain(&e));
    let (dto, files) = with_repo(&state, &a.repo, move |r| {
        let base = read::resolve::commit(r, &base)?;
        let head = read::resolve::commit(r, &head)?;
        let merge_base: Option<ObjectId> = gitcore::merge::merge_bases(r, base, head)
            .map_err(git)?
            .first()
            .copied();
        let ahead = gitcore::merge::commits_between(r, base, head).map_err(git)?;
        let behind = gitcore::merge::commits_between(r, head, base).map_err(git)?;
        let from = if three_dot { merge_base } else { Some(base) };
        let from_tree = match from {
            Some(c) => Some(gitcore::merge::tree_of(r, c).map_err(git)?),
            None => None,
        };
        let head_tree = gitcore::merge::tree_of(r, head).map_err(git)?;
        let files = read::diff::trees(r, from_tree, Some(head_tree))?;
        let commits = ahead
            .iter()
            .take(MAX_COMMITS)
            .map(|id| Ok(read::commit::read(r, *id)?.into()))
            .collect::<Result<Vec<CommitDto>, ApiError>>()?;
        Ok((
            CompareDto {
                base_sha: base.to_string(),
                head_sha: head.to_string(),
                merge_base_sha: merge_base.map(|m| m.to_string()),
                ahead_by: ahead.len(),
                behind_by: behind.len(),
                total_commits: ahead.len(),
                commits,
                files: Vec::new(),
            },
            files,
        ))
    })
    .await?;
    if accepts(&headers, "text/x-diff") {
        return Ok(files_patch_response(&files));
    }
    let mut dto = dto;
    dto.files = files.into_iter().map(Into::into).collect();
    Ok(JsonOut(dto).into_response())
}
