//! One delivery of one event to one webhook (and its redeliveries, as new rows).

use sea_orm::entity::prelude::*;

/// One row of `webhook_deliveries`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub hook_id: Uuid,
    pub repo_id: Uuid,
    /// `push`, `pull_request` or `branch`.
    pub event: String,
    /// The JSON body sent.
    pub payload: Json,
    /// `pending`, `succeeded` or `failed`.
    pub state: String,
    pub attempts: i32,
    pub response_status: Option<i32>,
    /// The first bytes of the receiver's answer.
    pub response_body: Option<String>,
    pub duration_ms: Option<i64>,
    pub last_error: Option<String>,
    pub redelivery: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Deliveries have no relations the server navigates.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
