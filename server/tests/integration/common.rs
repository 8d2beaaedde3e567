//! The test harness: servers, tokens, a JWKS endpoint, and hermetic git.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use josekit::jwk::{Jwk, JwkSet, KeyPair};
use josekit::jws::{JwsHeader, RS256};
use josekit::jwt::{self, JwtPayload};
use orbit_server::auth::token::Hs256;
use orbit_server::config::Config;
use orbit_server::AppState;
use reqwest::{Method, StatusCode};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};
use uuid::Uuid;

/// The HS256 secret of test servers.
pub const SECRET: &str = "orbit-test-secret-0123456789abcdef0123456789";
/// The internal token of test servers.
pub const INTERNAL: &str = "orbit-test-internal-token";
/// The identity provider of test servers with RS256.
pub const DOMAIN: &str = "idp.orbit.test";
/// The audience of test servers with RS256.
pub const AUDIENCE: &str = "https://api.orbit.test";

/// How a request authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Nothing.
    None,
    /// `Authorization: Bearer <jwt>`.
    Bearer(String),
    /// `X-Internal-Token`.
    Internal(String),
    /// A raw `Authorization` value.
    Raw(String),
}

/// Options of [`TestServer::start_with`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra environment for the configuration.
    pub env: Vec<(String, String)>,
    /// Leave `INTERNAL_SERVICE_TOKEN` unset.
    pub no_internal_token: bool,
    /// Minimum time between JWKS refreshes.
    pub jwks_min_refresh: Option<Duration>,
    /// Serve with the `orbit` binary, started with a `PATH` that holds no `git`, instead of
    /// in-process. The test process still opens the same database (for `state`).
    pub binary: bool,
}

/// The directory given to a spawned server as its whole `PATH`: it exists and is empty, so
/// nothing (git least of all) can be found there.
fn empty_path_dir(dir: &Path) -> PathBuf {
    let p = dir.join("empty-bin");
    std::fs::create_dir_all(&p).expect("empty bin dir");
    p
}

/// In `Options::env` of a binary server: a file that receives its stderr (the log) instead of
/// the test's.
pub const STDERR_FILE: &str = "__ORBIT_TEST_STDERR_FILE";

/// A spawned `orbit` process, killed on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server on 127.0.0.1 with its own data directory and database.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub dir: tempfile::TempDir,
    hs: Hs256,
    task: Option<tokio::task::JoinHandle<()>>,
    child: Option<Child>,
    /// The environment of a spawned server (binary mode), to restart it or start peers.
    env: HashMap<String, String>,
    stop_workers: Arc<tokio::sync::Notify>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
        self.stop_workers.notify_waiters();
    }
}

/// Another `orbit` process on the same database and storage root as a [`TestServer`].
pub struct Peer {
    pub base: String,
    _child: Child,
}

fn spawn_orbit(dir: &Path, env: &HashMap<String, String>, port: u16) -> Child {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_orbit"));
    cmd.arg("serve")
        .env_clear()
        .env("PATH", empty_path_dir(dir))
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", port.to_string())
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    for (k, v) in env {
        if k == STDERR_FILE {
            // Not configuration: where the test wants the server's log.
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(v)
                .expect("log file");
            cmd.stderr(file);
        } else {
            cmd.env(k, v);
        }
    }
    Child(cmd.spawn().expect("spawn orbit"))
}

async fn wait_for_health(client: &reqwest::Client, base: &str) {
    let start = std::time::Instant::now();
    while client.get(format!("{base}/health")).send().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "orbit did not start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A fresh database: a new PostgreSQL database when `ORBIT_TEST_DATABASE_URL` is set, else
/// SQLite in `dir`.
pub async fn fresh_database_url(dir: &Path) -> String {
    match std::env::var("ORBIT_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
    {
        Some(admin) => {
            let name = format!("orbit_test_{}", Uuid::new_v4().simple());
            let conn = sea_orm::Database::connect(admin.as_str())
                .await
                .expect("connect to ORBIT_TEST_DATABASE_URL");
            conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create test database");
            let _ = conn.close().await;
            let mut url = reqwest::Url::parse(&admin).expect("ORBIT_TEST_DATABASE_URL is a URL");
            url.set_path(&format!("/{name}"));
            url.to_string()
        }
        None => orbit_server::config::sqlite_url(&dir.join("orbit.db")),
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// The `orbit` binary with no `git` reachable on its `PATH`.
    pub async fn start_binary() -> Self {
        Self::start_with(Options {
            binary: true,
            ..Options::default()
        })
        .await
    }

    pub async fn start_with(opts: Options) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut env: HashMap<String, String> = HashMap::new();
        env.insert("ORBIT_DATA_DIR".into(), dir.path().display().to_string());
        env.insert("DATABASE_URL".into(), fresh_database_url(dir.path()).await);
        env.insert("AUTH_COOKIE_SECRET".into(), SECRET.into());
        if !opts.no_internal_token {
            env.insert("INTERNAL_SERVICE_TOKEN".into(), INTERNAL.into());
        }
        env.insert("RUST_LOG".into(), "warn".into());
        // Tests drive one caller hard; quotas are off unless a test sets its own (limits.rs).
        for var in [
            "RATE_LIMIT_REST_READ",
            "RATE_LIMIT_REST_WRITE",
            "RATE_LIMIT_GIT",
        ] {
            env.insert(var.into(), "0".into());
        }
        for (k, v) in &opts.env {
            env.insert(k.clone(), v.clone());
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        env.insert("PUBLIC_BASE_URL".into(), format!("http://{addr}"));
        let mut config = Config::from_lookup(|k| env.get(k).cloned()).expect("test config");
        if let Some(d) = opts.jwks_min_refresh {
            config.jwks_refresh_min_interval = d;
        }
        config.jwks_fetch_timeout = Duration::from_secs(2);
        let (state, _) = orbit_server::startup::prepare(config)
            .await
            .expect("startup");
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let base = format!("http://{addr}");
        let stop_workers = Arc::new(tokio::sync::Notify::new());
        let (task, child) = if opts.binary {
            drop(listener);
            let child = spawn_orbit(dir.path(), &env, addr.port());
            wait_for_health(&client, &base).await;
            (None, Some(child))
        } else {
            orbit_server::jobs::spawn_workers(&state, stop_workers.clone());
            let app = orbit_server::app(state.clone());
            let task = tokio::spawn(async move {
                let _ = axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<orbit_server::limits::Peer>(),
                )
                .await;
            });
            (Some(task), None)
        };
        TestServer {
            base,
            client,
            state,
            dir,
            hs: Hs256::new(SECRET.as_bytes()).expect("hs256"),
            task,
            child,
            env,
            stop_workers,
        }
    }

    /// The spawned server's peak resident memory (VmHWM), in KiB (binary mode, Linux).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.0.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Kills the spawned server with SIGKILL (binary mode), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.0.kill();
            let _ = c.0.wait();
        }
    }

    /// The process id of the spawned server (binary mode), to SIGKILL it from another task.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.0.id())
    }

    /// Starts the spawned server again on the same port, data directory and database.
    pub async fn restart(&mut self) {
        self.kill();
        let port: u16 = self
            .base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        self.child = Some(spawn_orbit(self.dir.path(), &self.env, port));
        wait_for_health(&self.client, &self.base).await;
    }

    /// Starts a second `orbit` process on the same database and storage root (binary mode).
    pub async fn peer(&self) -> Peer {
        let port = free_port();
        let mut env = self.env.clone();
        env.insert("PUBLIC_BASE_URL".into(), format!("http://127.0.0.1:{port}"));
        let child = spawn_orbit(self.dir.path(), &env, port);
        let base = format!("http://127.0.0.1:{port}");
        wait_for_health(&self.client, &base).await;
        Peer {
            base,
            _child: child,
        }
    }

    /// An HS256 token for `user` with full rights.
    pub fn token(&self, user: Uuid) -> String {
        self.hs
            .mint(user, None, Duration::from_secs(600))
            .expect("mint")
    }

    /// An HS256 token for `user` restricted by `scope`.
    pub fn scoped(&self, user: Uuid, scope: &str) -> String {
        self.hs
            .mint(user, Some(scope), Duration::from_secs(600))
            .expect("mint")
    }

    /// Sends a request; returns the status, headers and the JSON body (or `Value::Null`).
    pub async fn send(&self, method: Method, path: &str, auth: &Auth, body: Option<Value>) -> Resp {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        req = match auth {
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Internal(t) => req.header("x-internal-token", t),
            Auth::Raw(v) => req.header("authorization", v),
        };
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::read(req.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str, auth: &Auth) -> Resp {
        self.send(Method::GET, path, auth, None).await
    }

    /// Creates a repository as `owner` and returns its JSON.
    pub async fn create_repo(&self, owner: Uuid, org: Uuid, name: &str, visibility: &str) -> Value {
        let r = self
            .send(
                Method::POST,
                "/repos",
                &Auth::Bearer(self.token(owner)),
                Some(
                    json!({"orgId": org, "projectId": org, "name": name, "visibility": visibility}),
                ),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "create {name}: {}", r.body);
        r.body
    }

    /// Gives `user` `role` on `org/name`, as `owner`.
    pub async fn add_collaborator(
        &self,
        owner: Uuid,
        org: Uuid,
        name: &str,
        user: Uuid,
        role: &str,
    ) {
        let r = self
            .send(
                Method::PUT,
                &format!("/repos/{org}/{name}/collaborators/{user}"),
                &Auth::Bearer(self.token(owner)),
                Some(json!({ "role": role })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "add collaborator: {}", r.body);
    }

    /// The on-disk path of a repository, from the admin API.
    pub async fn repo_path(&self, id: &str) -> PathBuf {
        let r = self
            .get(
                &format!("/admin/repos/{id}"),
                &Auth::Internal(INTERNAL.into()),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        self.state
            .config
            .storage_root
            .join(r.body["storagePath"].as_str().expect("storagePath"))
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    async fn read(r: reqwest::Response) -> Self {
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "{status}: body is not JSON: {:?}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    /// Asserts the error envelope with `status` and `code`.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["error"]["code"], code, "body: {}", self.body);
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        assert!(self.body["error"].get("details").is_some(), "{}", self.body);
    }
}

/// An RSA signing key published in a [`JwksServer`].
pub struct RsaKey {
    pub kid: String,
    signer: josekit::jws::alg::rsassa::RsassaJwsSigner,
    pub public: Jwk,
}

impl RsaKey {
    pub fn generate(kid: &str) -> Self {
        let pair = RS256.generate_key_pair(2048).expect("rsa keygen");
        let mut public = pair.to_jwk_public_key();
        public.set_key_id(kid);
        public.set_algorithm("RS256");
        public.set_key_use("sig");
        let mut private = pair.to_jwk_private_key();
        private.set_key_id(kid);
        Self {
            kid: kid.to_owned(),
            signer: RS256.signer_from_jwk(&private).expect("signer"),
            public,
        }
    }

    /// Signs `claims` with this key, `kid` in the header (when `with_kid`).
    pub fn sign(&self, claims: Value, with_kid: bool) -> String {
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        if with_kid {
            header.set_key_id(&self.kid);
        }
        let map = claims.as_object().expect("claims object").clone();
        let payload = JwtPayload::from_map(map).expect("payload");
        jwt::encode_with_signer(&payload, &header, &self.signer).expect("sign")
    }
}

/// Standard valid RS256 claims for `user`.
pub fn rs_claims(user: Uuid) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": user.to_string(), "aud": [AUDIENCE, "other"], "iss": format!("https://{DOMAIN}/"),
           "iat": now, "exp": now + 600})
}

/// A JWKS endpoint on 127.0.0.1 whose keys can change, counting fetches.
pub struct JwksServer {
    pub url: String,
    keys: Arc<Mutex<Vec<Jwk>>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    pub async fn start(keys: Vec<Jwk>) -> Self {
        let keys = Arc::new(Mutex::new(keys));
        let hits = Arc::new(AtomicUsize::new(0));
        let (k, h) = (keys.clone(), hits.clone());
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let (k, h) = (k.clone(), h.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    let mut set = JwkSet::new();
                    for jwk in k.lock().expect("lock").iter() {
                        set.push_key(jwk.clone());
                    }
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        set.to_string(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        JwksServer {
            url: format!("http://{addr}/.well-known/jwks.json"),
            keys,
            hits,
            task,
        }
    }

    pub fn set_keys(&self, keys: Vec<Jwk>) {
        *self.keys.lock().expect("lock") = keys;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Environment for a server that trusts this endpoint.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AUTH0_DOMAIN".into(), DOMAIN.into()),
            ("AUTH0_AUDIENCE".into(), AUDIENCE.into()),
            ("AUTH_JWKS_URL".into(), self.url.clone()),
        ]
    }
}

/// A hermetic git command (no user or system config), for inspecting what the server stored.
pub fn git(dir: &Path, home: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new("git");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("LC_ALL", "C")
        .current_dir(dir);
    cmd
}

/// Runs a git command and returns its trimmed stdout; panics with stderr on failure.
pub fn git_out(dir: &Path, home: &Path, args: &[&str]) -> String {
    let out = git(dir, home).args(args).output().expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The HTTP methods an OpenAPI path item may hold operations for (those Orbit uses).
pub const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The `{name}`s of an OpenAPI path template.
pub fn template_names(path: &str) -> Vec<String> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(n, _)| n.to_owned()))
        .collect()
}
