//! Which refs a push may write and delete, with the git CLI as the client: deleting a ref that
//! does not exist succeeds (as with C git), notes are pushed and fetched like any ref, the
//! default branch cannot be deleted by a push (GitHub's wording), and `refs/pull/*` and unknown
//! namespaces are refused.

use reqwest::Method;

use crate::pulls::{Fixture, Work};

#[tokio::test]
async fn deleting_a_missing_ref_succeeds_and_changes_nothing() {
    let f = Fixture::new("private").await;
    let mut w = Work::clone(&f.url).await;
    w.commit(&[("a.txt", "a\n")], "base").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    let before = f.bare(&["for-each-ref"]);
    let (ok, _, err) = w.try_run(&["push", "origin", ":refs/heads/nope"]).await;
    assert!(ok, "a delete of a missing ref must succeed: {err}");
    assert!(err.contains("[deleted]") || err.contains("nope"), "{err}");
    assert_eq!(f.bare(&["for-each-ref"]), before, "nothing moved");
    // No push event for a push that moved nothing.
    let events = f.call(Method::GET, "/events?event_type=push", None).await;
    assert_eq!(
        events.body.as_array().map(Vec::len),
        Some(1),
        "{}",
        events.body
    );
}

#[tokio::test]
async fn notes_are_pushed_advertised_and_fetched() {
    let f = Fixture::new("private").await;
    let mut w = Work::clone(&f.url).await;
    let head = w.commit(&[("a.txt", "a\n")], "base").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    w.run(&["notes", "add", "-m", "reviewed by the swarm", "HEAD"])
        .await;
    w.run(&["push", "-q", "origin", "refs/notes/commits"]).await;
    let fresh = Work::clone(&f.url).await;
    fresh
        .run(&["fetch", "-q", "origin", "refs/notes/*:refs/notes/*"])
        .await;
    assert_eq!(
        fresh.run(&["notes", "show", &head]).await,
        "reviewed by the swarm"
    );
    fresh.fsck_clean().await;
}

#[tokio::test]
async fn the_default_branch_cannot_be_deleted_by_a_push() {
    let f = Fixture::new("private").await;
    let mut w = Work::clone(&f.url).await;
    w.commit(&[("a.txt", "a\n")], "base").await;
    w.run(&[
        "push",
        "-q",
        "origin",
        "HEAD:refs/heads/main",
        "HEAD:refs/heads/other",
        "HEAD:refs/heads/third",
    ])
    .await;
    // Without --atomic the other delete of the same push goes through.
    let (ok, _, err) = w
        .try_run(&["push", "origin", "--delete", "main", "other"])
        .await;
    assert!(!ok, "deleting main must fail");
    assert!(
        err.contains("refusing to delete the current branch: refs/heads/main"),
        "{err}"
    );
    let refs = f.bare(&["for-each-ref", "--format=%(refname)"]);
    assert!(refs.contains("refs/heads/main"), "{refs}");
    assert!(!refs.contains("refs/heads/other"), "{refs}");
    // With --atomic nothing is deleted.
    let (ok, _, _) = w
        .try_run(&["push", "--atomic", "origin", "--delete", "main", "third"])
        .await;
    assert!(!ok);
    assert!(f.bare(&["for-each-ref"]).contains("refs/heads/third"));
    // A fresh clone still checks out main.
    let fresh = Work::clone(&f.url).await;
    assert_eq!(
        fresh.run(&["rev-parse", "--abbrev-ref", "HEAD"]).await,
        "main"
    );
    assert!(fresh.dir.join("a.txt").exists());
}

#[tokio::test]
async fn other_namespaces_and_pull_refs_are_refused() {
    let f = Fixture::new("private").await;
    let mut w = Work::clone(&f.url).await;
    w.commit(&[("a.txt", "a\n")], "base").await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    for (target, reason) in [
        ("HEAD:refs/pull/1/head", "refs/pull/* is read-only"),
        (
            "HEAD:refs/changes/01/1/1",
            "only refs/heads/*, refs/tags/* and refs/notes/*",
        ),
    ] {
        let (ok, _, err) = w.try_run(&["push", "origin", target]).await;
        assert!(!ok, "{target} must be refused");
        assert!(err.contains(reason), "{target}: {err}");
    }
}
