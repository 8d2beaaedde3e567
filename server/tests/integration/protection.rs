//! Branch protection as git and REST users meet it: the default branch refuses force-pushes
//! and deletion out of the box, rules set by the owner are enforced on pushes (the reason is in
//! git's output) and REST deletes, a pull-request-only branch takes merges but not pushes, and
//! unprotected branches are unaffected.

use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::common::Auth;
use crate::pulls::{Fixture, Work};

fn server_sha(f: &Fixture, branch: &str) -> String {
    f.bare(&["rev-parse", &format!("refs/heads/{branch}")])
}

#[tokio::test]
async fn protected_branches_refuse_force_pushes_deletes_and_direct_pushes() {
    let f = Fixture::new("private").await;
    let mut w = Work::clone(&f.url).await;
    w.commit(&[("a.txt", "a\n")], "one").await;
    let two = w.commit(&[("a.txt", "b\n")], "two").await;
    w.run(&[
        "push",
        "-q",
        "origin",
        "HEAD:refs/heads/main",
        "HEAD:refs/heads/topic",
        "HEAD:refs/heads/release",
    ])
    .await;

    // The default branch, without a rule: no force-push, no delete.
    let r = f.call(Method::GET, "/branches/main/protection", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"branch": "main", "allowForcePush": false, "allowDeletion": false,
               "requirePullRequest": false, "isDefault": true, "explicit": false})
    );
    f.call(Method::GET, "/branches/topic/protection", None)
        .await
        .assert_error(404, "NOT_FOUND");
    w.run(&["reset", "-q", "--hard", "HEAD~1"]).await;
    let rewritten = w.commit(&[("a.txt", "c\n")], "rewritten").await;
    let (ok, _, err) = w
        .try_run(&["push", "-f", "origin", "HEAD:refs/heads/main"])
        .await;
    assert!(!ok);
    assert!(
        err.contains("[remote rejected]") && err.contains("force-push is not allowed"),
        "{err}"
    );
    assert_eq!(server_sha(&f, "main"), two, "main did not move");
    // An unprotected branch takes the same force-push.
    w.run(&["push", "-q", "-f", "origin", "HEAD:refs/heads/topic"])
        .await;
    assert_eq!(server_sha(&f, "topic"), rewritten);

    // The owner protects `release`: no force-push, no deletion, over git and REST.
    let r = f
        .call(Method::PUT, "/branches/release/protection", Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["explicit"], true);
    let (ok, _, err) = w
        .try_run(&["push", "-f", "origin", "HEAD:refs/heads/release"])
        .await;
    assert!(
        !ok && err.contains("protected branch refs/heads/release"),
        "{err}"
    );
    let (ok, _, err) = w.try_run(&["push", "origin", "--delete", "release"]).await;
    assert!(
        !ok && err.contains("refusing to delete the protected branch refs/heads/release"),
        "{err}"
    );
    f.call(Method::DELETE, "/branches/release", None)
        .await
        .assert_error(409, "CONFLICT");
    assert_eq!(server_sha(&f, "release"), two);
    // Without --atomic, other refs of the same push go through.
    let (ok, _, err) = w
        .try_run(&[
            "push",
            "-f",
            "origin",
            "HEAD:refs/heads/release",
            "HEAD:refs/heads/other",
        ])
        .await;
    assert!(!ok, "{err}");
    assert_eq!(server_sha(&f, "other"), rewritten);

    // Pull requests only: direct pushes are refused, a merge lands.
    let r = f
        .call(
            Method::PUT,
            "/branches/release/protection",
            Some(json!({"requirePullRequest": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    w.run(&["checkout", "-q", "-B", "feature", &two]).await;
    w.commit(&[("f.txt", "feature\n")], "feature").await;
    let (ok, _, err) = w
        .try_run(&["push", "origin", "HEAD:refs/heads/release"])
        .await;
    assert!(
        !ok && err.contains("must be made through a pull request"),
        "{err}"
    );
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/feature"])
        .await;
    let pr = f.open("feature", "release", "ship it").await;
    let r = f
        .merge(pr["number"].as_i64().expect("number"), "merge")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_ne!(server_sha(&f, "release"), two, "the merge moved release");

    // The owner allows force-pushes on main; only the owner configures protection.
    let writer = Uuid::new_v4();
    f.srv
        .add_collaborator(f.owner, f.org, &f.name, writer, "writer")
        .await;
    f.srv
        .send(
            Method::PUT,
            &f.rest("/branches/main/protection"),
            &Auth::Bearer(f.srv.token(writer)),
            Some(json!({"allowForcePush": true})),
        )
        .await
        .assert_error(403, "FORBIDDEN");
    f.srv
        .send(
            Method::GET,
            &f.rest("/branches/main/protection"),
            &Auth::Bearer(f.srv.token(Uuid::new_v4())),
            None,
        )
        .await
        .assert_error(404, "NOT_FOUND");
    f.call(
        Method::PUT,
        "/branches/main/protection",
        Some(json!({"allowForcePush": "yes"})),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    let r = f
        .call(
            Method::PUT,
            "/branches/main/protection",
            Some(json!({"allowForcePush": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    w.run(&[
        "push",
        "-q",
        "-f",
        "origin",
        &format!("{rewritten}:refs/heads/main"),
    ])
    .await;
    assert_eq!(server_sha(&f, "main"), rewritten);
    // Deleting the default branch stays refused whatever the rule says.
    let (ok, _, err) = w.try_run(&["push", "origin", "--delete", "main"]).await;
    assert!(!ok && err.contains("refusing to delete"), "{err}");

    // Rules go away: release can be deleted again; the events record the changes.
    let r = f
        .call(Method::DELETE, "/branches/release/protection", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    f.call(Method::DELETE, "/branches/release/protection", None)
        .await
        .assert_error(404, "NOT_FOUND");
    w.run(&["push", "-q", "origin", "--delete", "release"])
        .await;
    let events = f
        .call(Method::GET, "/events?event_type=protection.updated", None)
        .await;
    assert_eq!(
        events.body.as_array().map(Vec::len),
        Some(3),
        "{}",
        events.body
    );
    w.fsck_clean().await;
}
