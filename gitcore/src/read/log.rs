//! Commit history in `git log` order, optionally limited to a path like `git log -- <path>`.
//!
//! The walk is git's default (non-topological) one: a list of commits ordered by committer date,
//! newest first, where a commit whose date equals others' goes after them; each popped commit adds
//! its parents not seen before.
//!
//! With a path, git's default history simplification applies: a commit is shown unless it is
//! TREESAME (the path is identical in it and its parent; for a root commit, the path is absent);
//! a merge that is TREESAME to one of its parents (checked in order) is followed only through
//! that parent. The path is taken literally (no glob magic): it matches itself and everything
//! below it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use gix::ObjectId;

use super::commit::Commit;
use super::{commit_node_in, entry_at, Entry, Error};

/// What to list.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// Only commits that change this path (validated by the caller with
    /// [`validate_path`](super::validate_path); empty means no limit).
    pub path: Option<&'a str>,
    /// How many matching commits to skip (`--skip`).
    pub skip: usize,
    /// How many to answer at most (`-n`).
    pub limit: usize,
}

/// Lists commits reachable from `start`, newest first, as `git log` does.
pub fn log(
    repo: &gix::Repository,
    start: ObjectId,
    opts: Options<'_>,
) -> Result<Vec<Commit>, Error> {
    log_ids(repo, start, opts)?
        .into_iter()
        .map(|id| super::commit::read(repo, id))
        .collect()
}

/// Like [`log`], answering only the ids.
pub fn log_ids(
    repo: &gix::Repository,
    start: ObjectId,
    opts: Options<'_>,
) -> Result<Vec<ObjectId>, Error> {
    let path = match opts.path {
        Some(p) => Some(super::path::validate(p)?),
        None => None,
    }
    .filter(|p| !p.is_empty());
    let components = path.map(super::path::components);
    let mut out = Vec::new();
    if opts.limit == 0 {
        return Ok(out);
    }
    let mut skipped = 0usize;
    let mut seen: HashSet<ObjectId> = HashSet::new();
    // Max-heap on (date, earliest insertion first).
    let mut queue: BinaryHeap<(i64, Reverse<u64>, ObjectId)> = BinaryHeap::new();
    let mut nodes = HashMap::new();
    let mut entries: HashMap<ObjectId, Option<Entry>> = HashMap::new();
    let mut seq = 0u64;
    // A commit-graph (a cache: commits after it are read from their objects) spares the walk
    // inflating every commit it passes.
    let cached = super::graph::commit_graph(repo);
    let graph = cached.as_deref().map(|c| &c.graph);
    if let (None, Some(cached)) = (&components, cached.as_deref()) {
        return walk_by_position(repo, cached, start, opts);
    }

    let node = commit_node_in(repo, graph, start)?;
    seen.insert(start);
    queue.push((node.time, Reverse(seq), start));
    nodes.insert(start, node);

    while let Some((_, _, id)) = queue.pop() {
        let node = match nodes.remove(&id) {
            Some(n) => n,
            None => commit_node_in(repo, graph, id)?,
        };
        let mut parents = node.parents.clone();
        let mut treesame = false;
        if let Some(components) = &components {
            let mine = path_entry(repo, &mut entries, id, node.tree, components)?;
            if parents.is_empty() {
                treesame = mine.is_none();
            } else {
                for p in &node.parents {
                    let p_tree = match nodes.get(p) {
                        Some(n) => n.tree,
                        None => commit_node_in(repo, graph, *p)?.tree,
                    };
                    let theirs = path_entry(repo, &mut entries, *p, p_tree, components)?;
                    if same_entry(mine, theirs) {
                        parents = vec![*p];
                        treesame = true;
                        break;
                    }
                }
            }
        }
        for p in parents {
            if seen.insert(p) {
                let pn = commit_node_in(repo, graph, p)?;
                seq += 1;
                queue.push((pn.time, Reverse(seq), p));
                nodes.insert(p, pn);
            }
        }
        if treesame {
            continue;
        }
        if skipped < opts.skip {
            skipped += 1;
            continue;
        }
        out.push(id);
        if out.len() >= opts.limit {
            break;
        }
    }
    Ok(out)
}

/// A commit of the walk: by its position in the commit-graph, or by id when the graph does not
/// have it (made after the graph was written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum At {
    Pos(u32),
    Id(ObjectId),
}

/// [`log_ids`] without a path, over the commit-graph: commits are visited by position, their
/// times and parents read from the graph, `seen` is a bit per position; ids are looked up only
/// for commits newer than the graph and for the commits answered. Same order as the walk by id.
///
/// From a tip inside the graph (all its history is then in it) the order is kept with the graph
/// ([`super::graph::Walk`]), at least twice as long as asked: the next pages are slices of it.
fn walk_by_position(
    repo: &gix::Repository,
    cached: &super::graph::CachedGraph,
    start: ObjectId,
    opts: Options<'_>,
) -> Result<Vec<ObjectId>, Error> {
    let graph = &cached.graph;
    let need = opts.skip.saturating_add(opts.limit);
    let answer = |order: &[u32]| -> Vec<ObjectId> {
        order
            .iter()
            .skip(opts.skip)
            .take(opts.limit)
            .map(|p| graph.id_at(gix::commitgraph::Position(*p)).to_owned())
            .collect()
    };
    if let Some(p) = graph.lookup(start).filter(|_| need <= MAX_KEPT_WALK) {
        if let Some(walk) = cached.walk(p.0) {
            if walk.complete || walk.order.len() >= need {
                return Ok(answer(&walk.order));
            }
        }
        let target = need.saturating_mul(2).clamp(1024, MAX_KEPT_WALK);
        let mut order = Vec::new();
        walk_order(repo, graph, start, |at| {
            if let At::Pos(p) = at {
                order.push(p);
            }
            order.len() < target
        })?;
        let complete = order.len() < target;
        let walk = cached.keep_walk(p.0, super::graph::Walk { order, complete });
        return Ok(answer(&walk.order));
    }
    let mut out = Vec::new();
    let mut skipped = 0usize;
    walk_order(repo, graph, start, |at| {
        if skipped < opts.skip {
            skipped += 1;
            return true;
        }
        out.push(match at {
            At::Pos(p) => graph.id_at(gix::commitgraph::Position(p)).to_owned(),
            At::Id(id) => id,
        });
        out.len() < opts.limit
    })?;
    Ok(out)
}

/// Longest walk kept with a graph, in commits.
const MAX_KEPT_WALK: usize = 1 << 20;

/// Calls `each` with the commits of `git log <start>` in order until it answers `false`.
fn walk_order(
    repo: &gix::Repository,
    graph: &gix::commitgraph::Graph,
    start: ObjectId,
    mut each: impl FnMut(At) -> bool,
) -> Result<(), Error> {
    let mut seen_pos = vec![false; graph.num_commits() as usize];
    let mut seen_id: gix::hashtable::HashSet<ObjectId> = Default::default();
    // Commits not in the graph, read once: their parents.
    let mut loose: gix::hashtable::HashMap<ObjectId, Vec<ObjectId>> = Default::default();
    let mut queue: BinaryHeap<(i64, Reverse<u64>, At)> = BinaryHeap::new();
    let mut seq = 0u64;
    let time_of = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
    let mut visit = |id: ObjectId,
                     seq: u64,
                     queue: &mut BinaryHeap<(i64, Reverse<u64>, At)>,
                     seen_pos: &mut Vec<bool>,
                     loose: &mut gix::hashtable::HashMap<ObjectId, Vec<ObjectId>>|
     -> Result<bool, Error> {
        match graph.lookup(id) {
            Some(p) => {
                let i = p.0 as usize;
                if seen_pos.get(i).copied().unwrap_or(true) {
                    return Ok(false);
                }
                seen_pos[i] = true;
                let t = time_of(graph.commit_at(p).committer_timestamp());
                queue.push((t, Reverse(seq), At::Pos(p.0)));
            }
            None => {
                if !seen_id.insert(id) {
                    return Ok(false);
                }
                let node = super::commit_node(repo, id)?;
                queue.push((node.time, Reverse(seq), At::Id(id)));
                loose.insert(id, node.parents);
            }
        }
        Ok(true)
    };
    visit(start, seq, &mut queue, &mut seen_pos, &mut loose)?;
    while let Some((_, _, at)) = queue.pop() {
        match at {
            At::Pos(p) => {
                let pos = gix::commitgraph::Position(p);
                for parent in graph.commit_at(pos).iter_parents() {
                    let parent =
                        parent.map_err(|e| Error::object(graph.id_at(pos).to_owned(), e))?;
                    let i = parent.0 as usize;
                    if seen_pos.get(i).copied().unwrap_or(true) {
                        continue;
                    }
                    seen_pos[i] = true;
                    seq += 1;
                    let t = time_of(graph.commit_at(parent).committer_timestamp());
                    queue.push((t, Reverse(seq), At::Pos(parent.0)));
                }
            }
            At::Id(id) => {
                let parents = loose.remove(&id).unwrap_or_default();
                for parent in parents {
                    if visit(parent, seq + 1, &mut queue, &mut seen_pos, &mut loose)? {
                        seq += 1;
                    }
                }
            }
        }
        if !each(at) {
            break;
        }
    }
    Ok(())
}

fn path_entry(
    repo: &gix::Repository,
    cache: &mut HashMap<ObjectId, Option<Entry>>,
    commit: ObjectId,
    tree: ObjectId,
    components: &[&[u8]],
) -> Result<Option<Entry>, Error> {
    if let Some(e) = cache.get(&commit) {
        return Ok(*e);
    }
    let e = entry_at(repo, tree, components)?;
    cache.insert(commit, e);
    Ok(e)
}

/// Whether two entries are the same for the purpose of TREESAME (same object, same mode).
fn same_entry(a: Option<Entry>, b: Option<Entry>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.id == b.id && a.mode.kind() == b.mode.kind(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::testutil::{git, git_at, init, open};

    fn ids(s: &str) -> Vec<String> {
        s.lines().map(str::to_owned).collect()
    }

    #[test]
    fn matches_git_log_with_merges_ties_and_paths() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        let commit = |file: &str, content: &str, date: &str| {
            if let Some(parent) = std::path::Path::new(file).parent() {
                std::fs::create_dir_all(dir.join(parent)).expect("mkdir");
            }
            std::fs::write(dir.join(file), content).expect("write");
            git(dir, &["add", "-A"]);
            git_at(dir, &["commit", "-q", "-m", file], date);
        };
        commit("a", "1\n", "1700000000 +0000");
        commit("d/b", "1\n", "1700000010 +0000");
        git(dir, &["checkout", "-q", "-b", "side"]);
        commit("d/c", "1\n", "1700000020 +0000");
        commit("a", "2\n", "1700000020 +0000"); // same second as its parent
        git(dir, &["checkout", "-q", "main"]);
        commit("d/b", "2\n", "1700000015 +0000");
        commit("e", "1\n", "1700000030 +0000");
        git_at(
            dir,
            &["merge", "-q", "--no-ff", "-m", "merge side", "side"],
            "1700000040 +0000",
        );
        commit("a", "3\n", "1700000040 +0000");
        // For `a` the merge is TREESAME to its second parent (only `side` changed it), so git
        // follows `side` alone; for `e` it is TREESAME to its first parent.
        // Without a commit-graph, then with ours (part of history in it, the rest after it).
        commit("f", "1\n", "1700000050 +0000");
        for with_graph in [false, true] {
            if with_graph {
                git(dir, &["reset", "-q", "--hard", "HEAD~1"]);
                crate::write::commit_graph::write(&open(dir)).expect("graph");
                commit("f", "1\n", "1700000050 +0000");
                assert!(open(dir)
                    .commit_graph_if_enabled()
                    .expect("graph")
                    .is_some());
            }
            matches_git(dir);
        }
    }

    /// Branchy history with merges, dates going back and forth and many ties, walked with the
    /// graph covering most of it: the same order and skips as `git log`.
    #[test]
    fn the_walk_over_the_graph_matches_git_log_on_branchy_history() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        let mut state = 7u64;
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        std::fs::write(dir.join("f0"), "root\n").expect("write");
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", "root"]);
        let mut branches = vec!["main".to_owned()];
        for i in 0..70 {
            if i == 55 {
                crate::write::commit_graph::write(&open(dir)).expect("graph");
            }
            let date = format!("{} +0000", 1_700_000_000 + next(12) * 10);
            let b = branches[next(branches.len() as u64) as usize].clone();
            git(dir, &["checkout", "-q", &b]);
            match next(6) {
                0 if i > 3 => {
                    let name = format!("b{i}");
                    git(dir, &["checkout", "-q", "-b", &name]);
                    branches.push(name);
                }
                1 if branches.len() > 1 => {
                    let other = branches[next(branches.len() as u64) as usize].clone();
                    if other != b {
                        git_at(
                            dir,
                            &["merge", "-q", "--no-ff", "-m", "merge", &other],
                            &date,
                        );
                        continue;
                    }
                }
                _ => {}
            }
            std::fs::write(dir.join(format!("g{i}")), format!("{i}\n")).expect("write");
            git(dir, &["add", "-A"]);
            git_at(dir, &["commit", "-q", "-m", &format!("c{i}")], &date);
        }
        for b in &branches {
            git(dir, &["checkout", "-q", b]);
            git_at(
                dir,
                &["merge", "-q", "--no-ff", "-m", "all", "main"],
                "1700000060 +0000",
            );
        }
        assert!(open(dir)
            .commit_graph_if_enabled()
            .expect("graph")
            .is_some());
        let repo = open(dir);
        let head =
            ObjectId::from_hex(git(dir, &["rev-parse", "HEAD"]).trim().as_bytes()).expect("hex");
        for (skip, limit) in [(0, 1000), (7, 5), (30, 40), (200, 5)] {
            let ours: Vec<String> = log_ids(
                &repo,
                head,
                Options {
                    path: None,
                    skip,
                    limit,
                },
            )
            .expect("log")
            .iter()
            .map(ToString::to_string)
            .collect();
            let theirs = ids(&git(
                dir,
                &[
                    "log",
                    "--format=%H",
                    &format!("--skip={skip}"),
                    "-n",
                    &limit.to_string(),
                ],
            ));
            assert_eq!(ours, theirs, "skip {skip}, limit {limit}");
        }
    }

    /// Pages deep into a long history come from the walk kept with the graph, extended when a
    /// page lies past it, and equal git's.
    #[test]
    fn pages_past_the_kept_walk_extend_it_and_match_git() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        let mut stream = String::new();
        for i in 0..3000u64 {
            // Branches merged back every 50 commits, dates with ties.
            stream.push_str(&format!(
                "commit refs/heads/main\nmark :{m}\ncommitter C <c@example.com> {t} +0000\ndata 3\nc{r}\n",
                m = i + 1,
                t = 1_700_000_000 + i / 3,
                r = i % 10
            ));
            if i > 0 {
                stream.push_str(&format!("from :{}\n", i));
            }
            if i % 50 == 49 && i > 100 {
                stream.push_str(&format!("merge :{}\n", i - 60));
            }
            stream.push_str(&format!("M 644 inline f{}\ndata 2\n{}\n\n", i % 7, i % 10));
        }
        crate::read::testutil::git_with_input(dir, &["fast-import", "--quiet"], stream.as_bytes());
        crate::write::commit_graph::write(&open(dir)).expect("graph");
        let repo = open(dir);
        let head =
            ObjectId::from_hex(git(dir, &["rev-parse", "main"]).trim().as_bytes()).expect("hex");
        for (skip, limit) in [(0, 10), (2000, 50), (100, 5), (2990, 50), (5000, 5)] {
            let ours: Vec<String> = log_ids(
                &repo,
                head,
                Options {
                    path: None,
                    skip,
                    limit,
                },
            )
            .expect("log")
            .iter()
            .map(ToString::to_string)
            .collect();
            let theirs = ids(&git(
                dir,
                &[
                    "log",
                    "--format=%H",
                    &format!("--skip={skip}"),
                    "-n",
                    &limit.to_string(),
                    "main",
                ],
            ));
            assert_eq!(ours, theirs, "skip {skip}, limit {limit}");
        }
    }

    fn matches_git(dir: &std::path::Path) {
        let repo = open(dir);
        let head =
            ObjectId::from_hex(git(dir, &["rev-parse", "HEAD"]).trim().as_bytes()).expect("hex");
        let all = |path: Option<&str>, skip: usize, limit: usize| -> Vec<String> {
            log_ids(&repo, head, Options { path, skip, limit })
                .expect("log")
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(all(None, 0, 100), ids(&git(dir, &["log", "--format=%H"])));
        assert_eq!(
            all(None, 2, 3),
            ids(&git(dir, &["log", "--format=%H", "--skip=2", "-n", "3"]))
        );
        for path in ["a", "d", "d/b", "d/c", "e", "f", "missing", "d/"] {
            assert_eq!(
                all(Some(path), 0, 100),
                ids(&git(dir, &["log", "--format=%H", "--", path])),
                "{path}"
            );
        }
        assert_eq!(
            all(Some("a"), 1, 1),
            ids(&git(
                dir,
                &["log", "--format=%H", "--skip=1", "-n", "1", "--", "a"]
            ))
        );
    }
}
