//! Webhooks and their deliveries. An event is fanned out to the repository's active hooks that
//! subscribe to it, as one delivery row and one `webhook_delivery` job each, inside the caller's
//! transaction (so a change that rolls back sends nothing).

use chrono::Utc;
use entity::{webhook, webhook_delivery};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use super::jobs::{self, Kind, NewJob};

/// The events a hook may subscribe to.
pub const EVENTS: [&str; 3] = ["push", "pull_request", "branch"];

/// A hook's repository-scoped lookup.
pub async fn get(
    db: &impl ConnectionTrait,
    repo_id: Uuid,
    id: Uuid,
) -> Result<Option<webhook::Model>, DbErr> {
    webhook::Entity::find_by_id(id)
        .filter(webhook::Column::RepoId.eq(repo_id))
        .one(db)
        .await
}

/// A repository's hooks, oldest first.
pub async fn list(db: &impl ConnectionTrait, repo_id: Uuid) -> Result<Vec<webhook::Model>, DbErr> {
    webhook::Entity::find()
        .filter(webhook::Column::RepoId.eq(repo_id))
        .order_by_asc(webhook::Column::CreatedAt)
        .order_by_asc(webhook::Column::Id)
        .all(db)
        .await
}

/// A new hook.
#[derive(Debug, Clone)]
pub struct NewHook {
    /// Where deliveries go.
    pub url: String,
    /// The HMAC key, if any.
    pub secret: Option<String>,
    /// Subscribed events.
    pub events: Vec<String>,
    /// Whether it receives deliveries.
    pub active: bool,
    /// Who created it.
    pub created_by: Option<Uuid>,
}

/// Creates a hook.
pub async fn create(
    db: &impl ConnectionTrait,
    repo_id: Uuid,
    hook: NewHook,
) -> Result<webhook::Model, DbErr> {
    let now = Utc::now();
    webhook::ActiveModel {
        id: Set(Uuid::new_v4()),
        repo_id: Set(repo_id),
        url: Set(hook.url),
        secret: Set(hook.secret),
        events: Set(serde_json::json!(hook.events)),
        active: Set(hook.active),
        created_by: Set(hook.created_by),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
}

/// Changes to a hook; `None` leaves a field alone (`secret: Some(None)` removes the secret).
#[derive(Debug, Clone, Default)]
pub struct HookPatch {
    /// New URL.
    pub url: Option<String>,
    /// New secret, or none.
    pub secret: Option<Option<String>>,
    /// New events.
    pub events: Option<Vec<String>>,
    /// Enabled or not.
    pub active: Option<bool>,
}

/// Applies `patch` to `hook`.
pub async fn update(
    db: &impl ConnectionTrait,
    hook: webhook::Model,
    patch: HookPatch,
) -> Result<webhook::Model, DbErr> {
    let mut am: webhook::ActiveModel = hook.into();
    if let Some(u) = patch.url {
        am.url = Set(u);
    }
    if let Some(s) = patch.secret {
        am.secret = Set(s);
    }
    if let Some(e) = patch.events {
        am.events = Set(serde_json::json!(e));
    }
    if let Some(a) = patch.active {
        am.active = Set(a);
    }
    am.updated_at = Set(Utc::now());
    am.update(db).await
}

/// Deletes a hook (and, by cascade, its deliveries).
pub async fn delete(db: &impl ConnectionTrait, id: Uuid) -> Result<(), DbErr> {
    webhook::Entity::delete_by_id(id).exec(db).await.map(|_| ())
}

/// Whether `hook` subscribes to `event`.
pub fn subscribes(hook: &webhook::Model, event: &str) -> bool {
    hook.events
        .as_array()
        .is_some_and(|a| a.iter().any(|e| e.as_str() == Some(event)))
}

/// Creates a pending delivery of `payload` to `hook` and its job.
pub async fn deliver(
    db: &impl ConnectionTrait,
    hook: &webhook::Model,
    event: &str,
    payload: serde_json::Value,
    redelivery: bool,
) -> Result<webhook_delivery::Model, DbErr> {
    let now = Utc::now();
    let delivery = webhook_delivery::ActiveModel {
        id: Set(Uuid::new_v4()),
        hook_id: Set(hook.id),
        repo_id: Set(hook.repo_id),
        event: Set(event.to_owned()),
        payload: Set(payload),
        state: Set("pending".to_owned()),
        attempts: Set(0),
        response_status: Set(None),
        response_body: Set(None),
        duration_ms: Set(None),
        last_error: Set(None),
        redelivery: Set(redelivery),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?;
    jobs::enqueue(
        db,
        NewJob {
            kind: Kind::WebhookDelivery,
            repo_id: Some(hook.repo_id),
            dedup_key: Some(delivery.id.to_string()),
            payload: serde_json::json!({"deliveryId": delivery.id}),
        },
    )
    .await?;
    Ok(delivery)
}

/// Fans an audit event out to the repository's active hooks that subscribe to `event`, as the
/// delivery body `{event, action, eventId, repository, sender, payload, createdAt}`. Answers how
/// many deliveries were queued.
pub async fn fan_out_event(
    db: &impl ConnectionTrait,
    repo_id: Uuid,
    event: &str,
    action: Option<&str>,
    audit: &entity::audit_event::Model,
) -> Result<usize, DbErr> {
    let hooks: Vec<webhook::Model> = webhook::Entity::find()
        .filter(webhook::Column::RepoId.eq(repo_id))
        .filter(webhook::Column::Active.eq(true))
        .all(db)
        .await?
        .into_iter()
        .filter(|h| subscribes(h, event))
        .collect();
    if hooks.is_empty() {
        return Ok(0);
    }
    let repo = entity::repository::Entity::find_by_id(repo_id)
        .one(db)
        .await?;
    let body = serde_json::json!({
        "event": event,
        "action": action,
        "eventId": audit.id,
        "repository": repo.map(|r| serde_json::json!({
            "id": r.id, "orgId": r.org_id, "projectId": r.project_id, "name": r.name,
            "defaultBranch": r.default_branch, "visibility": r.visibility,
        })),
        "sender": {"userId": audit.actor_id, "agentId": audit.agent_id},
        "payload": audit.payload,
        "createdAt": audit.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    for hook in &hooks {
        deliver(db, hook, event, body.clone(), false).await?;
    }
    Ok(hooks.len())
}

/// A hook's deliveries, newest first.
pub async fn deliveries(
    db: &impl ConnectionTrait,
    hook_id: Uuid,
    limit: u64,
    offset: u64,
) -> Result<Vec<webhook_delivery::Model>, DbErr> {
    webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::HookId.eq(hook_id))
        .order_by_desc(webhook_delivery::Column::CreatedAt)
        .order_by_desc(webhook_delivery::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await
}

/// One delivery.
pub async fn delivery(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<webhook_delivery::Model>, DbErr> {
    webhook_delivery::Entity::find_by_id(id).one(db).await
}

/// What one attempt of a delivery saw.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// `succeeded`, `pending` (will retry) or `failed`.
    pub state: &'static str,
    /// The receiver's status, if it answered.
    pub status: Option<i32>,
    /// The start of its answer.
    pub body: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
    /// Why it failed.
    pub error: Option<String>,
}

/// Records an attempt of a delivery.
pub async fn record_attempt(
    db: &impl ConnectionTrait,
    delivery: webhook_delivery::Model,
    attempt: Attempt,
) -> Result<(), DbErr> {
    let attempts = delivery.attempts + 1;
    let mut am: webhook_delivery::ActiveModel = delivery.into();
    am.state = Set(attempt.state.to_owned());
    am.attempts = Set(attempts);
    am.response_status = Set(attempt.status);
    am.response_body = Set(attempt.body);
    am.duration_ms = Set(Some(attempt.duration_ms));
    am.last_error = Set(attempt.error);
    am.updated_at = Set(Utc::now());
    am.update(db).await.map(|_| ())
}
