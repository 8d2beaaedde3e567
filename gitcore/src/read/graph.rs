//! A repository's commit-graph, kept mapped per process: opening it per request costs the file
//! opens, the mapping and, on a walk, a page fault per page touched (and unmapping it, a TLB
//! shootdown on every core). Revalidated on each use by a stat of `objects/info/commit-graph`
//! and of a split chain's `commit-graph-chain`: the graph is replaced by a rename (a new inode)
//! in this process or any other, so a changed file is never served from the cache. Beside the
//! graph, the order of `git log` walks from a few tips (see [`Walk`]): paging through history
//! then costs one walk, not one per page.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

type Graph = Arc<CachedGraph>;

/// A commit-graph and what was learned from it while it stays the repository's graph.
pub(crate) struct CachedGraph {
    pub(crate) graph: gix::commitgraph::Graph,
    walks: Mutex<HashMap<u32, Arc<Walk>>>,
}

/// The first commits of `git log <start>` in order, as graph positions.
pub(crate) struct Walk {
    pub(crate) order: Vec<u32>,
    /// The walk ran out of commits: `order` is all of it.
    pub(crate) complete: bool,
}

/// Walks kept per graph, at most (a new one past this starts the set over).
const WALKS: usize = 64;

impl CachedGraph {
    /// The walk kept for `start`, if any.
    pub(crate) fn walk(&self, start: u32) -> Option<Arc<Walk>> {
        self.walks.lock().ok()?.get(&start).cloned()
    }

    /// Keeps `walk` for `start`, replacing a shorter one.
    pub(crate) fn keep_walk(&self, start: u32, walk: Walk) -> Arc<Walk> {
        let walk = Arc::new(walk);
        if let Ok(mut w) = self.walks.lock() {
            if w.len() >= WALKS && !w.contains_key(&start) {
                w.clear();
            }
            w.insert(start, Arc::clone(&walk));
        }
        walk
    }
}

/// Repositories whose graph is kept, at most.
const REPOS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

fn stamp_of(path: &Path) -> Option<FileStamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        ino: m.ino(),
        size: m.size(),
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
    })
}

type Stamp = (Option<FileStamp>, Option<FileStamp>);

fn stamp(info: &Path) -> Stamp {
    (
        stamp_of(&info.join("commit-graph")),
        stamp_of(&info.join("commit-graphs").join("commit-graph-chain")),
    )
}

static CACHE: OnceLock<Mutex<HashMap<PathBuf, (Stamp, Graph)>>> = OnceLock::new();

/// The commit-graph of `repo`, if it has one (and `core.commitGraph` allows it).
pub(crate) fn commit_graph(repo: &gix::Repository) -> Option<Graph> {
    let info = repo.objects.store_ref().path().join("info");
    let now = stamp(&info);
    if now == (None, None) {
        return None;
    }
    let cache = CACHE.get_or_init(Default::default);
    if let Some((s, g)) = cache.lock().ok().and_then(|c| c.get(&info).cloned()) {
        if s == now {
            return Some(g);
        }
    }
    let graph = Arc::new(CachedGraph {
        graph: repo.commit_graph_if_enabled().ok().flatten()?,
        walks: Mutex::default(),
    });
    // Kept only if the files did not change while it was read.
    if stamp(&info) == now {
        if let Ok(mut c) = cache.lock() {
            if c.len() >= REPOS && !c.contains_key(&info) {
                c.clear();
            }
            c.insert(info, (now, Arc::clone(&graph)));
        }
    }
    Some(graph)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::testutil::{git, init, open};

    #[test]
    fn a_rewritten_graph_is_seen_and_an_unchanged_one_is_shared() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        git(dir, &["commit", "-q", "--allow-empty", "-m", "one"]);
        assert!(commit_graph(&open(dir)).is_none(), "no graph yet");
        crate::write::commit_graph::write(&open(dir)).expect("graph");
        let first = commit_graph(&open(dir)).expect("graph");
        assert_eq!(first.graph.num_commits(), 1);
        let again = commit_graph(&open(dir)).expect("graph");
        assert!(Arc::ptr_eq(&first, &again), "kept and shared");
        git(dir, &["commit", "-q", "--allow-empty", "-m", "two"]);
        crate::write::commit_graph::write(&open(dir)).expect("graph");
        assert_eq!(
            commit_graph(&open(dir)).expect("graph").graph.num_commits(),
            2
        );
        std::fs::remove_file(dir.join(".git/objects/info/commit-graph")).expect("rm");
        assert!(commit_graph(&open(dir)).is_none(), "removed");
    }
}
