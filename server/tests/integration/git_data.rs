//! The REST git data API against the git CLI: a repository is filled by running git directly on
//! the bare repository on disk (a `file://` clone, commits, a push back), then every answer of
//! the API is compared with what git prints for the same question: `git log` (pages and paths),
//! `git cat-file`, `git diff -M`, `git ls-tree -l`, `git for-each-ref`. Plus bad input (400/404,
//! never 500), branch creation and deletion with their audit events, and permissions.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::common::{git, Auth, TestServer};

const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// Runs git in `dir` with fixed identities and `epoch` as both dates; returns raw stdout.
fn git_raw(dir: &Path, home: &Path, args: &[&str], epoch: u64) -> Vec<u8> {
    let date = format!("{epoch} +0100");
    let out = git(dir, home)
        .env("GIT_AUTHOR_NAME", "Ada Author")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Cy Committer")
        .env("GIT_COMMITTER_EMAIL", "cy@example.com")
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A working tree cloned from a bare repository with `file://`, pushing back to it.
struct Work {
    home: tempfile::TempDir,
    dir: PathBuf,
    bare: PathBuf,
    clock: u64,
}

impl Work {
    fn clone(bare: &Path) -> Self {
        let home = tempfile::tempdir().expect("home");
        let dir = home.path().join("work");
        let url = format!("file://{}", bare.display());
        git_raw(home.path(), home.path(), &["clone", "-q", &url, "work"], 0);
        let w = Work {
            home,
            dir,
            bare: bare.to_owned(),
            clock: 1_700_000_000,
        };
        w.run(&["symbolic-ref", "HEAD", "refs/heads/main"]);
        w
    }

    /// Runs git in the working tree; answers trimmed stdout.
    fn run(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&git_raw(&self.dir, self.home.path(), args, self.clock))
            .trim()
            .to_owned()
    }

    /// Runs git in the bare repository; answers raw stdout.
    fn bare_raw(&self, args: &[&str]) -> Vec<u8> {
        git_raw(&self.bare, self.home.path(), args, self.clock)
    }

    /// Runs git in the bare repository; answers trimmed stdout.
    fn bare(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.bare_raw(args))
            .trim()
            .to_owned()
    }

    fn write(&self, path: &str, content: &[u8]) {
        let p = self.dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, content).expect("write");
    }

    fn chmod(&self, path: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.dir.join(path), std::fs::Permissions::from_mode(mode))
            .expect("chmod");
    }

    /// Stages everything and commits, one minute after the previous commit.
    fn commit(&mut self, message: &str) -> String {
        self.clock += 60;
        self.run(&["add", "-A"]);
        self.run(&["commit", "-q", "--allow-empty", "-m", message]);
        self.run(&["rev-parse", "HEAD"])
    }

    fn push(&self) {
        self.run(&["push", "-q", "origin", "--all"]);
        self.run(&["push", "-q", "origin", "--tags"]);
    }
}

fn numbered(n: usize, tag: &str) -> String {
    (0..n).map(|i| format!("{tag} line {i}\n")).collect()
}

/// Fills `bare` with a history covering the cases the diff and log code must get right.
fn populate(bare: &Path) -> Work {
    let mut w = Work::clone(bare);
    w.write("README.md", b"# Demo\n\nSome text.\n");
    w.write(
        "src/main.rs",
        b"fn main() {\n    println!(\"hello\");\n}\n\nfn helper() {\n    let x = 1;\n}\n",
    );
    w.write("docs/guide/deep/notes.txt", numbered(30, "note").as_bytes());
    w.write("assets/logo.bin", &[0u8, 159, 146, 150, 0, 1, 2, 255]);
    w.write("noeol.txt", b"first\nsecond");
    w.write("with space.txt", b"spaced out\n");
    w.write("na\u{ef}ve.txt", b"caf\xc3\xa9\n");
    w.commit("Initial commit\n\nWith a body line.");
    w.run(&["tag", "v0.1"]);

    let mut main = String::new();
    for i in 0..40 {
        main.push_str(&format!("    step({i});\n"));
    }
    w.write(
        "src/main.rs",
        format!("fn main() {{\n{main}}}\n\nfn helper() {{\n    let x = 1;\n}}\n").as_bytes(),
    );
    w.commit("Grow main");
    let edited = std::fs::read_to_string(w.dir.join("src/main.rs"))
        .expect("read")
        .replace("    step(3);\n", "    step(three);\n")
        .replace("    step(30);\n", "")
        .replace("    let x = 1;\n", "    let x = 2;\n");
    w.write("src/main.rs", edited.as_bytes());
    w.write("noeol.txt", b"first\nsecond, edited");
    w.commit("Edit in several hunks");

    // Renames (exact and edited), a mode change, a deletion, empty files, binary change.
    std::fs::create_dir_all(w.dir.join("guide")).expect("mkdir");
    std::fs::rename(
        w.dir.join("docs/guide/deep/notes.txt"),
        w.dir.join("guide/notes.txt"),
    )
    .expect("mv");
    let readme = std::fs::read_to_string(w.dir.join("README.md")).expect("read");
    std::fs::remove_file(w.dir.join("README.md")).expect("rm");
    w.write("README", format!("{readme}More text.\n").as_bytes());
    w.chmod("with space.txt", 0o755);
    std::fs::remove_file(w.dir.join("na\u{ef}ve.txt")).expect("rm");
    w.write("empty.txt", b"");
    w.write("dir/empty2.txt", b"");
    w.write("assets/logo.bin", &[0u8, 159, 146, 150, 0, 1, 2, 3, 255]);
    w.write("noeol.txt", b"first\nsecond, edited\n");
    w.commit("Move, chmod, delete, add empties");

    // A branch with a slash in its name, diverging, then merged back.
    w.run(&["checkout", "-q", "-b", "feature/x"]);
    w.write("feature.txt", b"feature work\n");
    w.write("guide/notes.txt", numbered(31, "note").as_bytes());
    w.commit("Feature work");
    w.write("src/lib/mod.rs", b"pub mod x;\n");
    w.commit("Feature lib");
    w.run(&["checkout", "-q", "main"]);
    w.write("main-only.txt", b"main\n");
    w.commit("Main work");
    w.clock += 60;
    w.run(&[
        "merge",
        "-q",
        "--no-ff",
        "-m",
        "Merge feature/x",
        "feature/x",
    ]);
    // A file that becomes a symlink.
    std::fs::remove_file(w.dir.join("noeol.txt")).expect("rm");
    std::os::unix::fs::symlink("README", w.dir.join("noeol.txt")).expect("symlink");
    w.commit("Type change");
    w.run(&["tag", "-a", "-m", "Release 1.0\n\nNotes.", "v1.0"]);
    w.run(&["tag", "-a", "-m", "Old release", "v0.9", "HEAD~2"]);
    w.push();
    w
}

/// A raw GET, for paths a URL parser would normalise (`..`).
async fn raw_get(srv: &TestServer, path: &str) -> (u16, String) {
    let addr = srv.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A GET with an `Accept` header; answers status, headers and raw bytes.
async fn get_bytes(
    srv: &TestServer,
    path: &str,
    accept: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let r = srv
        .client
        .get(format!("{}{path}", srv.base))
        .header("accept", accept)
        .send()
        .await
        .expect("request");
    let status = r.status();
    let headers = r.headers().clone();
    let body = r.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_owned).collect()
}

fn shas(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|c| c["sha"].as_str().expect("sha").to_owned())
        .collect()
}

#[tokio::test]
async fn git_data_matches_the_git_cli() {
    let srv = TestServer::start().await;
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    let created = srv.create_repo(owner, org, "data", "public").await;
    let bare = srv.repo_path(created["id"].as_str().expect("id")).await;
    let w = populate(&bare);
    let base = format!("/repos/{org}/data");
    let anon = Auth::None;

    // Commits: default ref, pages, other refs, paths.
    let all = lines(&w.bare(&["log", "--format=%H", "main"]));
    assert!(all.len() >= 9, "{all:?}");
    let r = srv.get(&format!("{base}/commits"), &anon).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(shas(&r.body), all);
    let mut paged = Vec::new();
    for offset in (0..all.len() + 2).step_by(2) {
        let r = srv
            .get(&format!("{base}/commits?limit=2&offset={offset}"), &anon)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        paged.extend(shas(&r.body));
    }
    assert_eq!(paged, all);
    let r = srv
        .get(&format!("/v1{base}/commits?limit=3&offset=2"), &anon)
        .await;
    assert_eq!(
        shas(&r.body),
        lines(&w.bare(&["log", "--format=%H", "--skip=2", "-n", "3", "main"]))
    );
    for reference in ["feature/x", "v0.1", &all[3][..8], "v1.0"] {
        let r = srv
            .get(&format!("{base}/commits?ref={reference}"), &anon)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{reference}: {}", r.body);
        assert_eq!(
            shas(&r.body),
            lines(&w.bare(&["log", "--format=%H", reference])),
            "{reference}"
        );
    }
    for path in [
        "src/main.rs",
        "guide",
        "guide/notes.txt",
        "docs",
        "README",
        "noeol.txt",
        "feature.txt",
        "src",
        "nothing/here",
        "dir/",
    ] {
        let r = srv
            .get(&format!("{base}/commits?path={path}&limit=500"), &anon)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        assert_eq!(
            shas(&r.body),
            lines(&w.bare(&["log", "--format=%H", "main", "--", path])),
            "path {path}"
        );
    }
    let r = srv
        .get(&format!("{base}/commits?path=src&offset=1&limit=2"), &anon)
        .await;
    assert_eq!(
        shas(&r.body),
        lines(&w.bare(&[
            "log",
            "--format=%H",
            "--skip=1",
            "-n",
            "2",
            "main",
            "--",
            "src"
        ]))
    );

    // One commit, and its diff against git's.
    let everything = lines(&w.bare(&["rev-list", "--all"]));
    for sha in &everything {
        let r = srv.get(&format!("{base}/commits/{sha}"), &anon).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let c = &r.body;
        assert_eq!(c["sha"], sha.as_str());
        let raw = w.bare_raw(&["cat-file", "commit", sha]);
        let raw = String::from_utf8(raw).expect("utf8");
        let (_, message) = raw.split_once("\n\n").expect("message");
        assert_eq!(c["message"], message);
        let parents = w.bare(&["log", "-1", "--format=%P", sha]);
        let parents: Vec<&str> = parents.split_whitespace().collect();
        assert_eq!(c["parents"], json!(parents));
        let who = w.bare(&["log", "-1", "--format=%an|%ae|%at|%cn|%ce|%ct", sha]);
        let who: Vec<&str> = who.split('|').collect();
        assert_eq!(c["author"]["name"], who[0]);
        assert_eq!(c["author"]["email"], who[1]);
        let date = |v: &Value| {
            chrono::DateTime::parse_from_rfc3339(v.as_str().expect("date"))
                .expect("rfc3339")
                .timestamp()
                .to_string()
        };
        assert_eq!(date(&c["author"]["date"]), who[2]);
        assert!(c["author"]["date"].as_str().expect("date").ends_with('Z'));
        assert_eq!(c["committer"]["name"], who[3]);
        assert_eq!(c["committer"]["email"], who[4]);
        assert_eq!(date(&c["committer"]["date"]), who[5]);

        let parent = parents.first().copied().unwrap_or(EMPTY_TREE);
        let theirs = w.bare_raw(&["diff", "--no-color", "-M", parent, sha]);
        let (status, headers, text) =
            get_bytes(&srv, &format!("{base}/commits/{sha}/diff"), "text/x-diff").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("text/x-diff")
        );
        assert_eq!(
            String::from_utf8_lossy(&text),
            String::from_utf8_lossy(&theirs),
            "diff of {sha}"
        );
        let r = srv.get(&format!("{base}/commits/{sha}/diff"), &anon).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let files = r.body.as_array().expect("files");
        let joined: String = files
            .iter()
            .map(|f| f["patch"].as_str().expect("patch"))
            .collect();
        assert_eq!(
            joined,
            String::from_utf8_lossy(&theirs),
            "json diff of {sha}"
        );
        let status = w.bare(&["diff", "--name-status", "-M", parent, sha]);
        let numstat = w.bare(&["diff", "--numstat", "-M", parent, sha]);
        let status = lines(&status);
        let numstat = lines(&numstat);
        assert_eq!(files.len(), status.len(), "{sha}: {status:?}");
        for ((f, st), num) in files.iter().zip(&status).zip(&numstat) {
            let code = st.chars().next().expect("code");
            let expected = match code {
                'A' => "added",
                'M' => "modified",
                'D' => "deleted",
                'R' => "renamed",
                'T' => "type-changed",
                other => panic!("unexpected status {other}"),
            };
            assert_eq!(f["status"], expected, "{st}");
            let mut num = num.split('\t');
            let (adds, dels) = (num.next().expect("adds"), num.next().expect("dels"));
            if adds == "-" {
                assert_eq!(f["binary"], true, "{st}");
            } else {
                assert_eq!(f["binary"], false, "{st}");
                assert_eq!(f["additions"].to_string(), adds, "{st}");
                assert_eq!(f["deletions"].to_string(), dels, "{st}");
            }
            if code == 'R' {
                assert!(f["oldPath"].is_string(), "{f}");
            } else {
                assert!(f["oldPath"].is_null(), "{f}");
            }
        }
    }

    // Trees: root and every directory, on main and on the slashed branch.
    for (reference, dir) in [
        ("main", ""),
        ("main", "src"),
        ("main", "guide"),
        ("main", "dir"),
        ("main", "src/lib"),
        ("feature/x", ""),
        ("feature/x", "src/lib"),
        ("v0.1", "docs/guide/deep"),
    ] {
        let url = if dir.is_empty() {
            format!("{base}/tree/{reference}")
        } else {
            format!("{base}/tree/{reference}/{dir}")
        };
        let r = srv.get(&url, &anon).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.body);
        let ours: Vec<String> = r
            .body
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                let size = e["size"].as_u64().map_or("-".to_owned(), |s| s.to_string());
                format!(
                    "{} {} {} {:>7}\t{}",
                    e["mode"].as_str().expect("mode"),
                    e["type"].as_str().expect("type"),
                    e["sha"].as_str().expect("sha"),
                    size,
                    e["path"].as_str().expect("path"),
                )
            })
            .collect();
        let spec = format!("{reference}:{dir}");
        let theirs: Vec<String> =
            lines(&w.bare(&["-c", "core.quotePath=false", "ls-tree", "-l", &spec]))
                .into_iter()
                .map(|l| {
                    let (meta, name) = l.split_once('\t').expect("tab");
                    let name = name.trim_matches('"');
                    if dir.is_empty() {
                        format!("{meta}\t{name}")
                    } else {
                        format!("{meta}\t{dir}/{name}")
                    }
                })
                .collect();
        assert_eq!(ours, theirs, "{url}");
    }
    let r = srv.get(&format!("{base}/tree/main/"), &anon).await;
    assert_eq!(r.status, StatusCode::OK, "trailing slash: {}", r.body);

    // Blobs: raw bytes and JSON, text and binary, on a slashed branch too.
    for (reference, path) in [
        ("main", "README"),
        ("main", "src/main.rs"),
        ("main", "assets/logo.bin"),
        ("main", "empty.txt"),
        ("main", "noeol.txt"),
        ("main", "with space.txt"),
        ("feature/x", "feature.txt"),
        ("v0.1", "noeol.txt"),
        ("v0.1", "na\u{ef}ve.txt"),
    ] {
        let theirs = w.bare_raw(&["cat-file", "blob", &format!("{reference}:{path}")]);
        let sha = w.bare(&["rev-parse", &format!("{reference}:{path}")]);
        let url = format!("{base}/blob/{reference}/{path}");
        let (status, headers, bytes) = get_bytes(&srv, &url, "application/octet-stream").await;
        assert_eq!(status, StatusCode::OK, "{url}");
        assert_eq!(bytes, theirs, "{url}");
        assert_eq!(
            headers
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok()),
            Some(theirs.len()),
            "{url}"
        );
        let r = srv.get(&url, &anon).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.body);
        assert_eq!(r.body["sha"], sha.as_str());
        assert_eq!(r.body["size"], theirs.len());
        assert_eq!(r.body["path"], path);
        let content = r.body["content"].as_str().expect("content");
        match r.body["encoding"].as_str().expect("encoding") {
            "utf-8" => assert_eq!(content.as_bytes(), &theirs[..], "{url}"),
            "base64" => {
                assert!(std::str::from_utf8(&theirs).is_err(), "{url}");
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(content)
                    .expect("base64");
                assert_eq!(decoded, theirs, "{url}");
            }
            other => panic!("encoding {other}"),
        }
    }

    // Tags against for-each-ref, with the commit each peels to.
    let r = srv.get(&format!("{base}/tags"), &anon).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let theirs = lines(&w.bare(&[
        "for-each-ref",
        "refs/tags",
        "--format=%(refname:strip=2) %(objectname) %(objecttype)",
    ]));
    let tags = r.body.as_array().expect("tags");
    assert_eq!(tags.len(), theirs.len());
    for (t, line) in tags.iter().zip(&theirs) {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(t["name"], parts[0]);
        assert_eq!(t["targetSha"], parts[1]);
        let commit = w.bare(&["rev-parse", &format!("{}^{{commit}}", parts[0])]);
        assert_eq!(t["commitSha"], commit.as_str());
        if parts[2] == "tag" {
            let message = w.bare_raw(&[
                "for-each-ref",
                &format!("refs/tags/{}", parts[0]),
                "--format=%(contents)",
            ]);
            // for-each-ref ends its output with an extra newline.
            let message = String::from_utf8_lossy(&message);
            assert_eq!(
                t["message"].as_str().map(|m| format!("{m}\n")),
                Some(message.into_owned()),
                "{line}"
            );
            assert_eq!(t["tagger"]["name"], "Cy Committer");
            assert_eq!(t["tagger"]["email"], "cy@example.com");
        } else {
            assert!(t.get("message").is_none(), "{t}");
            assert!(t.get("tagger").is_none(), "{t}");
        }
    }
    let r = srv
        .get(&format!("{base}/tags?limit=1&offset=1"), &anon)
        .await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(1));
    assert_eq!(r.body[0]["name"], tags[1]["name"]);

    // Branches against for-each-ref.
    let r = srv.get(&format!("{base}/branches"), &anon).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ours: Vec<String> = r
        .body
        .as_array()
        .expect("branches")
        .iter()
        .map(|b| {
            format!(
                "{} {} {}",
                b["name"].as_str().expect("name"),
                b["commitSha"].as_str().expect("sha"),
                b["isDefault"]
            )
        })
        .collect();
    let theirs: Vec<String> = lines(&w.bare(&[
        "for-each-ref",
        "refs/heads",
        "--format=%(refname:strip=2) %(objectname)",
    ]))
    .into_iter()
    .map(|l| {
        let default = l.starts_with("main ");
        format!("{l} {default}")
    })
    .collect();
    assert_eq!(ours, theirs);
    let r = srv.get(&format!("{base}/branches/feature/x"), &anon).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["name"], "feature/x");
    assert_eq!(r.body["isDefault"], false);
    assert_eq!(
        r.body["commitSha"],
        w.bare(&["rev-parse", "feature/x"]).as_str()
    );
}

#[tokio::test]
async fn bad_input_answers_envelopes_never_500() {
    let srv = TestServer::start().await;
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    let created = srv.create_repo(owner, org, "bad", "public").await;
    let bare = srv.repo_path(created["id"].as_str().expect("id")).await;
    let base = format!("/repos/{org}/bad");
    let anon = Auth::None;

    // An empty repository: empty lists, unknown refs.
    for path in ["branches", "tags", "commits"] {
        let r = srv.get(&format!("{base}/{path}"), &anon).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        assert_eq!(r.body, json!([]), "{path}");
    }
    srv.get(&format!("{base}/tree/main"), &anon)
        .await
        .assert_error(404, "NOT_FOUND");
    srv.get(&format!("{base}/commits?ref=main"), &anon)
        .await
        .assert_error(404, "NOT_FOUND");

    let w = populate(&bare);
    let head = w.bare(&["rev-parse", "main"]);
    let cases: Vec<(String, u16, &str)> = vec![
        (format!("{base}/commits?limit=501"), 400, "VALIDATION_ERROR"),
        (format!("{base}/commits?limit=0"), 400, "VALIDATION_ERROR"),
        (format!("{base}/commits?limit=abc"), 400, "VALIDATION_ERROR"),
        (format!("{base}/commits?offset=-1"), 400, "VALIDATION_ERROR"),
        (
            format!("{base}/commits?path=../etc"),
            400,
            "VALIDATION_ERROR",
        ),
        (format!("{base}/commits?path=/etc"), 400, "VALIDATION_ERROR"),
        (format!("{base}/commits?path=a//b"), 400, "VALIDATION_ERROR"),
        (format!("{base}/commits?ref=nope"), 404, "NOT_FOUND"),
        (format!("{base}/commits?ref=main~1"), 404, "NOT_FOUND"),
        (format!("{base}/commits/nope"), 404, "NOT_FOUND"),
        (
            format!("{base}/commits/{}", "0".repeat(40)),
            404,
            "NOT_FOUND",
        ),
        (format!("{base}/commits/abc"), 404, "NOT_FOUND"),
        (
            format!("{base}/commits/{}/diff", "f".repeat(40)),
            404,
            "NOT_FOUND",
        ),
        (format!("{base}/tree/nope"), 404, "NOT_FOUND"),
        (format!("{base}/tree/main/nope"), 404, "NOT_FOUND"),
        (format!("{base}/tree/main/README"), 404, "NOT_FOUND"),
        (format!("{base}/tree/main//etc"), 400, "VALIDATION_ERROR"),
        (format!("{base}/blob/main/src"), 404, "NOT_FOUND"),
        (format!("{base}/blob/main/nope.txt"), 404, "NOT_FOUND"),
        (format!("{base}/blob/nope/README"), 404, "NOT_FOUND"),
        (
            format!("{base}/blob/main//etc/passwd"),
            400,
            "VALIDATION_ERROR",
        ),
        (format!("{base}/branches/nope"), 404, "NOT_FOUND"),
        (
            format!("{base}/branches?limit=1000"),
            400,
            "VALIDATION_ERROR",
        ),
        (format!("{base}/tags?limit=0"), 400, "VALIDATION_ERROR"),
        (format!("/repos/{org}/missing/commits"), 404, "NOT_FOUND"),
        (
            "/repos/not-a-uuid/bad/commits".to_owned(),
            400,
            "VALIDATION_ERROR",
        ),
    ];
    for (url, status, code) in &cases {
        let r = srv.get(url, &anon).await;
        assert_eq!(r.status.as_u16(), *status, "{url}: {}", r.body);
        r.assert_error(*status, code);
    }
    // A tree sha names a tree but not a commit.
    let tree = w.bare(&["rev-parse", "main^{tree}"]);
    srv.get(&format!("{base}/commits/{tree}"), &anon)
        .await
        .assert_error(404, "NOT_FOUND");
    let r = srv
        .get(&format!("{base}/tree/{}", &tree[..10]), &anon)
        .await;
    assert_eq!(r.status, StatusCode::OK, "tree by sha: {}", r.body);
    let r = srv
        .get(&format!("{base}/commits/{}", &head[..7]), &anon)
        .await;
    assert_eq!(r.body["sha"], head.as_str());

    // `..` and `.` segments reach the server only from clients that do not normalise URLs.
    for path in [
        format!("{base}/tree/main/src/../.."),
        format!("{base}/blob/main/src/../README"),
        format!("{base}/blob/main/./README"),
        format!("{base}/tree/main/.."),
    ] {
        let (status, text) = raw_get(&srv, &path).await;
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("VALIDATION_ERROR"), "{text}");
    }

    // An ambiguous short sha: write blobs until two share a 4-digit prefix.
    let blobs = tempfile::tempdir().expect("blobs");
    let mut paths = String::new();
    for i in 0..1500 {
        let p = blobs.path().join(format!("b{i}"));
        std::fs::write(&p, format!("blob {i}\n")).expect("write");
        paths.push_str(&format!("{}\n", p.display()));
    }
    let list = blobs.path().join("list");
    std::fs::write(&list, paths).expect("write");
    let mut cmd = git(&w.bare, w.home.path());
    let out = cmd
        .args(["hash-object", "-w", "--stdin-paths"])
        .stdin(std::fs::File::open(&list).expect("open"))
        .output()
        .expect("hash-object");
    assert!(out.status.success());
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    ids.sort();
    let prefix = ids
        .windows(2)
        .find(|w| w[0][..4] == w[1][..4])
        .map(|w| w[0][..4].to_owned())
        .expect("1500 blobs share some 4-digit prefix");
    let r = srv.get(&format!("{base}/commits/{prefix}"), &anon).await;
    r.assert_error(409, "CONFLICT");
    let candidates = r.body["error"]["details"]["candidates"]
        .as_array()
        .expect("candidates");
    assert!(candidates.len() >= 2, "{}", r.body);
    assert!(candidates
        .iter()
        .all(|c| c["sha"].as_str().is_some_and(|s| s.starts_with(&prefix))));
    // git agrees that it is ambiguous.
    let out = git(&w.bare, w.home.path())
        .args([
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{prefix}^{{commit}}"),
        ])
        .output()
        .expect("rev-parse");
    assert!(!out.status.success());
}

#[tokio::test]
async fn branches_are_created_and_deleted_with_audit_events() {
    let srv = TestServer::start().await;
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    let created = srv.create_repo(owner, org, "br", "private").await;
    let bare = srv.repo_path(created["id"].as_str().expect("id")).await;
    let w = populate(&bare);
    let base = format!("/repos/{org}/br");
    let auth = Auth::Bearer(srv.token(owner));
    let v01 = w.bare(&["rev-parse", "v0.1^{commit}"]);
    let head = w.bare(&["rev-parse", "main"]);

    let create = |body: Value| {
        let (srv, base, auth) = (&srv, &base, &auth);
        async move {
            srv.send(Method::POST, &format!("{base}/branches"), auth, Some(body))
                .await
        }
    };
    let r = create(json!({"name": "release/1.x", "from": "v0.1"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"name": "release/1.x", "commitSha": v01, "isDefault": false})
    );
    assert_eq!(w.bare(&["rev-parse", "refs/heads/release/1.x"]), v01);
    let r = create(json!({"name": "from-sha", "from": &head[..9]})).await;
    assert_eq!(r.body["commitSha"], head.as_str(), "{}", r.body);
    let r = create(json!({"name": "from-default"})).await;
    assert_eq!(r.body["commitSha"], head.as_str(), "{}", r.body);

    create(json!({"name": "release/1.x", "from": "main"}))
        .await
        .assert_error(409, "CONFLICT");
    create(json!({"name": "release", "from": "main"}))
        .await
        .assert_error(409, "CONFLICT");
    create(json!({"name": "bad..name", "from": "main"}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    create(json!({"name": "-x", "from": "main"}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    create(json!({"name": "ok", "from": "nope"}))
        .await
        .assert_error(404, "NOT_FOUND");
    create(json!({"name": "ok", "unknown": 1}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    create(json!({"from": "main"}))
        .await
        .assert_error(400, "VALIDATION_ERROR");

    let r = srv
        .get(&format!("{base}/branches/release/1.x"), &auth)
        .await;
    assert_eq!(r.body["commitSha"], v01.as_str());
    srv.send(
        Method::DELETE,
        &format!("{base}/branches/main"),
        &auth,
        None,
    )
    .await
    .assert_error(409, "CONFLICT");
    let r = srv
        .send(
            Method::DELETE,
            &format!("{base}/branches/release/1.x"),
            &auth,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    srv.send(
        Method::DELETE,
        &format!("{base}/branches/release/1.x"),
        &auth,
        None,
    )
    .await
    .assert_error(404, "NOT_FOUND");
    srv.get(&format!("{base}/branches/release/1.x"), &auth)
        .await
        .assert_error(404, "NOT_FOUND");
    let heads = w.bare(&["for-each-ref", "--format=%(refname:strip=2)", "refs/heads"]);
    assert_eq!(
        lines(&heads),
        vec!["feature/x", "from-default", "from-sha", "main"]
    );
    w.bare(&["fsck", "--strict"]);

    // Racing creations of one branch from different commits: one wins, the rest are told so.
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let from = if i % 2 == 0 { "main" } else { "v0.1" };
            create(json!({"name": "race", "from": from}))
        })
        .collect();
    let results = futures_util::future::join_all(racers).await;
    let won: Vec<&crate::common::Resp> = results
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for r in results.iter().filter(|r| r.status != StatusCode::OK) {
        r.assert_error(409, "CONFLICT");
    }
    assert_eq!(
        w.bare(&["rev-parse", "refs/heads/race"]),
        won[0].body["commitSha"].as_str().expect("sha")
    );
    let race_url = format!("{base}/branches/race");
    let deleters: Vec<_> = (0..6)
        .map(|_| srv.send(Method::DELETE, &race_url, &auth, None))
        .collect();
    let results = futures_util::future::join_all(deleters).await;
    assert_eq!(
        results
            .iter()
            .filter(|r| r.status == StatusCode::NO_CONTENT)
            .count(),
        1,
        "{results:?}"
    );
    for r in results
        .iter()
        .filter(|r| r.status != StatusCode::NO_CONTENT)
    {
        assert!(
            matches!(r.status.as_u16(), 404 | 409),
            "{}: {}",
            r.status,
            r.body
        );
    }

    let r = srv
        .get(&format!("{base}/events?eventType=branch.created"), &auth)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let events = r.body.as_array().expect("events");
    assert_eq!(events.len(), 4, "{}", r.body);
    assert!(events.iter().all(|e| e["actorId"] == owner.to_string()));
    assert!(events
        .iter()
        .any(|e| e["payload"] == json!({"name": "release/1.x", "sha": v01, "from": "v0.1"})));
    let r = srv
        .get(&format!("{base}/events?eventType=branch.deleted"), &auth)
        .await;
    let events = r.body.as_array().expect("events");
    assert_eq!(events.len(), 2, "{}", r.body);
    assert!(events
        .iter()
        .any(|e| e["payload"] == json!({"name": "release/1.x", "sha": v01})));
}

#[tokio::test]
async fn permissions_follow_the_repository_rules() {
    let srv = TestServer::start().await;
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    let (reader, writer, stranger) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let private = srv.create_repo(owner, org, "secret", "private").await;
    let public = srv.create_repo(owner, org, "open", "public").await;
    for repo in [&private, &public] {
        let bare = srv.repo_path(repo["id"].as_str().expect("id")).await;
        populate(&bare);
    }
    for name in ["secret", "open"] {
        srv.add_collaborator(owner, org, name, reader, "reader")
            .await;
        srv.add_collaborator(owner, org, name, writer, "writer")
            .await;
    }
    let tok = |u: Uuid| Auth::Bearer(srv.token(u));
    let reads = [
        "branches",
        "branches/main",
        "commits",
        "commits/main",
        "commits/main/diff",
        "tree/main",
        "tree/main/src",
        "blob/main/README",
        "tags",
    ];

    // Private: collaborators read; strangers and anonymous callers see nothing (404).
    for path in reads {
        let url = format!("/repos/{org}/secret/{path}");
        for who in [owner, reader, writer] {
            let r = srv.get(&url, &tok(who)).await;
            assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.body);
        }
        srv.get(&url, &tok(stranger))
            .await
            .assert_error(404, "NOT_FOUND");
        srv.get(&url, &Auth::None)
            .await
            .assert_error(404, "NOT_FOUND");
        let scoped = Auth::Bearer(srv.scoped(owner, &format!("orbit:repo:{org}/open:read")));
        srv.get(&url, &scoped).await.assert_error(404, "NOT_FOUND");
    }
    // Public: anyone reads.
    for path in reads {
        let url = format!("/repos/{org}/open/{path}");
        for auth in [Auth::None, tok(stranger)] {
            let r = srv.get(&url, &auth).await;
            assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.body);
        }
    }

    // Writing branches needs the writer role (and a write scope).
    let body = |n: &str| Some(json!({"name": n, "from": "main"}));
    for repo in ["secret", "open"] {
        let url = format!("/repos/{org}/{repo}/branches");
        srv.send(Method::POST, &url, &tok(reader), body("r"))
            .await
            .assert_error(403, "FORBIDDEN");
        srv.send(Method::POST, &url, &Auth::None, body("a"))
            .await
            .assert_error(401, "UNAUTHORIZED");
        let read_only = Auth::Bearer(srv.scoped(writer, &format!("orbit:repo:{org}/{repo}:read")));
        srv.send(Method::POST, &url, &read_only, body("s"))
            .await
            .assert_error(403, "FORBIDDEN");
        let r = srv.send(Method::POST, &url, &tok(writer), body("w")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        srv.send(Method::DELETE, &format!("{url}/w"), &tok(reader), None)
            .await
            .assert_error(403, "FORBIDDEN");
        let r = srv
            .send(Method::DELETE, &format!("{url}/w"), &tok(writer), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    }
    srv.send(
        Method::POST,
        &format!("/repos/{org}/secret/branches"),
        &tok(stranger),
        body("x"),
    )
    .await
    .assert_error(404, "NOT_FOUND");

    // Archived repositories stay readable and refuse branch changes.
    let r = srv
        .send(
            Method::POST,
            &format!("/repos/{org}/open/archive"),
            &tok(owner),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    srv.send(
        Method::POST,
        &format!("/repos/{org}/open/branches"),
        &tok(owner),
        body("late"),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    srv.send(
        Method::DELETE,
        &format!("/repos/{org}/open/branches/feature/x"),
        &tok(owner),
        None,
    )
    .await
    .assert_error(403, "FORBIDDEN");
    let r = srv
        .get(&format!("/repos/{org}/open/branches"), &Auth::None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}
