//! The REST API: one module per resource, each with its own `router()`.
//!
//! Every route is served at its path and again under `/v1`. Every failure, axum's own rejections
//! and unknown routes included, answers the error envelope of [`error::ApiError`].

pub mod access;
pub mod admin;
pub mod archive;
pub mod blame;
pub mod collaborators;
pub mod commits;
pub mod compare;
pub mod discovery;
pub mod error;
pub mod events;
pub mod extract;
pub mod git_data;
pub mod hooks;
pub mod internal;
pub mod jobs;
pub mod openapi;
pub mod page;
pub mod protection;
pub mod pulls;
pub mod pulls_merge;
pub mod repos;
pub mod stream;

use axum::Router;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// The REST routes, unprefixed (the caller mounts them at `/` and `/v1`).
pub fn routes() -> Router<AppState> {
    openapi_router().split_for_parts().0
}

/// Every REST route with its OpenAPI description (see [`openapi`]).
pub fn openapi_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(discovery::router())
        .merge(openapi::router())
        .merge(repos::router())
        .merge(collaborators::router())
        .merge(events::router())
        .merge(internal::router())
        .merge(admin::router())
        .merge(git_data::router())
        .merge(pulls::router())
        .merge(hooks::router())
        .merge(compare::router())
        .merge(blame::router())
        .merge(archive::router())
        .merge(stream::router())
        .merge(jobs::router())
}
