//! Push mirrors, natively: after every push the `push_mirror` job makes the org's "GitHub" remote
//! equal to the repository (creates, fast-forwards, force-pushes, tags, deletes). The remote is a
//! second Orbit server in one test and C git's `git http-backend` (as CGI, the way the benchmark
//! runs it) in the other; afterwards the remote's branches and tags equal ours exactly and
//! `git fsck --strict` is clean there. A remote that refuses (bad token, the current branch) fails
//! the job with its reason.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{git, git_out, Auth, Options, TestServer, INTERNAL};
use crate::jobs::Fake;
use crate::pulls::Work;

/// `git http-backend` behind a small CGI bridge, serving bare repositories under `root`.
struct HttpBackend {
    base: String,
    root: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpBackend {
    async fn start() -> Self {
        let root = tempfile::tempdir().expect("root");
        let project_root = root.path().to_owned();
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: axum::http::HeaderMap,
                  body: axum::body::Bytes| {
                let project_root = project_root.clone();
                async move {
                    let mut cmd = tokio::process::Command::new("git");
                    cmd.arg("http-backend")
                        .env_clear()
                        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                        .env("GIT_CONFIG_NOSYSTEM", "1")
                        .env("GIT_CONFIG_GLOBAL", "/dev/null")
                        .env("GIT_PROJECT_ROOT", &project_root)
                        .env("GIT_HTTP_EXPORT_ALL", "1")
                        .env("REMOTE_USER", "mirror")
                        .env("REQUEST_METHOD", method.as_str())
                        .env("PATH_INFO", uri.path())
                        .env("QUERY_STRING", uri.query().unwrap_or(""))
                        .env("CONTENT_LENGTH", body.len().to_string())
                        .stdin(std::process::Stdio::piped())
                        .stdout(std::process::Stdio::piped());
                    if let Some(ct) = headers.get("content-type").and_then(|v| v.to_str().ok()) {
                        cmd.env("CONTENT_TYPE", ct);
                    }
                    let mut child = cmd.spawn().expect("git http-backend");
                    let mut stdin = child.stdin.take().expect("stdin");
                    let writer = tokio::spawn(async move {
                        use tokio::io::AsyncWriteExt;
                        let _ = stdin.write_all(&body).await;
                    });
                    let out = child.wait_with_output().await.expect("cgi");
                    let _ = writer.await;
                    let split = out
                        .stdout
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map(|i| (i, 4))
                        .or_else(|| {
                            out.stdout
                                .windows(2)
                                .position(|w| w == b"\n\n")
                                .map(|i| (i, 2))
                        })
                        .expect("CGI headers");
                    let head = String::from_utf8_lossy(&out.stdout[..split.0]).into_owned();
                    let mut resp = axum::http::Response::builder();
                    let mut status = 200;
                    for line in head.lines() {
                        let Some((k, v)) = line.split_once(':') else {
                            continue;
                        };
                        if k.eq_ignore_ascii_case("status") {
                            status = v.trim()[..3].parse().unwrap_or(500);
                        } else {
                            resp = resp.header(k.trim(), v.trim());
                        }
                    }
                    resp.status(status)
                        .body(axum::body::Body::from(
                            out.stdout[split.0 + split.1..].to_vec(),
                        ))
                        .expect("response")
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HttpBackend {
            base: format!("http://{addr}"),
            root,
            task,
        }
    }

    /// An empty bare repository `owner/name.git` that accepts pushes.
    fn bare(&self, owner: &str, name: &str) -> PathBuf {
        let dir = self.root.path().join(owner).join(format!("{name}.git"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        git_out(
            &dir,
            self.root.path(),
            &["init", "-q", "--bare", "-b", "main"],
        );
        git_out(
            &dir,
            self.root.path(),
            &["config", "http.receivepack", "true"],
        );
        dir
    }
}

/// Branches and tags of the repository at `dir`, as `<sha> <ref>` lines.
fn refs_of(dir: &Path) -> String {
    git_out(
        dir,
        dir,
        &[
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            "refs/heads",
            "refs/tags",
        ],
    )
}

fn fsck_strict(dir: &Path) {
    let out = git(dir, dir)
        .args(["fsck", "--strict", "--no-dangling"])
        .output()
        .expect("fsck");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "fsck on the mirror: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A source server whose org mirrors to `github` with `token` as `owner`.
struct Source {
    srv: TestServer,
    fake: Fake,
    org: Uuid,
    owner: Uuid,
    repo_id: String,
    path: PathBuf,
    url: String,
}

impl Source {
    async fn start(github: &str, repos: &[(&str, &str)]) -> Vec<(Self, String)> {
        let mut out = Vec::new();
        for (name, default_branch) in repos {
            let fake = Fake::start().await;
            let srv = TestServer::start_with(Options {
                env: vec![
                    ("AURA_NETWORK_URL".into(), fake.url()),
                    ("GITHUB_BASE_URL".into(), github.to_owned()),
                    ("ORBIT_JOB_POLL_MS".into(), "50".into()),
                    ("ORBIT_JOB_RETRY_BASE_MS".into(), "40".into()),
                ],
                ..Options::default()
            })
            .await;
            let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
            let r = srv
                .send(
                    Method::POST,
                    "/repos",
                    &Auth::Bearer(srv.token(owner)),
                    Some(json!({"orgId": org, "projectId": org, "name": name,
                                "visibility": "private", "defaultBranch": default_branch})),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            let repo_id = r.body["id"].as_str().expect("id").to_owned();
            let path = srv.repo_path(&repo_id).await;
            let hostport = srv.base.strip_prefix("http://").expect("http").to_owned();
            let url = format!("http://x:{}@{hostport}/{org}/{name}.git", srv.token(owner));
            out.push((
                Source {
                    srv,
                    fake,
                    org,
                    owner,
                    repo_id,
                    path,
                    url,
                },
                (*name).to_owned(),
            ));
        }
        out
    }

    fn integrate(&self, owner: &str, token: &str) {
        self.fake.route(
            &format!("/internal/orgs/{}/integrations/github", self.org),
            200,
            &json!({"owner": owner, "token": token}).to_string(),
        );
    }

    /// Waits until no mirror job of the repository is queued or running; answers the newest.
    async fn settle(&self) -> Value {
        let start = Instant::now();
        loop {
            let r = self
                .srv
                .get(
                    &format!("/admin/jobs?kind=push_mirror&repoId={}", self.repo_id),
                    &Auth::Internal(INTERNAL.into()),
                )
                .await;
            let jobs = r.body.as_array().expect("jobs").clone();
            if !jobs.is_empty()
                && jobs
                    .iter()
                    .all(|j| j["state"] == "succeeded" || j["state"] == "failed")
            {
                return jobs[0].clone();
            }
            assert!(start.elapsed() < Duration::from_secs(30), "{}", r.body);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// New branch, tag, fast-forward, force-push, delete: after each push the mirror equals us.
async fn sequence(src: &Source, mirror_dir: &Path) {
    let mut w = Work::clone(&src.url).await;
    let check = |what: &'static str| async move {
        let job = src.settle().await;
        assert_eq!(job["state"], "succeeded", "{what}: {job}");
        assert_eq!(refs_of(&src.path), refs_of(mirror_dir), "{what}: {job}");
        fsck_strict(mirror_dir);
        job
    };
    w.commit(&[("a.txt", "a\n")], "one").await;
    w.commit(&[("b.txt", "b\n")], "two").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    let job = check("a new branch").await;
    assert_eq!(job["result"]["refs"][0]["status"], "ok", "{job}");
    w.run(&["tag", "-a", "v1", "-m", "release 1"]).await;
    w.run(&["checkout", "-q", "-b", "topic"]).await;
    w.commit(&[("t.txt", "t1\n")], "topic 1").await;
    w.run(&["push", "-q", "origin", "v1", "topic"]).await;
    check("an annotated tag and a second branch").await;
    w.run(&["checkout", "-q", "main"]).await;
    w.commit(&[("a.txt", "a2\n")], "three").await;
    w.run(&["push", "-q", "origin", "main"]).await;
    check("a fast-forward").await;
    w.run(&["checkout", "-q", "topic"]).await;
    w.run(&["reset", "-q", "--hard", "HEAD~1"]).await;
    w.commit(&[("t.txt", "rewritten\n")], "topic rewritten")
        .await;
    w.run(&["push", "-q", "-f", "origin", "topic"]).await;
    check("a force-push").await;
    w.run(&["tag", "v2", "main"]).await;
    w.run(&["push", "-q", "origin", "--delete", "topic"]).await;
    w.run(&["push", "-q", "origin", "v2"]).await;
    let job = check("a delete and a lightweight tag").await;
    assert!(!refs_of(mirror_dir).contains("refs/heads/topic"));
    assert!(job["result"]["remote"].as_str().is_some(), "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_mirrored_to_git_http_backend() {
    let backend = HttpBackend::start().await;
    let sources = Source::start(&backend.base, &[("svc", "main")]).await;
    let (src, name) = &sources[0];
    let mirror = backend.bare("acme", name);
    src.integrate("acme", "any-token");
    sequence(src, &mirror).await;
    let _ = src.owner;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_mirrored_to_another_orbit_which_may_refuse() {
    let target = TestServer::start().await;
    let (tgt_owner, tgt_org) = (Uuid::new_v4(), Uuid::new_v4());
    let sources = Source::start(
        &target.base,
        &[("svc", "main"), ("other", "trunk"), ("badtoken", "main")],
    )
    .await;
    let tgt_token = target.token(tgt_owner);
    let mut mirrors = Vec::new();
    for (_, name) in &sources {
        let body = target
            .create_repo(tgt_owner, tgt_org, name, "private")
            .await;
        mirrors.push(target.repo_path(body["id"].as_str().expect("id")).await);
    }
    // Branches, tags, force-pushes and deletes, mirrored to the second Orbit.
    let (src, _) = &sources[0];
    src.integrate(&tgt_org.to_string(), &tgt_token);
    sequence(src, &mirrors[0]).await;

    // A ref the remote refuses fails the job with the remote's reason: here the mirror's
    // current branch (`main` there) is deleted here (where the default branch is `trunk`).
    let (src, _) = &sources[1];
    src.integrate(&tgt_org.to_string(), &tgt_token);
    let mut w = Work::clone(&src.url).await;
    w.commit(&[("a.txt", "a\n")], "one").await;
    w.run(&[
        "push",
        "-q",
        "origin",
        "HEAD:refs/heads/trunk",
        "HEAD:refs/heads/main",
    ])
    .await;
    let job = src.settle().await;
    assert_eq!(job["state"], "succeeded", "{job}");
    w.run(&["push", "-q", "origin", "--delete", "main"]).await;
    let job = src.settle().await;
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["lastError"].as_str().expect("lastError");
    assert!(
        error.contains("refs/heads/main")
            && error.contains("refusing to delete the current branch"),
        "{error}"
    );
    assert_eq!(job["attempts"], 1, "a refusal is not retried: {job}");

    // A bad token: the remote's 401 fails the job at once, with the status in lastError.
    let (src, _) = &sources[2];
    src.integrate(&tgt_org.to_string(), "not-a-token");
    let mut w = Work::clone(&src.url).await;
    w.commit(&[("a.txt", "a\n")], "one").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    let job = src.settle().await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["lastError"].as_str().is_some_and(|e| e.contains("401")),
        "{job}"
    );
    assert_eq!(refs_of(&mirrors[2]), "", "nothing reached the mirror");
}
