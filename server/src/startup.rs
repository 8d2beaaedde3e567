//! Turning a [`Config`] into a ready [`AppState`]: directories, secret, database, migrations.

use std::sync::Arc;

use crate::auth::{secret, Authenticator};
use crate::config::Config;
use crate::state::AppState;

/// Why startup stopped. Each message is one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A directory could not be created.
    #[error("cannot create {what} {path}: {source}")]
    Dir {
        /// Which directory (for the message).
        what: &'static str,
        /// Its path.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HS256 secret could not be loaded or generated.
    #[error("{0}")]
    Secret(#[from] secret::Error),
    /// The HS256 key could not be built.
    #[error("AUTH_COOKIE_SECRET: unusable as an HS256 key: {0}")]
    Key(#[from] crate::auth::token::Error),
    /// The database could not be reached.
    #[error("DATABASE_URL: cannot connect to the database ({0})")]
    Connect(sea_orm::DbErr),
    /// Migrations failed.
    #[error("database migrations failed: {0}")]
    Migrate(sea_orm::DbErr),
}

/// What startup did, for the log.
#[derive(Debug, Clone)]
pub struct Report {
    /// Where the HS256 secret came from.
    pub secret_source: secret::Source,
}

/// Creates the data and storage directories.
pub fn ensure_dirs(config: &Config) -> Result<(), Error> {
    for (what, path) in [
        ("the data directory (ORBIT_DATA_DIR)", &config.data_dir),
        (
            "the repository storage root (GIT_STORAGE_ROOT)",
            &config.storage_root,
        ),
    ] {
        std::fs::create_dir_all(path).map_err(|source| Error::Dir {
            what,
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Loads the HS256 secret in effect and builds the authenticator.
pub fn authenticator(config: &Config) -> Result<(Authenticator, secret::Secret), Error> {
    let secret = secret::load_or_create(config.cookie_secret.as_deref(), &config.data_dir)?;
    let auth = Authenticator::new(config, &secret.bytes)?;
    Ok((auth, secret))
}

/// Connects to the database and applies migrations.
pub async fn database(config: &Config) -> Result<sea_orm::DatabaseConnection, Error> {
    let db = crate::db::connect(&config.database_url)
        .await
        .map_err(Error::Connect)?;
    crate::db::migrate(&db).await.map_err(Error::Migrate)?;
    Ok(db)
}

/// Everything `serve` needs before it binds.
pub async fn prepare(config: Config) -> Result<(AppState, Report), Error> {
    let limits = config.limits.clone();
    gitcore::storage::set_delta_cache_bytes(
        usize::try_from(limits.delta_cache_bytes).unwrap_or(usize::MAX),
    );
    let pack_cache = if limits.pack_cache_max_bytes == 0 {
        None
    } else {
        let cache = gitcore::pack_cache::PackCache::new(
            &limits.pack_cache_dir,
            limits.pack_cache_max_bytes,
            limits.pack_cache_ttl,
        )
        .map_err(|source| Error::Dir {
            what: "the pack cache directory (GIT_PACK_CACHE_DIR)",
            path: limits.pack_cache_dir.clone(),
            source,
        })?;
        cache.evict();
        Some(Arc::new(cache))
    };
    let redis_url = config.redis_url.clone();
    ensure_dirs(&config)?;
    let (auth, secret) = authenticator(&config)?;
    let db = database(&config).await?;
    Ok((
        AppState {
            db,
            auth: Arc::new(auth),
            config: Arc::new(config),
            access: Arc::new(crate::access_cache::AccessCache::new(
                limits.access_cache_ttl,
            )),
            repos: Arc::new(crate::repo_cache::RepoCache::new(256)),
            merges: Arc::new(crate::merge_cache::MergeCache::new(4096)),
            merge_queue: Arc::default(),
            jobs: Arc::new(crate::jobs::Queue::new()),
            git_permits: Arc::new(tokio::sync::Semaphore::new(limits.global)),
            pack_cache,
            admission: Arc::new(crate::limits::admission::Admission::new(
                limits.per_repo,
                limits.queue,
                limits.queue_wait,
            )),
            limiter: Arc::new(crate::limits::Limiter::new(limits, redis_url.as_ref())),
        },
        Report {
            secret_source: secret.source,
        },
    ))
}
