//! Discovery (`/`, `/api`) and `/health`. No auth.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::state::AppState;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(get_discovery))
        .route("/api", get(get_discovery))
        .route("/health", get(get_health))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Discovery {
    api_version: &'static str,
    base_url: String,
    git_url_prefix: String,
}

async fn get_discovery(State(state): State<AppState>) -> Json<Discovery> {
    let base = &state.config.public_base_url;
    Json(Discovery {
        api_version: "v1",
        base_url: format!("{base}/v1"),
        git_url_prefix: base.clone(),
    })
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    timestamp: chrono::DateTime<chrono::Utc>,
    checks: Checks,
}

#[derive(Serialize)]
struct Checks {
    database: &'static str,
    storage: &'static str,
}

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
