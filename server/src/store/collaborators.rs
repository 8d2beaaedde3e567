//! Collaborator rows: a role per user per repository.

use chrono::Utc;
use entity::collaborator;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use super::Role;

/// The role of `user_id` on `repo_id` from its collaborator row, if any.
pub async fn role_of(
    db: &impl ConnectionTrait,
    repo_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Role>, DbErr> {
    Ok(collaborator::Entity::find_by_id((repo_id, user_id))
        .one(db)
        .await?
        .and_then(|c| Role::parse(&c.role)))
}

/// The collaborators of a repository, oldest first.
pub async fn list(
    db: &impl ConnectionTrait,
    repo_id: Uuid,
    limit: u64,
    offset: u64,
) -> Result<Vec<collaborator::Model>, DbErr> {
    collaborator::Entity::find()
        .filter(collaborator::Column::RepoId.eq(repo_id))
        .order_by_asc(collaborator::Column::CreatedAt)
        .order_by_asc(collaborator::Column::UserId)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await
}

/// Sets the role of `user_id` on `repo_id`, adding the row if needed. Returns the row and the
/// previous role.
pub async fn upsert(
    db: &impl ConnectionTrait,
    repo_id: Uuid,
    user_id: Uuid,
    role: Role,
) -> Result<(collaborator::Model, Option<Role>), DbErr> {
    // Write first: in a transaction on SQLite, a read followed by a write fails at once
    // ("database is locked") when another connection committed in between; a write as the first
    // statement waits for the lock instead, and the read after it sees the latest rows.
    collaborator::Entity::update_many()
        .col_expr(
            collaborator::Column::UpdatedAt,
            sea_orm::sea_query::Expr::col(collaborator::Column::UpdatedAt).into(),
        )
        .filter(collaborator::Column::RepoId.eq(repo_id))
        .filter(collaborator::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    let previous = role_of(db, repo_id, user_id).await?;
    let now = Utc::now();
    collaborator::Entity::insert(collaborator::ActiveModel {
        repo_id: Set(repo_id),
        user_id: Set(user_id),
        role: Set(role.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([collaborator::Column::RepoId, collaborator::Column::UserId])
            .update_columns([collaborator::Column::Role, collaborator::Column::UpdatedAt])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    let row = collaborator::Entity::find_by_id((repo_id, user_id))
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("collaborator vanished after upsert".into()))?;
    Ok((row, previous))
}

/// Removes `user_id` from `repo_id`; returns whether a row existed.
pub async fn remove(
    db: &impl ConnectionTrait,
    repo_id: Uuid,
    user_id: Uuid,
) -> Result<bool, DbErr> {
    let res = collaborator::Entity::delete_by_id((repo_id, user_id))
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}
