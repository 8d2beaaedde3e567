//! All-or-nothing multi-ref updates across a crash.
//!
//! gix commits a transaction of loose refs by renaming each ref's lock file into place, one
//! after another: a process killed between two renames leaves some refs moved and others not. An
//! atomic push therefore writes a journal first (`orbit-ref-journal` in the git directory: one
//! `<old> <new> <ref>` line per ref, written to a temporary name and renamed), applies the
//! transaction, and removes the journal. A journal found later belongs to a writer that died
//! before it answered: every ref of it that holds its new value is set back to its old one
//! (created refs are deleted), so the push did not happen — its client never saw it succeed.
//!
//! Recovery runs under the repository's ref-transaction lock: every writer recovers first
//! ([`crate::lock::ref_transaction`]), and a reader reading the refs afresh
//! ([`crate::refs::Snapshot::read`]) recovers a journal whose writer's lock is free.

use std::io;
use std::path::Path;

use gix::ObjectId;

/// The journal's file name, in the git directory.
pub const JOURNAL: &str = "orbit-ref-journal";

/// Writes the journal of `edits` (old value or null, new value or null, full name).
pub fn write(git_dir: &Path, edits: &[(ObjectId, ObjectId, String)]) -> io::Result<()> {
    let mut text = String::new();
    for (old, new, name) in edits {
        text.push_str(&format!("{old} {new} {name}\n"));
    }
    let tmp = git_dir.join(format!("{JOURNAL}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, git_dir.join(JOURNAL))
}

/// Removes the journal (the transaction is over, applied or refused).
pub fn clear(git_dir: &Path) {
    let _ = std::fs::remove_file(git_dir.join(JOURNAL));
}

/// The refs a journal names, if there is one.
pub(crate) fn names(git_dir: &Path) -> Vec<String> {
    read(git_dir)
        .map(|edits| edits.into_iter().map(|(_, _, n)| n).collect())
        .unwrap_or_default()
}

fn read(git_dir: &Path) -> Option<Vec<(ObjectId, ObjectId, String)>> {
    let text = std::fs::read_to_string(git_dir.join(JOURNAL)).ok()?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        let old = ObjectId::from_hex(parts.next()?.as_bytes()).ok()?;
        let new = ObjectId::from_hex(parts.next()?.as_bytes()).ok()?;
        let name = parts.next()?.to_owned();
        out.push((old, new, name));
    }
    Some(out)
}

/// Undoes a journal left by a dead writer. Call with the ref-transaction lock held and the
/// stale `.lock` files of the journal's refs removed.
pub(crate) fn recover(git_dir: &Path) -> io::Result<()> {
    let Some(edits) = read(git_dir) else {
        // A journal that does not parse was never completely written: nothing was applied.
        clear(git_dir);
        return Ok(());
    };
    let repo = crate::storage::open(git_dir).map_err(io::Error::other)?;
    use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
    let mut undo = Vec::new();
    for (old, new, name) in edits {
        let current = repo
            .try_find_reference(name.as_str())
            .map_err(io::Error::other)?
            .filter(|r| r.name().as_bstr() == name.as_str())
            .and_then(|r| r.target().try_id().map(ToOwned::to_owned));
        let holds_new = if new.is_null() {
            current.is_none()
        } else {
            current == Some(new)
        };
        if !holds_new || old == new {
            continue;
        }
        let full: gix::refs::FullName = name.as_str().try_into().map_err(io::Error::other)?;
        let change = if old.is_null() {
            Change::Delete {
                expected: PreviousValue::MustExistAndMatch(gix::refs::Target::Object(new)),
                log: RefLog::AndReference,
            }
        } else {
            Change::Update {
                log: LogChange {
                    mode: RefLog::AndReference,
                    force_create_reflog: false,
                    message: "push undone: its writer died before answering".into(),
                },
                expected: if new.is_null() {
                    PreviousValue::MustNotExist
                } else {
                    PreviousValue::MustExistAndMatch(gix::refs::Target::Object(new))
                },
                new: gix::refs::Target::Object(old),
            }
        };
        undo.push(RefEdit {
            change,
            name: full,
            deref: false,
        });
    }
    if !undo.is_empty() {
        // An identity for repositories that keep reflogs.
        let committer = gix::actor::Signature {
            name: "Orbit".into(),
            email: "orbit@localhost".into(),
            time: gix::date::Time::now_utc(),
        };
        let mut buf = gix::date::parse::TimeBuf::default();
        repo.edit_references_as(undo, Some(committer.to_ref(&mut buf)))
            .map_err(io::Error::other)?;
    }
    clear(git_dir);
    Ok(())
}

/// For readers: undoes a journal whose writer is gone (its lock is free); leaves one whose
/// writer is still at work.
pub fn recover_if_abandoned(git_dir: &Path) {
    if !git_dir.join(JOURNAL).exists() {
        return;
    }
    let lock = git_dir.join(crate::lock::REF_TRANSACTION_LOCK);
    if let Ok(Some(_held)) = crate::lock::try_lock(&lock) {
        let names = names(git_dir);
        let undone = crate::lock::remove_stale_ref_locks(git_dir, names.iter().map(String::as_str))
            .and_then(|()| recover(git_dir));
        // A failure leaves the journal for the next reader or writer to try again.
        let _ = undone;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::testutil::{git, init};

    fn rev(dir: &Path, name: &str) -> String {
        git(dir, &["rev-parse", name]).trim().to_owned()
    }

    /// A push of three refs killed after moving two of them: whoever comes next (a reader of the
    /// refs, or a writer) puts both back and deletes the one it created; a journal whose writer
    /// still holds the lock is left alone.
    #[test]
    fn a_half_applied_transaction_is_undone_by_the_next_reader_or_writer() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        init(dir);
        git(dir, &["commit", "-q", "--allow-empty", "-m", "one"]);
        let one = rev(dir, "HEAD");
        git(dir, &["branch", "b"]);
        git(dir, &["commit", "-q", "--allow-empty", "-m", "two"]);
        let two = rev(dir, "HEAD");
        git(dir, &["reset", "-q", "--hard", &one]);
        let git_dir = dir.join(".git");
        let id = |h: &str| ObjectId::from_hex(h.as_bytes()).expect("hex");
        let zero = ObjectId::null(gix::hash::Kind::Sha1);
        let journal = vec![
            (id(&one), id(&two), "refs/heads/main".to_owned()),
            (id(&one), id(&two), "refs/heads/b".to_owned()),
            (zero, id(&two), "refs/tags/t".to_owned()),
        ];
        let half_applied = || {
            write(&git_dir, &journal).expect("journal");
            git(dir, &["update-ref", "refs/heads/main", &two]);
            git(dir, &["update-ref", "refs/tags/t", &two]);
            // The dead writer's lock file on the third ref.
            std::fs::write(git_dir.join("refs/heads/b.lock"), format!("{two}\n")).expect("lock");
        };

        half_applied();
        // Its writer still holds the transaction lock: a reader leaves it.
        {
            let _writer =
                crate::lock::lock(&git_dir.join(crate::lock::REF_TRANSACTION_LOCK)).expect("lock");
            crate::refs::Snapshot::read(&crate::storage::open(&git_dir).expect("open"))
                .expect("read");
            assert!(git_dir.join(JOURNAL).exists());
        }
        // The writer is gone: the next reader undoes it.
        let snapshot = crate::refs::Snapshot::read(&crate::storage::open(&git_dir).expect("open"))
            .expect("read");
        assert_eq!(snapshot.get("refs/heads/main"), Some(id(&one)));
        assert_eq!(snapshot.get("refs/heads/b"), Some(id(&one)));
        assert_eq!(snapshot.get("refs/tags/t"), None);
        assert!(!git_dir.join(JOURNAL).exists());
        assert!(!git_dir.join("refs/heads/b.lock").exists());

        // Or the next writer, before its own transaction.
        half_applied();
        drop(crate::lock::ref_transaction(&git_dir, ["refs/heads/other"]).expect("transaction"));
        assert_eq!(rev(dir, "refs/heads/main"), one);
        assert_eq!(rev(dir, "refs/heads/b"), one);
        assert!(git(dir, &["for-each-ref", "refs/tags"]).is_empty());
        assert!(!git_dir.join(JOURNAL).exists());
        let (ok, _) = crate::read::testutil::git_status(dir, &["fsck", "--strict"]);
        assert!(ok);
    }
}
