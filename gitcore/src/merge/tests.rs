//! Merges compared with git 2.47 on the same repository: `git merge-tree --write-tree` (with
//! `merge.directoryRenames=true`, the behaviour Orbit has) for trees and conflicted paths,
//! `git rebase` for replayed histories.

use std::collections::BTreeSet;
use std::path::Path;

use gix::ObjectId;

use super::*;
use crate::read::testutil::{git, git_at, git_status, init, open};

/// A file change on one side of a case.
#[derive(Debug, Clone)]
enum Op {
    Write(String, Vec<u8>),
    Delete(String),
    Rename(String, String),
    Chmod(String, bool),
}

fn w(path: &str, content: &str) -> Op {
    Op::Write(path.into(), content.as_bytes().to_vec())
}

fn apply(dir: &Path, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Write(p, c) => {
                let path = dir.join(p);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).expect("mkdir");
                }
                if path.is_dir() {
                    std::fs::remove_dir_all(&path).expect("rmdir");
                }
                std::fs::write(path, c).expect("write");
            }
            Op::Delete(p) => {
                let path = dir.join(p);
                if path.is_dir() {
                    std::fs::remove_dir_all(path).expect("rm -r");
                } else if path.exists() {
                    std::fs::remove_file(path).expect("rm");
                }
            }
            Op::Rename(from, to) => {
                git(dir, &["mv", "-k", from, to]);
            }
            Op::Chmod(p, exec) => {
                if dir.join(p).is_file() {
                    git(
                        dir,
                        &[
                            "update-index",
                            "--add",
                            if *exec { "--chmod=+x" } else { "--chmod=-x" },
                            p,
                        ],
                    );
                }
            }
        }
    }
}

/// A repository with `base` on `main`, then `ours` on branch `target` and `theirs` on `source`.
struct Case {
    dir: tempfile::TempDir,
    clock: u64,
}

impl Case {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        init(dir.path());
        Case {
            dir,
            clock: 1_700_000_000,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn commit(&mut self, ops: &[Op], msg: &str) -> ObjectId {
        apply(self.path(), ops);
        self.clock += 60;
        let date = format!("{} +0000", self.clock);
        git_at(self.path(), &["add", "-A"], &date);
        git_at(
            self.path(),
            &["commit", "-q", "--allow-empty", "-m", msg],
            &date,
        );
        self.rev("HEAD")
    }

    fn rev(&self, name: &str) -> ObjectId {
        ObjectId::from_hex(git(self.path(), &["rev-parse", name]).trim().as_bytes()).expect("sha")
    }

    fn checkout(&self, args: &[&str]) {
        let mut a = vec!["checkout", "-q"];
        a.extend_from_slice(args);
        git(self.path(), &a);
    }

    /// Builds the classic three-commit shape.
    fn three_way(base: &[Op], ours: &[Op], theirs: &[Op]) -> Self {
        let mut c = Case::new();
        c.commit(base, "base");
        c.checkout(&["-b", "target"]);
        c.commit(ours, "ours");
        c.checkout(&["main"]);
        c.checkout(&["-b", "source"]);
        c.commit(theirs, "theirs");
        c.checkout(&["main"]);
        c
    }
}

/// What git says: `Ok(tree)` when clean, `Err(conflicted paths)` otherwise.
fn git_merge_tree(dir: &Path, target: &str, source: &str) -> Result<ObjectId, BTreeSet<String>> {
    let (ok, out) = git_status(
        dir,
        &[
            "-c",
            "merge.directoryRenames=true",
            "merge-tree",
            "--write-tree",
            "--name-only",
            target,
            source,
        ],
    );
    let mut lines = out.lines();
    let tree =
        ObjectId::from_hex(lines.next().expect("tree line").trim().as_bytes()).expect("tree");
    if ok {
        return Ok(tree);
    }
    Err(lines
        .take_while(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Orbit's answer in the same shape.
fn orbit_merge(
    dir: &Path,
    target: ObjectId,
    source: ObjectId,
) -> (Analysis, Result<ObjectId, BTreeSet<String>>) {
    let repo = open(dir).with_object_memory();
    let a = analyze(&repo, target, source).expect("analyze");
    let r = match &a.outcome {
        Outcome::Clean { tree, .. } => Ok(*tree),
        Outcome::Conflicts(c) => Err(c.iter().map(|c| c.path.clone()).collect()),
        other => panic!("unexpected outcome {other:?}"),
    };
    (a, r)
}

fn assert_same_as_git(case: &Case) -> Analysis {
    let (target, source) = (case.rev("target"), case.rev("source"));
    let ours = orbit_merge(case.path(), target, source);
    let theirs = git_merge_tree(case.path(), "target", "source");
    assert_eq!(
        ours.1,
        theirs,
        "orbit vs git merge-tree for {:?}",
        case.path()
    );
    ours.0
}

fn kinds(a: &Analysis) -> Vec<(String, &'static str)> {
    match &a.outcome {
        Outcome::Conflicts(c) => c
            .iter()
            .map(|c| (c.path.clone(), c.kind.as_str()))
            .collect(),
        _ => Vec::new(),
    }
}

const LINES: &str = "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\n";

#[test]
fn disjoint_edits_in_one_file_merge_cleanly() {
    let case = Case::three_way(
        &[w("f.txt", LINES)],
        &[w("f.txt", &LINES.replace("two", "TWO"))],
        &[w("f.txt", &LINES.replace("nine", "NINE"))],
    );
    let a = assert_same_as_git(&case);
    assert!(matches!(
        a.outcome,
        Outcome::Clean {
            fast_forward: false,
            ..
        }
    ));
    assert_eq!((a.ahead_by, a.behind_by), (1, 1));
    assert_eq!(a.merge_bases, vec![case.rev("main")]);
}

#[test]
fn edits_in_different_files_merge_cleanly() {
    let case = Case::three_way(
        &[w("a", "a\n"), w("b", "b\n")],
        &[w("a", "a2\n")],
        &[w("b", "b2\n"), w("c/new", "new\n")],
    );
    assert!(matches!(
        assert_same_as_git(&case).outcome,
        Outcome::Clean { .. }
    ));
}

#[test]
fn same_line_edits_conflict_on_content() {
    let case = Case::three_way(
        &[w("f.txt", LINES)],
        &[w("f.txt", &LINES.replace("five", "FIVE"))],
        &[w("f.txt", &LINES.replace("five", "5"))],
    );
    assert_eq!(
        kinds(&assert_same_as_git(&case)),
        vec![("f.txt".into(), "content")]
    );
}

#[test]
fn add_add_same_content_is_clean_and_different_content_conflicts() {
    let same = Case::three_way(&[w("x", "x\n")], &[w("n", "same\n")], &[w("n", "same\n")]);
    assert!(matches!(
        assert_same_as_git(&same).outcome,
        Outcome::Clean { .. }
    ));
    let diff = Case::three_way(&[w("x", "x\n")], &[w("n", "ours\n")], &[w("n", "theirs\n")]);
    assert_eq!(
        kinds(&assert_same_as_git(&diff)),
        vec![("n".into(), "add/add")]
    );
}

#[test]
fn modify_delete_conflicts() {
    let case = Case::three_way(
        &[w("f", LINES), w("keep", "k\n")],
        &[w("f", &LINES.replace("one", "ONE"))],
        &[Op::Delete("f".into())],
    );
    assert_eq!(
        kinds(&assert_same_as_git(&case)),
        vec![("f".into(), "modify/delete")]
    );
}

#[test]
fn rename_on_one_side_with_an_edit_on_the_other_merges() {
    let case = Case::three_way(
        &[w("old.txt", LINES)],
        &[w("old.txt", &LINES.replace("three", "THREE"))],
        &[Op::Rename("old.txt".into(), "new.txt".into())],
    );
    assert!(matches!(
        assert_same_as_git(&case).outcome,
        Outcome::Clean { .. }
    ));
}

#[test]
fn rename_rename_conflicts() {
    let case = Case::three_way(
        &[w("old.txt", LINES)],
        &[Op::Rename("old.txt".into(), "ours.txt".into())],
        &[Op::Rename("old.txt".into(), "theirs.txt".into())],
    );
    let a = assert_same_as_git(&case);
    assert!(
        kinds(&a).iter().all(|(_, k)| *k == "rename/rename"),
        "{:?}",
        kinds(&a)
    );
}

#[test]
fn rename_delete_conflicts() {
    let case = Case::three_way(
        &[w("old.txt", LINES), w("x", "x\n")],
        &[Op::Rename("old.txt".into(), "new.txt".into())],
        &[Op::Delete("old.txt".into())],
    );
    let a = assert_same_as_git(&case);
    assert!(
        kinds(&a).iter().any(|(_, k)| *k == "rename/delete"),
        "{:?}",
        kinds(&a)
    );
}

#[test]
fn directory_file_conflicts() {
    let case = Case::three_way(
        &[w("d/f", "f\n"), w("x", "x\n")],
        &[w("d/f", "f2\n")],
        &[Op::Delete("d".into()), w("d", "now a file\n")],
    );
    let a = assert_same_as_git(&case);
    assert!(matches!(a.outcome, Outcome::Conflicts(_)));
}

#[test]
fn mode_change_merges_with_an_edit() {
    let case = Case::three_way(
        &[w("run.sh", LINES)],
        &[Op::Chmod("run.sh".into(), true)],
        &[w("run.sh", &LINES.replace("ten", "TEN"))],
    );
    assert!(matches!(
        assert_same_as_git(&case).outcome,
        Outcome::Clean { .. }
    ));
}

#[test]
fn binary_changes_on_both_sides_conflict() {
    let case = Case::three_way(
        &[Op::Write("b.bin".into(), b"\0\x01base".to_vec())],
        &[Op::Write("b.bin".into(), b"\0\x01ours".to_vec())],
        &[Op::Write("b.bin".into(), b"\0\x01theirs".to_vec())],
    );
    assert_eq!(
        kinds(&assert_same_as_git(&case)),
        vec![("b.bin".into(), "binary")]
    );
}

#[test]
fn criss_cross_history_with_two_merge_bases() {
    let mut c = Case::new();
    c.commit(&[w("f", LINES), w("g", "g\n")], "base");
    c.checkout(&["-b", "target"]);
    c.commit(&[w("f", &LINES.replace("one", "ONE"))], "t1");
    c.checkout(&["main"]);
    c.checkout(&["-b", "source"]);
    c.commit(&[w("f", &LINES.replace("ten", "TEN"))], "s1");
    // Cross-merge both ways.
    git(c.path(), &["checkout", "-q", "target"]);
    git(c.path(), &["merge", "-q", "--no-edit", "source~0"]);
    git(c.path(), &["checkout", "-q", "source"]);
    git(c.path(), &["merge", "-q", "--no-edit", "target~1"]);
    c.commit(&[w("g", "g source\n")], "s2");
    git(c.path(), &["checkout", "-q", "target"]);
    c.commit(
        &[w(
            "f",
            &LINES
                .replace("one", "ONE")
                .replace("ten", "TEN")
                .replace("five", "FIVE"),
        )],
        "t2",
    );
    let a = assert_same_as_git(&c);
    assert_eq!(a.merge_bases.len(), 2, "{:?}", a.merge_bases);
    assert!(matches!(a.outcome, Outcome::Clean { .. }));
}

#[test]
fn already_merged_is_up_to_date_and_ancestor_is_fast_forward() {
    let mut c = Case::new();
    c.commit(&[w("f", "1\n")], "one");
    git(c.path(), &["branch", "source"]);
    c.commit(&[w("f", "2\n")], "two");
    let (main, source) = (c.rev("main"), c.rev("source"));
    let repo = open(c.path()).with_object_memory();
    let a = analyze(&repo, main, source).expect("analyze");
    assert_eq!(a.outcome, Outcome::UpToDate);
    assert_eq!((a.ahead_by, a.behind_by), (0, 1));
    let b = analyze(&repo, source, main).expect("analyze");
    assert_eq!(
        b.outcome,
        Outcome::Clean {
            tree: tree_of(&repo, main).expect("tree"),
            fast_forward: true
        }
    );
}

#[test]
fn unrelated_histories_are_reported() {
    let mut c = Case::new();
    c.commit(&[w("f", "1\n")], "one");
    git(c.path(), &["checkout", "-q", "--orphan", "other"]);
    c.commit(&[w("g", "2\n")], "other root");
    let repo = open(c.path()).with_object_memory();
    let a = analyze(&repo, c.rev("main"), c.rev("other")).expect("analyze");
    assert_eq!(a.outcome, Outcome::Unrelated);
    assert!(a.merge_bases.is_empty());
}

#[test]
fn a_repository_with_a_merge_driver_in_its_config_is_refused() {
    let c = Case::three_way(&[w("f", "1\n")], &[w("f", "2\n")], &[w("f", "3\n")]);
    git(
        c.path(),
        &["config", "merge.evil.driver", "touch /tmp/pwned %A"],
    );
    let repo = open(c.path());
    let err = analyze(&repo, c.rev("target"), c.rev("source")).expect_err("refused");
    assert!(
        matches!(err, Error::UnsafeConfig(ref s) if s == "merge.evil"),
        "{err}"
    );
}

/// xorshift64*: a fixed-seed generator for the randomized cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PATHS: [&str; 6] = [
    "a.txt",
    "b.txt",
    "dir/c.txt",
    "dir/d.txt",
    "e/f/g.txt",
    "h.txt",
];

fn random_content(rng: &mut Rng) -> String {
    (0..8)
        .map(|i| {
            if rng.below(4) == 0 {
                format!("line {i} changed {}\n", rng.below(3))
            } else {
                format!("line {i}\n")
            }
        })
        .collect()
}

fn random_ops(rng: &mut Rng, present: &[&str]) -> Vec<Op> {
    let mut ops = Vec::new();
    for _ in 0..=rng.below(3) {
        let p = PATHS[rng.below(PATHS.len() as u64) as usize];
        let exists = present.contains(&p);
        match rng.below(6) {
            0 if exists => ops.push(Op::Delete(p.into())),
            1 if exists => {
                let to = format!("moved/{}", p.replace('/', "_"));
                ops.push(Op::Rename(p.into(), to));
            }
            2 if exists => ops.push(Op::Chmod(p.into(), rng.below(2) == 0)),
            _ => ops.push(Op::Write(p.into(), random_content(rng).into_bytes())),
        }
        if matches!(ops.last(), Some(Op::Delete(_) | Op::Rename(..))) {
            break;
        }
    }
    ops
}

#[test]
fn randomized_histories_match_git_merge_tree() {
    let mut rng = Rng(0x005e_ed0f_0b17);
    let mut clean = 0;
    let mut conflicted = 0;
    for _ in 0..200 {
        let mut base = Vec::new();
        for p in PATHS {
            if rng.below(4) != 0 {
                base.push(Op::Write(p.into(), random_content(&mut rng).into_bytes()));
            }
        }
        let present: Vec<&str> = base
            .iter()
            .filter_map(|o| match o {
                Op::Write(p, _) => PATHS.iter().copied().find(|q| q == p),
                _ => None,
            })
            .collect();
        let ours = random_ops(&mut rng, &present);
        let theirs = random_ops(&mut rng, &present);
        let case = Case::three_way(&base, &ours, &theirs);
        let (target, source) = (case.rev("target"), case.rev("source"));
        let repo = open(case.path()).with_object_memory();
        let a = analyze(&repo, target, source).expect("analyze");
        let ours_result = match &a.outcome {
            Outcome::Clean { tree, .. } => Ok(*tree),
            Outcome::Conflicts(c) => Err(c.iter().map(|c| c.path.clone()).collect()),
            // Both sides made the same change: nothing to compare with git's tree beyond it.
            Outcome::UpToDate => continue,
            Outcome::Unrelated => panic!("unrelated"),
        };
        let git_result = git_merge_tree(case.path(), "target", "source");
        assert_eq!(
            ours_result, git_result,
            "base {base:?}\nours {ours:?}\ntheirs {theirs:?}"
        );
        match ours_result {
            Ok(_) => clean += 1,
            Err(_) => conflicted += 1,
        }
    }
    assert!(
        clean > 20 && conflicted > 20,
        "clean {clean}, conflicted {conflicted}"
    );
}

fn ident(name: &str) -> Identity {
    Identity {
        name: name.into(),
        email: format!("{name}@example.com"),
        time: gix::date::Time::new(1_800_000_000, 0),
    }
}

fn request(strategy: Strategy, target: ObjectId, source: ObjectId) -> strategy::Request {
    strategy::Request {
        strategy,
        target,
        source,
        message: "Merge pull request #1 from source\n\ntitle".into(),
        author: ident("merger"),
        committer: ident("orbit"),
    }
}

/// A history where `source` has three commits (by two authors) and `target` one, disjoint.
fn diverged() -> Case {
    let mut c = Case::new();
    c.commit(&[w("f", LINES), w("g", "g\n")], "base");
    c.checkout(&["-b", "target"]);
    c.commit(&[w("g", "g target\n")], "target change");
    c.checkout(&["main"]);
    c.checkout(&["-b", "source"]);
    c.commit(&[w("f", &LINES.replace("one", "ONE"))], "first");
    git(
        c.path(),
        &[
            "-c",
            "user.name=Other",
            "commit",
            "-q",
            "--allow-empty",
            "--amend",
            "--no-edit",
            "--author=Bob <bob@example.com>",
        ],
    );
    c.commit(
        &[w("f", &LINES.replace("one", "ONE").replace("two", "TWO"))],
        "second",
    );
    c.commit(&[w("h", "new\n")], "third");
    c.checkout(&["main"]);
    c
}

#[test]
fn merge_and_squash_commits_carry_the_merged_tree() {
    let c = diverged();
    let repo = open(c.path());
    let (t, s) = (c.rev("target"), c.rev("source"));
    let git_tree = git_merge_tree(c.path(), "target", "source").expect("clean");
    let merged = land(&repo, &request(Strategy::Merge, t, s))
        .expect("land")
        .expect("clean");
    assert_eq!(merged.written.len(), 1);
    let parents = git(
        c.path(),
        &["rev-list", "--parents", "-n1", &merged.tip.to_string()],
    );
    assert_eq!(parents.trim(), format!("{} {t} {s}", merged.tip));
    assert_eq!(tree_of(&repo, merged.tip).expect("tree"), git_tree);
    git(c.path(), &["fsck", "--strict", "--no-dangling"]);

    let squashed = land(&repo, &request(Strategy::Squash, t, s))
        .expect("land")
        .expect("clean");
    let parents = git(
        c.path(),
        &["rev-list", "--parents", "-n1", &squashed.tip.to_string()],
    );
    assert_eq!(parents.trim(), format!("{} {t}", squashed.tip));
    // git merge --squash in a worktree gives the same tree.
    git(c.path(), &["checkout", "-q", "target"]);
    git(c.path(), &["merge", "-q", "--squash", "source"]);
    let git_squash_tree = git(c.path(), &["write-tree"]);
    assert_eq!(
        tree_of(&repo, squashed.tip).expect("tree").to_string(),
        git_squash_tree.trim()
    );
    let msg = strategy::squash_message(&repo, t, s, "title (#1)").expect("message");
    assert_eq!(msg, "title (#1)\n\n* first\n* second\n* third");
}

#[test]
fn rebase_matches_git_rebase() {
    let c = diverged();
    let repo = open(c.path());
    let (t, s) = (c.rev("target"), c.rev("source"));
    let landed = land(&repo, &request(Strategy::Rebase, t, s))
        .expect("land")
        .expect("clean");
    assert_eq!(landed.written.len(), 3);
    git(c.path(), &["checkout", "-q", "source"]);
    git_at(c.path(), &["rebase", "-q", "target"], "1800000000 +0000");
    let git_tip = c.rev("HEAD");
    assert_eq!(
        tree_of(&repo, landed.tip).expect("tree"),
        tree_of(&repo, git_tip).expect("tree")
    );
    let fmt = "%an <%ae>|%s";
    let ours = git(
        c.path(),
        &[
            "log",
            &format!("--format={fmt}"),
            &format!("{t}..{}", landed.tip),
        ],
    );
    let theirs = git(
        c.path(),
        &[
            "log",
            &format!("--format={fmt}"),
            &format!("{t}..{git_tip}"),
        ],
    );
    assert_eq!(ours, theirs);
    assert!(ours.contains("Bob <bob@example.com>|first"), "{ours}");
    let committers = git(
        c.path(),
        &["log", "--format=%cn", &format!("{t}..{}", landed.tip)],
    );
    assert!(committers.lines().all(|l| l == "orbit"), "{committers}");
    git(c.path(), &["fsck", "--strict", "--no-dangling"]);
}

#[test]
fn fast_forward_only_when_target_is_an_ancestor() {
    let c = diverged();
    let repo = open(c.path());
    let (t, s, m) = (c.rev("target"), c.rev("source"), c.rev("main"));
    assert_eq!(
        land(&repo, &request(Strategy::FastForward, t, s)).expect("land"),
        Err(strategy::Refusal::NotFastForward)
    );
    let ff = land(&repo, &request(Strategy::FastForward, m, s))
        .expect("land")
        .expect("ff");
    assert_eq!(
        ff,
        Landed {
            tip: s,
            written: Vec::new()
        }
    );
    assert_eq!(
        land(&repo, &request(Strategy::Merge, s, m)).expect("land"),
        Err(strategy::Refusal::UpToDate)
    );
}

#[test]
fn a_conflicting_rebase_is_refused_with_the_conflicts() {
    let case = Case::three_way(
        &[w("f.txt", LINES)],
        &[w("f.txt", &LINES.replace("five", "FIVE"))],
        &[w("f.txt", &LINES.replace("five", "5"))],
    );
    let repo = open(case.path());
    let r = land(
        &repo,
        &request(Strategy::Rebase, case.rev("target"), case.rev("source")),
    )
    .expect("land");
    match r {
        Err(strategy::Refusal::Conflicts(c)) => assert_eq!(c[0].path, "f.txt"),
        other => panic!("{other:?}"),
    }
}
