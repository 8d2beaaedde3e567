//! A durable job: work done after a request (feed posts, push mirrors, webhook deliveries) that
//! must survive a process dying.

use sea_orm::entity::prelude::*;

/// One row of `jobs`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `feed_post`, `push_mirror` or `webhook_delivery`.
    pub kind: String,
    pub repo_id: Option<Uuid>,
    /// Unique per kind (a push id, a delivery id): a job is enqueued at most once.
    pub dedup_key: Option<String>,
    pub payload: Json,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    /// What the handler reported on success (e.g. per-ref results of a mirror).
    pub result: Option<Json>,
    /// Not claimed before this time (backoff).
    pub run_after: DateTimeUtc,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

/// Jobs have no relations the server navigates.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
