//! Shared by the targets: a small bare repository made once with the git CLI (the fuzzers' own
#![allow(dead_code)]
//! setup; Orbit serves it natively), copied where a target writes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "Fuzz")
        .env("GIT_AUTHOR_EMAIL", "fuzz@example.com")
        .env("GIT_COMMITTER_NAME", "Fuzz")
        .env("GIT_COMMITTER_EMAIL", "fuzz@example.com")
        .env("GIT_AUTHOR_DATE", "1700000000 +0000")
        .env("GIT_COMMITTER_DATE", "1700000000 +0000")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "git {args:?} failed (the fuzzers need git to build their repository)");
}

/// A bare repository with three commits on `main`, a branch `topic` and an annotated tag
/// `v1`, made once per process. Its commit ids are fixed (dates and names are).
pub fn template() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("tempdir");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).expect("mkdir");
        git(&work, &["init", "-q", "-b", "main"]);
        for (i, name) in ["a.txt", "dir/b.txt", "a.txt"].iter().enumerate() {
            let p = work.join(name);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, format!("line {i}\n").repeat(20 + i)).expect("write");
            git(&work, &["add", "."]);
            git(&work, &["commit", "-q", "-m", &format!("commit {i}")]);
            if i == 1 {
                git(&work, &["branch", "topic"]);
                git(&work, &["tag", "-a", "v1", "-m", "v1"]);
            }
        }
        let bare = tmp.path().join("repo.git");
        git(
            tmp.path(),
            &["clone", "-q", "--bare", work.to_str().expect("utf-8"), "repo.git"],
        );
        (tmp, bare)
    })
    .1
}

/// A fresh copy of [`template`] (for targets that may write).
pub fn copy_of_template() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_dir(template(), &tmp.path().join("repo.git"));
    tmp
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}
