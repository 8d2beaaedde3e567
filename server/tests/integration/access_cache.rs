//! Git reads keep the repository row and the caller's role for a moment (`GIT_ACCESS_CACHE_MS`):
//! a change made through one process applies to that process's next git request at once, and
//! to another process on the same database within the TTL.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::common::{Auth, Options, TestServer};

/// `git ls-remote` of `org/name` on `base` as the holder of `token` (or anonymously):
/// whether it succeeded, and what git printed on stderr.
async fn ls_remote(base: &str, org: Uuid, name: &str, token: Option<&str>) -> (bool, String) {
    let hostport = base.strip_prefix("http://").expect("http base");
    let url = match token {
        Some(t) => format!("http://x:{t}@{hostport}/{org}/{name}.git"),
        None => format!("http://{hostport}/{org}/{name}.git"),
    };
    let home = tempfile::tempdir().expect("home");
    let mut cmd = tokio::process::Command::from(crate::common::git(home.path(), home.path()));
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .args(["ls-remote", &url]);
    let out = cmd.output().await.expect("git");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls until `ls_remote` fails; returns how long it took.
async fn until_refused(base: &str, org: Uuid, name: &str, token: Option<&str>) -> Duration {
    let start = Instant::now();
    loop {
        let (ok, _) = ls_remote(base, org, name, token).await;
        if !ok {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{base} still serves {name} 20 s after the change"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_revoked_reader_is_refused_at_once_here_and_within_the_ttl_on_another_process() {
    const TTL: Duration = Duration::from_secs(3);
    let srv = TestServer::start_with(Options {
        env: vec![("GIT_ACCESS_CACHE_MS".into(), TTL.as_millis().to_string())],
        binary: true,
        ..Options::default()
    })
    .await;
    let peer = srv.peer().await;
    let (owner, reader, org) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    srv.create_repo(owner, org, "cached", "private").await;
    srv.create_repo(owner, org, "open", "public").await;
    srv.add_collaborator(owner, org, "cached", reader, "reader")
        .await;
    let token = srv.token(reader);

    // Both processes serve the reader (and so have kept the row and the role).
    for base in [&srv.base, &peer.base] {
        let (ok, err) = ls_remote(base, org, "cached", Some(&token)).await;
        assert!(ok, "{base}: the reader may read: {err}");
        let (ok, err) = ls_remote(base, org, "open", None).await;
        assert!(ok, "{base}: anyone may read a public repository: {err}");
    }

    // Revoked through the first process: its very next git request is refused.
    let r = srv
        .send(
            Method::DELETE,
            &format!("/repos/{org}/cached/collaborators/{reader}"),
            &Auth::Bearer(srv.token(owner)),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let (ok, err) = ls_remote(&srv.base, org, "cached", Some(&token)).await;
    assert!(!ok, "the process that made the change refuses at once");
    assert!(err.contains("repository not found"), "{err}");
    // The other process within the TTL (plus the time of one git run).
    let took = until_refused(&peer.base, org, "cached", Some(&token)).await;
    assert!(took < TTL + Duration::from_secs(2), "took {took:?}");

    // Made private through the peer: anonymous reads stop there at once, here within the TTL.
    let r = srv
        .client
        .patch(format!("{}/repos/{org}/open", peer.base))
        .bearer_auth(srv.token(owner))
        .json(&json!({ "visibility": "private" }))
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), StatusCode::OK);
    let (ok, _) = ls_remote(&peer.base, org, "open", None).await;
    assert!(!ok, "the peer refuses at once");
    let took = until_refused(&srv.base, org, "open", None).await;
    assert!(took < TTL + Duration::from_secs(2), "took {took:?}");

    // Deleted: gone at once where it was deleted; the owner still reads nothing of it there.
    let r = srv
        .send(
            Method::DELETE,
            &format!("/repos/{org}/cached"),
            &Auth::Bearer(srv.token(owner)),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let (ok, err) = ls_remote(&srv.base, org, "cached", Some(&srv.token(owner))).await;
    assert!(!ok && err.contains("repository not found"), "{err}");
}

#[tokio::test]
async fn a_repository_created_on_another_process_is_served_at_once() {
    let srv = TestServer::start_with(Options {
        binary: true,
        ..Options::default()
    })
    .await;
    let peer = srv.peer().await;
    let (owner, org) = (Uuid::new_v4(), Uuid::new_v4());
    let token = srv.token(owner);
    // A miss is not kept: the peer looked for it before it existed.
    let (ok, _) = ls_remote(&peer.base, org, "later", Some(&token)).await;
    assert!(!ok);
    srv.create_repo(owner, org, "later", "private").await;
    let (ok, err) = ls_remote(&peer.base, org, "later", Some(&token)).await;
    assert!(ok, "{err}");
}
