//! The Orbit server: configuration, auth, the REST API and git smart HTTP.
//!
//! [`app()`] builds the whole router from an [`AppState`], so tests can serve it on a real port
//! without the CLI; `main.rs` is a thin shell over [`cli`].

pub mod access_cache;
pub mod api;
pub mod auth;
pub mod body_channel;
pub mod branch_locks;
pub mod cli;
pub mod config;
pub mod db;
pub mod git_http;
pub mod jobs;
pub mod limits;
pub mod merge_cache;
pub mod metrics;
pub mod repo_cache;
pub mod startup;
pub mod state;
pub mod store;
pub mod tls;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, Method};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use api::error::ApiError;
pub use state::AppState;

/// The whole HTTP application: every route at `/` and under `/v1`, the envelope for unknown
/// routes and methods, body limits, CORS, panic catching and request tracing.
pub fn app(state: AppState) -> Router {
    let routes = api::routes();
    let cors = cors_layer(state.config.cors_origins.as_deref());
    let body_limit = state.config.max_json_body_bytes;
    metrics::handle();
    // A REST body that stalls is cut off like a git one (slow-loris bodies hold no task).
    let rest = Router::new()
        .merge(routes.clone())
        .nest("/v1", routes)
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            state.config.git_idle_timeout,
        ));
    Router::new()
        .merge(rest)
        .merge(git_http::router())
        .route("/metrics", axum::routing::get(metrics::render))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::rate_limit,
        ))
        .layer(axum::middleware::from_fn(refuse_nul))
        .layer(axum::middleware::from_fn(metrics::track))
        // Inside CORS, so a 500 from a panic still carries the CORS headers.
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(cors)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// A URL whose path or query decodes to a NUL byte is refused before any handler: no name,
/// ref or id Orbit keeps can contain one (and PostgreSQL text cannot).
async fn refuse_nul(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let uri = request.uri();
    let has_nul = |s: &str| {
        s.contains('\0')
            || s.as_bytes()
                .windows(3)
                .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
    };
    if has_nul(uri.path()) || uri.query().is_some_and(has_nul) {
        return ApiError::validation("the URL must not contain NUL characters (%00)")
            .into_response();
    }
    next.run(request).await
}

async fn unknown_route() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("a handler panicked").into_response()
}

fn cors_layer(origins: Option<&[axum::http::HeaderValue]>) -> CorsLayer {
    match origins {
        None => CorsLayer::permissive(),
        Some(list) => CorsLayer::new()
            .allow_origin(AllowOrigin::list(list.iter().cloned()))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static("x-agent-id"),
            ])
            .max_age(Duration::from_secs(3600)),
    }
}
