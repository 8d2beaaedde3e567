//! Native git smart HTTP, driven by the real git CLI as a client: clone and fetch over protocol v0
//! and v2, every kind of push (new branch, fast-forward, force, delete, tags, atomic, push
//! options), rejections (non-fast-forward, racing pushes, archived repositories), credentials,
//! shallow and partial clones, and the audit event a push leaves. Plus raw HTTP checks of the
//! advertisements, statuses and authentication challenges.
//!
//! Every server here is the `orbit` binary started with an empty `PATH`: no `git` executable is
//! reachable from the server, so everything it serves is native.
//!
//! The git CLI runs hermetically (no user or system config, no prompts) through
//! `tokio::process`, so the server keeps serving on the test runtime while git waits on it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

use crate::common::{git, Auth, TestServer};

/// The wire protocol versions every transfer test runs with.
const VERSIONS: [u8; 2] = [0, 2];

/// How long one git command may take before the test fails instead of hanging.
const GIT_TIMEOUT: Duration = Duration::from_secs(180);

/// The result of one git command.
#[derive(Debug)]
struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Out {
    /// The trimmed stdout.
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

    /// A path inside the home directory.
    fn dir(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// Runs `git -c protocol.version=N ... <args>` in `dir` with extra environment.
    async fn run_env(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut cmd = git(dir, self.home.path());
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", "Orbit Tester")
            .env("GIT_AUTHOR_EMAIL", "tester@orbit.test")
            .env("GIT_COMMITTER_NAME", "Orbit Tester")
            .env("GIT_COMMITTER_EMAIL", "tester@orbit.test")
            .stdin(Stdio::null())
            .arg("-c")
            .arg(format!("protocol.version={}", self.version))
            .args([
                "-c",
                "init.defaultBranch=main",
                "-c",
                "advice.detachedHead=false",
            ])
            .args(args);
        for &(k, v) in env {
            cmd.env(k, v);
        }
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let out = match tokio::time::timeout(GIT_TIMEOUT, cmd.output()).await {
            Ok(r) => r.expect("run git"),
            Err(_) => panic!(
                "v{}: git {args:?} timed out after {GIT_TIMEOUT:?}",
                self.version
            ),
        };
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn run(&self, dir: &Path, args: &[&str]) -> Out {
        self.run_env(dir, args, &[]).await
    }

    /// Runs git and asserts it succeeded.
    async fn ok(&self, dir: &Path, args: &[&str]) -> Out {
        let out = self.run(dir, args).await;
        assert!(out.ok, "v{}: git {args:?} failed:\n{out}", self.version);
        out
    }

    /// Runs git and asserts it failed.
    async fn fail(&self, dir: &Path, args: &[&str]) -> Out {
        let out = self.run(dir, args).await;
        assert!(
            !out.ok,
            "v{}: git {args:?} should have failed:\n{out}",
            self.version
        );
        out
    }

    /// `git rev-parse --verify <rev>` in `dir`.
    async fn rev(&self, dir: &Path, rev: &str) -> String {
        self.ok(dir, &["rev-parse", "--verify", rev]).await.text()
    }

    /// `git log --format=%H` of HEAD in `dir`.
    async fn log(&self, dir: &Path) -> String {
        self.ok(dir, &["log", "--format=%H"]).await.text()
    }

    /// `git clone [extra...] <url> <name>` inside the home directory; asserts success.
    async fn clone(&self, url: &str, name: &str, extra: &[&str]) -> (PathBuf, Out) {
        let mut args = vec!["clone"];
        args.extend_from_slice(extra);
        args.push(url);
        args.push(name);
        let out = self.ok(self.home(), &args).await;
        (self.dir(name), out)
    }

    /// Writes `file`, stages and commits it; returns the new HEAD.
    async fn commit(&self, dir: &Path, file: &str, content: &str, message: &str) -> String {
        std::fs::write(dir.join(file), content).expect("write work file");
        self.ok(dir, &["add", file]).await;
        self.ok(dir, &["commit", "-q", "-m", message]).await;
        self.rev(dir, "HEAD").await
    }

    /// `git fsck --strict` in `dir` succeeds and reports nothing wrong.
    async fn fsck_clean(&self, dir: &Path) {
        let out = self.ok(dir, &["fsck", "--strict"]).await;
        let all = format!("{}\n{}", out.stdout, out.stderr).to_lowercase();
        for bad in ["error", "warning", "missing", "broken"] {
            assert!(
                !all.contains(bad),
                "v{}: fsck of {} reports {bad}:\n{out}",
                self.version,
                dir.display()
            );
        }
    }
}

/// `http://[x-token:<jwt>@]127.0.0.1:PORT/{org}/{name}.git`.
fn clone_url(srv: &TestServer, org: Uuid, name: &str, token: Option<&str>) -> String {
    let hostport = srv
        .base
        .strip_prefix("http://")
        .expect("the test server base is http://");
    match token {
        Some(t) => format!("http://x-token:{t}@{hostport}/{org}/{name}.git"),
        None => format!("http://{hostport}/{org}/{name}.git"),
    }
}

/// A repository created through the REST API, with its owner and on-disk path.
struct Repo {
    owner: Uuid,
    org: Uuid,
    name: String,
    id: String,
    path: PathBuf,
    /// The owner's token.
    token: String,
}

impl Repo {
    /// The clone URL with the owner's token.
    fn url(&self, srv: &TestServer) -> String {
        clone_url(srv, self.org, &self.name, Some(self.token.as_str()))
    }

    /// The clone URL without credentials.
    fn anon_url(&self, srv: &TestServer) -> String {
        clone_url(srv, self.org, &self.name, None)
    }

    /// A REST path under this repository, e.g. `rest("/events")`.
    fn rest(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.org, self.name)
    }
}

/// Creates a repository in a fresh org, owned by a fresh user.
async fn new_repo(srv: &TestServer, name: &str, visibility: &str) -> Repo {
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    let body = srv.create_repo(owner, org, name, visibility).await;
    let id = body["id"].as_str().expect("id").to_owned();
    let path = srv.repo_path(&id).await;
    Repo {
        owner,
        org,
        name: name.to_owned(),
        id,
        path,
        token: srv.token(owner),
    }
}

/// Clones the (empty) repository at `url` into `dir`, commits `file.txt` once per entry of
/// `contents` (content `"<entry>\n"`, message `<entry>`), pushes to `main`; returns the work tree
/// and the commits, oldest first.
async fn seed(c: &Client, url: &str, dir: &str, contents: &[&str]) -> (PathBuf, Vec<String>) {
    let (work, _) = c.clone(url, dir, &[]).await;
    c.ok(&work, &["symbolic-ref", "HEAD", "refs/heads/main"])
        .await;
    let mut shas = Vec::new();
    for &content in contents {
        shas.push(
            c.commit(&work, "file.txt", &format!("{content}\n"), content)
                .await,
        );
    }
    c.ok(&work, &["push", "origin", "HEAD:refs/heads/main"])
        .await;
    (work, shas)
}

/// Every ref of the server's repository at `path`, name to object id.
async fn server_refs(c: &Client, path: &Path) -> BTreeMap<String, String> {
    let out = c
        .ok(path, &["for-each-ref", "--format=%(refname) %(objectname)"])
        .await;
    out.stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(r, s)| (r.to_owned(), s.to_owned()))
        .collect()
}

/// Whether git reports that the server wanted (other) credentials.
fn auth_refused(out: &Out) -> bool {
    [
        "401",
        "Authentication failed",
        "could not read Username",
        "terminal prompts disabled",
    ]
    .iter()
    .any(|m| out.stderr.contains(m))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The object count in the header of a pack file (as dumped by `GIT_TRACE_PACKFILE`).
fn pack_object_count(path: &Path) -> u32 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "GIT_TRACE_PACKFILE left no pack at {} (was a pack sent on side-band?): {e}",
            path.display()
        )
    });
    assert!(
        bytes.len() >= 12 && bytes.starts_with(b"PACK"),
        "not a pack: {} bytes",
        bytes.len()
    );
    u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_repository_clones_then_takes_a_first_push() {
    let srv = TestServer::start_binary().await;
    for v in VERSIONS {
        let repo = new_repo(&srv, &format!("empty-v{v}"), "private").await;
        let c = Client::new(v);
        let url = repo.url(&srv);

        let (work, out) = c.clone(&url, "work", &[]).await;
        assert!(
            out.stderr
                .contains("You appear to have cloned an empty repository"),
            "v{v}: {out}"
        );
        c.ok(&work, &["symbolic-ref", "HEAD", "refs/heads/main"])
            .await;
        let sha = c
            .commit(&work, "hello.txt", "hello orbit\n", "first commit")
            .await;
        c.ok(&work, &["push", "origin", "HEAD:main"]).await;

        assert_eq!(c.rev(&repo.path, "refs/heads/main").await, sha, "v{v}");
        assert_eq!(
            c.rev(&repo.path, "HEAD").await,
            sha,
            "v{v}: the server's HEAD is main"
        );
        c.fsck_clean(&repo.path).await;

        let (again, _) = c.clone(&url, "again", &[]).await;
        assert_eq!(read(&again.join("hello.txt")), "hello orbit\n", "v{v}");
        assert_eq!(c.log(&again).await, c.log(&work).await, "v{v}");
        assert_eq!(
            c.ok(&again, &["symbolic-ref", "--short", "HEAD"])
                .await
                .text(),
            "main",
            "v{v}: the clone checks out the default branch"
        );
        c.fsck_clean(&again).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_version_is_negotiated_as_asked() {
    let srv = TestServer::start_binary().await;
    for v in VERSIONS {
        let repo = new_repo(&srv, &format!("proto-v{v}"), "private").await;
        let c = Client::new(v);
        let url = repo.url(&srv);
        let (_, shas) = seed(&c, &url, "seed", &["one"]).await;

        let out = c
            .run_env(
                c.home(),
                &["ls-remote", "--symref", url.as_str()],
                &[("GIT_TRACE_PACKET", "1")],
            )
            .await;
        assert!(out.ok, "v{v}: ls-remote failed:\n{out}");
        let spoke_v2 = out.stderr.contains("< version 2");
        assert_eq!(spoke_v2, v == 2, "v{v}: protocol version 2 spoken?\n{out}");
        assert!(
            out.stdout.contains("ref: refs/heads/main\tHEAD"),
            "v{v}: HEAD symref advertised:\n{out}"
        );
        assert!(
            out.stdout
                .contains(&format!("{}\trefs/heads/main", shas[0])),
            "v{v}: {out}"
        );
        assert!(
            out.stdout.contains(&format!("{}\tHEAD", shas[0])),
            "v{v}: {out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_fetch_sends_only_what_is_missing() {
    let srv = TestServer::start_binary().await;
    for v in VERSIONS {
        let repo = new_repo(&srv, &format!("fetch-v{v}"), "private").await;
        let c = Client::new(v);
        let url = repo.url(&srv);
        let (_, shas) = seed(&c, &url, "seed", &["one", "two", "three"]).await;

        let (first, _) = c.clone(&url, "first", &[]).await;
        assert_eq!(c.rev(&first, "origin/main").await, shas[2], "v{v}");

        let (second, _) = c.clone(&url, "second", &[]).await;
        c.commit(&second, "f.txt", "four\n", "four").await;
        let five = c.commit(&second, "g.txt", "five\n", "five").await;
        c.ok(&second, &["push", "origin", "main"]).await;

        // Two commits, two trees, two blobs are new; the rest the first clone already has.
        let trace = c.dir("fetch.pack");
        let trace_env = trace.to_str().expect("utf-8 temp path").to_owned();
        let out = c
            .run_env(
                &first,
                &["fetch", "origin"],
                &[("GIT_TRACE_PACKFILE", trace_env.as_str())],
            )
            .await;
        assert!(out.ok, "v{v}: fetch failed:\n{out}");
        assert_eq!(c.rev(&first, "origin/main").await, five, "v{v}");
        assert_eq!(
            c.ok(&first, &["rev-list", "--count", "origin/main"])
                .await
                .text(),
            "5",
            "v{v}"
        );
        assert_eq!(
            pack_object_count(&trace),
            6,
            "v{v}: an incremental fetch sends only the missing objects"
        );
        c.fsck_clean(&first).await;

        c.ok(&first, &["merge", "-q", "--ff-only", "origin/main"])
            .await;
        assert_eq!(read(&first.join("g.txt")), "five\n", "v{v}");

        // Nothing new: a second fetch succeeds and changes nothing.
        c.ok(&first, &["fetch", "origin"]).await;
        assert_eq!(c.rev(&first, "origin/main").await, five, "v{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_create_update_force_delete_tag_and_atomic() {
    let srv = TestServer::start_binary().await;
    for v in VERSIONS {
        let repo = new_repo(&srv, &format!("refs-v{v}"), "private").await;
        let c = Client::new(v);
        let url = repo.url(&srv);
        let (work, shas) = seed(&c, &url, "work", &["one"]).await;
        let main = shas[0].clone();
        let mut want = BTreeMap::new();
        want.insert("refs/heads/main".to_owned(), main.clone());
        assert_eq!(server_refs(&c, &repo.path).await, want, "v{v}: seeded");

        // A new branch.
        c.ok(&work, &["checkout", "-q", "-b", "feature"]).await;
        let f1 = c.commit(&work, "feature.txt", "f1\n", "feature 1").await;
        c.ok(&work, &["push", "origin", "feature"]).await;
        want.insert("refs/heads/feature".to_owned(), f1.clone());
        assert_eq!(server_refs(&c, &repo.path).await, want, "v{v}: new branch");

        // A fast-forward.
        let f2 = c.commit(&work, "feature.txt", "f2\n", "feature 2").await;
        c.ok(&work, &["push", "origin", "feature"]).await;
        want.insert("refs/heads/feature".to_owned(), f2.clone());
        assert_eq!(
            server_refs(&c, &repo.path).await,
            want,
            "v{v}: fast-forward"
        );

        // A rewrite: refused without --force, taken with it.
        c.ok(
            &work,
            &["commit", "-q", "--amend", "-m", "feature 2, amended"],
        )
        .await;
        let f2b = c.rev(&work, "HEAD").await;
        assert_ne!(f2b, f2);
        let out = c.fail(&work, &["push", "origin", "feature"]).await;
        assert!(out.stderr.contains("[rejected]"), "v{v}: {out}");
        assert_eq!(server_refs(&c, &repo.path).await, want, "v{v}: not forced");
        c.ok(&work, &["push", "--force", "origin", "feature"]).await;
        want.insert("refs/heads/feature".to_owned(), f2b.clone());
        assert_eq!(server_refs(&c, &repo.path).await, want, "v{v}: forced");

        // A delete.
        c.ok(&work, &["push", "origin", ":feature"]).await;
        want.remove("refs/heads/feature");
        assert_eq!(server_refs(&c, &repo.path).await, want, "v{v}: deleted");

        // A lightweight and an annotated tag in one push.
        c.ok(&work, &["checkout", "-q", "main"]).await;
        c.ok(&work, &["tag", "v1"]).await;
        c.ok(&work, &["tag", "-a", "v2", "-m", "release 2"]).await;
        let v2 = c.rev(&work, "refs/tags/v2").await;
        assert_ne!(v2, main, "an annotated tag is its own object");
        c.ok(&work, &["push", "origin", "v1", "v2"]).await;
        want.insert("refs/tags/v1".to_owned(), main.clone());
        want.insert("refs/tags/v2".to_owned(), v2.clone());
        assert_eq!(server_refs(&c, &repo.path).await, want, "v{v}: tags");
        assert_eq!(
            c.ok(&repo.path, &["cat-file", "-t", "refs/tags/v2"])
                .await
                .text(),
            "tag"
        );
        assert_eq!(c.rev(&repo.path, "refs/tags/v2^{commit}").await, main);

        // A fresh clone gets the tags; a tag on a commit no branch reaches is fetched by name.
        let (fresh, _) = c.clone(&url, "fresh", &[]).await;
        assert_eq!(c.rev(&fresh, "refs/tags/v1").await, main, "v{v}");
        assert_eq!(c.rev(&fresh, "refs/tags/v2").await, v2, "v{v}");
        c.ok(&work, &["checkout", "-q", "--detach"]).await;
        let loose = c
            .commit(&work, "loose.txt", "loose\n", "only reachable from a tag")
            .await;
        c.ok(&work, &["tag", "-a", "v3", "-m", "release 3"]).await;
        let v3 = c.rev(&work, "refs/tags/v3").await;
        c.ok(&work, &["push", "origin", "v3"]).await;
        c.ok(&work, &["checkout", "-q", "main"]).await;
        want.insert("refs/tags/v3".to_owned(), v3.clone());
        assert_eq!(server_refs(&c, &repo.path).await, want, "v{v}: tag v3");
        c.ok(&fresh, &["fetch", "origin", "tag", "v3"]).await;
        assert_eq!(c.rev(&fresh, "refs/tags/v3").await, v3, "v{v}");
        assert_eq!(c.rev(&fresh, "v3^{commit}").await, loose, "v{v}");
        c.fsck_clean(&fresh).await;

        // --atomic with two refs: both move.
        let m2 = c.commit(&work, "file.txt", "two\n", "two").await;
        c.ok(
            &work,
            &[
                "push",
                "--atomic",
                "origin",
                "main",
                "main:refs/heads/other",
            ],
        )
        .await;
        want.insert("refs/heads/main".to_owned(), m2.clone());
        want.insert("refs/heads/other".to_owned(), m2.clone());
        assert_eq!(server_refs(&c, &repo.path).await, want, "v{v}: atomic");

        // --atomic where the server refuses one ref (only refs/heads and refs/tags are
        // writable): neither moves.
        c.commit(&work, "file.txt", "three\n", "three").await;
        let out = c
            .fail(
                &work,
                &[
                    "push",
                    "--atomic",
                    "origin",
                    "main",
                    "main:refs/changes/forbidden",
                ],
            )
            .await;
        assert!(out.stderr.contains("rejected"), "v{v}: {out}");
        assert_eq!(
            server_refs(&c, &repo.path).await,
            want,
            "v{v}: a failed atomic push moves nothing"
        );

        c.fsck_clean(&repo.path).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_fast_forward_push_is_rejected_until_rebased() {
    let srv = TestServer::start_binary().await;
    for v in VERSIONS {
        let repo = new_repo(&srv, &format!("nonff-v{v}"), "private").await;
        let c = Client::new(v);
        let url = repo.url(&srv);
        seed(&c, &url, "seed", &["one"]).await;

        let (a, _) = c.clone(&url, "a", &[]).await;
        let (b, _) = c.clone(&url, "b", &[]).await;
        let sa = c.commit(&a, "a.txt", "a\n", "from a").await;
        c.commit(&b, "b.txt", "b\n", "from b").await;
        c.ok(&a, &["push", "origin", "main"]).await;

        let out = c.fail(&b, &["push", "origin", "main"]).await;
        assert!(
            out.stderr.contains("[rejected]")
                && (out.stderr.contains("fetch first") || out.stderr.contains("non-fast-forward")),
            "v{v}: {out}"
        );
        assert_eq!(c.rev(&repo.path, "refs/heads/main").await, sa, "v{v}");

        // Knowing the new tip does not make the push a fast-forward.
        c.ok(&b, &["fetch", "origin"]).await;
        let out = c.fail(&b, &["push", "origin", "main"]).await;
        assert!(
            out.stderr.contains("[rejected]") && out.stderr.contains("non-fast-forward"),
            "v{v}: {out}"
        );
        assert_eq!(c.rev(&repo.path, "refs/heads/main").await, sa, "v{v}");

        // Rebased, it goes through and keeps the first push.
        c.ok(&b, &["rebase", "-q", "origin/main"]).await;
        let sb = c.rev(&b, "HEAD").await;
        c.ok(&b, &["push", "origin", "main"]).await;
        assert_eq!(c.rev(&repo.path, "refs/heads/main").await, sb, "v{v}");
        assert_eq!(c.rev(&repo.path, "refs/heads/main~1").await, sa, "v{v}");
        c.fsck_clean(&repo.path).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_from_one_base_never_lose_a_commit() {
    let srv = TestServer::start_binary().await;
    for v in VERSIONS {
        let repo = new_repo(&srv, &format!("race-v{v}"), "private").await;
        let c = Client::new(v);
        let url = repo.url(&srv);
        seed(&c, &url, "seed", &["base"]).await;

        let (a, _) = c.clone(&url, "a", &[]).await;
        let (b, _) = c.clone(&url, "b", &[]).await;
        let sa = c.commit(&a, "a.txt", "a\n", "racer a").await;
        let sb = c.commit(&b, "b.txt", "b\n", "racer b").await;
        let push = ["push", "origin", "main"];
        let (ra, rb) = tokio::join!(c.run(&a, &push), c.run(&b, &push));
        assert!(
            ra.ok != rb.ok,
            "v{v}: exactly one of two racing pushes wins:\n{ra}\n{rb}"
        );
        let (winner, loser) = if ra.ok { (&sa, &rb) } else { (&sb, &ra) };
        assert!(loser.stderr.contains("rejected"), "v{v}: {loser}");
        assert_eq!(
            &c.rev(&repo.path, "refs/heads/main").await,
            winner,
            "v{v}: the winner's commit is on main"
        );
        c.fsck_clean(&repo.path).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_credentials_decide_who_may_clone_and_push() {
    let srv = TestServer::start_binary().await;
    for v in VERSIONS {
        let repo = new_repo(&srv, &format!("private-v{v}"), "private").await;
        let c = Client::new(v);
        let (_, shas) = seed(&c, &repo.url(&srv), "seed", &["one"]).await;
        let (reader, writer, stranger) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        srv.add_collaborator(repo.owner, repo.org, &repo.name, reader, "reader")
            .await;
        srv.add_collaborator(repo.owner, repo.org, &repo.name, writer, "writer")
            .await;

        // Anonymous: refused with a challenge (git would prompt; prompts are off).
        let anon = repo.anon_url(&srv);
        let out = c.fail(c.home(), &["clone", anon.as_str(), "anon"]).await;
        assert!(auth_refused(&out), "v{v}: {out}");

        // A password that is not a valid token.
        let bogus = clone_url(&srv, repo.org, &repo.name, Some("not-a-jwt"));
        let out = c.fail(c.home(), &["clone", bogus.as_str(), "bogus"]).await;
        assert!(auth_refused(&out), "v{v}: {out}");

        // A valid token with no rights on the repository.
        let stranger_url = clone_url(
            &srv,
            repo.org,
            &repo.name,
            Some(srv.token(stranger).as_str()),
        );
        c.fail(c.home(), &["clone", stranger_url.as_str(), "stranger"])
            .await;

        // A reader clones but may not push: 403.
        let reader_url = clone_url(&srv, repo.org, &repo.name, Some(srv.token(reader).as_str()));
        let (rd, _) = c.clone(&reader_url, "reader", &[]).await;
        assert_eq!(read(&rd.join("file.txt")), "one\n", "v{v}");
        c.commit(&rd, "file.txt", "reader\n", "by a reader").await;
        let out = c.fail(&rd, &["push", "origin", "main"]).await;
        assert!(out.stderr.contains("403"), "v{v}: {out}");
        assert_eq!(c.rev(&repo.path, "refs/heads/main").await, shas[0], "v{v}");

        // The owner with a read-only scoped token: same.
        let scope = format!("orbit:repo:{}/{}:read", repo.org, repo.name);
        let scoped = srv.scoped(repo.owner, &scope);
        let scoped_url = clone_url(&srv, repo.org, &repo.name, Some(scoped.as_str()));
        let (sd, _) = c.clone(&scoped_url, "scoped", &[]).await;
        c.commit(&sd, "file.txt", "scoped\n", "by a read-only token")
            .await;
        let out = c.fail(&sd, &["push", "origin", "main"]).await;
        assert!(out.stderr.contains("403"), "v{v}: {out}");
        assert_eq!(c.rev(&repo.path, "refs/heads/main").await, shas[0], "v{v}");

        // A writer pushes.
        let writer_url = clone_url(&srv, repo.org, &repo.name, Some(srv.token(writer).as_str()));
        let (wd, _) = c.clone(&writer_url, "writer", &[]).await;
        let sw = c.commit(&wd, "file.txt", "writer\n", "by a writer").await;
        c.ok(&wd, &["push", "origin", "main"]).await;
        assert_eq!(c.rev(&repo.path, "refs/heads/main").await, sw, "v{v}");

        // `Authorization: Bearer` works as well as Basic.
        let bearer = format!(
            "http.extraHeader=Authorization: Bearer {}",
            srv.token(reader)
        );
        c.ok(
            c.home(),
            &["-c", bearer.as_str(), "clone", anon.as_str(), "bearer"],
        )
        .await;
        assert_eq!(c.rev(&c.dir("bearer"), "HEAD").await, sw, "v{v}");

        // A public repository: anyone clones, nobody anonymous pushes.
        let public = new_repo(&srv, &format!("public-v{v}"), "public").await;
        let (_, pshas) = seed(&c, &public.url(&srv), "public-seed", &["open"]).await;
        let (pd, _) = c.clone(&public.anon_url(&srv), "public-anon", &[]).await;
        assert_eq!(c.rev(&pd, "HEAD").await, pshas[0], "v{v}");
        assert_eq!(read(&pd.join("file.txt")), "open\n", "v{v}");
        c.commit(&pd, "file.txt", "anonymous\n", "anonymous").await;
        let out = c.fail(&pd, &["push", "origin", "main"]).await;
        assert!(auth_refused(&out), "v{v}: {out}");
        assert_eq!(
            c.rev(&public.path, "refs/heads/main").await,
            pshas[0],
            "v{v}"
        );
    }
}

/// A raw HTTP response, read whole.
struct Raw {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Raw {
    async fn send(req: reqwest::RequestBuilder) -> Self {
        let r = req.send().await.expect("send");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.expect("body").to_vec();
        Raw {
            status,
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a 401 with both a Basic (realm "orbit") and a Bearer challenge.
    fn assert_challenge(&self, what: &str) {
        assert_eq!(self.status, 401, "{what}: {}", self.text());
        let challenges: Vec<String> = self
            .headers
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect();
        assert!(
            challenges
                .iter()
                .any(|c| c.starts_with("Basic") && c.contains("realm=\"orbit\"")),
            "{what}: {challenges:?}"
        );
        assert!(
            challenges.iter().any(|c| c.starts_with("Bearer")),
            "{what}: {challenges:?}"
        );
    }
}

/// `GET {base}/{repo}/info/refs?service={service}`, `repo` being `org/name` or `org/name.git`.
fn info_refs(srv: &TestServer, repo: &str, service: &str) -> reqwest::RequestBuilder {
    srv.client
        .get(format!("{}/{repo}/info/refs?service={service}", srv.base))
}

/// `POST {base}/{repo}/{service}` with a flush packet as the body.
fn rpc(srv: &TestServer, repo: &str, service: &str) -> reqwest::RequestBuilder {
    srv.client
        .post(format!("{}/{repo}/{service}", srv.base))
        .header("content-type", format!("application/x-{service}-request"))
        .body("0000")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_http_statuses_headers_and_advertisements() {
    let srv = TestServer::start_binary().await;
    let (owner, org, reader, stranger) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    srv.create_repo(owner, org, "open", "public").await;
    srv.create_repo(owner, org, "closed", "private").await;
    srv.add_collaborator(owner, org, "open", reader, "reader")
        .await;
    srv.add_collaborator(owner, org, "closed", reader, "reader")
        .await;
    let (owner_t, reader_t, stranger_t) =
        (srv.token(owner), srv.token(reader), srv.token(stranger));
    let open = format!("{org}/open.git");
    let closed = format!("{org}/closed.git");

    // Anonymous upload-pack advertisement of a public repository (protocol v0).
    let r = Raw::send(info_refs(&srv, &open, "git-upload-pack")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        "application/x-git-upload-pack-advertisement"
    );
    assert!(
        r.body.starts_with(b"001e# service=git-upload-pack\n0000"),
        "{:?}",
        r.text()
    );
    assert!(
        r.text().contains("capabilities^{}"),
        "an empty repository still advertises capabilities: {:?}",
        r.text()
    );
    assert!(r.body.ends_with(b"0000"), "{:?}", r.text());

    // The `.git` suffix is optional.
    let r = Raw::send(info_refs(&srv, &format!("{org}/open"), "git-upload-pack")).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Protocol v2 on request.
    let r =
        Raw::send(info_refs(&srv, &open, "git-upload-pack").header("git-protocol", "version=2"))
            .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        "application/x-git-upload-pack-advertisement"
    );
    let text = r.text();
    for cap in ["version 2\n", "ls-refs", "fetch", "object-format=sha1"] {
        assert!(text.contains(cap), "v2 advertises {cap:?}: {text:?}");
    }

    // receive-pack always needs a credential: 401 with both challenges.
    Raw::send(info_refs(&srv, &open, "git-receive-pack"))
        .await
        .assert_challenge("anonymous receive-pack on a public repository");
    Raw::send(rpc(&srv, &open, "git-receive-pack"))
        .await
        .assert_challenge("anonymous receive-pack POST on a public repository");

    // A reader may not push: 403, also when going straight to the POST.
    let r = Raw::send(info_refs(&srv, &open, "git-receive-pack").bearer_auth(&reader_t)).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = Raw::send(rpc(&srv, &open, "git-receive-pack").bearer_auth(&reader_t)).await;
    assert_eq!(r.status, 403, "{}", r.text());

    // The owner gets the receive-pack advertisement.
    let r =
        Raw::send(info_refs(&srv, &open, "git-receive-pack").basic_auth("x-token", Some(&owner_t)))
            .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        "application/x-git-receive-pack-advertisement"
    );
    assert!(
        r.body.starts_with(b"001f# service=git-receive-pack\n0000"),
        "{:?}",
        r.text()
    );
    let text = r.text();
    for cap in [
        "report-status",
        "delete-refs",
        "atomic",
        "ofs-delta",
        "side-band-64k",
        "push-options",
        "object-format=sha1",
    ] {
        assert!(
            text.contains(cap),
            "receive-pack advertises {cap:?}: {text:?}"
        );
    }

    // A private repository: anonymous and bogus credentials are challenged.
    Raw::send(info_refs(&srv, &closed, "git-upload-pack"))
        .await
        .assert_challenge("anonymous upload-pack on a private repository");
    Raw::send(rpc(&srv, &closed, "git-upload-pack"))
        .await
        .assert_challenge("anonymous upload-pack POST on a private repository");
    Raw::send(info_refs(&srv, &closed, "git-upload-pack").bearer_auth("not-a-jwt"))
        .await
        .assert_challenge("bogus bearer on a private repository");
    Raw::send(info_refs(&srv, &closed, "git-upload-pack").basic_auth("x-token", Some("not-a-jwt")))
        .await
        .assert_challenge("bogus basic password on a private repository");

    // Every accepted credential form reads it.
    let forms = [
        (
            "bearer",
            info_refs(&srv, &closed, "git-upload-pack").bearer_auth(&reader_t),
        ),
        (
            "basic, any user",
            info_refs(&srv, &closed, "git-upload-pack").basic_auth("x-token", Some(&reader_t)),
        ),
        (
            "basic x-access-token",
            info_refs(&srv, &closed, "git-upload-pack")
                .basic_auth("x-access-token", Some(&reader_t)),
        ),
        (
            "basic <jwt>:x-oauth-basic",
            info_refs(&srv, &closed, "git-upload-pack")
                .basic_auth(&reader_t, Some("x-oauth-basic")),
        ),
    ];
    for (what, req) in forms {
        let r = Raw::send(req).await;
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        assert_eq!(
            r.header("content-type"),
            "application/x-git-upload-pack-advertisement",
            "{what}"
        );
    }

    // A valid credential without rights is not asked to retry.
    let r = Raw::send(info_refs(&srv, &closed, "git-upload-pack").bearer_auth(&stranger_t)).await;
    assert!(
        r.status == 403 || r.status == 404,
        "stranger on a private repository: {} {}",
        r.status,
        r.text()
    );

    // Unknown repositories.
    let r = Raw::send(
        info_refs(&srv, &format!("{org}/nope.git"), "git-upload-pack").bearer_auth(&owner_t),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = Raw::send(
        info_refs(
            &srv,
            &format!("{}/open.git", Uuid::new_v4()),
            "git-upload-pack",
        )
        .bearer_auth(&owner_t),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_repository_refuses_pushes() {
    let srv = TestServer::start_binary().await;
    for v in VERSIONS {
        let repo = new_repo(&srv, &format!("archived-v{v}"), "private").await;
        let c = Client::new(v);
        let url = repo.url(&srv);
        let (work, shas) = seed(&c, &url, "work", &["one"]).await;

        let r = srv
            .send(
                Method::POST,
                &repo.rest("/archive"),
                &Auth::Bearer(repo.token.clone()),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["archived"], true, "{}", r.body);

        c.commit(&work, "file.txt", "after\n", "after archiving")
            .await;
        let out = c
            .fail(&work, &["push", "origin", "HEAD:refs/heads/main"])
            .await;
        assert!(
            out.stderr.to_lowercase().contains("archived"),
            "v{v}: the refusal says why:\n{out}"
        );
        assert_eq!(c.rev(&repo.path, "refs/heads/main").await, shas[0], "v{v}");

        // Still readable.
        let (ro, _) = c.clone(&url, "read-only", &[]).await;
        assert_eq!(c.rev(&ro, "HEAD").await, shas[0], "v{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_options_are_accepted() {
    let srv = TestServer::start_binary().await;
    for v in VERSIONS {
        let repo = new_repo(&srv, &format!("options-v{v}"), "private").await;
        let c = Client::new(v);
        let (work, _) = seed(&c, &repo.url(&srv), "work", &["one"]).await;
        let sha = c.commit(&work, "file.txt", "two\n", "two").await;
        c.ok(
            &work,
            &[
                "push",
                "-o",
                "ci.skip",
                "-o",
                "foo=bar",
                "origin",
                "HEAD:refs/heads/main",
            ],
        )
        .await;
        assert_eq!(c.rev(&repo.path, "refs/heads/main").await, sha, "v{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shallow_clone_then_deepen_and_unshallow() {
    let srv = TestServer::start_binary().await;
    for v in VERSIONS {
        let repo = new_repo(&srv, &format!("shallow-v{v}"), "private").await;
        let c = Client::new(v);
        let url = repo.url(&srv);
        let (_, shas) = seed(&c, &url, "seed", &["one", "two", "three"]).await;

        let (sh, _) = c.clone(&url, "shallow", &["--depth", "1"]).await;
        assert_eq!(c.rev(&sh, "HEAD").await, shas[2], "v{v}");
        assert_eq!(read(&sh.join("file.txt")), "three\n", "v{v}");
        assert_eq!(
            c.ok(&sh, &["rev-list", "--count", "HEAD"]).await.text(),
            "1",
            "v{v}"
        );
        assert_eq!(read(&sh.join(".git/shallow")).trim(), shas[2], "v{v}");

        c.ok(&sh, &["fetch", "--deepen", "1"]).await;
        assert_eq!(
            c.ok(&sh, &["rev-list", "--count", "HEAD"]).await.text(),
            "2",
            "v{v}"
        );
        assert_eq!(read(&sh.join(".git/shallow")).trim(), shas[1], "v{v}");

        c.ok(&sh, &["fetch", "--unshallow"]).await;
        assert_eq!(
            c.ok(&sh, &["rev-list", "--count", "HEAD"]).await.text(),
            "3",
            "v{v}"
        );
        assert!(!sh.join(".git/shallow").exists(), "v{v}");
        c.fsck_clean(&sh).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_clone_without_blobs_fetches_them_lazily() {
    let srv = TestServer::start_binary().await;
    for v in VERSIONS {
        let repo = new_repo(&srv, &format!("partial-v{v}"), "private").await;
        let c = Client::new(v);
        let url = repo.url(&srv);
        let (_, shas) = seed(&c, &url, "seed", &["one", "two", "three"]).await;

        let (p, _) = c.clone(&url, "partial", &["--filter=blob:none"]).await;
        assert_eq!(read(&p.join("file.txt")), "three\n", "v{v}");
        assert_eq!(
            c.ok(&p, &["config", "remote.origin.promisor"]).await.text(),
            "true",
            "v{v}"
        );
        assert_eq!(
            c.ok(&p, &["config", "remote.origin.partialclonefilter"])
                .await
                .text(),
            "blob:none",
            "v{v}"
        );
        let missing = |out: &Out| out.stdout.lines().filter(|l| l.starts_with('?')).count();
        let listing = ["rev-list", "--objects", "--all", "--missing=print"];
        let out = c.ok(&p, &listing).await;
        assert_eq!(
            missing(&out),
            2,
            "v{v}: only the checked-out blob was fetched:\n{out}"
        );

        // Reading an old blob fetches it on demand.
        let old = format!("{}:file.txt", shas[0]);
        assert_eq!(
            c.ok(&p, &["show", old.as_str()]).await.text(),
            "one",
            "v{v}"
        );
        let out = c.ok(&p, &listing).await;
        assert_eq!(missing(&out), 1, "v{v}: one more blob is local:\n{out}");
    }
}

/// Whether an event's payload lists `refname` moving to `new`.
fn pushes_ref(event: &Value, refname: &str, new: &str) -> bool {
    event["payload"]["refs"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["ref"] == refname && r["new"] == new))
}

/// The repository's push events, waiting up to a few seconds for `ready` to hold.
async fn push_events(
    srv: &TestServer,
    repo: &Repo,
    ready: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let auth = Auth::Bearer(repo.token.clone());
    let path = repo.rest("/events?event_type=push");
    let mut events = Vec::new();
    for _ in 0..50 {
        let r = srv.get(&path, &auth).await;
        assert_eq!(r.status, 200, "{}", r.body);
        events = r
            .body
            .as_array()
            .expect("events are an array")
            .iter()
            .filter(|e| e["eventType"] == "push")
            .cloned()
            .collect();
        if ready(events.as_slice()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_records_an_audit_event() {
    let srv = TestServer::start_binary().await;
    let repo = new_repo(&srv, "audited", "private").await;
    let (writer, agent) = (Uuid::new_v4(), Uuid::new_v4());
    srv.add_collaborator(repo.owner, repo.org, &repo.name, writer, "writer")
        .await;
    let c = Client::new(2);
    let url = clone_url(&srv, repo.org, &repo.name, Some(srv.token(writer).as_str()));
    let (work, _) = c.clone(&url, "work", &[]).await;
    c.ok(&work, &["symbolic-ref", "HEAD", "refs/heads/main"])
        .await;
    let first = c.commit(&work, "file.txt", "one\n", "one").await;
    let agent_header = format!("http.extraHeader=X-Agent-Id: {agent}");
    c.ok(
        &work,
        &[
            "-c",
            agent_header.as_str(),
            "push",
            "origin",
            "HEAD:refs/heads/main",
        ],
    )
    .await;

    let events = push_events(&srv, &repo, |es| {
        es.iter().any(|e| pushes_ref(e, "refs/heads/main", &first))
    })
    .await;
    let event = events
        .iter()
        .find(|e| pushes_ref(e, "refs/heads/main", &first))
        .unwrap_or_else(|| panic!("no push event for main -> {first}: {events:?}"));
    assert_eq!(event["repoId"], repo.id, "{event}");
    assert_eq!(event["actorId"], writer.to_string(), "{event}");
    assert_eq!(event["agentId"], agent.to_string(), "{event}");

    // A second push is a second event.
    let second = c.commit(&work, "file.txt", "two\n", "two").await;
    c.ok(&work, &["push", "origin", "HEAD:refs/heads/main"])
        .await;
    let events = push_events(&srv, &repo, |es| {
        es.iter().any(|e| pushes_ref(e, "refs/heads/main", &second))
    })
    .await;
    assert!(
        events
            .iter()
            .any(|e| pushes_ref(e, "refs/heads/main", &second)),
        "no push event for main -> {second}: {events:?}"
    );
    assert_eq!(events.len(), 2, "one event per push: {events:?}");
}
