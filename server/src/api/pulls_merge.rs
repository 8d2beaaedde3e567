//! Mergeability, conflicts and merging of pull requests, and pull requests following pushes.
//!
//! - Mergeability is computed in memory (objects of the trial merge are never written) and
//!   cached per (target tip, source tip) in [`crate::merge_cache`].
//! - A merge builds its commits with `gitcore::merge::land` against the target tip it read, then,
//!   in one database transaction, marks the pull request merged, writes `pull.merged`, and moves
//!   the target branch by compare-and-swap from that tip just before the commit. If a push moved
//!   the target meanwhile, the transaction rolls back and the merge is computed once more on the
//!   new tip; a second miss answers 409. So the pull request is `merged` if and only if the
//!   target moved, and no concurrent push is ever overwritten. Within one process, merges into
//!   the same branch take turns ([`crate::branch_locks`]), so they do not make each other retry.
//! - After a push (or a merge), [`follow_updates`] records new source tips of open pull
//!   requests (and `refs/pull/<n>/head`), and marks merged, by the pusher, an open pull request
//!   whose source tip became reachable from its target.

use std::sync::Arc;

use axum::extract::State;
use axum::Json as JsonOut;
use entity::{pull_request, repository};
use gitcore::merge::{self, strategy, Analysis, Outcome, Strategy};
use gitcore::read;
use gitcore::ObjectId;
use sea_orm::{EntityTrait, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::access::{ensure_not_archived, Need};
use super::error::ApiError;
use super::extract::{Json, Path};
use super::git_data::with_repo;
use super::pulls::{load, publish_head, tips, PullDto};
use crate::auth::Caller;
use crate::state::AppState;
use crate::store::{self, audit::Actor, pulls};

fn git_error(e: merge::Error) -> ApiError {
    ApiError::internal(gitcore::error_chain(&e))
}

/// The mergeability of `source` into `target`, from the cache or computed in memory.
async fn analysis(
    state: &AppState,
    repo: &repository::Model,
    target: ObjectId,
    source: ObjectId,
) -> Result<Arc<Analysis>, ApiError> {
    if let Some(a) = state.merges.get(repo.id, target, source) {
        return Ok(a);
    }
    let a = with_repo(state, repo, move |r| {
        merge::analyze(&merge::handle(r, true), target, source).map_err(git_error)
    })
    .await?;
    let a = Arc::new(a);
    state.merges.put(repo.id, a.clone());
    Ok(a)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MergeabilityDto {
    mergeable: bool,
    state: &'static str,
    ahead_by: usize,
    behind_by: usize,
    merge_base_sha: Option<String>,
    head_sha: Option<String>,
    base_sha: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ConflictDto {
    path: String,
    kind: &'static str,
}

fn conflict_dtos(c: &[merge::Conflict]) -> Vec<ConflictDto> {
    c.iter()
        .map(|c| ConflictDto {
            path: c.path.clone(),
            kind: c.kind.as_str(),
        })
        .collect()
}

/// The current tips of a pull request and, when both exist, the merge analysis.
async fn current(
    state: &AppState,
    repo: &repository::Model,
    pr: &pull_request::Model,
) -> Result<(Option<ObjectId>, Option<ObjectId>, Option<Arc<Analysis>>), ApiError> {
    let (target, source) = with_repo(state, repo, {
        let pr = pr.clone();
        move |r| tips(r, &pr)
    })
    .await?;
    let a = match (target, source) {
        (Some(t), Some(s)) => Some(analysis(state, repo, t, s).await?),
        _ => None,
    };
    Ok((target, source, a))
}

#[utoipa::path(
    get,
    operation_id = "get_pull_mergeability",
    path = "/repos/{org_id}/{repo}/pulls/{id}/mergeability",
    tag = "pulls",
    responses((status = 200, description = "OK", body = MergeabilityDto))
)]
pub(crate) async fn mergeability(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, id)): Path<(Uuid, String, String)>,
) -> Result<JsonOut<MergeabilityDto>, ApiError> {
    let (a, pr) = load(&state, &caller, org_id, &name, &id, Need::Read).await?;
    let (target, source, analysis) = current(&state, &a.repo, &pr).await?;
    let (state_name, ahead, behind, base) = match (&analysis, source, target) {
        (_, None, _) => ("source_missing", 0, 0, None),
        (_, _, None) => ("target_missing", 0, 0, None),
        (None, _, _) => ("source_missing", 0, 0, None),
        (Some(an), _, _) => (
            match an.outcome {
                Outcome::UpToDate => "up_to_date",
                Outcome::Unrelated => "unrelated",
                Outcome::Clean { .. } => "clean",
                Outcome::Conflicts(_) => "conflicts",
            },
            an.ahead_by,
            an.behind_by,
            an.merge_bases.first().map(ToString::to_string),
        ),
    };
    Ok(JsonOut(MergeabilityDto {
        mergeable: state_name == "clean" && pr.status == pulls::OPEN,
        state: state_name,
        ahead_by: ahead,
        behind_by: behind,
        merge_base_sha: base,
        head_sha: source.map(|s| s.to_string()),
        base_sha: target.map(|t| t.to_string()),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ConflictsDto {
    conflicts: Vec<ConflictDto>,
}

#[utoipa::path(
    get,
    operation_id = "get_pull_conflicts",
    path = "/repos/{org_id}/{repo}/pulls/{id}/conflicts",
    tag = "pulls",
    responses((status = 200, description = "OK", body = ConflictsDto))
)]
pub(crate) async fn conflicts(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, id)): Path<(Uuid, String, String)>,
) -> Result<JsonOut<ConflictsDto>, ApiError> {
    let (a, pr) = load(&state, &caller, org_id, &name, &id, Need::Read).await?;
    let (_, _, analysis) = current(&state, &a.repo, &pr).await?;
    let conflicts = match analysis.as_deref().map(|a| &a.outcome) {
        Some(Outcome::Conflicts(c)) => conflict_dtos(c),
        _ => Vec::new(),
    };
    Ok(JsonOut(ConflictsDto { conflicts }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct MergeBody {
    strategy: Option<String>,
    commit_message: Option<String>,
    expected_head_sha: Option<String>,
    author_name: Option<String>,
    author_email: Option<String>,
}

/// Why one merge attempt did not commit.
#[derive(Debug)]
enum Fail {
    /// The target branch moved under the merge: compute again.
    Moved,
    /// Anything else, as answered.
    Api(ApiError),
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Moved => f.write_str("the target branch moved"),
            Fail::Api(e) => e.fmt(f),
        }
    }
}

impl From<sea_orm::DbErr> for Fail {
    fn from(e: sea_orm::DbErr) -> Self {
        Fail::Api(e.into())
    }
}

fn identity_field(field: &str, value: Option<String>, default: String) -> Result<String, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => {
            let v = v.trim().to_owned();
            if v.is_empty() || v.len() > 255 || v.contains(['<', '>', '\n', '\r', '\0']) {
                return Err(ApiError::validation(format!(
                    "{field}: must be 1 to 255 bytes, without '<', '>' or line breaks"
                )));
            }
            Ok(v)
        }
    }
}

/// The author Orbit records for a user: `authorName`/`authorEmail` when given, else the user id
/// as the name and `<user id>@users.noreply.orbit` as the email.
fn author_of(
    user: Uuid,
    name: Option<String>,
    email: Option<String>,
) -> Result<(String, String), ApiError> {
    Ok((
        identity_field("authorName", name, user.to_string())?,
        identity_field("authorEmail", email, format!("{user}@users.noreply.orbit"))?,
    ))
}

fn refusal(r: strategy::Refusal, pr: &pull_request::Model) -> ApiError {
    match r {
        strategy::Refusal::UpToDate => ApiError::conflict(format!(
            "nothing to merge: every commit of {:?} is already in {:?}",
            pr.source_branch, pr.target_branch
        )),
        strategy::Refusal::Unrelated => ApiError::conflict(format!(
            "{:?} and {:?} share no history",
            pr.source_branch, pr.target_branch
        )),
        strategy::Refusal::NotFastForward => ApiError::conflict(format!(
            "cannot fast-forward: {:?} has commits that {:?} does not have",
            pr.target_branch, pr.source_branch
        )),
        strategy::Refusal::Conflicts(c) => {
            ApiError::conflict(format!("the merge has conflicts in {} file(s)", c.len()))
                .with_details(json!({"conflicts": conflict_dtos(&c)}))
        }
    }
}

/// How many times a merge is computed when pushes move the target under it (once more).
const MERGE_ATTEMPTS: usize = 2;

#[utoipa::path(
    post,
    operation_id = "merge_pull",
    path = "/repos/{org_id}/{repo}/pulls/{id}/merge",
    tag = "pulls",
    request_body = MergeBody,
    responses((status = 200, description = "Merged", body = super::pulls::PullDto))
)]
pub(crate) async fn merge(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, id)): Path<(Uuid, String, String)>,
    Json(body): Json<MergeBody>,
) -> Result<JsonOut<PullDto>, ApiError> {
    let strategy = match body.strategy.as_deref() {
        None => Strategy::Merge,
        Some(s) => Strategy::parse(s).ok_or_else(|| {
            ApiError::validation(format!(
                "strategy: {s:?} is not one of merge, squash, rebase, fast-forward"
            ))
        })?,
    };
    let expected_head = match body.expected_head_sha.as_deref() {
        None => None,
        Some(s) => Some(
            ObjectId::from_hex(s.as_bytes())
                .map_err(|_| ApiError::validation("expectedHeadSha: must be a full 40-hex sha"))?,
        ),
    };
    if body
        .commit_message
        .as_ref()
        .is_some_and(|m| m.trim().is_empty() || m.len() > 64 * 1024)
    {
        return Err(ApiError::validation(
            "commitMessage: must be 1 to 65536 bytes, not only whitespace",
        ));
    }
    let (a, pr) = load(&state, &caller, org_id, &name, &id, Need::Write).await?;
    ensure_not_archived(&a.repo)?;
    let user = caller.require()?.user_id;
    // Wait for earlier merges into the same branch, then read the row again: one of them may
    // have been this pull request.
    let _turn = state.merge_queue.lock(a.repo.id, &pr.target_branch).await;
    let pr = pulls::find(&state.db, a.repo.id, pr.id)
        .await?
        .ok_or_else(|| ApiError::not_found("pull request not found"))?;
    if pr.status != pulls::OPEN {
        return Err(ApiError::conflict(format!(
            "the pull request is {}",
            pr.status
        )));
    }
    let (author_name, author_email) = author_of(user, body.author_name, body.author_email)?;
    let now = merge::Identity::now();
    let merger = merge::Identity {
        name: author_name,
        email: author_email,
        time: now,
    };
    let committer = match strategy {
        // A rebase replays others' commits: the merger commits them, as with `git rebase`.
        Strategy::Rebase => merger.clone(),
        _ => merge::Identity {
            name: state.config.committer.0.clone(),
            email: state.config.committer.1.clone(),
            time: now,
        },
    };
    for attempt in 0..MERGE_ATTEMPTS {
        let built = with_repo(&state, &a.repo, {
            let pr = pr.clone();
            let merger = merger.clone();
            let committer = committer.clone();
            let commit_message = body.commit_message.clone();
            move |r| {
                let (target, source) = tips(r, &pr)?;
                let source = source.ok_or_else(|| {
                    ApiError::conflict(format!(
                        "the source branch {:?} no longer exists",
                        pr.source_branch
                    ))
                })?;
                let target = target.ok_or_else(|| {
                    ApiError::conflict(format!(
                        "the target branch {:?} no longer exists",
                        pr.target_branch
                    ))
                })?;
                if let Some(expected) = expected_head {
                    if expected != source {
                        return Err(ApiError::conflict(format!(
                            "the source branch moved: its head is {source}, not {expected}"
                        )));
                    }
                }
                let message = match (strategy, commit_message) {
                    (_, Some(m)) => m,
                    (Strategy::Squash, None) => strategy::squash_message(
                        r,
                        target,
                        source,
                        &format!("{} (#{})", pr.title, pr.number),
                    )
                    .map_err(git_error)?,
                    (_, None) => format!(
                        "Merge pull request #{} from {}\n\n{}",
                        pr.number, pr.source_branch, pr.title
                    ),
                };
                let req = strategy::Request {
                    strategy,
                    target,
                    source,
                    message,
                    author: merger,
                    committer,
                };
                match merge::land(&merge::handle(r, false), &req).map_err(git_error)? {
                    Ok(landed) => Ok((target, source, landed)),
                    Err(refused) => Err(refusal(refused, &pr)),
                }
            }
        })
        .await?;
        let (target, source, landed) = built;
        match commit_merge(
            &state, &a.repo, &pr, strategy, user, target, source, landed.tip,
        )
        .await
        {
            Ok(merged) => {
                let actor = Actor {
                    user_id: Some(user),
                    agent_id: None,
                };
                follow_updates(
                    &state,
                    &a.repo,
                    vec![(pr.target_branch.clone(), landed.tip)],
                    actor,
                )
                .await;
                return Ok(JsonOut(merged.into()));
            }
            Err(Fail::Moved) if attempt + 1 < MERGE_ATTEMPTS => continue,
            Err(Fail::Moved) => {
                return Err(ApiError::conflict(format!(
                    "the target branch {:?} kept moving during the merge; retry",
                    pr.target_branch
                )))
            }
            Err(Fail::Api(e)) => return Err(e),
        }
    }
    Err(ApiError::conflict(
        "the merge could not be completed; retry",
    ))
}

/// One transaction: the pull request row becomes `merged`, `pull.merged` is recorded, and the
/// target branch moves from `target` to `tip` by compare-and-swap just before the commit.
#[allow(clippy::too_many_arguments)]
async fn commit_merge(
    state: &AppState,
    repo: &repository::Model,
    pr: &pull_request::Model,
    strategy: Strategy,
    user: Uuid,
    target: ObjectId,
    source: ObjectId,
    tip: ObjectId,
) -> Result<pull_request::Model, Fail> {
    let path = state.config.storage_root.join(&repo.storage_path);
    let pr = pr.clone();
    let result = state
        .db
        .transaction::<_, pull_request::Model, Fail>(move |txn| {
            Box::pin(async move {
                let (head_sha, base_sha, tip_sha) =
                    (source.to_string(), target.to_string(), tip.to_string());
                let marked = pulls::mark_merged(
                    txn,
                    &pr,
                    pulls::Merged {
                        head_sha: &head_sha,
                        base_sha: &base_sha,
                        merge_commit_sha: &tip_sha,
                        strategy: strategy.as_str(),
                        merged_by: Some(user),
                    },
                )
                .await?;
                if !marked {
                    return Err(Fail::Api(ApiError::conflict(
                        "the pull request was closed or merged meanwhile",
                    )));
                }
                store::audit::record(
                    txn,
                    Some(pr.repo_id),
                    "pull.merged",
                    Actor {
                        user_id: Some(user),
                        agent_id: None,
                    },
                    json!({
                        "pullId": pr.id, "number": pr.number, "strategy": strategy.as_str(),
                        "targetBranch": pr.target_branch, "sourceBranch": pr.source_branch,
                        "headSha": head_sha, "baseSha": base_sha, "mergeCommitSha": tip_sha,
                    }),
                )
                .await?;
                let branch = pr.target_branch.clone();
                let number = pr.number;
                tokio::task::spawn_blocking(move || {
                    let r = gitcore::storage::open(&path)
                        .map_err(|e| Fail::Api(ApiError::internal(gitcore::error_chain(&e))))?;
                    let message = format!("merge: pull request #{number} ({})", strategy.as_str());
                    match read::branches::update(&r, &branch, target, tip, &message) {
                        Ok(()) => Ok(()),
                        Err(
                            read::Error::BranchChanged { .. } | read::Error::BranchLocked { .. },
                        ) => Err(Fail::Moved),
                        Err(read::Error::BranchNotFound { name }) => {
                            Err(Fail::Api(ApiError::conflict(format!(
                                "the target branch {name:?} was deleted during the merge"
                            ))))
                        }
                        Err(e) => Err(Fail::Api(e.into())),
                    }
                })
                .await
                .map_err(|e| Fail::Api(e.into()))??;
                pull_request::Entity::find_by_id(pr.id)
                    .one(txn)
                    .await?
                    .ok_or_else(|| Fail::Api(ApiError::not_found("pull request not found")))
            })
        })
        .await;
    match result {
        Ok(m) => Ok(m),
        Err(sea_orm::TransactionError::Transaction(f)) => Err(f),
        Err(sea_orm::TransactionError::Connection(e)) => Err(Fail::Api(e.into())),
    }
}

/// Brings the open pull requests of `repo` up to date with branch updates (`(branch, new tip)`,
/// a null tip for a deleted branch): a moved source records its new head (and
/// `refs/pull/<n>/head`); a source tip now reachable from its target marks the pull request
/// merged by `actor`. Failures are logged: the push or merge they follow has happened.
pub async fn follow_updates(
    state: &AppState,
    repo: &repository::Model,
    updates: Vec<(String, ObjectId)>,
    actor: Actor,
) {
    if let Err(e) = follow(state, repo, updates, actor).await {
        tracing::error!(error = %e, repo = %repo.id, "could not update pull requests after a ref update");
    }
}

async fn follow(
    state: &AppState,
    repo: &repository::Model,
    updates: Vec<(String, ObjectId)>,
    actor: Actor,
) -> Result<(), ApiError> {
    let branches: Vec<String> = updates.into_iter().map(|(b, _)| b).collect();
    let open = pulls::open_touching(&state.db, repo.id, &branches).await?;
    if open.is_empty() {
        return Ok(());
    }
    // For each open pull request: its current tips, and whether the source is now merged.
    let checked = with_repo(state, repo, move |r| {
        let mut out = Vec::with_capacity(open.len());
        for pr in open {
            let (target, source) = tips(r, &pr)?;
            let merged = match (target, source) {
                (Some(t), Some(s)) => {
                    s == t || merge::merge_bases(r, s, t).map_err(git_error)?.contains(&s)
                }
                _ => false,
            };
            out.push((pr, target, source, merged));
        }
        Ok(out)
    })
    .await?;
    for (pr, target, source, merged) in checked {
        let Some(source) = source else { continue };
        if ObjectId::from_hex(pr.head_sha.as_bytes()).ok() != Some(source) {
            pulls::set_head(&state.db, pr.id, &source.to_string()).await?;
            publish_head(state, repo, pr.number, source).await;
        }
        let Some(target) = target.filter(|_| merged) else {
            continue;
        };
        let (head_sha, base_sha) = (source.to_string(), target.to_string());
        state
            .db
            .transaction::<_, (), ApiError>(move |txn| {
                Box::pin(async move {
                    let marked = pulls::mark_merged(
                        txn,
                        &pr,
                        pulls::Merged {
                            head_sha: &head_sha,
                            base_sha: &base_sha,
                            merge_commit_sha: &base_sha,
                            strategy: "manual",
                            merged_by: actor.user_id,
                        },
                    )
                    .await?;
                    if marked {
                        store::audit::record(
                            txn,
                            Some(pr.repo_id),
                            "pull.merged",
                            actor,
                            json!({
                                "pullId": pr.id, "number": pr.number, "strategy": "manual",
                                "targetBranch": pr.target_branch, "sourceBranch": pr.source_branch,
                                "headSha": head_sha, "mergeCommitSha": base_sha,
                            }),
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .await?;
    }
    Ok(())
}
