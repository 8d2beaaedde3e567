//! `GET /repos/{o}/{r}/blame/{ref}/{*path}`: `git blame` of a file, as ranges of lines with the
//! commit that last changed them (with its author and dates), where those lines were in that
//! commit's version of the file, and under which path (renames are followed).

use axum::extract::State;
use axum::Json as JsonOut;
use gitcore::read;
use serde::Serialize;
use uuid::Uuid;

use super::access;
use super::error::ApiError;
use super::extract::Path;
use super::git_data::{with_repo, CommitDto};
use crate::auth::Caller;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_blame))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct RangeDto {
    start_line: u32,
    end_line: u32,
    lines: u32,
    original_start_line: u32,
    original_path: String,
    commit: CommitDto,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct BlameDto {
    commit_sha: String,
    path: String,
    ranges: Vec<RangeDto>,
}

#[utoipa::path(
    get,
    path = "/repos/{org_id}/{repo}/blame/{ref}/{*path}",
    tag = "git",
    responses((status = 200, description = "OK", body = BlameDto))
)]
async fn get_blame(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, reference, path)): Path<(Uuid, String, String, String)>,
) -> Result<JsonOut<BlameDto>, ApiError> {
    read::validate_path(&path)?;
    let a = access::load_content(&state, &caller, org_id, &name).await?;
    let blame = with_repo(&state, &a.repo, move |r| {
        Ok(read::blame::blame(r, &reference, &path)?)
    })
    .await?;
    let ranges = blame
        .ranges
        .iter()
        .filter_map(|rg| {
            let commit = blame.commits.get(&rg.commit)?.clone();
            Some(RangeDto {
                start_line: rg.start_line,
                end_line: rg.start_line + rg.lines - 1,
                lines: rg.lines,
                original_start_line: rg.original_start_line,
                original_path: rg.original_path.clone(),
                commit: commit.into(),
            })
        })
        .collect();
    Ok(JsonOut(BlameDto {
        commit_sha: blame.commit.to_string(),
        path: blame.path,
        ranges,
    }))
}
