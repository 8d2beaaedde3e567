//! The `orbit` binary as a new user meets it: no configuration, bad configuration, token minting,
//! and the first session with curl-like calls.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

const ORBIT: &str = env!("CARGO_BIN_EXE_orbit");

/// `orbit` with a clean environment (PATH only) in `dir`.
fn orbit(dir: &Path) -> Command {
    let mut cmd = Command::new(ORBIT);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(dir);
    cmd
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[test]
fn bad_configuration_stops_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (var, value) in [
        ("SERVER_PORT", "eighty"),
        ("DATABASE_URL", "mysql://localhost/x"),
        ("AUTH0_DOMAIN", "acme.auth0.com"),
        ("PUBLIC_BASE_URL", "::not a url"),
        ("RUST_LOG", "info,[="),
    ] {
        for sub in [
            &["serve"][..],
            &["migrate"][..],
            &[
                "token",
                "mint",
                "--sub",
                "6f7c2a57-98c5-4b4e-9a49-1f0c8e6a9d10",
            ][..],
        ] {
            let out = orbit(dir.path())
                .args(sub)
                .env(var, value)
                .output()
                .expect("run orbit");
            let stderr = String::from_utf8_lossy(&out.stderr);
            let expected_var = if var == "AUTH0_DOMAIN" {
                "AUTH0_AUDIENCE"
            } else {
                var
            };
            assert_eq!(
                out.status.code(),
                Some(2),
                "{var}={value} {sub:?}: {stderr}"
            );
            assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
            assert!(
                stderr.starts_with(&format!("error: {expected_var}:")),
                "{stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

#[test]
fn token_mint_uses_the_generated_secret_and_validates_arguments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sub = Uuid::new_v4();
    let out = orbit(dir.path())
        .args([
            "token",
            "mint",
            "--sub",
            &sub.to_string(),
            "--scope",
            "orbit:repo:x/y:read",
            "--ttl-seconds",
            "60",
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).expect("utf8");
    assert_eq!(token.trim().split('.').count(), 3);
    let secret = dir.path().join("data").join("auth-secret");
    assert!(secret.is_file(), "the secret is kept in ./data");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&secret)
                .expect("meta")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    let hs = orbit_server::auth::token::Hs256::new(
        std::fs::read_to_string(&secret)
            .expect("read")
            .trim()
            .as_bytes(),
    )
    .expect("key");
    let payload = hs
        .verify(token.trim())
        .expect("signed with the kept secret");
    let id =
        orbit_server::auth::token::identity_from_claims(&payload, std::time::SystemTime::now())
            .expect("claims");
    assert_eq!(id.user_id, sub);

    for bad in [
        &["token", "mint", "--sub", "not-a-uuid"][..],
        &["token", "mint"][..],
        &[
            "token",
            "mint",
            "--sub",
            &sub.to_string(),
            "--ttl-seconds",
            "0",
        ][..],
    ] {
        let out = orbit(dir.path()).args(bad).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
}

#[test]
fn migrate_creates_the_embedded_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = orbit(dir.path()).arg("migrate").output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("data/orbit.db").is_file());
    assert!(dir.path().join("data/repos").is_dir());
    // Idempotent.
    assert!(orbit(dir.path())
        .arg("migrate")
        .output()
        .expect("run")
        .status
        .success());
}

#[tokio::test]
async fn a_new_user_session_with_no_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("orbit.log")).expect("log");
    let child = orbit(dir.path())
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn orbit");
    let _server = Running(child);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");

    // Poll the port until /health answers.
    let start = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/health")).send().await {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "server did not come up: {}",
            std::fs::read_to_string(dir.path().join("orbit.log")).unwrap_or_default()
        );
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(dir.path().join("orbit.log")).expect("log");
    assert!(
        log.contains("token mint"),
        "startup log shows how to mint: {log}"
    );
    assert!(
        log.contains("auth-secret"),
        "startup log says where the secret is: {log}"
    );
    assert!(log.contains("INTERNAL_SERVICE_TOKEN"), "{log}");

    let user = Uuid::new_v4();
    let minted = orbit(dir.path())
        .args(["token", "mint", "--sub", &user.to_string()])
        .output()
        .expect("mint");
    assert!(minted.status.success());
    let token = String::from_utf8(minted.stdout)
        .expect("utf8")
        .trim()
        .to_owned();

    let org = Uuid::new_v4();
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut req = client
            .request(method, format!("{base}{path}"))
            .bearer_auth(&token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let r = req.send().await.expect("send");
            let status = r.status().as_u16();
            let text = r.text().await.expect("text");
            (
                status,
                if text.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(&text).expect("json")
                },
            )
        }
    };
    let (s, created) = call(
        reqwest::Method::POST,
        "/repos".into(),
        Some(json!({"orgId": org, "projectId": org, "name": "demo", "visibility": "private"})),
    )
    .await;
    assert_eq!(s, 200, "{created}");
    let (s, list) = call(reqwest::Method::GET, "/repos".into(), None).await;
    assert_eq!((s, list.as_array().map(Vec::len)), (200, Some(1)));
    let (s, got) = call(reqwest::Method::GET, format!("/repos/{org}/demo"), None).await;
    assert_eq!((s, &got["id"]), (200, &created["id"]));
    let (s, renamed) = call(
        reqwest::Method::PATCH,
        format!("/repos/{org}/demo"),
        Some(json!({"name": "demo2"})),
    )
    .await;
    assert_eq!((s, &renamed["name"]), (200, &json!("demo2")));
    let (s, archived) = call(
        reqwest::Method::POST,
        format!("/repos/{org}/demo2/archive"),
        None,
    )
    .await;
    assert_eq!((s, &archived["archived"]), (200, &json!(true)));
    let (s, _) = call(reqwest::Method::DELETE, format!("/repos/{org}/demo2"), None).await;
    assert_eq!(s, 204);
    let (s, gone) = call(reqwest::Method::GET, format!("/repos/{org}/demo2"), None).await;
    assert_eq!((s, &gone["error"]["code"]), (404, &json!("NOT_FOUND")));
    // Internal routes are closed on the embedded default.
    let r = client
        .get(format!("{base}/admin/repos"))
        .header("x-internal-token", "")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    // The repository is on disk under ./data/repos.
    let repos: Vec<_> = walk(&dir.path().join("data/repos"));
    assert!(
        repos
            .iter()
            .any(|p| p.ends_with(format!("{}.git", created["id"].as_str().expect("id")))),
        "{repos:?}"
    );
}

fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(root).expect("read").flatten() {
        for repo in std::fs::read_dir(shard.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            out.push(repo.path());
        }
    }
    out
}
