//! Verbatim pack reuse: a clone of the current branches and tags streams a stored pack as it is,
//! with no counting and no object enumeration, so its first byte leaves within milliseconds.
//!
//! Upkeep ([`mark`], and [`crate::storage::consolidate`] which writes such a pack on purpose)
//! finds the pack that holds exactly the objects reachable from the `refs/heads/*` and
//! `refs/tags/*` tips and records it with those tips in `objects/pack/orbit-reuse`. A fetch with
//! no haves, no shallow or deepen lines, no filter, `ofs-delta`, and wants equal to the recorded
//! tips gets that pack byte for byte ([`find`], [`stream`]); the same with `filter blob:none`
//! gets its entries that are not blobs, as stored ([`super::blobless`]). Any other request, or a recorded
//! state the refs have since left, takes the ordinary path: the manifest only ever names a
//! pack whose object set was proven equal to the reachable set of its tips, so a match on the
//! tips is a match on the content. Every process on the storage root reads the same file.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::ObjectId;

use crate::refs::Snapshot;

/// The manifest's file name, under `objects/pack`.
pub const MANIFEST: &str = "orbit-reuse";

const MAGIC: &str = "orbit-reuse v1";

/// A recorded reusable pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// File name of the pack, under `objects/pack`.
    pub pack: String,
    /// Objects in it.
    pub objects: u32,
    /// The tips (sorted, distinct) whose reachable objects it holds, exactly.
    pub tips: Vec<ObjectId>,
}

fn manifest_path(repo_path: &Path) -> PathBuf {
    repo_path.join("objects").join("pack").join(MANIFEST)
}

/// What a clone asks for: the distinct targets of `refs/heads/*` and `refs/tags/*`, sorted.
pub fn clone_tips(snapshot: &Snapshot) -> Vec<ObjectId> {
    let mut tips: Vec<ObjectId> = snapshot
        .refs
        .iter()
        .filter(|r| r.name.starts_with("refs/heads/") || r.name.starts_with("refs/tags/"))
        .map(|r| r.target)
        .collect();
    tips.sort_unstable();
    tips.dedup();
    tips
}

/// Records `pack` (holding exactly the objects reachable from `tips`) as the clone pack.
pub fn write_manifest(
    repo_path: &Path,
    pack: &Path,
    objects: u32,
    tips: &[ObjectId],
) -> io::Result<()> {
    let name = pack
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::other("a pack without a file name"))?;
    let mut text = format!("{MAGIC}\npack {name}\nobjects {objects}\n");
    for tip in tips {
        text.push_str(&format!("tip {tip}\n"));
    }
    let path = manifest_path(repo_path);
    // Pushes and upkeep in one process may write at once: each its own temporary file.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Forgets the recorded pack (nothing reusable).
pub fn remove_manifest(repo_path: &Path) {
    let _ = std::fs::remove_file(manifest_path(repo_path));
}

/// The recorded pack of the repository at `repo_path`, if any (and well-formed).
pub fn read_manifest(repo_path: &Path) -> Option<Manifest> {
    let text = std::fs::read_to_string(manifest_path(repo_path)).ok()?;
    let mut lines = text.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let pack = lines.next()?.strip_prefix("pack ")?.to_owned();
    if pack.contains('/') || !pack.ends_with(".pack") {
        return None;
    }
    let objects = lines.next()?.strip_prefix("objects ")?.parse().ok()?;
    let mut tips = Vec::new();
    for line in lines {
        tips.push(ObjectId::from_hex(line.strip_prefix("tip ")?.as_bytes()).ok()?);
    }
    Some(Manifest {
        pack,
        objects,
        tips,
    })
}

/// A stored pack ready to be streamed.
#[derive(Debug)]
pub struct Reusable {
    source: Source,
    /// Objects that go out.
    pub objects: u32,
    /// Objects in the stored pack.
    pub stored: u32,
}

#[derive(Debug)]
enum Source {
    /// All of it, as it is.
    Whole(File),
    /// All but its blobs.
    Blobless(Box<super::blobless::Blobless>),
}

impl Reusable {
    /// Whether blobs are left out.
    pub fn is_blobless(&self) -> bool {
        matches!(self.source, Source::Blobless(_))
    }
}

/// The stored pack that answers a clone wanting exactly `wants` with `filter` (none, or
/// `blob:none`), if one is recorded. Call only for a request without haves, shallow lines or
/// deepening, whose client takes ofs-deltas.
pub fn find(repo_path: &Path, wants: &[ObjectId], filter: crate::pack::Filter) -> Option<Reusable> {
    let blobless = match filter {
        crate::pack::Filter::None => false,
        crate::pack::Filter::BlobNone => true,
        _ => return None,
    };
    let manifest = read_manifest(repo_path)?;
    let mut wants = wants.to_vec();
    wants.sort_unstable();
    wants.dedup();
    if wants != manifest.tips {
        return None;
    }
    let pack_path = repo_path.join("objects").join("pack").join(&manifest.pack);
    if blobless {
        // Mapped: a consolidation removing it from now on cannot take it from us.
        let plan = super::blobless::Blobless::plan(&pack_path)?;
        if plan.objects_in_pack() != manifest.objects {
            return None;
        }
        return Some(Reusable {
            objects: plan.objects,
            stored: manifest.objects,
            source: Source::Blobless(Box::new(plan)),
        });
    }
    let mut file = File::open(pack_path).ok()?;
    // Opened: a consolidation removing it from now on cannot take it from us. Check it is what
    // the manifest says (a v2 pack of that many objects) before a byte goes out.
    let mut header = [0u8; 12];
    file.read_exact(&mut header).ok()?;
    let count = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    let version = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if &header[..4] != b"PACK" || version != 2 || count != manifest.objects {
        return None;
    }
    Some(Reusable {
        source: Source::Whole(file),
        objects: manifest.objects,
        stored: manifest.objects,
    })
}

/// Streams `pack` (header and trailer included) to `out`.
pub fn stream(pack: Reusable, out: &mut (impl Write + ?Sized)) -> io::Result<usize> {
    let (file, objects) = match pack.source {
        Source::Whole(file) => (file, pack.objects),
        Source::Blobless(plan) => return plan.stream(out),
    };
    // The header was read (and checked) by `find`; the file is positioned after it.
    out.write_all(b"PACK")?;
    out.write_all(&2u32.to_be_bytes())?;
    out.write_all(&objects.to_be_bytes())?;
    super::send::copy_file(file, out)?;
    Ok(objects as usize)
}

/// The objects a clone of `tips` needs, in the order a pack of them is written.
pub fn reachable(
    repo: &gix::Repository,
    snapshot: &Snapshot,
    tips: &[ObjectId],
    interrupt: &AtomicBool,
) -> Result<Vec<ObjectId>, crate::pack::Error> {
    let mut named = Vec::new();
    let commit_tips = crate::pack::split_wants(repo, tips, &mut named)?;
    let commits = crate::pack::walk_commits(repo, &commit_tips, &[], interrupt)?;
    let tag_refs: Vec<(ObjectId, ObjectId)> = snapshot
        .refs
        .iter()
        .filter_map(|r| r.peeled.map(|p| (r.target, p)))
        .collect();
    let selection = crate::pack::objects_for(
        repo,
        commits,
        &named,
        &[],
        &tag_refs,
        false,
        crate::pack::Filter::None,
        interrupt,
    )?;
    Ok(selection.ids)
}

/// What [`mark`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marked {
    /// The recorded pack already matches the current tips.
    Current,
    /// A pack holding exactly the clone's objects was found and recorded.
    Recorded {
        /// Objects in it.
        objects: u32,
    },
    /// No pack holds exactly the clone's objects (a consolidation writes one).
    NoMatch,
    /// No branch or tag: nothing to clone.
    Empty,
}

/// Records the pack of the repository at `repo_path` that holds exactly what a clone of its
/// current branches and tags needs, when there is one (a repository filled by one push, or
/// consolidated). Costs one object enumeration, as a clone would; run it in upkeep.
pub fn mark(repo_path: &Path, interrupt: &AtomicBool) -> Result<Marked, crate::pack::Error> {
    let repo = crate::storage::open(repo_path).map_err(|e| crate::pack::Error::Walk(e.into()))?;
    let snapshot = Snapshot::read(&repo).map_err(|e| crate::pack::Error::Walk(e.into()))?;
    let tips = clone_tips(&snapshot);
    if tips.is_empty() {
        remove_manifest(repo_path);
        return Ok(Marked::Empty);
    }
    if let Some(m) = read_manifest(repo_path) {
        let pack_dir = repo_path.join("objects").join("pack");
        if m.tips == tips && pack_dir.join(&m.pack).with_extension("idx").is_file() {
            return Ok(Marked::Current);
        }
    }
    let needed = reachable(&repo, &snapshot, &tips, interrupt)?;
    let packs = crate::storage::pack_files(repo_path).map_err(crate::pack::Error::Io)?;
    for pack in packs {
        let Ok(index) =
            gix_pack::index::File::at(pack.with_extension("idx"), gix::hash::Kind::Sha1)
        else {
            continue;
        };
        if index.num_objects() as usize != needed.len() {
            continue;
        }
        if needed.iter().all(|id| index.lookup(id.as_ref()).is_some()) {
            write_manifest(repo_path, &pack, index.num_objects(), &tips)
                .map_err(crate::pack::Error::Io)?;
            return Ok(Marked::Recorded {
                objects: index.num_objects(),
            });
        }
    }
    remove_manifest(repo_path);
    Ok(Marked::NoMatch)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::read::testutil::{git, init};
    use crate::upload_pack::{serve, Options, Protocol};

    fn pkt(s: &str) -> Vec<u8> {
        format!("{:04x}{s}", s.len() + 4).into_bytes()
    }

    /// A v2 `fetch` of `wants` with no haves (a clone), with the capability lines `caps`.
    pub(crate) fn clone_request(wants: &[String], caps: &[&str]) -> Vec<u8> {
        let mut body = pkt("command=fetch\n");
        body.extend(pkt("agent=git/2.47\n"));
        body.extend(b"0001");
        for cap in caps {
            body.extend(pkt(&format!("{cap}\n")));
        }
        for want in wants {
            body.extend(pkt(&format!("want {want}\n")));
        }
        body.extend(pkt("done\n"));
        body.extend(b"0000");
        body
    }

    /// The pack of a v2 fetch answer (band 1 after `packfile`).
    pub(crate) fn pack_of(response: &[u8]) -> Vec<u8> {
        let mut rest = response;
        let mut in_pack = false;
        let mut pack = Vec::new();
        while rest.len() >= 4 {
            let len = usize::from_str_radix(std::str::from_utf8(&rest[..4]).expect("hex"), 16)
                .expect("length");
            if len < 4 {
                rest = &rest[4..];
                continue;
            }
            let data = &rest[4..len];
            if in_pack && data[0] == 1 {
                pack.extend_from_slice(&data[1..]);
            } else if data == b"packfile\n" {
                in_pack = true;
            }
            rest = &rest[len..];
        }
        pack
    }

    pub(crate) fn fetch(repo_dir: &Path, wants: &[String], caps: &[&str]) -> (Vec<u8>, usize) {
        let (pack, objects, _) = fetch_reused(repo_dir, wants, caps);
        (pack, objects)
    }

    /// [`fetch`], and whether the answer was a stored pack (its progress line says so).
    pub(crate) fn fetch_reused(
        repo_dir: &Path,
        wants: &[String],
        caps: &[&str],
    ) -> (Vec<u8>, usize, bool) {
        let repo = crate::storage::open(repo_dir).expect("open");
        let mut out = Vec::new();
        let interrupt = AtomicBool::new(false);
        let outcome = serve(
            &repo,
            Protocol::V2,
            &clone_request(wants, caps)[..],
            &mut out,
            &interrupt,
            &Options::default(),
        )
        .expect("serve");
        let reused = out
            .windows(b"Reusing a stored pack".len())
            .any(|w| w == b"Reusing a stored pack");
        (pack_of(&out), outcome.objects, reused)
    }

    pub(crate) fn clone_wants(dir: &Path) -> Vec<String> {
        let mut tips: Vec<String> = git(
            dir,
            &[
                "for-each-ref",
                "--format=%(objectname)",
                "refs/heads",
                "refs/tags",
            ],
        )
        .lines()
        .map(str::to_owned)
        .collect();
        tips.sort();
        tips.dedup();
        tips
    }

    /// `git index-pack` accepts `pack` and finds `objects` objects in it.
    pub(crate) fn index_pack_accepts(pack: &[u8], objects: usize) {
        let tmp = tempfile::tempdir().expect("tempdir");
        git(tmp.path(), &["init", "-q", "--bare", "."]);
        std::fs::write(tmp.path().join("in.pack"), pack).expect("write");
        git(tmp.path(), &["index-pack", "--strict", "in.pack"]);
        let listed = git(tmp.path(), &["verify-pack", "-v", "in.idx"]);
        let count = listed
            .lines()
            .filter(|l| l.len() > 41 && l.as_bytes()[40] == b' ')
            .count();
        assert_eq!(count, objects);
    }

    fn history(dir: &Path) {
        init(dir);
        for i in 0..5 {
            std::fs::write(dir.join("f.txt"), "line\n".repeat(40 + i)).expect("write");
            std::fs::write(dir.join(format!("g{i}.txt")), format!("g {i}\n")).expect("write");
            git(dir, &["add", "-A"]);
            git(dir, &["commit", "-q", "-m", &format!("c{i}")]);
        }
        git(dir, &["tag", "-a", "-m", "v1", "v1", "HEAD~2"]);
        git(dir, &["branch", "side", "HEAD~3"]);
    }

    #[test]
    fn a_clone_of_every_branch_and_tag_gets_the_stored_pack_byte_for_byte() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        history(dir);
        git(dir, &["repack", "-adq"]);
        let repo_dir = dir.join(".git");
        let interrupt = AtomicBool::new(false);
        let objects: usize = git(dir, &["rev-list", "--objects", "--branches", "--tags"])
            .lines()
            .count();
        assert_eq!(
            mark(&repo_dir, &interrupt).expect("mark"),
            Marked::Recorded {
                objects: objects as u32
            }
        );
        assert_eq!(mark(&repo_dir, &interrupt).expect("mark"), Marked::Current);
        let manifest = read_manifest(&repo_dir).expect("manifest");
        let stored =
            std::fs::read(repo_dir.join("objects/pack").join(&manifest.pack)).expect("pack");

        let wants = clone_wants(dir);
        let (pack, count, reused) = fetch_reused(&repo_dir, &wants, &["ofs-delta", "thin-pack"]);
        assert!(reused);
        assert_eq!(count, objects);
        assert!(pack == stored, "the stored pack, byte for byte");
        index_pack_accepts(&pack, objects);

        // Not a plain clone of every tip: the ordinary path, still a complete pack.
        let (pack, count, reused) = fetch_reused(&repo_dir, &wants[..1], &["ofs-delta"]);
        assert!(!reused && pack != stored);
        index_pack_accepts(&pack, count);
        let (_, _, reused) = fetch_reused(&repo_dir, &wants, &[]);
        assert!(
            !reused,
            "a client without ofs-delta never gets stored ofs-deltas"
        );
        let (_, _, reused) =
            fetch_reused(&repo_dir, &wants, &["ofs-delta", "filter blob:limit=10"]);
        assert!(!reused, "only blob:none is cut from the stored pack");

        // Once the refs move, the old record no longer matches the clone's wants.
        std::fs::write(dir.join("h.txt"), "new\n").expect("write");
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", "new"]);
        let wants = clone_wants(dir);
        let (pack, count, reused) = fetch_reused(&repo_dir, &wants, &["ofs-delta"]);
        assert!(!reused && pack != stored);
        index_pack_accepts(&pack, count);
        assert_eq!(count, objects + 3);
        // A loose commit: no pack holds exactly the clone's objects.
        assert_eq!(mark(&repo_dir, &interrupt).expect("mark"), Marked::NoMatch);
        assert!(read_manifest(&repo_dir).is_none());
    }

    /// Id and type of every object `git verify-pack -v` lists in `pack`, and how many are
    /// deltas.
    fn listed_objects(pack: &[u8]) -> (std::collections::BTreeMap<String, String>, usize) {
        let tmp = tempfile::tempdir().expect("tempdir");
        git(tmp.path(), &["init", "-q", "--bare", "."]);
        std::fs::write(tmp.path().join("in.pack"), pack).expect("write");
        git(tmp.path(), &["index-pack", "in.pack"]);
        let mut objects = std::collections::BTreeMap::new();
        let mut deltas = 0;
        for line in git(tmp.path(), &["verify-pack", "-v", "in.idx"]).lines() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() >= 5 && cols[0].len() == 40 {
                objects.insert(cols[0].to_owned(), cols[1].to_owned());
                if cols.len() == 7 {
                    deltas += 1;
                }
            }
        }
        (objects, deltas)
    }

    #[test]
    fn a_blobless_clone_gets_the_stored_commits_trees_and_tags_with_their_deltas() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        // A wide tree changed one entry at a time: trees stored as deltas of each other, and
        // blobs (deltas too) between them in the pack.
        std::fs::create_dir_all(dir.join("src")).expect("mkdir");
        for i in 0..40 {
            for f in 0..60 {
                if f % 40 == i % 40 || i == 0 {
                    let text = format!("file {f} revision {i}\n").repeat(30 + f);
                    std::fs::write(dir.join("src").join(format!("f{f:02}.rs")), text)
                        .expect("write");
                }
            }
            git(dir, &["add", "-A"]);
            git(dir, &["commit", "-q", "-m", &format!("c{i}")]);
            if i % 10 == 5 {
                git(dir, &["tag", "-a", "-m", "t", &format!("v{i}")]);
            }
        }
        git(dir, &["branch", "old", "HEAD~20"]);
        git(dir, &["repack", "-adfq", "--window=50", "--depth=50"]);
        let repo_dir = dir.join(".git");
        let interrupt = AtomicBool::new(false);
        assert!(matches!(
            mark(&repo_dir, &interrupt),
            Ok(Marked::Recorded { .. })
        ));
        let expected: std::collections::BTreeSet<String> = git(
            dir,
            &[
                "rev-list",
                "--objects",
                "--branches",
                "--tags",
                "--filter=blob:none",
            ],
        )
        .lines()
        .map(|l| l[..40].to_owned())
        .collect();

        let wants = clone_wants(dir);
        let (pack, count, reused) =
            fetch_reused(&repo_dir, &wants, &["ofs-delta", "filter blob:none"]);
        assert!(reused, "answered from the stored pack");
        assert_eq!(count, expected.len());
        let (objects, deltas) = listed_objects(&pack);
        let ids: std::collections::BTreeSet<String> = objects.keys().cloned().collect();
        assert_eq!(
            ids, expected,
            "exactly what git's rev-list --filter=blob:none names"
        );
        assert!(objects.values().all(|t| t != "blob"));
        assert!(objects.values().any(|t| t == "tag"));
        assert!(
            deltas > 20,
            "trees went out as the deltas they are stored as: {deltas}"
        );

        // The ordinary path (no record) answers the same objects.
        remove_manifest(&repo_dir);
        let (plain, plain_count, reused) =
            fetch_reused(&repo_dir, &wants, &["ofs-delta", "filter blob:none"]);
        assert!(!reused);
        assert_eq!(plain_count, count);
        assert_eq!(listed_objects(&plain).0, objects);

        // A stored pack whose deltas name their bases by id (REF_DELTA) is cut the same way.
        git(
            dir,
            &[
                "-c",
                "repack.useDeltaBaseOffset=false",
                "repack",
                "-adfq",
                "--window=50",
                "--depth=50",
            ],
        );
        assert!(matches!(
            mark(&repo_dir, &interrupt),
            Ok(Marked::Recorded { .. })
        ));
        let (by_id, by_id_count, reused) =
            fetch_reused(&repo_dir, &wants, &["ofs-delta", "filter blob:none"]);
        assert!(reused);
        assert_eq!(by_id_count, count);
        let (listed, deltas) = listed_objects(&by_id);
        assert_eq!(listed, objects);
        assert!(deltas > 20, "{deltas}");
    }

    #[test]
    fn a_damaged_or_foreign_manifest_is_ignored() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        history(dir);
        git(dir, &["repack", "-adq"]);
        let repo_dir = dir.join(".git");
        let interrupt = AtomicBool::new(false);
        assert!(matches!(
            mark(&repo_dir, &interrupt),
            Ok(Marked::Recorded { .. })
        ));
        let wants = clone_wants(dir);
        let path = manifest_path(&repo_dir);
        let good = std::fs::read_to_string(&path).expect("manifest");
        let ids: Vec<ObjectId> = wants
            .iter()
            .map(|w| ObjectId::from_hex(w.as_bytes()).expect("id"))
            .collect();
        std::fs::write(&path, &good).expect("write");
        assert!(
            find(&repo_dir, &ids, crate::pack::Filter::None).is_some(),
            "the good one is used"
        );
        for bad in [
            good.replace("pack pack-", "pack ../../pack-"),
            good.replace("objects ", "objects 1"),
            good.replacen("tip ", "tip zz", 1),
            String::new(),
        ] {
            std::fs::write(&path, &bad).expect("write");
            assert!(
                find(&repo_dir, &ids, crate::pack::Filter::None).is_none(),
                "{bad}"
            );
            let (pack, count, reused) = fetch_reused(&repo_dir, &wants, &["ofs-delta"]);
            assert!(!reused);
            index_pack_accepts(&pack, count);
        }
    }
}
