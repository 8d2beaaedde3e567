//! `collaborators`: a role (`owner`, `writer`, `reader`) per user per repository.

use sea_orm_migration::prelude::*;

use crate::m20261122_000001_create_repositories::Repositories;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Collaborators {
    Table,
    RepoId,
    UserId,
    Role,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Collaborators::Table)
                    .col(ColumnDef::new(Collaborators::RepoId).uuid().not_null())
                    .col(ColumnDef::new(Collaborators::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(Collaborators::Role)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Collaborators::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Collaborators::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(Collaborators::RepoId)
                            .col(Collaborators::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_collaborators_repo")
                            .from(Collaborators::Table, Collaborators::RepoId)
                            .to(Repositories::Table, Repositories::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_collaborators_user")
                    .table(Collaborators::Table)
                    .col(Collaborators::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Collaborators::Table).to_owned())
            .await
    }
}
