//! `pull_requests`: one row per pull request. `number` counts from 1 per repository (unique per
//! repository, assigned as `max + 1` and retried on a collision); at most one open pull request
//! per (repository, source, target), through a partial unique index that SQLite and PostgreSQL
//! both support.

use sea_orm_migration::prelude::*;

use crate::m20261122_000001_create_repositories::Repositories;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PullRequests {
    Table,
    Id,
    RepoId,
    Number,
    SourceBranch,
    TargetBranch,
    Title,
    Description,
    Status,
    AuthorId,
    HeadSha,
    BaseSha,
    MergeCommitSha,
    MergeStrategy,
    MergedBy,
    MergedAt,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PullRequests::Table)
                    .col(
                        ColumnDef::new(PullRequests::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(PullRequests::RepoId).uuid().not_null())
                    .col(
                        ColumnDef::new(PullRequests::Number)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PullRequests::SourceBranch)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PullRequests::TargetBranch)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PullRequests::Title)
                            .string_len(512)
                            .not_null(),
                    )
                    .col(ColumnDef::new(PullRequests::Description).text().null())
                    .col(
                        ColumnDef::new(PullRequests::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(PullRequests::AuthorId).uuid().not_null())
                    .col(
                        ColumnDef::new(PullRequests::HeadSha)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PullRequests::BaseSha)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PullRequests::MergeCommitSha)
                            .string_len(64)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PullRequests::MergeStrategy)
                            .string_len(16)
                            .null(),
                    )
                    .col(ColumnDef::new(PullRequests::MergedBy).uuid().null())
                    .col(
                        ColumnDef::new(PullRequests::MergedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PullRequests::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PullRequests::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_pull_requests_repo")
                            .from(PullRequests::Table, PullRequests::RepoId)
                            .to(Repositories::Table, Repositories::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_pull_requests_repo_number")
                    .table(PullRequests::Table)
                    .col(PullRequests::RepoId)
                    .col(PullRequests::Number)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_pull_requests_repo_source")
                    .table(PullRequests::Table)
                    .col(PullRequests::RepoId)
                    .col(PullRequests::SourceBranch)
                    .to_owned(),
            )
            .await?;
        // A partial unique index: sea-query cannot express the WHERE clause.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX idx_pull_requests_one_open \
                 ON pull_requests (repo_id, source_branch, target_branch) WHERE status = 'open'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PullRequests::Table).to_owned())
            .await
    }
}
