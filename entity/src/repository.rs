//! A hosted repository. Soft-deleted rows keep their data until purged.

use sea_orm::entity::prelude::*;

/// One row of `repositories`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "repositories")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub org_id: Uuid,
    pub project_id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    /// `name` lowercased: names are unique per org without regard to case.
    pub name_lower: String,
    pub description: Option<String>,
    /// `public` or `private`.
    pub visibility: String,
    pub default_branch: String,
    pub archived: bool,
    /// Path of the bare repository relative to the storage root, derived from `id`.
    pub storage_path: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

/// Relations of a repository.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::collaborator::Entity")]
    Collaborator,
    #[sea_orm(has_many = "super::audit_event::Entity")]
    AuditEvent,
}

impl Related<super::collaborator::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Collaborator.def()
    }
}

impl Related<super::audit_event::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AuditEvent.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
