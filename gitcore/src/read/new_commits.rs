//! What a push brought: the commits reachable from its new tips and from no ref as it was
//! before, like a `post-receive` hook's `git rev-list <new> --not <old refs>`.
//!
//! With a commit-graph this paints rather than walks: commits newer than the graph (the pushed
//! ones, typically) are read and ordered among themselves, then graph commits are taken by
//! descending generation, each carrying the union of the marks of what reaches it (from a tip,
//! from a hidden ref), and the walk stops once nothing left can be reached only from the tips.
//! A repository with hundreds of tags is thus not walked from every one of them on each push;
//! hidden ids the graph holds are known commits and are not read.

use std::collections::BinaryHeap;

use gix::hashtable::HashMap;

use gix::ObjectId;

use super::Error;

const TIP: u8 = 1;
const HIDDEN: u8 = 2;

/// The commits reachable from `tips` and from none of `hidden`, newest first by committer date
/// (ties by id): at most `limit` ids, and the count of all. Tips and hidden ids that are not
/// commits (tags are peeled; trees and blobs) are skipped.
pub fn new_commits(
    repo: &gix::Repository,
    tips: &[ObjectId],
    hidden: &[ObjectId],
    limit: usize,
) -> Result<(Vec<ObjectId>, usize), Error> {
    new_commits_with(repo, tips, hidden, limit, None)
}

/// Commits already parsed (a push's, by its check pass): id → (committer time, parents).
pub type Known = gix::hashtable::HashMap<ObjectId, (i64, Vec<ObjectId>)>;

/// [`new_commits`], reading no commit `known` has. Without a commit-graph, when everything
/// reached is known (a first push), the commits are painted from `known` alone.
pub fn new_commits_with(
    repo: &gix::Repository,
    tips: &[ObjectId],
    hidden: &[ObjectId],
    limit: usize,
    known: Option<&Known>,
) -> Result<(Vec<ObjectId>, usize), Error> {
    let cached = super::graph::commit_graph(repo);
    let graph = cached.as_deref().map(|c| &c.graph);
    let peel = |ids: &[ObjectId]| -> Vec<ObjectId> {
        let mut out: Vec<ObjectId> = ids
            .iter()
            .filter(|id| !id.is_null())
            .filter_map(|id| {
                if graph.is_some_and(|g| g.lookup(id).is_some())
                    || known.is_some_and(|k| k.contains_key(id))
                {
                    return Some(*id);
                }
                let object = repo.find_object(*id).ok()?;
                object.peel_to_commit().ok().map(|c| c.id)
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    };
    let tips = peel(tips);
    if tips.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let hidden = peel(hidden);
    if graph.is_some() || known.is_some() {
        if let Some(found) = paint(repo, graph, known, &tips, &hidden, limit)? {
            return Ok(found);
        }
    }
    new_commits_by_walk(repo, &tips, &hidden, limit)
}

/// `None` when there is no graph and a commit reached is not `known` (then walk instead).
fn paint(
    repo: &gix::Repository,
    graph: Option<&gix::commitgraph::Graph>,
    known: Option<&Known>,
    tips: &[ObjectId],
    hidden: &[ObjectId],
    limit: usize,
) -> Result<Option<(Vec<ObjectId>, usize)>, Error> {
    use gix::commitgraph::Position;
    // Marks of graph commits reached so far; those not yet taken are in the heap.
    let mut marks: std::collections::HashMap<u32, u8> = std::collections::HashMap::new();
    let mut heap: BinaryHeap<(u32, u32)> = BinaryHeap::new();
    // Heap entries reached from the tips only: while there are none, nothing new is left.
    let mut open = 0usize;
    let reach = |graph: &gix::commitgraph::Graph,
                 pos: Position,
                 mark: u8,
                 marks: &mut std::collections::HashMap<u32, u8>,
                 heap: &mut BinaryHeap<(u32, u32)>,
                 open: &mut usize| {
        match marks.get_mut(&pos.0) {
            Some(m) => {
                let was = *m;
                *m |= mark;
                match (was == TIP, *m == TIP) {
                    (true, false) => *open -= 1,
                    (false, true) => *open += 1,
                    _ => {}
                }
            }
            None => {
                marks.insert(pos.0, mark);
                heap.push((graph.commit_at(pos).generation(), pos.0));
                if mark == TIP {
                    *open += 1;
                }
            }
        }
    };

    // Commits newer than the graph: read, then taken children first (Kahn's order).
    let mut region: HashMap<ObjectId, (Vec<ObjectId>, i64, u8)> = HashMap::default();
    let mut stack: Vec<(ObjectId, u8)> = tips
        .iter()
        .map(|t| (*t, TIP))
        .chain(hidden.iter().map(|h| (*h, HIDDEN)))
        .collect();
    let mut starts: Vec<(ObjectId, u8)> = Vec::new();
    let in_graph = |id: &ObjectId| graph.and_then(|g| g.lookup(id).map(|p| (g, p)));
    while let Some((id, mark)) = stack.pop() {
        if in_graph(&id).is_some() {
            // A graph commit reached as a parent gets its marks when its child is taken.
            if mark != 0 {
                starts.push((id, mark));
            }
            continue;
        }
        if let Some(entry) = region.get_mut(&id) {
            entry.2 |= mark;
            continue;
        }
        let (parents, time) = match known.and_then(|k| k.get(&id)) {
            Some((time, parents)) => (parents.clone(), *time),
            // Without a graph, only what is known is painted; anything else is walked.
            None if graph.is_none() => return Ok(None),
            None => {
                let node = super::commit_node(repo, id)?;
                (node.parents, node.time)
            }
        };
        for p in &parents {
            stack.push((*p, 0));
        }
        region.insert(id, (parents, time, mark));
    }
    let mut children: HashMap<ObjectId, usize> = HashMap::default();
    for (parents, _, _) in region.values() {
        for p in parents {
            if region.contains_key(p) {
                *children.entry(*p).or_default() += 1;
            }
        }
    }
    let mut ready: Vec<ObjectId> = region
        .keys()
        .filter(|id| !children.contains_key(*id))
        .copied()
        .collect();
    let mut found: Vec<(i64, ObjectId)> = Vec::new();
    while let Some(id) = ready.pop() {
        let Some((parents, time, mark)) = region.get(&id).cloned() else {
            continue;
        };
        if mark == TIP {
            found.push((time, id));
        }
        for p in parents {
            if let Some(entry) = region.get_mut(&p) {
                entry.2 |= mark;
                if let Some(n) = children.get_mut(&p) {
                    *n -= 1;
                    if *n == 0 {
                        ready.push(p);
                    }
                }
            } else if let Some((g, pos)) = in_graph(&p) {
                reach(g, pos, mark, &mut marks, &mut heap, &mut open);
            }
        }
    }
    for (id, mark) in starts {
        if let Some((g, pos)) = in_graph(&id) {
            reach(g, pos, mark, &mut marks, &mut heap, &mut open);
        }
    }
    let Some(graph) = graph else {
        return Ok(Some(newest_first(found, limit)));
    };

    // Graph commits by descending generation: everything that reaches one was taken before it.
    while open > 0 {
        let Some((_, p)) = heap.pop() else {
            break;
        };
        let mark = marks.get(&p).copied().unwrap_or(0);
        let pos = Position(p);
        let commit = graph.commit_at(pos);
        if mark == TIP {
            open -= 1;
            let time = i64::try_from(commit.committer_timestamp()).unwrap_or(i64::MAX);
            found.push((time, graph.id_at(pos).to_owned()));
        }
        for parent in commit.iter_parents() {
            let parent = parent.map_err(|e| Error::object(graph.id_at(pos).to_owned(), e))?;
            reach(graph, parent, mark, &mut marks, &mut heap, &mut open);
        }
    }
    Ok(Some(newest_first(found, limit)))
}

/// [`new_commits`] through gix's walk with hidden tips (no commit-graph).
fn new_commits_by_walk(
    repo: &gix::Repository,
    tips: &[ObjectId],
    hidden: &[ObjectId],
    limit: usize,
) -> Result<(Vec<ObjectId>, usize), Error> {
    let walk = repo
        .rev_walk(tips.iter().copied())
        .sorting(gix::revision::walk::Sorting::ByCommitTime(
            gix::traverse::commit::simple::CommitTimeOrder::NewestFirst,
        ))
        .with_hidden(hidden.iter().copied())
        .all()
        .map_err(|e| Error::References(e.into()))?;
    let mut found = Vec::new();
    for info in walk {
        let info = info.map_err(|e| Error::References(e.into()))?;
        let time = match info.commit_time {
            Some(t) => t,
            None => super::commit_node(repo, info.id)?.time,
        };
        found.push((time, info.id));
    }
    Ok(newest_first(found, limit))
}

/// Sorts by committer date, newest first (ties by id); the first `limit` and the count.
fn newest_first(mut found: Vec<(i64, ObjectId)>, limit: usize) -> (Vec<ObjectId>, usize) {
    found.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let count = found.len();
    (
        found.into_iter().take(limit).map(|(_, id)| id).collect(),
        count,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::testutil::{git, git_at, init, open};

    fn id(dir: &std::path::Path, rev: &str) -> ObjectId {
        ObjectId::from_hex(git(dir, &["rev-parse", rev]).trim().as_bytes()).expect("hex")
    }

    /// Every combination below against `git rev-list <tips> --not <hidden>`: the same set and
    /// count, newest first; with the graph covering part of history, all of it, or none.
    #[test]
    fn matches_rev_list_with_and_without_the_graph() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        let mut n = 0u64;
        let mut commit = |dir: &std::path::Path| {
            n += 1;
            std::fs::write(dir.join(format!("f{n}")), "x\n").expect("write");
            git(dir, &["add", "-A"]);
            // Dates out of order now and then, as clocks are.
            let t = 1_700_000_000 + (n % 7) * 100 + n;
            git_at(
                dir,
                &["commit", "-qm", &format!("c{n}")],
                &format!("{t} +0000"),
            );
        };
        for _ in 0..6 {
            commit(dir);
        }
        git(dir, &["tag", "-a", "-m", "old", "v1", "HEAD~2"]);
        git(dir, &["checkout", "-qb", "side", "HEAD~3"]);
        for _ in 0..4 {
            commit(dir);
        }
        git(dir, &["checkout", "-q", "main"]);
        git_at(
            dir,
            &["merge", "-q", "--no-ff", "-m", "m", "side"],
            "1700000500 +0000",
        );
        for _ in 0..3 {
            commit(dir);
        }
        let old_main = id(dir, "main");
        let old_side = id(dir, "side");
        let v1 = id(dir, "v1");
        // Graph over what exists so far; then new history on top.
        let with_graph_at = |dir: &std::path::Path| {
            crate::write::commit_graph::write(&open(dir)).expect("graph");
        };
        with_graph_at(dir);
        for _ in 0..5 {
            commit(dir);
        }
        git(dir, &["checkout", "-q", "side"]);
        for _ in 0..2 {
            commit(dir);
        }
        git(dir, &["checkout", "-q", "main"]);
        git_at(
            dir,
            &["merge", "-q", "--no-ff", "-m", "m2", "side"],
            "1700000900 +0000",
        );
        let new_main = id(dir, "main");
        let new_side = id(dir, "side");
        let cases: Vec<(Vec<ObjectId>, Vec<ObjectId>)> = vec![
            (vec![new_main], vec![old_main, old_side, v1]),
            (vec![new_main, new_side], vec![old_main]),
            (vec![new_side], vec![old_side]),
            (vec![new_main], vec![]),
            (vec![old_main], vec![v1]),
            (vec![v1], vec![old_main]),
            (vec![old_side], vec![new_main]),
        ];
        for graph_state in ["partial", "full", "none"] {
            match graph_state {
                "full" => with_graph_at(dir),
                "none" => std::fs::remove_file(dir.join(".git/objects/info/commit-graph"))
                    .expect("rm graph"),
                _ => {}
            }
            let repo = open(dir);
            // What a push's check pass would hand over: every commit, or only the newest few
            // (then, without a graph, the walk takes over where they end).
            let all: Vec<ObjectId> = git(dir, &["rev-list", "--all"])
                .lines()
                .map(|l| ObjectId::from_hex(l.as_bytes()).expect("hex"))
                .collect();
            let known_of = |ids: &[ObjectId]| -> Known {
                ids.iter()
                    .map(|c| {
                        let c = crate::read::commit::read(&repo, *c).expect("commit");
                        (c.id, (c.committer.seconds, c.parents))
                    })
                    .collect()
            };
            let (every, newest) = (known_of(&all), known_of(&all[..4]));
            for ((tips, hidden), known) in cases
                .iter()
                .flat_map(|c| [(c, None), (c, Some(&every)), (c, Some(&newest))])
            {
                let (listed, count) =
                    new_commits_with(&repo, tips, hidden, 1000, known).expect("list");
                let mut args = vec!["rev-list".to_owned()];
                args.extend(tips.iter().map(ToString::to_string));
                args.push("--not".into());
                args.extend(hidden.iter().map(ToString::to_string));
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let mut theirs: Vec<String> = git(dir, &args).lines().map(str::to_owned).collect();
                let mut ours: Vec<String> = listed.iter().map(ToString::to_string).collect();
                assert_eq!(
                    count,
                    theirs.len(),
                    "{graph_state}: {tips:?} --not {hidden:?}"
                );
                let times: Vec<i64> = listed
                    .iter()
                    .map(|c| {
                        crate::read::commit::read(&repo, *c)
                            .expect("c")
                            .committer
                            .seconds
                    })
                    .collect();
                assert!(
                    times.windows(2).all(|w| w[0] >= w[1]),
                    "{graph_state}: newest first"
                );
                ours.sort();
                theirs.sort();
                assert_eq!(ours, theirs, "{graph_state}: {tips:?} --not {hidden:?}");
                let (first, n) = new_commits_with(&repo, tips, hidden, 2, known).expect("limit");
                assert_eq!((first.len(), n), (count.min(2), count));
            }
        }
    }
}
