//! The conflicts of a tree merge as a caller sees them: one entry per conflicted path, with a kind.
//!
//! The set of paths is git's: the merged tree is turned into an index, gix applies the conflict
//! stages to it as git's `ort` would leave them, and every path with a stage other than 0 is
//! conflicted (what `git merge-tree --write-tree --name-only` prints). The kind comes from gix's
//! resolution record of the conflict that touched the path.

use std::collections::{BTreeSet, HashMap};

use gix::bstr::{BString, ByteSlice};
use gix::merge::tree::{ResolutionFailure, TreatAsUnresolved};
use gix::object::tree::EntryKind;
use gix::ObjectId;

use super::Error;

/// What kind of conflict a path has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConflictKind {
    /// Both sides changed the same lines.
    Content,
    /// Both sides added the path with different content.
    AddAdd,
    /// One side modified the path, the other deleted it.
    ModifyDelete,
    /// One side renamed the path, the other deleted it.
    RenameDelete,
    /// Both sides renamed the path, differently (or two paths to one).
    RenameRename,
    /// One side has a directory where the other has a file.
    DirectoryFile,
    /// The sides disagree on the type or mode of the path.
    Mode,
    /// Both sides changed a binary file.
    Binary,
    /// Both sides moved a submodule differently.
    Submodule,
}

impl ConflictKind {
    /// The wire name (`content`, `add/add`, `modify/delete`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::Content => "content",
            ConflictKind::AddAdd => "add/add",
            ConflictKind::ModifyDelete => "modify/delete",
            ConflictKind::RenameDelete => "rename/delete",
            ConflictKind::RenameRename => "rename/rename",
            ConflictKind::DirectoryFile => "directory/file",
            ConflictKind::Mode => "mode",
            ConflictKind::Binary => "binary",
            ConflictKind::Submodule => "submodule",
        }
    }
}

/// One conflicted path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Conflict {
    /// The repository-relative path.
    pub path: String,
    /// What kind of conflict it is.
    pub kind: ConflictKind,
}

/// The conflicted paths of a merge whose (partially merged) tree is `tree`, sorted by path.
pub(super) fn list(
    repo: &gix::Repository,
    tree: ObjectId,
    conflicts: &[gix::merge::tree::Conflict],
    how: TreatAsUnresolved,
) -> Result<Vec<Conflict>, Error> {
    let mut index = gix::index::State::from_tree(&tree, &repo.objects, Default::default())
        .map_err(|e| Error::git("could not list the conflicted paths", e))?;
    gix::merge::tree::apply_index_entries(
        conflicts,
        how,
        &mut index,
        gix::merge::tree::apply_index_entries::RemovalMode::Mark,
    );
    let mut paths: BTreeSet<BString> = index
        .entries()
        .iter()
        .filter(|e| e.stage_raw() != 0)
        .map(|e| e.path(&index).to_owned())
        .collect();
    let mut kinds: HashMap<BString, ConflictKind> = HashMap::new();
    for c in conflicts.iter().filter(|c| c.is_unresolved(how)) {
        let kind = classify(repo, c);
        let (ours, theirs) = c.changes_in_resolution();
        for change in [ours, theirs] {
            kinds.entry(change.location().to_owned()).or_insert(kind);
            if let gix::diff::tree_with_rewrites::Change::Rewrite {
                source_location, ..
            } = change
            {
                kinds.entry(source_location.clone()).or_insert(kind);
            }
        }
    }
    if paths.is_empty() {
        // Every unresolved conflict leaves stages; should one not, still report it.
        paths.extend(kinds.keys().cloned());
    }
    Ok(paths
        .into_iter()
        .map(|p| Conflict {
            kind: kinds.get(&p).copied().unwrap_or(ConflictKind::Content),
            path: p.to_str_lossy().into_owned(),
        })
        .collect())
}

fn classify(repo: &gix::Repository, c: &gix::merge::tree::Conflict) -> ConflictKind {
    use gix::diff::tree_with_rewrites::Change;
    use ResolutionFailure as F;
    let (ours, theirs) = c.changes_in_resolution();
    let submodule = |ch: &Change| ch.entry_mode().kind() == EntryKind::Commit;
    match &c.resolution {
        Err(F::OursModifiedTheirsDeleted) => ConflictKind::ModifyDelete,
        Err(F::OursDeletedTheirsRenamed) => ConflictKind::RenameDelete,
        Err(
            F::OursRenamedTheirsRenamedDifferently { .. }
            | F::OursRenamedTheirsRenamedToSameLocation,
        ) => ConflictKind::RenameRename,
        Err(
            F::OursModifiedTheirsDirectoryThenOursRenamed { .. }
            | F::OursDirectoryTheirsNonDirectoryTheirsRenamed { .. },
        ) => ConflictKind::DirectoryFile,
        Err(
            F::OursAddedTheirsAddedTypeMismatch { .. } | F::OursModifiedTheirsRenamedTypeMismatch,
        ) => ConflictKind::Mode,
        Err(F::SubmoduleMerge | F::SubmoduleAddAdd) => ConflictKind::Submodule,
        Err(F::Unknown) => ConflictKind::Content,
        Ok(_) => {
            if submodule(ours) || submodule(theirs) {
                ConflictKind::Submodule
            } else if matches!(ours, Change::Addition { .. })
                && matches!(theirs, Change::Addition { .. })
            {
                ConflictKind::AddAdd
            } else if matches!(ours, Change::Rewrite { .. })
                && matches!(theirs, Change::Rewrite { .. })
            {
                ConflictKind::RenameRename
            } else if is_binary(repo, ours) || is_binary(repo, theirs) {
                ConflictKind::Binary
            } else if ours.entry_mode().kind() != theirs.entry_mode().kind()
                && c.content_merge().is_none()
            {
                ConflictKind::Mode
            } else {
                ConflictKind::Content
            }
        }
    }
}

/// git's test: a NUL byte in the first 8,000 bytes.
fn is_binary(repo: &gix::Repository, change: &gix::diff::tree_with_rewrites::Change) -> bool {
    let (mode, id) = change.entry_mode_and_id();
    if !mode.is_blob() {
        return false;
    }
    repo.find_object(id)
        .map(|o| o.data.iter().take(8000).any(|b| *b == 0))
        .unwrap_or(false)
}
