//! The shallow matrix on both protocols, against git's own server: every clone and fetch is run
//! once against Orbit and once against `git upload-pack` over the same repository directory
//! (`file://`), and the two clones must hold the same commits and the same `.git/shallow`.
//! Cases: `--depth`, `--shallow-since`, `--shallow-exclude`, then `--deepen` (twice),
//! a fetch of new commits into the shallow clone, and `--unshallow`; `git fsck` must accept each.

use std::path::Path;

use crate::common::{git, TestServer};
use crate::pulls::Work;

/// The commits and the shallow boundary of a clone, as text.
fn state(dir: &Path, home: &Path) -> String {
    let out = git(dir, home)
        .args(["rev-list", "--all"])
        .output()
        .expect("rev-list");
    assert!(out.status.success());
    let mut commits: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    commits.sort();
    let mut shallow: Vec<String> = std::fs::read_to_string(dir.join(".git/shallow"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    shallow.sort();
    format!(
        "{} commits:\n{}\nshallow:\n{}",
        commits.len(),
        commits.join("\n"),
        shallow.join("\n")
    )
}

fn run(dir: &Path, home: &Path, proto: &str, args: &[&str]) {
    let out = git(dir, home)
        .env("GIT_TERMINAL_PROMPT", "0")
        .args(["-c", &format!("protocol.version={proto}")])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "protocol {proto}: git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fsck_ok(dir: &Path, home: &Path) {
    let out = git(dir, home).args(["fsck"]).output().expect("fsck");
    assert!(
        out.status.success(),
        "fsck: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn shallow_clones_and_fetches_match_git_on_both_protocols() {
    let srv = TestServer::start_binary().await;
    let (owner, org) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let body = srv.create_repo(owner, org, "deep", "public").await;
    let repo_dir = srv.repo_path(body["id"].as_str().expect("id")).await;
    let hostport = srv.base.strip_prefix("http://").expect("http").to_owned();
    let push_url = format!("http://x:{}@{hostport}/{org}/deep.git", srv.token(owner));
    let orbit_url = format!("http://{hostport}/{org}/deep.git");
    let git_url = format!("file://{}", repo_dir.display());

    // History: 24 commits on main, a side branch from main~5 with older dates, merged; tags.
    let mut w = Work::clone(&push_url).await;
    for i in 0..24 {
        w.commit(&[("f.txt", &format!("{i}\n"))], &format!("main {i}"))
            .await;
    }
    w.run(&["checkout", "-q", "-b", "side", "HEAD~5"]).await;
    w.clock -= 100_000;
    for i in 0..3 {
        w.commit(&[("g.txt", &format!("{i}\n"))], &format!("side {i}"))
            .await;
    }
    w.clock += 200_000;
    w.run(&["checkout", "-q", "main"]).await;
    w.run(&["merge", "-q", "--no-edit", "side"]).await;
    w.run(&["tag", "-a", "v1", "-m", "v1", "HEAD~3"]).await;
    w.run(&["tag", "v0", "HEAD~12"]).await;
    w.run(&["push", "-q", "origin", "main", "side", "v1", "v0"])
        .await;
    let since = w.clock - 200_000 - 3 * 60 + 90; // between the side commits' dates

    let home = tempfile::tempdir().expect("home");
    let h = home.path();
    let cases: Vec<Vec<String>> = vec![
        vec!["--depth=1".into()],
        vec!["--depth=3".into(), "--no-single-branch".into()],
        vec![format!("--shallow-since=@{since}")],
        vec!["--shallow-exclude=v0".into()],
    ];
    let mut extra = 0;
    for proto in ["0", "2"] {
        for case in &cases {
            let o = h.join(format!("o{proto}{extra}"));
            let g = h.join(format!("g{proto}{extra}"));
            extra += 1;
            for (url, dir) in [(&orbit_url, &o), (&git_url, &g)] {
                let mut args = vec!["clone", "-q"];
                args.extend(case.iter().map(String::as_str));
                args.push(url);
                args.push(dir.to_str().expect("utf-8 path"));
                run(h, h, proto, &args);
            }
            let what = format!("protocol {proto}, clone {case:?}");
            assert_eq!(state(&o, h), state(&g, h), "{what}");
            fsck_ok(&o, h);
            for step in [
                vec!["fetch", "-q", "--deepen=2"],
                vec!["fetch", "-q", "--deepen=1"],
            ] {
                run(&o, h, proto, &step);
                run(&g, h, proto, &step);
                assert_eq!(state(&o, h), state(&g, h), "{what}, then {step:?}");
                fsck_ok(&o, h);
            }
            // New commits on the server, fetched into the shallow clones.
            w.commit(&[("f.txt", &format!("new {extra}\n"))], "new")
                .await;
            w.run(&["push", "-q", "origin", "main"]).await;
            run(&o, h, proto, &["fetch", "-q"]);
            run(&g, h, proto, &["fetch", "-q"]);
            assert_eq!(state(&o, h), state(&g, h), "{what}, then a fetch");
            fsck_ok(&o, h);
            run(&o, h, proto, &["fetch", "-q", "--unshallow"]);
            run(&g, h, proto, &["fetch", "-q", "--unshallow"]);
            assert_eq!(state(&o, h), state(&g, h), "{what}, then --unshallow");
            assert!(!o.join(".git/shallow").exists(), "{what}: still shallow");
            fsck_ok(&o, h);
        }
    }
}
