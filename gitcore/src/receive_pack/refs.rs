//! Ref updates of a push: tip checks and compare-and-swap edits, one by one or atomically.

use std::io::{self};

use gix::objs::{Exists as _, Find as _};
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::{FullName, Target};
use gix::ObjectId;

use super::{one_line, Command};

/// The full name of the branch `HEAD` points at (the default branch), if any.
pub(super) fn current_branch(repo: &gix::Repository) -> Option<String> {
    repo.head_name()
        .ok()
        .flatten()
        .map(|n| n.as_bstr().to_string())
}

/// Whether `cmd` deletes a ref that does not exist without naming an old value: C git reports
/// it as done ("deleting a non-existent ref") and so does Orbit, without touching anything.
pub(super) fn deletes_nothing(repo: &gix::Repository, cmd: &Command) -> bool {
    cmd.is_delete()
        && cmd.old.is_null()
        && matches!(repo.try_find_reference(cmd.name.as_str()), Ok(None))
}

/// The new value of a non-delete command exists, and branches point at commits.
pub(super) fn check_tip(
    repo: &gix::Repository,
    q: Option<&io::Result<gix::odb::Handle>>,
    cmd: &Command,
) -> Result<(), String> {
    let exists = match q {
        Some(Ok(odb)) => odb.exists(&cmd.new),
        _ => repo.objects.exists(&cmd.new),
    };
    if !exists {
        return Err(format!(
            "missing necessary objects ({} is not in the pack)",
            cmd.new
        ));
    }
    if cmd.name.starts_with("refs/heads/") {
        let is_commit = match q {
            Some(Ok(odb)) => {
                let mut buf = Vec::new();
                matches!(odb.try_find(&cmd.new, &mut buf), Ok(Some(d)) if d.kind == gix::objs::Kind::Commit)
            }
            _ => repo.find_commit(cmd.new).is_ok(),
        };
        if !is_commit {
            return Err("branches must point at commits".into());
        }
    }
    Ok(())
}

/// A ref update failure that is neither a race nor a stale value, for the report.
pub(super) fn other_failure(text: &str) -> String {
    format!(
        "failed to update ref: {}",
        one_line(text.trim_start_matches("invalid pack: "))
    )
}

pub(super) fn edit_for(cmd: &Command) -> Result<RefEdit, String> {
    let name = FullName::try_from(cmd.name.as_str()).map_err(|_| "invalid ref name".to_owned())?;
    let log = LogChange {
        mode: RefLog::AndReference,
        force_create_reflog: false,
        message: "push".into(),
    };
    let expected = |old: ObjectId| {
        if old.is_null() {
            PreviousValue::MustNotExist
        } else {
            PreviousValue::MustExistAndMatch(Target::Object(old))
        }
    };
    let change = if cmd.is_delete() {
        Change::Delete {
            // A delete without a known old value removes whatever is there; it must still exist.
            // (gix refuses `MustNotExist` on deletes.)
            expected: if cmd.old.is_null() {
                PreviousValue::MustExist
            } else {
                PreviousValue::MustExistAndMatch(Target::Object(cmd.old))
            },
            log: RefLog::AndReference,
        }
    } else {
        Change::Update {
            log,
            expected: expected(cmd.old),
            new: Target::Object(cmd.new),
        }
    };
    Ok(RefEdit {
        change,
        name,
        deref: false,
    })
}

/// Moves refs by compare-and-swap: one transaction per ref, or one for all with `atomic`.
pub(super) fn update_refs(
    repo: &gix::Repository,
    commands: &[Command],
    noop: &[bool],
    errors: &mut [Option<String>],
    atomic: bool,
) {
    let reason = |e: &dyn std::error::Error| {
        let text = crate::error_chain(e);
        let lower = text.to_lowercase();
        if lower.contains("lock") {
            "failed to lock (another push is updating this ref; fetch first)".to_owned()
        } else if lower.contains("expected reference content")
            || lower.contains("expected the reference not to exist")
            || lower.contains("must exist")
        {
            "stale info: the ref changed since you fetched (fetch first)".to_owned()
        } else {
            other_failure(&text)
        }
    };
    if atomic {
        if errors.iter().any(Option::is_some) {
            return;
        }
        let edits: Result<Vec<RefEdit>, String> = commands
            .iter()
            .zip(noop)
            .filter(|(_, noop)| !**noop)
            .map(|(c, _)| edit_for(c))
            .collect();
        let result = edits.and_then(|edits| {
            let names: Vec<String> = edits.iter().map(|e| e.name.as_bstr().to_string()).collect();
            let _refs = crate::lock::ref_transaction(repo.path(), names.iter().map(String::as_str))
                .map_err(|e| other_failure(&e.to_string()))?;
            // More than one ref: journaled, so a crash half-way is undone (`ref_journal`).
            let journal: Vec<(ObjectId, ObjectId, String)> = commands
                .iter()
                .zip(noop)
                .filter(|(_, noop)| !**noop)
                .map(|(c, _)| (c.old, c.new, c.name.clone()))
                .collect();
            let journaled = journal.len() > 1;
            if journaled {
                crate::ref_journal::write(repo.path(), &journal)
                    .map_err(|e| other_failure(&format!("could not write the ref journal: {e}")))?;
            }
            let applied = repo
                .edit_references_as(edits, None)
                .map(|_| ())
                .map_err(|e| reason(&*Box::<dyn std::error::Error + Send + Sync>::from(e)));
            if journaled {
                crate::ref_journal::clear(repo.path());
            }
            applied
        });
        if let Err(r) = result {
            errors.iter_mut().for_each(|e| *e = Some(r.clone()));
        }
        return;
    }
    for ((cmd, err), noop) in commands.iter().zip(errors.iter_mut()).zip(noop) {
        if err.is_some() || *noop {
            continue;
        }
        let result = edit_for(cmd).and_then(|edit| {
            let _refs = crate::lock::ref_transaction(repo.path(), [cmd.name.as_str()])
                .map_err(|e| other_failure(&e.to_string()))?;
            let applied = repo
                .edit_references_as(Some(edit), None)
                .map_err(|e| reason(&*Box::<dyn std::error::Error + Send + Sync>::from(e)))?;
            // gix lets a create pass when the ref already holds the same value (a concurrent
            // push created it first); C git refuses that create, and so do we.
            let existed = cmd.old.is_null()
                && applied.iter().any(|e| {
                    matches!(
                        e.change,
                        gix::refs::transaction::Change::Update {
                            expected: gix::refs::transaction::PreviousValue::MustExistAndMatch(_),
                            ..
                        }
                    )
                });
            if existed {
                return Err("reference already exists (fetch first)".to_owned());
            }
            Ok(())
        });
        if let Err(r) = result {
            *err = Some(r);
        }
    }
}
