//! Whether the objects a client wants are reachable from the advertised refs
//! (`allow-reachable-sha1-in-want`).
//!
//! A want that is a tip passes at once; one proven reachable before under the same refs too
//! (the snapshot remembers it). Otherwise commits are walked newest first from the tips made
//! after the want (a day of slack), over a per-process cache of each commit's time and parents:
//! commits never change, so what was read once serves every later request, in any repository.
//! Clock skew can hide a want from that walk; a full walk from every tip then decides before a
//! refusal, and looks inside trees for wanted trees and blobs.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use gix::ObjectId;

use super::Error;
use crate::refs::Snapshot;

/// Commits whose time and parents are kept, at most (about 100 bytes each).
const MAX_COMMITS: usize = 1 << 18;

/// A commit's time and parents.
type Meta = Arc<(i64, Box<[ObjectId]>)>;

static COMMITS: OnceLock<Mutex<HashMap<ObjectId, Meta>>> = OnceLock::new();

/// The time and parents of commit `id`, from the cache or read (and kept).
fn meta(repo: &gix::Repository, id: ObjectId) -> Option<Meta> {
    let cache = COMMITS.get_or_init(Default::default);
    if let Some(m) = cache.lock().ok().and_then(|c| c.get(&id).cloned()) {
        return Some(m);
    }
    let commit = repo.find_commit(id).ok()?;
    let time = commit.time().ok()?.seconds;
    let parents: Box<[ObjectId]> = commit.parent_ids().map(|p| p.detach()).collect();
    let m: Meta = Arc::new((time, parents));
    if let Ok(mut c) = cache.lock() {
        if c.len() >= MAX_COMMITS {
            c.clear();
        }
        c.insert(id, Arc::clone(&m));
    }
    Some(m)
}

/// The commit time of `id`, if it is a commit (from the cache, or read and kept).
pub(crate) fn commit_time(repo: &gix::Repository, id: ObjectId) -> Option<i64> {
    meta(repo, id).map(|m| m.0)
}

/// Walks newest first from the `tips` (id, time) made at or after `cutoff`, not expanding
/// commits older than it, removing each commit met from `unknown`; whether all were met.
fn walk_recent(
    repo: &gix::Repository,
    tips: &[(ObjectId, i64)],
    cutoff: i64,
    unknown: &mut Vec<ObjectId>,
) -> bool {
    let mut queue: BinaryHeap<(i64, ObjectId)> = BinaryHeap::new();
    let mut seen: HashSet<ObjectId> = HashSet::new();
    for (id, time) in tips.iter().take_while(|(_, time)| *time >= cutoff) {
        if seen.insert(*id) {
            queue.push((*time, *id));
        }
    }
    while let Some((time, id)) = queue.pop() {
        unknown.retain(|w| *w != id);
        if unknown.is_empty() {
            return true;
        }
        if time < cutoff {
            continue;
        }
        let Some(m) = meta(repo, id) else { continue };
        for parent in m.1.iter() {
            if seen.insert(*parent) {
                if let Some(pm) = meta(repo, *parent) {
                    queue.push((pm.0, *parent));
                }
            }
        }
    }
    false
}

/// Every want must be an advertised tip, or a commit reachable from one
/// (`allow-reachable-sha1-in-want`).
pub(super) fn check_wants(
    repo: &gix::Repository,
    snapshot: &Snapshot,
    wants: &[ObjectId],
) -> Result<(), Error> {
    let mut unknown: Vec<ObjectId> = wants
        .iter()
        .filter(|w| !snapshot.is_tip(w) && !snapshot.known_reachable(w))
        .copied()
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    for w in &unknown {
        if !repo.has_object(*w) {
            return Err(Error::NotOurRef(*w));
        }
    }
    let proven = unknown.clone();
    if reachable_from(repo, snapshot, &mut unknown)? {
        for w in proven {
            snapshot.remember_reachable(w);
        }
        return Ok(());
    }
    Err(Error::NotOurRef(unknown[0]))
}

/// Walks from the commit tips until every object of `unknown` was met (removing each as it is);
/// whether all were.
fn reachable_from(
    repo: &gix::Repository,
    snapshot: &Snapshot,
    unknown: &mut Vec<ObjectId>,
) -> Result<bool, Error> {
    let tips = snapshot.commit_tips(repo);
    if tips.is_empty() {
        return Ok(false);
    }
    let walk_error = |e: gix_error::Error| Error::Pack(crate::pack::Error::Walk(e.into()));
    let need_trees = unknown.iter().any(|w| repo.find_commit(*w).is_err());
    if !need_trees {
        // Only commits wanted: walk newest first from the tips made after the oldest of them
        // (a day of slack), not below that time, instead of walking the whole history from
        // every tip.
        let oldest = unknown
            .iter()
            .filter_map(|w| repo.find_commit(*w).ok())
            .filter_map(|c| c.time().ok().map(|t| t.seconds))
            .min();
        if let Some(t) = oldest {
            if walk_recent(repo, tips, t - 86_400, unknown) {
                return Ok(true);
            }
        }
    }
    // The cutoff is only a shortcut: dates do not follow ancestry (a commit made on a slow
    // clock sits "before" its parent), so a want it missed gets a full walk before refusal.
    let mut seen_trees: HashSet<ObjectId> = HashSet::new();
    let walk = repo
        .rev_walk(tips.iter().map(|(id, _)| *id))
        .sorting(gix::revision::walk::Sorting::BreadthFirst)
        .all()
        .map_err(walk_error)?;
    for info in walk {
        let Ok(info) = info else { break };
        unknown.retain(|w| *w != info.id);
        if need_trees && !unknown.is_empty() {
            // Trees and blobs (e.g. a partial clone fetching missing blobs): look inside.
            if let Ok(tree) = repo.find_commit(info.id).and_then(|c| c.tree_id()) {
                reachable_in_tree(repo, tree.detach(), &mut seen_trees, unknown);
            }
        }
        if unknown.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Removes from `targets` every object found under `tree` (not descending into `seen` trees).
fn reachable_in_tree(
    repo: &gix::Repository,
    tree: ObjectId,
    seen: &mut HashSet<ObjectId>,
    targets: &mut Vec<ObjectId>,
) {
    let mut stack = vec![tree];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        targets.retain(|t| *t != id);
        let Ok(t) = repo.find_tree(id) else { continue };
        for entry in t.iter().flatten() {
            let oid = entry.object_id();
            if entry.mode().is_tree() {
                stack.push(oid);
            } else if !entry.mode().is_commit() {
                targets.retain(|t| *t != oid);
            }
        }
        if targets.is_empty() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::testutil::{git, git_at, init, open};
    use gix::ObjectId;

    /// A want below a commit dated before it (a client with a slow clock) is still reachable.
    #[test]
    fn a_want_below_a_commit_with_a_skewed_date_is_reachable() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        git_at(
            dir,
            &["commit", "-q", "--allow-empty", "-m", "a"],
            "1800000000 +0000",
        );
        let want = git(dir, &["rev-parse", "HEAD"]).trim().to_owned();
        git_at(
            dir,
            &["commit", "-q", "--allow-empty", "-m", "b"],
            "1900000000 +0000",
        );
        git_at(
            dir,
            &["commit", "-q", "--allow-empty", "-m", "slow"],
            "1000000000 +0000",
        );
        let repo = open(dir);
        let snapshot = Snapshot::read(&repo).expect("refs");
        let want = ObjectId::from_hex(want.as_bytes()).expect("id");
        assert!(check_wants(&repo, &snapshot, &[want]).is_ok());
        let stranger = ObjectId::from_hex(b"1111111111111111111111111111111111111111").expect("id");
        assert!(check_wants(&repo, &snapshot, &[stranger]).is_err());
    }

    /// A want proven reachable is remembered with the ref snapshot, and forgotten with it: once
    /// the branch that reached it is deleted, the same want is refused.
    #[test]
    fn a_want_proven_reachable_is_remembered_only_while_the_refs_stay() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        git(dir, &["commit", "-q", "--allow-empty", "-m", "a"]);
        git(dir, &["checkout", "-q", "-b", "side"]);
        git(dir, &["commit", "-q", "--allow-empty", "-m", "s1"]);
        let want = git(dir, &["rev-parse", "HEAD"]).trim().to_owned();
        git(dir, &["commit", "-q", "--allow-empty", "-m", "s2"]);
        git(dir, &["checkout", "-q", "main"]);
        let want = ObjectId::from_hex(want.as_bytes()).expect("id");
        let repo = open(dir);
        std::thread::sleep(crate::refs::RACY + std::time::Duration::from_millis(50));
        let snapshot = Snapshot::read_cached(&repo).expect("refs");
        assert_eq!(snapshot.commit_tips(&repo).len(), 2, "main and side");
        assert!(!snapshot.known_reachable(&want));
        assert!(check_wants(&repo, &snapshot, &[want]).is_ok());
        assert!(snapshot.known_reachable(&want), "remembered");
        let again = Snapshot::read_cached(&repo).expect("refs");
        assert!(
            std::sync::Arc::ptr_eq(&snapshot, &again),
            "the same snapshot serves the next fetch"
        );
        assert!(again.known_reachable(&want));
        assert!(
            !Snapshot::clone(&again).known_reachable(&want),
            "a copy learns anew"
        );

        git(dir, &["branch", "-q", "-D", "side"]);
        let after = Snapshot::read_cached(&repo).expect("refs");
        assert!(!after.known_reachable(&want));
        assert!(
            matches!(check_wants(&repo, &after, &[want]), Err(Error::NotOurRef(w)) if w == want),
            "unreachable once the branch is gone"
        );
    }

    fn id(dir: &std::path::Path, rev: &str) -> ObjectId {
        ObjectId::from_hex(git(dir, &["rev-parse", rev]).trim().as_bytes()).expect("id")
    }

    /// A commit of a merged (and deleted) branch is found through the merge by the walk over
    /// recent commits, twice (the second time from the commit cache); an unreferenced commit is
    /// not, and is refused.
    #[test]
    fn the_recent_walk_finds_commits_behind_merges_and_nothing_unreferenced() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        for i in 0..10 {
            git(
                dir,
                &["commit", "-q", "--allow-empty", "-m", &format!("m{i}")],
            );
        }
        git(dir, &["checkout", "-q", "-b", "side", "HEAD~5"]);
        for i in 0..3 {
            git(
                dir,
                &["commit", "-q", "--allow-empty", "-m", &format!("s{i}")],
            );
        }
        let deep = id(dir, "HEAD~1");
        git(dir, &["checkout", "-q", "main"]);
        git(dir, &["merge", "-q", "--no-ff", "-m", "merge", "side"]);
        for i in 0..5 {
            git(
                dir,
                &["commit", "-q", "--allow-empty", "-m", &format!("n{i}")],
            );
        }
        git(dir, &["branch", "-q", "-D", "side"]);
        let orphan = git(dir, &["commit-tree", "-m", "orphan", "HEAD^{tree}"]);
        let orphan = ObjectId::from_hex(orphan.trim().as_bytes()).expect("id");
        let repo = open(dir);
        let snapshot = Snapshot::read(&repo).expect("refs");
        let tips = snapshot.commit_tips(&repo);
        let time = repo
            .find_commit(deep)
            .expect("commit")
            .time()
            .expect("time")
            .seconds;
        for _ in 0..2 {
            let mut unknown = vec![deep];
            assert!(walk_recent(&repo, tips, time - 86_400, &mut unknown));
        }
        let mut unknown = vec![orphan, deep];
        assert!(!walk_recent(&repo, tips, time - 86_400, &mut unknown));
        assert_eq!(unknown, vec![orphan]);
        assert!(check_wants(&repo, &snapshot, &[deep]).is_ok());
        assert!(matches!(
            check_wants(&repo, &snapshot, &[orphan]),
            Err(Error::NotOurRef(w)) if w == orphan
        ));
    }
}
