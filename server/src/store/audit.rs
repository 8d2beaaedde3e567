//! Audit events: written in the same transaction as the change they record.

use chrono::{DateTime, Utc};
use entity::audit_event;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

/// Who caused an event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Actor {
    /// The user (from the JWT), if any.
    pub user_id: Option<Uuid>,
    /// The agent (`X-Agent-Id`), if any.
    pub agent_id: Option<Uuid>,
}

/// The webhook event an audit event type is delivered as, and its action: `push`; `branch`
/// (created, deleted); `pull_request` (opened, updated, closed, reopened, merged).
pub fn hook_event(event_type: &str) -> Option<(&'static str, Option<&str>)> {
    if event_type == "push" {
        return Some(("push", None));
    }
    if let Some(action) = event_type.strip_prefix("branch.") {
        return Some(("branch", Some(action)));
    }
    event_type
        .strip_prefix("pull.")
        .map(|action| ("pull_request", Some(action)))
}

/// Records one event, and queues its webhook deliveries in the same transaction.
pub async fn record(
    db: &impl ConnectionTrait,
    repo_id: Option<Uuid>,
    event_type: &str,
    actor: Actor,
    payload: serde_json::Value,
) -> Result<(), DbErr> {
    let event = audit_event::ActiveModel {
        id: Set(Uuid::new_v4()),
        repo_id: Set(repo_id),
        event_type: Set(event_type.to_owned()),
        actor_id: Set(actor.user_id),
        agent_id: Set(actor.agent_id),
        payload: Set(payload),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    if let (Some(repo_id), Some((hook_event, action))) = (repo_id, hook_event(event_type)) {
        super::hooks::fan_out_event(db, repo_id, hook_event, action, &event).await?;
    }
    Ok(())
}

/// Filters of [`list()`].
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only this repository.
    pub repo_id: Option<Uuid>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// At or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At or before this time.
    pub until: Option<DateTime<Utc>>,
}

/// Lists events, newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &Filter,
    limit: u64,
    offset: u64,
) -> Result<Vec<audit_event::Model>, DbErr> {
    let mut q = audit_event::Entity::find();
    if let Some(id) = filter.repo_id {
        q = q.filter(audit_event::Column::RepoId.eq(id));
    }
    if let Some(t) = &filter.event_type {
        q = q.filter(audit_event::Column::EventType.eq(t.clone()));
    }
    if let Some(s) = filter.since {
        q = q.filter(audit_event::Column::CreatedAt.gte(s));
    }
    if let Some(u) = filter.until {
        q = q.filter(audit_event::Column::CreatedAt.lte(u));
    }
    q.order_by_desc(audit_event::Column::CreatedAt)
        .order_by_desc(audit_event::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await
}

/// Events at or after `since`, oldest first (ties by id), for the live stream.
pub async fn from_time(
    db: &impl ConnectionTrait,
    repo_id: Option<Uuid>,
    since: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<audit_event::Model>, DbErr> {
    let mut q = audit_event::Entity::find().filter(audit_event::Column::CreatedAt.gte(since));
    if let Some(id) = repo_id {
        q = q.filter(audit_event::Column::RepoId.eq(id));
    }
    q.order_by_asc(audit_event::Column::CreatedAt)
        .order_by_asc(audit_event::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// One event by id.
pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<audit_event::Model>, DbErr> {
    audit_event::Entity::find_by_id(id).one(db).await
}
