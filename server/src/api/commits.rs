//! `POST /repos/{o}/{r}/commits` (writer): one commit from file changes, without a clone or a
//! worktree. The tree is edited in the object database (gitcore's `write::commit`), every path
//! checked against git's fsck rules, and the branch moved by compare-and-swap: against
//! `expectedHeadSha` when given (409 when the branch is elsewhere), and always against the tip the
//! commit was built on. A new branch starts from `startFrom` (a branch, tag or sha); in an empty
//! repository the first commit has no parent. The commit then counts as a push: the same audit
//! event, jobs (feed post, mirror, webhooks) and pull request updates. Bodies are JSON, so the
//! REST body limit (1 MiB) caps a commit's size (413 past it).

use axum::extract::State;
use axum::Json as JsonOut;
use base64::Engine as _;
use gitcore::read;
use gitcore::write::commit::{self as wc, Change};
use gitcore::ObjectId;
use serde::Deserialize;
use uuid::Uuid;

use super::access::{self, ensure_not_archived, Need};
use super::error::ApiError;
use super::extract::{Json, Path};
use super::git_data::CommitDto;
use crate::auth::Caller;
use crate::state::AppState;
use crate::store::{self, audit::Actor};

/// Most changes in one commit.
const MAX_CHANGES: usize = 1000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum ActionIn {
    Create,
    Update,
    Delete,
    Move,
    Chmod,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
enum EncodingIn {
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "base64")]
    Base64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChangeIn {
    action: ActionIn,
    path: String,
    #[serde(default)]
    previous_path: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    encoding: Option<EncodingIn>,
    #[serde(default)]
    executable: Option<bool>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AuthorIn {
    name: String,
    email: String,
}

/// The body of `POST …/commits`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateCommit {
    branch: String,
    message: String,
    #[serde(default)]
    expected_head_sha: Option<String>,
    #[serde(default)]
    start_from: Option<String>,
    #[serde(default)]
    author: Option<AuthorIn>,
    changes: Vec<ChangeIn>,
}

fn content(c: &ChangeIn, i: usize) -> Result<Vec<u8>, ApiError> {
    let text = c.content.as_deref().ok_or_else(|| {
        ApiError::validation(format!("changes[{i}].content: required for {:?}", c.action))
    })?;
    match c.encoding {
        None | Some(EncodingIn::Utf8) => Ok(text.as_bytes().to_vec()),
        Some(EncodingIn::Base64) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| ApiError::validation(format!("changes[{i}].content: not valid base64"))),
    }
}

fn to_changes(changes: &[ChangeIn]) -> Result<Vec<Change>, ApiError> {
    if changes.is_empty() {
        return Err(ApiError::validation(
            "changes: at least one change is needed",
        ));
    }
    if changes.len() > MAX_CHANGES {
        return Err(ApiError::validation(format!(
            "changes: at most {MAX_CHANGES} in one commit"
        )));
    }
    changes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let path = c.path.clone();
            Ok(match c.action {
                ActionIn::Create => Change::Create {
                    path,
                    content: content(c, i)?,
                    executable: c.executable.unwrap_or(false),
                },
                ActionIn::Update => Change::Update {
                    path,
                    content: content(c, i)?,
                    executable: c.executable,
                },
                ActionIn::Delete => Change::Delete { path },
                ActionIn::Move => Change::Move {
                    previous_path: c.previous_path.clone().ok_or_else(|| {
                        ApiError::validation(format!(
                            "changes[{i}].previousPath: required for move"
                        ))
                    })?,
                    path,
                    content: match c.content {
                        Some(_) => Some(content(c, i)?),
                        None => None,
                    },
                },
                ActionIn::Chmod => Change::Chmod {
                    path,
                    executable: c.executable.ok_or_else(|| {
                        ApiError::validation(format!("changes[{i}].executable: required for chmod"))
                    })?,
                },
            })
        })
        .collect()
}

fn identity(var: &str, name: &str, email: &str) -> Result<(), ApiError> {
    for (what, v) in [("name", name), ("email", email)] {
        if v.trim().is_empty() || v.contains(['<', '>', '\n', '\0']) {
            return Err(ApiError::validation(format!(
                "{var}.{what}: must be non-empty, without '<', '>' or newlines"
            )));
        }
    }
    Ok(())
}

impl From<wc::Error> for ApiError {
    fn from(e: wc::Error) -> Self {
        match e {
            wc::Error::Read(e) => e.into(),
            wc::Error::Write(_) => ApiError::internal(gitcore::error_chain(&e)),
            other => ApiError::validation(other.to_string()),
        }
    }
}

/// What the blocking part did.
struct Made {
    old: Option<ObjectId>,
    new: ObjectId,
    commit: read::commit::Commit,
}

/// `POST /repos/{o}/{r}/commits`.
#[utoipa::path(
    post,
    path = "/repos/{org_id}/{repo}/commits",
    tag = "git",
    request_body = CreateCommit,
    responses((status = 200, description = "Committed", body = super::git_data::CommitDto))
)]
pub(crate) async fn create_commit(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name)): Path<(Uuid, String)>,
    Json(body): Json<CreateCommit>,
) -> Result<JsonOut<CommitDto>, ApiError> {
    let a = access::load(&state.db, &caller, org_id, &name, Need::Write).await?;
    ensure_not_archived(&a.repo)?;
    let user = caller.require()?.user_id;
    if !gitcore::storage::is_valid_branch_name(&body.branch) {
        return Err(ApiError::validation(format!(
            "branch: invalid branch name {:?}",
            body.branch
        )));
    }
    if body.message.trim().is_empty() {
        return Err(ApiError::validation("message: must not be empty"));
    }
    let expected = match &body.expected_head_sha {
        Some(s) => Some(ObjectId::from_hex(s.as_bytes()).map_err(|_| {
            ApiError::validation("expectedHeadSha: must be a full 40-hex commit id")
        })?),
        None => None,
    };
    let changes = to_changes(&body.changes)?;
    let (cname, cemail) = state.config.committer.clone();
    let (aname, aemail) = match &body.author {
        Some(a) => {
            identity("author", &a.name, &a.email)?;
            (a.name.clone(), a.email.clone())
        }
        None => (cname.clone(), cemail.clone()),
    };
    let rules = store::protection::effective(&state.db, &a.repo).await?;
    if rules
        .iter()
        .any(|(b, r)| *b == body.branch && r.require_pull_request)
    {
        return Err(ApiError::conflict(format!(
            "protected branch {:?}: changes must be made through a pull request",
            body.branch
        )));
    }
    let now = chrono::Utc::now().timestamp();
    let sig = |name: String, email: String| read::Signature {
        name,
        email,
        seconds: now,
        offset: 0,
    };
    let (author, committer) = (sig(aname, aemail), sig(cname, cemail));
    let branch = body.branch.clone();
    let start_from = body.start_from.clone();
    let message = if body.message.ends_with('\n') {
        body.message.clone()
    } else {
        format!("{}\n", body.message)
    };
    let path = state.config.storage_root.join(&a.repo.storage_path);
    let made = tokio::task::spawn_blocking(move || -> Result<Made, ApiError> {
        let r = gitcore::storage::open(&path).map_err(|e| ApiError::internal(e.to_string()))?;
        let tip = match read::branches::get(&r, &branch) {
            Ok(b) => Some(b.commit),
            Err(read::Error::BranchNotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let parent = match (tip, expected) {
            (Some(t), Some(e)) if t != e => {
                return Err(ApiError::conflict(format!(
                    "branch {branch:?} is at {t}, not at expectedHeadSha {e}"
                )))
            }
            (Some(t), _) => Some(t),
            (None, Some(e)) => {
                return Err(ApiError::conflict(format!(
                    "branch {branch:?} does not exist, so it is not at expectedHeadSha {e}"
                )))
            }
            (None, None) => match &start_from {
                Some(from) => Some(read::resolve::commit(&r, from)?),
                None if read::branches::list(&r)?.is_empty() => None,
                None => {
                    return Err(ApiError::not_found(format!(
                        "branch {branch:?} does not exist; give startFrom to create it"
                    )))
                }
            },
        };
        let new = wc::create(&r, parent, &changes, &message, &author, &committer)?;
        match tip {
            Some(t) => read::branches::update(&r, &branch, t, new, "commit (api)")?,
            None => {
                read::branches::create(&r, &branch, &new.to_string())?;
            }
        }
        Ok(Made {
            old: tip,
            new,
            commit: read::commit::read(&r, new)?,
        })
    })
    .await??;
    // Recorded like a push: the audit event, the jobs, pull requests following the branch.
    let actor = Actor {
        user_id: Some(user),
        agent_id: None,
    };
    let refs = vec![crate::jobs::feed::PushedRef {
        name: format!("refs/heads/{}", body.branch),
        old: made.old.map_or_else(|| "0".repeat(40), |o| o.to_string()),
        new: made.new.to_string(),
    }];
    let shas = vec![made.new.to_string()];
    let push = crate::jobs::feed::Push {
        repo: &a.repo,
        push_id: Uuid::new_v4(),
        user_id: Some(user),
        agent_id: None,
        refs: &refs,
        commit_shas: &shas,
        commit_count: 1,
    };
    if let Err(e) = crate::git_http::record_push(&state, &push, actor, &[], false).await {
        tracing::error!(error = %e, repo = %a.repo.id, "could not record a commit's push event");
    }
    state.jobs.wake();
    crate::api::pulls_merge::follow_updates(&state, &a.repo, vec![(body.branch, made.new)], actor)
        .await;
    Ok(JsonOut(made.commit.into()))
}
