//! Shared application state, handed to handlers through `State` and `FromRef`.

use std::sync::Arc;

use axum::extract::FromRef;
use sea_orm::DatabaseConnection;

use crate::auth::Authenticator;
use crate::config::Config;

/// Everything a handler may need. Cheap to clone.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// The metadata store.
    pub db: DatabaseConnection,
    /// Credential verification.
    pub auth: Arc<Authenticator>,
    /// The configuration in effect.
    pub config: Arc<Config>,
    /// Open repositories.
    pub repos: Arc<crate::repo_cache::RepoCache>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}
