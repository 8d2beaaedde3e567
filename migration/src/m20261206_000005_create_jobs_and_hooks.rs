//! `jobs`: the durable work queue (feed posts, push mirrors, webhook deliveries), and the
//! webhooks of repositories with their `webhook_deliveries`.
//!
//! A job is claimed by a worker by moving it to `running` with a lease (owner, expiry); a job whose
//! lease expired is claimable again. `(kind, dedup_key)` is unique, so a push enqueues each of its
//! jobs at most once whatever retries the caller makes.

use sea_orm_migration::prelude::*;

use crate::m20261122_000001_create_repositories::Repositories;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    Kind,
    RepoId,
    DedupKey,
    Payload,
    State,
    Attempts,
    MaxAttempts,
    LastError,
    Result,
    RunAfter,
    LeaseOwner,
    LeaseExpiresAt,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
    RepoId,
    Url,
    Secret,
    Events,
    Active,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    HookId,
    RepoId,
    Event,
    Payload,
    State,
    Attempts,
    ResponseStatus,
    ResponseBody,
    DurationMs,
    LastError,
    Redelivery,
    CreatedAt,
    UpdatedAt,
}

fn ts(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn ts_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .col(ColumnDef::new(Jobs::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Jobs::Kind).string_len(32).not_null())
                    .col(ColumnDef::new(Jobs::RepoId).uuid().null())
                    .col(ColumnDef::new(Jobs::DedupKey).string_len(255).null())
                    .col(ColumnDef::new(Jobs::Payload).json().not_null())
                    .col(ColumnDef::new(Jobs::State).string_len(16).not_null())
                    .col(ColumnDef::new(Jobs::Attempts).integer().not_null())
                    .col(ColumnDef::new(Jobs::MaxAttempts).integer().not_null())
                    .col(ColumnDef::new(Jobs::LastError).text().null())
                    .col(ColumnDef::new(Jobs::Result).json().null())
                    .col(ts(Jobs::RunAfter))
                    .col(ColumnDef::new(Jobs::LeaseOwner).string_len(128).null())
                    .col(ts_null(Jobs::LeaseExpiresAt))
                    .col(ts(Jobs::CreatedAt))
                    .col(ts(Jobs::UpdatedAt))
                    .col(ts_null(Jobs::FinishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_state_run_after")
                    .table(Jobs::Table)
                    .col(Jobs::State)
                    .col(Jobs::RunAfter)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_repo_kind")
                    .table(Jobs::Table)
                    .col(Jobs::RepoId)
                    .col(Jobs::Kind)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_kind_dedup")
                    .table(Jobs::Table)
                    .col(Jobs::Kind)
                    .col(Jobs::DedupKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_created")
                    .table(Jobs::Table)
                    .col(Jobs::CreatedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Webhooks::Table)
                    .col(ColumnDef::new(Webhooks::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Webhooks::RepoId).uuid().not_null())
                    .col(ColumnDef::new(Webhooks::Url).string_len(2048).not_null())
                    .col(ColumnDef::new(Webhooks::Secret).string_len(255).null())
                    .col(ColumnDef::new(Webhooks::Events).json().not_null())
                    .col(ColumnDef::new(Webhooks::Active).boolean().not_null())
                    .col(ColumnDef::new(Webhooks::CreatedBy).uuid().null())
                    .col(ts(Webhooks::CreatedAt))
                    .col(ts(Webhooks::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhooks_repo")
                            .from(Webhooks::Table, Webhooks::RepoId)
                            .to(Repositories::Table, Repositories::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhooks_repo")
                    .table(Webhooks::Table)
                    .col(Webhooks::RepoId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(
                        ColumnDef::new(WebhookDeliveries::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(WebhookDeliveries::HookId).uuid().not_null())
                    .col(ColumnDef::new(WebhookDeliveries::RepoId).uuid().not_null())
                    .col(
                        ColumnDef::new(WebhookDeliveries::Event)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookDeliveries::Payload).json().not_null())
                    .col(
                        ColumnDef::new(WebhookDeliveries::State)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::Attempts)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::ResponseStatus)
                            .integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::ResponseBody)
                            .text()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::DurationMs)
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(WebhookDeliveries::LastError).text().null())
                    .col(
                        ColumnDef::new(WebhookDeliveries::Redelivery)
                            .boolean()
                            .not_null(),
                    )
                    .col(ts(WebhookDeliveries::CreatedAt))
                    .col(ts(WebhookDeliveries::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_deliveries_hook")
                            .from(WebhookDeliveries::Table, WebhookDeliveries::HookId)
                            .to(Webhooks::Table, Webhooks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_hook_created")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::HookId)
                    .col(WebhookDeliveries::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            WebhookDeliveries::Table.into_iden(),
            Webhooks::Table.into_iden(),
            Jobs::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}
