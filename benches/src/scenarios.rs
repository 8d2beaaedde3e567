//! The scenarios, each run on both servers, alternating (A B A B...).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::report::{Result as ScenarioResult, Sample};
use crate::servers::Server;

/// Everything scenarios share.
pub struct Ctx<'a> {
    /// The corpus (bare).
    pub corpus: PathBuf,
    /// Scratch space.
    pub scratch: PathBuf,
    /// The two servers, Orbit first.
    pub servers: [&'a dyn Server; 2],
    /// Rounds per scenario.
    pub rounds: usize,
    /// Seconds per concurrency level in the load scenario.
    pub load_secs: f64,
    /// Clone URL of the repository holding the corpus, per server.
    pub corpus_urls: [String; 2],
    /// Base URL path of that repository (`/{org}/{name}.git` or `/{name}.git`), per server.
    pub corpus_paths: [String; 2],
}

/// A hermetic git client command.
pub fn git(dir: &Path, home: &Path) -> Command {
    let mut c = Command::new("git");
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@orbit.test")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@orbit.test")
        .env("LC_ALL", "C")
        .current_dir(dir)
        .stdin(Stdio::null());
    c
}

/// Runs git, failing with its stderr.
pub fn run_git(dir: &Path, home: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = git(dir, home).args(args).output()?;
    if !out.status.success() {
        bail!(
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn measure(
    server: &dyn Server,
    f: impl FnOnce() -> anyhow::Result<Sample>,
) -> anyhow::Result<Sample> {
    let before = server.usage(true)?;
    let start = Instant::now();
    let mut sample = f()?;
    let wall = start.elapsed().as_secs_f64();
    // Let the server finish accounting for the last request (CGI children are reaped after the
    // response ends).
    std::thread::sleep(Duration::from_millis(50));
    let after = server.usage(false)?;
    if sample.wall_secs == 0.0 {
        sample.wall_secs = wall;
    }
    sample.server_cpu_secs = (after.cpu_secs - before.cpu_secs).max(0.0);
    sample.server_peak_rss_bytes = after.peak_rss_bytes;
    if sample.ops == 0 {
        sample.ops = 1;
    }
    Ok(sample)
}

/// Runs `each(server_index, round)` for every round on both servers, alternating.
fn alternate(
    ctx: &Ctx<'_>,
    name: &str,
    each: impl FnMut(usize, usize) -> anyhow::Result<Sample>,
) -> anyhow::Result<ScenarioResult> {
    alternate_with(ctx, name, false, each)
}

/// [`alternate`]; with `settled`, each server's background work after a push (Orbit's upkeep)
/// is waited for outside the measured window — before it, so an earlier round's upkeep is not
/// counted, and after it, measured on its own and printed.
fn alternate_with(
    ctx: &Ctx<'_>,
    name: &str,
    settled: bool,
    mut each: impl FnMut(usize, usize) -> anyhow::Result<Sample>,
) -> anyhow::Result<ScenarioResult> {
    let mut res = ScenarioResult {
        scenario: name.to_owned(),
        orbit: Vec::new(),
        git: Vec::new(),
    };
    for round in 0..ctx.rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            if settled {
                ctx.servers[i].settle()?;
            }
            let s = measure(ctx.servers[i], || each(i, round))
                .with_context(|| format!("{name} on {}", ctx.servers[i].name()))?;
            if settled {
                let after = measure(ctx.servers[i], || {
                    ctx.servers[i].settle()?;
                    Ok(Sample::default())
                })?;
                eprintln!(
                    "orbit-bench: {name}: {} background work after it: {:.2} s wall, {:.2} s CPU",
                    ctx.servers[i].name(),
                    after.wall_secs,
                    after.server_cpu_secs
                );
            }
            if i == 0 {
                res.orbit.push(s);
            } else {
                res.git.push(s);
            }
        }
        eprintln!(
            "orbit-bench: {name}: round {} of {} done",
            round + 1,
            ctx.rounds
        );
    }
    Ok(res)
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_size(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Pushes the corpus (every branch and tag) to `url`.
pub fn push_corpus(ctx: &Ctx<'_>, url: &str) -> anyhow::Result<()> {
    let home = ctx.scratch.join("home");
    std::fs::create_dir_all(&home)?;
    run_git(
        &ctx.corpus,
        &home,
        &[
            "push",
            "--quiet",
            url,
            "refs/heads/*:refs/heads/*",
            "refs/tags/*:refs/tags/*",
        ],
    )?;
    Ok(())
}

/// Initial push of the whole history into an empty repository, with the stock git client.
pub fn push_initial(ctx: &Ctx<'_>) -> anyhow::Result<ScenarioResult> {
    let pack_bytes = dir_size(&ctx.corpus.join("objects"));
    alternate_with(ctx, "push-initial", true, |i, round| {
        let url = ctx.servers[i]
            .create_repo(&format!("push-r{round}-{}", uuid::Uuid::new_v4().simple()))?;
        push_corpus(ctx, &url)?;
        Ok(Sample {
            bytes: pack_bytes,
            ..Sample::default()
        })
    })
}

/// A pkt-line.
fn pkt(s: &str) -> Vec<u8> {
    let mut v = format!("{:04x}", s.len() + 4).into_bytes();
    v.extend_from_slice(s.as_bytes());
    v
}

/// A protocol v2 fetch request for `wants`, having `haves`.
fn v2_fetch(wants: &[String], haves: &[String]) -> Vec<u8> {
    let mut b = pkt("command=fetch\n");
    b.extend(pkt("object-format=sha1\n"));
    b.extend_from_slice(b"0001");
    for a in [
        "thin-pack\n",
        "ofs-delta\n",
        "no-progress\n",
        "include-tag\n",
    ] {
        b.extend(pkt(a));
    }
    for w in wants {
        b.extend(pkt(&format!("want {w}\n")));
    }
    for h in haves {
        b.extend(pkt(&format!("have {h}\n")));
    }
    b.extend(pkt("done\n"));
    b.extend_from_slice(b"0000");
    b
}

fn v2_ls_refs() -> Vec<u8> {
    let mut b = pkt("command=ls-refs\n");
    b.extend(pkt("object-format=sha1\n"));
    b.extend_from_slice(b"0001");
    for a in [
        "peel\n",
        "symrefs\n",
        "ref-prefix HEAD\n",
        "ref-prefix refs/heads/\n",
        "ref-prefix refs/tags/\n",
    ] {
        b.extend(pkt(a));
    }
    b.extend_from_slice(b"0000");
    b
}

/// What a streamed upload-pack reply contained.
struct Reply {
    pack_bytes: u64,
    ttfb: Option<f64>,
}

/// POSTs to `git-upload-pack` and reads the reply as it streams, counting side-band-1 bytes
/// after `packfile`, without keeping them.
async fn post_upload_pack(
    client: &reqwest::Client,
    server: &dyn Server,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<Reply> {
    let start = Instant::now();
    let mut req = client
        .post(format!("{}{path}/git-upload-pack", server.base()))
        .header("content-type", "application/x-git-upload-pack-request")
        .header("accept", "application/x-git-upload-pack-result")
        .header("git-protocol", "version=2")
        .body(body);
    if let Some(a) = server.auth_header() {
        req = req.header("authorization", a);
    }
    let mut resp = req.send().await?;
    if !resp.status().is_success() {
        bail!("upload-pack answered HTTP {}", resp.status());
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut in_pack = false;
    let mut reply = Reply {
        pack_bytes: 0,
        ttfb: None,
    };
    while let Some(chunk) = resp.chunk().await? {
        buf.extend_from_slice(&chunk);
        // Consume whole pkt-lines.
        let mut pos = 0;
        while buf.len() >= pos + 4 {
            let len = usize::from_str_radix(std::str::from_utf8(&buf[pos..pos + 4])?, 16)?;
            if len < 4 {
                pos += 4;
                continue;
            }
            if buf.len() < pos + len {
                break;
            }
            let data = &buf[pos + 4..pos + len];
            if in_pack {
                match data.first() {
                    Some(1) => {
                        if reply.ttfb.is_none() {
                            reply.ttfb = Some(start.elapsed().as_secs_f64());
                        }
                        reply.pack_bytes += (data.len() - 1) as u64;
                    }
                    Some(3) => bail!("server error: {}", String::from_utf8_lossy(&data[1..])),
                    _ => {}
                }
            } else if data.starts_with(b"packfile") {
                in_pack = true;
            } else if data.starts_with(b"ERR ") {
                bail!("server error: {}", String::from_utf8_lossy(data));
            }
            pos += len;
        }
        buf.drain(..pos);
    }
    if !in_pack {
        bail!("no packfile section in the reply");
    }
    Ok(reply)
}

/// Every ref tip of the corpus (tags unpeeled, so tag objects are wanted too).
fn corpus_tips(ctx: &Ctx<'_>) -> anyhow::Result<Vec<String>> {
    let home = ctx.scratch.join("home");
    let out = run_git(
        &ctx.corpus,
        &home,
        &["for-each-ref", "--format=%(objectname)"],
    )?;
    let mut v: Vec<String> = out.lines().map(str::to_owned).collect();
    v.sort();
    v.dedup();
    Ok(v)
}

fn rt() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .build()?)
}

/// The v2 `fetch` a clone sends, POSTed by the harness; the reply is parsed and discarded.
pub fn clone_stream(ctx: &Ctx<'_>) -> anyhow::Result<ScenarioResult> {
    clone_stream_of(ctx, "clone-stream", &ctx.corpus_paths)
}

/// [`clone_stream`] against git serving a copy repacked as production hosts keep theirs:
/// `repack -adb` (reachability bitmaps) and `commit-graph write --reachable`.
pub fn clone_stream_bitmap(ctx: &Ctx<'_>) -> anyhow::Result<ScenarioResult> {
    let git = ctx.servers[1];
    let url = git.create_repo("corpus-bitmap")?;
    push_corpus(ctx, &url)?;
    let dir = git
        .repo_path("corpus-bitmap")
        .ok_or_else(|| anyhow::anyhow!("the git side has no repository path"))?;
    let home = ctx.scratch.join("home");
    run_git(&dir, &home, &["repack", "-q", "-a", "-d", "-b"])?;
    run_git(&dir, &home, &["commit-graph", "write", "--reachable"])?;
    let paths = [ctx.corpus_paths[0].clone(), crate::url_path(&url)];
    clone_stream_of(ctx, "clone-stream-bitmap", &paths)
}

fn clone_stream_of(
    ctx: &Ctx<'_>,
    name: &str,
    paths: &[String; 2],
) -> anyhow::Result<ScenarioResult> {
    let wants = corpus_tips(ctx)?;
    let rt = rt()?;
    let client = client()?;
    alternate(ctx, name, |i, _| {
        let reply = rt.block_on(post_upload_pack(
            &client,
            ctx.servers[i],
            &paths[i],
            v2_fetch(&wants, &[]),
        ))?;
        Ok(Sample {
            bytes: reply.pack_bytes,
            ttfb_secs: reply.ttfb,
            ..Sample::default()
        })
    })
}

/// Clones with the stock git client: full, `--depth=1`, `--filter=blob:none`.
pub fn clones(ctx: &Ctx<'_>) -> anyhow::Result<Vec<ScenarioResult>> {
    let home = ctx.scratch.join("home");
    let mut out = Vec::new();
    for (name, extra) in [
        ("clone-full", &[][..]),
        ("clone-depth1", &["--depth=1"][..]),
        ("clone-filter-blobless", &["--filter=blob:none"][..]),
    ] {
        out.push(alternate(ctx, name, |i, round| {
            let dest = ctx.scratch.join(format!("{name}-{i}-{round}"));
            let mut args = vec!["clone", "--bare", "--quiet"];
            args.extend_from_slice(extra);
            let url = ctx.corpus_urls[i].clone();
            args.push(&url);
            let dest_s = dest.to_string_lossy().into_owned();
            args.push(&dest_s);
            run_git(&ctx.scratch, &home, &args)?;
            let bytes = dir_size(&dest.join("objects"));
            std::fs::remove_dir_all(&dest)?;
            Ok(Sample {
                bytes,
                ..Sample::default()
            })
        })?);
    }
    Ok(out)
}

/// Incremental fetch when the client is `behind` first-parent commits behind `main`.
pub fn fetch_behind(ctx: &Ctx<'_>, behind: usize) -> anyhow::Result<ScenarioResult> {
    let home = ctx.scratch.join("home");
    let tip = run_git(&ctx.corpus, &home, &["rev-parse", "refs/heads/main"])?;
    let have = run_git(
        &ctx.corpus,
        &home,
        &["rev-parse", &format!("refs/heads/main~{behind}")],
    )?;
    let rt = rt()?;
    let client = client()?;
    alternate(ctx, &format!("fetch-behind-{behind}"), |i, _| {
        let reply = rt.block_on(post_upload_pack(
            &client,
            ctx.servers[i],
            &ctx.corpus_paths[i],
            v2_fetch(std::slice::from_ref(&tip), std::slice::from_ref(&have)),
        ))?;
        Ok(Sample {
            bytes: reply.pack_bytes,
            ..Sample::default()
        })
    })
}

/// One commit with one file, pushed with the stock git client.
pub fn push_small(ctx: &Ctx<'_>) -> anyhow::Result<ScenarioResult> {
    let home = ctx.scratch.join("home");
    let mut work = Vec::new();
    for i in 0..2 {
        let dir = ctx.scratch.join(format!("small-push-{i}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        run_git(
            &ctx.scratch,
            &home,
            &[
                "clone",
                "--quiet",
                "--shared",
                "--branch",
                "main",
                &ctx.corpus.to_string_lossy(),
                &dir.to_string_lossy(),
            ],
        )?;
        work.push(dir);
    }
    let mut counter = 0u64;
    alternate(ctx, "push-small", |i, round| {
        counter += 1;
        let dir = &work[i];
        std::fs::write(
            dir.join(format!("note-{round}.txt")),
            format!("small push {counter}\n"),
        )?;
        run_git(dir, &home, &["add", "-A"])?;
        run_git(dir, &home, &["commit", "--quiet", "-m", "small push"])?;
        let start = Instant::now();
        run_git(
            dir,
            &home,
            &[
                "push",
                "--quiet",
                &ctx.corpus_urls[i],
                "HEAD:refs/heads/main",
            ],
        )?;
        Ok(Sample {
            wall_secs: start.elapsed().as_secs_f64(),
            ..Sample::default()
        })
    })
}

/// Small-op load: ref advertisement, v2 `ls-refs` and a 1-commit `fetch`, replayed by `conns`
/// concurrent connections for a fixed time.
/// Which small operation a load sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmallOp {
    /// The three in turn.
    Mix,
    /// `GET info/refs?service=git-upload-pack` (v0 advertisement).
    InfoRefs,
    /// v2 `ls-refs`.
    LsRefs,
    /// v2 `fetch` of one commit over its parent.
    Fetch,
}

impl SmallOp {
    /// The scenario name's infix.
    pub fn label(self) -> &'static str {
        match self {
            SmallOp::Mix => "",
            SmallOp::InfoRefs => "info-refs-",
            SmallOp::LsRefs => "ls-refs-",
            SmallOp::Fetch => "fetch1-",
        }
    }
}

/// `conns` connections sending `op` for the load time.
pub fn small_ops(ctx: &Ctx<'_>, conns: usize, op: SmallOp) -> anyhow::Result<ScenarioResult> {
    let home = ctx.scratch.join("home");
    let tip = run_git(&ctx.corpus, &home, &["rev-parse", "refs/heads/main~5"])?;
    let parent = run_git(&ctx.corpus, &home, &["rev-parse", "refs/heads/main~6"])?;
    let fetch = v2_fetch(&[tip], &[parent]);
    let ls = v2_ls_refs();
    let rt = rt()?;
    let duration = Duration::from_secs_f64(ctx.load_secs);
    alternate(ctx, &format!("small-ops-{}{conns}", op.label()), |i, _| {
        let server = ctx.servers[i];
        let base = format!("{}{}", server.base(), ctx.corpus_paths[i]);
        let auth = server.auth_header();
        let (fetch, ls) = (fetch.clone(), ls.clone());
        let start = Instant::now();
        let latencies = rt.block_on(async move {
            let client = client()?;
            let mut tasks = Vec::new();
            for w in 0..conns {
                let (client, base, auth, fetch, ls) = (
                    client.clone(),
                    base.clone(),
                    auth.clone(),
                    fetch.clone(),
                    ls.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut k = w;
                    while start.elapsed() < duration {
                        let t = Instant::now();
                        let which = match op {
                            SmallOp::Mix => k % 3,
                            SmallOp::InfoRefs => 0,
                            SmallOp::LsRefs => 1,
                            SmallOp::Fetch => 2,
                        };
                        let mut req = match which {
                            0 => client.get(format!("{base}/info/refs?service=git-upload-pack")),
                            1 => client
                                .post(format!("{base}/git-upload-pack"))
                                .header("git-protocol", "version=2")
                                .header("content-type", "application/x-git-upload-pack-request")
                                .body(ls.clone()),
                            _ => client
                                .post(format!("{base}/git-upload-pack"))
                                .header("git-protocol", "version=2")
                                .header("content-type", "application/x-git-upload-pack-request")
                                .body(fetch.clone()),
                        };
                        if let Some(a) = &auth {
                            req = req.header("authorization", a);
                        }
                        let resp = req.send().await?;
                        if !resp.status().is_success() {
                            anyhow::bail!("HTTP {}", resp.status());
                        }
                        let _ = resp.bytes().await?;
                        lat.push(t.elapsed().as_secs_f64());
                        k += 1;
                    }
                    Ok::<_, anyhow::Error>(lat)
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await??);
            }
            Ok::<_, anyhow::Error>(all)
        })?;
        let wall = start.elapsed().as_secs_f64();
        let mut sorted = latencies.clone();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let pct = |p: f64| {
            sorted
                .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
                .copied()
        };
        Ok(Sample {
            wall_secs: wall,
            ops: sorted.len() as u64,
            p50_secs: pct(0.5),
            p99_secs: pct(0.99),
            ..Sample::default()
        })
    })
}

/// gitcore alone (no HTTP) against `git pack-objects --stdout` on the same wants and haves.
/// The "server" columns are this process (Orbit) and the pack-objects child (git).
pub fn gitcore_pack(
    ctx: &Ctx<'_>,
    name: &str,
    wants: &[String],
    haves: &[String],
) -> anyhow::Result<ScenarioResult> {
    let home = ctx.scratch.join("home");
    let repo = gitcore::storage::open(&ctx.corpus)?;
    let parse = |v: &[String]| -> anyhow::Result<Vec<gitcore::ObjectId>> {
        v.iter()
            .map(|h| gitcore::ObjectId::from_hex(h.as_bytes()).map_err(Into::into))
            .collect()
    };
    let (want_ids, have_ids) = (parse(wants)?, parse(haves)?);
    let mut res = ScenarioResult {
        scenario: name.to_owned(),
        orbit: Vec::new(),
        git: Vec::new(),
    };
    let self_pid = std::process::id();
    for round in 0..ctx.rounds {
        // gitcore, in this process.
        let before = crate::servers::proc_usage(self_pid, true)?;
        let start = Instant::now();
        let interrupt = AtomicBool::new(false);
        let mut named = Vec::new();
        let commits = gitcore::pack::split_wants(&repo, &want_ids, &mut named)?;
        let commits = gitcore::pack::walk_commits(&repo, &commits, &have_ids, &interrupt)?;
        let sel = gitcore::pack::objects_for(
            &repo,
            commits,
            &named,
            &have_ids,
            &[],
            false,
            Default::default(),
            &interrupt,
        )?;
        let objects = sel.ids.len() as u64;
        let mut sink = Counting(0);
        gitcore::pack::write(&repo, sel.ids, None, &mut sink, &interrupt, None)?;
        let wall = start.elapsed().as_secs_f64();
        let after = crate::servers::proc_usage(self_pid, false)?;
        res.orbit.push(Sample {
            wall_secs: wall,
            server_cpu_secs: after.cpu_secs - before.cpu_secs,
            server_peak_rss_bytes: after.peak_rss_bytes,
            bytes: sink.0,
            ops: 1,
            objects: Some(objects),
            ..Sample::default()
        });
        // git pack-objects.
        let mut input = String::new();
        for w in wants {
            input.push_str(w);
            input.push('\n');
        }
        for h in haves {
            input.push_str(&format!("^{h}\n"));
        }
        let start = Instant::now();
        let mut child = git(&ctx.corpus, &home)
            .args([
                "pack-objects",
                "--stdout",
                "--revs",
                "--delta-base-offset",
                "--quiet",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().context("stdin")?;
            stdin.write_all(input.as_bytes())?;
        }
        let mut stdout = child.stdout.take().context("stdout")?;
        let mut sink = Counting(0);
        std::io::copy(&mut stdout, &mut sink)?;
        let (cpu, rss) = crate::cgi::wait_child(child)?;
        res.git.push(Sample {
            wall_secs: start.elapsed().as_secs_f64(),
            server_cpu_secs: cpu,
            server_peak_rss_bytes: rss,
            bytes: sink.0,
            ops: 1,
            objects: None,
            ..Sample::default()
        });
        eprintln!(
            "orbit-bench: {name}: round {} of {} done",
            round + 1,
            ctx.rounds
        );
    }
    Ok(res)
}

struct Counting(u64);

impl std::io::Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// REST reads against the git CLI answering the same question in a process per call (what the
/// host Orbit replaces did): the Orbit column is the HTTP request (server CPU from its
/// process), the git column the `git` process (its own CPU). One sample per call.
pub fn rest_reads(ctx: &Ctx<'_>, calls: usize) -> anyhow::Result<Vec<ScenarioResult>> {
    let home = ctx.scratch.join("home");
    let orbit = ctx.servers[0];
    let rest = orbit.rest_repo("corpus").context("orbit has a REST API")?;
    let git_repo = ctx.servers[1]
        .repo_path("corpus")
        .context("the baseline repository path")?;
    // Git at its best: with a commit-graph, as production hosts run it (Orbit writes its own
    // after a push of this size).
    run_git(
        &git_repo,
        &home,
        &["commit-graph", "write", "--reachable", "--no-progress"],
    )?;
    // A commit that changes a few text files: the latest non-merge commit.
    let diff_commit = run_git(
        &git_repo,
        &home,
        &["rev-list", "-n", "1", "--no-merges", "refs/heads/main"],
    )?;
    let blob_path = run_git(
        &git_repo,
        &home,
        &["ls-tree", "-r", "--name-only", "refs/heads/main", "assets/"],
    )?
    .lines()
    .next()
    .map(str::to_owned)
    .context("a binary blob under assets/")?;
    let dir = "src/m3";
    let ops: Vec<(&str, String, Vec<String>, Option<&str>)> = vec![
        (
            "rest-log-50",
            format!("{rest}/commits?ref=main&limit=50"),
            vec![
                "log".into(),
                "-n".into(),
                "50".into(),
                "--format=%H%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%P%x00%B".into(),
                "main".into(),
            ],
            None,
        ),
        (
            "rest-log-50-offset-10000",
            format!("{rest}/commits?ref=main&limit=50&offset=10000"),
            vec![
                "log".into(),
                "--skip=10000".into(),
                "-n".into(),
                "50".into(),
                "--format=%H%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%P%x00%B".into(),
                "main".into(),
            ],
            None,
        ),
        (
            "rest-log-path",
            format!("{rest}/commits?ref=main&limit=50&path={dir}"),
            vec![
                "log".into(),
                "-n".into(),
                "50".into(),
                "--format=%H%x00%an%x00%aI%x00%P%x00%B".into(),
                "main".into(),
                "--".into(),
                dir.into(),
            ],
            None,
        ),
        (
            "rest-tree",
            format!("{rest}/tree/main/{dir}"),
            vec!["ls-tree".into(), "-l".into(), format!("main:{dir}")],
            None,
        ),
        (
            "rest-blob-512k",
            format!("{rest}/blob/main/{blob_path}"),
            vec![
                "cat-file".into(),
                "blob".into(),
                format!("main:{blob_path}"),
            ],
            Some("application/octet-stream"),
        ),
        (
            "rest-commit-diff",
            format!("{rest}/commits/{diff_commit}/diff"),
            vec![
                "diff".into(),
                "--no-color".into(),
                "-M".into(),
                format!("{diff_commit}^"),
                diff_commit.clone(),
            ],
            None,
        ),
    ];
    // One call at a time, as a program's blocking client makes them: the client runs on this
    // thread alone (a multi-thread runtime would add two thread hops of its own to every call).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = client()?;
    let auth = orbit.auth_header();
    let mut results = Vec::new();
    for (name, url, git_args, accept) in ops {
        let mut res = ScenarioResult {
            scenario: name.to_owned(),
            orbit: Vec::new(),
            git: Vec::new(),
        };
        for _ in 0..calls {
            // Orbit.
            let before = orbit.usage(true)?;
            let start = Instant::now();
            let bytes = rt.block_on(async {
                let mut req = client.get(&url);
                if let Some(a) = &auth {
                    req = req.header("authorization", a);
                }
                if let Some(a) = accept {
                    req = req.header("accept", a);
                }
                let mut resp = req.send().await?;
                if !resp.status().is_success() {
                    anyhow::bail!("{url}: HTTP {}", resp.status());
                }
                // Counted as it arrives, as git's output is counted below (not gathered into
                // one buffer first).
                let mut n = 0u64;
                while let Some(chunk) = resp.chunk().await? {
                    n += chunk.len() as u64;
                }
                Ok::<_, anyhow::Error>(n)
            })?;
            let wall = start.elapsed().as_secs_f64();
            let after = orbit.usage(false)?;
            res.orbit.push(Sample {
                wall_secs: wall,
                server_cpu_secs: (after.cpu_secs - before.cpu_secs).max(0.0),
                server_peak_rss_bytes: after.peak_rss_bytes,
                bytes,
                ops: 1,
                ..Sample::default()
            });
            // git, a process per call.
            let start = Instant::now();
            let mut child = git(&git_repo, &home)
                .args(&git_args)
                .stdout(Stdio::piped())
                .spawn()?;
            let mut out = child.stdout.take().context("stdout")?;
            let mut sink = Counting(0);
            std::io::copy(&mut out, &mut sink)?;
            let (cpu, rss) = crate::cgi::wait_child(child)?;
            res.git.push(Sample {
                wall_secs: start.elapsed().as_secs_f64(),
                server_cpu_secs: cpu,
                server_peak_rss_bytes: rss,
                bytes: sink.0,
                ops: 1,
                ..Sample::default()
            });
        }
        eprintln!("orbit-bench: {name}: {calls} calls done");
        results.push(res);
    }
    Ok(results)
}

/// `clients` identical full clones at once (the clone-stream request, server-bound), as a CI
/// matrix starts them: Orbit with its pack cache (emptied before each round, so every round
/// generates once and shares) against git http-backend, first as pushed, then repacked with
/// bitmaps and a commit-graph (`repack -adb`, `commit-graph write --reachable`).
pub fn fanout(
    ctx: &Ctx<'_>,
    cached: &crate::servers::Orbit,
    git: &dyn Server,
    clients: usize,
) -> anyhow::Result<Vec<ScenarioResult>> {
    let wants = corpus_tips(ctx)?;
    let rt = rt()?;
    let cache_dir = cached.data_dir().join("pack-cache");
    let fan = |i: usize, servers: [&dyn Server; 2]| -> anyhow::Result<Sample> {
        if i == 0 {
            for e in std::fs::read_dir(&cache_dir)
                .into_iter()
                .flatten()
                .flatten()
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let server = servers[i];
        let path = ctx.corpus_paths[i].clone();
        let body = v2_fetch(&wants, &[]);
        let start = Instant::now();
        let (bytes, first) = rt.block_on(async {
            let client = client()?;
            let mut tasks = Vec::new();
            for _ in 0..clients {
                let (client, body, path) = (client.clone(), body.clone(), path.clone());
                tasks.push(async move { post_upload_pack(&client, server, &path, body).await });
            }
            let replies = futures_util::future::join_all(tasks).await;
            let mut bytes = 0;
            let mut first: Option<f64> = None;
            for r in replies {
                let r = r?;
                bytes += r.pack_bytes;
                first = match (first, r.ttfb) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
            Ok::<_, anyhow::Error>((bytes, first))
        })?;
        Ok(Sample {
            wall_secs: start.elapsed().as_secs_f64(),
            bytes,
            ttfb_secs: first,
            ops: clients as u64,
            ..Sample::default()
        })
    };
    let mut out = Vec::new();
    for (label, repack) in [("", false), ("-bitmap", true)] {
        if repack {
            let dir = git
                .repo_path("corpus")
                .ok_or_else(|| anyhow::anyhow!("the git side has no repository path"))?;
            let home = ctx.scratch.join("home");
            run_git(&dir, &home, &["repack", "-q", "-a", "-d", "-b"])?;
            run_git(&dir, &home, &["commit-graph", "write", "--reachable"])?;
        }
        let servers: [&dyn Server; 2] = [cached, git];
        let fan_ctx = Ctx {
            corpus: ctx.corpus.clone(),
            scratch: ctx.scratch.clone(),
            servers,
            rounds: ctx.rounds,
            load_secs: ctx.load_secs,
            corpus_urls: ctx.corpus_urls.clone(),
            corpus_paths: ctx.corpus_paths.clone(),
        };
        out.push(alternate(
            &fan_ctx,
            &format!("fanout-{clients}{label}"),
            |i, _| fan(i, servers),
        )?);
    }
    Ok(out)
}
