//! Branch protection (owner): `GET/PUT/DELETE /repos/{o}/{r}/branches/{*branch}/protection` with
//! `{allowForcePush, allowDeletion, requirePullRequest}`. The default branch without a rule is
//! protected against deletion and force-push. Rules are enforced on git pushes (per-ref `ng`
//! with the reason, which git prints) and on REST branch deletes; merges of pull requests only
//! ever move a branch forward and are always allowed.
//!
//! The routes share the branch routes' wildcard: a path ending in `/protection` addresses the
//! protection of the branch before it (a branch itself named `…/protection` cannot be read or
//! deleted over REST; git still reaches it).

use axum::http::StatusCode;
use axum::Json as JsonOut;
use sea_orm::TransactionTrait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::access::{self, ensure_not_archived, Need};
use super::error::ApiError;
use crate::auth::Caller;
use crate::state::AppState;
use crate::store::{self, audit::Actor, protection::Rule};

/// A branch's protection as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProtectionDto {
    branch: String,
    allow_force_push: bool,
    allow_deletion: bool,
    require_pull_request: bool,
    /// Whether this is the default branch.
    is_default: bool,
    /// `false` when this is the default branch's built-in rule (no rule was set).
    explicit: bool,
}

/// The body of `PUT …/protection`; absent fields are `false`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutProtection {
    #[serde(default)]
    allow_force_push: bool,
    #[serde(default)]
    allow_deletion: bool,
    #[serde(default)]
    require_pull_request: bool,
}

/// The protection routes, described here: the branch routes' wildcard serves them (see the
/// module docs), so they are not registered on their own.
#[derive(utoipa::OpenApi)]
#[openapi(paths(doc_get, doc_put, doc_delete))]
pub struct Docs;

#[utoipa::path(
    get,
    operation_id = "get_branch_protection",
    path = "/repos/{org_id}/{repo}/branches/{branch}/protection",
    tag = "git",
    responses((status = 200, description = "The branch's protection", body = ProtectionDto))
)]
#[allow(dead_code)]
fn doc_get() {}

#[utoipa::path(
    put,
    operation_id = "put_branch_protection",
    path = "/repos/{org_id}/{repo}/branches/{branch}/protection",
    tag = "git",
    request_body = PutProtection,
    responses((status = 200, description = "The new protection", body = ProtectionDto))
)]
#[allow(dead_code)]
fn doc_put() {}

#[utoipa::path(
    delete,
    operation_id = "delete_branch_protection",
    path = "/repos/{org_id}/{repo}/branches/{branch}/protection",
    tag = "git",
    responses((status = 204, description = "Removed (the default branch keeps its built-in rule)"))
)]
#[allow(dead_code)]
fn doc_delete() {}

fn dto(branch: &str, rule: Rule, is_default: bool, explicit: bool) -> ProtectionDto {
    ProtectionDto {
        branch: branch.to_owned(),
        allow_force_push: rule.allow_force_push,
        allow_deletion: rule.allow_deletion,
        require_pull_request: rule.require_pull_request,
        is_default,
        explicit,
    }
}

fn check_branch(branch: &str) -> Result<(), ApiError> {
    if gitcore::storage::is_valid_branch_name(branch) {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "invalid branch name {branch:?}"
        )))
    }
}

fn actor(caller: &Caller) -> Actor {
    Actor {
        user_id: caller.0.as_ref().map(|i| i.user_id),
        agent_id: None,
    }
}

/// `GET …/branches/{branch}/protection`.
pub async fn get_protection(
    state: &AppState,
    caller: &Caller,
    org_id: Uuid,
    name: &str,
    branch: &str,
) -> Result<JsonOut<ProtectionDto>, ApiError> {
    let a = access::load(&state.db, caller, org_id, name, Need::Admin).await?;
    check_branch(branch)?;
    let is_default = a.repo.default_branch == branch;
    match store::protection::get(&state.db, a.repo.id, branch).await? {
        Some(m) => Ok(JsonOut(dto(branch, Rule::from(&m), is_default, true))),
        None if is_default => Ok(JsonOut(dto(
            branch,
            store::protection::DEFAULT_BRANCH,
            true,
            false,
        ))),
        None => Err(ApiError::not_found(format!(
            "branch {branch:?} is not protected"
        ))),
    }
}

/// `PUT …/branches/{branch}/protection`.
pub async fn put_protection(
    state: &AppState,
    caller: &Caller,
    org_id: Uuid,
    name: &str,
    branch: &str,
    body: PutProtection,
) -> Result<JsonOut<ProtectionDto>, ApiError> {
    let a = access::load(&state.db, caller, org_id, name, Need::Admin).await?;
    ensure_not_archived(&a.repo)?;
    check_branch(branch)?;
    let rule = Rule {
        allow_force_push: body.allow_force_push,
        allow_deletion: body.allow_deletion,
        require_pull_request: body.require_pull_request,
    };
    let (repo_id, b, who) = (a.repo.id, branch.to_owned(), actor(caller));
    let row = state
        .db
        .transaction::<_, entity::branch_protection::Model, ApiError>(move |txn| {
            Box::pin(async move {
                let row = store::protection::put(txn, repo_id, &b, rule).await?;
                store::audit::record(
                    txn,
                    Some(repo_id),
                    "protection.updated",
                    who,
                    json!({"branch": b, "allowForcePush": rule.allow_force_push,
                           "allowDeletion": rule.allow_deletion,
                           "requirePullRequest": rule.require_pull_request}),
                )
                .await?;
                Ok(row)
            })
        })
        .await?;
    let is_default = a.repo.default_branch == branch;
    Ok(JsonOut(dto(branch, Rule::from(&row), is_default, true)))
}

/// `DELETE …/branches/{branch}/protection`: the branch goes back to no rule (the default
/// branch to its built-in one).
pub async fn delete_protection(
    state: &AppState,
    caller: &Caller,
    org_id: Uuid,
    name: &str,
    branch: &str,
) -> Result<StatusCode, ApiError> {
    let a = access::load(&state.db, caller, org_id, name, Need::Admin).await?;
    ensure_not_archived(&a.repo)?;
    check_branch(branch)?;
    let (repo_id, b, who) = (a.repo.id, branch.to_owned(), actor(caller));
    let removed = state
        .db
        .transaction::<_, bool, ApiError>(move |txn| {
            Box::pin(async move {
                let removed = store::protection::delete(txn, repo_id, &b).await?;
                if removed {
                    store::audit::record(
                        txn,
                        Some(repo_id),
                        "protection.removed",
                        who,
                        json!({"branch": b}),
                    )
                    .await?;
                }
                Ok(removed)
            })
        })
        .await?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "branch {branch:?} has no protection rule"
        )))
    }
}

/// The rules a push must follow, as gitcore takes them.
pub async fn push_rules(
    state: &AppState,
    repo: &entity::repository::Model,
) -> Result<Vec<gitcore::protection::BranchRule>, sea_orm::DbErr> {
    Ok(store::protection::effective(&state.db, repo)
        .await?
        .into_iter()
        .map(|(branch, r)| gitcore::protection::BranchRule {
            name: format!("refs/heads/{branch}"),
            allow_force_push: r.allow_force_push,
            allow_deletion: r.allow_deletion,
            require_pull_request: r.require_pull_request,
        })
        .collect())
}
