//! `orbit-bench`: Orbit's pack-throughput harness, side by side with C git.
//!
//! ```text
//! cargo run --release -p orbit-benches -- <scenario|all> [--quick] [--json FILE] [--repo PATH]
//!                                         [--rounds N] [--orbit-bin PATH]
//! cargo run --release -p orbit-benches -- corpus [--quick]
//! ```
//!
//! Both servers run on 127.0.0.1: the release `orbit` binary on its embedded default in a temp
//! directory, and C git's `git http-backend` as CGI (one process per request) behind the
//! harness's own HTTP server. The harness pushes the corpus into both, so each serves what its
//! own receive path stored, then runs every scenario on both, alternating, and prints medians,
//! min/max and the Orbit/git ratio. Git here is the reference, not the product.

mod cgi;
mod corpus;
mod merge;
mod report;
mod scenarios;
mod servers;
mod soak;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::scenarios::Ctx;
use crate::servers::{GitCgi, Orbit, Server};

const SCENARIOS: &[&str] = &[
    "push-initial",
    "clone-stream",
    "clone-stream-bitmap",
    "clones",
    "fetch-behind",
    "push-small",
    "small-ops",
    "small-ops-split",
    "gitcore-pack",
    "rest",
    "merge",
    "fanout",
];

struct Args {
    scenarios: Vec<String>,
    quick: bool,
    json: Option<PathBuf>,
    repo: Option<PathBuf>,
    orbit_bin: Option<PathBuf>,
    rounds: Option<usize>,
}

fn usage() -> String {
    format!(
        "usage: orbit-bench <scenario|all>... [--quick] [--json FILE] [--repo PATH] [--rounds N] [--orbit-bin PATH]\n\
         or:    orbit-bench corpus [--quick]   (generate the corpus only and print its path)\n\
         or:    orbit-bench soak [--quick] [--secs N] [--clients N] [--repo PATH]   (load soak)\n\
         scenarios: {}",
        SCENARIOS.join(", ")
    )
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        scenarios: Vec::new(),
        quick: false,
        json: None,
        repo: None,
        orbit_bin: None,
        rounds: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => args.quick = true,
            "--json" => args.json = Some(it.next().context("--json needs a file")?.into()),
            "--repo" => args.repo = Some(it.next().context("--repo needs a path")?.into()),
            "--orbit-bin" => {
                args.orbit_bin = Some(it.next().context("--orbit-bin needs a path")?.into())
            }
            "--rounds" => {
                args.rounds = Some(it.next().context("--rounds needs a number")?.parse()?)
            }
            "-h" | "--help" => bail!("{}", usage()),
            s if s.starts_with('-') => bail!("unknown option {s}\n{}", usage()),
            s if s == "all" || SCENARIOS.contains(&s) => args.scenarios.push(s.to_owned()),
            s => bail!("unknown scenario {s}\n{}", usage()),
        }
    }
    if args.scenarios.is_empty() {
        bail!("{}", usage());
    }
    Ok(args)
}

/// Finds `name` next to this executable (or one directory up, for test binaries in `deps/`).
pub fn locate_sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("exe dir")?;
    for d in [Some(dir), dir.parent()].into_iter().flatten() {
        let p = d.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("cannot find the `{name}` binary next to {} (build it: cargo build --release -p orbit-server)", exe.display())
}

fn orbit_binary(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(p) = &args.orbit_bin {
        return Ok(p.clone());
    }
    if std::env::var_os("ORBIT_BENCH_NO_BUILD").is_none() {
        if let Some(cargo) = std::env::var_os("CARGO") {
            // Make sure the server binary matches the sources (a no-op when it does).
            let exe = std::env::current_exe()?;
            let release = exe.components().any(|c| c.as_os_str() == "release");
            let mut cmd = std::process::Command::new(cargo);
            cmd.args(["build", "--quiet", "-p", "orbit-server", "--bin", "orbit"]);
            if release {
                cmd.arg("--release");
            }
            let status = cmd.status().context("building the orbit binary")?;
            if !status.success() {
                bail!("building the orbit binary failed");
            }
        }
    }
    locate_sibling("orbit")
}

fn cache_root() -> PathBuf {
    std::env::var_os("ORBIT_BENCH_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/orbit-bench")))
        .unwrap_or_else(|| PathBuf::from(".orbit-bench-cache"))
}

fn run(args: Args) -> anyhow::Result<()> {
    let all = args.scenarios.iter().any(|s| s == "all");
    let wanted = |s: &str| all || args.scenarios.iter().any(|x| x == s);
    let corpus = match &args.repo {
        Some(p) => p.clone(),
        None => {
            let params = if args.quick {
                corpus::SMALL
            } else {
                corpus::LARGE
            };
            corpus::ensure(&params, &cache_root())?
        }
    };
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 });
    let orbit_bin = orbit_binary(&args)?;
    let scratch = tempfile::Builder::new().prefix("orbit-bench-").tempdir()?;
    let orbit = Orbit::start(&orbit_bin, &scratch.path().join("orbit"))?;
    let git = GitCgi::start(&scratch.path().join("git-root"))?;
    eprintln!(
        "orbit-bench: corpus {}, orbit {} (data in {}), baseline git http-backend at {}",
        corpus.display(),
        orbit.bin().display(),
        orbit.data_dir().display(),
        git.base()
    );

    let servers: [&dyn Server; 2] = [&orbit, &git];
    let mut ctx = Ctx {
        corpus: corpus.clone(),
        scratch: scratch.path().join("work"),
        servers,
        rounds,
        load_secs: if args.quick { 1.0 } else { 10.0 },
        corpus_urls: [String::new(), String::new()],
        corpus_paths: [String::new(), String::new()],
    };
    std::fs::create_dir_all(ctx.scratch.join("home"))?;
    let mut results = Vec::new();
    if wanted("push-initial") {
        results.push(scenarios::push_initial(&ctx)?);
    }
    // The repository every read scenario uses, filled by each server's own receive path.
    let reads = [
        "clone-stream",
        "clone-stream-bitmap",
        "clones",
        "fetch-behind",
        "small-ops",
        "small-ops-split",
        "rest",
        "push-small",
        "fanout",
    ];
    for (i, s) in servers
        .iter()
        .enumerate()
        .filter(|_| reads.iter().any(|r| wanted(r)))
    {
        let url = s.create_repo("corpus")?;
        scenarios::push_corpus(&ctx, &url)?;
        s.settle()?;
        let path = url_path(&url);
        ctx.corpus_paths[i] = path;
        ctx.corpus_urls[i] = url;
    }
    if wanted("clone-stream") {
        results.push(scenarios::clone_stream(&ctx)?);
    }
    if wanted("clone-stream-bitmap") {
        results.push(scenarios::clone_stream_bitmap(&ctx)?);
    }
    if wanted("clones") {
        results.extend(scenarios::clones(&ctx)?);
    }
    if wanted("fetch-behind") {
        results.push(scenarios::fetch_behind(&ctx, 1)?);
        results.push(scenarios::fetch_behind(
            &ctx,
            100.min(if args.quick { 50 } else { 100 }),
        )?);
    }
    if wanted("small-ops") {
        for c in [1, 8, 32] {
            results.push(scenarios::small_ops(&ctx, c, scenarios::SmallOp::Mix)?);
        }
    }
    if wanted("small-ops-split") {
        for c in [8, 32] {
            for op in [
                scenarios::SmallOp::InfoRefs,
                scenarios::SmallOp::LsRefs,
                scenarios::SmallOp::Fetch,
            ] {
                results.push(scenarios::small_ops(&ctx, c, op)?);
            }
        }
    }
    if wanted("gitcore-pack") {
        let home = ctx.scratch.join("home");
        let tips = scenarios::run_git(&corpus, &home, &["for-each-ref", "--format=%(objectname)"])?;
        let mut tips: Vec<String> = tips.lines().map(str::to_owned).collect();
        tips.sort();
        tips.dedup();
        results.push(scenarios::gitcore_pack(
            &ctx,
            "gitcore-pack-full",
            &tips,
            &[],
        )?);
        let main = scenarios::run_git(&corpus, &home, &["rev-parse", "refs/heads/main"])?;
        let behind = scenarios::run_git(&corpus, &home, &["rev-parse", "refs/heads/main~50"])?;
        results.push(scenarios::gitcore_pack(
            &ctx,
            "gitcore-pack-behind-50",
            &[main],
            &[behind],
        )?);
    }
    if wanted("rest") {
        results.extend(scenarios::rest_reads(
            &ctx,
            if args.quick { 3 } else { 30 },
        )?);
    }
    if wanted("merge") {
        results.extend(merge::run(&ctx)?);
    }
    // Last: it moves main on both servers.
    if wanted("push-small") {
        results.push(scenarios::push_small(&ctx)?);
    }
    // After everything else: it repacks git's copy with bitmaps.
    if wanted("fanout") {
        let cached = orbit.sibling(&[("GIT_PACK_CACHE_MAX_BYTES", "8589934592")])?;
        let clients = if args.quick { 8 } else { 32 };
        results.extend(scenarios::fanout(&ctx, &cached, &git, clients)?);
    }

    println!(
        "orbit-bench {} on {} ({} rounds, {} corpus)",
        if args.quick { "--quick" } else { "full" },
        machine(),
        rounds,
        corpus.display()
    );
    report::print_table(&results);
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "quick": args.quick,
            "rounds": rounds,
            "corpus": corpus.display().to_string(),
            "machine": machine(),
            "results": results,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?)?;
    }
    Ok(())
}

pub fn url_path(url: &str) -> String {
    // http://[user:pass@]host:port/path → /path
    let rest = url.splitn(4, '/').nth(3).unwrap_or("");
    format!("/{rest}")
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} cores, {model}")
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some("cgi-server") {
        return cgi_main(&raw[2..]);
    }
    if raw.get(1).map(String::as_str) == Some("corpus") {
        // Generate (or find) the corpus only: `orbit-bench corpus [--quick]`.
        let params = if raw.iter().any(|a| a == "--quick") {
            corpus::SMALL
        } else {
            corpus::LARGE
        };
        return match corpus::ensure(&params, &cache_root()) {
            Ok(p) => {
                println!("{}", p.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("orbit-bench: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if raw.get(1).map(String::as_str) == Some("soak") {
        return match soak_main(&raw[2..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("orbit-bench soak: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orbit-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `orbit-bench soak [--quick] [--secs N] [--clients N] [--repo PATH] [--orbit-bin PATH]`:
/// see [`soak`]. Defaults: 60 s per phase, 32 clients, the small corpus.
fn soak_main(raw: &[String]) -> anyhow::Result<()> {
    let mut args = Args {
        scenarios: vec!["soak".into()],
        quick: false,
        json: None,
        repo: None,
        orbit_bin: None,
        rounds: None,
    };
    let (mut secs, mut clients) = (60.0, 32);
    let mut it = raw.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().context("a value");
        match a.as_str() {
            "--quick" => {
                args.quick = true;
                secs = 5.0;
                clients = 8;
            }
            "--secs" => secs = value()?.parse()?,
            "--clients" => clients = value()?.parse()?,
            "--repo" => args.repo = Some(value()?.into()),
            "--orbit-bin" => args.orbit_bin = Some(value()?.into()),
            other => bail!("soak: unknown option {other}"),
        }
    }
    let corpus = match &args.repo {
        Some(p) => p.clone(),
        None => corpus::ensure(&corpus::SMALL, &cache_root())?,
    };
    soak::run(&orbit_binary(&args)?, &corpus, secs, clients)
}

fn cgi_main(args: &[String]) -> ExitCode {
    let mut port = None;
    let mut root = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => port = it.next().and_then(|p| p.parse::<u16>().ok()),
            "--root" => root = it.next().map(PathBuf::from),
            _ => {}
        }
    }
    let (Some(port), Some(root)) = (port, root) else {
        eprintln!("usage: orbit-bench cgi-server --port N --root DIR");
        return ExitCode::FAILURE;
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("orbit-bench cgi-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(cgi::serve(root, port)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orbit-bench cgi-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}
