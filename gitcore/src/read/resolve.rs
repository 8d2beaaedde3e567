//! Names of commits and trees: `{ref}` as a branch, a tag, or a full or abbreviated sha.
//!
//! The order is git's (`get_oid_basic` and `get_short_oid`):
//! 1. a full 40-hex sha names that object;
//! 2. refs, in git's dwim order: `HEAD` or a name starting with `refs/` as given, then
//!    `refs/<name>`, `refs/tags/<name>`, `refs/heads/<name>` (so a tag wins over a branch of the
//!    same name, as in git);
//! 3. an abbreviated sha of at least 4 hex digits, disambiguated by the kind that is needed (a
//!    commit, or a tree for tree and blob reads), as git does for `<rev>^{commit}`.
//!
//! Revision syntax beyond that (`main~1`, `@{u}`, `a..b`) is not supported.

use std::collections::HashSet;

use gix::object::Kind;
use gix::ObjectId;

use super::{load, peel_tags, Error};

pub use super::abbrev::{abbreviate, Abbreviator};

/// Shortest abbreviation git accepts.
pub const MIN_ABBREV: usize = 4;

/// What a name must peel to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// A commit (tags are peeled).
    Commit,
    /// A tree, or a commit's tree (tags are peeled).
    Tree,
}

impl Want {
    fn name(self) -> &'static str {
        match self {
            Want::Commit => "commit",
            Want::Tree => "tree",
        }
    }

    /// Whether an object of `kind` that tags peeled to satisfies this.
    fn accepts(self, kind: Kind) -> bool {
        match self {
            Want::Commit => kind == Kind::Commit,
            Want::Tree => matches!(kind, Kind::Commit | Kind::Tree),
        }
    }
}

/// A name resolved to something with a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Treeish {
    /// The commit, if the name led to one (a name can also be a bare tree's sha).
    pub commit: Option<ObjectId>,
    /// The root tree.
    pub tree: ObjectId,
}

/// Resolves `name` to a commit.
pub fn commit(repo: &gix::Repository, name: &str) -> Result<ObjectId, Error> {
    let (id, _) = object(repo, name, Want::Commit)?;
    Ok(id)
}

/// Resolves `name` to a commit's (or a tree's) root tree.
pub fn treeish(repo: &gix::Repository, name: &str) -> Result<Treeish, Error> {
    let (id, kind) = object(repo, name, Want::Tree)?;
    to_treeish(repo, id, kind)
}

/// The commit `HEAD` points at, or `None` when `HEAD` is unborn.
pub fn head_commit(repo: &gix::Repository) -> Result<Option<ObjectId>, Error> {
    match find_ref(repo, "HEAD")? {
        None => Ok(None),
        Some(id) => {
            let (id, kind, _) = peel_tags(repo, id)?;
            if kind == Kind::Commit {
                Ok(Some(id))
            } else {
                Err(Error::WrongKind {
                    name: "HEAD".into(),
                    kind,
                    wanted: "commit",
                })
            }
        }
    }
}

/// Splits `{ref}/{path}` where the ref name itself may contain `/`: the longest prefix of
/// `first/rest` (whole components) that names a ref wins; otherwise `first` must be a sha.
///
/// `rest` is validated as a path first (no `..`, not absolute). Returns the tree and the path
/// inside it (without a trailing `/`).
pub fn treeish_and_path<'a>(
    repo: &gix::Repository,
    first: &str,
    rest: &'a str,
) -> Result<(Treeish, &'a str), Error> {
    let rest = super::path::validate(rest)?;
    if first.is_empty() {
        return Err(Error::UnknownRef {
            name: String::new(),
        });
    }
    // Candidate split points: after `first`, then after each component of `rest`, longest first.
    let mut ends: Vec<usize> = vec![0];
    for (i, b) in rest.bytes().enumerate() {
        if b == b'/' {
            ends.push(i);
        }
    }
    if !rest.is_empty() {
        ends.push(rest.len());
    }
    for &end in ends.iter().rev() {
        let (name, path) = if end == 0 {
            (first.to_owned(), rest)
        } else {
            let path = rest.get(end + 1..).unwrap_or("");
            (format!("{first}/{}", &rest[..end]), path)
        };
        if let Some(id) = dwim_ref(repo, &name)? {
            let (id, kind, _) = peel_tags(repo, id)?;
            if !Want::Tree.accepts(kind) {
                return Err(Error::WrongKind {
                    name,
                    kind,
                    wanted: Want::Tree.name(),
                });
            }
            return Ok((to_treeish(repo, id, kind)?, path));
        }
    }
    match by_sha(repo, first, Want::Tree)? {
        Some((id, kind)) => Ok((to_treeish(repo, id, kind)?, rest)),
        None => Err(Error::UnknownRef {
            name: first.to_owned(),
        }),
    }
}

fn to_treeish(repo: &gix::Repository, id: ObjectId, kind: Kind) -> Result<Treeish, Error> {
    if kind == Kind::Tree {
        return Ok(Treeish {
            commit: None,
            tree: id,
        });
    }
    let node = super::commit_node(repo, id)?;
    Ok(Treeish {
        commit: Some(id),
        tree: node.tree,
    })
}

/// Resolves `name` and peels tags to an object `want` accepts; returns it and its kind.
fn object(repo: &gix::Repository, name: &str, want: Want) -> Result<(ObjectId, Kind), Error> {
    let unknown = || Error::UnknownRef {
        name: name.to_owned(),
    };
    if name.is_empty() {
        return Err(unknown());
    }
    if is_full_hex(repo, name) {
        return match by_sha(repo, name, want)? {
            Some(found) => Ok(found),
            None => Err(unknown()),
        };
    }
    if let Some(id) = dwim_ref(repo, name)? {
        let (id, kind, _) = peel_tags(repo, id)?;
        if want.accepts(kind) {
            return Ok((id, kind));
        }
        return Err(Error::WrongKind {
            name: name.to_owned(),
            kind,
            wanted: want.name(),
        });
    }
    by_sha(repo, name, want)?.ok_or_else(unknown)
}

fn is_full_hex(repo: &gix::Repository, name: &str) -> bool {
    name.len() == repo.object_hash().len_in_hex() && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Looks `name` up as a full or abbreviated sha; peels tags; filters candidates by `want`.
fn by_sha(
    repo: &gix::Repository,
    name: &str,
    want: Want,
) -> Result<Option<(ObjectId, Kind)>, Error> {
    let hex_len = repo.object_hash().len_in_hex();
    if name.len() < MIN_ABBREV
        || name.len() > hex_len
        || !name.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Ok(None);
    }
    let lower = name.to_ascii_lowercase();
    let candidates: Vec<ObjectId> = if name.len() == hex_len {
        let id = ObjectId::from_hex(lower.as_bytes()).map_err(|e| Error::UnknownRef {
            name: format!("{name} ({e})"),
        })?;
        if repo.has_object(id) {
            vec![id]
        } else {
            Vec::new()
        }
    } else {
        let prefix = gix::hash::Prefix::from_hex(&lower).map_err(|_| Error::UnknownRef {
            name: name.to_owned(),
        })?;
        let mut set = HashSet::new();
        repo.objects
            .lookup_prefix(prefix, Some(&mut set))
            .map_err(|e| Error::References(e.into()))?;
        let mut v: Vec<ObjectId> = set.into_iter().collect();
        v.sort();
        v
    };
    let mut kinds = Vec::with_capacity(candidates.len());
    let mut fitting = Vec::new();
    for id in &candidates {
        let (peeled, kind, _) = peel_tags(repo, *id)?;
        let (own_kind, _) = load(repo, *id)?;
        kinds.push((*id, own_kind));
        if want.accepts(kind) {
            fitting.push((peeled, kind));
        }
    }
    match (fitting.len(), kinds.len()) {
        (_, 0) => Ok(None),
        (1, _) => Ok(fitting.pop()),
        (0, 1) => {
            let (id, _) = kinds[0];
            let (_, kind, _) = peel_tags(repo, id)?;
            Err(Error::WrongKind {
                name: name.to_owned(),
                kind,
                wanted: want.name(),
            })
        }
        _ => Err(Error::Ambiguous {
            prefix: name.to_owned(),
            candidates: kinds,
        }),
    }
}

/// Looks `name` up as a ref in git's dwim order; answers the object the ref points at
/// (symbolic refs followed, tags not peeled).
fn dwim_ref(repo: &gix::Repository, name: &str) -> Result<Option<ObjectId>, Error> {
    let mut tries: Vec<String> = Vec::with_capacity(4);
    if name == "HEAD" || name.starts_with("refs/") {
        tries.push(name.to_owned());
    }
    for prefix in ["refs/", "refs/tags/", "refs/heads/"] {
        tries.push(format!("{prefix}{name}"));
    }
    // The per-process snapshot (revalidated by a few stats) answers for names under refs/
    // without a file opened per candidate name.
    let snapshot = crate::refs::Snapshot::read_cached(repo).ok();
    for full in tries {
        if let Some(known) = snapshot
            .as_ref()
            .filter(|_| full.starts_with("refs/"))
            .and_then(|s| s.lookup(&full))
        {
            match known {
                Some(id) => return Ok(Some(id)),
                None => continue,
            }
        }
        if let Some(id) = find_ref(repo, &full)? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// The object the reference `full` points at, following symbolic refs; `None` if it does not
/// exist or is not a valid name.
pub(crate) fn find_ref(repo: &gix::Repository, full: &str) -> Result<Option<ObjectId>, Error> {
    let mut name = full.to_owned();
    // Symbolic refs are followed a few levels deep, like git (which stops at 5).
    for _ in 0..5 {
        if gix::refs::FullName::try_from(name.as_str()).is_err() {
            return Ok(None);
        }
        let found = repo
            .try_find_reference(name.as_str())
            .map_err(|e| Error::References(e.into()))?;
        let Some(r) = found else {
            return Ok(None);
        };
        // gix looks partial names up with its own dwim rules: insist on the exact name.
        if r.name().as_bstr() != name.as_str() {
            return Ok(None);
        }
        match r.target() {
            gix::refs::TargetRef::Object(id) => return Ok(Some(id.to_owned())),
            gix::refs::TargetRef::Symbolic(target) => {
                name = target.as_bstr().to_string();
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::testutil::{git, init, open};

    #[test]
    fn resolves_branches_tags_and_shas() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        std::fs::write(dir.join("a"), "a\n").expect("write");
        git(dir, &["add", "."]);
        git(dir, &["commit", "-q", "-m", "one"]);
        git(dir, &["branch", "feature/x"]);
        git(dir, &["tag", "-a", "-m", "annotated", "v1"]);
        let repo = open(dir);
        let head = git(dir, &["rev-parse", "HEAD"]).trim().to_owned();
        let head_id = ObjectId::from_hex(head.as_bytes()).expect("hex");
        for name in [
            "main",
            "feature/x",
            "v1",
            "refs/heads/main",
            "HEAD",
            &head,
            &head[..4],
            &head[..12],
            &head.to_uppercase()[..10],
        ] {
            assert_eq!(commit(&repo, name).expect(name), head_id, "{name}");
        }
        assert!(matches!(
            commit(&repo, "nope"),
            Err(Error::UnknownRef { .. })
        ));
        assert!(matches!(
            commit(&repo, &head[..3]),
            Err(Error::UnknownRef { .. })
        ));
        let tree = git(dir, &["rev-parse", "HEAD^{tree}"]).trim().to_owned();
        assert!(matches!(commit(&repo, &tree), Err(Error::WrongKind { .. })));
        let t = treeish(&repo, &tree).expect("tree sha");
        assert_eq!(t.commit, None);

        let (t, path) = treeish_and_path(&repo, "feature", "x/a").expect("slash branch");
        assert_eq!(t.commit, Some(head_id));
        assert_eq!(path, "a");
        let (_, path) = treeish_and_path(&repo, "feature", "x").expect("slash branch root");
        assert_eq!(path, "");
        assert!(matches!(
            treeish_and_path(&repo, "main", "../x"),
            Err(Error::InvalidPath { .. })
        ));
        assert_eq!(abbreviate(&repo, &head_id), head[..7]);
        // An id sharing all but its last digit with an object needs all 40 digits, whether the
        // object is loose or packed.
        let near = |hex: &str| {
            let last = if hex.ends_with('0') { '1' } else { '0' };
            ObjectId::from_hex(format!("{}{last}", &hex[..39]).as_bytes()).expect("hex")
        };
        let near_head = near(&head);
        assert_eq!(
            abbreviate(&repo, &near_head),
            near_head.to_string(),
            "loose"
        );
        git(dir, &["repack", "-adq"]);
        let repo = open(dir);
        assert_eq!(
            abbreviate(&repo, &near_head),
            near_head.to_string(),
            "packed"
        );
        assert_eq!(abbreviate(&repo, &head_id), head[..7]);

        // Names come from the per-process ref snapshot: a symbolic ref under refs/ is still
        // followed, and refs changed by another writer since are seen at once.
        git(
            dir,
            &["symbolic-ref", "refs/heads/alias", "refs/heads/main"],
        );
        assert_eq!(commit(&repo, "alias").expect("alias"), head_id);
        std::fs::write(dir.join("a"), "b\n").expect("write");
        git(dir, &["commit", "-qam", "two"]);
        let second =
            ObjectId::from_hex(git(dir, &["rev-parse", "HEAD"]).trim().as_bytes()).expect("hex");
        git(dir, &["branch", "later"]);
        for name in ["main", "alias", "later", "refs/heads/later"] {
            assert_eq!(commit(&repo, name).expect(name), second, "{name}");
        }
        git(dir, &["pack-refs", "--all"]);
        git(dir, &["branch", "-D", "later"]);
        assert!(matches!(
            commit(&repo, "later"),
            Err(Error::UnknownRef { .. })
        ));
        assert_eq!(commit(&repo, "feature/x").expect("packed"), head_id);
    }
}
