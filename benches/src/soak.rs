//! `orbit-bench soak`: Orbit under sustained mixed load on one repository, for reliability rather
//! than ratios (C git is not involved). Two phases of `--secs` each:
//!
//! 1. `own-branches`: N pushers, each pushing commits to its own branch;
//! 2. `one-branch`: N pushers on one shared branch, each fetching, rebasing (resetting onto the
//!    new tip) and retrying when its push is rejected as a non-fast-forward;
//!
//! both with N fetchers (a fetch, and every eighth time a fresh `--filter=blob:none` clone) and
//! N/4 REST readers (branches, commits, a tree, a blob). Afterwards every acknowledged push is
//! checked: an own branch ends at its pusher's last acknowledged commit, every acknowledged commit
//! of the shared branch is an ancestor of its tip, and `git fsck --strict` passes on a full clone.
//! Reported: operations, latency p50/p99 per kind, errors (anything but a clean non-fast-forward
//! rejection), lost pushes, and the server's peak RSS per phase.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::scenarios::{git, run_git};
use crate::servers::{Orbit, Server};

/// What a phase saw.
#[derive(Default)]
struct Tally {
    latencies: std::collections::BTreeMap<&'static str, Vec<f64>>,
    errors: Vec<String>,
    rejections: usize,
    /// (branch, sha) of every acknowledged push, in order.
    acked: Vec<(String, String)>,
}

impl Tally {
    fn time(&mut self, kind: &'static str, started: Instant) {
        self.latencies
            .entry(kind)
            .or_default()
            .push(started.elapsed().as_secs_f64() * 1000.0);
    }
}

type Shared = Arc<Mutex<Tally>>;

fn lock(t: &Shared) -> std::sync::MutexGuard<'_, Tally> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One git invocation: (success, stderr).
fn git_try(dir: &Path, home: &Path, args: &[&str]) -> (bool, String) {
    match git(dir, home).args(args).output() {
        Ok(o) => (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
        Err(e) => (false, e.to_string()),
    }
}

fn pusher(
    url: &str,
    dir: PathBuf,
    home: PathBuf,
    id: usize,
    shared_branch: bool,
    stop: Arc<AtomicBool>,
    tally: Shared,
) -> anyhow::Result<()> {
    let branch = if shared_branch {
        "soak-shared".to_owned()
    } else {
        format!("soak-{id}")
    };
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        if shared_branch {
            // Start from the branch's current tip (or main before its first push).
            let (ok, _) = git_try(&dir, &home, &["fetch", "-q", "origin", &branch]);
            let base = if ok { "FETCH_HEAD" } else { "origin/main" };
            run_git(&dir, &home, &["reset", "-q", "--hard", base])?;
        }
        let file = dir.join(format!("soak/{id}/{n}.txt"));
        std::fs::create_dir_all(file.parent().context("parent")?)?;
        std::fs::write(&file, format!("pusher {id}, commit {n}\n"))?;
        run_git(&dir, &home, &["add", "-A"])?;
        run_git(
            &dir,
            &home,
            &["commit", "-q", "-m", &format!("soak {id} {n}")],
        )?;
        let sha = run_git(&dir, &home, &["rev-parse", "HEAD"])?;
        let started = Instant::now();
        let (ok, err) = git_try(
            &dir,
            &home,
            &["push", "-q", url, &format!("HEAD:refs/heads/{branch}")],
        );
        let mut t = lock(&tally);
        if ok {
            t.time("push", started);
            t.acked.push((branch.clone(), sha));
        } else if shared_branch
            && (err.contains("[rejected]") || err.contains("[remote rejected]"))
            && (err.contains("fetch first") || err.contains("non-fast-forward"))
        {
            // Refused by the client (behind the advertised tip) or by the server's
            // compare-and-swap (the tip moved between advertisement and update): both clean.
            t.rejections += 1;
        } else {
            t.errors.push(format!("push {branch}: {}", err.trim()));
        }
    }
    Ok(())
}

fn fetcher(
    url: &str,
    dir: PathBuf,
    home: PathBuf,
    scratch: PathBuf,
    stop: Arc<AtomicBool>,
    tally: Shared,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let started = Instant::now();
        let (kind, (ok, err)) = if n % 8 == 0 {
            let r = git_try(
                &scratch,
                &home,
                &["clone", "-q", "--filter=blob:none", "--no-checkout", url],
            );
            let name = url
                .rsplit('/')
                .next()
                .unwrap_or("repo")
                .trim_end_matches(".git");
            let _ = std::fs::remove_dir_all(scratch.join(name));
            ("clone --filter=blob:none", r)
        } else {
            ("fetch", git_try(&dir, &home, &["fetch", "-q", "origin"]))
        };
        let mut t = lock(&tally);
        if ok {
            t.time(kind, started);
        } else {
            t.errors.push(format!("{kind}: {}", err.trim()));
        }
    }
}

async fn rest_reader(rest: String, token: String, stop: Arc<AtomicBool>, tally: Shared) {
    let Ok(client) = reqwest::Client::builder().no_proxy().build() else {
        lock(&tally).errors.push("REST client".into());
        return;
    };
    let paths = [
        "/branches",
        "/commits?limit=20",
        "/tree/main",
        "/blob/main/README.md",
    ];
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let path = paths[n % paths.len()];
        n += 1;
        let started = Instant::now();
        let r = client
            .get(format!("{rest}{path}"))
            .bearer_auth(&token)
            .send()
            .await;
        let status = match r {
            Ok(r) => {
                let s = r.status();
                let _ = r.bytes().await;
                s.as_u16()
            }
            Err(e) => {
                lock(&tally).errors.push(format!("REST {path}: {e}"));
                continue;
            }
        };
        let mut t = lock(&tally);
        // The corpus may have no README.md: 404 is an answer, not an error.
        if status == 200 || (status == 404 && path.starts_with("/blob")) {
            t.time("REST read", started);
        } else {
            t.errors.push(format!("REST {path}: HTTP {status}"));
        }
    }
}

/// One phase; answers its report lines.
fn phase(
    orbit: &Orbit,
    url: &str,
    scratch: &Path,
    name: &str,
    shared_branch: bool,
    clients: usize,
    secs: f64,
) -> anyhow::Result<Vec<String>> {
    let home = scratch.join("home");
    std::fs::create_dir_all(&home)?;
    let dir = scratch.join(name);
    std::fs::create_dir_all(&dir)?;
    eprintln!("soak {name}: cloning {} work trees", 2 * clients);
    let mut trees = Vec::new();
    for i in 0..2 * clients {
        let t = dir.join(format!("w{i}"));
        run_git(
            &dir,
            &home,
            &[
                "clone",
                "-q",
                "--filter=blob:none",
                url,
                t.to_str().context("utf-8")?,
            ],
        )?;
        trees.push(t);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let tally: Shared = Arc::default();
    orbit.usage(true)?;
    let cpu_before = orbit.usage(false)?.cpu_secs;
    eprintln!(
        "soak {name}: {clients} pushers, {clients} fetchers, {} REST readers for {secs} s",
        clients / 4
    );
    let started = Instant::now();
    let mut handles = Vec::new();
    for (i, t) in trees.iter().enumerate() {
        let (url, t, home, stop, tally) = (
            url.to_owned(),
            t.clone(),
            home.clone(),
            stop.clone(),
            tally.clone(),
        );
        let scratch = dir.join(format!("s{i}"));
        std::fs::create_dir_all(&scratch)?;
        handles.push(std::thread::spawn(move || {
            if i < clients {
                if let Err(e) = pusher(&url, t, home, i, shared_branch, stop, tally.clone()) {
                    lock(&tally).errors.push(format!("pusher {i}: {e:#}"));
                }
            } else {
                fetcher(&url, t, home, scratch, stop, tally);
            }
        }));
    }
    let rest = orbit.rest_repo("soak").context("rest base")?;
    let token = orbit
        .auth_header()
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned))
        .context("token")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let readers: Vec<_> = (0..(clients / 4).max(1))
        .map(|_| {
            rt.spawn(rest_reader(
                rest.clone(),
                token.clone(),
                stop.clone(),
                tally.clone(),
            ))
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    rt.block_on(async {
        for r in readers {
            let _ = r.await;
        }
    });
    let wall = started.elapsed().as_secs_f64();
    let usage = orbit.usage(false)?;

    // Every acknowledged push is there.
    let check = scratch.join(format!("{name}-check"));
    run_git(
        scratch,
        &home,
        &[
            "clone",
            "-q",
            "--mirror",
            url,
            check.to_str().context("utf-8")?,
        ],
    )?;
    run_git(&check, &home, &["fsck", "--strict", "--no-dangling"])?;
    let t = lock(&tally);
    let mut lost = Vec::new();
    let mut last: std::collections::BTreeMap<&str, &str> = Default::default();
    for (branch, sha) in &t.acked {
        last.insert(branch, sha);
        let tip = run_git(
            &check,
            &home,
            &["rev-parse", &format!("refs/heads/{branch}")],
        )?;
        let (is_ancestor, _) = git_try(&check, &home, &["merge-base", "--is-ancestor", sha, &tip]);
        if !is_ancestor {
            lost.push(format!("{branch}@{sha}"));
        }
    }
    for (branch, sha) in &last {
        let tip = run_git(
            &check,
            &home,
            &["rev-parse", &format!("refs/heads/{branch}")],
        )?;
        if !shared_branch && tip != *sha {
            lost.push(format!("{branch}: tip {tip}, last acknowledged {sha}"));
        }
    }
    let mut lines = Vec::new();
    for (kind, lat) in &t.latencies {
        let mut sorted = lat.clone();
        sorted.sort_by(f64::total_cmp);
        lines.push(format!(
            "| {name} | {kind} | {} | {:.1} | {:.0} | {:.0} |",
            sorted.len(),
            sorted.len() as f64 / wall,
            percentile(&sorted, 0.5),
            percentile(&sorted, 0.99),
        ));
    }
    lines.push(format!(
        "| {name} | totals | {} acknowledged pushes, {} clean non-fast-forward rejections | errors {} | lost {} | peak RSS {:.0} MiB, CPU {:.1} s in {wall:.0} s |",
        t.acked.len(),
        t.rejections,
        t.errors.len(),
        lost.len(),
        usage.peak_rss_bytes as f64 / (1 << 20) as f64,
        usage.cpu_secs - cpu_before,
    ));
    for e in t.errors.iter().take(10) {
        lines.push(format!("  error: {e}"));
    }
    for l in lost.iter().take(10) {
        lines.push(format!("  LOST: {l}"));
    }
    if !t.errors.is_empty() || !lost.is_empty() {
        eprintln!("{}", lines.join("\n"));
        bail!(
            "soak {name}: {} errors, {} lost pushes",
            t.errors.len(),
            lost.len()
        );
    }
    Ok(lines)
}

/// `orbit-bench soak`: both phases on `corpus`, printed as a table.
pub fn run(orbit_bin: &Path, corpus: &Path, secs: f64, clients: usize) -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new().prefix("orbit-soak-").tempdir()?;
    let orbit = Orbit::start(orbit_bin, &scratch.path().join("orbit"))?;
    let url = orbit.create_repo("soak")?;
    let home = scratch.path().join("home");
    std::fs::create_dir_all(&home)?;
    run_git(
        corpus,
        &home,
        &[
            "push",
            "-q",
            &url,
            "refs/heads/*:refs/heads/*",
            "refs/tags/*:refs/tags/*",
        ],
    )?;
    let mut lines = vec![
        "| phase | operation | count | per s | p50 ms | p99 ms |".to_owned(),
        "|---|---|---|---|---|---|".to_owned(),
    ];
    for (name, shared) in [("own-branches", false), ("one-branch", true)] {
        lines.extend(phase(
            &orbit,
            &url,
            scratch.path(),
            name,
            shared,
            clients,
            secs,
        )?);
    }
    println!(
        "orbit-bench soak: {clients} pushers + {clients} fetchers + {} REST readers, {secs} s per phase, corpus {}",
        (clients / 4).max(1),
        corpus.display()
    );
    println!("{}", lines.join("\n"));
    Ok(())
}
