//! Abuse of the git endpoints: malformed and hostile receive-pack and upload-pack requests, packs
//! that are corrupt, truncated, too large or carry dangerous tree entries, ref names that may not
//! be written, sixteen pushes racing for one branch, and pushes that die half-way.
//!
//! Every case checks two things: what the client is told (an `ERR` line, an `unpack <reason>` /
//! `ng <ref> <reason>` report, or git's stderr), and that the server's repository did not change
//! (refs, every file under the repository — so no new pack, no loose object, no leftover
//! `objects/incoming-*` quarantine — and `git fsck --strict` stays clean).
//!
//! Raw requests go through reqwest (or a bare TCP socket where the connection must die mid-body);
//! everything else through the real git CLI, run hermetically as in `git.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::common::{git, git_out, Options, TestServer};

/// How long one git command may take before the test fails instead of hanging.
const GIT_TIMEOUT: Duration = Duration::from_secs(180);

/// The null object id.
const ZERO: &str = "0000000000000000000000000000000000000000";

/// The capabilities the raw receive-pack requests ask for (what git itself sends).
const PUSH_CAPS: &str = "report-status side-band-64k ofs-delta agent=git/2.47.3";

// ---------------------------------------------------------------------------------------------
// git CLI client (as in git.rs)
// ---------------------------------------------------------------------------------------------

/// The result of one git command.
#[derive(Debug)]
struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Out {
    fn text(&self) -> String {
        self.stdout.trim().to_owned()
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "success: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.ok, self.stdout, self.stderr
        )
    }
}

/// A git client: its own home directory (working trees live inside it) and a protocol version.
struct Client {
    home: tempfile::TempDir,
    version: u8,
}

impl Client {
    fn new(version: u8) -> Self {
        Self {
            home: tempfile::tempdir().expect("client home"),
            version,
        }
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// `git -c protocol.version=N ... <args>` in `dir`, hermetic, with a commit identity.
    fn command(&self, dir: &Path, args: &[&str]) -> std::process::Command {
        let mut cmd = git(dir, self.home.path());
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", "Orbit Tester")
            .env("GIT_AUTHOR_EMAIL", "tester@orbit.test")
            .env("GIT_COMMITTER_NAME", "Orbit Tester")
            .env("GIT_COMMITTER_EMAIL", "tester@orbit.test")
            .arg("-c")
            .arg(format!("protocol.version={}", self.version))
            .args([
                "-c",
                "init.defaultBranch=main",
                "-c",
                "advice.detachedHead=false",
            ])
            .args(args);
        cmd
    }

    async fn run(&self, dir: &Path, args: &[&str]) -> Out {
        let mut cmd = self.command(dir, args);
        cmd.stdin(Stdio::null());
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let out = match tokio::time::timeout(GIT_TIMEOUT, cmd.output()).await {
            Ok(r) => r.expect("run git"),
            Err(_) => panic!("git {args:?} timed out after {GIT_TIMEOUT:?}"),
        };
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn ok(&self, dir: &Path, args: &[&str]) -> Out {
        let out = self.run(dir, args).await;
        assert!(out.ok, "git {args:?} failed:\n{out}");
        out
    }

    /// Runs a local git command (no server involved) with `input` on stdin; returns stdout.
    fn local_with_input(&self, dir: &Path, args: &[&str], input: &[u8]) -> Vec<u8> {
        let mut child = self
            .command(dir, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn git");
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait git");
        let _ = writer.join();
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn local_text(&self, dir: &Path, args: &[&str], input: &[u8]) -> String {
        String::from_utf8_lossy(&self.local_with_input(dir, args, input))
            .trim()
            .to_owned()
    }

    async fn rev(&self, dir: &Path, rev: &str) -> String {
        self.ok(dir, &["rev-parse", "--verify", rev]).await.text()
    }

    async fn clone(&self, url: &str, name: &str) -> PathBuf {
        self.ok(self.home(), &["clone", url, name]).await;
        self.dir(name)
    }

    /// Writes `file`, stages and commits it; returns the new HEAD.
    async fn commit(&self, dir: &Path, file: &str, content: &[u8], message: &str) -> String {
        std::fs::write(dir.join(file), content).expect("write work file");
        self.ok(dir, &["add", file]).await;
        self.ok(dir, &["commit", "-q", "-m", message]).await;
        self.rev(dir, "HEAD").await
    }

    /// A pack (as `git pack-objects --stdout` makes it) of what `tip` has and `base` has not.
    fn pack(&self, dir: &Path, tip: &str, base: &str) -> Vec<u8> {
        let pack = self.local_with_input(
            dir,
            &["pack-objects", "--stdout", "--revs", "-q"],
            format!("{tip}\n^{base}\n").as_bytes(),
        );
        assert!(pack.starts_with(b"PACK"), "pack-objects made no pack");
        pack
    }
}

/// `http://x-token:<jwt>@<hostport>/{org}/{name}.git`.
fn clone_url_at(hostport: &str, org: Uuid, name: &str, token: &str) -> String {
    format!("http://x-token:{token}@{hostport}/{org}/{name}.git")
}

fn hostport(srv: &TestServer) -> &str {
    srv.base
        .strip_prefix("http://")
        .expect("the test server base is http://")
}

/// A repository created through the REST API, with its on-disk path and the owner's token.
struct Repo {
    org: Uuid,
    name: String,
    path: PathBuf,
    token: String,
}

impl Repo {
    fn url(&self, srv: &TestServer) -> String {
        clone_url_at(hostport(srv), self.org, &self.name, &self.token)
    }

    /// `{base}/{org}/{name}.git/{service}`.
    fn endpoint(&self, srv: &TestServer, service: &str) -> String {
        format!("{}/{}/{}.git/{service}", srv.base, self.org, self.name)
    }
}

async fn new_repo(srv: &TestServer, name: &str) -> Repo {
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    let body = srv.create_repo(owner, org, name, "private").await;
    let id = body["id"].as_str().expect("id").to_owned();
    let path = srv.repo_path(&id).await;
    Repo {
        org,
        name: name.to_owned(),
        path,
        token: srv.token(owner),
    }
}

/// Clones the empty repository into `dir`, commits `file.txt` = `content`, pushes `main`;
/// returns the work tree and the commit.
async fn seed(c: &Client, url: &str, dir: &str, content: &str) -> (PathBuf, String) {
    let work = c.clone(url, dir).await;
    c.ok(&work, &["symbolic-ref", "HEAD", "refs/heads/main"])
        .await;
    let sha = c
        .commit(
            &work,
            "file.txt",
            format!("{content}\n").as_bytes(),
            content,
        )
        .await;
    c.ok(&work, &["push", "origin", "HEAD:refs/heads/main"])
        .await;
    (work, sha)
}

/// `n` bytes that do not compress (xorshift64*).
fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(n);
    out
}

// ---------------------------------------------------------------------------------------------
// What is on the server's disk
// ---------------------------------------------------------------------------------------------

/// Everything about the server's repository that a refused request must leave alone.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Disk {
    /// `git for-each-ref`: name to object id.
    refs: BTreeMap<String, String>,
    /// The `HEAD` file.
    head: String,
    /// Every file and directory under the repository, relative.
    files: BTreeSet<String>,
    /// `git count-objects -v`.
    counts: String,
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let rel = p
            .strip_prefix(root)
            .map(|r| r.display().to_string())
            .unwrap_or_default();
        if p.is_dir() {
            out.insert(format!("{rel}/"));
            walk(root, &p, out);
        } else {
            out.insert(rel);
        }
    }
}

impl Disk {
    fn read(repo: &Path) -> Disk {
        let home = std::env::temp_dir();
        let refs = git_out(
            repo,
            &home,
            &["for-each-ref", "--format=%(refname) %(objectname)"],
        )
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(r, s)| (r.to_owned(), s.to_owned()))
        .collect();
        let head = std::fs::read_to_string(repo.join("HEAD")).unwrap_or_default();
        let mut files = BTreeSet::new();
        walk(repo, repo, &mut files);
        let counts = git_out(repo, &home, &["count-objects", "-v"]);
        Disk {
            refs,
            head,
            files,
            counts,
        }
    }

    /// The quarantine directories left under `objects/`.
    fn incoming(&self) -> Vec<&String> {
        self.files
            .iter()
            .filter(|f| f.starts_with("objects/incoming-"))
            .collect()
    }

    /// What differs from `before`, in words; empty when nothing does.
    fn changes_since(&self, before: &Disk) -> String {
        let mut out = Vec::new();
        if self.refs != before.refs {
            out.push(format!(
                "refs changed: before {:?}, after {:?}",
                before.refs, self.refs
            ));
        }
        if self.head != before.head {
            out.push(format!(
                "HEAD changed: before {:?}, after {:?}",
                before.head, self.head
            ));
        }
        let added: Vec<_> = self.files.difference(&before.files).collect();
        let removed: Vec<_> = before.files.difference(&self.files).collect();
        if !added.is_empty() {
            out.push(format!("new files: {added:?}"));
        }
        if !removed.is_empty() {
            out.push(format!("removed files: {removed:?}"));
        }
        if self.counts != before.counts {
            out.push(format!(
                "count-objects changed: before {:?}, after {:?}",
                before.counts, self.counts
            ));
        }
        out.join("; ")
    }
}

/// Problems `git fsck --strict` reports in `repo`, if any.
fn fsck_problems(repo: &Path) -> Option<String> {
    let out = git(repo, &std::env::temp_dir())
        .args(["fsck", "--strict"])
        .output()
        .expect("run git fsck");
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lower = all.to_lowercase();
    let bad = ["error", "warning", "missing", "broken", "fatal"]
        .iter()
        .any(|b| lower.contains(b));
    (!out.status.success() || bad).then(|| format!("git fsck --strict: {all}"))
}

/// Polls until the repository is back to `before` (cleanup may lag a dropped request), for at
/// most `limit`; returns what it last saw.
async fn settle(repo: &Path, before: &Disk, limit: Duration) -> Disk {
    let start = Instant::now();
    loop {
        let now = Disk::read(repo);
        if now == *before || start.elapsed() >= limit {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Failures collected over the cases of one test, so one finding does not hide the others.
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    /// Records every way `repo` differs from `before`, leftover quarantines and fsck findings.
    async fn untouched(&mut self, case: &str, repo: &Path, before: &Disk) {
        let after = settle(repo, before, Duration::from_secs(5)).await;
        let changes = after.changes_since(before);
        self.check(changes.is_empty(), || {
            format!("[{case}] the repository changed: {changes}")
        });
        let incoming = after.incoming();
        self.check(incoming.is_empty(), || {
            format!("[{case}] quarantine left behind: {incoming:?}")
        });
        if let Some(p) = fsck_problems(repo) {
            self.0.push(format!("[{case}] {p}"));
        }
    }

    fn finish(self, test: &str) {
        assert!(
            self.0.is_empty(),
            "{test}: {} finding(s):\n\n{}",
            self.0.len(),
            self.0.join("\n\n")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Raw requests
// ---------------------------------------------------------------------------------------------

/// One pkt-line.
fn pkt(data: &[u8]) -> Vec<u8> {
    let mut v = format!("{:04x}", data.len() + 4).into_bytes();
    v.extend_from_slice(data);
    v
}

fn pkt_text(s: &str) -> Vec<u8> {
    pkt(s.as_bytes())
}

/// The first command line of a push, with the capabilities.
fn command(old: &str, new: &str, name: &str) -> Vec<u8> {
    pkt_text(&format!("{old} {new} {name}\0{PUSH_CAPS}\n"))
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A response read whole, or why there was none.
#[derive(Debug)]
struct Raw {
    status: u16,
    body: Vec<u8>,
}

impl Raw {
    fn text(&self) -> String {
        let t = String::from_utf8_lossy(&self.body);
        if t.chars().count() > 1500 {
            let head: String = t.chars().take(1500).collect();
            format!("{head}… ({} bytes)", self.body.len())
        } else {
            t.into_owned()
        }
    }

    fn has(&self, needle: &str) -> bool {
        self.body
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    /// A clear refusal of a malformed request: an `ERR` pkt-line in a 200, or a 4xx.
    fn is_refusal(&self) -> bool {
        (self.status == 200 && self.has("ERR ")) || (400..500).contains(&self.status)
    }

    fn show(&self) -> String {
        format!("HTTP {} body {:?}", self.status, self.text())
    }
}

async fn post(
    srv: &TestServer,
    repo: &Repo,
    service: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Raw, String> {
    let mut req = srv
        .client
        .post(repo.endpoint(srv, service))
        .bearer_auth(&repo.token)
        .header("content-type", format!("application/x-{service}-request"))
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = tokio::time::timeout(Duration::from_secs(60), req.send())
        .await
        .map_err(|_| "no response within 60s".to_owned())?
        .map_err(|e| format!("request failed: {e:?}"))?;
    let status = r.status().as_u16();
    let body = tokio::time::timeout(Duration::from_secs(60), r.bytes())
        .await
        .map_err(|_| "no response body within 60s".to_owned())?
        .map_err(|e| format!("reading the response failed: {e:?}"))?
        .to_vec();
    Ok(Raw { status, body })
}

async fn health(srv: &TestServer) -> u16 {
    srv.client
        .get(format!("{}/health", srv.base))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// A repository with `main` at one commit, a scratch clone, and a next commit (not pushed) on
/// top of `main` with its pack.
struct Pushable {
    repo: Repo,
    client: Client,
    work: PathBuf,
    main: String,
    next: String,
    pack: Vec<u8>,
}

async fn pushable(srv: &TestServer, name: &str) -> Pushable {
    let repo = new_repo(srv, name).await;
    let client = Client::new(2);
    let (work, main) = seed(&client, &repo.url(srv), "work", "one").await;
    let next = client
        .commit(&work, "next.txt", b"next\n", "next, never pushed")
        .await;
    let pack = client.pack(&work, &next, &main);
    Pushable {
        repo,
        client,
        work,
        main,
        next,
        pack,
    }
}

// ---------------------------------------------------------------------------------------------
// 1. receive-pack bad input
// ---------------------------------------------------------------------------------------------

/// A malformed receive-pack request: what it is, the body, extra headers, and the reason the
/// refusal must name (if any).
type MalformedCase = (
    &'static str,
    Vec<u8>,
    Vec<(&'static str, &'static str)>,
    Option<&'static str>,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_pack_refuses_malformed_requests_and_changes_nothing() {
    let srv = TestServer::start().await;
    let p = pushable(&srv, "malformed").await;
    let c = &p.client;
    // A second branch, the target of the delete cases.
    c.ok(
        &p.work,
        &["push", "origin", &format!("{}:refs/heads/victim", p.main)],
    )
    .await;
    let mut f = Findings::default();

    let bad_sha_new = "g".repeat(40);
    let flushed = |cmd: Vec<u8>| cat(&[&cmd, b"0000", &p.pack]);
    let cases: Vec<MalformedCase> = vec![
        (
            "garbage bytes",
            b"\x00\x01GARBAGE, not a pkt-line at all \xff\xfe\r\n".to_vec(),
            vec![],
            None,
        ),
        ("truncated pkt-line `00`", b"00".to_vec(), vec![], None),
        (
            "`ffff` length with 3 bytes of data",
            b"ffffabc".to_vec(),
            vec![],
            None,
        ),
        ("`zzzz` length", b"zzzz0000".to_vec(), vec![], None),
        (
            "command with a non-hex new sha",
            flushed(command(&p.main, &bad_sha_new, "refs/heads/main")),
            vec![],
            Some("invalid object id"),
        ),
        (
            "command with a short old sha",
            flushed(command("abc123", &p.next, "refs/heads/main")),
            vec![],
            Some("invalid object id"),
        ),
        (
            "body claims gzip but is not",
            flushed(command(&p.main, &p.next, "refs/heads/main")),
            vec![("content-encoding", "gzip")],
            None,
        ),
        (
            "a delete command, then a truncated pkt-line `00`",
            cat(&[&command(&p.main, ZERO, "refs/heads/victim"), b"00"]),
            vec![],
            None,
        ),
        (
            "a delete command, then a pkt-line cut short (`0040refs`)",
            cat(&[&command(&p.main, ZERO, "refs/heads/victim"), b"0040refs"]),
            vec![],
            None,
        ),
        (
            "a delete command and no flush (the request just ends)",
            command(&p.main, ZERO, "refs/heads/victim"),
            vec![],
            None,
        ),
    ];
    for (case, body, headers, reason) in cases {
        // Each case starts with `victim` in place, whatever the previous one did.
        if !Disk::read(&p.repo.path)
            .refs
            .contains_key("refs/heads/victim")
        {
            c.ok(
                &p.work,
                &["push", "origin", &format!("{}:refs/heads/victim", p.main)],
            )
            .await;
        }
        let before = Disk::read(&p.repo.path);
        let sent = format!(
            "{} bytes: {:?}",
            body.len(),
            String::from_utf8_lossy(&body[..body.len().min(160)])
        );
        match post(&srv, &p.repo, "git-receive-pack", &headers, body).await {
            Err(e) => f.0.push(format!("[{case}] sent {sent}: {e}")),
            Ok(r) => {
                f.check(r.is_refusal(), || {
                    format!(
                        "[{case}] sent {sent}\n  expected an ERR pkt-line or a 4xx, got {}",
                        r.show()
                    )
                });
                if let Some(reason) = reason {
                    f.check(r.has(reason), || {
                        format!(
                            "[{case}] sent {sent}\n  expected the reason {reason:?}, got {}",
                            r.show()
                        )
                    });
                }
                f.check(!r.has("ok refs/"), || {
                    format!("[{case}] a ref was reported updated: {}", r.show())
                });
            }
        }
        f.untouched(case, &p.repo.path, &before).await;
    }
    f.check(health(&srv).await == 200, || {
        "GET /health is not 200".into()
    });
    f.finish("receive_pack_refuses_malformed_requests_and_changes_nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_pack_rejects_corrupt_and_truncated_packs() {
    let srv = TestServer::start().await;
    let p = pushable(&srv, "corrupt").await;
    let mut f = Findings::default();
    let len = p.pack.len();
    let flip = |at: usize| {
        let mut b = p.pack.clone();
        b[at] ^= 0x55;
        b
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad trailing checksum (last byte flipped)", flip(len - 1)),
        ("a flipped byte just before the trailer", flip(len - 21)),
        ("a flipped byte in the first object", flip(14)),
        (
            "truncated pack (first half only)",
            p.pack[..len / 2].to_vec(),
        ),
        ("pack without its trailer", p.pack[..len - 20].to_vec()),
        ("pack header only", p.pack[..12].to_vec()),
        ("`PACK` and nothing else", b"PACK".to_vec()),
        (
            "not a pack at all",
            b"this is not a pack file, just text".to_vec(),
        ),
    ];
    for (case, pack) in cases {
        let before = Disk::read(&p.repo.path);
        let body = cat(&[
            &command(&p.main, &p.next, "refs/heads/main"),
            b"0000",
            &pack,
        ]);
        match post(&srv, &p.repo, "git-receive-pack", &[], body).await {
            Err(e) => f.0.push(format!("[{case}] {e}")),
            Ok(r) => {
                f.check(r.status == 200, || format!("[{case}] status: {}", r.show()));
                f.check(r.has("unpack ") && !r.has("unpack ok"), || {
                    format!("[{case}] expected `unpack <reason>`, got {}", r.show())
                });
                f.check(r.has("ng refs/heads/main "), || {
                    format!(
                        "[{case}] expected `ng refs/heads/main <reason>`, got {}",
                        r.show()
                    )
                });
            }
        }
        f.untouched(case, &p.repo.path, &before).await;
    }

    // The same pack, intact, goes through (the cases above failed for the corruption alone).
    let body = cat(&[
        &command(&p.main, &p.next, "refs/heads/main"),
        b"0000",
        &p.pack,
    ]);
    let r = post(&srv, &p.repo, "git-receive-pack", &[], body)
        .await
        .expect("intact push");
    f.check(r.has("unpack ok") && r.has("ok refs/heads/main"), || {
        format!("[intact pack] expected success, got {}", r.show())
    });
    f.check(
        Disk::read(&p.repo.path).refs.get("refs/heads/main") == Some(&p.next),
        || "[intact pack] main did not move".into(),
    );
    if let Some(problem) = fsck_problems(&p.repo.path) {
        f.0.push(format!("[intact pack] {problem}"));
    }
    f.finish("receive_pack_rejects_corrupt_and_truncated_packs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_pack_refuses_invalid_and_unwritable_ref_names() {
    let srv = TestServer::start().await;
    let p = pushable(&srv, "refnames").await;
    let c = &p.client;
    let mut f = Findings::default();

    // Raw: a valid pack, one command each; only the name is wrong.
    let head_line = command(&p.main, &p.next, "HEAD");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("refs/heads/a..b", command(ZERO, &p.next, "refs/heads/a..b")),
        ("HEAD", head_line),
        ("refs/changes/x", command(ZERO, &p.next, "refs/changes/x")),
        (
            "refs/pull/1/head",
            command(ZERO, &p.next, "refs/pull/1/head"),
        ),
        (
            "refs/heads/x.lock",
            command(ZERO, &p.next, "refs/heads/x.lock"),
        ),
        ("refs/heads/", command(ZERO, &p.next, "refs/heads/")),
        (
            "refs/heads/../config",
            command(ZERO, &p.next, "refs/heads/../config"),
        ),
    ];
    for (name, cmd) in cases {
        let case = format!("raw update of {name}");
        let before = Disk::read(&p.repo.path);
        let body = cat(&[&cmd, b"0000", &p.pack]);
        match post(&srv, &p.repo, "git-receive-pack", &[], body).await {
            Err(e) => f.0.push(format!("[{case}] {e}")),
            Ok(r) => {
                f.check(r.status == 200 && r.has("unpack ok"), || {
                    format!(
                        "[{case}] expected `unpack ok` (the pack is fine), got {}",
                        r.show()
                    )
                });
                f.check(r.has(&format!("ng {name} ")), || {
                    format!("[{case}] expected `ng {name} <reason>`, got {}", r.show())
                });
                f.check(!r.has(&format!("ok {name}\n")), || {
                    format!("[{case}] reported as updated: {}", r.show())
                });
            }
        }
        f.untouched(&case, &p.repo.path, &before).await;
    }

    // The git CLI: refs/changes/x and refs/x.
    for (case, spec) in [
        (
            "git push HEAD:refs/changes/x",
            format!("{}:refs/changes/x", p.next),
        ),
        ("git push HEAD:refs/x", format!("{}:refs/x", p.next)),
    ] {
        let before = Disk::read(&p.repo.path);
        let out = c.run(&p.work, &["push", "origin", &spec]).await;
        f.check(!out.ok && out.stderr.contains("remote rejected"), || {
            format!("[{case}] expected `[remote rejected]`:\n{out}")
        });
        f.check(out.stderr.contains("refs/heads"), || {
            format!("[{case}] expected the reason (only refs/heads/*, refs/tags/* and refs/notes/*):\n{out}")
        });
        f.untouched(case, &p.repo.path, &before).await;
    }
    f.finish("receive_pack_refuses_invalid_and_unwritable_ref_names");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_pack_rejects_trees_with_dangerous_entry_names() {
    let srv = TestServer::start().await;
    let p = pushable(&srv, "evil-trees").await;
    let c = &p.client;
    let mut f = Findings::default();

    // A harmless subtree to put under the evil names.
    let blob = c.local_text(
        &p.work,
        &["hash-object", "-w", "--stdin"],
        b"[core]\n\tbare = false\n",
    );
    let inner = c.local_text(
        &p.work,
        &["mktree"],
        format!("100644 blob {blob}\tconfig\n").as_bytes(),
    );
    let inner_raw = hex_to_bytes(&inner);
    let file_blob = c.local_text(&p.work, &["hash-object", "-w", "--stdin"], b"hello\n");
    let file_raw = hex_to_bytes(&file_blob);

    for name in [".git", "..", ".", ".GIT", "git~1", ".git. "] {
        let case = format!("tree entry named {name:?}");
        // `<evil>/` then `file.txt`: every evil name sorts before `file.txt`.
        let mut tree = Vec::new();
        tree.extend_from_slice(format!("40000 {name}\0").as_bytes());
        tree.extend_from_slice(&inner_raw);
        tree.extend_from_slice(b"100644 file.txt\0");
        tree.extend_from_slice(&file_raw);
        let tree_id = c.local_text(
            &p.work,
            &["hash-object", "-t", "tree", "--literally", "-w", "--stdin"],
            &tree,
        );
        let commit = c.local_text(
            &p.work,
            &["commit-tree", &tree_id, "-p", &p.main, "-m", "evil"],
            b"",
        );
        let before = Disk::read(&p.repo.path);
        let out = c
            .run(
                &p.work,
                &["push", "origin", &format!("{commit}:refs/heads/main")],
            )
            .await;
        f.check(!out.ok, || format!("[{case}] the push succeeded:\n{out}"));
        f.check(
            out.stderr.contains("remote rejected") || out.stderr.contains("unpack"),
            || format!("[{case}] expected `remote rejected` / `unpack` in stderr:\n{out}"),
        );
        f.check(
            out.stderr.contains(&format!("\"{name}\"")) || out.stderr.contains(name.trim()),
            || format!("[{case}] the reason does not name the entry:\n{out}"),
        );
        f.untouched(&case, &p.repo.path, &before).await;
    }
    f.finish("receive_pack_rejects_trees_with_dangerous_entry_names");
}

fn hex_to_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_pack_enforces_the_pack_size_limit() {
    let srv = TestServer::start_with(Options {
        env: vec![("GIT_MAX_PACK_BYTES".into(), "20000".into())],
        ..Default::default()
    })
    .await;
    let repo = new_repo(&srv, "limited").await;
    let c = Client::new(2);
    let (work, main) = seed(&c, &repo.url(&srv), "work", "one").await;
    let mut f = Findings::default();

    // 200 KB goes in one buffered POST (Content-Length); 4 MB exceeds git's http.postBuffer and
    // goes chunked after a probe request.
    for (case, size, seed) in [
        ("a 200 KB push", 200_000usize, 7u64),
        ("a 4 MB push", 4_000_000, 11),
    ] {
        c.ok(&work, &["reset", "-q", "--hard", &main]).await;
        c.commit(&work, "big.bin", &random_bytes(size, seed), case)
            .await;
        let before = Disk::read(&repo.path);
        let out = c
            .run(&work, &["push", "origin", "HEAD:refs/heads/main"])
            .await;
        f.check(!out.ok, || format!("[{case}] the push succeeded:\n{out}"));
        f.check(out.stderr.contains("exceeds the maximum size"), || {
            format!("[{case}] git's stderr does not show the size limit:\n{out}")
        });
        f.check(
            out.stderr.contains("remote rejected") || out.stderr.contains("unpack"),
            || format!("[{case}] expected `remote rejected` / `unpack` in stderr:\n{out}"),
        );
        f.untouched(case, &repo.path, &before).await;
    }

    // The raw report of an over-limit pack.
    c.ok(&work, &["reset", "-q", "--hard", &main]).await;
    let big = c
        .commit(&work, "big.bin", &random_bytes(100_000, 3), "raw big")
        .await;
    let pack = c.pack(&work, &big, &main);
    let before = Disk::read(&repo.path);
    let body = cat(&[&command(&main, &big, "refs/heads/main"), b"0000", &pack]);
    match post(&srv, &repo, "git-receive-pack", &[], body).await {
        Err(e) => f.0.push(format!("[raw 100 KB pack] {e}")),
        Ok(r) => {
            f.check(r.has("unpack pack exceeds the maximum size"), || {
                format!(
                    "[raw 100 KB pack] expected `unpack pack exceeds the maximum size…`, got {}",
                    r.show()
                )
            });
            f.check(r.has("ng refs/heads/main "), || {
                format!(
                    "[raw 100 KB pack] expected `ng refs/heads/main <reason>`, got {}",
                    r.show()
                )
            });
        }
    }
    f.untouched("raw 100 KB pack", &repo.path, &before).await;

    // A small push still goes through.
    c.ok(&work, &["reset", "-q", "--hard", &main]).await;
    let small = c.commit(&work, "small.txt", b"small\n", "small").await;
    let out = c
        .run(&work, &["push", "origin", "HEAD:refs/heads/main"])
        .await;
    f.check(out.ok, || {
        format!("[small push after the refusals] failed:\n{out}")
    });
    f.check(
        Disk::read(&repo.path).refs.get("refs/heads/main") == Some(&small),
        || "[small push after the refusals] main did not move".into(),
    );
    f.finish("receive_pack_enforces_the_pack_size_limit");
}

// ---------------------------------------------------------------------------------------------
// 2. upload-pack bad input
// ---------------------------------------------------------------------------------------------

/// A bad upload-pack request: what it is, whether it is protocol v2, the body, the text its
/// `ERR` line must carry (if any), and whether a clear refusal is required (`false`: the request
/// is merely cut short; only "no pack, no server error" is required).
type UploadCase = (&'static str, bool, Vec<u8>, Option<&'static str>, bool);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_pack_survives_bad_requests_in_v0_and_v2() {
    let srv = TestServer::start().await;
    let repo = new_repo(&srv, "fetchable").await;
    let c = Client::new(2);
    let (_, main) = seed(&c, &repo.url(&srv), "seed", "one").await;
    let unknown = "1234567890abcdef1234567890abcdef12345678";
    let mut f = Findings::default();

    // (case, v2?, body, expected text in an ERR line (None: any clear refusal), strict?)
    // `strict = false`: the request is merely cut short; no ERR is required, only no pack and no
    // server error.
    let v2_fetch = |args: &[&str]| {
        let mut b = cat(&[
            &pkt_text("command=fetch\n"),
            &pkt_text("agent=git/2.47.3\n"),
            &pkt_text("object-format=sha1\n"),
            b"0001",
        ]);
        for a in args {
            b.extend(pkt_text(&format!("{a}\n")));
        }
        b.extend_from_slice(b"0000");
        b
    };
    let v0_want = |id: &str| {
        cat(&[
            &pkt_text(&format!(
                "want {id} multi_ack_detailed side-band-64k ofs-delta no-progress\n"
            )),
            b"0000",
            &pkt_text("done\n"),
        ])
    };
    let cases: Vec<UploadCase> = vec![
        (
            "v0 garbage",
            false,
            b"\x00\x01GARBAGE \xff\xfe".to_vec(),
            None,
            true,
        ),
        ("v0 `zzzz` length", false, b"zzzz".to_vec(), None, true),
        (
            "v0 `ffff` length, short data",
            false,
            b"ffffabc".to_vec(),
            None,
            true,
        ),
        (
            "v0 truncated pkt-line `00`",
            false,
            b"00".to_vec(),
            None,
            false,
        ),
        (
            "v0 want cut short",
            false,
            cat(&[
                &pkt_text(&format!("want {main} side-band-64k\n")),
                b"0000",
                b"0009do",
            ]),
            None,
            false,
        ),
        (
            "v0 want of an unknown sha",
            false,
            v0_want(unknown),
            Some("not our ref"),
            true,
        ),
        (
            "v0 want of a malformed sha",
            false,
            v0_want("not-a-sha"),
            None,
            true,
        ),
        (
            "v2 garbage",
            true,
            b"\x00\x01GARBAGE \xff\xfe".to_vec(),
            None,
            true,
        ),
        (
            "v2 truncated pkt-line `00`",
            true,
            b"00".to_vec(),
            None,
            false,
        ),
        (
            "v2 fetch cut short",
            true,
            cat(&[
                &pkt_text("command=fetch\n"),
                b"0001",
                &pkt_text(&format!("want {main}\n")),
                b"00",
            ]),
            None,
            false,
        ),
        (
            "v2 want of an unknown sha",
            true,
            v2_fetch(&[&format!("want {unknown}"), "done"]),
            Some("not our ref"),
            true,
        ),
        (
            "v2 unknown command",
            true,
            cat(&[
                &pkt_text("command=frobnicate\n"),
                &pkt_text("object-format=sha1\n"),
                b"0000",
            ]),
            None,
            true,
        ),
        (
            "v2 missing command=",
            true,
            cat(&[&pkt_text("fetch\n"), b"0000"]),
            None,
            true,
        ),
        (
            "v2 want-ref of an unknown ref",
            true,
            v2_fetch(&["want-ref refs/heads/nope", "done"]),
            None,
            true,
        ),
    ];
    for (case, v2, body, reason, strict) in cases {
        let before = Disk::read(&repo.path);
        let headers: Vec<(&str, &str)> = if v2 {
            vec![("git-protocol", "version=2")]
        } else {
            vec![]
        };
        let sent = format!("{:?}", String::from_utf8_lossy(&body));
        match post(&srv, &repo, "git-upload-pack", &headers, body).await {
            Err(e) => f.0.push(format!("[{case}] sent {sent}: {e}")),
            Ok(r) => {
                f.check(!r.has("PACK"), || {
                    format!("[{case}] a pack was sent: {}", r.show())
                });
                f.check(r.status < 500, || {
                    format!("[{case}] server error: {}", r.show())
                });
                if strict {
                    f.check(r.is_refusal(), || {
                        format!(
                            "[{case}] sent {sent}\n  expected an ERR pkt-line or a 4xx, got {}",
                            r.show()
                        )
                    });
                }
                if let Some(reason) = reason {
                    f.check(r.has("ERR ") && r.has(reason), || {
                        format!(
                            "[{case}] sent {sent}\n  expected an ERR line with {reason:?}, got {}",
                            r.show()
                        )
                    });
                }
            }
        }
        f.untouched(case, &repo.path, &before).await;
    }

    // Still healthy: /health, and a normal clone in both protocol versions.
    f.check(health(&srv).await == 200, || {
        "GET /health is not 200 afterwards".into()
    });
    for v in [0u8, 2] {
        let cv = Client::new(v);
        let out = cv
            .run(cv.home(), &["clone", &repo.url(&srv), "after"])
            .await;
        f.check(out.ok, || format!("[clone v{v} afterwards] failed:\n{out}"));
        if out.ok {
            let head = cv.rev(&cv.dir("after"), "HEAD").await;
            f.check(head == main, || {
                format!("[clone v{v} afterwards] HEAD {head} != {main}")
            });
        }
    }
    f.finish("upload_pack_survives_bad_requests_in_v0_and_v2");
}

// ---------------------------------------------------------------------------------------------
// 3. Sixteen concurrent pushes to one branch
// ---------------------------------------------------------------------------------------------

fn is_rejection(out: &Out) -> bool {
    ["rejected", "fetch first", "failed to lock"]
        .iter()
        .any(|m| out.stderr.contains(m))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_pushes_have_one_winner_and_lose_nothing() {
    const N: usize = 16;
    let srv = TestServer::start().await;
    let repo = new_repo(&srv, "stampede").await;
    let c = Client::new(2);
    let url = repo.url(&srv);
    let (_, base) = seed(&c, &url, "seed", "base").await;

    let names: Vec<String> = (0..N).map(|i| format!("racer-{i}")).collect();
    let dirs: Vec<PathBuf> =
        futures_util::future::join_all(names.iter().map(|n| c.clone(&url, n))).await;
    let mut commits = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        assert_eq!(c.rev(d, "HEAD").await, base, "clone {i} starts at the base");
        let name = format!("racer-{i}.txt");
        commits.push(c.commit(d, &name, format!("{i}\n").as_bytes(), &name).await);
    }

    let push = ["push", "origin", "main"];
    let results = futures_util::future::join_all(dirs.iter().map(|d| c.run(d, &push))).await;
    let winners: Vec<usize> = (0..N).filter(|&i| results[i].ok).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one of {N} racing pushes wins; winners {winners:?}:\n{}",
        results
            .iter()
            .map(|o| o.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let winner = winners[0];
    for (i, out) in results.iter().enumerate().filter(|(i, _)| *i != winner) {
        assert!(
            is_rejection(out),
            "racer {i} failed without a rejection:\n{out}"
        );
    }
    let disk = Disk::read(&repo.path);
    assert_eq!(
        disk.refs.get("refs/heads/main"),
        Some(&commits[winner]),
        "the winner's commit is on main"
    );
    assert!(
        disk.incoming().is_empty(),
        "quarantines left: {:?}",
        disk.incoming()
    );
    if let Some(p) = fsck_problems(&repo.path) {
        panic!("after the race: {p}");
    }

    // Every loser rebases and retries until it lands; they all retry at once.
    let losers: Vec<usize> = (0..N).filter(|&i| i != winner).collect();
    let retry = |i: usize| {
        let (c, d) = (&c, &dirs[i]);
        async move {
            for attempt in 1..=60 {
                let pull = c
                    .run(d, &["pull", "-q", "--rebase", "origin", "main"])
                    .await;
                assert!(
                    pull.ok,
                    "racer {i}, attempt {attempt}: pull --rebase failed:\n{pull}"
                );
                let out = c.run(d, &push).await;
                if out.ok {
                    return (i, c.rev(d, "HEAD").await, attempt);
                }
                assert!(
                    is_rejection(&out),
                    "racer {i}, attempt {attempt}: failed without a rejection:\n{out}"
                );
            }
            panic!("racer {i} never landed in 60 attempts");
        }
    };
    let landed = futures_util::future::join_all(losers.iter().map(|&i| retry(i))).await;

    let home = c.home().to_owned();
    let count = git_out(
        &repo.path,
        &home,
        &["rev-list", "--count", "refs/heads/main"],
    );
    assert_eq!(count, (1 + N).to_string(), "base + {N} commits on main");
    // Every acknowledged commit is on main.
    let mut acked = vec![commits[winner].clone()];
    acked.extend(landed.iter().map(|(_, sha, _)| sha.clone()));
    for sha in &acked {
        let ok = git(&repo.path, &home)
            .args(["merge-base", "--is-ancestor", sha, "refs/heads/main"])
            .status()
            .expect("merge-base")
            .success();
        assert!(ok, "acknowledged commit {sha} is not on main");
    }
    let files = git_out(
        &repo.path,
        &home,
        &["ls-tree", "--name-only", "refs/heads/main"],
    );
    for i in 0..N {
        assert!(
            files.lines().any(|l| l == format!("racer-{i}.txt")),
            "racer-{i}.txt on main: {files}"
        );
    }
    let disk = Disk::read(&repo.path);
    assert!(
        disk.incoming().is_empty(),
        "quarantines left: {:?}",
        disk.incoming()
    );
    if let Some(p) = fsck_problems(&repo.path) {
        panic!("after all retries: {p}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Pushes that die half-way
// ---------------------------------------------------------------------------------------------

/// A TCP proxy in front of the server that forwards at most `budget` bytes of what each client
/// connection sends (the rest is read and dropped, so the upload stalls at the server), and
/// passes everything back. When the client goes away, both sides are closed.
struct StallingProxy {
    addr: SocketAddr,
    stalled: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl StallingProxy {
    fn start(target: SocketAddr, budget: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let stalled = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (stalled.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || proxy_conn(client, target, budget, &st));
            }
        });
        Self {
            addr,
            stalled,
            stop,
        }
    }
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
    }
}

fn proxy_conn(mut client: TcpStream, target: SocketAddr, budget: u64, stalled: &AtomicBool) {
    let Ok(mut server) = TcpStream::connect(target) else {
        return;
    };
    let (Ok(mut server_r), Ok(mut client_w)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut server_r, &mut client_w);
        let _ = client_w.shutdown(Shutdown::Both);
        let _ = server_r.shutdown(Shutdown::Both);
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if sent < budget {
            let take = (n as u64).min(budget - sent) as usize;
            if server.write_all(&buf[..take]).is_err() {
                break;
            }
            sent += take as u64;
            if sent >= budget {
                stalled.store(true, Ordering::SeqCst);
            }
        }
    }
    let _ = server.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Both);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_killed_half_way_leaves_nothing_behind() {
    let srv = TestServer::start().await;
    let repo = new_repo(&srv, "killed").await;
    let c = Client::new(2);
    let (work, main) = seed(&c, &repo.url(&srv), "work", "one").await;
    c.commit(
        &work,
        "big.bin",
        &random_bytes(30 << 20, 42),
        "30 MB of noise",
    )
    .await;
    let before = Disk::read(&repo.path);

    // Through a proxy that lets 8 MB of the upload through, then stalls it.
    let target: SocketAddr = hostport(&srv).parse().expect("server addr");
    let proxy = StallingProxy::start(target, 8 << 20);
    let url = clone_url_at(&proxy.addr.to_string(), repo.org, &repo.name, &repo.token);
    let mut cmd = c.command(&work, &["push", &url, "HEAD:refs/heads/main"]);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn git push");
    let pgid = child.id().expect("git pid");

    // Wait until the server is ingesting (8 MB in, a quarantine exists), then kill git and
    // everything it started (remote-http, pack-objects).
    let start = Instant::now();
    let mut quarantine_seen = false;
    while start.elapsed() < Duration::from_secs(60) {
        quarantine_seen = !Disk::read(&repo.path).incoming().is_empty();
        if proxy.stalled.load(Ordering::SeqCst) && quarantine_seen {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("git push ended before it could be killed: {status}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        proxy.stalled.load(Ordering::SeqCst),
        "the upload never reached 8 MB"
    );
    assert!(
        quarantine_seen,
        "the server never started ingesting the pack (no objects/incoming-*)"
    );
    let killed = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .status()
        .expect("kill");
    assert!(killed.success(), "kill the git process group");
    let _ = child.wait().await;
    drop(proxy);

    let mut f = Findings::default();
    let after = settle(&repo.path, &before, Duration::from_secs(10)).await;
    f.check(after.refs.get("refs/heads/main") == Some(&main), || {
        format!("main moved: {:?}", after.refs)
    });
    f.untouched("git push killed after 8 MB of 30 MB", &repo.path, &before)
        .await;
    f.check(health(&srv).await == 200, || {
        "GET /health is not 200".into()
    });
    // The same push, uninterrupted, still works.
    let out = c
        .run(&work, &["push", "origin", "HEAD:refs/heads/main"])
        .await;
    f.check(out.ok, || format!("the retried push failed:\n{out}"));
    f.finish("push_killed_half_way_leaves_nothing_behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_connection_dropped_mid_pack_leaves_nothing_behind() {
    let srv = TestServer::start().await;
    let repo = new_repo(&srv, "dropped").await;
    let c = Client::new(2);
    let (work, main) = seed(&c, &repo.url(&srv), "work", "one").await;
    let big = c
        .commit(&work, "big.bin", &random_bytes(6 << 20, 5), "6 MB of noise")
        .await;
    let pack = c.pack(&work, &big, &main);
    let mut f = Findings::default();

    // Content-Length and chunked: a valid command, then the first half of a real pack, then the
    // connection goes away.
    for chunked in [false, true] {
        let case = if chunked {
            "chunked body dropped after half the pack"
        } else {
            "Content-Length body dropped after half the pack"
        };
        let before = Disk::read(&repo.path);
        let mut body = cat(&[&command(&main, &big, "refs/heads/main"), b"0000"]);
        let full_len = body.len() + pack.len();
        body.extend_from_slice(&pack[..pack.len() / 2]);
        let addr: SocketAddr = hostport(&srv).parse().expect("server addr");
        let path = format!("/{}/{}.git/git-receive-pack", repo.org, repo.name);
        let token = repo.token.clone();
        let repo_path = repo.path.clone();
        let saw_quarantine = tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect(addr).expect("connect");
            let length = if chunked {
                "Transfer-Encoding: chunked".to_owned()
            } else {
                format!("Content-Length: {full_len}")
            };
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/x-git-receive-pack-request\r\n{length}\r\n\r\n"
            );
            s.write_all(head.as_bytes()).expect("write head");
            for chunk in body.chunks(64 * 1024) {
                if chunked {
                    s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                        .expect("chunk size");
                    s.write_all(chunk).expect("chunk");
                    s.write_all(b"\r\n").expect("chunk end");
                } else {
                    s.write_all(chunk).expect("body");
                }
            }
            s.flush().expect("flush");
            // Wait for the server to be ingesting, then vanish.
            let start = Instant::now();
            let mut seen = false;
            while start.elapsed() < Duration::from_secs(10) {
                if !Disk::read(&repo_path).incoming().is_empty() {
                    seen = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = s.shutdown(Shutdown::Both);
            seen
        })
        .await
        .expect("raw client");
        f.check(saw_quarantine, || {
            format!("[{case}] the server never started ingesting (no objects/incoming-*)")
        });
        f.untouched(case, &repo.path, &before).await;
    }
    f.check(health(&srv).await == 200, || {
        "GET /health is not 200".into()
    });
    let out = c
        .run(&work, &["push", "origin", "HEAD:refs/heads/main"])
        .await;
    f.check(out.ok, || format!("the push afterwards failed:\n{out}"));
    f.finish("push_connection_dropped_mid_pack_leaves_nothing_behind");
}

// ---------------------------------------------------------------------------------------------
// gzip request bodies (found through the "claims gzip but is not" case above)
// ---------------------------------------------------------------------------------------------

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// git compresses fetch requests over 1 KB (`Content-Encoding: gzip`), e.g. a clone of a
/// repository with many branches (one `want` line each); every such request must be served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_compressed_requests_are_served() {
    let srv = TestServer::start().await;
    let repo = new_repo(&srv, "many-branches").await;
    let c = Client::new(2);
    let (work, main) = seed(&c, &repo.url(&srv), "work", "one").await;
    // 64 branches on 64 commits: a clone wants 64 tips, ~3 KB of want lines.
    let mut specs = Vec::new();
    for i in 0..64 {
        c.ok(&work, &["checkout", "-q", "-B", &format!("b{i:02}"), &main])
            .await;
        c.commit(
            &work,
            "b.txt",
            format!("{i}\n").as_bytes(),
            &format!("b{i}"),
        )
        .await;
        specs.push(format!("b{i:02}"));
    }
    let mut args = vec!["push", "-q", "origin"];
    args.extend(specs.iter().map(String::as_str));
    c.ok(&work, &args).await;
    let mut f = Findings::default();

    for v in [0u8, 2] {
        let before = Disk::read(&repo.path);
        let cv = Client::new(v);
        let out = cv
            .run(
                cv.home(),
                &[
                    "-c",
                    "http.postBuffer=1048576",
                    "clone",
                    &repo.url(&srv),
                    "all",
                ],
            )
            .await;
        f.check(out.ok, || {
            format!("[git clone v{v} of 64 branches] failed:\n{out}")
        });
        f.untouched(&format!("git clone v{v}"), &repo.path, &before)
            .await;
    }

    // Raw: a gzip-compressed v2 ls-refs, and a gzip-compressed valid push.
    let body = gzip(&cat(&[
        &pkt_text("command=ls-refs\n"),
        b"0001",
        &pkt_text("symrefs\n"),
        b"0000",
    ]));
    match post(
        &srv,
        &repo,
        "git-upload-pack",
        &[("git-protocol", "version=2"), ("content-encoding", "gzip")],
        body,
    )
    .await
    {
        Err(e) => f.0.push(format!("[gzip v2 ls-refs] {e}")),
        Ok(r) => f.check(r.status == 200 && r.has("refs/heads/main"), || {
            format!("[gzip v2 ls-refs] expected the refs, got {}", r.show())
        }),
    }
    c.ok(&work, &["checkout", "-q", "main"]).await;
    let next = c.commit(&work, "gz.txt", b"gz\n", "gzip push").await;
    let pack = c.pack(&work, &next, &main);
    let body = gzip(&cat(&[
        &command(&main, &next, "refs/heads/main"),
        b"0000",
        &pack,
    ]));
    match post(
        &srv,
        &repo,
        "git-receive-pack",
        &[("content-encoding", "gzip")],
        body,
    )
    .await
    {
        Err(e) => f.0.push(format!("[gzip push] {e}")),
        Ok(r) => f.check(r.has("unpack ok") && r.has("ok refs/heads/main"), || {
            format!("[gzip push] expected success, got {}", r.show())
        }),
    }
    f.check(health(&srv).await == 200, || {
        "GET /health is not 200".into()
    });
    f.finish("gzip_compressed_requests_are_served");
}

// ---------------------------------------------------------------------------------------------
// Deletes without an old value, and the ref-update limit
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_without_an_old_value_never_crash_the_server() {
    let srv = TestServer::start().await;
    let p = pushable(&srv, "zero-old").await;
    let mut f = Findings::default();

    // Deleting a ref that does not exist, with no old value: reported done (as C git does),
    // nothing changes.
    let before = Disk::read(&p.repo.path);
    let body = cat(&[&command(ZERO, ZERO, "refs/heads/nope"), b"0000"]);
    match post(&srv, &p.repo, "git-receive-pack", &[], body).await {
        Err(e) => f.0.push(format!("[delete missing] {e}")),
        Ok(r) => {
            f.check(r.status == 200 && r.has("ok refs/heads/nope\n"), || {
                format!(
                    "[delete missing] expected `ok refs/heads/nope`, got {}",
                    r.show()
                )
            });
        }
    }
    f.untouched("delete missing", &p.repo.path, &before).await;
    f.check(health_is_ok(&srv).await, || {
        "server unhealthy after a zero-old delete".into()
    });

    // Deleting an existing ref with no old value removes it (as git does).
    let out = p
        .client
        .run(
            &p.work,
            &["push", "origin", &format!("{}:refs/heads/side", p.main)],
        )
        .await;
    f.check(out.ok, || format!("[create side] {out}"));
    let body = cat(&[&command(ZERO, ZERO, "refs/heads/side"), b"0000"]);
    match post(&srv, &p.repo, "git-receive-pack", &[], body).await {
        Err(e) => f.0.push(format!("[delete side] {e}")),
        Ok(r) => {
            f.check(r.status == 200 && r.has("ok refs/heads/side"), || {
                format!(
                    "[delete side] expected `ok refs/heads/side`, got {}",
                    r.show()
                )
            });
        }
    }
    let refs = crate::common::git_out(
        &p.repo.path,
        srv.dir.path(),
        &["for-each-ref", "--format=%(refname)"],
    );
    f.check(
        !refs.contains("refs/heads/side") && refs.contains("refs/heads/main"),
        || format!("[delete side] refs afterwards: {refs}"),
    );
    f.finish("deletes_without_an_old_value_never_crash_the_server");
}

async fn health_is_ok(srv: &TestServer) -> bool {
    health(srv).await == 200
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_over_the_ref_update_limit_are_refused_whole() {
    let srv = TestServer::start_with(crate::common::Options {
        env: vec![("GIT_MAX_REF_UPDATES".into(), "2".into())],
        ..Default::default()
    })
    .await;
    let p = pushable(&srv, "many-refs").await;
    let mut f = Findings::default();
    let before = Disk::read(&p.repo.path);
    let out = p
        .client
        .run(
            &p.work,
            &[
                "push",
                "origin",
                "HEAD:refs/heads/a",
                "HEAD:refs/heads/b",
                "HEAD:refs/heads/c",
            ],
        )
        .await;
    f.check(
        !out.ok && out.stderr.contains("too many ref updates"),
        || format!("[3 refs, limit 2] expected a refusal naming the limit:\n{out}"),
    );
    f.untouched("3 refs, limit 2", &p.repo.path, &before).await;
    let out = p
        .client
        .run(
            &p.work,
            &["push", "origin", "HEAD:refs/heads/a", "HEAD:refs/heads/b"],
        )
        .await;
    f.check(out.ok, || format!("[2 refs, limit 2] {out}"));
    f.finish("pushes_over_the_ref_update_limit_are_refused_whole");
}

// ---------------------------------------------------------------------------------------------
// Many pushes: packs are consolidated
// ---------------------------------------------------------------------------------------------

fn pack_count(repo: &Path) -> usize {
    std::fs::read_dir(repo.join("objects/pack"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_pushes_get_their_packs_consolidated() {
    let srv = TestServer::start().await;
    let p = pushable(&srv, "many-pushes").await;
    let c = &p.client;
    let mut last = String::new();
    for i in 0..40 {
        last = c
            .commit(
                &p.work,
                &format!("n{i}.txt"),
                format!("push {i}\n").as_bytes(),
                &format!("push {i}"),
            )
            .await;
        let out = c.run(&p.work, &["push", "-q", "origin", "HEAD:main"]).await;
        assert!(out.ok, "push {i}: {out}");
    }
    // Each push added a pack; past 32 they are merged in the background.
    let start = std::time::Instant::now();
    while pack_count(&p.repo.path) > 10 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "packs never consolidated: {}",
            pack_count(&p.repo.path)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !p.repo
            .path
            .join("objects/pack/orbit-consolidate.lock")
            .exists()
            || pack_count(&p.repo.path) <= 10
    );
    if let Some(problems) = fsck_problems(&p.repo.path) {
        panic!("after consolidation: {problems}");
    }
    let main = crate::common::git_out(
        &p.repo.path,
        srv.dir.path(),
        &["rev-parse", "refs/heads/main"],
    );
    assert_eq!(main, last);
    // A fresh clone has every commit.
    let fresh = c
        .clone(&p.repo.url(&srv), "fresh-after-consolidation")
        .await;
    let count = c.run(&fresh, &["rev-list", "--count", "HEAD"]).await;
    assert_eq!(count.stdout.trim(), "42", "{count}");
    // The upkeep wrote a commit-graph of the history, which C git verifies and reads.
    let graph = p.repo.path.join("objects/info/commit-graph");
    let start = std::time::Instant::now();
    while !graph.is_file() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no commit-graph written"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    crate::common::git_out(
        &p.repo.path,
        srv.dir.path(),
        &["commit-graph", "verify", "--no-progress"],
    );
    let log = crate::common::git_out(&p.repo.path, srv.dir.path(), &["log", "--format=%H"]);
    assert_eq!(log.lines().count(), 42);
}
