//! Deterministic synthetic repositories, generated from a seed with `git fast-import` and cached
//! on disk keyed by their parameters.
//!
//! Text files are edited line by line, so stored deltas are real; some blobs are random binary
//! data; history has topic branches merged back, annotated and lightweight tags.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// A label for the cache directory.
    pub name: &'static str,
    /// Commits on the main line (merges and topic commits come on top).
    pub commits: usize,
    /// Text files, spread over nested directories.
    pub files: usize,
    /// Every `binary_every` commits a random binary blob of `binary_bytes` is added or replaced.
    pub binary_every: usize,
    /// Size of each binary blob.
    pub binary_bytes: usize,
    /// Every `merge_every` commits a topic branch of 3 commits is merged.
    pub merge_every: usize,
    /// Every `tag_every` commits a tag is made.
    pub tag_every: usize,
    /// The seed.
    pub seed: u64,
}

/// About 200 commits: quick runs and the harness's own test.
pub const SMALL: Params = Params {
    name: "small",
    commits: 200,
    files: 300,
    binary_every: 40,
    binary_bytes: 64 * 1024,
    merge_every: 40,
    tag_every: 50,
    seed: 7,
};

/// At least 20,000 commits, 3,000 files, over 100 MB packed.
pub const LARGE: Params = Params {
    name: "large",
    commits: 20_000,
    files: 3_000,
    binary_every: 90,
    binary_bytes: 512 * 1024,
    merge_every: 100,
    tag_every: 500,
    seed: 11,
};

impl Params {
    fn key(&self) -> String {
        format!(
            "{}-c{}-f{}-b{}x{}-m{}-t{}-s{}-v2",
            self.name,
            self.commits,
            self.files,
            self.binary_every,
            self.binary_bytes,
            self.merge_every,
            self.tag_every,
            self.seed
        )
    }
}

/// xorshift64*: small, fast, deterministic.
pub struct Rng(u64);

impl Rng {
    /// Seeds the generator.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// The next number.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const WORDS: &[&str] = &[
    "agent", "branch", "commit", "delta", "fetch", "graph", "index", "merge", "object", "pack",
    "push", "refs", "tree", "blob", "tag", "clone", "server", "client", "stream", "window",
    "depth", "hash", "zlib", "header", "trailer",
];

fn line(rng: &mut Rng) -> String {
    let n = 3 + rng.below(8);
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.below(WORDS.len())]);
    }
    s.push_str(&format!(" {}\n", rng.next() % 100_000));
    s
}

fn path_of(i: usize) -> String {
    format!("src/m{}/d{}/f{}.txt", i % 17, (i / 17) % 13, i)
}

/// Returns a bare repository with the corpus, generating it into `cache_root` if needed.
pub fn ensure(params: &Params, cache_root: &Path) -> anyhow::Result<PathBuf> {
    let dir = cache_root.join(params.key());
    let repo = dir.join("repo.git");
    if dir.join("done").is_file() {
        return Ok(repo);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).context("clearing a half-made corpus")?;
    }
    std::fs::create_dir_all(&dir)?;
    eprintln!(
        "orbit-bench: generating the {} corpus in {} (cached for later runs)",
        params.name,
        dir.display()
    );
    let status = Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(&repo)
        .status()?;
    if !status.success() {
        bail!("git init failed");
    }
    let mut child = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["fast-import", "--quiet", "--done"])
        .stdin(Stdio::piped())
        .spawn()
        .context("running git fast-import")?;
    {
        let stdin = child.stdin.take().context("fast-import stdin")?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, stdin);
        write_stream(params, &mut out)?;
        out.flush()?;
    }
    if !child.wait()?.success() {
        bail!("git fast-import failed");
    }
    // fast-import stores most blobs whole; a repack gives the deltas a real repository has.
    let status = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args([
            "repack",
            "-a",
            "-d",
            "-f",
            "-q",
            "--window=10",
            "--depth=50",
            "--no-write-bitmap-index",
        ])
        .status()?;
    if !status.success() {
        bail!("git repack failed");
    }
    std::fs::write(dir.join("done"), b"ok")?;
    Ok(repo)
}

fn write_stream(p: &Params, out: &mut impl Write) -> anyhow::Result<()> {
    let mut rng = Rng::new(p.seed);
    let mut files: Vec<Vec<String>> = (0..p.files)
        .map(|_| (0..30 + rng.below(30)).map(|_| line(&mut rng)).collect())
        .collect();
    let mut mark = 0usize;
    let mut time = 1_700_000_000i64;
    let mut next_mark = || {
        mark += 1;
        mark
    };
    let data = |out: &mut dyn Write, bytes: &[u8]| -> std::io::Result<()> {
        writeln!(out, "data {}", bytes.len())?;
        out.write_all(bytes)?;
        writeln!(out)
    };
    let content = |f: &Vec<String>| f.concat();
    let mut main_tip: Option<usize> = None;
    let mut kept_topics = Vec::new();
    let mut touched_in_topic: Vec<usize> = Vec::new();

    // The first commit adds every file.
    let m = next_mark();
    time += 60;
    writeln!(
        out,
        "commit refs/heads/main\nmark :{m}\ncommitter Orbit Bench <bench@orbit.test> {time} +0000"
    )?;
    data(out, b"initial import")?;
    for (i, f) in files.iter().enumerate() {
        writeln!(out, "M 100644 inline {}", path_of(i))?;
        data(out, content(f).as_bytes())?;
    }
    main_tip = Some(m).or(main_tip);

    for n in 1..p.commits {
        // A topic branch merged back.
        if n % p.merge_every == 0 {
            let base = main_tip.context("main tip")?;
            let topic = format!("refs/heads/topic/{n}");
            let mut tip = base;
            touched_in_topic.clear();
            for k in 0..3 {
                let tm = next_mark();
                time += 60;
                writeln!(out, "commit {topic}\nmark :{tm}\ncommitter Topic Author <topic@orbit.test> {time} +0000")?;
                data(out, format!("topic {n} step {k}").as_bytes())?;
                writeln!(out, "from :{tip}")?;
                let i = rng.below(p.files);
                edit(&mut files[i], &mut rng);
                touched_in_topic.push(i);
                writeln!(out, "M 100644 inline {}", path_of(i))?;
                data(out, content(&files[i]).as_bytes())?;
                tip = tm;
            }
            let mm = next_mark();
            time += 60;
            writeln!(out, "commit refs/heads/main\nmark :{mm}\ncommitter Orbit Bench <bench@orbit.test> {time} +0000")?;
            data(out, format!("Merge topic {n}").as_bytes())?;
            writeln!(out, "from :{base}\nmerge :{tip}")?;
            for i in &touched_in_topic {
                writeln!(out, "M 100644 inline {}", path_of(*i))?;
                data(out, content(&files[*i]).as_bytes())?;
            }
            main_tip = Some(mm);
            kept_topics.push(topic);
            if kept_topics.len() > 10 {
                let old = kept_topics.remove(0);
                writeln!(
                    out,
                    "reset {old}\nfrom 0000000000000000000000000000000000000000"
                )?;
            }
        }
        let cm = next_mark();
        time += 60;
        writeln!(out, "commit refs/heads/main\nmark :{cm}\ncommitter Orbit Bench <bench@orbit.test> {time} +0000")?;
        data(
            out,
            format!("change {n}: edit files line by line").as_bytes(),
        )?;
        writeln!(out, "from :{}", main_tip.context("main tip")?)?;
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(p.files);
            edit(&mut files[i], &mut rng);
            writeln!(out, "M 100644 inline {}", path_of(i))?;
            data(out, content(&files[i]).as_bytes())?;
        }
        if n % p.binary_every == 0 {
            let mut blob = vec![0u8; p.binary_bytes];
            for chunk in blob.chunks_mut(8) {
                let v = rng.next().to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            writeln!(
                out,
                "M 100644 inline assets/bin{}.dat",
                (n / p.binary_every) % 8
            )?;
            data(out, &blob)?;
        }
        main_tip = Some(cm);
        if n % p.tag_every == 0 {
            if (n / p.tag_every).is_multiple_of(2) {
                writeln!(
                    out,
                    "tag v{n}\nfrom :{cm}\ntagger Orbit Bench <bench@orbit.test> {time} +0000"
                )?;
                data(out, format!("release {n}").as_bytes())?;
            } else {
                writeln!(out, "reset refs/tags/lw{n}\nfrom :{cm}")?;
            }
        }
    }
    writeln!(out, "done")?;
    Ok(())
}

fn edit(file: &mut Vec<String>, rng: &mut Rng) {
    match rng.below(4) {
        0 if file.len() > 5 => {
            let i = rng.below(file.len());
            file.remove(i);
        }
        1 | 2 => {
            let i = rng.below(file.len() + 1);
            file.insert(i, line(rng));
        }
        _ => {
            if file.is_empty() {
                file.push(line(rng));
            } else {
                let i = rng.below(file.len());
                file[i] = line(rng);
            }
        }
    }
}
