//! Branch protection rules. A branch with a row follows it; the default branch without one is
//! protected against deletion and force-push ([`effective`]).

use chrono::Utc;
use entity::branch_protection;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

/// What a rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Non-fast-forward updates.
    pub allow_force_push: bool,
    /// Deleting the branch.
    pub allow_deletion: bool,
    /// Only pull-request merges may move it (no direct pushes).
    pub require_pull_request: bool,
}

/// The rule of the default branch when none is set.
pub const DEFAULT_BRANCH: Rule = Rule {
    allow_force_push: false,
    allow_deletion: false,
    require_pull_request: false,
};

impl From<&branch_protection::Model> for Rule {
    fn from(m: &branch_protection::Model) -> Self {
        Rule {
            allow_force_push: m.allow_force_push,
            allow_deletion: m.allow_deletion,
            require_pull_request: m.require_pull_request,
        }
    }
}

/// The stored rule of `branch`, if any.
pub async fn get(
    db: &impl ConnectionTrait,
    repo_id: Uuid,
    branch: &str,
) -> Result<Option<branch_protection::Model>, DbErr> {
    branch_protection::Entity::find()
        .filter(branch_protection::Column::RepoId.eq(repo_id))
        .filter(branch_protection::Column::Branch.eq(branch))
        .one(db)
        .await
}

/// Every rule of a repository.
pub async fn list(
    db: &impl ConnectionTrait,
    repo_id: Uuid,
) -> Result<Vec<branch_protection::Model>, DbErr> {
    branch_protection::Entity::find()
        .filter(branch_protection::Column::RepoId.eq(repo_id))
        .all(db)
        .await
}

/// The rules in effect, by branch name: the stored ones, plus the default branch's default
/// when it has none.
pub async fn effective(
    db: &impl ConnectionTrait,
    repo: &entity::repository::Model,
) -> Result<Vec<(String, Rule)>, DbErr> {
    let mut rules: Vec<(String, Rule)> = list(db, repo.id)
        .await?
        .iter()
        .map(|m| (m.branch.clone(), Rule::from(m)))
        .collect();
    if !rules.iter().any(|(b, _)| *b == repo.default_branch) {
        rules.push((repo.default_branch.clone(), DEFAULT_BRANCH));
    }
    Ok(rules)
}

/// Sets the rule of `branch` (insert or replace).
pub async fn put(
    db: &impl ConnectionTrait,
    repo_id: Uuid,
    branch: &str,
    rule: Rule,
) -> Result<branch_protection::Model, DbErr> {
    let now = Utc::now();
    let row = branch_protection::ActiveModel {
        id: Set(Uuid::new_v4()),
        repo_id: Set(repo_id),
        branch: Set(branch.to_owned()),
        allow_force_push: Set(rule.allow_force_push),
        allow_deletion: Set(rule.allow_deletion),
        require_pull_request: Set(rule.require_pull_request),
        created_at: Set(now),
        updated_at: Set(now),
    };
    branch_protection::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                branch_protection::Column::RepoId,
                branch_protection::Column::Branch,
            ])
            .update_columns([
                branch_protection::Column::AllowForcePush,
                branch_protection::Column::AllowDeletion,
                branch_protection::Column::RequirePullRequest,
                branch_protection::Column::UpdatedAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    get(db, repo_id, branch)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("branch protection after upsert".into()))
}

/// Removes the rule of `branch`; `false` when there was none.
pub async fn delete(db: &impl ConnectionTrait, repo_id: Uuid, branch: &str) -> Result<bool, DbErr> {
    let r = branch_protection::Entity::delete_many()
        .filter(branch_protection::Column::RepoId.eq(repo_id))
        .filter(branch_protection::Column::Branch.eq(branch))
        .exec(db)
        .await?;
    Ok(r.rows_affected > 0)
}
