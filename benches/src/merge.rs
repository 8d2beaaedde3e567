//! The `merge` scenario: a pull request whose source is 50 commits ahead of the merge base and
//! whose target is 50 commits past it, on the corpus. Orbit's mergeability (`analyze` in memory,
//! what `GET .../mergeability` computes on a cache miss) and merge (`land` with the `merge`
//! strategy, objects written) in this process, against `git merge-tree --write-tree` as a
//! process (the same answer: the merged tree). Every sample is `OPS` operations; the report's
//! per-operation figures are the p50 over rounds.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::report::{Result as ScenarioResult, Sample};
use crate::scenarios::{git, run_git, Ctx};

/// Operations per sample.
const OPS: u64 = 5;

/// Builds the two branches in a scratch clone; answers (work dir, target, source).
fn prepare(ctx: &Ctx<'_>, home: &Path) -> anyhow::Result<(std::path::PathBuf, String, String)> {
    let work = ctx.scratch.join("merge-work");
    if !work.exists() {
        let corpus = ctx.corpus.display().to_string();
        run_git(
            &ctx.scratch,
            home,
            &[
                "clone",
                "-q",
                "--shared",
                "--no-checkout",
                &corpus,
                "merge-work",
            ],
        )?;
    }
    let target = run_git(&work, home, &["rev-parse", "origin/main"])?;
    let base = run_git(&work, home, &["rev-parse", "origin/main~50"])?;
    // 50 commits on the base: each edits one file the target side does not touch (a new one)
    // and the first adds a file at the top, so both sides change the root tree.
    let mut tip = base.clone();
    for i in 0..50 {
        let blob = hash_object(&work, home, &format!("source change {i}\n"))?;
        let index = work.join(".git/bench-merge-index");
        let env_index = [("GIT_INDEX_FILE", index.display().to_string())];
        run_env(&work, home, &["read-tree", &tip], &env_index)?;
        run_env(
            &work,
            home,
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("100644,{blob},bench-merge/file-{i}.txt"),
            ],
            &env_index,
        )?;
        let tree = run_env(&work, home, &["write-tree"], &env_index)?;
        tip = run_git(
            &work,
            home,
            &[
                "commit-tree",
                &tree,
                "-p",
                &tip,
                "-m",
                &format!("source {i}"),
            ],
        )?;
    }
    run_git(&work, home, &["update-ref", "refs/heads/source", &tip])?;
    // As on a server, where pushed commits arrive in packs.
    run_git(&work, home, &["repack", "-d", "-l", "-q"])?;
    run_git(&work, home, &["update-ref", "refs/heads/target", &target])?;
    Ok((work, target, tip))
}

fn hash_object(dir: &Path, home: &Path, content: &str) -> anyhow::Result<String> {
    use std::io::Write;
    let mut child = git(dir, home)
        .args(["hash-object", "-w", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(content.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("git hash-object failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn run_env(
    dir: &Path,
    home: &Path,
    args: &[&str],
    env: &[(&str, String)],
) -> anyhow::Result<String> {
    let mut cmd = git(dir, home);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.args(args).output()?;
    if !out.status.success() {
        bail!(
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn sample(wall: f64, cpu: f64, rss: u64) -> Sample {
    Sample {
        wall_secs: wall,
        server_cpu_secs: cpu,
        server_peak_rss_bytes: rss,
        ops: OPS,
        ..Sample::default()
    }
}

/// Runs the scenario: `merge-mergeability` and `merge-land`, both against `git merge-tree`.
pub fn run(ctx: &Ctx<'_>) -> anyhow::Result<Vec<ScenarioResult>> {
    use gitcore::merge::{self, strategy, Outcome, Strategy};
    let home = ctx.scratch.join("home");
    let (work, target, source) = prepare(ctx, &home)?;
    let repo = gitcore::storage::open(&work.join(".git"))?;
    let t = gitcore::ObjectId::from_hex(target.as_bytes())?;
    let s = gitcore::ObjectId::from_hex(source.as_bytes())?;
    let git_tree = run_git(
        &work,
        &home,
        &["merge-tree", "--write-tree", "target", "source"],
    )?;
    let git_tree_id = gitcore::ObjectId::from_hex(git_tree.as_bytes())?;
    let mut analysis = ScenarioResult {
        scenario: "merge-mergeability (50 ahead, 50 behind)".into(),
        orbit: Vec::new(),
        git: Vec::new(),
    };
    let mut warm = ScenarioResult {
        scenario: "merge-mergeability, warm object cache".into(),
        orbit: Vec::new(),
        git: Vec::new(),
    };
    let mut land = ScenarioResult {
        scenario: "merge-land (merge commit)".into(),
        orbit: Vec::new(),
        git: Vec::new(),
    };
    let me = std::process::id();
    let ident = merge::Identity {
        name: "Bench".into(),
        email: "bench@orbit.test".into(),
        time: merge::Identity::now(),
    };
    for round in 0..ctx.rounds {
        let before = crate::servers::proc_usage(me, true)?;
        let start = Instant::now();
        for _ in 0..OPS {
            let a = merge::analyze(&merge::handle(&repo, true), t, s)?;
            match a.outcome {
                Outcome::Clean { tree, .. } if tree == git_tree_id => {}
                other => bail!("mergeability differs from git merge-tree ({git_tree}): {other:?}"),
            }
        }
        let after = crate::servers::proc_usage(me, false)?;
        analysis.orbit.push(sample(
            start.elapsed().as_secs_f64(),
            after.cpu_secs - before.cpu_secs,
            after.peak_rss_bytes,
        ));

        // The same on one handle whose object cache is warm (another pull request into the same
        // target, or a poll after a push to the source, reads mostly the same trees).
        let warm_handle = merge::handle(&repo, true);
        merge::analyze(&warm_handle, t, s)?;
        let before = crate::servers::proc_usage(me, true)?;
        let start = Instant::now();
        for _ in 0..OPS {
            merge::analyze(&warm_handle, t, s)?;
        }
        let after = crate::servers::proc_usage(me, false)?;
        warm.orbit.push(sample(
            start.elapsed().as_secs_f64(),
            after.cpu_secs - before.cpu_secs,
            after.peak_rss_bytes,
        ));

        let before = crate::servers::proc_usage(me, true)?;
        let start = Instant::now();
        for _ in 0..OPS {
            let req = strategy::Request {
                strategy: Strategy::Merge,
                target: t,
                source: s,
                message: "Merge pull request #1 from source\n\nbench".into(),
                author: ident.clone(),
                committer: ident.clone(),
            };
            if merge::land(&merge::handle(&repo, false), &req)?.is_err() {
                bail!("the bench merge was refused");
            }
        }
        let after = crate::servers::proc_usage(me, false)?;
        land.orbit.push(sample(
            start.elapsed().as_secs_f64(),
            after.cpu_secs - before.cpu_secs,
            after.peak_rss_bytes,
        ));

        // git merge-tree, the same answer as a process.
        let (mut wall, mut cpu, mut rss) = (0.0, 0.0, 0);
        for _ in 0..OPS {
            let start = Instant::now();
            let child = git(&work, &home)
                .args(["merge-tree", "--write-tree", "target", "source"])
                .stdout(std::process::Stdio::null())
                .spawn()?;
            let (c, r) = crate::cgi::wait_child(child)?;
            wall += start.elapsed().as_secs_f64();
            cpu += c;
            rss = rss.max(r);
        }
        analysis.git.push(sample(wall, cpu, rss));
        warm.git.push(sample(wall, cpu, rss));
        land.git.push(sample(wall, cpu, rss));
        eprintln!(
            "orbit-bench: merge: round {} of {} done",
            round + 1,
            ctx.rounds
        );
    }
    Ok(vec![analysis, warm, land])
}
