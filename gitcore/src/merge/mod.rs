//! Merges without a worktree or an index, on gix-merge: merge bases, ahead/behind counts, a
//! three-way tree merge with a conflict list, and the commits of the four pull request strategies
//! (see [`strategy`]).
//!
//! - [`analyze`] answers whether `source` merges cleanly into `target`: the merge bases (several
//!   in criss-cross histories; gix merges them into a virtual base like git's `ort`), how far each
//!   side is ahead of the other, and either the merged tree or the conflicted paths. The paths are
//!   the ones `git merge-tree --write-tree --name-only` lists: those with index stages after the
//!   merge.
//! - Rename detection is on (gix's defaults: 50% similarity, as git). Directory renames are
//!   resolved, as git does with `merge.directoryRenames=true` (git's default reports them as a
//!   `CONFLICT (file location)`).
//! - No external program can run: a repository whose configuration defines merge drivers, filter
//!   drivers or renormalization is refused ([`Error::UnsafeConfig`]). Orbit writes repository
//!   configuration itself and pushes cannot change it, so this is a guard, not a policy.
//!
//! Merged blobs and trees are written to the object database of the repository handed in; use
//! [`handle`] for a handle with an object cache, and with object memory to answer questions
//! without writing anything.

pub mod conflicts;
pub mod strategy;

use gix::ObjectId;

pub use conflicts::{Conflict, ConflictKind};
pub use strategy::{land, Identity, Landed, Strategy};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of merges.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing objects, walking history or merging failed.
    #[error("{what}")]
    Git {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// The repository configuration could run an external program during a merge.
    #[error("the repository configuration defines {0}, which could run an external program; refusing to merge")]
    UnsafeConfig(String),
}

impl Error {
    fn git(what: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Git {
            what,
            source: source.into(),
        }
    }
}

/// What merging `source` into `target` would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every commit of `source` is already in `target`.
    UpToDate,
    /// The two histories share no commit (git refuses to merge unrelated histories).
    Unrelated,
    /// The merge is clean; `tree` is the merged tree (written to the object database).
    /// `fast_forward` says that `target` is an ancestor of `source`.
    Clean {
        /// The merged tree.
        tree: ObjectId,
        /// Whether `target` is an ancestor of `source`.
        fast_forward: bool,
    },
    /// The merge has conflicts.
    Conflicts(Vec<Conflict>),
}

/// The answer of [`analyze`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// The target tip the answer was computed on.
    pub target: ObjectId,
    /// The source tip the answer was computed on.
    pub source: ObjectId,
    /// The merge bases, best first (empty for unrelated histories).
    pub merge_bases: Vec<ObjectId>,
    /// Commits of `source` not in `target`.
    pub ahead_by: usize,
    /// Commits of `target` not in `source`.
    pub behind_by: usize,
    /// What the merge would do.
    pub outcome: Outcome,
}

/// Bytes of decoded objects a merge keeps cached: the same commits and trees are read by the
/// merge-base search, both ahead/behind walks and the tree merge.
const OBJECT_CACHE_BYTES: usize = 32 << 20;

/// A handle on `repo` for merging: its own object cache, and, with `in_memory`, object memory so
/// that nothing it computes is written to disk (for trial merges such as mergeability).
pub fn handle(repo: &gix::Repository, in_memory: bool) -> gix::Repository {
    let mut r = repo.clone();
    r.object_cache_size_if_unset(OBJECT_CACHE_BYTES);
    if in_memory {
        r.with_object_memory()
    } else {
        r
    }
}

/// Refuses repositories whose configuration could make a merge run a program.
pub fn ensure_safe_config(repo: &gix::Repository) -> Result<(), Error> {
    let config = repo.config_snapshot();
    let file = config.plumbing();
    for section in ["merge", "filter"] {
        if let Some(iter) = file.sections_by_name(section) {
            for s in iter {
                let sub = s.header().subsection_name();
                let keys: Vec<String> = s.value_names().map(|n| n.to_string()).collect();
                let risky = match (section, sub) {
                    ("merge", None) => keys.iter().any(|k| k.eq_ignore_ascii_case("renormalize")),
                    (_, Some(_)) => !keys.is_empty(),
                    _ => false,
                };
                if risky {
                    let name = match sub {
                        Some(sub) => format!("{section}.{sub}"),
                        None => format!("{section}.renormalize"),
                    };
                    return Err(Error::UnsafeConfig(name));
                }
            }
        }
    }
    Ok(())
}

/// The merge bases of `a` and `b`, best first; empty when the histories are unrelated.
pub fn merge_bases(
    repo: &gix::Repository,
    a: ObjectId,
    b: ObjectId,
) -> Result<Vec<ObjectId>, Error> {
    Ok(repo
        .merge_bases_many(a, &[b])
        .map_err(|e| Error::git("could not compute the merge base", e))?
        .into_iter()
        .map(|id| id.detach())
        .collect())
}

/// The commits reachable from `tip` and not from `hidden`, newest first by committer date
/// (`git log hidden..tip`).
pub fn commits_between(
    repo: &gix::Repository,
    hidden: ObjectId,
    tip: ObjectId,
) -> Result<Vec<ObjectId>, Error> {
    use gix::revision::walk::Sorting;
    use gix::traverse::commit::simple::CommitTimeOrder;
    if hidden == tip {
        return Ok(Vec::new());
    }
    let walk = repo
        .rev_walk([tip])
        .sorting(Sorting::ByCommitTime(CommitTimeOrder::NewestFirst))
        .with_hidden([hidden])
        .all()
        .map_err(|e| Error::git("could not walk the history", e))?;
    let mut out = Vec::new();
    for info in walk {
        let info = info.map_err(|e| Error::git("could not walk the history", e))?;
        out.push(info.id);
    }
    Ok(out)
}

/// Whether merging `source` into `target` is clean, with merge bases and ahead/behind counts.
pub fn analyze(
    repo: &gix::Repository,
    target: ObjectId,
    source: ObjectId,
) -> Result<Analysis, Error> {
    let merge_bases = merge_bases(repo, target, source)?;
    let ahead_by = commits_between(repo, target, source)?.len();
    let behind_by = commits_between(repo, source, target)?.len();
    let outcome = if ahead_by == 0 {
        Outcome::UpToDate
    } else if merge_bases.is_empty() {
        Outcome::Unrelated
    } else if behind_by == 0 {
        Outcome::Clean {
            tree: tree_of(repo, source)?,
            fast_forward: true,
        }
    } else {
        let merged = match merge_bases.as_slice() {
            // One merge base (the usual case): merge its tree directly instead of letting
            // gix-merge find the merge bases again.
            [base] => merge_trees(
                repo,
                tree_of(repo, *base)?,
                tree_of(repo, target)?,
                tree_of(repo, source)?,
            )?,
            _ => merge_commits(repo, target, source)?,
        };
        match merged {
            Ok(tree) => Outcome::Clean {
                tree,
                fast_forward: false,
            },
            Err(conflicts) => Outcome::Conflicts(conflicts),
        }
    };
    Ok(Analysis {
        target,
        source,
        merge_bases,
        ahead_by,
        behind_by,
        outcome,
    })
}

/// The tree of commit `id`.
pub fn tree_of(repo: &gix::Repository, id: ObjectId) -> Result<ObjectId, Error> {
    repo.find_commit(id)
        .map_err(|e| Error::git("could not read a commit", e))?
        .tree_id()
        .map(|t| t.detach())
        .map_err(|e| Error::git("could not read a commit", e))
}

/// Options of every tree merge: rename tracking on, conflicts kept with markers, nothing read from
/// configuration that could pick a program.
fn tree_options(repo: &gix::Repository) -> Result<gix::merge::tree::Options, Error> {
    ensure_safe_config(repo)?;
    repo.tree_merge_options()
        .map_err(|e| Error::git("could not configure the merge", e))
}

fn labels() -> gix::merge::blob::builtin_driver::text::Labels<'static> {
    use gix::bstr::ByteSlice;
    gix::merge::blob::builtin_driver::text::Labels {
        ancestor: Some(b"base".as_bstr()),
        current: Some(b"target".as_bstr()),
        other: Some(b"source".as_bstr()),
    }
}

/// The three-way merge of the commits `ours` and `theirs` (merge bases found, several merged
/// into a virtual one): the merged tree, written, or the conflicts.
pub fn merge_commits(
    repo: &gix::Repository,
    ours: ObjectId,
    theirs: ObjectId,
) -> Result<Result<ObjectId, Vec<Conflict>>, Error> {
    let options = tree_options(repo)?;
    let outcome = repo
        .merge_commits(ours, theirs, labels(), options.into())
        .map_err(|e| Error::git("could not merge", e))?;
    finish(repo, outcome.tree_merge)
}

/// The three-way merge of trees `ours` and `theirs` against `base` (a cherry-pick when `base` is
/// the picked commit's parent tree): the merged tree, written, or the conflicts.
pub fn merge_trees(
    repo: &gix::Repository,
    base: ObjectId,
    ours: ObjectId,
    theirs: ObjectId,
) -> Result<Result<ObjectId, Vec<Conflict>>, Error> {
    let options = tree_options(repo)?;
    let outcome = repo
        .merge_trees(base, ours, theirs, labels(), options)
        .map_err(|e| Error::git("could not merge", e))?;
    finish(repo, outcome)
}

fn finish(
    repo: &gix::Repository,
    mut outcome: gix::merge::tree::Outcome<'_>,
) -> Result<Result<ObjectId, Vec<Conflict>>, Error> {
    let how = gix::merge::tree::TreatAsUnresolved::git();
    let tree = outcome
        .tree
        .write()
        .map_err(|e| Error::git("could not write the merged tree", e))?
        .detach();
    if !outcome.has_unresolved_conflicts(how) {
        return Ok(Ok(tree));
    }
    Ok(Err(conflicts::list(repo, tree, &outcome.conflicts, how)?))
}

#[cfg(test)]
mod tests;
