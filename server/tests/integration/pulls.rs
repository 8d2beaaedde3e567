//! Pull requests end to end, as a user would drive them: branches pushed with the git CLI, pull
//! requests opened, read and merged over REST, the result fetched with `git pull` and compared
//! with what git itself computes on the same commits (`git merge-tree --write-tree`,
//! `git rebase`). Plus conflicts, bad input, permissions, pull requests following pushes, and
//! merges racing pushes and each other.
//!
//! The server is the `orbit` binary started with an empty `PATH`: every merge is native.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{git, Auth, Resp, TestServer};

const GIT_TIMEOUT: Duration = Duration::from_secs(120);

/// A git client with its own home, and one work tree cloned from the server.
pub(crate) struct Work {
    home: tempfile::TempDir,
    pub(crate) dir: PathBuf,
    pub(crate) clock: u64,
}

impl Work {
    /// Clones `url` (empty or not) into a fresh home.
    pub(crate) async fn clone(url: &str) -> Self {
        let home = tempfile::tempdir().expect("home");
        let dir = home.path().join("work");
        let mut w = Work {
            dir: dir.clone(),
            home,
            clock: 1_750_000_000,
        };
        let home_path = w.home.path().to_owned();
        w.run_in(&home_path, &["clone", "-q", url, "work"]).await;
        w.run(&["symbolic-ref", "HEAD", "refs/heads/main"]).await;
        w.clock += 1;
        w
    }

    pub(crate) async fn try_run_in(&self, dir: &Path, args: &[&str]) -> (bool, String, String) {
        let date = format!("{} +0000", self.clock);
        let mut cmd = git(dir, self.home.path());
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", "Ada Author")
            .env("GIT_AUTHOR_EMAIL", "ada@example.com")
            .env("GIT_COMMITTER_NAME", "Ada Author")
            .env("GIT_COMMITTER_EMAIL", "ada@example.com")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .stdin(Stdio::null())
            .args(["-c", "init.defaultBranch=main", "-c", "pull.rebase=false"])
            .args(args);
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let out = tokio::time::timeout(GIT_TIMEOUT, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("git {args:?} timed out"))
            .expect("run git");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub(crate) async fn run_in(&self, dir: &Path, args: &[&str]) -> String {
        let (ok, out, err) = self.try_run_in(dir, args).await;
        assert!(ok, "git {args:?} failed: {err}");
        out
    }

    pub(crate) async fn run(&self, args: &[&str]) -> String {
        self.run_in(&self.dir, args).await
    }

    pub(crate) async fn try_run(&self, args: &[&str]) -> (bool, String, String) {
        self.try_run_in(&self.dir, args).await
    }

    /// Writes files and commits them; answers the new HEAD.
    pub(crate) async fn commit(&mut self, files: &[(&str, &str)], message: &str) -> String {
        for (path, content) in files {
            let p = self.dir.join(path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(p, content).expect("write");
        }
        self.clock += 60;
        self.run(&["add", "-A"]).await;
        self.run(&["commit", "-q", "-m", message]).await;
        self.run(&["rev-parse", "HEAD"]).await
    }

    pub(crate) async fn fsck_clean(&self) {
        let (ok, out, err) = self.try_run(&["fsck", "--strict"]).await;
        assert!(ok, "fsck failed: {err}");
        let all = format!("{out}\n{err}").to_lowercase();
        for bad in ["error", "warning", "missing", "broken"] {
            assert!(!all.contains(bad), "fsck reports {bad}: {all}");
        }
    }
}

/// A repository with its owner, a work tree on `main` and the REST paths.
pub(crate) struct Fixture {
    pub(crate) srv: TestServer,
    pub(crate) owner: Uuid,
    pub(crate) org: Uuid,
    pub(crate) name: String,
    pub(crate) token: String,
    pub(crate) url: String,
    pub(crate) path: PathBuf,
}

impl Fixture {
    pub(crate) async fn new(visibility: &str) -> Self {
        let srv = TestServer::start_binary().await;
        let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
        let name = "app".to_owned();
        let body = srv.create_repo(owner, org, &name, visibility).await;
        let path = srv.repo_path(body["id"].as_str().expect("id")).await;
        let token = srv.token(owner);
        let hostport = srv.base.strip_prefix("http://").expect("http").to_owned();
        let url = format!("http://x-token:{token}@{hostport}/{org}/{name}.git");
        Fixture {
            srv,
            owner,
            org,
            name,
            token,
            url,
            path,
        }
    }

    pub(crate) fn rest(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.org, self.name)
    }

    pub(crate) fn auth(&self) -> Auth {
        Auth::Bearer(self.token.clone())
    }

    pub(crate) async fn call(&self, method: Method, rest: &str, body: Option<Value>) -> Resp {
        self.srv
            .send(method, &self.rest(rest), &self.auth(), body)
            .await
    }

    pub(crate) async fn open(&self, source: &str, target: &str, title: &str) -> Value {
        let r = self
            .call(
                Method::POST,
                "/pulls",
                Some(json!({"sourceBranch": source, "targetBranch": target, "title": title})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "open {source}: {}", r.body);
        r.body
    }

    pub(crate) async fn merge(&self, number: i64, strategy: &str) -> Resp {
        self.call(
            Method::POST,
            &format!("/pulls/{number}/merge"),
            Some(json!({"strategy": strategy})),
        )
        .await
    }

    /// Runs git in the server's bare repository (inspection only).
    pub(crate) fn bare(&self, args: &[&str]) -> String {
        let home = tempfile::tempdir().expect("home");
        crate::common::git_out(&self.path, home.path(), args)
    }
}

const LINES: &str = "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\n";

/// The whole flow a new user would try: four pull requests, one per strategy, each merged over
/// REST and compared with what git computes.
#[tokio::test]
async fn every_strategy_lands_what_git_would_make() {
    let f = Fixture::new("private").await;
    let mut w = Work::clone(&f.url).await;
    w.commit(&[("f.txt", LINES), ("g.txt", "g\n")], "base")
        .await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    // Four feature branches off the base, each with its own change (two commits each).
    for branch in ["merge-me", "squash-me", "rebase-me", "ff-me"] {
        w.run(&["checkout", "-q", "-b", branch, "main"]).await;
        let file = format!("{branch}.txt");
        w.commit(&[(file.as_str(), "first\n")], &format!("{branch}: first"))
            .await;
        w.commit(
            &[(file.as_str(), "first\nsecond\n")],
            &format!("{branch}: second"),
        )
        .await;
        w.run(&["push", "-q", "origin", branch]).await;
    }
    // main moves on (so only ff-me, re-based below, can fast-forward).
    w.run(&["checkout", "-q", "main"]).await;
    w.commit(&[("g.txt", "g on main\n")], "main moves").await;
    w.run(&["push", "-q", "origin", "main"]).await;

    let mut numbers = Vec::new();
    for branch in ["merge-me", "squash-me", "rebase-me", "ff-me"] {
        let pr = f.open(branch, "main", &format!("Land {branch}")).await;
        assert_eq!(pr["status"], "open");
        assert_eq!(pr["sourceBranch"], branch);
        assert_eq!(pr["headSha"], w.run(&["rev-parse", branch]).await);
        assert_eq!(pr["baseSha"], w.run(&["rev-parse", "main"]).await);
        numbers.push(pr["number"].as_i64().expect("number"));
    }
    assert_eq!(numbers, vec![1, 2, 3, 4]);

    // Reads of the first: diff (three-dot), commits (git log order), mergeability.
    let diff = f.call(Method::GET, "/pulls/1/diff", None).await;
    assert_eq!(diff.status, StatusCode::OK, "{}", diff.body);
    let files: Vec<&str> = diff
        .body
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("path"))
        .collect();
    assert_eq!(
        files,
        vec!["merge-me.txt"],
        "three-dot diff ignores main's own change"
    );
    assert_eq!(diff.body[0]["status"], "added");
    let commits = f.call(Method::GET, "/pulls/1/commits", None).await;
    let shas: Vec<String> = commits
        .body
        .as_array()
        .expect("commits")
        .iter()
        .map(|c| c["sha"].as_str().expect("sha").to_owned())
        .collect();
    let git_log = w.run(&["log", "--format=%H", "main..merge-me"]).await;
    assert_eq!(shas, git_log.lines().map(str::to_owned).collect::<Vec<_>>());
    let m = f.call(Method::GET, "/pulls/1/mergeability", None).await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.body);
    assert_eq!(m.body["mergeable"], true);
    assert_eq!(m.body["state"], "clean");
    assert_eq!(m.body["aheadBy"], 2);
    assert_eq!(m.body["behindBy"], 1);
    assert_eq!(
        m.body["mergeBaseSha"],
        w.run(&["merge-base", "main", "merge-me"]).await
    );
    let c = f.call(Method::GET, "/pulls/1/conflicts", None).await;
    assert_eq!(c.body, json!({"conflicts": []}));
    // By UUID too.
    let by_id = f
        .call(
            Method::GET,
            &format!(
                "/pulls/{}",
                f.call(Method::GET, "/pulls/1", None).await.body["id"]
                    .as_str()
                    .expect("id")
            ),
            None,
        )
        .await;
    assert_eq!(by_id.body["number"], 1);

    // 1: merge commit.
    let main_before = w.run(&["rev-parse", "main"]).await;
    let expected_tree = w
        .run(&["merge-tree", "--write-tree", "main", "merge-me"])
        .await;
    let r = f.merge(1, "merge").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "merged");
    assert_eq!(r.body["mergeStrategy"], "merge");
    assert_eq!(r.body["mergedBy"], f.owner.to_string());
    w.run(&["pull", "-q", "origin", "main"]).await;
    let tip = w.run(&["rev-parse", "HEAD"]).await;
    assert_eq!(r.body["mergeCommitSha"], tip);
    assert_eq!(w.run(&["rev-parse", "HEAD^{tree}"]).await, expected_tree);
    assert_eq!(
        w.run(&["rev-list", "--parents", "-n1", "HEAD"]).await,
        format!(
            "{tip} {main_before} {}",
            w.run(&["rev-parse", "merge-me"]).await
        )
    );
    assert_eq!(
        w.run(&["log", "-1", "--format=%B"]).await,
        "Merge pull request #1 from merge-me\n\nLand merge-me"
    );
    assert_eq!(
        w.run(&["log", "-1", "--format=%cn <%ce>"]).await,
        "Orbit <orbit@localhost>"
    );
    assert_eq!(
        w.run(&["log", "-1", "--format=%an <%ae>"]).await,
        format!("{0} <{0}@users.noreply.orbit>", f.owner)
    );

    // 2: squash.
    let main_before = w.run(&["rev-parse", "main"]).await;
    let expected_tree = w
        .run(&["merge-tree", "--write-tree", "main", "squash-me"])
        .await;
    let r = f.merge(2, "squash").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    w.run(&["pull", "-q", "origin", "main"]).await;
    assert_eq!(w.run(&["rev-parse", "HEAD^{tree}"]).await, expected_tree);
    assert_eq!(w.run(&["rev-parse", "HEAD^"]).await, main_before);
    assert_eq!(
        w.run(&["rev-list", "--count", &format!("{main_before}..HEAD")])
            .await,
        "1"
    );
    assert_eq!(
        w.run(&["log", "-1", "--format=%B"]).await,
        "Land squash-me (#2)\n\n* squash-me: first\n* squash-me: second"
    );

    // 3: rebase, compared with git rebase of the same commits onto the same main.
    let main_before = w.run(&["rev-parse", "main"]).await;
    w.run(&["checkout", "-q", "-b", "git-rebased", "rebase-me"])
        .await;
    w.run(&["rebase", "-q", "main"]).await;
    let git_tree = w.run(&["rev-parse", "HEAD^{tree}"]).await;
    w.run(&["checkout", "-q", "main"]).await;
    let r = f.merge(3, "rebase").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    w.run(&["pull", "-q", "--ff-only", "origin", "main"]).await;
    assert_eq!(w.run(&["rev-parse", "HEAD^{tree}"]).await, git_tree);
    let fmt = "--format=%an <%ae>|%s";
    assert_eq!(
        w.run(&["log", fmt, &format!("{main_before}..HEAD")]).await,
        w.run(&["log", fmt, &format!("{main_before}..git-rebased")])
            .await,
        "same commits, same authors"
    );
    assert_eq!(
        w.run(&["log", "--format=%cn", &format!("{main_before}..HEAD")])
            .await,
        format!("{0}\n{0}", f.owner),
        "the merger commits a rebase"
    );

    // 4: fast-forward is refused while main has commits ff-me lacks; after ff-me is rebased
    // onto main and pushed, it fast-forwards.
    let r = f.merge(4, "fast-forward").await;
    r.assert_error(409, "CONFLICT");
    w.run(&["checkout", "-q", "ff-me"]).await;
    w.run(&["rebase", "-q", "main"]).await;
    w.run(&["push", "-q", "-f", "origin", "ff-me"]).await;
    let ff_tip = w.run(&["rev-parse", "HEAD"]).await;
    let pr4 = f.call(Method::GET, "/pulls/4", None).await;
    assert_eq!(
        pr4.body["headSha"], ff_tip,
        "the push updated the pull request head"
    );
    let r = f.merge(4, "fast-forward").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["mergeCommitSha"], ff_tip);
    w.run(&["checkout", "-q", "main"]).await;
    w.run(&["pull", "-q", "--ff-only", "origin", "main"]).await;
    assert_eq!(w.run(&["rev-parse", "HEAD"]).await, ff_tip);

    // Every PR is merged; a fresh clone is consistent; refs/pull/N/head are fetchable.
    let merged = f.call(Method::GET, "/pulls?status=merged", None).await;
    let listed: Vec<i64> = merged
        .body
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["number"].as_i64().expect("n"))
        .collect();
    assert_eq!(listed, vec![4, 3, 2, 1], "newest first");
    assert_eq!(f.call(Method::GET, "/pulls", None).await.body, json!([]));
    let fresh = Work::clone(&f.url).await;
    fresh
        .run(&["fetch", "-q", "origin", "refs/pull/3/head:pr3"])
        .await;
    assert_eq!(
        fresh.run(&["rev-parse", "pr3"]).await,
        w.run(&["rev-parse", "rebase-me"]).await
    );
    fresh.fsck_clean().await;
    let (ok, _, _) = f_bare_fsck(&f);
    assert!(ok);

    // The audit trail lists every step.
    let events = f.call(Method::GET, "/events?limit=100", None).await;
    let types: Vec<&str> = events
        .body
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["eventType"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types.iter().filter(|t| **t == "pull.opened").count(),
        4,
        "{types:?}"
    );
    assert_eq!(
        types.iter().filter(|t| **t == "pull.merged").count(),
        4,
        "{types:?}"
    );
}

fn f_bare_fsck(f: &Fixture) -> (bool, String, String) {
    let home = tempfile::tempdir().expect("home");
    let out = git(&f.path, home.path())
        .args(["fsck", "--strict", "--no-dangling"])
        .output()
        .expect("fsck");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn conflicts_bad_input_and_permissions() {
    let f = Fixture::new("private").await;
    let mut w = Work::clone(&f.url).await;
    w.commit(&[("f.txt", LINES)], "base").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    w.run(&["checkout", "-q", "-b", "topic"]).await;
    w.commit(&[("f.txt", &LINES.replace("five", "FIVE"))], "topic edit")
        .await;
    w.run(&["push", "-q", "origin", "topic"]).await;
    w.run(&["checkout", "-q", "main"]).await;
    w.commit(&[("f.txt", &LINES.replace("five", "5"))], "main edit")
        .await;
    w.run(&["push", "-q", "origin", "main"]).await;

    let pr = f.open("topic", "main", "Conflicting").await;
    let m = f.call(Method::GET, "/pulls/1/mergeability", None).await;
    assert_eq!(m.body["state"], "conflicts", "{}", m.body);
    assert_eq!(m.body["mergeable"], false);
    let c = f.call(Method::GET, "/pulls/1/conflicts", None).await;
    assert_eq!(
        c.body,
        json!({"conflicts": [{"path": "f.txt", "kind": "content"}]})
    );
    let before = f.bare(&["rev-parse", "main"]);
    for strategy in ["merge", "squash", "rebase"] {
        let r = f.merge(1, strategy).await;
        r.assert_error(409, "CONFLICT");
        assert_eq!(r.body["error"]["details"]["conflicts"][0]["path"], "f.txt");
    }
    assert_eq!(
        f.bare(&["rev-parse", "main"]),
        before,
        "a refused merge moves nothing"
    );
    assert_eq!(
        f.call(Method::GET, "/pulls/1", None).await.body["status"],
        "open"
    );

    // Bad input: envelope, never 500.
    f.call(Method::GET, &format!("/pulls/{}", Uuid::new_v4()), None)
        .await
        .assert_error(404, "NOT_FOUND");
    f.call(Method::GET, "/pulls/99", None)
        .await
        .assert_error(404, "NOT_FOUND");
    f.call(Method::GET, "/pulls/not-a-uuid", None)
        .await
        .assert_error(400, "VALIDATION_ERROR");
    f.call(Method::GET, "/pulls/0", None)
        .await
        .assert_error(400, "VALIDATION_ERROR");
    f.call(
        Method::POST,
        "/pulls/1/merge",
        Some(json!({"strategy": "octopus"})),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    f.call(Method::POST, "/pulls/1/merge", Some(json!({"strategy": 7})))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    f.call(
        Method::POST,
        "/pulls/1/merge",
        Some(json!({"expectedHeadSha": "abc"})),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    f.call(Method::GET, "/pulls?status=weird", None)
        .await
        .assert_error(400, "VALIDATION_ERROR");
    for body in [
        json!({"sourceBranch": "main", "targetBranch": "main", "title": "t"}),
        json!({"sourceBranch": "a..b", "targetBranch": "main", "title": "t"}),
        json!({"sourceBranch": "topic", "targetBranch": "main", "title": "  "}),
        json!({"sourceBranch": "topic", "targetBranch": "main"}),
        json!({"sourceBranch": "topic", "targetBranch": "main", "title": "t", "extra": 1}),
    ] {
        f.call(Method::POST, "/pulls", Some(body))
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }
    f.call(
        Method::POST,
        "/pulls",
        Some(json!({"sourceBranch": "nope", "targetBranch": "main", "title": "t"})),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    f.call(
        Method::POST,
        "/pulls",
        Some(json!({"sourceBranch": "topic", "targetBranch": "main", "title": "again"})),
    )
    .await
    .assert_error(409, "CONFLICT");

    // Permissions: a reader reads but cannot open, merge or close; the author may close.
    let (reader, writer) = (Uuid::new_v4(), Uuid::new_v4());
    f.srv
        .add_collaborator(f.owner, f.org, &f.name, reader, "reader")
        .await;
    f.srv
        .add_collaborator(f.owner, f.org, &f.name, writer, "writer")
        .await;
    let as_reader = Auth::Bearer(f.srv.token(reader));
    let as_writer = Auth::Bearer(f.srv.token(writer));
    assert_eq!(
        f.srv.get(&f.rest("/pulls/1"), &as_reader).await.status,
        StatusCode::OK
    );
    f.srv
        .send(
            Method::POST,
            &f.rest("/pulls/1/merge"),
            &as_reader,
            Some(json!({})),
        )
        .await
        .assert_error(403, "FORBIDDEN");
    f.srv
        .send(Method::POST, &f.rest("/pulls/1/close"), &as_reader, None)
        .await
        .assert_error(403, "FORBIDDEN");
    f.srv
        .send(
            Method::PATCH,
            &f.rest("/pulls/1"),
            &as_reader,
            Some(json!({"title": "x"})),
        )
        .await
        .assert_error(403, "FORBIDDEN");
    f.srv
        .send(
            Method::POST,
            &f.rest("/pulls"),
            &as_reader,
            Some(json!({"sourceBranch": "topic", "targetBranch": "main", "title": "t"})),
        )
        .await
        .assert_error(403, "FORBIDDEN");
    f.srv
        .get(&f.rest("/pulls/1"), &Auth::None)
        .await
        .assert_error(404, "NOT_FOUND");
    f.srv
        .get(
            &f.rest("/pulls/1"),
            &Auth::Bearer(f.srv.token(Uuid::new_v4())),
        )
        .await
        .assert_error(404, "NOT_FOUND");
    // A writer may patch.
    let p = f
        .srv
        .send(
            Method::PATCH,
            &f.rest("/pulls/1"),
            &as_writer,
            Some(json!({"title": "Renamed", "description": "why"})),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(p.body["title"], "Renamed");
    assert_eq!(p.body["description"], "why");

    // expectedHeadSha that is not the head → 409.
    let wrong = "0".repeat(40);
    f.call(
        Method::POST,
        "/pulls/1/merge",
        Some(json!({"expectedHeadSha": wrong})),
    )
    .await
    .assert_error(409, "CONFLICT");

    // Close, merge a closed PR (409), reopen, close again; a second PR for the pair blocks reopen.
    let closed = f.call(Method::POST, "/pulls/1/close", None).await;
    assert_eq!(closed.body["status"], "closed", "{}", closed.body);
    f.merge(1, "merge").await.assert_error(409, "CONFLICT");
    let second = f.open("topic", "main", "Second try").await;
    assert_eq!(second["number"], 2);
    f.call(Method::POST, "/pulls/1/reopen", None)
        .await
        .assert_error(409, "CONFLICT");
    let closed2 = f.call(Method::POST, "/pulls/2/close", None).await;
    assert_eq!(closed2.body["status"], "closed");
    let reopened = f.call(Method::POST, "/pulls/1/reopen", None).await;
    assert_eq!(reopened.body["status"], "open", "{}", reopened.body);
    assert_eq!(reopened.body["id"], pr["id"]);

    // Resolve by hand: merge main into topic, push; then merge; closing a merged PR → 409.
    w.run(&["checkout", "-q", "topic"]).await;
    let _ = w.try_run(&["merge", "-q", "main"]).await;
    std::fs::write(w.dir.join("f.txt"), LINES.replace("five", "FIVE and 5")).expect("resolve");
    w.run(&["commit", "-q", "-am", "resolve"]).await;
    w.run(&["push", "-q", "origin", "topic"]).await;
    let r = f.merge(1, "merge").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    f.call(Method::POST, "/pulls/1/close", None)
        .await
        .assert_error(409, "CONFLICT");
    f.call(Method::POST, "/pulls/1/reopen", None)
        .await
        .assert_error(409, "CONFLICT");
    f.merge(1, "merge").await.assert_error(409, "CONFLICT");

    // Archived: reads work, writes are 403.
    let a = f
        .srv
        .send(
            Method::POST,
            &format!("/repos/{}/{}/archive", f.org, f.name),
            &f.auth(),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        f.call(Method::GET, "/pulls/1", None).await.status,
        StatusCode::OK
    );
    f.call(Method::POST, "/pulls/2/reopen", None)
        .await
        .assert_error(403, "FORBIDDEN");

    let events = f.call(Method::GET, "/events?limit=100", None).await;
    let types: Vec<&str> = events
        .body
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["eventType"].as_str().expect("type"))
        .collect();
    for t in [
        "pull.opened",
        "pull.updated",
        "pull.closed",
        "pull.reopened",
        "pull.merged",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
}

#[tokio::test]
async fn pull_requests_follow_pushes() {
    let f = Fixture::new("public").await;
    let mut w = Work::clone(&f.url).await;
    w.commit(&[("a.txt", "a\n")], "base").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    w.run(&["checkout", "-q", "-b", "feature"]).await;
    w.commit(&[("b.txt", "b\n")], "feature 1").await;
    w.run(&["push", "-q", "origin", "feature"]).await;
    let pr = f.open("feature", "main", "Feature").await;
    // Anonymous reads of a public repository's pull requests work.
    assert_eq!(
        f.srv
            .get(&f.rest("/pulls/1/mergeability"), &Auth::None)
            .await
            .body["state"],
        "clean"
    );

    // A push to the source updates headSha and refs/pull/1/head.
    let second = w.commit(&[("b.txt", "b2\n")], "feature 2").await;
    w.run(&["push", "-q", "origin", "feature"]).await;
    let now = f.call(Method::GET, "/pulls/1", None).await;
    assert_eq!(now.body["headSha"], second);
    assert_eq!(f.bare(&["rev-parse", "refs/pull/1/head"]), second);
    assert_eq!(
        f.call(Method::GET, "/pulls/1/mergeability", None)
            .await
            .body["aheadBy"],
        2
    );
    // refs/pull/* are read-only to pushes.
    let (ok, _, err) = w
        .try_run(&["push", "origin", "HEAD~1:refs/pull/1/head"])
        .await;
    assert!(!ok, "pushing refs/pull must fail");
    assert!(err.contains("refs/pull/1/head"), "{err}");

    // Merging by hand with git marks the PR merged by the pusher.
    w.run(&["checkout", "-q", "main"]).await;
    w.run(&["merge", "-q", "--no-ff", "--no-edit", "feature"])
        .await;
    w.run(&["push", "-q", "origin", "main"]).await;
    let merged = f.call(Method::GET, "/pulls/1", None).await;
    assert_eq!(merged.body["status"], "merged", "{}", merged.body);
    assert_eq!(merged.body["mergedBy"], f.owner.to_string());
    assert_eq!(merged.body["mergeStrategy"], "manual");
    assert_eq!(
        merged.body["mergeCommitSha"],
        w.run(&["rev-parse", "HEAD"]).await
    );
    let _ = pr;

    // A deleted source branch leaves an open PR open, with source_missing.
    w.run(&["checkout", "-q", "-b", "doomed"]).await;
    w.commit(&[("c.txt", "c\n")], "doomed").await;
    w.run(&["push", "-q", "origin", "doomed"]).await;
    f.open("doomed", "main", "Doomed").await;
    w.run(&["push", "-q", "origin", "--delete", "doomed"]).await;
    let d = f.call(Method::GET, "/pulls/2", None).await;
    assert_eq!(d.body["status"], "open");
    let m = f.call(Method::GET, "/pulls/2/mergeability", None).await;
    assert_eq!(m.body["state"], "source_missing", "{}", m.body);
    assert_eq!(m.body["mergeable"], false);
    f.merge(2, "merge").await.assert_error(409, "CONFLICT");
}

/// Eight pull requests into one target merged at once while pushes land on the target: every
/// merge lands or answers 409, no acknowledged push or merge is lost, fsck is clean.
#[tokio::test]
async fn concurrent_merges_and_pushes_lose_nothing() {
    let f = std::sync::Arc::new(Fixture::new("private").await);
    let mut w = Work::clone(&f.url).await;
    w.commit(&[("base.txt", "base\n")], "base").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    for i in 0..8 {
        let branch = format!("pr-{i}");
        w.run(&["checkout", "-q", "-b", &branch, "main"]).await;
        let file = format!("file-{i}.txt");
        w.commit(&[(file.as_str(), "x\n")], &branch).await;
        w.run(&["push", "-q", "origin", &branch]).await;
    }
    w.run(&["checkout", "-q", "main"]).await;
    // Open them concurrently: numbers are distinct.
    let mut opens = Vec::new();
    for i in 0..8 {
        let f = f.clone();
        opens.push(tokio::spawn(async move {
            f.call(
                Method::POST,
                "/pulls",
                Some(json!({"sourceBranch": format!("pr-{i}"), "targetBranch": "main", "title": format!("PR {i}")})),
            )
            .await
        }));
    }
    let mut numbers = Vec::new();
    for o in opens {
        let r = o.await.expect("join");
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        numbers.push(r.body["number"].as_i64().expect("number"));
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=8).collect::<Vec<_>>());

    // Pushers: three clients each pushing a new commit on main (some lose the race: fine).
    let mut pushers = Vec::new();
    for p in 0..3 {
        let mut pw = Work::clone(&f.url).await;
        pw.clock += 1000 * (p + 1);
        let sha = pw
            .commit(
                &[(format!("push-{p}.txt").as_str(), "p\n")],
                &format!("push {p}"),
            )
            .await;
        pushers.push((pw, sha));
    }
    let mut tasks = Vec::new();
    for n in numbers.clone() {
        let f = f.clone();
        let strategy = ["merge", "squash", "rebase", "merge"][(n as usize) % 4];
        tasks.push(tokio::spawn(async move { (n, f.merge(n, strategy).await) }));
    }
    let mut push_tasks = Vec::new();
    for (pw, sha) in pushers {
        push_tasks.push(tokio::spawn(async move {
            let (ok, _, err) = pw.try_run(&["push", "origin", "HEAD:main"]).await;
            (ok, sha, err, pw)
        }));
    }
    let mut landed = Vec::new();
    for t in tasks {
        let (n, r) = t.await.expect("join");
        match r.status.as_u16() {
            200 => landed.push((
                n,
                r.body["mergeCommitSha"].as_str().expect("sha").to_owned(),
            )),
            409 => assert_eq!(r.body["error"]["code"], "CONFLICT"),
            other => panic!("merge of #{n}: {other} {}", r.body),
        }
    }
    let mut pushed = Vec::new();
    for t in push_tasks {
        let (ok, sha, err, _pw) = t.await.expect("join");
        if ok {
            pushed.push(sha);
        } else {
            assert!(
                err.contains("rejected") || err.contains("fetch first"),
                "{err}"
            );
        }
    }
    assert!(
        landed.len() >= 6,
        "merges into one branch queue; only pushes can make one miss twice: {landed:?}"
    );
    let main = f.bare(&["rev-parse", "main"]);
    for (n, sha) in &landed {
        let home = tempfile::tempdir().expect("home");
        let ok = git(&f.path, home.path())
            .args(["merge-base", "--is-ancestor", sha, &main])
            .status()
            .expect("git");
        assert!(ok.success(), "merge of #{n} ({sha}) was lost");
        let pr = f.call(Method::GET, &format!("/pulls/{n}"), None).await;
        assert_eq!(pr.body["status"], "merged");
    }
    for sha in &pushed {
        let home = tempfile::tempdir().expect("home");
        let ok = git(&f.path, home.path())
            .args(["merge-base", "--is-ancestor", sha, &main])
            .status()
            .expect("git");
        assert!(ok.success(), "acknowledged push {sha} was lost");
    }
    // PRs that did not land are still open (never half merged).
    for n in numbers {
        if landed.iter().all(|(m, _)| *m != n) {
            let pr = f.call(Method::GET, &format!("/pulls/{n}"), None).await;
            assert_eq!(pr.body["status"], "open", "#{n}: {}", pr.body);
        }
    }
    let (ok, out, err) = f_bare_fsck(&f);
    assert!(ok && !err.to_lowercase().contains("error"), "{out}{err}");
}
