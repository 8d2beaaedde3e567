//! Schema-driven tests: `schemathesis` (PyPI) generates requests for every operation of
//! `/openapi.json` against the `orbit` binary, with a valid token and the internal token, over
//! a repository seeded with commits, a branch, a pull request and a webhook. Passes when no
//! answer is a 5xx and every answer matches the document (status, content type, schema).
//!
//! Needs a Python with schemathesis: `ORBIT_TEST_PYTHON` (`.ci/run` makes one and sets it); on a
//! machine without one the test says so and passes. `ORBIT_SCHEMATHESIS_EXAMPLES` sets the
//! examples per operation (default 15).

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::common::{Auth, TestServer, INTERNAL};

async fn schemathesis_python() -> Option<PathBuf> {
    let python = PathBuf::from(std::env::var_os("ORBIT_TEST_PYTHON")?);
    let ok = tokio::process::Command::new(&python)
        .args(["-c", "import schemathesis"])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "ORBIT_TEST_PYTHON={} has no schemathesis",
        python.display()
    );
    Some(python)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let Some(python) = schemathesis_python().await else {
        eprintln!("skipped: set ORBIT_TEST_PYTHON to a Python with schemathesis (pip install schemathesis)");
        return;
    };
    let server = TestServer::start_binary().await;
    let owner = Uuid::new_v4();
    let org = Uuid::new_v4();
    let token = server.token(owner);
    let bearer = Auth::Bearer(token.clone());
    let repo = server.create_repo(owner, org, "app", "private").await;
    // What deletes, archives or renames a repository gets one of its own, so the rest keep theirs.
    let doomed = server.create_repo(owner, org, "doomed", "private").await;
    let base = format!("/repos/{org}/app");
    let commit = |body: serde_json::Value| {
        let server = &server;
        let bearer = bearer.clone();
        let base = base.clone();
        async move {
            let r = server
                .send(
                    Method::POST,
                    &format!("{base}/commits"),
                    &bearer,
                    Some(body),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.body
        }
    };
    let first = commit(json!({"branch": "main", "message": "first", "changes": [
        {"action": "create", "path": "README.md", "content": "# app\n"},
        {"action": "create", "path": "src/lib.rs", "content": "pub fn f() {}\n"},
        {"action": "create", "path": "run.sh", "content": "#!/bin/sh\n", "executable": true}]}))
    .await;
    commit(
        json!({"branch": "feature", "startFrom": "main", "message": "feature", "changes": [
        {"action": "update", "path": "README.md", "content": "# app\nmore\n"}]}),
    )
    .await;
    let pr = server
        .send(
            Method::POST,
            &format!("{base}/pulls"),
            &bearer,
            Some(json!({"title": "feature", "sourceBranch": "feature", "targetBranch": "main"})),
        )
        .await;
    assert_eq!(pr.status, StatusCode::OK, "{}", pr.body);
    let hook = server
        .send(
            Method::POST,
            &format!("{base}/hooks"),
            &bearer,
            Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["push"]})),
        )
        .await;
    assert_eq!(hook.status, StatusCode::OK, "{}", hook.body);

    let sha = first["sha"].as_str().expect("sha");
    let config = format!(
        r#"
[parameters]
"path.org_id" = "{org}"
"path.repo" = "app"
"path.ref" = "main"
"path.sha" = "{sha}"
"path.branch" = "feature"
"path.path" = "README.md"
"path.user_id" = "{owner}"

[[operations]]
include-path-regex = "/pulls/"
parameters = {{ "path.id" = "{pr}" }}

[[operations]]
include-path-regex = "/hooks/"
parameters = {{ "path.id" = "{hook}" }}

[[operations]]
include-operation-id = "get_admin_repo"
parameters = {{ "path.id" = "{repo}" }}

[[operations]]
include-operation-id = "archive_admin_repo"
parameters = {{ "path.id" = "{doomed_id}" }}

[[operations]]
include-operation-id = ["delete_repo", "archive_repo", "update_repo"]
parameters = {{ "path.repo" = "doomed" }}

[[operations]]
include-operation-id = "get_tree"
parameters = {{ "path.path" = "src" }}

[[operations]]
include-path-regex = "/compare/"
parameters = {{ "path.spec" = "main...feature" }}

[[operations]]
include-path-regex = "/archive/"
parameters = {{ "path.spec" = "main.tar.gz" }}
"#,
        pr = pr.body["number"],
        hook = hook.body["id"].as_str().expect("hook id"),
        repo = repo["id"].as_str().expect("repo id"),
        doomed_id = doomed["id"].as_str().expect("repo id"),
    );
    let dir = server.dir.path();
    std::fs::write(dir.join("schemathesis.toml"), config).expect("config");
    let examples = std::env::var("ORBIT_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "15".to_owned());
    let out = tokio::process::Command::new(python)
        .current_dir(dir)
        .args(["-m", "schemathesis.cli", "--config-file", "schemathesis.toml", "run"])
        .arg(format!("{}/openapi.json", server.base))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", &format!("X-Internal-Token: {INTERNAL}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            &examples,
            "--seed",
            "20261206",
            // One worker: hypothesis under CPython 3.11 trips over threaded `ast.parse`.
            "--workers",
            "1",
            // The two event streams never end; they are tested in `stream.rs`.
            "--exclude-path-regex",
            "events/stream$",
            "--request-timeout",
            "20",
            "--no-color",
        ])
        .output()
        .await
        .expect("run schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis failed:\n{text}");
    let summary = text
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or("no summary");
    // The whole report shows with `--nocapture`.
    eprintln!("{text}\nschemathesis: {}", summary.trim());
}
