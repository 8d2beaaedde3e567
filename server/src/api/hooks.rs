//! Webhooks of a repository (owner): `GET/POST /repos/{o}/{r}/hooks`,
//! `GET/PATCH/DELETE /repos/{o}/{r}/hooks/{id}`, the deliveries of a hook and redelivery.
//!
//! Events: `push`, `pull_request`, `branch`. A hook's secret is write-only: answers say only
//! whether one is set (`hasSecret`). Deliveries are jobs (`webhook_delivery`), signed with
//! `X-Orbit-Signature-256`; see [`crate::jobs::webhook`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json as JsonOut;
use chrono::{DateTime, Utc};
use sea_orm::TransactionTrait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::access::{self, Need};
use super::error::ApiError;
use super::extract::{Json, Path, Query};
use super::page::page;
use crate::auth::Caller;
use crate::state::AppState;
use crate::store::hooks::{self, HookPatch, NewHook, EVENTS};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_hooks, create_hook))
        .routes(routes!(get_hook, update_hook, delete_hook))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
}

/// A webhook as the API shows it (never its secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookDto {
    id: Uuid,
    repo_id: Uuid,
    url: String,
    events: Vec<String>,
    active: bool,
    has_secret: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<entity::webhook::Model> for HookDto {
    fn from(m: entity::webhook::Model) -> Self {
        Self {
            id: m.id,
            repo_id: m.repo_id,
            url: m.url,
            events: m
                .events
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            active: m.active,
            has_secret: m.secret.as_deref().is_some_and(|s| !s.is_empty()),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// One delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDto {
    id: Uuid,
    hook_id: Uuid,
    event: String,
    state: String,
    attempts: i32,
    response_status: Option<i32>,
    response_body: Option<String>,
    duration_ms: Option<i64>,
    last_error: Option<String>,
    redelivery: bool,
    payload: serde_json::Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<entity::webhook_delivery::Model> for DeliveryDto {
    fn from(m: entity::webhook_delivery::Model) -> Self {
        Self {
            id: m.id,
            hook_id: m.hook_id,
            event: m.event,
            state: m.state,
            attempts: m.attempts,
            response_status: m.response_status,
            response_body: m.response_body,
            duration_ms: m.duration_ms,
            last_error: m.last_error,
            redelivery: m.redelivery,
            payload: m.payload,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateHook {
    url: String,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    active: Option<bool>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PatchHook {
    #[serde(default)]
    url: Option<String>,
    /// `null` removes the secret; absent leaves it.
    #[serde(default, with = "double_option")]
    secret: Option<Option<String>>,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    active: Option<bool>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

fn check_url(url: &str) -> Result<String, ApiError> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|_| ApiError::validation(format!("url: {url:?} is not a valid URL")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ApiError::validation("url: must be an http(s) URL"));
    }
    if url.len() > 2048 {
        return Err(ApiError::validation("url: longer than 2048 characters"));
    }
    Ok(parsed.to_string())
}

fn check_events(events: Vec<String>) -> Result<Vec<String>, ApiError> {
    if events.is_empty() {
        return Err(ApiError::validation("events: at least one event is needed"));
    }
    let mut out: Vec<String> = Vec::new();
    for e in events {
        if !EVENTS.contains(&e.as_str()) {
            return Err(ApiError::validation(format!(
                "events: unknown event {e:?} (known: push, pull_request, branch)"
            )));
        }
        if !out.contains(&e) {
            out.push(e);
        }
    }
    Ok(out)
}

fn check_secret(secret: Option<String>) -> Result<Option<String>, ApiError> {
    match secret {
        Some(s) if s.len() > 255 => Err(ApiError::validation("secret: longer than 255 characters")),
        Some(s) if s.is_empty() => Ok(None),
        other => Ok(other),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u64>,
    /// Items to skip (default 0).
    offset: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/repos/{org_id}/{repo}/hooks",
    tag = "webhooks",
    responses((status = 200, description = "OK", body = Vec<HookDto>))
)]
async fn list_hooks(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name)): Path<(Uuid, String)>,
) -> Result<JsonOut<Vec<HookDto>>, ApiError> {
    let a = access::load(&state.db, &caller, org_id, &name, Need::Admin).await?;
    let rows = hooks::list(&state.db, a.repo.id).await?;
    Ok(JsonOut(rows.into_iter().map(Into::into).collect()))
}

#[utoipa::path(
    post,
    path = "/repos/{org_id}/{repo}/hooks",
    tag = "webhooks",
    request_body = CreateHook,
    responses((status = 200, description = "Created", body = HookDto))
)]
async fn create_hook(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name)): Path<(Uuid, String)>,
    Json(body): Json<CreateHook>,
) -> Result<JsonOut<HookDto>, ApiError> {
    let a = access::load(&state.db, &caller, org_id, &name, Need::Admin).await?;
    let hook = NewHook {
        url: check_url(&body.url)?,
        secret: check_secret(body.secret)?,
        events: check_events(body.events.unwrap_or_else(|| vec!["push".to_owned()]))?,
        active: body.active.unwrap_or(true),
        created_by: caller.0.as_ref().map(|i| i.user_id),
    };
    let row = hooks::create(&state.db, a.repo.id, hook).await?;
    Ok(JsonOut(row.into()))
}

async fn load_hook(
    state: &AppState,
    caller: &Caller,
    org_id: Uuid,
    name: &str,
    id: &str,
) -> Result<entity::webhook::Model, ApiError> {
    let a = access::load(&state.db, caller, org_id, name, Need::Admin).await?;
    let not_found = || ApiError::not_found("webhook not found");
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    hooks::get(&state.db, a.repo.id, id)
        .await?
        .ok_or_else(not_found)
}

#[utoipa::path(
    get,
    path = "/repos/{org_id}/{repo}/hooks/{id}",
    tag = "webhooks",
    responses((status = 200, description = "OK", body = HookDto))
)]
async fn get_hook(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, id)): Path<(Uuid, String, String)>,
) -> Result<JsonOut<HookDto>, ApiError> {
    Ok(JsonOut(
        load_hook(&state, &caller, org_id, &name, &id).await?.into(),
    ))
}

#[utoipa::path(
    patch,
    path = "/repos/{org_id}/{repo}/hooks/{id}",
    tag = "webhooks",
    request_body = PatchHook,
    responses((status = 200, description = "OK", body = HookDto))
)]
async fn update_hook(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, id)): Path<(Uuid, String, String)>,
    Json(body): Json<PatchHook>,
) -> Result<JsonOut<HookDto>, ApiError> {
    let hook = load_hook(&state, &caller, org_id, &name, &id).await?;
    let patch = HookPatch {
        url: body.url.as_deref().map(check_url).transpose()?,
        secret: match body.secret {
            None => None,
            Some(s) => Some(check_secret(s)?),
        },
        events: body.events.map(check_events).transpose()?,
        active: body.active,
    };
    let row = hooks::update(&state.db, hook, patch).await?;
    Ok(JsonOut(row.into()))
}

#[utoipa::path(
    delete,
    path = "/repos/{org_id}/{repo}/hooks/{id}",
    tag = "webhooks",
    responses((status = 204, description = "Deleted"))
)]
async fn delete_hook(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, id)): Path<(Uuid, String, String)>,
) -> Result<StatusCode, ApiError> {
    let hook = load_hook(&state, &caller, org_id, &name, &id).await?;
    hooks::delete(&state.db, hook.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/repos/{org_id}/{repo}/hooks/{id}/deliveries",
    tag = "webhooks",
    params(PageQuery),
    responses((status = 200, description = "OK", body = Vec<DeliveryDto>))
)]
async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, id)): Path<(Uuid, String, String)>,
    Query(q): Query<PageQuery>,
) -> Result<JsonOut<Vec<DeliveryDto>>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let hook = load_hook(&state, &caller, org_id, &name, &id).await?;
    let rows = hooks::deliveries(&state.db, hook.id, limit, offset).await?;
    Ok(JsonOut(rows.into_iter().map(Into::into).collect()))
}

#[utoipa::path(
    post,
    path = "/repos/{org_id}/{repo}/hooks/{id}/deliveries/{delivery_id}/redeliver",
    tag = "webhooks",
    responses((status = 200, description = "Queued again", body = DeliveryDto))
)]
async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path((org_id, name, id, delivery_id)): Path<(Uuid, String, String, String)>,
) -> Result<JsonOut<DeliveryDto>, ApiError> {
    let hook = load_hook(&state, &caller, org_id, &name, &id).await?;
    let not_found = || ApiError::not_found("delivery not found");
    let delivery_id = Uuid::parse_str(&delivery_id).map_err(|_| not_found())?;
    let original = hooks::delivery(&state.db, delivery_id)
        .await?
        .filter(|d| d.hook_id == hook.id)
        .ok_or_else(not_found)?;
    let txn = state.db.begin().await?;
    let row = hooks::deliver(&txn, &hook, &original.event, original.payload, true).await?;
    txn.commit().await?;
    state.jobs.wake();
    Ok(JsonOut(row.into()))
}
