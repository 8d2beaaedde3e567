//! Branches: list, get, and compare-and-swap create and delete.
//!
//! Creation uses `PreviousValue::MustNotExist` and deletion `MustExistAndMatch` with the value
//! just read, so a concurrent push or API call is never overwritten: the loser gets
//! [`Error::BranchExists`] or [`Error::BranchChanged`].

use gix::bstr::ByteSlice;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::{FullName, Target};
use gix::ObjectId;

use super::{lossy, peel_tags, Error};

/// One branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    /// The name without `refs/heads/`.
    pub name: String,
    /// The commit it points at (tags peeled, symbolic refs followed).
    pub commit: ObjectId,
    /// Whether `HEAD` points at it.
    pub is_default: bool,
}

/// Lists the branches of `repo`, sorted by name (byte order, like `git branch`).
pub fn list(repo: &gix::Repository) -> Result<Vec<Branch>, Error> {
    let head = head_branch(repo)?;
    let platform = repo.references().map_err(|e| Error::References(e.into()))?;
    let mut names = Vec::new();
    for r in platform
        .prefixed(b"refs/heads/".as_bstr())
        .map_err(|e| Error::References(e.into()))?
    {
        let r = r.map_err(|e| Error::References(e.into()))?;
        names.push(r.name().as_bstr().to_owned());
    }
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for full in names {
        let full = lossy(full.as_bstr());
        let Some(target) = super::resolve::find_ref(repo, &full)? else {
            continue;
        };
        let (commit, _, _) = peel_tags(repo, target)?;
        let name = full.strip_prefix("refs/heads/").unwrap_or(&full).to_owned();
        out.push(Branch {
            is_default: head.as_deref() == Some(name.as_str()),
            name,
            commit,
        });
    }
    Ok(out)
}

/// The branch `name`.
pub fn get(repo: &gix::Repository, name: &str) -> Result<Branch, Error> {
    let not_found = || Error::BranchNotFound {
        name: name.to_owned(),
    };
    let full = crate::storage::branch_ref_name(name).map_err(|_| not_found())?;
    let target =
        super::resolve::find_ref(repo, &full.as_bstr().to_str_lossy())?.ok_or_else(not_found)?;
    let (commit, _, _) = peel_tags(repo, target)?;
    Ok(Branch {
        is_default: head_branch(repo)?.as_deref() == Some(name),
        name: name.to_owned(),
        commit,
    })
}

/// The branch `HEAD` points at, born or not.
pub fn head_branch(repo: &gix::Repository) -> Result<Option<String>, Error> {
    Ok(repo
        .head_name()
        .map_err(|e| Error::References(e.into()))?
        .and_then(|n| {
            n.as_bstr()
                .strip_prefix(b"refs/heads/")
                .map(|b| b.to_str_lossy().into_owned())
        }))
}

/// Creates the branch `name` at the commit `from` names (branch, tag or sha), only if it does
/// not exist yet.
pub fn create(repo: &gix::Repository, name: &str, from: &str) -> Result<Branch, Error> {
    let full = valid_name(name)?;
    let full_str = full.as_bstr().to_str_lossy().into_owned();
    let commit = super::resolve::commit(repo, from)?;
    if super::resolve::find_ref(repo, &full_str)?.is_some() || ref_exists(repo, &full_str)? {
        return Err(Error::BranchExists {
            name: name.to_owned(),
        });
    }
    if let Some(existing) = name_conflict(repo, &full_str)? {
        return Err(Error::BranchNameConflict {
            name: name.to_owned(),
            existing,
        });
    }
    let edit = RefEdit {
        change: Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: false,
                message: format!("branch: Created from {from}").into(),
            },
            expected: PreviousValue::MustNotExist,
            new: Target::Object(commit),
        },
        name: full,
        deref: false,
    };
    match edit_applied(repo, edit) {
        // gix lets `MustNotExist` pass when the ref exists with the very value written (a
        // concurrent create from the same commit): that is someone else's branch, not ours.
        Ok(applied)
            if applied.iter().any(|e| {
                matches!(
                    e.change,
                    Change::Update {
                        expected: PreviousValue::MustExistAndMatch(_),
                        ..
                    }
                )
            }) =>
        {
            return Err(Error::BranchExists {
                name: name.to_owned(),
            });
        }
        Ok(_) => {}
        Err(e) => return Err(create_failed(repo, name, &full_str, e)),
    }
    Ok(Branch {
        is_default: head_branch(repo)?.as_deref() == Some(name),
        name: name.to_owned(),
        commit,
    })
}

fn create_failed(repo: &gix::Repository, name: &str, full_str: &str, e: gix::Error) -> Error {
    let exists_now = e
        .downcast_any_ref::<gix::refs::file::transaction::prepare::MustNotExist>()
        .is_some()
        || ref_exists(repo, full_str).unwrap_or(false);
    if exists_now {
        return Error::BranchExists {
            name: name.to_owned(),
        };
    }
    if e.classify().is_retryable() {
        return Error::BranchLocked {
            name: name.to_owned(),
        };
    }
    Error::RefUpdate {
        name: full_str.to_owned(),
        source: e.into(),
    }
}

/// Deletes the branch `name`, refusing the branch `HEAD` points at. If `wanted` is given, the
/// branch must still point at that commit; the deletion itself is a compare-and-swap against
/// the value just read, so a branch that moves meanwhile answers [`Error::BranchChanged`].
/// Answers what the branch pointed at.
pub fn delete(
    repo: &gix::Repository,
    name: &str,
    wanted: Option<ObjectId>,
) -> Result<ObjectId, Error> {
    let not_found = || Error::BranchNotFound {
        name: name.to_owned(),
    };
    let full = crate::storage::branch_ref_name(name).map_err(|_| not_found())?;
    let full_str = full.as_bstr().to_str_lossy().into_owned();
    if head_branch(repo)?.as_deref() == Some(name) {
        return Err(Error::DefaultBranch {
            name: name.to_owned(),
        });
    }
    let current = repo
        .try_find_reference(full_str.as_str())
        .map_err(|e| Error::References(e.into()))?
        .filter(|r| r.name().as_bstr() == full_str.as_str())
        .ok_or_else(not_found)?;
    let expected: Target = current.target().into_owned();
    let old = match &expected {
        Target::Object(id) => *id,
        Target::Symbolic(_) => super::resolve::find_ref(repo, &full_str)?
            .unwrap_or_else(|| ObjectId::null(repo.object_hash())),
    };
    if let Some(wanted) = wanted {
        let (commit, _, _) = peel_tags(repo, old)?;
        if commit != wanted {
            return Err(Error::BranchChanged {
                name: name.to_owned(),
            });
        }
    }
    let edit = RefEdit {
        change: Change::Delete {
            expected: PreviousValue::MustExistAndMatch(expected),
            log: RefLog::AndReference,
        },
        name: full,
        deref: false,
    };
    if let Err(e) = self::edit(repo, edit) {
        if !ref_exists(repo, &full_str)? {
            return Err(not_found());
        }
        return Err(classify(e, name, full_str));
    }
    Ok(old)
}

/// Moves the branch `name` from `expected` to `new` by compare-and-swap: a branch that moved
/// meanwhile answers [`Error::BranchChanged`], one locked by a concurrent update
/// [`Error::BranchLocked`], a missing one [`Error::BranchNotFound`]. `message` goes to the reflog.
pub fn update(
    repo: &gix::Repository,
    name: &str,
    expected: ObjectId,
    new: ObjectId,
    message: &str,
) -> Result<(), Error> {
    let full = valid_name(name)?;
    let full_str = full.as_bstr().to_str_lossy().into_owned();
    let edit = RefEdit {
        change: Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: false,
                message: message.into(),
            },
            expected: PreviousValue::MustExistAndMatch(Target::Object(expected)),
            new: Target::Object(new),
        },
        name: full,
        deref: false,
    };
    if let Err(e) = self::edit(repo, edit) {
        if !ref_exists(repo, &full_str)? {
            return Err(Error::BranchNotFound {
                name: name.to_owned(),
            });
        }
        return Err(classify(e, name, full_str));
    }
    Ok(())
}

/// Points the ref `full` (e.g. `refs/pull/7/head`) at `id`, whatever it held. For refs only
/// Orbit writes, never for branches.
pub fn set_ref(
    repo: &gix::Repository,
    full: &str,
    id: ObjectId,
    message: &str,
) -> Result<(), Error> {
    let name = FullName::try_from(full).map_err(|e| Error::RefUpdate {
        name: full.to_owned(),
        source: e.into(),
    })?;
    let edit = RefEdit {
        change: Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: false,
                message: message.into(),
            },
            expected: PreviousValue::Any,
            new: Target::Object(id),
        },
        name,
        deref: false,
    };
    self::edit(repo, edit).map_err(|e| Error::RefUpdate {
        name: full.to_owned(),
        source: e.into(),
    })
}

/// Sorts a failed edit of an existing branch into moved, locked, or something else.
fn classify(e: gix::Error, name: &str, full: String) -> Error {
    if e.downcast_any_ref::<gix::refs::file::transaction::prepare::ReferenceOutOfDate>()
        .is_some()
    {
        return Error::BranchChanged {
            name: name.to_owned(),
        };
    }
    if e.classify().is_retryable() {
        return Error::BranchLocked {
            name: name.to_owned(),
        };
    }
    Error::RefUpdate {
        name: full,
        source: e.into(),
    }
}

/// Applies one ref edit, with Orbit as the reflog identity (bare repositories keep no reflog by
/// default, but one that enables `core.logAllRefUpdates` needs an identity).
fn edit(repo: &gix::Repository, edit: RefEdit) -> Result<(), gix::Error> {
    edit_applied(repo, edit).map(|_| ())
}

/// Applies `edit`; answers the edits as applied (gix sets `expected` to the value each ref had
/// under its lock, `MustExistAndMatch` when it existed).
fn edit_applied(repo: &gix::Repository, edit: RefEdit) -> Result<Vec<RefEdit>, gix::Error> {
    let committer = gix::actor::Signature {
        name: "Orbit".into(),
        email: "orbit@localhost".into(),
        time: gix::date::Time::now_utc(),
    };
    let mut buf = gix::date::parse::TimeBuf::default();
    let name = edit.name.as_bstr().to_string();
    let _refs = crate::lock::ref_transaction(repo.path(), [name.as_str()])
        .map_err(|e| gix::Error::from_error(e))?;
    repo.edit_references_as(Some(edit), Some(committer.to_ref(&mut buf)))
}

fn valid_name(name: &str) -> Result<FullName, Error> {
    if name.len() > 255 {
        return Err(Error::InvalidBranchName {
            name: name.to_owned(),
            source: "longer than 255 bytes".into(),
        });
    }
    crate::storage::branch_ref_name(name).map_err(|e| Error::InvalidBranchName {
        name: name.to_owned(),
        source: Box::new(e),
    })
}

/// Whether a ref named exactly `full` exists, symbolic or not, dangling or not.
fn ref_exists(repo: &gix::Repository, full: &str) -> Result<bool, Error> {
    Ok(repo
        .try_find_reference(full)
        .map_err(|e| Error::References(e.into()))?
        .is_some_and(|r| r.name().as_bstr() == full))
}

/// A branch that makes `full` impossible as a file: one of its parents (`a` for `a/b`) or one
/// below it (`a/b` for `a`).
fn name_conflict(repo: &gix::Repository, full: &str) -> Result<Option<String>, Error> {
    let mut prefix_end = "refs/heads/".len();
    while let Some(pos) = full[prefix_end..].find('/') {
        let parent = &full[..prefix_end + pos];
        if ref_exists(repo, parent)? {
            return Ok(Some(parent.trim_start_matches("refs/heads/").to_owned()));
        }
        prefix_end += pos + 1;
    }
    let platform = repo.references().map_err(|e| Error::References(e.into()))?;
    let below = format!("{full}/");
    let mut iter = platform
        .prefixed(below.as_bytes().as_bstr())
        .map_err(|e| Error::References(e.into()))?;
    if let Some(r) = iter.next() {
        let r = r.map_err(|e| Error::References(e.into()))?;
        let n = lossy(r.name().as_bstr());
        return Ok(Some(n.trim_start_matches("refs/heads/").to_owned()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::testutil::{git, init, open};

    #[test]
    fn create_list_delete() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        std::fs::write(dir.join("a"), "a\n").expect("write");
        git(dir, &["add", "."]);
        git(dir, &["commit", "-q", "-m", "one"]);
        git(dir, &["tag", "-a", "-m", "t", "v1"]);
        git(dir, &["branch", "packed"]);
        git(dir, &["pack-refs", "--all"]);
        let head = git(dir, &["rev-parse", "main"]).trim().to_owned();
        let repo = open(dir);

        let b = create(&repo, "feature/x", "v1").expect("create");
        assert_eq!(b.commit.to_string(), head);
        assert!(!b.is_default);
        assert_eq!(
            git(dir, &["rev-parse", "refs/heads/feature/x"]).trim(),
            head
        );
        assert!(matches!(
            create(&repo, "feature/x", "main"),
            Err(Error::BranchExists { .. })
        ));
        assert!(matches!(
            create(&repo, "feature", "main"),
            Err(Error::BranchNameConflict { .. })
        ));
        assert!(matches!(
            create(&repo, "feature/x/y", "main"),
            Err(Error::BranchNameConflict { .. })
        ));
        assert!(matches!(
            create(&repo, "bad..name", "main"),
            Err(Error::InvalidBranchName { .. })
        ));
        assert!(matches!(
            create(&repo, "new", "nope"),
            Err(Error::UnknownRef { .. })
        ));

        let names: Vec<(String, bool)> = list(&repo)
            .expect("list")
            .into_iter()
            .map(|b| (b.name, b.is_default))
            .collect();
        assert_eq!(
            names,
            vec![
                ("feature/x".to_owned(), false),
                ("main".to_owned(), true),
                ("packed".to_owned(), false)
            ]
        );
        assert_eq!(
            git(
                dir,
                &["for-each-ref", "--format=%(refname:strip=2)", "refs/heads"]
            )
            .lines()
            .collect::<Vec<_>>(),
            vec!["feature/x", "main", "packed"]
        );

        assert!(matches!(
            delete(&repo, "main", None),
            Err(Error::DefaultBranch { .. })
        ));
        assert_eq!(
            delete(&repo, "packed", None)
                .expect("delete packed")
                .to_string(),
            head
        );
        let stale = ObjectId::null(repo.object_hash());
        assert!(matches!(
            delete(&repo, "feature/x", Some(stale)),
            Err(Error::BranchChanged { .. })
        ));
        let head_id = ObjectId::from_hex(head.as_bytes()).expect("hex");
        assert_eq!(
            delete(&repo, "feature/x", Some(head_id))
                .expect("delete")
                .to_string(),
            head
        );
        assert!(matches!(
            delete(&repo, "feature/x", None),
            Err(Error::BranchNotFound { .. })
        ));
        assert!(matches!(
            get(&repo, "packed"),
            Err(Error::BranchNotFound { .. })
        ));
        let listed = git(dir, &["branch", "--format=%(refname:short)"]);
        assert_eq!(listed.trim(), "main");
        git(dir, &["fsck", "--strict"]);
    }
}
