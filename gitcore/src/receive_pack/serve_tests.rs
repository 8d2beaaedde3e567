//! Pushes served end to end against bare repositories, with packs made by git and checked by git.

use std::path::{Path, PathBuf};

use super::*;
use crate::read::testutil::{git, git_with_input as git_input, init};
use crate::upload_pack::reuse;

const ZERO: &str = "0000000000000000000000000000000000000000";

fn pkt_line(s: &str) -> Vec<u8> {
    format!("{:04x}{s}", s.len() + 4).into_bytes()
}

/// Serves one push of `pack` with `commands` (old, new, ref); answers the report as text.
fn push(repo: &Path, commands: &[(&str, &str, &str)], pack: &[u8]) -> (Outcome, String) {
    let mut input = Vec::new();
    for (i, (old, new, name)) in commands.iter().enumerate() {
        let caps = if i == 0 { "\0report-status" } else { "" };
        input.extend(pkt_line(&format!("{old} {new} {name}{caps}\n")));
    }
    input.extend(b"0000");
    input.extend(pack);
    let mut out = Vec::new();
    let outcome = serve(
        repo,
        &input[..],
        &mut out,
        &AtomicBool::new(false),
        &Options::default(),
    )
    .expect("serve");
    (outcome, String::from_utf8_lossy(&out).into_owned())
}

/// A work tree with history: a wide tree, edits of one big file (deltas), a side branch and an
/// annotated tag.
fn source() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    init(d);
    for i in 0..40 {
        std::fs::write(d.join(format!("f{i}.txt")), format!("file {i}\n")).expect("write");
    }
    let mut big: String = (0..3000).map(|i| format!("line {i}\n")).collect();
    for round in 0..5 {
        big.push_str(&format!("round {round}\n"));
        std::fs::write(d.join("big.txt"), &big).expect("write");
        git(d, &["add", "-A"]);
        git(d, &["commit", "-qm", &format!("round {round}")]);
    }
    git(d, &["tag", "-a", "v1", "-m", "v1"]);
    git(d, &["checkout", "-qb", "side"]);
    std::fs::write(d.join("side.txt"), "side\n").expect("write");
    git(d, &["add", "-A"]);
    git(d, &["commit", "-qm", "side"]);
    git(d, &["checkout", "-q", "main"]);
    dir
}

fn rev(dir: &Path, name: &str) -> String {
    git(dir, &["rev-parse", name]).trim().to_owned()
}

fn bare() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.git");
    crate::storage::init_bare(&path, "main").expect("init");
    (dir, path)
}

fn packs(repo: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo.join("objects/pack"))
        .expect("pack dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .collect();
    v.sort();
    v
}

/// git's own index of `pack` (index-pack on a copy), byte for byte.
fn gits_index(pack: &Path) -> Vec<u8> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let copy = tmp.path().join("copy.pack");
    std::fs::copy(pack, &copy).expect("copy");
    git(tmp.path(), &["index-pack", "copy.pack"]);
    std::fs::read(tmp.path().join("copy.idx")).expect("git's idx")
}

fn fsck_clean(repo: &Path) {
    let out = git(repo, &["fsck", "--strict", "--no-dangling"]);
    assert!(!out.contains("missing") && !out.contains("error"), "{out}");
}

#[test]
fn a_first_push_is_indexed_as_git_indexes_it_and_becomes_the_clone_pack() {
    let src = source();
    let (main, side, tag) = (
        rev(src.path(), "main"),
        rev(src.path(), "side"),
        rev(src.path(), "v1"),
    );
    let pack = git_input(
        src.path(),
        &[
            "pack-objects",
            "--stdout",
            "--revs",
            "--delta-base-offset",
            "-q",
        ],
        b"main\nside\nv1\n",
    );
    let (_keep, repo) = bare();
    let (outcome, report) = push(
        &repo,
        &[
            (ZERO, &main, "refs/heads/main"),
            (ZERO, &side, "refs/heads/side"),
            (ZERO, &tag, "refs/tags/v1"),
        ],
        &pack,
    );
    assert!(report.contains("unpack ok"), "{report}");
    assert!(
        outcome.results.iter().all(|r| r.error.is_none()),
        "{report}"
    );
    let stored = packs(&repo);
    assert_eq!(stored.len(), 1);
    assert_eq!(
        std::fs::read(&stored[0]).expect("pack"),
        pack,
        "stored as sent"
    );
    assert_eq!(
        std::fs::read(stored[0].with_extension("idx")).expect("idx"),
        gits_index(&stored[0]),
        "the index is git's own"
    );
    fsck_clean(&repo);
    // No incoming-* quarantine is left.
    let leftovers: Vec<_> = std::fs::read_dir(repo.join("objects"))
        .expect("objects")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("incoming-"))
        .collect();
    assert!(leftovers.is_empty());

    // The pack is exactly what a clone needs: recorded at once, no upkeep.
    let mut tips: Vec<ObjectId> = [&main, &side, &tag]
        .iter()
        .map(|h| ObjectId::from_hex(h.as_bytes()).expect("hex"))
        .collect();
    tips.sort();
    let manifest = reuse::read_manifest(&repo).expect("a clone pack is recorded");
    assert_eq!(manifest.tips, tips);
    assert_eq!(
        Some(manifest.pack.as_str()),
        stored[0].file_name().and_then(|n| n.to_str())
    );
    let expected = git(src.path(), &["rev-list", "--objects", "--all"])
        .lines()
        .count();
    assert_eq!(manifest.objects as usize, expected);
    assert!(reuse::find(&repo, &tips, crate::pack::Filter::None).is_some());
    // Upkeep would have recorded the same.
    std::fs::remove_file(repo.join("objects/pack").join(reuse::MANIFEST)).expect("rm");
    let marked = reuse::mark(&repo, &AtomicBool::new(false)).expect("mark");
    assert!(
        matches!(marked, reuse::Marked::Recorded { .. }),
        "{marked:?}"
    );
    assert_eq!(reuse::read_manifest(&repo), Some(manifest));
}

#[test]
fn a_pack_of_only_some_refs_objects_or_with_extra_objects_is_no_clone_pack() {
    let src = source();
    let main = rev(src.path(), "main");
    // Everything reachable from side, pushed as main only: side's commit is unreferenced and
    // not a tip, so the pack holds more than a clone of main needs.
    let pack = git_input(
        src.path(),
        &[
            "pack-objects",
            "--stdout",
            "--revs",
            "--delta-base-offset",
            "-q",
        ],
        b"side\n",
    );
    let (_keep, repo) = bare();
    let (_, report) = push(&repo, &[(ZERO, &main, "refs/heads/main")], &pack);
    assert!(report.contains("ok refs/heads/main"), "{report}");
    assert_eq!(reuse::read_manifest(&repo), None);
    fsck_clean(&repo);
}

#[test]
fn a_thin_push_gets_its_bases_appended_and_an_index_git_agrees_with() {
    let src = source();
    let d = src.path();
    let first = rev(d, "main");
    let pack = git_input(
        d,
        &[
            "pack-objects",
            "--stdout",
            "--revs",
            "--delta-base-offset",
            "-q",
        ],
        b"main\n",
    );
    let (_keep, repo) = bare();
    let (_, report) = push(&repo, &[(ZERO, &first, "refs/heads/main")], &pack);
    assert!(report.contains("ok refs/heads/main"), "{report}");
    let recorded = reuse::read_manifest(&repo).expect("first push recorded");

    let mut big = std::fs::read_to_string(d.join("big.txt")).expect("read");
    big.push_str("one more line\n");
    std::fs::write(d.join("big.txt"), big).expect("write");
    git(d, &["commit", "-qam", "more"]);
    let second = rev(d, "main");
    let thin = git_input(
        d,
        &[
            "pack-objects",
            "--stdout",
            "--revs",
            "--thin",
            "--delta-base-offset",
            "-q",
        ],
        format!("{second}\n^{first}\n").as_bytes(),
    );
    let sent = u32::from_be_bytes(thin[8..12].try_into().expect("count"));
    let (_, report) = push(&repo, &[(&first, &second, "refs/heads/main")], &thin);
    assert!(report.contains("ok refs/heads/main"), "{report}");
    let stored = packs(&repo);
    assert_eq!(stored.len(), 2);
    let new = stored
        .iter()
        .find(|p| p.file_name().and_then(|n| n.to_str()) != Some(recorded.pack.as_str()))
        .expect("the thin push's pack");
    let idx =
        gix_pack::index::File::at(new.with_extension("idx"), gix::hash::Kind::Sha1).expect("index");
    assert!(
        idx.num_objects() > sent,
        "bases appended: {} objects stored, {sent} sent",
        idx.num_objects()
    );
    assert_eq!(
        std::fs::read(new.with_extension("idx")).expect("idx"),
        gits_index(new)
    );
    git(&repo, &["verify-pack", new.to_str().expect("utf-8")]);
    fsck_clean(&repo);
    // Its pack links into the first: the recorded clone pack stays what it was.
    assert_eq!(reuse::read_manifest(&repo), Some(recorded));
}

#[test]
fn a_pack_with_in_pack_ref_deltas_is_indexed_the_older_way() {
    let src = source();
    let main = rev(src.path(), "main");
    // Without --delta-base-offset, pack-objects writes REF_DELTA against objects of the pack.
    let pack = git_input(
        src.path(),
        &["pack-objects", "--stdout", "--revs", "-q"],
        b"main\n",
    );
    let (_keep, repo) = bare();
    let (_, report) = push(&repo, &[(ZERO, &main, "refs/heads/main")], &pack);
    assert!(
        report.contains("unpack ok") && report.contains("ok refs/heads/main"),
        "{report}"
    );
    let stored = packs(&repo);
    assert_eq!(stored.len(), 1);
    assert_eq!(
        std::fs::read(stored[0].with_extension("idx")).expect("idx"),
        gits_index(&stored[0])
    );
    fsck_clean(&repo);
}

#[test]
fn a_pack_missing_an_object_it_links_to_is_refused_and_nothing_stays() {
    let src = source();
    let d = src.path();
    let main = rev(d, "main");
    let blob = rev(d, "main:f7.txt");
    let listed = git(d, &["rev-list", "--objects", "main"]);
    let ids: String = listed
        .lines()
        .filter_map(|l| l.split(' ').next())
        .filter(|id| *id != blob)
        .map(|id| format!("{id}\n"))
        .collect();
    let pack = git_input(
        d,
        &["pack-objects", "--stdout", "--delta-base-offset", "-q"],
        ids.as_bytes(),
    );
    let (_keep, repo) = bare();
    let (outcome, report) = push(&repo, &[(ZERO, &main, "refs/heads/main")], &pack);
    assert!(
        report.contains(&format!("links to missing object {blob}")),
        "{report}"
    );
    assert!(report.contains("ng refs/heads/main"), "{report}");
    assert!(outcome.unpack_error.is_some());
    assert!(packs(&repo).is_empty(), "no pack is published");
    let objects: Vec<_> = std::fs::read_dir(repo.join("objects"))
        .expect("objects")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("incoming-"))
        .collect();
    assert!(objects.is_empty(), "{objects:?}");
    assert_eq!(reuse::read_manifest(&repo), None);
    assert!(git(&repo, &["for-each-ref"]).is_empty());
}
