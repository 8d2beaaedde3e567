//! Commits without a worktree, for the commit API: apply file changes (create, update, delete,
//! move, chmod) to a commit's tree in the object database with gix's tree editor, check every
//! new path against git's fsck rules for tree entries, and write one commit. Moving the branch
//! is the caller's (compare-and-swap).

use gix::bstr::ByteSlice;
use gix::objs::tree::EntryKind;
use gix::ObjectId;

use crate::read::{self, Signature};

/// Why a commit could not be made. Each names the path at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path breaks git's rules (`..`, `.git`, empty components, absolute).
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A create of a path that exists.
    #[error("path {path:?} already exists")]
    Exists {
        /// The path.
        path: String,
    },
    /// An update, delete, move or chmod of a path that does not exist (or is a directory).
    #[error("path {path:?} does not exist (or is not a file)")]
    Missing {
        /// The path.
        path: String,
    },
    /// A file would have to be a directory, or the other way around.
    #[error("path {path:?} conflicts with an existing file or directory")]
    Conflict {
        /// The path.
        path: String,
    },
    /// A change without the fields its action needs.
    #[error("change of {path:?}: {reason}")]
    Incomplete {
        /// The path.
        path: String,
        /// What is missing.
        reason: String,
    },
    /// Reading or writing objects failed.
    #[error("could not write the commit")]
    Write(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// Reading the parent failed.
    #[error(transparent)]
    Read(#[from] read::Error),
}

/// One change to the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new file.
    Create {
        /// Where.
        path: String,
        /// Its bytes.
        content: Vec<u8>,
        /// Mode 100755 instead of 100644.
        executable: bool,
    },
    /// New content for an existing file (its mode kept unless `executable` says).
    Update {
        /// Which.
        path: String,
        /// Its new bytes.
        content: Vec<u8>,
        /// A new mode, if any.
        executable: Option<bool>,
    },
    /// Removes a file.
    Delete {
        /// Which.
        path: String,
    },
    /// Renames a file, optionally with new content.
    Move {
        /// From.
        previous_path: String,
        /// To.
        path: String,
        /// New bytes, if any.
        content: Option<Vec<u8>>,
    },
    /// Changes a file's executable bit.
    Chmod {
        /// Which.
        path: String,
        /// Executable or not.
        executable: bool,
    },
}

fn check_path(path: &str) -> Result<(), Error> {
    let bad = |reason: String| Error::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    let p = read::validate_path(path).map_err(|e| bad(e.to_string()))?;
    if p.is_empty() {
        return Err(bad("empty path".into()));
    }
    for c in p.split('/') {
        crate::fsck::check_name(c.as_bytes()).map_err(|e| bad(e.to_string()))?;
    }
    Ok(())
}

/// What is at `path` in `tree`: a file's kind and id, `Some(None)` for a directory.
fn lookup(
    repo: &gix::Repository,
    tree: ObjectId,
    path: &str,
) -> Result<Option<Option<(EntryKind, ObjectId)>>, Error> {
    let t = repo
        .find_tree(tree)
        .map_err(|e| Error::Write(Box::new(e)))?;
    match t
        .lookup_entry_by_path(path)
        .map_err(|e| Error::Write(Box::new(e)))?
    {
        None => Ok(None),
        Some(e) if e.mode().is_tree() => Ok(Some(None)),
        Some(e) => Ok(Some(Some((e.mode().kind(), e.object_id())))),
    }
}

/// Whether some prefix of `path` is a file in `tree` (then `path` cannot be created).
fn blocked_by_file(repo: &gix::Repository, tree: ObjectId, path: &str) -> Result<bool, Error> {
    let mut prefix = String::new();
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        if let Some(Some(_)) = lookup(repo, tree, &prefix)? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn file_kind(executable: bool) -> EntryKind {
    if executable {
        EntryKind::BlobExecutable
    } else {
        EntryKind::Blob
    }
}

/// Applies `changes` to the tree of `parent` (the empty tree without one) and writes a commit
/// with `message`, `author` and `committer`. Answers the new commit.
pub fn create(
    repo: &gix::Repository,
    parent: Option<ObjectId>,
    changes: &[Change],
    message: &str,
    author: &Signature,
    committer: &Signature,
) -> Result<ObjectId, Error> {
    let w = |e: Box<dyn std::error::Error + Send + Sync + 'static>| Error::Write(e);
    let base_tree = match parent {
        Some(p) => read::commit::read(repo, p)?.tree,
        None => ObjectId::empty_tree(gix::hash::Kind::Sha1),
    };
    // Checks run against the tree as the earlier changes left it.
    let mut current = base_tree;
    for change in changes {
        let mut editor = repo.edit_tree(current).map_err(|e| w(Box::new(e)))?;
        let write_blob = |content: &[u8]| -> Result<ObjectId, Error> {
            repo.write_blob(content)
                .map(|id| id.detach())
                .map_err(|e| w(Box::new(e)))
        };
        match change {
            Change::Create {
                path,
                content,
                executable,
            } => {
                check_path(path)?;
                match lookup(repo, current, path)? {
                    Some(Some(_)) => return Err(Error::Exists { path: path.clone() }),
                    Some(None) => return Err(Error::Conflict { path: path.clone() }),
                    None => {}
                }
                if blocked_by_file(repo, current, path)? {
                    return Err(Error::Conflict { path: path.clone() });
                }
                let id = write_blob(content)?;
                editor
                    .upsert(path.as_str(), file_kind(*executable), id)
                    .map_err(|e| w(Box::new(e)))?;
            }
            Change::Update {
                path,
                content,
                executable,
            } => {
                check_path(path)?;
                let Some(Some((kind, _))) = lookup(repo, current, path)? else {
                    return Err(Error::Missing { path: path.clone() });
                };
                let kind = match executable {
                    Some(x) => file_kind(*x),
                    None => kind,
                };
                let id = write_blob(content)?;
                editor
                    .upsert(path.as_str(), kind, id)
                    .map_err(|e| w(Box::new(e)))?;
            }
            Change::Delete { path } => {
                check_path(path)?;
                let Some(Some(_)) = lookup(repo, current, path)? else {
                    return Err(Error::Missing { path: path.clone() });
                };
                editor.remove(path.as_str()).map_err(|e| w(Box::new(e)))?;
            }
            Change::Move {
                previous_path,
                path,
                content,
            } => {
                check_path(previous_path)?;
                check_path(path)?;
                let Some(Some((kind, id))) = lookup(repo, current, previous_path)? else {
                    return Err(Error::Missing {
                        path: previous_path.clone(),
                    });
                };
                if lookup(repo, current, path)?.is_some() {
                    return Err(Error::Exists { path: path.clone() });
                }
                if blocked_by_file(repo, current, path)? {
                    return Err(Error::Conflict { path: path.clone() });
                }
                let id = match content {
                    Some(c) => write_blob(c)?,
                    None => id,
                };
                editor
                    .remove(previous_path.as_str())
                    .map_err(|e| w(Box::new(e)))?;
                editor
                    .upsert(path.as_str(), kind, id)
                    .map_err(|e| w(Box::new(e)))?;
            }
            Change::Chmod { path, executable } => {
                check_path(path)?;
                let Some(Some((kind, id))) = lookup(repo, current, path)? else {
                    return Err(Error::Missing { path: path.clone() });
                };
                if kind == EntryKind::Link {
                    return Err(Error::Incomplete {
                        path: path.clone(),
                        reason: "a symbolic link has no executable bit".into(),
                    });
                }
                editor
                    .upsert(path.as_str(), file_kind(*executable), id)
                    .map_err(|e| w(Box::new(e)))?;
            }
        }
        current = editor.write().map_err(|e| w(Box::new(e)))?.detach();
    }
    let sig = |s: &Signature| gix::actor::Signature {
        name: s.name.as_str().into(),
        email: s.email.as_str().into(),
        time: gix::date::Time::new(s.seconds, s.offset),
    };
    let commit = gix::objs::Commit {
        tree: current,
        parents: parent.into_iter().collect(),
        author: sig(author),
        committer: sig(committer),
        encoding: None,
        message: message.as_bytes().as_bstr().to_owned(),
        extra_headers: Vec::new(),
    };
    repo.write_object(&commit)
        .map(|id| id.detach())
        .map_err(|e| w(Box::new(e)))
}
