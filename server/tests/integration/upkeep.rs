//! Repository upkeep under faults: a server SIGKILLed while it consolidates packs (and stale
//! files a killed process leaves: temporary packs, gix temp files, an old-style lock file, a
//! quarantine whose push died) never blocks the next upkeep, which removes them; a consolidation
//! held by another live process is never taken over, only retried; `/admin/repos/{id}` shows the
//! pack count and whether upkeep is pending.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use uuid::Uuid;

use crate::common::{Auth, Options, TestServer, INTERNAL};
use crate::pulls::Work;

fn packs(repo: &Path) -> usize {
    gitcore::storage::pack_files(repo).map_or(0, |p| p.len())
}

fn files_named(dir: &Path, pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| pred(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect()
}

/// Text that does not compress or delta well, so packs have some weight.
fn noise(seed: u64, lines: usize) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = String::with_capacity(lines * 33);
    for _ in 0..lines {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(&format!("{x:016x}{:016x}\n", x.rotate_left(29)));
    }
    out
}

struct Repo {
    srv: TestServer,
    id: String,
    path: PathBuf,
    work: Work,
}

impl Repo {
    async fn new(opts: Options) -> Self {
        let srv = TestServer::start_with(opts).await;
        let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
        let body = srv.create_repo(owner, org, "upkeep", "private").await;
        let id = body["id"].as_str().expect("id").to_owned();
        let path = srv.repo_path(&id).await;
        let hostport = srv.base.strip_prefix("http://").expect("http").to_owned();
        let url = format!("http://x:{}@{hostport}/{org}/upkeep.git", srv.token(owner));
        let work = Work::clone(&url).await;
        Repo {
            srv,
            id,
            path,
            work,
        }
    }

    async fn push_one(&mut self, i: u64, lines: usize) -> String {
        let head = self
            .work
            .commit(&[(&format!("f{}.txt", i % 5), &noise(i, lines))], "c")
            .await;
        self.work
            .run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
            .await;
        head
    }

    async fn storage(&self) -> serde_json::Value {
        let r = self
            .srv
            .get(
                &format!("/admin/repos/{}", self.id),
                &Auth::Internal(INTERNAL.into()),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["storage"].clone()
    }

    async fn wait_packs_at_most(&self, n: usize, secs: u64) {
        let start = Instant::now();
        while packs(&self.path) > n {
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "packs never came down to {n}: {} (storage: {})",
                packs(&self.path),
                self.storage().await
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn fsck_strict(&self) {
        let out = crate::common::git(&self.path, self.srv.dir.path())
            .args(["fsck", "--strict", "--no-dangling"])
            .output()
            .expect("fsck");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "fsck: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consolidation_killed_midway_never_blocks_the_next_upkeep() {
    let mut r = Repo::new(Options {
        binary: true,
        env: vec![
            ("ORBIT_JOB_LEASE_SECS".into(), "2".into()),
            ("ORBIT_JOB_POLL_MS".into(), "50".into()),
        ],
        ..Options::default()
    })
    .await;
    let pack_dir = r.path.join("objects/pack");
    for i in 0..32 {
        r.push_one(i, 6000).await;
    }
    assert_eq!(packs(&r.path), 32);
    let storage = r.storage().await;
    assert_eq!(storage["packCount"], 32);
    assert_eq!(storage["upkeepPending"], false);
    // The 33rd push queues a consolidation: kill the server as soon as it writes its pack.
    let watch = {
        let pack_dir = pack_dir.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(30) {
                if !files_named(&pack_dir, |n| n.starts_with("tmp-orbit-consolidate-")).is_empty() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            false
        })
    };
    r.push_one(32, 6000).await;
    let caught = tokio::task::spawn_blocking(move || watch.join().expect("watcher"))
        .await
        .expect("join");
    r.srv.kill();
    eprintln!(
        "killed the server {} its consolidation",
        if caught { "in the middle of" } else { "after" }
    );
    // What other killed processes leave: an old-style lock file, temporary packs, and a
    // quarantine whose push died (its lock file is held by nobody).
    std::fs::write(pack_dir.join("orbit-consolidate.lock"), b"").expect("lock file");
    std::fs::write(
        pack_dir.join("tmp-orbit-consolidate-99999.pack"),
        b"PACK half",
    )
    .expect("tmp");
    std::fs::write(pack_dir.join(".tmpAbC123"), b"half an index").expect("gix tmp");
    let dead = r.path.join("objects/incoming-deadbeef");
    std::fs::create_dir_all(dead.join("pack")).expect("quarantine");
    std::fs::write(dead.join("orbit-push.lock"), b"").expect("quarantine lock");
    std::fs::write(dead.join("pack/tmp_pack_x"), b"half a pack").expect("half pack");
    r.srv.restart().await;
    let before = packs(&r.path);
    assert!(before > 32 || !caught, "{before}");
    // The next push past the threshold consolidates and sweeps.
    let mut pushes = 33;
    let head = loop {
        let head = r.push_one(pushes, 10).await;
        pushes += 1;
        if packs(&r.path) > 32 {
            break head;
        }
    };
    r.wait_packs_at_most(2, 60).await;
    let start = Instant::now();
    while dead.exists()
        || !files_named(&pack_dir, |n| {
            n.starts_with("tmp-orbit-consolidate-") || n.starts_with(".tmp")
        })
        .is_empty()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "stale files survived the upkeep: {:?}",
            files_named(&pack_dir, |_| true)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    r.fsck_strict();
    let main = crate::common::git_out(&r.path, r.srv.dir.path(), &["rev-parse", "refs/heads/main"]);
    assert_eq!(main, head);
    let count = crate::common::git_out(&r.path, r.srv.dir.path(), &["rev-list", "--count", "main"]);
    assert_eq!(count, pushes.to_string());
    let storage = r.storage().await;
    assert_eq!(storage["upkeepPending"], false, "{storage}");
    // The upkeep job says what it did.
    let jobs = r
        .srv
        .get(
            &format!("/admin/jobs?kind=repo_upkeep&repoId={}", r.id),
            &Auth::Internal(INTERNAL.into()),
        )
        .await;
    assert!(
        jobs.body
            .as_array()
            .expect("jobs")
            .iter()
            .any(|j| j["state"] == "succeeded" && j["result"]["packsMerged"].as_u64() > Some(1)),
        "{}",
        jobs.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_consolidation_in_another_process_is_never_taken_over() {
    let mut r = Repo::new(Options {
        binary: true,
        env: vec![
            ("ORBIT_JOB_RETRY_BASE_MS".into(), "400".into()),
            ("ORBIT_JOB_POLL_MS".into(), "50".into()),
        ],
        ..Options::default()
    })
    .await;
    // This test process plays the other server, in the middle of a consolidation.
    let held = gitcore::lock::try_lock(&gitcore::storage::consolidation_lock_path(&r.path))
        .expect("lock")
        .expect("free");
    for i in 0..34 {
        r.push_one(i, 10).await;
    }
    // The server's upkeep finds the lock held: it skips, says why, and will retry.
    let start = Instant::now();
    let job = loop {
        let jobs = r
            .srv
            .send(
                Method::GET,
                &format!("/admin/jobs?kind=repo_upkeep&repoId={}", r.id),
                &Auth::Internal(INTERNAL.into()),
                None,
            )
            .await;
        if let Some(j) = jobs.body.as_array().and_then(|a| {
            a.iter().find(|j| {
                j["lastError"]
                    .as_str()
                    .is_some_and(|e| e.contains("another process"))
            })
        }) {
            break j.clone();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{}", jobs.body);
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(packs(&r.path) > 32);
    let storage = r.storage().await;
    assert_eq!(storage["upkeepPending"], true, "{storage}");
    assert!(storage["packCount"].as_u64() > Some(32), "{storage}");
    // The other process finishes: the retry consolidates.
    drop(held);
    r.wait_packs_at_most(2, 60).await;
    r.fsck_strict();
    let id = job["id"].as_str().expect("id");
    let j = r
        .srv
        .get(
            &format!("/admin/jobs/{id}"),
            &Auth::Internal(INTERNAL.into()),
        )
        .await;
    assert_eq!(j.body["state"], "succeeded", "{}", j.body);
}

/// After upkeep, a clone of every branch and tag is answered with the stored pack as it is (the
/// client sees the server say so); the clone is complete and clean. Once a push moves a branch,
/// clones take the ordinary path again, and are just as complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_after_upkeep_streams_the_stored_pack_as_it_is() {
    let mut r = Repo::new(Options {
        binary: true,
        env: vec![("ORBIT_JOB_POLL_MS".into(), "50".into())],
        ..Options::default()
    })
    .await;
    let mut head = String::new();
    for i in 0..32 {
        head = r.push_one(i, 20).await;
        if i == 0 {
            r.work.run(&["tag", "-a", "-m", "first", "v1"]).await;
            r.work
                .run(&["push", "-q", "origin", "v1", "HEAD:refs/heads/side"])
                .await;
        }
    }
    r.wait_packs_at_most(2, 60).await;
    let manifest = r.path.join("objects/pack/orbit-reuse");
    let start = Instant::now();
    // The upkeep queued by the push that made the 33rd pack records the refs as they are then.
    while !std::fs::read_to_string(&manifest).is_ok_and(|m| m.contains(&format!("tip {head}"))) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no clone pack recorded"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let url = r.work.run(&["remote", "get-url", "origin"]).await;
    let (dir, progress) = clone_with_progress(&r.work, &url, "stored", &[]).await;
    assert!(progress.contains("Reusing a stored pack"), "{progress}");
    assert_eq!(
        r.work.run_in(&dir, &["rev-parse", "origin/main"]).await,
        head
    );
    assert_eq!(
        r.work.run_in(&dir, &["rev-parse", "v1^{commit}"]).await,
        r.work.run(&["rev-parse", "v1^{commit}"]).await
    );
    assert_eq!(
        r.work
            .run_in(&dir, &["rev-list", "--count", "origin/main"])
            .await,
        r.work.run(&["rev-list", "--count", "HEAD"]).await
    );

    // A blobless clone (what agents use most): the stored commits, trees and tags; git fetches
    // the blobs of the checkout, and of older commits when asked, from the ordinary path.
    let (partial, progress) =
        clone_with_progress(&r.work, &url, "blobless", &["--filter=blob:none"]).await;
    assert!(
        progress.contains("Reusing a stored pack without its blobs"),
        "{progress}"
    );
    let listing = r
        .work
        .run_in(
            &partial,
            &["rev-list", "--objects", "--all", "--missing=print"],
        )
        .await;
    assert!(
        listing.lines().any(|l| l.starts_with('?')),
        "old blobs were left out"
    );
    assert_eq!(
        r.work.run_in(&partial, &["rev-parse", "HEAD^{tree}"]).await,
        r.work.run_in(&dir, &["rev-parse", "HEAD^{tree}"]).await
    );
    let (ok, _, err) = r
        .work
        .try_run_in(&partial, &["diff", "--quiet", "HEAD", "--"])
        .await;
    assert!(ok, "the checkout is complete: {err}");
    assert_eq!(
        r.work
            .run_in(&partial, &["log", "-p", "--format=%H", "v1"])
            .await,
        r.work
            .run_in(&dir, &["log", "-p", "--format=%H", "v1"])
            .await,
        "older blobs arrive on demand"
    );

    let head = r.push_one(99, 5).await;
    let (dir, progress) = clone_with_progress(&r.work, &url, "ordinary", &[]).await;
    assert!(!progress.contains("Reusing a stored pack"), "{progress}");
    assert_eq!(
        r.work.run_in(&dir, &["rev-parse", "origin/main"]).await,
        head
    );
    r.fsck_strict();
}

/// `git clone --progress` of `url` beside `work`'s tree: the clone's directory (checked by
/// `fsck --strict`) and what git printed.
async fn clone_with_progress(
    work: &Work,
    url: &str,
    name: &str,
    extra: &[&str],
) -> (PathBuf, String) {
    let parent = work.dir.join("..");
    let mut args = vec!["clone", "--progress"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[url, name]);
    let (ok, _, err) = work.try_run_in(&parent, &args).await;
    assert!(ok, "clone: {err}");
    let dir = parent.join(name);
    work.run_in(&dir, &["fsck", "--strict", "--no-dangling"])
        .await;
    (dir, err)
}
