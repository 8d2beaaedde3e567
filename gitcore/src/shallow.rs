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
    let Some(deepen) = &req.deepen else {
        return Ok(Plan::default());
    };
    let excluded: HashSet<ObjectId> = match deepen {
        Deepen::Not(revs) => crate::pack::walk_commits(repo, revs, &[], interrupt)?
            .into_iter()
            .collect(),
        _ => HashSet::new(),
    };
    let mut depth_limit = match deepen {
        Deepen::Depth(n) => Some(u64::from((*n).max(1))),
        _ => None,
    };
    let client_shallow: HashSet<ObjectId> = req.client_shallows.iter().copied().collect();
    // BFS from the tips; depth 1 at the tips.
    let mut depth: HashMap<ObjectId, u64> = HashMap::new();
    let mut queue: VecDeque<ObjectId> = VecDeque::new();
    for t in tips {
        if !excluded.contains(t) && depth.insert(*t, 1).is_none() {
            queue.push_back(*t);
        }
    }
    if req.relative {
        if let Some(n) = depth_limit {
            // Count from the deepest current boundary commit.
            let mut probe_depth: HashMap<ObjectId, u64> = depth.clone();
            let mut probe: VecDeque<ObjectId> = queue.clone();
            let mut boundary_depth = 0;
            while let Some(id) = probe.pop_front() {
                let d = probe_depth[&id];
                if client_shallow.contains(&id) {
                    boundary_depth = boundary_depth.max(d);
                    continue;
                }
                for p in parents(repo, id)?.0 {
                    if let std::collections::hash_map::Entry::Vacant(e) = probe_depth.entry(p) {
                        e.insert(d + 1);
                        probe.push_back(p);
                    }
                }
            }
            depth_limit = Some(boundary_depth + n);
        }
    }
    let mut plan = Plan::default();
    while let Some(id) = queue.pop_front() {
        if interrupt.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let d = depth[&id];
        let (ps, _) = parents(repo, id)?;
        plan.commits.push(id);
        let mut cut = false;
        for p in &ps {
            let keep = match deepen {
                Deepen::Depth(_) => depth_limit.is_some_and(|max| d < max),
                Deepen::Since(since) => parents(repo, *p)?.1 >= *since,
                Deepen::Not(_) => !excluded.contains(p),
            };
            if !keep {
                cut = true;
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = depth.entry(*p) {
                e.insert(d + 1);
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
