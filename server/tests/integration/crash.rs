//! Crash tests: the `orbit` binary is SIGKILLed at seeded random moments while pushes (small,
//! large, thin, atomic multi-ref, deletes) and pull request merges are in flight, then started
//! again. After every restart: every push or merge the client saw acknowledged is there with the
//! same sha; an unacknowledged one is wholly there or wholly absent; `git fsck --strict` is clean;
//! nothing left behind blocks the next push; every acknowledged push has its audit event and
//! every acknowledged merge its merged pull request.
//!
//! `ORBIT_CRASH_KILLS` sets the number of kills (default 50), `ORBIT_CRASH_SEED` the seed.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::Auth;
use crate::pulls::{Fixture, Work};

/// Branch (or tag) → sha on the server, as the client last knew it for certain.
type Refs = BTreeMap<String, String>;

/// What one round attempted: the refs it meant to set (`None`: delete), and whether the client
/// saw it acknowledged.
struct Attempt {
    what: String,
    updates: Vec<(String, Option<String>)>,
    acked: bool,
    /// A merge: the pull request number and the merge commit the server answered.
    merge: Option<(i64, Option<String>)>,
}

async fn server_refs(w: &Work) -> Refs {
    let (ok, out, err) = w.try_run(&["ls-remote", "origin"]).await;
    assert!(ok, "ls-remote after a restart: {err}");
    out.lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, name)| !name.starts_with("refs/pull/") && *name != "HEAD")
        .map(|(sha, name)| (name.to_owned(), sha.to_owned()))
        .collect()
}

fn random_blob(rng: &mut StdRng, len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rng.fill_bytes(&mut bytes);
    // Text git will not delta against anything else: hex of random bytes.
    hex::encode(bytes)
}

/// Prepares one operation (commits in the work tree), then runs it while a timer kills the
/// server after `delay`.
async fn attempt(
    f: &Fixture,
    w: &mut Work,
    rng: &mut StdRng,
    round: usize,
    known: &Refs,
    delay: Duration,
) -> Attempt {
    let tip = |name: &str| known.get(&format!("refs/heads/{name}")).cloned();
    let kind = rng.random_range(0..6);
    // Work from the server's state for the branch touched.
    let base = |b: &str| tip(b).or_else(|| tip("main")).expect("main exists");
    let mut push_args: Vec<String> = vec!["push".into(), "-q".into(), "origin".into()];
    let mut updates = Vec::new();
    let mut merge = None;
    let what;
    match kind {
        0..=2 => {
            let (branch, file, content) = match kind {
                0 => (
                    "main",
                    format!("small/{round}.txt"),
                    format!("round {round}\n"),
                ),
                1 => ("big", format!("big/{round}.bin"), random_blob(rng, 1 << 20)),
                _ => (
                    "topic",
                    "shared.txt".to_owned(),
                    format!("{}round {round}\n", "x\n".repeat(200)),
                ),
            };
            w.run(&["checkout", "-q", "-B", branch, &base(branch)])
                .await;
            let sha = w
                .commit(
                    &[(file.as_str(), content.as_str())],
                    &format!("round {round}"),
                )
                .await;
            push_args.push(format!("HEAD:refs/heads/{branch}"));
            updates.push((format!("refs/heads/{branch}"), Some(sha)));
            what = format!("push {branch}");
        }
        3 => {
            push_args.push("--atomic".into());
            for b in ["a1", "a2"] {
                w.run(&["checkout", "-q", "-B", b, &base(b)]).await;
                let sha = w
                    .commit(
                        &[(format!("{b}.txt").as_str(), format!("{round}\n").as_str())],
                        b,
                    )
                    .await;
                push_args.push(format!("{sha}:refs/heads/{b}"));
                updates.push((format!("refs/heads/{b}"), Some(sha)));
            }
            let tag = format!("refs/tags/r{round}");
            let sha = updates[0].1.clone().expect("sha");
            push_args.push(format!("{sha}:{tag}"));
            updates.push((tag, Some(sha)));
            what = "atomic push a1 a2 tag".into();
        }
        4 => {
            let victim = known
                .keys()
                .find(|k| k.starts_with("refs/heads/") && !k.ends_with("/main"))
                .cloned();
            match victim {
                Some(v) => {
                    push_args.push(format!(":{v}"));
                    updates.push((v.clone(), None));
                    what = format!("delete {v}");
                }
                None => {
                    what = "nothing to delete".into();
                    push_args.clear();
                }
            }
        }
        _ => {
            // A pull request from a fresh branch, opened with the server alive; the merge races.
            let branch = format!("feature-{round}");
            w.run(&["checkout", "-q", "-B", &branch, &base("main")])
                .await;
            let sha = w
                .commit(&[(format!("f/{round}.txt").as_str(), "feature\n")], &branch)
                .await;
            w.run(&["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")])
                .await;
            let pr = f.open(&branch, "main", &branch).await;
            let number = pr["number"].as_i64().expect("number");
            // The branch push above was acknowledged: it is known from now on.
            updates.push((format!("refs/heads/{branch}"), Some(sha)));
            merge = Some((number, None));
            what = format!("merge #{number}");
            push_args.clear();
        }
    }
    let pid = f.srv.pid().expect("binary server");
    let killer = async move {
        tokio::time::sleep(delay).await;
        let _ = tokio::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .await;
    };
    let acked;
    if let Some(number) = merge.as_ref().map(|m| m.0) {
        let call = f
            .srv
            .client
            .post(format!(
                "{}{}",
                f.srv.base,
                f.rest(&format!("/pulls/{number}/merge"))
            ))
            .bearer_auth(&f.token)
            .json(&json!({"strategy": "merge"}))
            .send();
        let (answer, ()) = tokio::join!(call, killer);
        let answer = match answer {
            Ok(r) if r.status() == StatusCode::OK => r.json::<Value>().await.ok(),
            _ => None,
        };
        acked = answer.is_some();
        let merged = answer.and_then(|a| a["mergeCommitSha"].as_str().map(str::to_owned));
        if let Some(sha) = &merged {
            updates.push(("refs/heads/main".into(), Some(sha.clone())));
        }
        merge = Some((number, merged));
    } else if push_args.is_empty() {
        killer.await;
        acked = true;
    } else {
        let args: Vec<&str> = push_args.iter().map(String::as_str).collect();
        let ((ok, _, _), ()) = tokio::join!(w.try_run(&args), killer);
        acked = ok;
    }
    Attempt {
        what,
        updates,
        acked,
        merge,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_work_survives_sigkill_at_random_points() {
    let kills: usize = std::env::var("ORBIT_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("ORBIT_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20261206);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut f = Fixture::new("private").await;
    let mut w = Work::clone(&f.url).await;
    let first = w.commit(&[("README.md", "crash test\n")], "first").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    let mut known: Refs = [("refs/heads/main".to_owned(), first)].into();
    let mut acked_pushes: Vec<(String, String)> = Vec::new();
    let mut acked_merges: Vec<(i64, String)> = Vec::new();
    let (mut acked_count, mut lost_count) = (0, 0);

    for round in 0..kills {
        let delay = Duration::from_millis(rng.random_range(0..150));
        let a = attempt(&f, &mut w, &mut rng, round, &known, delay).await;
        f.srv.restart().await;
        let now = server_refs(&w).await;
        let ctx = format!(
            "seed {seed}, round {round} ({}, killed after {delay:?}, acked {})",
            a.what, a.acked
        );
        // Refs this round did not touch are where they were.
        let touched: Vec<&String> = a.updates.iter().map(|(r, _)| r).collect();
        for (name, sha) in &known {
            let merged_into = a.merge.is_some() && name == "refs/heads/main";
            if !touched.contains(&name) && !merged_into {
                assert_eq!(now.get(name), Some(sha), "{ctx}: {name} moved");
            }
        }
        for (name, want) in &a.updates {
            let before = known.get(name);
            let got = now.get(name);
            if a.acked {
                assert_eq!(
                    got,
                    want.as_ref(),
                    "{ctx}: acknowledged {name} is not there"
                );
            } else {
                assert!(
                    got == want.as_ref() || got == before,
                    "{ctx}: {name} is {got:?}, neither {want:?} nor {before:?}"
                );
            }
        }
        if a.acked {
            acked_count += 1;
            for (name, want) in &a.updates {
                if let (Some(sha), false) = (want, a.merge.is_some() && name == "refs/heads/main") {
                    acked_pushes.push((name.clone(), sha.clone()));
                }
            }
            if let Some((n, Some(sha))) = &a.merge {
                acked_merges.push((*n, sha.clone()));
            }
        } else {
            lost_count += 1;
        }
        // An atomic push is all or nothing, acknowledged or not.
        if a.what.starts_with("atomic") {
            let landed: Vec<bool> = a
                .updates
                .iter()
                .map(|(n, s)| now.get(n) == s.as_ref())
                .collect();
            assert!(
                landed.iter().all(|l| *l) || landed.iter().all(|l| !*l),
                "{ctx}: atomic push half applied: {landed:?}"
            );
        }
        known = now;
        // The repository on disk: strict fsck, connectivity from every ref.
        let home = tempfile::tempdir().expect("home");
        let out = crate::common::git(&f.path, home.path())
            .args(["fsck", "--strict", "--no-dangling", "--no-progress"])
            .output()
            .expect("fsck");
        assert!(
            out.status.success(),
            "{ctx}: fsck: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        w.run(&[
            "fetch",
            "-q",
            "--prune",
            "origin",
            "+refs/heads/*:refs/remotes/origin/*",
            "+refs/tags/*:refs/tags/*",
        ])
        .await;
    }

    // Nothing left behind blocks a push: one more to every branch known.
    for name in known.keys().filter(|k| k.starts_with("refs/heads/")) {
        w.run(&["checkout", "-q", "-B", "last", &known[name]]).await;
        let sha = w
            .commit(&[("last.txt", name.as_str())], "after the crashes")
            .await;
        let (ok, _, err) = w
            .try_run(&["push", "-q", "origin", &format!("HEAD:{name}")])
            .await;
        assert!(
            ok,
            "a push to {name} after the crashes failed: {err}\nknown {known:?}\nnow {:?}",
            server_refs(&w).await
        );
        acked_pushes.push((name.clone(), sha));
    }
    // The metadata store agrees: an audit event for every acknowledged push...
    let events = f
        .srv
        .get(
            &f.rest("/events?event_type=push&limit=500"),
            &Auth::Bearer(f.token.clone()),
        )
        .await;
    assert_eq!(events.status, StatusCode::OK, "{}", events.body);
    let recorded: Vec<(String, String)> = events
        .body
        .as_array()
        .expect("events")
        .iter()
        .flat_map(|e| e["payload"]["refs"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| Some((r["ref"].as_str()?.to_owned(), r["new"].as_str()?.to_owned())))
        .collect();
    for push in &acked_pushes {
        assert!(
            recorded.contains(push),
            "no push event for acknowledged {push:?}"
        );
    }
    // ...and every acknowledged merge is a merged pull request with that merge commit.
    for (n, sha) in &acked_merges {
        let pr = f.call(Method::GET, &format!("/pulls/{n}"), None).await;
        assert_eq!(pr.body["status"], "merged", "#{n}: {}", pr.body);
        assert_eq!(
            pr.body["mergeCommitSha"].as_str(),
            Some(sha.as_str()),
            "#{n}"
        );
    }
    // A fresh clone is whole.
    let fresh = Work::clone(&f.url).await;
    fresh.fsck_clean().await;
    eprintln!(
        "crash test: seed {seed}, {kills} kills, {acked_count} rounds acknowledged, {lost_count} cut off, {} pushes and {} merges checked",
        acked_pushes.len(),
        acked_merges.len()
    );
}
