//! Native TLS: the `orbit` binary (no `git` on its `PATH`) serving HTTPS with a self-signed
//! certificate, used by the stock git client through `GIT_SSL_CAINFO`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use crate::common::{git, SECRET};

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost, made in Rust (rcgen): the tests need
/// no `openssl` CLI.
fn self_signed(dir: &Path) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("generate a self-signed certificate");
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).expect("write cert");
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).expect("write key");
}

fn run_git(dir: &Path, home: &Path, ca: &Path, args: &[&str]) -> (bool, String) {
    let out = git(dir, home)
        .env("GIT_SSL_CAINFO", ca)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "T")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "T")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .stdin(Stdio::null())
        .args(args)
        .output()
        .expect("run git");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_clone_and_push_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    self_signed(dir.path());
    let empty = dir.path().join("empty-bin");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let db = crate::common::fresh_database_url(dir.path()).await;
    let child = Command::new(env!("CARGO_BIN_EXE_orbit"))
        .env_clear()
        .env("PATH", &empty)
        .env("ORBIT_DATA_DIR", dir.path().join("data"))
        .env("DATABASE_URL", db)
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", port.to_string())
        .env("AUTH_COOKIE_SECRET", SECRET)
        .env("TLS_CERT_PATH", dir.path().join("cert.pem"))
        .env("TLS_KEY_PATH", dir.path().join("key.pem"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn orbit");
    let _server = Killed(child);

    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("cert.pem")).expect("cert"))
            .expect("pem");
    let client = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(ca)
        .build()
        .expect("client");
    let base = format!("https://127.0.0.1:{port}");
    let start = Instant::now();
    loop {
        match client.get(format!("{base}/health")).send().await {
            Ok(r) if r.status() == 200 => break,
            _ => {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "orbit did not start with TLS"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    // Plain HTTP on the TLS port is not served.
    let plain = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    assert!(plain
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .is_err());

    let user = Uuid::new_v4();
    let org = Uuid::new_v4();
    let token = orbit_server::auth::token::Hs256::new(SECRET.as_bytes())
        .expect("key")
        .mint(user, None, Duration::from_secs(600))
        .expect("mint");
    let r = client
        .post(format!("{base}/repos"))
        .bearer_auth(&token)
        .json(&json!({"orgId": org, "projectId": org, "name": "secure", "visibility": "private"}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 200);
    let repo: serde_json::Value = r.json().await.expect("json");
    assert!(
        repo["cloneUrl"]
            .as_str()
            .expect("cloneUrl")
            .starts_with("https://"),
        "{repo}"
    );

    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let ca_path = dir.path().join("cert.pem");
    let url = format!("https://x-token:{token}@127.0.0.1:{port}/{org}/secure.git");
    let work = dir.path().to_path_buf();
    let (ok, out) = tokio::task::spawn_blocking({
        let (work, home, ca_path, url) = (work.clone(), home.clone(), ca_path.clone(), url.clone());
        move || {
            let (ok, out) = run_git(&work, &home, &ca_path, &["clone", &url, "one"]);
            if !ok {
                return (ok, out);
            }
            let one = work.join("one");
            std::fs::write(one.join("README"), "over TLS\n").expect("write");
            for args in [
                &["add", "README"][..],
                &["commit", "-m", "tls"][..],
                &["push", "origin", "HEAD:main"][..],
            ] {
                let (ok, out) = run_git(&one, &home, &ca_path, args);
                if !ok {
                    return (ok, out);
                }
            }
            run_git(
                &work,
                &home,
                &ca_path,
                &["-c", "protocol.version=2", "clone", &url, "two"],
            )
        }
    })
    .await
    .expect("join");
    assert!(ok, "{out}");
    assert_eq!(
        std::fs::read_to_string(work.join("two/README")).expect("cloned file"),
        "over TLS\n"
    );

    // Without the CA, git refuses the certificate.
    let (ok, out) = tokio::task::spawn_blocking(move || {
        let out = git(&work, &home)
            .env("GIT_TERMINAL_PROMPT", "0")
            .args(["ls-remote", &url])
            .output()
            .expect("git");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("join");
    assert!(!ok);
    assert!(out.to_lowercase().contains("certificate"), "{out}");
}
