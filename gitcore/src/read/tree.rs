//! Directory listings at a ref and path, as `git ls-tree -l <ref> <path>/` shows them.

use gix::ObjectId;

use super::resolve::{treeish_and_path, Treeish};
use super::{canonical_mode, entry_at, tree_entries, Error};

/// What a tree entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    /// A file or a symlink.
    Blob,
    /// A directory.
    Tree,
    /// A submodule (gitlink).
    Commit,
}

impl EntryType {
    /// The name git prints (`blob`, `tree`, `commit`).
    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::Blob => "blob",
            EntryType::Tree => "tree",
            EntryType::Commit => "commit",
        }
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// The file name.
    pub name: String,
    /// The path from the root of the tree.
    pub path: String,
    /// What it is.
    pub kind: EntryType,
    /// The mode as git prints it: `100644`, `100755`, `120000`, `040000`, `160000`.
    pub mode: String,
    /// The object id.
    pub id: ObjectId,
    /// The size in bytes, for blobs.
    pub size: Option<u64>,
}

/// A directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// What the ref resolved to.
    pub at: Treeish,
    /// The directory's path (empty for the root).
    pub path: String,
    /// The directory's tree id.
    pub id: ObjectId,
    /// The entries, in git's tree order.
    pub entries: Vec<TreeEntry>,
}

/// Lists the directory at `rest` under the ref that `first/rest` starts with (see
/// [`treeish_and_path`]).
pub fn list(repo: &gix::Repository, first: &str, rest: &str) -> Result<Listing, Error> {
    let (at, path) = treeish_and_path(repo, first, rest)?;
    list_at(repo, at, path)
}

/// Lists the directory `path` (validated) of the tree `at`.
pub fn list_at(repo: &gix::Repository, at: Treeish, path: &str) -> Result<Listing, Error> {
    let components = super::path::components(path);
    let entry = entry_at(repo, at.tree, &components)?.ok_or_else(|| Error::PathNotFound {
        path: path.to_owned(),
    })?;
    if !entry.mode.is_tree() {
        return Err(Error::NotATree {
            path: path.to_owned(),
        });
    }
    let mut entries = Vec::new();
    for (name, mode, id) in tree_entries(repo, entry.id)? {
        let name = String::from_utf8_lossy(&name).into_owned();
        let kind = if mode.is_tree() {
            EntryType::Tree
        } else if mode.is_commit() {
            EntryType::Commit
        } else {
            EntryType::Blob
        };
        let size = if kind == EntryType::Blob {
            Some(
                repo.find_header(id)
                    .map_err(|e| Error::object(id, e))?
                    .size(),
            )
        } else {
            None
        };
        entries.push(TreeEntry {
            path: if path.is_empty() {
                name.clone()
            } else {
                format!("{path}/{name}")
            },
            name,
            kind,
            mode: format!("{:06o}", canonical_mode(mode)),
            id,
            size,
        });
    }
    Ok(Listing {
        at,
        path: path.to_owned(),
        id: entry.id,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::testutil::{git, init, open};

    #[test]
    fn lists_like_ls_tree() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        std::fs::create_dir_all(dir.join("d/e")).expect("mkdir");
        std::fs::write(dir.join("d/e/f"), "f\n").expect("write");
        std::fs::write(dir.join("a b"), "").expect("write");
        std::fs::write(dir.join("x.sh"), "#!/bin/sh\n").expect("write");
        std::os::unix::fs::symlink("a b", dir.join("link")).expect("symlink");
        git(dir, &["add", "."]);
        git(dir, &["update-index", "--chmod=+x", "x.sh"]);
        git(dir, &["commit", "-q", "-m", "one"]);
        let repo = open(dir);
        for path in ["", "d", "d/e"] {
            let listing = list(&repo, "main", path).expect("list");
            let ours: Vec<String> = listing
                .entries
                .iter()
                .map(|e| {
                    let size = e.size.map_or("-".to_owned(), |s| s.to_string());
                    format!(
                        "{} {} {} {:>7}\t{}",
                        e.mode,
                        e.kind.as_str(),
                        e.id,
                        size,
                        e.path
                    )
                })
                .collect();
            let spec = if path.is_empty() {
                "main".to_owned()
            } else {
                format!("main:{path}")
            };
            let theirs = git(dir, &["ls-tree", "-l", &spec]);
            let theirs: Vec<String> = theirs
                .lines()
                .map(|l| {
                    let (meta, name) = l.split_once('\t').expect("tab");
                    let name = if path.is_empty() {
                        name.trim_matches('"').to_owned()
                    } else {
                        format!("{path}/{}", name.trim_matches('"'))
                    };
                    format!("{meta}\t{name}")
                })
                .collect();
            assert_eq!(ours, theirs, "{path}");
        }
        assert!(matches!(
            list(&repo, "main", "x.sh"),
            Err(Error::NotATree { .. })
        ));
        assert!(matches!(
            list(&repo, "main", "nope"),
            Err(Error::PathNotFound { .. })
        ));
        assert!(matches!(
            list(&repo, "main", "d/e/f/g"),
            Err(Error::PathNotFound { .. })
        ));
    }
}
