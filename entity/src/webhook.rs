//! A repository's webhook: a URL that hears about pushes, pull requests and branches.

use sea_orm::entity::prelude::*;

/// One row of `webhooks`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub repo_id: Uuid,
    pub url: String,
    /// The HMAC key of `X-Orbit-Signature-256`; never returned by the API.
    pub secret: Option<String>,
    /// The subscribed events, a JSON array of `push`, `pull_request`, `branch`.
    pub events: Json,
    pub active: bool,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Webhooks have no relations the server navigates.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
