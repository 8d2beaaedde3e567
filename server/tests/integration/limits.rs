//! Rate limits and admission control as clients see them: the headers count down, a caller past
//! its quota gets 429 with `Retry-After` (the envelope on REST, a line git prints on git routes),
//! buckets are per user and per IP, `X-Forwarded-For` counts only from trusted proxies, two
//! processes share one quota through Redis and keep serving when Redis goes away, and a burst
//! of clones on one repository either completes or is told to come back, while `/health` answers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use uuid::Uuid;

use crate::common::{Auth, Options, TestServer};
use crate::pulls::Work;

fn header(r: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    r.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn raw_get(srv_base: &str, path: &str, headers: &[(&str, String)]) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut req = client.get(format!("{srv_base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.send().await.expect("request")
}

#[tokio::test]
async fn quotas_count_down_per_caller_and_refuse_with_retry_after() {
    let srv = TestServer::start_with(Options {
        env: vec![
            ("RATE_LIMIT_REST_READ".into(), "5".into()),
            ("RATE_LIMIT_REST_WRITE".into(), "0".into()),
            ("RATE_LIMIT_GIT".into(), "3".into()),
        ],
        ..Options::default()
    })
    .await;
    let path = format!("/repos?orgId={}", Uuid::new_v4());
    // Anonymous: the bucket of 127.0.0.1.
    for left in (0..5).rev() {
        let r = srv.get(&path, &Auth::None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(
            header(&r.headers, "x-ratelimit-remaining"),
            Some(left.to_string())
        );
        assert_eq!(
            header(&r.headers, "x-ratelimit-limit").as_deref(),
            Some("5")
        );
        assert_eq!(
            header(&r.headers, "x-ratelimit-resource").as_deref(),
            Some("rest-read")
        );
        let reset: u64 = header(&r.headers, "x-ratelimit-reset")
            .and_then(|v| v.parse().ok())
            .expect("reset");
        let now = chrono::Utc::now().timestamp() as u64;
        assert!(reset >= now && reset <= now + 61, "{reset} vs {now}");
    }
    let r = srv.get(&path, &Auth::None).await;
    r.assert_error(429, "RATE_LIMITED");
    let retry: u64 = header(&r.headers, "retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=13).contains(&retry), "{retry}");
    // A spoofed X-Forwarded-For from an untrusted peer changes nothing.
    let spoofed = raw_get(
        &srv.base,
        &path,
        &[("x-forwarded-for", "198.51.100.7".into())],
    )
    .await;
    assert_eq!(spoofed.status(), StatusCode::TOO_MANY_REQUESTS);
    // Users have their own buckets; health is never limited; writes are unlimited (0).
    let alice = srv.token(Uuid::new_v4());
    let r = srv.get(&path, &Auth::Bearer(alice.clone())).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        header(&r.headers, "x-ratelimit-remaining").as_deref(),
        Some("4")
    );
    let bob = srv.token(Uuid::new_v4());
    let r = srv.get(&path, &Auth::Bearer(bob)).await;
    assert_eq!(
        header(&r.headers, "x-ratelimit-remaining").as_deref(),
        Some("4")
    );
    assert_eq!(srv.get("/health", &Auth::None).await.status, StatusCode::OK);
    let owner = Uuid::new_v4();
    let org = Uuid::new_v4();
    srv.create_repo(owner, org, "lim", "private").await;

    // Git: the third request is the last; git prints the server's line on the fourth.
    let hostport = srv.base.strip_prefix("http://").expect("http");
    let url = format!("http://x:{}@{hostport}/{org}/lim.git", srv.token(owner));
    let home = tempfile::tempdir().expect("home");
    let mut last = String::new();
    let mut ok = 0;
    for _ in 0..4 {
        let mut cmd = tokio::process::Command::from(crate::common::git(home.path(), home.path()));
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .args(["-c", "protocol.version=0", "ls-remote", &url]);
        let out = cmd.output().await.expect("git");
        if out.status.success() {
            ok += 1;
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
    }
    assert_eq!(ok, 3, "{last}");
    assert!(
        last.contains("rate limit exceeded") && last.contains("retry in"),
        "git shows why: {last}"
    );
}

#[tokio::test]
async fn forwarded_for_counts_from_trusted_proxies() {
    let srv = TestServer::start_with(Options {
        env: vec![
            ("RATE_LIMIT_REST_READ".into(), "2".into()),
            ("TRUSTED_PROXIES".into(), "127.0.0.0/8, ::1".into()),
        ],
        ..Options::default()
    })
    .await;
    let path = format!("/repos?orgId={}", Uuid::new_v4());
    for client in ["203.0.113.1", "203.0.113.2"] {
        for expect in [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
        ] {
            let r = raw_get(&srv.base, &path, &[("x-forwarded-for", client.into())]).await;
            assert_eq!(r.status(), expect, "{client}");
        }
    }
}

/// A TCP relay to Redis that can be cut, to take Redis away from running servers.
struct Relay {
    addr: std::net::SocketAddr,
    cut: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cut = Arc::new(AtomicBool::new(false));
        let c = cut.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let c = c.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    if c.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    tokio::pin!(copy);
                    loop {
                        tokio::select! {
                            _ = &mut copy => return,
                            () = tokio::time::sleep(Duration::from_millis(20)) => {
                                if c.load(Ordering::SeqCst) { return; }
                            }
                        }
                    }
                });
            }
        });
        Relay { addr, cut, task }
    }
}

#[tokio::test]
async fn two_processes_share_one_quota_through_redis_and_survive_its_loss() {
    let Some(redis) = std::env::var("ORBIT_TEST_REDIS_URL")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        eprintln!(
            "ORBIT_TEST_REDIS_URL is unset: the shared-limit test needs a Redis (CI sets it)"
        );
        return;
    };
    let target = reqwest::Url::parse(&redis).expect("redis url");
    let relay = Relay::start(format!(
        "{}:{}",
        target.host_str().expect("host"),
        target.port().unwrap_or(6379)
    ))
    .await;
    let srv = TestServer::start_with(Options {
        env: vec![
            ("RATE_LIMIT_REST_READ".into(), "10".into()),
            ("REDIS_URL".into(), format!("redis://{}", relay.addr)),
        ],
        binary: true,
        ..Options::default()
    })
    .await;
    let peer = srv.peer().await;
    let token = srv.token(Uuid::new_v4());
    let path = format!("/repos?orgId={}", Uuid::new_v4());
    let auth = [("authorization", format!("Bearer {token}"))];
    let mut accepted = 0;
    for i in 0..24 {
        let base = if i % 2 == 0 { &srv.base } else { &peer.base };
        let r = raw_get(base, &path, &auth).await;
        match r.status() {
            StatusCode::OK => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    // One quota of 10 (plus at most one refill while the test runs), not 10 per process.
    assert!((10..=11).contains(&accepted), "accepted {accepted}");

    // Redis goes away: both keep answering, on their own limits, and quickly.
    relay.cut.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fresh = srv.token(Uuid::new_v4());
    let auth = [("authorization", format!("Bearer {fresh}"))];
    for base in [&srv.base, &peer.base] {
        let started = Instant::now();
        let r = raw_get(base, &path, &auth).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(header(r.headers(), "x-ratelimit-remaining").is_some());
    }
}

#[tokio::test]
async fn a_burst_of_clones_queues_completes_or_is_told_to_retry() {
    let srv = TestServer::start_with(Options {
        env: vec![
            ("RATE_LIMIT_GIT".into(), "0".into()),
            ("GIT_MAX_CONCURRENT_PER_REPO".into(), "4".into()),
            ("GIT_MAX_QUEUE".into(), "8".into()),
            ("GIT_MAX_QUEUE_WAIT_SECS".into(), "3".into()),
        ],
        binary: true,
        ..Options::default()
    })
    .await;
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    srv.create_repo(owner, org, "storm", "public").await;
    let hostport = srv.base.strip_prefix("http://").expect("http").to_owned();
    let push = format!("http://x:{}@{hostport}/{org}/storm.git", srv.token(owner));
    let mut w = Work::clone(&push).await;
    for i in 0..40 {
        let big: String = (0..2000).map(|j| format!("line {i} {j}\n")).collect();
        w.commit(&[(&format!("f{}.txt", i % 7), &big)], "c").await;
    }
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    let url = format!("http://{hostport}/{org}/storm.git");
    let home = tempfile::tempdir().expect("home");
    let stop = Arc::new(AtomicBool::new(false));
    // /health during the storm.
    let health = {
        let base = srv.base.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let t = Instant::now();
                let r = raw_get(&base, "/health", &[]).await;
                assert_eq!(r.status(), StatusCode::OK);
                worst = worst.max(t.elapsed());
                n += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (n, worst)
        })
    };
    let mut tasks = Vec::new();
    for i in 0..64 {
        let dir = home.path().join(format!("c{i}"));
        let url = url.clone();
        let h = home.path().to_owned();
        tasks.push(tokio::spawn(async move {
            let mut cmd = tokio::process::Command::from(crate::common::git(&h, &h));
            cmd.env("GIT_TERMINAL_PROMPT", "0")
                .args(["clone", "-q", &url])
                .arg(&dir);
            let out = cmd.output().await.expect("git clone");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
                dir,
            )
        }));
    }
    let (mut done, mut refused) = (0, 0);
    let mut cloned = Vec::new();
    for t in tasks {
        let (ok, err, dir) = t.await.expect("clone task");
        if ok {
            done += 1;
            cloned.push(dir);
        } else {
            assert!(
                err.contains("the repository is busy") || err.contains("429"),
                "a clone failed for another reason: {err}"
            );
            refused += 1;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let (checks, worst) = health.await.expect("health task");
    let rss = srv.peak_rss_kib();
    eprintln!(
        "64 clones, 4 at a time per repository, queue 8: {done} completed, {refused} refused (429); \
         /health answered {checks} times, slowest {worst:?}; server peak RSS {rss:?} KiB"
    );
    assert!(
        done >= 12,
        "at least the admitted and queued clones complete: {done}"
    );
    let head = w.run(&["rev-parse", "HEAD"]).await;
    for dir in cloned.iter().take(4) {
        let out = crate::common::git(dir, home.path())
            .args(["fsck", "--strict"])
            .output()
            .expect("fsck");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = crate::common::git_out(dir, home.path(), &["rev-parse", "HEAD"]);
        assert_eq!(got, head);
    }
}

/// The pack files a clone holds, by name (a pack's name is its checksum).
fn pack_names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join(".git/objects/pack"))
        .expect("pack dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pack"))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_clones_share_one_generated_pack() {
    let srv = TestServer::start().await;
    let cache = srv
        .state
        .pack_cache
        .clone()
        .expect("the pack cache is on by default");
    let stat = |c: &gitcore::pack_cache::PackCache| {
        use std::sync::atomic::Ordering::Relaxed;
        (
            c.stats.generated.load(Relaxed),
            c.stats.hits.load(Relaxed) + c.stats.followed.load(Relaxed),
            c.stats.rejected.load(Relaxed),
        )
    };
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    srv.create_repo(owner, org, "fan", "public").await;
    let hostport = srv.base.strip_prefix("http://").expect("http").to_owned();
    let push = format!("http://x:{}@{hostport}/{org}/fan.git", srv.token(owner));
    let mut w = Work::clone(&push).await;
    // Two pushes: the first push's pack is recorded as the clone pack (it holds exactly what a
    // clone needs), the second's links into it, so clones of the new tip are generated.
    for i in 0..30 {
        let big: String = (0..500).map(|j| format!("line {i} {j}\n")).collect();
        w.commit(&[(&format!("f{}.txt", i % 4), &big)], "c").await;
        if i == 14 || i == 29 {
            w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
                .await;
        }
    }
    let url = format!("http://{hostport}/{org}/fan.git");
    let home = tempfile::tempdir().expect("home");
    let clone_all = |n: usize, tag: &'static str| {
        let url = url.clone();
        let h = home.path().to_owned();
        async move {
            let mut tasks = Vec::new();
            for i in 0..n {
                let dir = h.join(format!("{tag}{i}"));
                let (url, h) = (url.clone(), h.clone());
                tasks.push(tokio::spawn(async move {
                    let mut cmd = tokio::process::Command::from(crate::common::git(&h, &h));
                    cmd.args(["clone", "-q", &url]).arg(&dir);
                    let out = cmd.output().await.expect("clone");
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    dir
                }));
            }
            let mut dirs = Vec::new();
            for t in tasks {
                dirs.push(t.await.expect("clone task"));
            }
            dirs
        }
    };
    let dirs = clone_all(32, "a").await;
    let (generated, shared, _) = stat(&cache);
    assert_eq!(generated, 1, "32 identical clones, one generated pack");
    assert_eq!(shared, 31);
    let first = pack_names(&dirs[0]);
    for d in &dirs {
        assert_eq!(pack_names(d), first, "every clone got the same pack");
    }
    for d in dirs.iter().take(3) {
        let out = crate::common::git(d, home.path())
            .args(["fsck", "--strict"])
            .output()
            .expect("fsck");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A push changes the ref state, so the key: the next clone generates anew.
    w.commit(&[("new.txt", "new\n")], "new").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    let dirs = clone_all(1, "b").await;
    assert_eq!(stat(&cache).0, 2);
    let head = w.run(&["rev-parse", "HEAD"]).await;
    assert_eq!(
        crate::common::git_out(&dirs[0], home.path(), &["rev-parse", "HEAD"]),
        head
    );
    // A truncated entry is detected, not served, and replaced.
    let entries: Vec<std::path::PathBuf> = std::fs::read_dir(srv.dir.path().join("pack-cache"))
        .expect("cache dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .collect();
    assert!(!entries.is_empty());
    for e in &entries {
        let len = std::fs::metadata(e).expect("meta").len();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(e)
            .expect("open");
        f.set_len(len / 2).expect("truncate");
    }
    let dirs = clone_all(1, "c").await;
    let (generated, _, rejected) = stat(&cache);
    assert_eq!((generated, rejected), (3, 1));
    let out = crate::common::git(&dirs[0], home.path())
        .args(["fsck", "--strict"])
        .output()
        .expect("fsck");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
