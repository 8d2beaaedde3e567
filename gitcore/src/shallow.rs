//! Shallow clones and fetches: which commits to send for `deepen`, `deepen-since`, `deepen-not`
//! and `deepen-relative`, and which commits become (or stop being) the client's shallow boundary.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};

use gix::ObjectId;

use crate::pack::Error;

/// How the client asked to limit history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deepen {
    /// `deepen <n>`: `n` commits deep from each want.
    Depth(u32),
    /// `deepen-since <time>`: commits committed at or after this Unix time.
    Since(i64),
    /// `deepen-not <rev>`: commits not reachable from these.
    Not(Vec<ObjectId>),
}

/// The shallow part of a request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The client's current shallow commits (`shallow <oid>` lines).
    pub client_shallows: Vec<ObjectId>,
    /// The history limit asked for, if any.
    pub deepen: Option<Deepen>,
    /// `deepen-relative`: `deepen <n>` counts from the client's current boundary.
    pub relative: bool,
}

impl Request {
    /// Whether this request changes history depth.
    pub fn is_deepening(&self) -> bool {
        self.deepen.is_some()
    }
}

/// The commits to send and the new boundary.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Commits to send, in walk order.
    pub commits: Vec<ObjectId>,
    /// New shallow commits for the client (`shallow <oid>`).
    pub shallow: Vec<ObjectId>,
    /// Client shallow commits whose parents are now sent (`unshallow <oid>`).
    pub unshallow: Vec<ObjectId>,
}

fn parents(repo: &gix::Repository, id: ObjectId) -> Result<(Vec<ObjectId>, i64), Error> {
    let c = repo.find_commit(id).map_err(|e| Error::Object {
        id,
        source: e.into(),
    })?;
    let time = c.time().map(|t| t.seconds).unwrap_or(0);
    Ok((c.parent_ids().map(|p| p.detach()).collect(), time))
}

/// Plans a deepening request from the want commits `tips`.
pub fn plan(
    repo: &gix::Repository,
    tips: &[ObjectId],
    req: &Request,
    interrupt: &AtomicBool,
) -> Result<Plan, Error> {
    match &req.deepen {
        None => Ok(Plan::default()),
        Some(Deepen::Depth(n)) => plan_depth(repo, tips, req, u64::from((*n).max(1)), interrupt),
        Some(deepen) => plan_rev_list(repo, tips, req, deepen, interrupt),
    }
}

/// `deepen <n>`, as git's `get_shallow_commits`: a breadth-first walk where the start commits
/// are at depth 1 and a commit at depth `max` becomes shallow (its parents are not walked); a
/// commit reached at a smaller depth on another path is not shallow. Without `deepen-relative`
/// the walk starts at the wants with `max = n`; with it, at the client's current shallow commits
/// with `max = n + 1` (each boundary moves `n` commits deeper).
fn plan_depth(
    repo: &gix::Repository,
    tips: &[ObjectId],
    req: &Request,
    n: u64,
    interrupt: &AtomicBool,
) -> Result<Plan, Error> {
    let client_shallow: HashSet<ObjectId> = req.client_shallows.iter().copied().collect();
    let (starts, max): (Vec<ObjectId>, u64) = if req.relative {
        let existing = req
            .client_shallows
            .iter()
            .copied()
            .filter(|id| repo.find_commit(*id).is_ok())
            .collect();
        (existing, n.saturating_add(1))
    } else {
        (tips.to_vec(), n)
    };
    // Minimum depth of every commit within the limit, and the commits at the limit.
    let mut depth: HashMap<ObjectId, u64> = HashMap::new();
    let mut queue: VecDeque<ObjectId> = VecDeque::new();
    for s in &starts {
        if depth.insert(*s, 1).is_none() {
            queue.push_back(*s);
        }
    }
    let mut at_limit: Vec<ObjectId> = Vec::new();
    let mut inside: HashSet<ObjectId> = HashSet::new();
    while let Some(id) = queue.pop_front() {
        if interrupt.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let d = depth[&id];
        if d >= max {
            at_limit.push(id);
            continue;
        }
        inside.insert(id);
        for p in parents(repo, id)?.0 {
            if let std::collections::hash_map::Entry::Vacant(e) = depth.entry(p) {
                e.insert(d + 1);
                queue.push_back(p);
            }
        }
    }
    let mut plan = Plan::default();
    let new_shallow: HashSet<ObjectId> = at_limit
        .iter()
        .copied()
        .filter(|id| !inside.contains(id))
        .collect();
    plan.shallow = at_limit
        .into_iter()
        .filter(|id| new_shallow.contains(id) && !client_shallow.contains(id))
        .collect();
    plan.unshallow = req
        .client_shallows
        .iter()
        .copied()
        .filter(|id| inside.contains(id))
        .collect();
    // What to send: from the wants and the parents of unshallowed commits, stopping at the new
    // boundary and at client boundaries that stay (the client has nothing behind those).
    let stop = |id: &ObjectId| {
        new_shallow.contains(id) || (client_shallow.contains(id) && !inside.contains(id))
    };
    let mut seen: HashSet<ObjectId> = HashSet::new();
    let mut walk: VecDeque<ObjectId> = tips.iter().copied().collect();
    for u in &plan.unshallow {
        walk.extend(parents(repo, *u)?.0);
    }
    while let Some(id) = walk.pop_front() {
        if interrupt.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        if !seen.insert(id) {
            continue;
        }
        plan.commits.push(id);
        if stop(&id) {
            continue;
        }
        walk.extend(parents(repo, id)?.0);
    }
    Ok(plan)
}

/// `deepen-since` and `deepen-not`: every commit reachable from the wants that was committed
/// since the time, or is not reachable from the excluded revisions; commits with a parent left
/// out become shallow.
fn plan_rev_list(
    repo: &gix::Repository,
    tips: &[ObjectId],
    req: &Request,
    deepen: &Deepen,
    interrupt: &AtomicBool,
) -> Result<Plan, Error> {
    let excluded: HashSet<ObjectId> = match deepen {
        Deepen::Not(revs) => crate::pack::walk_commits(repo, revs, &[], interrupt)?
            .into_iter()
            .collect(),
        _ => HashSet::new(),
    };
    let client_shallow: HashSet<ObjectId> = req.client_shallows.iter().copied().collect();
    let mut seen: HashSet<ObjectId> = HashSet::new();
    let mut queue: VecDeque<ObjectId> = VecDeque::new();
    for t in tips {
        if !excluded.contains(t) && seen.insert(*t) {
            queue.push_back(*t);
        }
    }
    let mut plan = Plan::default();
    while let Some(id) = queue.pop_front() {
        if interrupt.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let (ps, _) = parents(repo, id)?;
        plan.commits.push(id);
        let mut cut = false;
        for p in &ps {
            let keep = match deepen {
                Deepen::Since(since) => parents(repo, *p)?.1 >= *since,
                Deepen::Not(_) => !excluded.contains(p),
                Deepen::Depth(_) => true,
            };
            if !keep {
                cut = true;
                continue;
            }
            if seen.insert(*p) {
                queue.push_back(*p);
            }
        }
        if cut && !ps.is_empty() {
            if !client_shallow.contains(&id) {
                plan.shallow.push(id);
            }
        } else if client_shallow.contains(&id) && !ps.is_empty() {
            plan.unshallow.push(id);
        }
    }
    Ok(plan)
}
