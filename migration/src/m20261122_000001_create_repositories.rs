//! `repositories`: the registry of hosted repositories.
//!
//! Names are unique per org among live (not soft-deleted) repositories, compared without case
//! (`name_lower`), through a partial unique index that SQLite and PostgreSQL both support.
//! `storage_path` is derived from the id, so renames never move data.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Repositories {
    Table,
    Id,
    OrgId,
    ProjectId,
    OwnerId,
    Name,
    NameLower,
    Description,
    Visibility,
    DefaultBranch,
    Archived,
    StoragePath,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Repositories::Table)
                    .col(
                        ColumnDef::new(Repositories::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Repositories::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Repositories::ProjectId).uuid().not_null())
                    .col(ColumnDef::new(Repositories::OwnerId).uuid().not_null())
                    .col(
                        ColumnDef::new(Repositories::Name)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Repositories::NameLower)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Repositories::Description).text().null())
                    .col(
                        ColumnDef::new(Repositories::Visibility)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Repositories::DefaultBranch)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Repositories::Archived)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(Repositories::StoragePath)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Repositories::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Repositories::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Repositories::DeletedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_repositories_owner")
                    .table(Repositories::Table)
                    .col(Repositories::OwnerId)
                    .to_owned(),
            )
            .await?;
        // A partial unique index: sea-query cannot express the WHERE clause, and both backends
        // accept this exact statement.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX uq_repositories_org_name_live \
                 ON repositories (org_id, name_lower) WHERE deleted_at IS NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Repositories::Table).to_owned())
            .await
    }
}
