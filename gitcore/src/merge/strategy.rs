//! The commits of the four ways to land a pull request, written without a worktree. Nothing here
//! moves a ref: [`land`] answers the new tip, and the caller moves the target branch by
//! compare-and-swap from the target tip the commits were built on
//! ([`crate::read::branches::update`]).
//!
//! - `merge`: a merge commit with parents (target, source) and the merged tree.
//! - `squash`: one commit on the target with the merged tree (`git merge --squash`).
//! - `rebase`: each non-merge commit of `target..source`, oldest first, cherry-picked onto the
//!   target (a three-way tree merge against the commit's parent), authors and messages kept, the
//!   committer replaced; a commit that becomes empty is dropped, as `git rebase` does. When the
//!   target is an ancestor of the source, the source itself is the result (git fast-forwards).
//! - `fast-forward`: the source tip, only when the target is its ancestor.

use std::collections::HashSet;

use gix::bstr::{BString, ByteSlice};
use gix::ObjectId;

use super::{analyze, merge_trees, tree_of, Conflict, Error, Outcome};

/// How a pull request lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// A merge commit.
    Merge,
    /// One commit with the merged tree.
    Squash,
    /// The source commits replayed onto the target.
    Rebase,
    /// The target moves to the source tip.
    FastForward,
}

impl Strategy {
    /// Parses a wire name (`merge`, `squash`, `rebase`, `fast-forward`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "merge" => Some(Strategy::Merge),
            "squash" => Some(Strategy::Squash),
            "rebase" => Some(Strategy::Rebase),
            "fast-forward" => Some(Strategy::FastForward),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Merge => "merge",
            Strategy::Squash => "squash",
            Strategy::Rebase => "rebase",
            Strategy::FastForward => "fast-forward",
        }
    }
}

/// A name, an email and a moment, for commits Orbit writes.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The name.
    pub name: String,
    /// The email address.
    pub email: String,
    /// When.
    pub time: gix::date::Time,
}

impl Identity {
    /// The current time, for [`Identity::time`].
    pub fn now() -> gix::date::Time {
        gix::date::Time::now_utc()
    }

    fn signature(&self) -> gix::actor::Signature {
        gix::actor::Signature {
            name: self.name.as_str().into(),
            email: self.email.as_str().into(),
            time: self.time,
        }
    }
}

/// What to land.
#[derive(Debug, Clone)]
pub struct Request {
    /// How.
    pub strategy: Strategy,
    /// The target tip to build on.
    pub target: ObjectId,
    /// The source tip.
    pub source: ObjectId,
    /// The message of a merge or squash commit.
    pub message: String,
    /// The author of a merge or squash commit.
    pub author: Identity,
    /// The committer of every commit written.
    pub committer: Identity,
}

/// Why a pull request cannot land as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Everything in the source is already in the target.
    UpToDate,
    /// The histories share no commit.
    Unrelated,
    /// A fast-forward was asked for, but the target is not an ancestor of the source.
    NotFastForward,
    /// The merge (or one cherry-pick of a rebase) conflicts.
    Conflicts(Vec<Conflict>),
}

/// What [`land`] built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    /// The new target tip.
    pub tip: ObjectId,
    /// The commits written, oldest first (empty for a fast-forward).
    pub written: Vec<ObjectId>,
}

/// Builds the commits of `req` (objects written, no ref moved).
pub fn land(repo: &gix::Repository, req: &Request) -> Result<Result<Landed, Refusal>, Error> {
    let analysis = analyze(repo, req.target, req.source)?;
    let (tree, fast_forward) = match analysis.outcome {
        Outcome::UpToDate => return Ok(Err(Refusal::UpToDate)),
        Outcome::Unrelated => return Ok(Err(Refusal::Unrelated)),
        Outcome::Conflicts(c) => return Ok(Err(Refusal::Conflicts(c))),
        Outcome::Clean { tree, fast_forward } => (tree, fast_forward),
    };
    let written = match req.strategy {
        Strategy::FastForward | Strategy::Rebase if fast_forward => Vec::new(),
        Strategy::FastForward => return Ok(Err(Refusal::NotFastForward)),
        Strategy::Merge => vec![write_commit(
            repo,
            tree,
            vec![req.target, req.source],
            req.author.signature(),
            req.committer.signature(),
            req.message.as_str().into(),
            None,
        )?],
        Strategy::Squash => vec![write_commit(
            repo,
            tree,
            vec![req.target],
            req.author.signature(),
            req.committer.signature(),
            req.message.as_str().into(),
            None,
        )?],
        Strategy::Rebase => match rebase(repo, req)? {
            Ok(written) => written,
            Err(refusal) => return Ok(Err(refusal)),
        },
    };
    let tip = written.last().copied().unwrap_or(req.source);
    Ok(Ok(Landed { tip, written }))
}

/// The default squash message: `header`, a blank line, then `* <subject>` for each commit of
/// `target..source`, oldest first.
pub fn squash_message(
    repo: &gix::Repository,
    target: ObjectId,
    source: ObjectId,
    header: &str,
) -> Result<String, Error> {
    let mut commits = super::commits_between(repo, target, source)?;
    commits.reverse();
    let mut msg = header.to_owned();
    if !commits.is_empty() {
        msg.push('\n');
    }
    for id in commits {
        let c = read_commit(repo, id)?;
        let subject = c.message.lines().next().unwrap_or_default().to_str_lossy();
        msg.push_str(&format!("\n* {}", subject.trim()));
    }
    Ok(msg)
}

fn read_commit(repo: &gix::Repository, id: ObjectId) -> Result<gix::objs::Commit, Error> {
    let obj = repo
        .find_object(id)
        .map_err(|e| Error::git("could not read a commit", e))?;
    let commit = gix::objs::CommitRef::from_bytes(&obj.data, repo.object_hash())
        .map_err(|e| Error::git("could not decode a commit", e))?
        .into_owned()
        .map_err(|e| Error::git("could not decode a commit", e));
    commit
}

fn write_commit(
    repo: &gix::Repository,
    tree: ObjectId,
    parents: Vec<ObjectId>,
    author: gix::actor::Signature,
    committer: gix::actor::Signature,
    message: BString,
    encoding: Option<BString>,
) -> Result<ObjectId, Error> {
    let mut message = message;
    if !message.ends_with(b"\n") {
        message.push(b'\n');
    }
    let commit = gix::objs::Commit {
        tree,
        parents: parents.into(),
        author,
        committer,
        encoding,
        message,
        extra_headers: Vec::new(),
    };
    repo.write_object(&commit)
        .map(|id| id.detach())
        .map_err(|e| Error::git("could not write a commit", e))
}

/// The non-merge commits of `target..source`, parents before children.
fn replay_order(
    repo: &gix::Repository,
    target: ObjectId,
    source: ObjectId,
) -> Result<Vec<ObjectId>, Error> {
    let members: HashSet<ObjectId> = super::commits_between(repo, target, source)?
        .into_iter()
        .collect();
    // Iterative depth-first post-order from the source, parents in order.
    let mut order = Vec::with_capacity(members.len());
    let mut done: HashSet<ObjectId> = HashSet::new();
    let mut stack: Vec<(ObjectId, bool)> = vec![(source, false)];
    while let Some((id, expanded)) = stack.pop() {
        if expanded {
            order.push(id);
            continue;
        }
        if !members.contains(&id) || !done.insert(id) {
            continue;
        }
        stack.push((id, true));
        let c = read_commit(repo, id)?;
        for p in c.parents.iter().rev() {
            stack.push((*p, false));
        }
    }
    let mut out = Vec::with_capacity(order.len());
    for id in order {
        if read_commit(repo, id)?.parents.len() <= 1 {
            out.push(id);
        }
    }
    Ok(out)
}

fn rebase(repo: &gix::Repository, req: &Request) -> Result<Result<Vec<ObjectId>, Refusal>, Error> {
    let mut tip = req.target;
    let mut tip_tree = tree_of(repo, tip)?;
    let mut written = Vec::new();
    for id in replay_order(repo, req.target, req.source)? {
        let c = read_commit(repo, id)?;
        let parent_tree = match c.parents.first() {
            Some(p) => tree_of(repo, *p)?,
            None => ObjectId::empty_tree(repo.object_hash()),
        };
        let started_empty = parent_tree == c.tree;
        let tree = match merge_trees(repo, parent_tree, tip_tree, c.tree)? {
            Ok(tree) => tree,
            Err(conflicts) => return Ok(Err(Refusal::Conflicts(conflicts))),
        };
        if tree == tip_tree && !started_empty {
            continue;
        }
        tip = write_commit(
            repo,
            tree,
            vec![tip],
            c.author,
            req.committer.signature(),
            c.message,
            c.encoding,
        )?;
        tip_tree = tree;
        written.push(tip);
    }
    if written.is_empty() {
        return Ok(Err(Refusal::UpToDate));
    }
    Ok(Ok(written))
}
