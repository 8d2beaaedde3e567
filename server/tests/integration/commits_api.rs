//! The commit API as an agent uses it: files created, updated, moved, deleted and chmod-ed
//! without a clone; the resulting tree equals what git makes of the same edits in a worktree;
//! the branch moves by compare-and-swap (of racing commits with one expectedHeadSha, one wins);
//! bad paths and bodies are refused with the path named; the commit is recorded like a push.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::pulls::{Fixture, Work};

async fn commit(f: &Fixture, body: Value) -> crate::common::Resp {
    f.call(Method::POST, "/commits", Some(body)).await
}

#[tokio::test]
async fn commits_over_rest_build_the_trees_git_would() {
    let f = Fixture::new("private").await;
    // An empty repository: the first commit has no parent.
    let r = commit(
        &f,
        json!({"branch": "main", "message": "three files", "author": {"name": "Ada", "email": "ada@example.com"},
               "changes": [
                   {"action": "create", "path": "README.md", "content": "# demo\n"},
                   {"action": "create", "path": "bin/run.sh", "content": "#!/bin/sh\necho hi\n", "executable": true},
                   {"action": "create", "path": "data/blob.bin", "content": "AAECA/8=", "encoding": "base64"}
               ]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let first = r.body["sha"].as_str().expect("sha").to_owned();
    assert_eq!(r.body["parents"], json!([]));
    assert_eq!(r.body["author"]["name"], "Ada");

    // The same edits in a worktree, by git.
    let g = Work::clone(&f.url).await;
    let ours_tree = |sha: &str| f.bare(&["rev-parse", &format!("{sha}^{{tree}}")]);
    g.run(&["fetch", "-q", "origin"]).await;
    std::fs::create_dir_all(g.dir.join("bin")).expect("mkdir");
    std::fs::create_dir_all(g.dir.join("data")).expect("mkdir");
    std::fs::write(g.dir.join("README.md"), "# demo\n").expect("w");
    std::fs::write(g.dir.join("bin/run.sh"), "#!/bin/sh\necho hi\n").expect("w");
    std::fs::write(g.dir.join("data/blob.bin"), [0u8, 1, 2, 3, 255]).expect("w");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            g.dir.join("bin/run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
    }
    g.run(&["add", "-A"]).await;
    assert_eq!(g.run(&["write-tree"]).await, ours_tree(&first));

    // Update, move with new content, delete, chmod — on top of `first`.
    let r = commit(
        &f,
        json!({"branch": "main", "message": "more", "expectedHeadSha": first,
               "changes": [
                   {"action": "update", "path": "README.md", "content": "# demo\nmore\n"},
                   {"action": "move", "previousPath": "data/blob.bin", "path": "assets/blob.bin", "content": "moved\n"},
                   {"action": "delete", "path": "bin/run.sh"},
                   {"action": "create", "path": "tool.sh", "content": "echo\n"},
                   {"action": "chmod", "path": "tool.sh", "executable": true}
               ]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let second = r.body["sha"].as_str().expect("sha").to_owned();
    assert_eq!(r.body["parents"], json!([first]));
    std::fs::write(g.dir.join("README.md"), "# demo\nmore\n").expect("w");
    g.run(&["rm", "-q", "data/blob.bin", "bin/run.sh"]).await;
    std::fs::create_dir_all(g.dir.join("assets")).expect("mkdir");
    std::fs::write(g.dir.join("assets/blob.bin"), "moved\n").expect("w");
    std::fs::write(g.dir.join("tool.sh"), "echo\n").expect("w");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            g.dir.join("tool.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
    }
    g.run(&["add", "-A"]).await;
    assert_eq!(g.run(&["write-tree"]).await, ours_tree(&second));
    assert_eq!(f.bare(&["rev-parse", "refs/heads/main"]), second);
    // A clone sees it, fsck-clean; the commit was recorded like a push.
    let c = Work::clone(&f.url).await;
    assert_eq!(c.run(&["rev-parse", "HEAD"]).await, second);
    c.fsck_clean().await;
    let events = f.call(Method::GET, "/events?event_type=push", None).await;
    assert_eq!(events.body[0]["payload"]["commitShas"], json!([second]));
    assert_eq!(events.body[0]["payload"]["refs"][0]["old"], first);

    // A new branch from startFrom; a missing branch without it is 404.
    let r = commit(
        &f,
        json!({"branch": "feature/x", "startFrom": "main", "message": "on a branch",
               "changes": [{"action": "create", "path": "x.txt", "content": "x\n"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["parents"], json!([second]));
    commit(
        &f,
        json!({"branch": "nope", "message": "m",
               "changes": [{"action": "create", "path": "y", "content": "y"}]}),
    )
    .await
    .assert_error(404, "NOT_FOUND");

    // Bad input: the path is named, nothing moves.
    for (change, needle) in [
        (
            json!({"action": "create", "path": "README.md", "content": "x"}),
            "README.md",
        ),
        (
            json!({"action": "update", "path": "missing.txt", "content": "x"}),
            "missing.txt",
        ),
        (json!({"action": "delete", "path": "assets"}), "assets"),
        (
            json!({"action": "create", "path": ".git/config", "content": "x"}),
            ".git",
        ),
        (
            json!({"action": "create", "path": "a/.GIT/x", "content": "x"}),
            ".GIT",
        ),
        (
            json!({"action": "create", "path": "../escape", "content": "x"}),
            "escape",
        ),
        (
            json!({"action": "create", "path": "README.md/sub", "content": "x"}),
            "README.md/sub",
        ),
        (json!({"action": "create", "path": "x"}), "content"),
        (json!({"action": "move", "path": "y"}), "previousPath"),
        (json!({"action": "rename", "path": "y"}), "rename"),
    ] {
        let r = commit(
            &f,
            json!({"branch": "main", "message": "bad", "changes": [change]}),
        )
        .await;
        r.assert_error(400, "VALIDATION_ERROR");
        assert!(r.body.to_string().contains(needle), "{needle}: {}", r.body);
    }
    commit(&f, json!({"branch": "main", "message": "m", "changes": []}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    commit(
        &f,
        json!({"branch": "main", "message": "m", "changes": [], "extra": 1}),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    commit(
        &f,
        json!({"branch": "main", "message": "stale", "expectedHeadSha": first,
               "changes": [{"action": "create", "path": "z", "content": "z"}]}),
    )
    .await
    .assert_error(409, "CONFLICT");
    // Just over the 1 MiB REST body limit.
    let big = "x".repeat((1 << 20) + 1000);
    commit(
        &f,
        json!({"branch": "main", "message": "big", "changes": [{"action": "create", "path": "big", "content": big}]}),
    )
    .await
    .assert_error(413, "PAYLOAD_TOO_LARGE");
    assert_eq!(f.bare(&["rev-parse", "refs/heads/main"]), second);

    // Racing commits on one expected head: exactly one wins.
    let racers = (0..8).map(|i| {
        commit(
            &f,
            json!({"branch": "main", "message": format!("racer {i}"), "expectedHeadSha": second,
                   "changes": [{"action": "create", "path": format!("r{i}.txt"), "content": "r\n"}]}),
        )
    });
    let results = futures_util::future::join_all(racers).await;
    let won = results
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(won, 1, "{results:?}");
    for r in results.iter().filter(|r| r.status != StatusCode::OK) {
        r.assert_error(409, "CONFLICT");
    }
}
