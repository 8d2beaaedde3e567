//! Repository reads for the REST API, answered in-process exactly as git would answer them.
//!
//! - [`resolve`]: `{ref}` as a branch, tag, full or abbreviated sha (git's `rev-parse` rules for
//!   those forms), and `{ref}/{path}` where a branch name may itself contain `/`;
//! - [`branches`]: list, get, and compare-and-swap create and delete;
//! - [`log`]: commits in `git log` order, optionally limited to a path like `git log -- path`;
//! - [`commit`]: one commit's metadata;
//! - [`diff`]: a commit against its first parent, with git's rename detection and patch text;
//! - [`tree`] and [`blob`]: `git ls-tree -l` and `git cat-file blob` at a ref and path;
//! - [`tags`]: lightweight and annotated tags.
//!
//! All functions are synchronous, take a `&gix::Repository`, and answer plain structs. Names and
//! messages that are not UTF-8 are converted lossily; patch text stays bytes.

mod abbrev;
pub mod archive;
pub mod blame;
pub mod blob;
pub mod branches;
pub mod commit;
pub mod diff;
mod generations;
mod graph;
pub mod log;
pub mod new_commits;
pub mod resolve;
pub mod tags;
pub mod tree;

mod path;

use gix::bstr::{BStr, ByteSlice};
use gix::ObjectId;

pub use gix::Repository;
pub use path::validate as validate_path;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How deep chains of tag objects are followed before giving up.
const MAX_TAG_DEPTH: usize = 32;

/// Errors of the reads and ref updates in this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path was absolute, had `.`/`..` or empty components, or a NUL byte.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No branch, tag or object matches the name.
    #[error("no branch, tag or commit matches {name:?}")]
    UnknownRef {
        /// The name as given.
        name: String,
    },
    /// An abbreviated sha matches more than one object.
    #[error("the short sha {prefix:?} is ambiguous")]
    Ambiguous {
        /// The abbreviation as given.
        prefix: String,
        /// Every object it matches, with its kind, sorted by id.
        candidates: Vec<(ObjectId, gix::object::Kind)>,
    },
    /// The name resolves to an object that cannot be peeled to what was needed.
    #[error("{name:?} is a {kind}, not a {wanted}")]
    WrongKind {
        /// The name as given.
        name: String,
        /// What it resolved to.
        kind: gix::object::Kind,
        /// What was needed (`commit`, `tree`).
        wanted: &'static str,
    },
    /// Nothing exists at the path in the tree.
    #[error("path {path:?} does not exist")]
    PathNotFound {
        /// The path.
        path: String,
    },
    /// The path names something that is not a directory.
    #[error("path {path:?} is not a directory")]
    NotATree {
        /// The path.
        path: String,
    },
    /// The path names something that is not a file.
    #[error("path {path:?} is not a file")]
    NotABlob {
        /// The path.
        path: String,
    },
    /// The branch name breaks git's rules.
    #[error("invalid branch name {name:?}")]
    InvalidBranchName {
        /// The name as given.
        name: String,
        /// Why it was refused.
        #[source]
        source: BoxError,
    },
    /// The branch to create exists already.
    #[error("branch {name:?} already exists")]
    BranchExists {
        /// The branch name.
        name: String,
    },
    /// The branch to create would collide with an existing one (`a` against `a/b`).
    #[error("branch {name:?} conflicts with the existing branch {existing:?}")]
    BranchNameConflict {
        /// The branch name.
        name: String,
        /// The branch it collides with.
        existing: String,
    },
    /// The branch does not exist.
    #[error("branch {name:?} does not exist")]
    BranchNotFound {
        /// The branch name.
        name: String,
    },
    /// The branch moved while it was being deleted.
    #[error("branch {name:?} changed concurrently")]
    BranchChanged {
        /// The branch name.
        name: String,
    },
    /// Another update holds the branch's lock.
    #[error("branch {name:?} is being updated concurrently")]
    BranchLocked {
        /// The branch name.
        name: String,
    },
    /// The branch is the one `HEAD` points at.
    #[error("branch {name:?} is the default branch")]
    DefaultBranch {
        /// The branch name.
        name: String,
    },
    /// An object could not be read or decoded.
    #[error("could not read object {id}")]
    Object {
        /// The object.
        id: ObjectId,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// The references could not be read.
    #[error("could not read the references")]
    References(#[source] BoxError),
    /// A reference transaction failed.
    #[error("could not update {name}")]
    RefUpdate {
        /// The full reference name.
        name: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
}

impl Error {
    fn object(id: ObjectId, source: impl Into<BoxError>) -> Self {
        Error::Object {
            id,
            source: source.into(),
        }
    }
}

/// A person and a moment, from a commit or tag header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The name.
    pub name: String,
    /// The email address, without angle brackets.
    pub email: String,
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// The timezone offset in seconds east of UTC.
    pub offset: i32,
}

impl Signature {
    fn from_ref(sig: gix::actor::SignatureRef<'_>) -> Self {
        let (seconds, offset) = match sig.time() {
            Ok(t) => (t.seconds, t.offset),
            Err(_) => (sig.seconds(), 0),
        };
        Signature {
            name: lossy(sig.name.trim().as_bstr()),
            email: lossy(sig.email.trim().as_bstr()),
            seconds,
            offset,
        }
    }
}

fn lossy(b: &BStr) -> String {
    b.to_str_lossy().into_owned()
}

/// Reads an object's kind and data.
fn load(repo: &gix::Repository, id: ObjectId) -> Result<(gix::object::Kind, Vec<u8>), Error> {
    let mut obj = repo.find_object(id).map_err(|e| Error::object(id, e))?;
    Ok((obj.kind, std::mem::take(&mut obj.data)))
}

/// Follows tag objects from `id` to the first object that is not a tag.
fn peel_tags(
    repo: &gix::Repository,
    mut id: ObjectId,
) -> Result<(ObjectId, gix::object::Kind, Vec<u8>), Error> {
    for _ in 0..MAX_TAG_DEPTH {
        let (kind, data) = load(repo, id)?;
        if kind != gix::object::Kind::Tag {
            return Ok((id, kind, data));
        }
        let tag = gix::objs::TagRef::from_bytes(&data, repo.object_hash())
            .map_err(|e| Error::object(id, e))?;
        id = tag.target();
    }
    Err(Error::object(id, "tag chain too deep"))
}

/// The parsed parts of a commit that walks need.
#[derive(Debug, Clone)]
struct CommitNode {
    tree: ObjectId,
    parents: Vec<ObjectId>,
    time: i64,
}

/// [`commit_node`] from the commit-graph when it has the commit (no object to inflate and
/// parse), else from the object.
fn commit_node_in(
    repo: &gix::Repository,
    graph: Option<&gix::commitgraph::Graph>,
    id: ObjectId,
) -> Result<CommitNode, Error> {
    if let Some(c) = graph.and_then(|g| g.commit_by_id(id)) {
        let parents: Option<Vec<ObjectId>> = c
            .iter_parents()
            .map(|p| p.ok().and_then(|p| graph.map(|g| g.id_at(p).to_owned())))
            .collect();
        if let Some(parents) = parents {
            return Ok(CommitNode {
                tree: c.root_tree_id().to_owned(),
                parents,
                time: i64::try_from(c.committer_timestamp()).unwrap_or(i64::MAX),
            });
        }
    }
    commit_node(repo, id)
}

fn commit_node(repo: &gix::Repository, id: ObjectId) -> Result<CommitNode, Error> {
    let (kind, data) = load(repo, id)?;
    if kind != gix::object::Kind::Commit {
        return Err(Error::object(
            id,
            format!("expected a commit, found a {kind}"),
        ));
    }
    let c = gix::objs::CommitRef::from_bytes(&data, repo.object_hash())
        .map_err(|e| Error::object(id, e))?;
    let time = c
        .committer()
        .map(|s| s.seconds())
        .map_err(|e| Error::object(id, e))?;
    Ok(CommitNode {
        tree: c.tree(),
        parents: c.parents().collect(),
        time,
    })
}

/// One entry of a tree, owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    mode: gix::object::tree::EntryMode,
    id: ObjectId,
}

/// The entries of the tree `id`, as stored (git's tree order).
fn tree_entries(
    repo: &gix::Repository,
    id: ObjectId,
) -> Result<Vec<(Vec<u8>, gix::object::tree::EntryMode, ObjectId)>, Error> {
    let (kind, data) = load(repo, id)?;
    if kind != gix::object::Kind::Tree {
        return Err(Error::object(
            id,
            format!("expected a tree, found a {kind}"),
        ));
    }
    let mut out = Vec::new();
    for entry in gix::objs::TreeRefIter::from_bytes(&data, repo.object_hash()) {
        let entry = entry.map_err(|e| Error::object(id, e))?;
        out.push((entry.filename.to_vec(), entry.mode, entry.oid.to_owned()));
    }
    Ok(out)
}

/// The entry at `components` under the tree `root`, or `None` if there is none.
/// An empty `components` is the root tree itself.
fn entry_at(
    repo: &gix::Repository,
    root: ObjectId,
    components: &[&[u8]],
) -> Result<Option<Entry>, Error> {
    let mut current = Entry {
        mode: gix::object::tree::EntryKind::Tree.into(),
        id: root,
    };
    for name in components {
        if !current.mode.is_tree() {
            return Ok(None);
        }
        let found = match tree_memo::get(&current.id, name) {
            Some(found) => found,
            None => {
                let (_, data) = load(repo, current.id)?;
                let mut found = None;
                for entry in gix::objs::TreeRefIter::from_bytes(&data, repo.object_hash()) {
                    let entry = entry.map_err(|e| Error::object(current.id, e))?;
                    if entry.filename.as_bytes() == *name {
                        found = Some(Entry {
                            mode: entry.mode,
                            id: entry.oid.to_owned(),
                        });
                        break;
                    }
                }
                tree_memo::put(current.id, name, found);
                found
            }
        };
        match found {
            Some(e) => current = e,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

/// What a tree holds under a name, kept per process (trees are immutable): a path-limited log
/// looks the same path up in thousands of commits whose subtrees mostly did not change, and
/// programs repeat the same queries. Only trees reached from a repository's own refs or checked
/// ids are ever asked about, so sharing it between repositories serves nothing a repository
/// does not hold. Two generations of at most [`tree_memo::GENERATION`] trees each.
mod tree_memo {
    use std::sync::{Mutex, OnceLock};

    use gix::ObjectId;

    use super::Entry;
    use crate::read::generations::Generations;

    pub(super) const GENERATION: usize = 16_384;

    type Names = Vec<(Box<[u8]>, Option<Entry>)>;

    static MEMO: OnceLock<Mutex<Generations<Names>>> = OnceLock::new();

    fn memo() -> &'static Mutex<Generations<Names>> {
        MEMO.get_or_init(|| Mutex::new(Generations::new(GENERATION)))
    }

    fn find(names: &Names, name: &[u8]) -> Option<Option<Entry>> {
        names.iter().find(|(n, _)| &**n == name).map(|(_, e)| *e)
    }

    pub(super) fn get(tree: &ObjectId, name: &[u8]) -> Option<Option<Entry>> {
        memo().lock().ok()?.find(tree, |n| find(n, name))
    }

    pub(super) fn put(tree: ObjectId, name: &[u8], entry: Option<Entry>) {
        let Ok(mut g) = memo().lock() else {
            return;
        };
        let names = g.young_mut(tree);
        if names.len() < 64 && find(names, name).is_none() {
            names.push((name.into(), entry));
        }
    }
}

/// The canonical mode of an entry, as git prints it (`100644`, `100755`, `120000`, `160000`,
/// `040000`).
fn canonical_mode(mode: gix::object::tree::EntryMode) -> u32 {
    use gix::object::tree::EntryKind;
    match mode.kind() {
        EntryKind::Tree => 0o040000,
        EntryKind::Blob => 0o100644,
        EntryKind::BlobExecutable => 0o100755,
        EntryKind::Link => 0o120000,
        EntryKind::Commit => 0o160000,
    }
}

#[cfg(test)]
#[path = "../../tests/support/git_cli.rs"]
pub(crate) mod testutil;
