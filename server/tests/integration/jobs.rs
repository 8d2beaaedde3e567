//! Durable jobs after pushes, as the platform and integrators see them: feed posts arrive at a
//! fake network service (a real HTTP server on 127.0.0.1) with the right refs, commits, user and
//! agent; failures retry with backoff, end `failed` in `/admin/jobs/failed` and are retried there;
//! a job whose server was SIGKILLed runs after the restart; two processes on one database deliver
//! each post once; webhooks are signed, redelivered, and retried after a timeout.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;
use uuid::Uuid;

use crate::common::{Auth, Options, TestServer, INTERNAL};
use crate::pulls::Work;

/// What the fake answers to one request.
#[derive(Debug, Clone)]
enum Answer {
    Status(u16),
    /// Waits this long, then answers 200.
    Slow(Duration),
}

/// One request the fake received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
    /// The status it was answered with (none when the caller gave up first).
    answered: Option<u16>,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json body")
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

#[derive(Default)]
struct FakeState {
    seen: Vec<Seen>,
    script: VecDeque<Answer>,
    /// Fixed answers by path (status, JSON body), not recorded as posts.
    routes: Vec<(String, u16, String)>,
}

/// A recording HTTP server: answers each request by the next scripted [`Answer`] (200 when the
/// script is empty) and keeps every request.
pub(crate) struct Fake {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<FakeState>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Fake {
    pub(crate) async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("addr")).await
    }

    async fn start_on(addr: std::net::SocketAddr) -> Self {
        let state: Arc<Mutex<FakeState>> = Arc::default();
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind fake");
        let addr = listener.local_addr().expect("addr");
        let st = state.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let st = st.clone();
                async move {
                    let fixed = st
                        .lock()
                        .expect("lock")
                        .routes
                        .iter()
                        .find(|(p, _, _)| p == uri.path())
                        .map(|(_, status, body)| (*status, body.clone()));
                    if let Some((status, body)) = fixed {
                        return (StatusCode::from_u16(status).expect("status"), body);
                    }
                    // Orgs without a GitHub integration (mirror jobs ask): not a post.
                    if uri.path().ends_with("/integrations/github") {
                        return (StatusCode::NOT_FOUND, "{}".to_owned());
                    }
                    let index = {
                        let mut s = st.lock().expect("lock");
                        s.seen.push(Seen {
                            path: uri.path().to_owned(),
                            headers,
                            body: body.to_vec(),
                            answered: None,
                        });
                        s.seen.len() - 1
                    };
                    let answer = st.lock().expect("lock").script.pop_front();
                    let status = match answer {
                        None => 200,
                        Some(Answer::Status(s)) => s,
                        Some(Answer::Slow(d)) => {
                            tokio::time::sleep(d).await;
                            200
                        }
                    };
                    st.lock().expect("lock").seen[index].answered = Some(status);
                    (
                        StatusCode::from_u16(status).expect("status"),
                        "{\"ok\":true}".to_owned(),
                    )
                }
            },
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake {
            addr,
            state,
            task: Some(task),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers `path` with `status` and `body` from now on.
    pub(crate) fn route(&self, path: &str, status: u16, body: &str) {
        let mut s = self.state.lock().expect("lock");
        s.routes.retain(|(p, _, _)| p != path);
        s.routes.push((path.to_owned(), status, body.to_owned()));
    }

    fn script(&self, answers: &[Answer]) {
        self.state
            .lock()
            .expect("lock")
            .script
            .extend(answers.iter().cloned());
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().expect("lock").seen.clone()
    }

    /// Requests answered 2xx.
    fn accepted(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.answered.is_some_and(|a| (200..300).contains(&a)))
            .collect()
    }

    /// Waits until `n` requests were accepted (or panics after `secs`).
    async fn wait_accepted(&self, n: usize, secs: u64) -> Vec<Seen> {
        let start = std::time::Instant::now();
        loop {
            let a = self.accepted();
            if a.len() >= n {
                return a;
            }
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "expected {n} accepted requests, saw {} of {} in {secs}s",
                a.len(),
                self.seen().len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn job_env(network: &str) -> Vec<(String, String)> {
    vec![
        ("AURA_NETWORK_URL".into(), network.to_owned()),
        ("ORBIT_JOB_POLL_MS".into(), "50".into()),
        ("ORBIT_JOB_RETRY_BASE_MS".into(), "40".into()),
    ]
}

struct Setup {
    srv: TestServer,
    owner: Uuid,
    org: Uuid,
    name: String,
    repo_id: String,
}

impl Setup {
    async fn new(opts: Options) -> Self {
        let srv = TestServer::start_with(opts).await;
        let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
        let name = "svc".to_owned();
        let body = srv.create_repo(owner, org, &name, "private").await;
        let repo_id = body["id"].as_str().expect("id").to_owned();
        Setup {
            srv,
            owner,
            org,
            name,
            repo_id,
        }
    }

    fn url_on(&self, base: &str) -> String {
        let token = self.srv.token(self.owner);
        let hostport = base.strip_prefix("http://").expect("http");
        format!("http://x:{token}@{hostport}/{}/{}.git", self.org, self.name)
    }

    pub(crate) fn url(&self) -> String {
        self.url_on(&self.srv.base)
    }

    async fn call(&self, method: Method, rest: &str, body: Option<Value>) -> crate::common::Resp {
        let path = format!("/repos/{}/{}{rest}", self.org, self.name);
        self.srv
            .send(
                method,
                &path,
                &Auth::Bearer(self.srv.token(self.owner)),
                body,
            )
            .await
    }

    async fn admin(&self, method: Method, path: &str) -> crate::common::Resp {
        self.srv
            .send(method, path, &Auth::Internal(INTERNAL.into()), None)
            .await
    }

    /// Polls `/admin/jobs/{id}` until `pred` holds.
    async fn wait_job(&self, id: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
        let start = std::time::Instant::now();
        loop {
            let r = self.admin(Method::GET, &format!("/admin/jobs/{id}")).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            if pred(&r.body) {
                return r.body;
            }
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "job never reached the expected state: {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn feed_jobs(&self) -> Vec<Value> {
        let r = self
            .admin(
                Method::GET,
                &format!("/admin/jobs?kind=feed_post&repoId={}", self.repo_id),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body.as_array().expect("array").clone()
    }
}

#[tokio::test]
async fn feed_posts_carry_refs_commits_user_and_agent_and_survive_errors() {
    let fake = Fake::start().await;
    let s = Setup::new(Options {
        env: job_env(&fake.url()),
        ..Options::default()
    })
    .await;
    let agent = Uuid::new_v4();
    let mut w = Work::clone(&s.url()).await;
    w.run(&[
        "config",
        "http.extraHeader",
        &format!("X-Agent-Id: {agent}"),
    ])
    .await;
    w.commit(&[("a.txt", "a\n")], "one").await;
    w.commit(&[("b.txt", "b\n")], "two").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    let posts = fake.wait_accepted(1, 20).await;
    let post = &posts[0];
    assert_eq!(post.path, "/internal/posts");
    assert_eq!(post.header("x-internal-token").as_deref(), Some(INTERNAL));
    let body = post.json();
    let main = w.run(&["rev-parse", "HEAD"]).await;
    let log: Vec<String> = w
        .run(&["rev-list", "HEAD"])
        .await
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(body["postType"], "push");
    assert_eq!(body["orgId"], s.org.to_string());
    assert_eq!(body["repoId"], s.repo_id);
    assert_eq!(body["repoName"], "svc");
    assert_eq!(body["userId"], s.owner.to_string());
    assert_eq!(body["agentId"], agent.to_string());
    assert_eq!(
        body["refs"],
        json!([{"ref": "refs/heads/main", "oldSha": "0".repeat(40), "newSha": main}])
    );
    assert_eq!(body["commitShas"], json!(log));
    assert_eq!(body["commitCount"], 2);
    assert_eq!(
        post.header("idempotency-key"),
        body["pushId"].as_str().map(str::to_owned)
    );
    // The push's audit event names the same push id.
    let events = s.call(Method::GET, "/events?event_type=push", None).await;
    assert_eq!(events.body[0]["payload"]["pushId"], body["pushId"]);

    // A branch off main with one new commit, and a tag of an old commit: only new commits count.
    w.run(&["checkout", "-q", "-b", "topic"]).await;
    let topic = w.commit(&[("c.txt", "c\n")], "three").await;
    w.run(&["tag", "v1", &log[1]]).await;
    // The service fails twice, then accepts: one post arrives after retries.
    fake.script(&[Answer::Status(500), Answer::Status(503)]);
    w.run(&["push", "-q", "origin", "topic", "v1"]).await;
    let posts = fake.wait_accepted(2, 20).await;
    let body = posts[1].json();
    assert_eq!(body["commitShas"], json!([topic]));
    assert_eq!(body["commitCount"], 1);
    let refs: BTreeSet<String> = body["refs"]
        .as_array()
        .expect("refs")
        .iter()
        .map(|r| r["ref"].as_str().expect("ref").to_owned())
        .collect();
    assert_eq!(
        refs,
        BTreeSet::from(["refs/heads/topic".to_owned(), "refs/tags/v1".to_owned()])
    );
    assert_eq!(fake.seen().len(), 4, "two failures, then the post");
    let jobs = s.feed_jobs().await;
    assert_eq!(jobs.len(), 2);
    let retried = s
        .wait_job(jobs[0]["id"].as_str().expect("id"), 10, |j| {
            j["state"] == "succeeded"
        })
        .await;
    assert_eq!(retried["attempts"], 3, "{retried}");

    // A 4xx other than 408/429 fails at once, without retries.
    fake.script(&[Answer::Status(422)]);
    w.commit(&[("d.txt", "d\n")], "four").await;
    w.run(&["push", "-q", "origin", "topic"]).await;
    let start = std::time::Instant::now();
    let failed = loop {
        let r = s
            .admin(Method::GET, "/admin/jobs/failed?kind=feed_post")
            .await;
        if let Some(j) = r.body.as_array().and_then(|a| a.first()) {
            break j.clone();
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no failed job");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(failed["attempts"], 1, "{failed}");
    assert!(
        failed["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("422")),
        "{failed}"
    );
    // A push that was refused has no job.
    let before = s.feed_jobs().await.len();
    w.run(&["reset", "-q", "--hard", "HEAD~3"]).await;
    let (ok, _, _) = w.try_run(&["push", "origin", "HEAD:refs/heads/main"]).await;
    assert!(!ok, "a non-fast-forward push is refused");
    assert_eq!(
        s.feed_jobs().await.len(),
        before,
        "a refused push queues nothing"
    );
}

#[tokio::test]
async fn a_post_that_failed_while_the_service_was_down_is_retried_by_the_admin_api() {
    // Nothing listens on this port until the service "comes back".
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let s = Setup::new(Options {
        env: job_env(&format!("http://{port}")),
        ..Options::default()
    })
    .await;
    let mut w = Work::clone(&s.url()).await;
    w.commit(&[("a.txt", "a\n")], "one").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    let start = std::time::Instant::now();
    let job = loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the job never failed"
        );
        let r = s
            .admin(Method::GET, "/admin/jobs/failed?kind=feed_post")
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        if let Some(j) = r.body.as_array().and_then(|a| a.first()) {
            break j.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let id = job["id"].as_str().expect("id").to_owned();
    assert_eq!(job["kind"], "feed_post");
    assert_eq!(job["attempts"], job["maxAttempts"], "{job}");
    assert!(
        job["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("/internal/posts")),
        "{job}"
    );
    // Without the internal token: 401 envelope.
    s.srv
        .get("/admin/jobs", &Auth::None)
        .await
        .assert_error(401, "UNAUTHORIZED");
    s.srv
        .get(
            "/admin/jobs?state=exploded",
            &Auth::Internal(INTERNAL.into()),
        )
        .await
        .assert_error(400, "VALIDATION_ERROR");
    s.admin(
        Method::POST,
        &format!("/admin/jobs/{}/retry", Uuid::new_v4()),
    )
    .await
    .assert_error(404, "NOT_FOUND");

    let fake = Fake::start_on(port).await;
    let r = s
        .admin(Method::POST, &format!("/admin/jobs/{id}/retry"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["attempts"], 0);
    let posts = fake.wait_accepted(1, 20).await;
    assert_eq!(posts[0].json()["commitCount"], 1);
    let done = s.wait_job(&id, 10, |j| j["state"] == "succeeded").await;
    assert_eq!(done["attempts"], 1);
    // Only failed jobs can be retried.
    s.admin(Method::POST, &format!("/admin/jobs/{id}/retry"))
        .await
        .assert_error(409, "CONFLICT");
    let listed = s
        .admin(Method::GET, "/admin/jobs?state=succeeded&kind=feed_post")
        .await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_job_running_when_the_server_is_killed_runs_after_the_restart() {
    let fake = Fake::start().await;
    let mut env = job_env(&fake.url());
    env.push(("ORBIT_JOB_LEASE_SECS".into(), "2".into()));
    env.push(("ORBIT_HTTP_TIMEOUT_SECS".into(), "60".into()));
    let mut s = Setup::new(Options {
        env,
        binary: true,
        ..Options::default()
    })
    .await;
    // The first post hangs: the job is running when the server dies.
    fake.script(&[Answer::Slow(Duration::from_secs(120))]);
    let mut w = Work::clone(&s.url()).await;
    w.commit(&[("a.txt", "a\n")], "one").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    let start = std::time::Instant::now();
    while fake.seen().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20), "no post started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let jobs = s.feed_jobs().await;
    assert_eq!(jobs[0]["state"], "running");
    s.srv.kill();
    s.srv.restart().await;
    let posts = fake.wait_accepted(1, 30).await;
    let keys: BTreeSet<Option<String>> = fake
        .seen()
        .iter()
        .map(|p| p.header("idempotency-key"))
        .collect();
    assert_eq!(keys.len(), 1, "every attempt carries the same push id");
    assert_eq!(
        keys.into_iter().next().flatten().as_deref(),
        posts[0].json()["pushId"].as_str()
    );
    let id = jobs[0]["id"].as_str().expect("id").to_owned();
    let done = s.wait_job(&id, 10, |j| j["state"] == "succeeded").await;
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(s.feed_jobs().await.len(), 1);
}

#[tokio::test]
async fn two_processes_on_one_database_post_each_push_once() {
    let fake = Fake::start().await;
    let s = Setup::new(Options {
        env: job_env(&fake.url()),
        binary: true,
        ..Options::default()
    })
    .await;
    let peer = s.srv.peer().await;
    let urls = [s.url(), s.url_on(&peer.base)];
    // Four clients, each on its own branch, alternating between the two processes.
    let mut tasks = Vec::new();
    for n in 0..4usize {
        let url = urls[n % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut w = Work::clone(&url).await;
            for i in 0..25 {
                w.commit(&[(&format!("f{n}.txt"), &format!("{i}\n"))], "c")
                    .await;
                w.run(&["push", "-q", "origin", &format!("HEAD:refs/heads/b{n}")])
                    .await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("pusher");
    }
    let posts = fake.wait_accepted(100, 60).await;
    // Let any duplicate show itself.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let posts_now = fake.accepted();
    assert_eq!(posts_now.len(), 100, "exactly one post per push");
    let ids: BTreeSet<String> = posts
        .iter()
        .map(|p| p.json()["pushId"].as_str().expect("pushId").to_owned())
        .collect();
    assert_eq!(ids.len(), 100);
    // Both processes ran jobs.
    let mut workers = BTreeSet::new();
    let mut offset = 0;
    loop {
        let r = s
            .admin(
                Method::GET,
                &format!("/admin/jobs?kind=feed_post&limit=500&offset={offset}"),
            )
            .await;
        let page = r.body.as_array().expect("array").clone();
        if page.is_empty() {
            break;
        }
        offset += page.len();
        for j in page {
            assert_eq!(j["state"], "succeeded", "{j}");
            if let Some(w) = j["result"]["worker"].as_str() {
                workers.insert(w.rsplit_once(':').map_or(w, |x| x.0).to_owned());
            }
        }
    }
    assert_eq!(offset, 100);
    assert_eq!(workers.len(), 2, "both processes claimed jobs: {workers:?}");
}

fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

#[tokio::test]
async fn webhooks_are_signed_redelivered_and_retried_after_a_timeout() {
    let receiver = Fake::start().await;
    let s = Setup::new(Options {
        env: vec![
            ("ORBIT_JOB_POLL_MS".into(), "50".into()),
            ("ORBIT_JOB_RETRY_BASE_MS".into(), "40".into()),
            ("ORBIT_WEBHOOK_TIMEOUT_SECS".into(), "1".into()),
        ],
        ..Options::default()
    })
    .await;
    let secret = "s3cr3t-hook-key";
    // Bad input.
    s.call(
        Method::POST,
        "/hooks",
        Some(json!({"url": "ftp://x", "events": ["push"]})),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    s.call(
        Method::POST,
        "/hooks",
        Some(json!({"url": receiver.url(), "events": ["pushes"]})),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    let created = s
        .call(
            Method::POST,
            "/hooks",
            Some(
                json!({"url": format!("{}/hook", receiver.url()), "secret": secret,
                        "events": ["push", "branch", "pull_request"]}),
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(created.body["hasSecret"], true);
    assert!(
        !created.body.to_string().contains(secret),
        "the secret is never returned"
    );
    let hook_id = created.body["id"].as_str().expect("id").to_owned();
    let listed = s.call(Method::GET, "/hooks", None).await;
    assert!(!listed.body.to_string().contains(secret));
    // A stranger sees nothing of a private repository.
    let stranger = s.srv.token(Uuid::new_v4());
    s.srv
        .get(
            &format!("/repos/{}/{}/hooks", s.org, s.name),
            &Auth::Bearer(stranger),
        )
        .await
        .assert_error(404, "NOT_FOUND");

    let mut w = Work::clone(&s.url()).await;
    let head = w.commit(&[("a.txt", "a\n")], "one").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    let got = receiver.wait_accepted(1, 20).await;
    let push = &got[0];
    assert_eq!(push.path, "/hook");
    assert_eq!(push.header("x-orbit-event").as_deref(), Some("push"));
    assert_eq!(push.header("x-orbit-hook-id"), Some(hook_id.clone()));
    let sig = push.header("x-orbit-signature-256").expect("signature");
    assert!(verify(secret, &push.body, &sig), "signature verifies");
    assert!(!verify("wrong", &push.body, &sig));
    let body = push.json();
    assert_eq!(body["event"], "push");
    assert_eq!(body["repository"]["name"], "svc");
    assert_eq!(body["sender"]["userId"], s.owner.to_string());
    assert_eq!(body["payload"]["refs"][0]["new"], head);
    let delivery_id = push.header("x-orbit-delivery").expect("delivery id");

    // A branch created over REST is a `branch` event.
    let r = s
        .call(
            Method::POST,
            "/branches",
            Some(json!({"name": "feature/x", "from": "main"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let got = receiver.wait_accepted(2, 20).await;
    assert_eq!(got[1].header("x-orbit-event").as_deref(), Some("branch"));
    assert_eq!(got[1].json()["action"], "created");

    // Redelivery sends the same body under a new delivery id.
    let r = s
        .call(
            Method::POST,
            &format!("/hooks/{hook_id}/deliveries/{delivery_id}/redeliver"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["redelivery"], true);
    let got = receiver.wait_accepted(3, 20).await;
    assert_eq!(got[2].body, push.body);
    assert_ne!(got[2].header("x-orbit-delivery"), Some(delivery_id.clone()));

    // A slow receiver: the first attempt times out, the retry succeeds.
    receiver.script(&[Answer::Slow(Duration::from_secs(3))]);
    w.commit(&[("b.txt", "b\n")], "two").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    receiver.wait_accepted(4, 30).await;
    let deliveries = s
        .call(Method::GET, &format!("/hooks/{hook_id}/deliveries"), None)
        .await;
    let newest = &deliveries.body[0];
    assert_eq!(newest["event"], "push", "{newest}");
    // The slow answer may still be in flight when the retry lands; the delivery records both.
    let start = std::time::Instant::now();
    loop {
        let d = s
            .call(Method::GET, &format!("/hooks/{hook_id}/deliveries"), None)
            .await;
        let newest = d.body[0].clone();
        if newest["state"] == "succeeded" {
            assert_eq!(newest["attempts"], 2, "{newest}");
            assert_eq!(newest["responseStatus"], 200);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{newest}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(deliveries.body.as_array().map(Vec::len), Some(4));

    // Disabled, then deleted: nothing more is sent.
    let r = s
        .call(
            Method::PATCH,
            &format!("/hooks/{hook_id}"),
            Some(json!({"active": false, "secret": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["active"], false);
    assert_eq!(r.body["hasSecret"], false);
    let r = s
        .call(Method::DELETE, &format!("/hooks/{hook_id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let seen = receiver.seen().len();
    w.commit(&[("c.txt", "c\n")], "three").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.seen().len(), seen);
    s.call(Method::GET, &format!("/hooks/{hook_id}"), None)
        .await
        .assert_error(404, "NOT_FOUND");
}
