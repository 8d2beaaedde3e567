//! Discovery (`/`, `/api`) and `/health`. No auth.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_discovery))
        .routes(routes!(get_api))
        .routes(routes!(get_health))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Discovery {
    api_version: &'static str,
    base_url: String,
    git_url_prefix: String,
}

#[utoipa::path(
    get,
    path = "/api",
    tag = "meta",
    responses((status = 200, description = "Where the API and git live", body = Discovery))
)]
async fn get_api(state: State<AppState>) -> Json<Discovery> {
    get_discovery(state).await
}

#[utoipa::path(
    get,
    path = "/",
    tag = "meta",
    responses((status = 200, description = "Where the API and git live", body = Discovery))
)]
async fn get_discovery(State(state): State<AppState>) -> Json<Discovery> {
    let base = &state.config.public_base_url;
    Json(Discovery {
        api_version: "v1",
        base_url: format!("{base}/v1"),
        git_url_prefix: base.clone(),
    })
}

#[derive(Serialize, utoipa::ToSchema)]
struct Health {
    status: &'static str,
    timestamp: chrono::DateTime<chrono::Utc>,
    checks: Checks,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Checks {
    database: &'static str,
    storage: &'static str,
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "meta",
    responses((status = 200, description = "Healthy", body = Health), (status = 503, description = "Degraded", body = Health))
)]
async fn get_health(State(state): State<AppState>) -> Response {
    let database_ok = matches!(
        tokio::time::timeout(std::time::Duration::from_secs(3), state.db.ping()).await,
        Ok(Ok(()))
    );
    let root = state.config.storage_root.clone();
    let storage_ok = tokio::task::spawn_blocking(move || storage_usable(&root))
        .await
        .unwrap_or(false);
    let ok = database_ok && storage_ok;
    let label = |b: bool| if b { "ok" } else { "unavailable" };
    let body = Health {
        status: if ok { "ok" } else { "degraded" },
        timestamp: chrono::Utc::now(),
        checks: Checks {
            database: label(database_ok),
            storage: label(storage_ok),
        },
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Whether the storage root is a directory we can create files in.
fn storage_usable(root: &std::path::Path) -> bool {
    if !root.is_dir() {
        return false;
    }
    let probe = root.join(format!(".orbit-health-{}", uuid::Uuid::new_v4().simple()));
    let ok = std::fs::write(&probe, b"ok").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}
