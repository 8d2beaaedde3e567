//! `branch_protections`: per-branch rules (force-push, deletion, pull requests only). One row per
//! (repository, branch). The default branch without a row is protected against deletion and
//! force-push; the server applies that default, not this table.

use sea_orm_migration::prelude::*;

use crate::m20261122_000001_create_repositories::Repositories;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BranchProtections {
    Table,
    Id,
    RepoId,
    Branch,
    AllowForcePush,
    AllowDeletion,
    RequirePullRequest,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BranchProtections::Table)
                    .col(
                        ColumnDef::new(BranchProtections::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(BranchProtections::RepoId).uuid().not_null())
                    .col(
                        ColumnDef::new(BranchProtections::Branch)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BranchProtections::AllowForcePush)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BranchProtections::AllowDeletion)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BranchProtections::RequirePullRequest)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BranchProtections::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BranchProtections::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_branch_protections_repo")
                            .from(BranchProtections::Table, BranchProtections::RepoId)
                            .to(Repositories::Table, Repositories::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_branch_protections_repo_branch")
                    .table(BranchProtections::Table)
                    .col(BranchProtections::RepoId)
                    .col(BranchProtections::Branch)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(BranchProtections::Table).to_owned())
            .await
    }
}
