//! A branch's protection rule.

use sea_orm::entity::prelude::*;

/// One row of `branch_protections`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "branch_protections")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub repo_id: Uuid,
    /// The branch name (without `refs/heads/`).
    pub branch: String,
    pub allow_force_push: bool,
    pub allow_deletion: bool,
    pub require_pull_request: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Protections have no relations the server navigates.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
