//! Prometheus metrics with the `metrics` crate family: `GET /metrics` renders the recorder
//! (optionally behind `METRICS_TOKEN`), plus gauges read when scraped.
//!
//! - `orbit_http_requests_total{method, route, status}` and
//!   `orbit_http_request_duration_seconds{method, route}` (route = the matched template);
//! - `orbit_git_operations_total{kind}`, `orbit_git_objects_sent_total`,
//!   `orbit_git_objects_received_total`, `orbit_pack_generation_seconds`;
//! - at scrape time: `orbit_git_work_active`, `orbit_git_work_queued`, `orbit_jobs_queued`,
//!   `orbit_jobs_failed`, `orbit_pack_cache_{generated,hits,followed,rejected}`,
//!   `orbit_db_pool_connections`, `orbit_db_pool_idle`.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::api::error::ApiError;
use crate::state::AppState;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder (installed once; every server in a process shares it).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0,
                ])
                .ok()?;
            match builder.install_recorder() {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: no recorder installed");
                    None
                }
            }
        })
        .as_ref()
}

/// Counts requests and their latency by route template and status.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("orbit_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("orbit_http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}

/// Records one git operation.
pub fn git_operation(kind: &'static str, objects_sent: usize, objects_received: usize, secs: f64) {
    metrics::counter!("orbit_git_operations_total", "kind" => kind).increment(1);
    if objects_sent > 0 {
        metrics::counter!("orbit_git_objects_sent_total").increment(objects_sent as u64);
        metrics::histogram!("orbit_pack_generation_seconds").record(secs);
    }
    if objects_received > 0 {
        metrics::counter!("orbit_git_objects_received_total").increment(objects_received as u64);
    }
}

async fn scrape_gauges(state: &AppState) {
    let total = state.config.limits.global;
    let available = state.git_permits.available_permits();
    metrics::gauge!("orbit_git_work_active").set(total.saturating_sub(available) as f64);
    metrics::gauge!("orbit_git_work_queued").set(state.admission.queued() as f64);
    if let Ok((queued, failed)) = crate::store::jobs::depth(&state.db).await {
        metrics::gauge!("orbit_jobs_queued").set(queued as f64);
        metrics::gauge!("orbit_jobs_failed").set(failed as f64);
    }
    if let Some(cache) = &state.pack_cache {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &cache.stats;
        for (name, v) in [
            ("orbit_pack_cache_generated", s.generated.load(Relaxed)),
            ("orbit_pack_cache_hits", s.hits.load(Relaxed)),
            ("orbit_pack_cache_followed", s.followed.load(Relaxed)),
            ("orbit_pack_cache_rejected", s.rejected.load(Relaxed)),
        ] {
            metrics::gauge!(name).set(v as f64);
        }
    }
    let (size, idle) = if let Some(pool) = try_pg(state) {
        (pool.size(), pool.num_idle())
    } else if let Some(pool) = try_sqlite(state) {
        (pool.size(), pool.num_idle())
    } else {
        (0, 0)
    };
    metrics::gauge!("orbit_db_pool_connections").set(f64::from(size));
    metrics::gauge!("orbit_db_pool_idle").set(idle as f64);
}

fn try_pg(state: &AppState) -> Option<&sea_orm::sqlx::PgPool> {
    match &state.db {
        sea_orm::DatabaseConnection::SqlxPostgresPoolConnection(_) => {
            Some(state.db.get_postgres_connection_pool())
        }
        _ => None,
    }
}

fn try_sqlite(state: &AppState) -> Option<&sea_orm::sqlx::SqlitePool> {
    match &state.db {
        sea_orm::DatabaseConnection::SqlxSqlitePoolConnection(_) => {
            Some(state.db.get_sqlite_connection_pool())
        }
        _ => None,
    }
}

/// `GET /metrics`.
pub async fn render(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = &state.config.metrics_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        use subtle::ConstantTimeEq;
        if !bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
            return Err(ApiError::unauthorized(
                "metrics need Authorization: Bearer <METRICS_TOKEN>",
            ));
        }
    }
    let Some(handle) = handle() else {
        return Ok((StatusCode::SERVICE_UNAVAILABLE, "metrics are unavailable\n").into_response());
    };
    scrape_gauges(&state).await;
    let mut resp = handle.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(resp)
}
