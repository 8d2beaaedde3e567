//! File contents at a ref and path, as `git cat-file blob <ref>:<path>` prints them.

use gix::ObjectId;

use super::resolve::{treeish_and_path, Treeish};
use super::{entry_at, load, Error};

/// A file's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// What the ref resolved to.
    pub at: Treeish,
    /// The path from the root of the tree.
    pub path: String,
    /// The blob id.
    pub id: ObjectId,
    /// The mode as git prints it (`100644`, `100755`, `120000`).
    pub mode: String,
    /// The bytes (for a symlink: its target).
    pub data: Vec<u8>,
}

/// Reads the file at `rest` under the ref that `first/rest` starts with (see
/// [`treeish_and_path`]).
pub fn read(repo: &gix::Repository, first: &str, rest: &str) -> Result<Blob, Error> {
    let (at, path) = treeish_and_path(repo, first, rest)?;
    read_at(repo, at, path)
}

/// Reads the file `path` (validated) of the tree `at`.
pub fn read_at(repo: &gix::Repository, at: Treeish, path: &str) -> Result<Blob, Error> {
    if path.is_empty() {
        return Err(Error::NotABlob {
            path: String::new(),
        });
    }
    let components = super::path::components(path);
    let entry = entry_at(repo, at.tree, &components)?.ok_or_else(|| Error::PathNotFound {
        path: path.to_owned(),
    })?;
    if !entry.mode.is_blob_or_symlink() {
        return Err(Error::NotABlob {
            path: path.to_owned(),
        });
    }
    let (kind, data) = load(repo, entry.id)?;
    if kind != gix::object::Kind::Blob {
        return Err(Error::object(
            entry.id,
            format!("expected a blob, found a {kind}"),
        ));
    }
    Ok(Blob {
        at,
        path: path.to_owned(),
        id: entry.id,
        mode: format!("{:06o}", super::canonical_mode(entry.mode)),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::testutil::{git, init, open};

    #[test]
    fn reads_bytes_like_cat_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        std::fs::create_dir_all(dir.join("d")).expect("mkdir");
        let binary: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        std::fs::write(dir.join("d/bin"), &binary).expect("write");
        std::fs::write(dir.join("text"), "no newline").expect("write");
        git(dir, &["add", "."]);
        git(dir, &["commit", "-q", "-m", "one"]);
        let repo = open(dir);
        let b = read(&repo, "main", "d/bin").expect("blob");
        assert_eq!(b.data, binary);
        assert_eq!(
            b.id.to_string(),
            git(dir, &["rev-parse", "main:d/bin"]).trim()
        );
        assert_eq!(
            read(&repo, "main", "text").expect("text").data,
            b"no newline"
        );
        assert!(matches!(
            read(&repo, "main", "d"),
            Err(Error::NotABlob { .. })
        ));
        assert!(matches!(
            read(&repo, "main", "nope"),
            Err(Error::PathNotFound { .. })
        ));
        assert!(matches!(
            read(&repo, "main", "/etc/passwd"),
            Err(Error::InvalidPath { .. })
        ));
    }
}
