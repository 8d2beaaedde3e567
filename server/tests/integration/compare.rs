//! Compare over REST against git on the same commits: merge base, ahead/behind counts, the
//! commits of `git log base..head`, the files of `git diff -M base...head` (three dots) and
//! `git diff -M base head` (two), and the patch text byte for byte.

use reqwest::{Method, StatusCode};
use uuid::Uuid;

use crate::common::Auth;
use crate::pulls::{Fixture, Work};

const BIG: &str = "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\n";

#[tokio::test]
async fn compare_matches_git_log_merge_base_and_diff() {
    let f = Fixture::new("private").await;
    let mut w = Work::clone(&f.url).await;
    w.commit(
        &[("a.txt", "a\n"), ("b.txt", BIG), ("e.txt", "e\n")],
        "base",
    )
    .await;
    w.run(&["push", "-q", "origin", "HEAD:refs/heads/main"])
        .await;
    w.run(&["checkout", "-q", "-b", "feature"]).await;
    w.commit(&[("a.txt", "a changed\n")], "f1").await;
    w.run(&["mv", "b.txt", "c.txt"]).await;
    w.commit(&[("d.txt", "new\n")], "f2 renames b").await;
    w.run(&["tag", "v1"]).await;
    w.run(&["checkout", "-q", "main"]).await;
    w.commit(&[("e.txt", "e on main\n")], "m1").await;
    w.run(&["push", "-q", "origin", "main", "feature", "v1"])
        .await;

    for (spec, git_range, git_diff) in [
        ("main...feature", "main..feature", vec!["main...feature"]),
        ("main..feature", "main..feature", vec!["main", "feature"]),
        ("feature...main", "feature..main", vec!["feature...main"]),
        ("main...v1", "main..v1", vec!["main...v1"]),
    ] {
        let r = f.call(Method::GET, &format!("/compare/{spec}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{spec}: {}", r.body);
        let (b, h) = git_range.split_once("..").expect("range");
        assert_eq!(
            r.body["mergeBaseSha"],
            w.run(&["merge-base", b, h]).await,
            "{spec}"
        );
        assert_eq!(
            r.body["baseSha"],
            w.run(&["rev-parse", &format!("{b}^{{commit}}")]).await
        );
        assert_eq!(
            r.body["headSha"],
            w.run(&["rev-parse", &format!("{h}^{{commit}}")]).await
        );
        let ahead: usize = w
            .run(&["rev-list", "--count", git_range])
            .await
            .parse()
            .expect("n");
        let behind: usize = w
            .run(&["rev-list", "--count", &format!("{h}..{b}")])
            .await
            .parse()
            .expect("n");
        assert_eq!(r.body["aheadBy"], ahead, "{spec}");
        assert_eq!(r.body["behindBy"], behind, "{spec}");
        let log = w.run(&["log", "--format=%H", git_range]).await;
        let shas: Vec<&str> = r.body["commits"]
            .as_array()
            .expect("commits")
            .iter()
            .map(|c| c["sha"].as_str().expect("sha"))
            .collect();
        assert_eq!(shas.join("\n"), log, "{spec}");
        let mut args = vec!["diff", "--name-status", "-M"];
        args.extend(git_diff.iter().copied());
        let names = w.run(&args).await;
        let ours: Vec<String> = r.body["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| {
                let status = match f["status"].as_str().expect("status") {
                    "added" => "A",
                    "deleted" => "D",
                    "modified" => "M",
                    "renamed" => "R",
                    other => other,
                };
                if status == "R" {
                    format!(
                        "R\t{}\t{}",
                        f["oldPath"].as_str().expect("oldPath"),
                        f["path"].as_str().expect("path")
                    )
                } else {
                    format!("{status}\t{}", f["path"].as_str().expect("path"))
                }
            })
            .collect();
        // git prints a similarity score after R (R100); compare without it.
        let theirs: Vec<String> = names
            .lines()
            .map(|l| {
                if l.starts_with('R') {
                    let mut parts = l.splitn(2, '\t');
                    let _ = parts.next();
                    format!("R\t{}", parts.next().unwrap_or_default())
                } else {
                    l.to_owned()
                }
            })
            .collect();
        assert_eq!(ours, theirs, "{spec}");
        // The patch, byte for byte.
        let resp = f
            .srv
            .client
            .get(format!(
                "{}{}",
                f.srv.base,
                f.rest(&format!("/compare/{spec}"))
            ))
            .bearer_auth(&f.token)
            .header("accept", "text/x-diff")
            .send()
            .await
            .expect("patch");
        assert_eq!(resp.status(), StatusCode::OK);
        let patch = resp.text().await.expect("text");
        let mut args = vec!["diff", "-M"];
        args.extend(git_diff.iter().copied());
        let git_patch = w.run(&args).await;
        assert_eq!(patch.trim_end(), git_patch, "{spec}");
    }

    // Bad input and visibility.
    for bad in ["main", "main...", "...feature"] {
        f.call(Method::GET, &format!("/compare/{bad}"), None)
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }
    f.call(Method::GET, "/compare/main...nope", None)
        .await
        .assert_error(404, "NOT_FOUND");
    f.srv
        .send(
            Method::GET,
            &f.rest("/compare/main...feature"),
            &Auth::Bearer(f.srv.token(Uuid::new_v4())),
            None,
        )
        .await
        .assert_error(404, "NOT_FOUND");
    let v1 = f
        .srv
        .send(
            Method::GET,
            &format!("/v1{}", f.rest("/compare/main...feature")),
            &f.auth(),
            None,
        )
        .await;
    assert_eq!(v1.status, StatusCode::OK, "{}", v1.body);
}
