//! Configuration from the environment (and a `.env` file, loaded by the CLI before this runs).
//!
//! Every variable is documented in `.env.example` and the README. Parsing never panics: a bad
//! value is a [`ConfigError`] whose one-line message names the variable.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use axum::http::HeaderValue;
use reqwest::Url;

/// A configuration value that stops startup. Its `Display` is the one line shown to the user.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn err(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

/// The identity provider whose RS256 tokens are accepted.
#[derive(Debug, Clone)]
pub struct Auth0Config {
    /// `AUTH0_DOMAIN`, e.g. `example.eu.auth0.com`.
    pub domain: String,
    /// `AUTH0_AUDIENCE`: the `aud` every RS256 token must carry.
    pub audience: String,
    /// The expected `iss`: `https://{domain}/`.
    pub issuer: String,
    /// Where the JWKS is fetched from: `AUTH_JWKS_URL`, or derived from the domain.
    pub jwks_url: Url,
}

/// Orbit's whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ORBIT_DATA_DIR`: the embedded default's home (SQLite file, repositories, generated secret).
    pub data_dir: PathBuf,
    /// `DATABASE_URL`, or SQLite at `$ORBIT_DATA_DIR/orbit.db`.
    pub database_url: String,
    /// `GIT_STORAGE_ROOT`, or `$ORBIT_DATA_DIR/repos`.
    pub storage_root: PathBuf,
    /// RS256 via JWKS, when `AUTH0_DOMAIN` and `AUTH0_AUDIENCE` are set.
    pub auth0: Option<Auth0Config>,
    /// `AUTH_COOKIE_SECRET`: the HS256 shared secret. When unset, a generated one is kept in the
    /// data directory.
    pub cookie_secret: Option<String>,
    /// `INTERNAL_SERVICE_TOKEN`: opens internal and admin routes. Unset: they answer 401.
    pub internal_token: Option<String>,
    /// `AURA_NETWORK_URL`: the platform's network service (feed posts after pushes).
    pub aura_network_url: Option<Url>,
    /// `SERVER_HOST`.
    pub host: IpAddr,
    /// `SERVER_PORT`.
    pub port: u16,
    /// `CORS_ORIGINS` (comma-separated); `None` means permissive.
    pub cors_origins: Option<Vec<HeaderValue>>,
    /// `REDIS_URL`: shared rate-limit state when set.
    pub redis_url: Option<Url>,
    /// `PUBLIC_BASE_URL`, without a trailing slash.
    pub public_base_url: String,
    /// `RUST_LOG`, validated here so a typo stops startup with a clear line.
    pub log_filter: String,
    /// Minimum time between two JWKS refreshes triggered by unknown `kid`s.
    pub jwks_refresh_min_interval: Duration,
    /// Timeout of one JWKS fetch.
    pub jwks_fetch_timeout: Duration,
    /// Largest accepted REST request body, in bytes.
    pub max_json_body_bytes: usize,
    /// `TLS_CERT_PATH` and `TLS_KEY_PATH`: serve HTTPS natively when both are set.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `GIT_MAX_PACK_BYTES`: largest pack a push may send.
    pub git_max_pack_bytes: u64,
    /// `GIT_MAX_OBJECT_BYTES`: largest object (inflated) a push may contain.
    pub git_max_object_bytes: usize,
    /// `GIT_MAX_REF_UPDATES`: most ref updates in one push (unlimited by default).
    pub git_max_ref_updates: usize,
    /// `GIT_IDLE_TIMEOUT_SECS`: a git request body that sends nothing, or a client that reads
    /// nothing, for this long is cut off.
    pub git_idle_timeout: Duration,
    /// `ORBIT_COMMITTER_NAME` and `ORBIT_COMMITTER_EMAIL`: the committer of merge and squash
    /// commits Orbit writes (default `Orbit` / `orbit@localhost`).
    pub committer: (String, String),
    /// The durable job queue and what its jobs talk to.
    pub jobs: JobsConfig,
    /// Rate limits and admission control.
    pub limits: LimitsConfig,
    /// `METRICS_TOKEN`: when set, `/metrics` needs `Authorization: Bearer <it>`.
    pub metrics_token: Option<String>,
}

/// Rate limits and admission control.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// `RATE_LIMIT_REST_READ`: REST reads per caller per minute (also the burst); 0 = unlimited.
    pub rest_read: u32,
    /// `RATE_LIMIT_REST_WRITE`: REST writes per caller per minute; 0 = unlimited.
    pub rest_write: u32,
    /// `RATE_LIMIT_GIT`: git requests per caller per minute; 0 = unlimited.
    pub git: u32,
    /// `TRUSTED_PROXIES`: peers (addresses or CIDR ranges) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<(IpAddr, u8)>,
    /// `GIT_MAX_CONCURRENT_PER_REPO`: upload-packs (and, separately, receive-packs) running at
    /// once per repository.
    pub per_repo: usize,
    /// `GIT_MAX_QUEUE`: requests waiting per repository beyond those; more get 429.
    pub queue: usize,
    /// `GIT_MAX_QUEUE_WAIT_SECS`: longest wait in that queue before a 429.
    pub queue_wait: Duration,
    /// `GIT_MAX_CONCURRENT`: blocking git work running at once in the process (all repositories).
    pub global: usize,
    /// `GIT_PACK_CACHE_DIR`: where identical pack answers are kept (default
    /// `$ORBIT_DATA_DIR/pack-cache`).
    pub pack_cache_dir: PathBuf,
    /// `GIT_PACK_CACHE_MAX_BYTES`: the cache's size bound; 0 turns it off.
    pub pack_cache_max_bytes: u64,
    /// `GIT_PACK_CACHE_TTL_SECS`: how long an entry may be served.
    pub pack_cache_ttl: Duration,
    /// `GIT_DELTA_CACHE_BYTES`: each repository handle's delta-base cache; 0 turns it off.
    pub delta_cache_bytes: u64,
    /// `GIT_ACCESS_CACHE_MS`: how long a read of repository content may use a repository row and
    /// a role read from the database before (changes made in this process apply at once); 0
    /// turns it off.
    pub access_cache_ttl: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            rest_read: 3000,
            rest_write: 1000,
            git: 3000,
            trusted_proxies: Vec::new(),
            per_repo: 8,
            queue: 64,
            queue_wait: Duration::from_secs(30),
            global: (std::thread::available_parallelism().map_or(2, |n| n.get()) * 4).max(8),
            pack_cache_dir: PathBuf::from("./data/pack-cache"),
            pack_cache_max_bytes: 1 << 30,
            pack_cache_ttl: Duration::from_secs(300),
            delta_cache_bytes: 16 << 20,
            access_cache_ttl: Duration::from_millis(1000),
        }
    }
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = match s.split_once('/') {
        Some((ip, bits)) => (ip.parse::<IpAddr>().ok()?, bits.parse::<u8>().ok()?),
        None => {
            let ip = s.parse::<IpAddr>().ok()?;
            (ip, if ip.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

/// The job queue: workers, leases, retries, and the services jobs call.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// `ORBIT_JOB_WORKERS`: worker tasks in this process (default 4; 0 runs none, other processes
    /// on the same database still run the jobs this one enqueues).
    pub workers: usize,
    /// `ORBIT_JOB_LEASE_SECS`: how long a claimed job is held before another worker may take it
    /// over (renewed while the handler runs; default 60).
    pub lease: Duration,
    /// `ORBIT_JOB_RETRY_BASE_MS`: the first retry's delay; each next one doubles, with jitter,
    /// capped at 10 minutes (default 2,000).
    pub retry_base: Duration,
    /// `ORBIT_JOB_POLL_MS`: how often idle workers look for jobs enqueued by other processes
    /// (default 1,000; jobs enqueued by this process wake them at once).
    pub poll: Duration,
    /// `AURA_NETWORK_TOKEN`, falling back to `INTERNAL_SERVICE_TOKEN`: sent as `X-Internal-Token`
    /// to the network service.
    pub network_token: Option<String>,
    /// `GITHUB_BASE_URL`: where push mirrors go (default `https://github.com`).
    pub github_base_url: Url,
    /// `ORBIT_WEBHOOK_TIMEOUT_SECS`: one webhook delivery's timeout (default 10).
    pub webhook_timeout: Duration,
    /// `ORBIT_HTTP_TIMEOUT_SECS`: timeout of a feed post or an integration lookup (default 10).
    pub http_timeout: Duration,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let data_dir = PathBuf::from(get("ORBIT_DATA_DIR").unwrap_or_else(|| "./data".to_owned()));
        let database_url = match get("DATABASE_URL") {
            Some(url) => {
                let lower = url.to_ascii_lowercase();
                if !(lower.starts_with("sqlite:")
                    || lower.starts_with("postgres://")
                    || lower.starts_with("postgresql://"))
                {
                    return Err(err(
                        "DATABASE_URL",
                        "must start with sqlite:, postgres:// or postgresql://",
                    ));
                }
                if !lower.starts_with("sqlite:") {
                    Url::parse(&url)
                        .map_err(|e| err("DATABASE_URL", format!("not a valid URL ({e})")))?;
                }
                url
            }
            None => sqlite_url(&data_dir.join("orbit.db")),
        };
        let storage_root = get("GIT_STORAGE_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("repos"));

        let auth0 = match (get("AUTH0_DOMAIN"), get("AUTH0_AUDIENCE")) {
            (Some(domain), Some(audience)) => {
                let domain = domain
                    .trim_start_matches("https://")
                    .trim_end_matches('/')
                    .to_owned();
                let issuer = format!("https://{domain}/");
                Url::parse(&issuer).map_err(|e| {
                    err(
                        "AUTH0_DOMAIN",
                        format!("{domain:?} is not a valid host name ({e})"),
                    )
                })?;
                let jwks_url = match get("AUTH_JWKS_URL") {
                    Some(u) => parse_http_url("AUTH_JWKS_URL", &u)?,
                    None => {
                        parse_http_url("AUTH0_DOMAIN", &format!("{issuer}.well-known/jwks.json"))?
                    }
                };
                Some(Auth0Config {
                    domain,
                    audience,
                    issuer,
                    jwks_url,
                })
            }
            (Some(_), None) => {
                return Err(err(
                    "AUTH0_AUDIENCE",
                    "must be set when AUTH0_DOMAIN is set",
                ));
            }
            (None, Some(_)) => {
                return Err(err(
                    "AUTH0_DOMAIN",
                    "must be set when AUTH0_AUDIENCE is set",
                ));
            }
            (None, None) => {
                if get("AUTH_JWKS_URL").is_some() {
                    return Err(err(
                        "AUTH_JWKS_URL",
                        "needs AUTH0_DOMAIN and AUTH0_AUDIENCE (they give the expected issuer and audience)",
                    ));
                }
                None
            }
        };

        let host = match get("SERVER_HOST") {
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Some(h) if h.eq_ignore_ascii_case("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(h) => h
                .parse()
                .map_err(|_| err("SERVER_HOST", format!("{h:?} is not an IP address")))?,
        };
        let port = match get("SERVER_PORT") {
            None => 3000,
            Some(p) => p.parse::<u16>().map_err(|_| {
                err(
                    "SERVER_PORT",
                    format!("{p:?} is not a port number (0-65535)"),
                )
            })?,
        };

        let cors_origins = match get("CORS_ORIGINS") {
            None => None,
            Some(list) if list == "*" => None,
            Some(list) => {
                let mut origins = Vec::new();
                for origin in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                    let url = Url::parse(origin).map_err(|_| {
                        err(
                            "CORS_ORIGINS",
                            format!("{origin:?} is not an origin like https://app.example.com"),
                        )
                    })?;
                    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                        return Err(err(
                            "CORS_ORIGINS",
                            format!("{origin:?} is not an http(s) origin"),
                        ));
                    }
                    let value =
                        HeaderValue::from_str(origin.trim_end_matches('/')).map_err(|_| {
                            err(
                                "CORS_ORIGINS",
                                format!("{origin:?} is not a valid header value"),
                            )
                        })?;
                    origins.push(value);
                }
                Some(origins)
            }
        };

        let aura_network_url = get("AURA_NETWORK_URL")
            .map(|u| parse_http_url("AURA_NETWORK_URL", &u))
            .transpose()?;
        let redis_url = match get("REDIS_URL") {
            None => None,
            Some(u) => {
                let url = Url::parse(&u)
                    .map_err(|e| err("REDIS_URL", format!("not a valid URL ({e})")))?;
                if !matches!(url.scheme(), "redis" | "rediss") {
                    return Err(err("REDIS_URL", "must start with redis:// or rediss://"));
                }
                Some(url)
            }
        };

        let public_base_url = match get("PUBLIC_BASE_URL") {
            Some(u) => parse_http_url("PUBLIC_BASE_URL", &u)?
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
            None => {
                let scheme = if get("TLS_CERT_PATH").is_some() {
                    "https"
                } else {
                    "http"
                };
                let shown = if host.is_unspecified() || host.is_loopback() {
                    "localhost".to_owned()
                } else if host.is_ipv6() {
                    format!("[{host}]")
                } else {
                    host.to_string()
                };
                format!("{scheme}://{shown}:{port}")
            }
        };

        let log_filter =
            get("RUST_LOG").unwrap_or_else(|| "info,sqlx=warn,sea_orm=warn".to_owned());
        tracing_subscriber::EnvFilter::try_new(&log_filter).map_err(|e| {
            err(
                "RUST_LOG",
                format!("{log_filter:?} is not a valid filter ({e})"),
            )
        })?;

        let number = |var: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(var) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| err(var, format!("{v:?} is not a positive whole number"))),
            }
        };
        let git_max_pack_bytes = number("GIT_MAX_PACK_BYTES", 2 << 30)?;
        let git_max_object_bytes = usize::try_from(number("GIT_MAX_OBJECT_BYTES", 512 << 20)?)
            .map_err(|_| err("GIT_MAX_OBJECT_BYTES", "too large"))?;
        // Unlimited unless set (GitHub sets no limit; `git push --mirror` of a large project
        // sends thousands of refs). Parsing stops at 100,000 commands whatever the setting.
        let git_max_ref_updates =
            usize::try_from(number("GIT_MAX_REF_UPDATES", u64::MAX)?).unwrap_or(usize::MAX);

        let git_idle_timeout = Duration::from_secs(number("GIT_IDLE_TIMEOUT_SECS", 120)?);
        let tls = match (get("TLS_CERT_PATH"), get("TLS_KEY_PATH")) {
            (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
            (Some(_), None) => {
                return Err(err("TLS_KEY_PATH", "must be set when TLS_CERT_PATH is set"))
            }
            (None, Some(_)) => {
                return Err(err("TLS_CERT_PATH", "must be set when TLS_KEY_PATH is set"))
            }
            (None, None) => None,
        };

        let committer = (
            get("ORBIT_COMMITTER_NAME").unwrap_or_else(|| "Orbit".to_owned()),
            get("ORBIT_COMMITTER_EMAIL").unwrap_or_else(|| "orbit@localhost".to_owned()),
        );
        for (var, value) in [
            ("ORBIT_COMMITTER_NAME", &committer.0),
            ("ORBIT_COMMITTER_EMAIL", &committer.1),
        ] {
            if value.trim().is_empty() || value.contains(['<', '>', '\n', '\0']) {
                return Err(err(var, "must be non-empty, without '<', '>' or newlines"));
            }
        }

        let whole = |var: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(var) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .map_err(|_| err(var, format!("{v:?} is not a whole number"))),
            }
        };
        let github_base_url = match get("GITHUB_BASE_URL") {
            Some(u) => parse_http_url("GITHUB_BASE_URL", &u)?,
            None => Url::parse("https://github.com")
                .map_err(|e| err("GITHUB_BASE_URL", e.to_string()))?,
        };
        let jobs = JobsConfig {
            workers: usize::try_from(whole("ORBIT_JOB_WORKERS", 4)?.min(256)).unwrap_or(4),
            lease: Duration::from_secs(number("ORBIT_JOB_LEASE_SECS", 60)?),
            retry_base: Duration::from_millis(number("ORBIT_JOB_RETRY_BASE_MS", 2_000)?),
            poll: Duration::from_millis(number("ORBIT_JOB_POLL_MS", 1_000)?),
            network_token: get("AURA_NETWORK_TOKEN").or_else(|| get("INTERNAL_SERVICE_TOKEN")),
            github_base_url,
            webhook_timeout: Duration::from_secs(number("ORBIT_WEBHOOK_TIMEOUT_SECS", 10)?),
            http_timeout: Duration::from_secs(number("ORBIT_HTTP_TIMEOUT_SECS", 10)?),
        };

        let defaults = LimitsConfig::default();
        let quota = |var: &'static str, default: u32| -> Result<u32, ConfigError> {
            u32::try_from(whole(var, u64::from(default))?).map_err(|_| err(var, "too large"))
        };
        let mut trusted_proxies = Vec::new();
        for item in get("TRUSTED_PROXIES").unwrap_or_default().split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            trusted_proxies.push(parse_cidr(item).ok_or_else(|| {
                err(
                    "TRUSTED_PROXIES",
                    format!("{item:?} is not an IP address or CIDR range"),
                )
            })?);
        }
        let limits = LimitsConfig {
            rest_read: quota("RATE_LIMIT_REST_READ", defaults.rest_read)?,
            rest_write: quota("RATE_LIMIT_REST_WRITE", defaults.rest_write)?,
            git: quota("RATE_LIMIT_GIT", defaults.git)?,
            trusted_proxies,
            per_repo: usize::try_from(number(
                "GIT_MAX_CONCURRENT_PER_REPO",
                defaults.per_repo as u64,
            )?)
            .unwrap_or(defaults.per_repo),
            queue: usize::try_from(whole("GIT_MAX_QUEUE", defaults.queue as u64)?)
                .unwrap_or(defaults.queue),
            queue_wait: Duration::from_secs(whole("GIT_MAX_QUEUE_WAIT_SECS", 30)?),
            global: usize::try_from(number("GIT_MAX_CONCURRENT", defaults.global as u64)?)
                .unwrap_or(defaults.global),
            pack_cache_dir: get("GIT_PACK_CACHE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("pack-cache")),
            pack_cache_max_bytes: whole("GIT_PACK_CACHE_MAX_BYTES", defaults.pack_cache_max_bytes)?,
            pack_cache_ttl: Duration::from_secs(number("GIT_PACK_CACHE_TTL_SECS", 300)?),
            delta_cache_bytes: whole("GIT_DELTA_CACHE_BYTES", defaults.delta_cache_bytes)?,
            access_cache_ttl: Duration::from_millis(whole("GIT_ACCESS_CACHE_MS", 1000)?),
        };

        Ok(Config {
            metrics_token: get("METRICS_TOKEN"),
            limits,
            jobs,
            git_idle_timeout,
            committer,
            tls,
            git_max_pack_bytes,
            git_max_object_bytes,
            git_max_ref_updates,
            data_dir,
            database_url,
            storage_root,
            auth0,
            cookie_secret: get("AUTH_COOKIE_SECRET"),
            internal_token: get("INTERNAL_SERVICE_TOKEN"),
            aura_network_url,
            host,
            port,
            cors_origins,
            redis_url,
            public_base_url,
            log_filter,
            jwks_refresh_min_interval: Duration::from_secs(30),
            jwks_fetch_timeout: Duration::from_secs(5),
            max_json_body_bytes: 1024 * 1024,
        })
    }

    /// Whether the database is the embedded SQLite default.
    pub fn uses_sqlite(&self) -> bool {
        self.database_url
            .to_ascii_lowercase()
            .starts_with("sqlite:")
    }
}

/// The sqlx URL of a SQLite file, created if missing.
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

fn parse_http_url(var: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url =
        Url::parse(value).map_err(|e| err(var, format!("{value:?} is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(err(var, format!("{value:?} is not an http(s) URL")));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let c = parse(&[]).expect("defaults");
        assert_eq!(c.port, 3000);
        assert!(c.host.is_unspecified());
        assert!(c.uses_sqlite());
        assert_eq!(c.storage_root, PathBuf::from("./data/repos"));
        assert_eq!(c.public_base_url, "http://localhost:3000");
        assert!(c.auth0.is_none() && c.internal_token.is_none() && c.cors_origins.is_none());
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (vars, var) in [
            (vec![("SERVER_PORT", "eighty")], "SERVER_PORT"),
            (vec![("SERVER_PORT", "70000")], "SERVER_PORT"),
            (vec![("SERVER_HOST", "not an ip")], "SERVER_HOST"),
            (vec![("DATABASE_URL", "mysql://x")], "DATABASE_URL"),
            (vec![("AUTH0_DOMAIN", "x.auth0.com")], "AUTH0_AUDIENCE"),
            (vec![("AUTH0_AUDIENCE", "api")], "AUTH0_DOMAIN"),
            (
                vec![("AUTH_JWKS_URL", "http://127.0.0.1/jwks")],
                "AUTH_JWKS_URL",
            ),
            (
                vec![
                    ("AUTH0_DOMAIN", "x"),
                    ("AUTH0_AUDIENCE", "a"),
                    ("AUTH_JWKS_URL", "ftp://x"),
                ],
                "AUTH_JWKS_URL",
            ),
            (vec![("PUBLIC_BASE_URL", "nope")], "PUBLIC_BASE_URL"),
            (vec![("AURA_NETWORK_URL", "::")], "AURA_NETWORK_URL"),
            (vec![("REDIS_URL", "http://x")], "REDIS_URL"),
            (
                vec![("CORS_ORIGINS", "https://ok.example, bad")],
                "CORS_ORIGINS",
            ),
            (vec![("RUST_LOG", "info,[=")], "RUST_LOG"),
            (vec![("GIT_MAX_PACK_BYTES", "lots")], "GIT_MAX_PACK_BYTES"),
            (vec![("GIT_MAX_PACK_BYTES", "0")], "GIT_MAX_PACK_BYTES"),
            (vec![("GIT_MAX_OBJECT_BYTES", "-1")], "GIT_MAX_OBJECT_BYTES"),
            (vec![("GIT_MAX_REF_UPDATES", "1.5")], "GIT_MAX_REF_UPDATES"),
            (
                vec![("GIT_IDLE_TIMEOUT_SECS", "soon")],
                "GIT_IDLE_TIMEOUT_SECS",
            ),
            (vec![("TLS_CERT_PATH", "/tmp/cert.pem")], "TLS_KEY_PATH"),
            (vec![("TLS_KEY_PATH", "/tmp/key.pem")], "TLS_CERT_PATH"),
        ] {
            let e = parse(&vars).expect_err("must fail");
            assert_eq!(e.var, var, "{vars:?}: {e}");
            assert!(e.to_string().starts_with(var));
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn git_limits_and_tls() {
        let c = parse(&[]).expect("defaults");
        assert_eq!(c.git_max_pack_bytes, 2 << 30);
        assert_eq!(c.git_max_object_bytes, 512 << 20);
        assert_eq!(c.git_max_ref_updates, usize::MAX);
        assert_eq!(c.git_idle_timeout, Duration::from_secs(120));
        assert!(c.tls.is_none());
        let c = parse(&[
            ("GIT_MAX_PACK_BYTES", "1048576"),
            ("GIT_MAX_REF_UPDATES", "5"),
            ("GIT_IDLE_TIMEOUT_SECS", "7"),
            ("TLS_CERT_PATH", "/c.pem"),
            ("TLS_KEY_PATH", "/k.pem"),
        ])
        .expect("ok");
        assert_eq!(c.git_max_pack_bytes, 1 << 20);
        assert_eq!(c.git_max_ref_updates, 5);
        assert_eq!(c.git_idle_timeout, Duration::from_secs(7));
        assert_eq!(
            c.tls,
            Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem")))
        );
        assert!(
            c.public_base_url.starts_with("https://"),
            "{}",
            c.public_base_url
        );
    }

    #[test]
    fn auth0_pair_derives_issuer_and_jwks() {
        let c = parse(&[
            ("AUTH0_DOMAIN", "https://acme.auth0.com/"),
            ("AUTH0_AUDIENCE", "orbit"),
        ])
        .expect("ok");
        let a = c.auth0.expect("auth0");
        assert_eq!(a.issuer, "https://acme.auth0.com/");
        assert_eq!(
            a.jwks_url.as_str(),
            "https://acme.auth0.com/.well-known/jwks.json"
        );
    }

    #[test]
    fn cors_list_and_public_url() {
        let c = parse(&[
            ("CORS_ORIGINS", "https://a.example, http://localhost:5173"),
            ("PUBLIC_BASE_URL", "https://git.example.com/"),
        ])
        .expect("ok");
        assert_eq!(c.cors_origins.expect("origins").len(), 2);
        assert_eq!(c.public_base_url, "https://git.example.com");
    }
}
