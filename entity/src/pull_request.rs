//! A pull request: a source branch proposed for a target branch of the same repository.

use sea_orm::entity::prelude::*;

/// One row of `pull_requests`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pull_requests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub repo_id: Uuid,
    /// Per repository, from 1.
    pub number: i64,
    pub source_branch: String,
    pub target_branch: String,
    pub title: String,
    pub description: Option<String>,
    /// `open`, `closed` or `merged`.
    pub status: String,
    pub author_id: Uuid,
    /// The source tip last seen (at creation, on pushes, at merge).
    pub head_sha: String,
    /// The target tip last seen.
    pub base_sha: String,
    pub merge_commit_sha: Option<String>,
    /// `merge`, `squash`, `rebase`, `fast-forward`, or `manual` (merged by a push).
    pub merge_strategy: Option<String>,
    pub merged_by: Option<Uuid>,
    pub merged_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Relations of a pull request.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::repository::Entity",
        from = "Column::RepoId",
        to = "super::repository::Column::Id",
        on_delete = "Cascade"
    )]
    Repository,
}

impl Related<super::repository::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Repository.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
