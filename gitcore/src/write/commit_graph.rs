//! A commit-graph writer (gix reads commit-graph files but cannot write them): every commit
//! reachable from the repository's refs, in git's format (`Documentation/gitformat-commit-graph`),
//! version 1 with topological generation numbers — byte for byte what
//! `git -c commitGraph.generationVersion=1 commit-graph write --reachable` writes, which the
//! tests check, along with `git commit-graph verify`.
//!
//! Layout: the `CGPH` header, a chunk table, then `OIDF` (256 cumulative counts by first byte),
//! `OIDL` (sorted ids), `CDAT` (per commit: tree id, first two parents as positions, generation
//! and commit time in 64 bits), `EDGE` (the further parents of octopus merges) and a SHA-1 of
//! everything before it. Written to `objects/info/commit-graph` through a temporary file and a
//! rename, so readers see the old graph or the new one. A graph is a cache: commits made after
//! it are read from their objects.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use gix::ObjectId;

/// No parent in a `CDAT` parent slot.
const NO_PARENT: u32 = 0x7000_0000;
/// In the second parent slot: the parents from the second on are in `EDGE`, from this index.
const OCTOPUS: u32 = 0x8000_0000;
/// Marks the last parent of an octopus merge in `EDGE`.
const LAST_EDGE: u32 = 0x8000_0000;
/// Generation numbers are stored in 30 bits.
const GENERATION_MAX: u32 = 0x3FFF_FFFF;

/// Why the graph was not written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading refs or commits failed.
    #[error("commit-graph: reading {what}")]
    Read {
        /// What was read.
        what: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Writing the file failed.
    #[error("commit-graph: writing the file")]
    Io(#[from] std::io::Error),
    /// Only SHA-1 repositories are supported.
    #[error("commit-graph: only SHA-1 repositories are supported")]
    Hash,
}

fn read_err(what: impl Into<String>, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Read {
        what: what.into(),
        source: Box::new(e),
    }
}

struct Commit {
    tree: ObjectId,
    parents: Vec<ObjectId>,
    time: u64,
}

/// Every commit reachable from a ref (tags peeled), with what the graph stores of it.
fn reachable_commits(repo: &gix::Repository) -> Result<HashMap<ObjectId, Commit>, Error> {
    let mut stack = Vec::new();
    let refs = repo.references().map_err(|e| read_err("refs", e))?;
    for r in refs.all().map_err(|e| read_err("refs", e))?.flatten() {
        let mut r = r;
        if let Ok(id) = r.peel_to_id() {
            stack.push(id.detach());
        }
    }
    if let Ok(head) = repo.head_id() {
        stack.push(head.detach());
    }
    let mut commits = HashMap::new();
    while let Some(id) = stack.pop() {
        if commits.contains_key(&id) {
            continue;
        }
        // A ref to a tree or blob (or a missing object) is not part of the graph.
        let Ok(object) = repo.find_object(id) else {
            continue;
        };
        if object.kind != gix::object::Kind::Commit {
            continue;
        }
        let c = gix::objs::CommitRef::from_bytes(&object.data, repo.object_hash())
            .map_err(|e| read_err(format!("commit {id}"), e))?;
        let time = c.committer().map_or(0, |s| s.seconds()).max(0) as u64;
        let parents: Vec<ObjectId> = c.parents().collect();
        stack.extend(parents.iter().copied());
        commits.insert(
            id,
            Commit {
                tree: c.tree(),
                parents,
                time,
            },
        );
    }
    Ok(commits)
}

/// The bytes of the commit-graph of `commits`.
fn encode(commits: &HashMap<ObjectId, Commit>) -> Vec<u8> {
    let mut ids: Vec<ObjectId> = commits.keys().copied().collect();
    ids.sort();
    let position: HashMap<ObjectId, u32> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i as u32))
        .collect();
    // Topological levels, iteratively (histories are deep): 1 for roots, else 1 + the parents'
    // largest. Parents outside the graph (a shallow boundary) count as absent.
    let mut generation: HashMap<ObjectId, u32> = HashMap::with_capacity(ids.len());
    for start in &ids {
        let mut stack = vec![*start];
        while let Some(&id) = stack.last() {
            if generation.contains_key(&id) {
                stack.pop();
                continue;
            }
            let c = &commits[&id];
            let pending: Vec<ObjectId> = c
                .parents
                .iter()
                .filter(|p| commits.contains_key(*p) && !generation.contains_key(*p))
                .copied()
                .collect();
            if pending.is_empty() {
                let g = c
                    .parents
                    .iter()
                    .filter_map(|p| generation.get(p))
                    .max()
                    .map_or(1, |g| g.saturating_add(1).min(GENERATION_MAX));
                generation.insert(id, g);
                stack.pop();
            } else {
                stack.extend(pending);
            }
        }
    }

    let mut oidf = Vec::with_capacity(256 * 4);
    let mut count = 0u32;
    for byte in 0..=255u8 {
        while (count as usize) < ids.len() && ids[count as usize].as_bytes()[0] <= byte {
            count += 1;
        }
        oidf.extend_from_slice(&count.to_be_bytes());
    }
    let mut oidl = Vec::with_capacity(ids.len() * 20);
    let mut cdat = Vec::with_capacity(ids.len() * 36);
    let mut edge: Vec<u32> = Vec::new();
    for id in &ids {
        oidl.extend_from_slice(id.as_bytes());
        let c = &commits[id];
        let pos = |p: &ObjectId| position.get(p).copied();
        let in_graph: Vec<u32> = c.parents.iter().filter_map(pos).collect();
        let first = in_graph.first().copied().unwrap_or(NO_PARENT);
        let second = match in_graph.len() {
            0 | 1 => NO_PARENT,
            2 => in_graph[1],
            _ => {
                let at = edge.len() as u32 | OCTOPUS;
                for (i, p) in in_graph[1..].iter().enumerate() {
                    let last = i == in_graph.len() - 2;
                    edge.push(if last { p | LAST_EDGE } else { *p });
                }
                at
            }
        };
        cdat.extend_from_slice(c.tree.as_bytes());
        cdat.extend_from_slice(&first.to_be_bytes());
        cdat.extend_from_slice(&second.to_be_bytes());
        let g = generation.get(id).copied().unwrap_or(1);
        let time = c.time & ((1 << 34) - 1);
        let high = (g << 2) | (time >> 32) as u32;
        cdat.extend_from_slice(&high.to_be_bytes());
        cdat.extend_from_slice(&(time as u32).to_be_bytes());
    }
    let edge: Vec<u8> = edge.iter().flat_map(|e| e.to_be_bytes()).collect();

    let mut chunks: Vec<(&[u8; 4], &[u8])> =
        vec![(b"OIDF", &oidf), (b"OIDL", &oidl), (b"CDAT", &cdat)];
    if !edge.is_empty() {
        chunks.push((b"EDGE", &edge));
    }
    let mut out = Vec::new();
    out.extend_from_slice(b"CGPH");
    out.push(1); // version
    out.push(1); // SHA-1
    out.push(chunks.len() as u8);
    out.push(0); // base graphs
    let mut offset = (8 + (chunks.len() + 1) * 12) as u64;
    for (id, data) in &chunks {
        out.extend_from_slice(*id);
        out.extend_from_slice(&offset.to_be_bytes());
        offset += data.len() as u64;
    }
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&offset.to_be_bytes());
    for (_, data) in &chunks {
        out.extend_from_slice(data);
    }
    let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
    hasher.update(&out);
    if let Ok(digest) = hasher.try_finalize() {
        out.extend_from_slice(digest.as_bytes());
    }
    out
}

/// Writes `objects/info/commit-graph` for the bare repository `repo`; answers the number of
/// commits in it. A split chain (`objects/info/commit-graphs/`) left by git is removed, as
/// `git commit-graph write` without `--split` does.
pub fn write(repo: &gix::Repository) -> Result<usize, Error> {
    if repo.object_hash() != gix::hash::Kind::Sha1 {
        return Err(Error::Hash);
    }
    let commits = reachable_commits(repo)?;
    let info = repo.objects.store_ref().path().join("info");
    if commits.is_empty() {
        // git writes no graph of nothing either.
        return Ok(0);
    }
    let bytes = encode(&commits);
    std::fs::create_dir_all(&info)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tmp = info.join(format!("tmp_graph_{}_{nanos}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, info.join("commit-graph"))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    let chain = info.join("commit-graphs");
    if chain.is_dir() {
        let _ = std::fs::remove_dir_all(&chain);
    }
    Ok(commits.len())
}

/// Whether `path`'s commit-graph is missing.
pub fn missing(path: &Path) -> bool {
    !path.join("objects/info/commit-graph").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::testutil::{git, git_at, git_status, init};

    /// A history with merges, an octopus, a root on a side branch, a tag on a tree and skewed
    /// dates: our file equals git's byte for byte, and `git commit-graph verify` accepts it.
    #[test]
    fn equals_what_git_writes_and_git_verifies_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        let mut date = 1_700_000_000u64;
        let mut commit = |dir: &Path, msg: &str| {
            date += 100;
            git_at(
                dir,
                &["commit", "-q", "--allow-empty", "-m", msg],
                &format!("{date} +0000"),
            );
        };
        for i in 0..30 {
            commit(dir, &format!("c{i}"));
        }
        for b in ["a", "b", "c"] {
            git(dir, &["checkout", "-q", "-b", b, "main~5"]);
            commit(dir, b);
        }
        git(dir, &["checkout", "-q", "main"]);
        git(
            dir,
            &["merge", "-q", "--no-ff", "-m", "octopus", "a", "b", "c"],
        );
        git(dir, &["checkout", "-q", "--orphan", "other"]);
        commit(dir, "other root");
        git(dir, &["checkout", "-q", "main"]);
        git(
            dir,
            &[
                "merge",
                "-q",
                "--allow-unrelated-histories",
                "-m",
                "join",
                "other",
            ],
        );
        git_at(
            dir,
            &["commit", "-q", "--allow-empty", "-m", "slow clock"],
            "1000000000 +0000",
        );
        git(dir, &["tag", "tree-tag", "main^{tree}"]);
        git(dir, &["tag", "-a", "-m", "annotated", "v1", "main~3"]);

        let graph = dir.join(".git/objects/info/commit-graph");
        git(
            dir,
            &[
                "-c",
                "commitGraph.generationVersion=1",
                "commit-graph",
                "write",
                "--reachable",
                "--no-progress",
            ],
        );
        let theirs = std::fs::read(&graph).expect("git's graph");
        std::fs::remove_file(&graph).expect("rm");

        let repo = crate::storage::open(&dir.join(".git")).expect("open");
        let n = write(&repo).expect("write");
        assert_eq!(n, 30 + 3 + 1 + 1 + 1 + 1);
        let ours = std::fs::read(&graph).expect("our graph");
        assert_eq!(ours.len(), theirs.len());
        assert!(ours == theirs, "the files differ");
        let (ok, out) = git_status(dir, &["commit-graph", "verify", "--no-progress"]);
        assert!(ok, "verify: {out}");
        assert!(!missing(&dir.join(".git")));
    }

    #[test]
    fn a_repository_without_commits_gets_no_graph() {
        let tmp = tempfile::tempdir().expect("tempdir");
        crate::storage::init_bare(tmp.path(), "main").expect("init");
        let repo = crate::storage::open(tmp.path()).expect("open");
        assert_eq!(write(&repo).expect("write"), 0);
        assert!(missing(tmp.path()));
    }
}
