//! Choosing the objects a client needs and streaming them as a pack.
//!
//! Objects: every commit reachable from the wants and not from the common commits, with their
//! trees and blobs, minus the trees and blobs of the common commits' root trees (what the client
//! provably has). Sending an object the client already has is harmless; missing one is not, so
//! every shortcut here errs on the side of sending more.
//!
//! Packing reuses the deltas stored in the repository's packs whose base is also sent; everything
//! else goes out whole (no thin packs yet, no delta search).

use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use gix::objs::Kind;
use gix::ObjectId;
use gix_pack::data::output;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of [`objects_for`] and [`write`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An object needed for the pack is missing or unreadable.
    #[error("could not read object {id}")]
    Object {
        /// The object.
        id: ObjectId,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The commit walk failed.
    #[error("could not walk the history")]
    Walk(#[source] BoxError),
    /// Generating or writing pack entries failed.
    #[error("could not generate the pack")]
    Generate(#[source] BoxError),
    /// The client went away or the work was interrupted.
    #[error("interrupted")]
    Interrupted,
    /// Writing to the client failed.
    #[error("could not write the pack")]
    Io(#[source] std::io::Error),
}

/// What to put in a pack.
#[derive(Debug, Default)]
pub struct Selection {
    /// Object ids, commits first in walk order, then trees, blobs and tags as found.
    pub ids: Vec<ObjectId>,
    /// The commits among them.
    pub commits: usize,
}

/// Chooses the objects for a client that wants `wants` and has `common`.
///
/// With `include_tags`, annotated tags from `tag_refs` (tag object, peeled target) whose target
/// is sent are sent too.
pub fn objects_for(
    repo: &gix::Repository,
    wants: &[ObjectId],
    common: &[ObjectId],
    tag_refs: &[(ObjectId, ObjectId)],
    include_tags: bool,
    interrupt: &AtomicBool,
) -> Result<Selection, Error> {
    let obj_err = |id: ObjectId| move |e: BoxError| Error::Object { id, source: e };
    let mut seen: HashSet<ObjectId> = HashSet::new();
    // What the client has: the trees of (up to 64 of) the common commits.
    for id in common.iter().take(64) {
        if let Ok(commit) = repo.find_commit(*id) {
            if let Ok(tree) = commit.tree_id() {
                mark_tree(repo, tree.detach(), &mut seen, &mut |_| {}, interrupt)?;
            }
        }
    }
    let mut sel = Selection::default();
    let mut commit_tips = Vec::new();
    let mut extra = Vec::new();
    for want in wants {
        let mut id = *want;
        // Peel tags, sending each tag object.
        loop {
            let header = repo.find_header(id).map_err(|e| obj_err(id)(e.into()))?;
            match header.kind() {
                Kind::Tag => {
                    if seen.insert(id) {
                        extra.push(id);
                    }
                    let tag = repo.find_tag(id).map_err(|e| obj_err(id)(e.into()))?;
                    id = tag.target_id().map_err(|e| obj_err(id)(e.into()))?.detach();
                }
                Kind::Commit => {
                    commit_tips.push(id);
                    break;
                }
                Kind::Tree => {
                    mark_tree(repo, id, &mut seen, &mut |o| extra.push(o), interrupt)?;
                    break;
                }
                Kind::Blob => {
                    if seen.insert(id) {
                        extra.push(id);
                    }
                    break;
                }
            }
        }
    }
    let mut sent_commits: HashSet<ObjectId> = HashSet::new();
    let mut trees_and_blobs = Vec::new();
    if !commit_tips.is_empty() {
        let hidden: Vec<ObjectId> = common
            .iter()
            .copied()
            .filter(|c| repo.find_commit(*c).is_ok())
            .collect();
        let walk = repo
            .rev_walk(commit_tips)
            .with_hidden(hidden)
            .all()
            .map_err(|e| Error::Walk(e.into()))?;
        for info in walk {
            if interrupt.load(Ordering::Relaxed) {
                return Err(Error::Interrupted);
            }
            let info = info.map_err(|e| Error::Walk(e.into()))?;
            let id = info.id;
            if !sent_commits.insert(id) {
                continue;
            }
            sel.ids.push(id);
            sel.commits += 1;
            let commit = repo.find_commit(id).map_err(|e| obj_err(id)(e.into()))?;
            let tree = commit
                .tree_id()
                .map_err(|e| obj_err(id)(e.into()))?
                .detach();
            mark_tree(
                repo,
                tree,
                &mut seen,
                &mut |o| trees_and_blobs.push(o),
                interrupt,
            )?;
        }
    }
    if include_tags {
        for (tag, peeled) in tag_refs {
            if sent_commits.contains(peeled) && seen.insert(*tag) {
                extra.push(*tag);
            }
        }
    }
    sel.ids.extend(trees_and_blobs);
    sel.ids.extend(extra);
    Ok(sel)
}

/// Adds `tree` and everything below it that is not in `seen` to `seen`, calling `found` for each.
fn mark_tree(
    repo: &gix::Repository,
    tree: ObjectId,
    seen: &mut HashSet<ObjectId>,
    found: &mut dyn FnMut(ObjectId),
    interrupt: &AtomicBool,
) -> Result<(), Error> {
    if !seen.insert(tree) {
        return Ok(());
    }
    found(tree);
    let mut stack = vec![tree];
    while let Some(id) = stack.pop() {
        if interrupt.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let t = repo.find_tree(id).map_err(|e| Error::Object {
            id,
            source: e.into(),
        })?;
        for entry in t.iter() {
            let entry = entry.map_err(|e| Error::Object {
                id,
                source: e.into(),
            })?;
            let mode = entry.mode();
            if mode.is_commit() {
                continue; // submodule: not in this repository
            }
            let oid = entry.object_id();
            if seen.insert(oid) {
                found(oid);
                if mode.is_tree() {
                    stack.push(oid);
                }
            }
        }
    }
    Ok(())
}

/// Writes a pack of `ids` to `out`, reusing stored deltas whose base is also in the pack.
/// Stops with [`Error::Interrupted`] when `interrupt` is set, and with [`Error::Io`] as soon as
/// `out` fails (the client went away).
pub fn write(
    repo: &gix::Repository,
    ids: Vec<ObjectId>,
    out: impl Write,
    interrupt: &AtomicBool,
    thread_limit: Option<usize>,
) -> Result<ObjectId, Error> {
    let num = u32::try_from(ids.len()).map_err(|e| Error::Generate(e.into()))?;
    let counts: Vec<output::Count> = ids
        .into_iter()
        .map(|id| output::Count {
            id,
            entry_pack_location: output::count::PackLocation::NotLookedUp,
        })
        .collect();
    let mut db = repo.objects.clone().into_inner();
    db.prevent_pack_unload();
    let entries = output::entry::iter_from_counts(
        counts,
        db,
        Box::new(gix::progress::Discard),
        output::entry::iter_from_counts::Options {
            thread_limit,
            mode: output::entry::iter_from_counts::Mode::PackCopyAndBaseObjects,
            allow_thin_pack: false,
            chunk_size: 50,
            version: gix_pack::data::Version::V2,
            compression: Default::default(),
        },
    )
    .map_err(|e| Error::Generate(e.into()))?;
    let in_order = gix::parallel::InOrderIter::from(entries);
    let mut writer = output::bytes::FromEntriesIter::new(
        in_order.map(|r| r.map_err(Into::into)),
        out,
        num,
        gix_pack::data::Version::V2,
        gix::hash::Kind::Sha1,
    );
    for step in writer.by_ref() {
        if interrupt.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        step.map_err(|e| Error::Generate(e.into()))?;
    }
    writer
        .digest()
        .ok_or_else(|| Error::Generate("pack ended without a checksum".into()))
}
