//! Choosing the objects a client needs and streaming them as a pack.
//!
//! Objects: every commit reachable from the wants and not from the common commits, with their
//! trees and blobs, minus the trees and blobs of the common commits' root trees (what the client
//! provably has). Sending an object the client already has is harmless; missing one is not, so
//! every shortcut here errs on the side of sending more.
//!
//! Packing reuses the deltas stored in the repository's packs whose base is also sent. For a
//! client that asked for a thin pack, stored deltas against objects it provably has are kept as
//! ref-deltas, and trees and blobs that would go out whole are deltified against the client's
//! version at the same path ([`crate::delta`]). Anything else goes out whole: there is no
//! general delta search.

use std::collections::HashMap;

/// Object-id sets and maps hashed by the id's own bytes (much cheaper than SipHash).
type IdSet = gix::hashtable::HashSet<ObjectId>;
type IdMap = gix::hashtable::HashMap<ObjectId, ObjectId>;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use gix::objs::Kind;
use gix::ObjectId;
use gix_pack::data::output;

mod small;

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
    /// Objects the client will have once it received the pack: what it provably had (the
    /// common commits and their trees) plus what is sent. Thin-pack deltas may use these as
    /// bases, and only these.
    pub known: IdSet,
    /// For trees and blobs sent whole: the client's version at the same path, a good delta
    /// base for a thin pack.
    pub delta_bases: IdMap,
}

/// Limits and bases for thin packs.
#[derive(Debug, Clone, Copy)]
pub struct Thin<'a> {
    /// Objects the client has (or gets in this pack): the only allowed out-of-pack bases.
    pub known: &'a IdSet,
    /// Candidate bases for objects that would otherwise go out whole.
    pub delta_bases: &'a IdMap,
}

impl Thin<'_> {
    /// The client's object at the same path as `id`, to send `id` as a delta of.
    fn path_base(&self, id: &ObjectId) -> Option<ObjectId> {
        self.delta_bases
            .get(id)
            .filter(|b| self.known.contains(*b))
            .copied()
    }
}

/// A `filter` of partial clone: which trees and blobs to leave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    /// Send everything.
    #[default]
    None,
    /// `blob:none`.
    BlobNone,
    /// `blob:limit=<n>`: blobs of at least `n` bytes are left out.
    BlobLimit(u64),
    /// `tree:<depth>`: trees and blobs at depth `depth` or deeper below the root are left out.
    TreeDepth(u64),
}

impl Filter {
    /// Parses a filter spec as git sends it.
    pub fn parse(spec: &str) -> Result<Self, String> {
        if spec == "blob:none" {
            return Ok(Filter::BlobNone);
        }
        if let Some(n) = spec.strip_prefix("blob:limit=") {
            return parse_size(n)
                .map(Filter::BlobLimit)
                .ok_or_else(|| format!("invalid filter {spec:?}"));
        }
        if let Some(n) = spec.strip_prefix("tree:") {
            return n
                .parse()
                .map(Filter::TreeDepth)
                .map_err(|_| format!("invalid filter {spec:?}"));
        }
        Err(format!(
            "unsupported filter {spec:?} (blob:none, blob:limit=<n> and tree:<depth> are)"
        ))
    }
}

fn parse_size(s: &str) -> Option<u64> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let mul = match unit.to_ascii_lowercase().as_str() {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mul)
}

/// Every commit reachable from `tips` and not from `hidden`, newest first.
pub fn walk_commits(
    repo: &gix::Repository,
    tips: &[ObjectId],
    hidden: &[ObjectId],
    interrupt: &AtomicBool,
) -> Result<Vec<ObjectId>, Error> {
    if tips.is_empty() {
        return Ok(Vec::new());
    }
    let hidden: Vec<ObjectId> = hidden
        .iter()
        .copied()
        .filter(|c| repo.find_commit(*c).is_ok())
        .collect();
    let walk = repo
        .rev_walk(tips.iter().copied())
        .with_hidden(hidden)
        .all()
        .map_err(|e| Error::Walk(e.into()))?;
    let mut out = Vec::new();
    for info in walk {
        if interrupt.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        out.push(info.map_err(|e| Error::Walk(e.into()))?.id);
    }
    Ok(out)
}

/// Peels `wants` into commits (returned) and the other objects the client asked for by name
/// (tag objects, trees, blobs: pushed onto `named`).
pub fn split_wants(
    repo: &gix::Repository,
    wants: &[ObjectId],
    named: &mut Vec<ObjectId>,
) -> Result<Vec<ObjectId>, Error> {
    let obj_err = |id: ObjectId| move |e: BoxError| Error::Object { id, source: e };
    let mut commits = Vec::new();
    for want in wants {
        let mut id = *want;
        loop {
            let header = repo.find_header(id).map_err(|e| obj_err(id)(e.into()))?;
            match header.kind() {
                Kind::Tag => {
                    named.push(id);
                    let tag = repo.find_tag(id).map_err(|e| obj_err(id)(e.into()))?;
                    id = tag.target_id().map_err(|e| obj_err(id)(e.into()))?.detach();
                }
                Kind::Commit => {
                    commits.push(id);
                    break;
                }
                Kind::Tree | Kind::Blob => {
                    named.push(id);
                    break;
                }
            }
        }
    }
    Ok(commits)
}

/// Chooses the objects for a client: `commits` (already selected), their trees and blobs as
/// `filter` allows, the objects it `named` (always sent, whatever the filter), minus what the
/// client provably has. With `include_tags`, annotated tags from `tag_refs` (tag object, peeled
/// target) whose target is sent go too.
///
/// What the client has is read sparsely, like git's sparse reachability walk: each sent tree
/// is compared with the client's tree at the same path (in its most recent common commit), an
/// identical subtree is skipped without being read, and only the directories that changed are
/// listed. So an incremental fetch costs what changed, not the size of the tree.
#[allow(clippy::too_many_arguments)]
pub fn objects_for(
    repo: &gix::Repository,
    commits: Vec<ObjectId>,
    named: &[ObjectId],
    common: &[ObjectId],
    tag_refs: &[(ObjectId, ObjectId)],
    include_tags: bool,
    filter: Filter,
    interrupt: &AtomicBool,
) -> Result<Selection, Error> {
    let obj_err = |id: ObjectId| move |e: BoxError| Error::Object { id, source: e };
    let mut walk = Walk {
        repo,
        filter,
        interrupt,
        seen: common.iter().copied().collect(),
        known: common.iter().copied().collect(),
        delta_bases: IdMap::default(),
        found: Vec::new(),
    };
    // The client's root tree at its most recent common commit: the baseline for every path.
    let baseline = newest_common(repo, common)
        .and_then(|c| c.tree_id().ok())
        .map(|t| t.detach());
    if let Some(t) = baseline {
        walk.seen.insert(t);
        walk.known.insert(t);
    }
    let mut sel = Selection::default();
    let mut extra = Vec::new();
    for id in named {
        if walk.seen.insert(*id) {
            extra.push(*id);
        }
    }
    let sent_commits: IdSet = commits.iter().copied().collect();
    for id in commits {
        if interrupt.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        sel.ids.push(id);
        sel.commits += 1;
        let commit = repo.find_commit(id).map_err(|e| obj_err(id)(e.into()))?;
        let tree = commit
            .tree_id()
            .map_err(|e| obj_err(id)(e.into()))?
            .detach();
        walk.tree(tree, baseline)?;
    }
    if include_tags {
        for (tag, peeled) in tag_refs {
            if sent_commits.contains(peeled) && walk.seen.insert(*tag) {
                extra.push(*tag);
            }
        }
    }
    sel.ids.append(&mut walk.found);
    sel.ids.extend(extra);
    walk.known.extend(sel.ids.iter().copied());
    sel.known = walk.known;
    sel.delta_bases = walk.delta_bases;
    Ok(sel)
}

/// The client's most recent common commit: among the (first 256) common commits, those that
/// are not a parent of another, the newest by commit time (ties: the client's order).
fn newest_common<'r>(repo: &'r gix::Repository, common: &[ObjectId]) -> Option<gix::Commit<'r>> {
    let commits: Vec<gix::Commit<'r>> = common
        .iter()
        .take(256)
        .filter_map(|c| repo.find_commit(*c).ok())
        .collect();
    let parents: IdSet = commits
        .iter()
        .flat_map(|c| c.parent_ids().map(|p| p.detach()))
        .collect();
    commits
        .into_iter()
        .enumerate()
        .filter(|(_, c)| !parents.contains(&c.id))
        .max_by_key(|(i, c)| {
            (
                c.time().map(|t| t.seconds).unwrap_or(0),
                std::cmp::Reverse(*i),
            )
        })
        .map(|(_, c)| c)
}

/// The state of one object selection.
struct Walk<'a> {
    repo: &'a gix::Repository,
    filter: Filter,
    interrupt: &'a AtomicBool,
    /// Objects not to send again: sent already, or the client has them.
    seen: IdSet,
    /// Objects the client has: allowed thin-pack bases.
    known: IdSet,
    /// New object → the client's version at the same path.
    delta_bases: IdMap,
    /// Trees and blobs to send, in walk order.
    found: Vec<ObjectId>,
}

impl Walk<'_> {
    fn tree_allowed(&self, depth: u64) -> bool {
        !matches!(self.filter, Filter::TreeDepth(max) if depth >= max)
    }

    /// Adds `tree` and what is new below it, comparing with the client's `old` tree at the
    /// same path.
    fn tree(&mut self, tree: ObjectId, old: Option<ObjectId>) -> Result<(), Error> {
        if !self.tree_allowed(0) || self.seen.contains(&tree) {
            return Ok(());
        }
        self.take(tree, old);
        let mut stack = vec![(tree, old, 0u64)];
        while let Some((id, old, depth)) = stack.pop() {
            if self.interrupt.load(Ordering::Relaxed) {
                return Err(Error::Interrupted);
            }
            // The client's entries in this directory: skipped when identical, bases otherwise.
            let mut old_entries: HashMap<Vec<u8>, (ObjectId, bool)> = HashMap::new();
            if let Some(old) = old {
                let t = self.repo.find_tree(old).map_err(|e| Error::Object {
                    id: old,
                    source: e.into(),
                })?;
                for entry in t.iter() {
                    let entry = entry.map_err(|e| Error::Object {
                        id: old,
                        source: e.into(),
                    })?;
                    let mode = entry.mode();
                    if mode.is_commit() {
                        continue;
                    }
                    let oid = entry.object_id();
                    self.seen.insert(oid);
                    // Under a filter, only trees are sure to be on the client.
                    if mode.is_tree() || self.filter == Filter::None {
                        self.known.insert(oid);
                    }
                    old_entries.insert(entry.filename().to_vec(), (oid, mode.is_tree()));
                }
            }
            let t = self.repo.find_tree(id).map_err(|e| Error::Object {
                id,
                source: e.into(),
            })?;
            let child_depth = depth + 1;
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
                if self.seen.contains(&oid) || !self.tree_allowed(child_depth) {
                    continue;
                }
                let old = old_entries.get(entry.filename()).copied();
                if mode.is_tree() {
                    let old_tree = old.filter(|(_, is_tree)| *is_tree).map(|(o, _)| o);
                    self.take(oid, old_tree);
                    stack.push((oid, old_tree, child_depth));
                    continue;
                }
                let keep = match self.filter {
                    Filter::BlobNone => false,
                    Filter::BlobLimit(limit) => self
                        .repo
                        .find_header(oid)
                        .map(|h| h.size() < limit)
                        .map_err(|e| Error::Object {
                            id: oid,
                            source: e.into(),
                        })?,
                    Filter::None | Filter::TreeDepth(_) => true,
                };
                if keep {
                    let old_blob = old
                        .filter(|(o, is_tree)| !*is_tree && self.known.contains(o))
                        .map(|(o, _)| o);
                    self.take(oid, old_blob);
                }
            }
        }
        Ok(())
    }

    fn take(&mut self, id: ObjectId, base: Option<ObjectId>) {
        self.seen.insert(id);
        self.found.push(id);
        if let Some(base) = base.filter(|b| *b != id) {
            self.delta_bases.insert(id, base);
        }
    }
}

/// Writes a pack of `ids` to `out`, reusing stored deltas whose base is also in the pack.
///
/// With `thin_bases` (a client that asked for `thin-pack`), stored deltas against objects in
/// that set are sent as ref-deltas without their base; a delta against anything else goes out
/// as a whole object, so the client can always resolve the pack.
///
/// Stops with [`Error::Interrupted`] when `interrupt` is set, and with [`Error::Io`] as soon as
/// `out` fails (the client went away).
pub fn write(
    repo: &gix::Repository,
    ids: Vec<ObjectId>,
    thin: Option<Thin<'_>>,
    out: impl Write,
    interrupt: &AtomicBool,
    thread_limit: Option<usize>,
) -> Result<ObjectId, Error> {
    let num = u32::try_from(ids.len()).map_err(|e| Error::Generate(e.into()))?;
    // Small packs (most fetches) are made on the calling thread, without gix's thread pool.
    let chunks: Box<dyn Iterator<Item = Result<Vec<output::Entry>, gix_error::Error>> + '_> =
        if ids.len() < SMALL_PACK_OBJECTS {
            Box::new(std::iter::once(small::entries(repo, ids, thin)))
        } else {
            Box::new(pooled_entries(repo, ids, thin, thread_limit)?)
        };
    let mut writer = output::bytes::FromEntriesIter::new(
        chunks,
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

/// The entries of a pack of `ids` from gix's parallel generator (stored deltas reused where
/// their base is in the pack, other objects compressed anew), with thin-pack deltas applied.
fn pooled_entries<'a>(
    repo: &'a gix::Repository,
    ids: Vec<ObjectId>,
    thin: Option<Thin<'a>>,
    thread_limit: Option<usize>,
) -> Result<impl Iterator<Item = Result<Vec<output::Entry>, gix_error::Error>> + 'a, Error> {
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
            // gix's own thin-pack support sorts every (offset, id) of a source pack per request
            // (most of the CPU of a small fetch on a large repository); our path deltas below
            // cover the thin case without it.
            allow_thin_pack: false,
            chunk_size: 50,
            version: gix_pack::data::Version::V2,
            compression: Default::default(),
        },
    )
    .map_err(|e| Error::Generate(e.into()))?;
    let in_order = gix::parallel::InOrderIter::from(entries);
    let mut buf = Vec::new();
    Ok(in_order.map(move |chunk| {
        let mut chunk = chunk?;
        if let Some(thin) = thin {
            for entry in chunk.iter_mut() {
                thin_fix(repo, thin, entry, &mut buf)?;
            }
        }
        Ok(chunk)
    }))
}

/// For a thin pack: a stored delta against an object the client does not have, or a whole tree
/// or blob, becomes a new delta against the client's version at the same path where that is
/// smaller; the delta without a usable base, else, goes out whole.
fn thin_fix(
    repo: &gix::Repository,
    thin: Thin<'_>,
    entry: &mut output::Entry,
    buf: &mut Vec<u8>,
) -> Result<(), gix_error::Error> {
    let unusable_base =
        matches!(entry.kind, output::entry::Kind::DeltaOid { id } if !thin.known.contains(&id));
    let whole_tree_or_blob = matches!(
        entry.kind,
        output::entry::Kind::Base(gix::objs::Kind::Blob | gix::objs::Kind::Tree)
    );
    if !(unusable_base || whole_tree_or_blob) {
        return Ok(());
    }
    if let Some(base) = thin.path_base(&entry.id) {
        if let Some(delta) = delta_entry(repo, entry.id, base, entry.decompressed_size)? {
            *entry = delta;
            return Ok(());
        }
    }
    if unusable_base {
        *entry = whole_entry(repo, entry.id, buf)?;
    }
    Ok(())
}

/// Below this many objects a pack is generated on the calling thread.
const SMALL_PACK_OBJECTS: usize = 2_000;

/// Largest object we compute a new delta for.
const MAX_DELTA_TARGET: usize = 1 << 20;

/// `id` (of `size` bytes) as a ref-delta against `base`, if that is less than half its size.
fn delta_entry(
    repo: &gix::Repository,
    id: ObjectId,
    base: ObjectId,
    size: usize,
) -> Result<Option<output::Entry>, gix_error::Error> {
    use gix::objs::Find as _;
    if !(64..=MAX_DELTA_TARGET).contains(&size) {
        return Ok(None);
    }
    let mut buf = Vec::new();
    let Some(target) = repo
        .objects
        .try_find(&id, &mut buf)
        .map_err(|e| io_error(e.to_string()))?
    else {
        return Ok(None);
    };
    delta_of(repo, id, &target, base)
}

/// `id`, decoded as `target`, as a ref-delta against `base` if that is less than half its size
/// (both of one kind, neither over [`MAX_DELTA_TARGET`]).
fn delta_of(
    repo: &gix::Repository,
    id: ObjectId,
    target: &gix::objs::Data<'_>,
    base: ObjectId,
) -> Result<Option<output::Entry>, gix_error::Error> {
    use gix::objs::Find as _;
    if !(64..=MAX_DELTA_TARGET).contains(&target.data.len()) {
        return Ok(None);
    }
    let mut buf = Vec::new();
    let Some(source) = repo
        .objects
        .try_find(&base, &mut buf)
        .map_err(|e| io_error(e.to_string()))?
    else {
        return Ok(None);
    };
    if source.kind != target.kind || source.data.len() > MAX_DELTA_TARGET {
        return Ok(None);
    }
    let Some(delta) = crate::delta::encode(source.data, target.data, target.data.len() / 2) else {
        return Ok(None);
    };
    let mut entry = whole_of(
        id,
        &gix::objs::Data::new(&delta, target.kind, gix::hash::Kind::Sha1),
    )?;
    entry.kind = output::entry::Kind::DeltaOid { id: base };
    Ok(Some(entry))
}

/// `id`, decoded as `data`, as a whole (non-delta) pack entry.
fn whole_of(id: ObjectId, data: &gix::objs::Data<'_>) -> Result<output::Entry, gix_error::Error> {
    let count = output::Count {
        id,
        entry_pack_location: output::count::PackLocation::LookedUp(None),
    };
    output::Entry::from_data(&count, data, Default::default())
}

/// Reads `id` for packing; an object that vanished is an error.
fn read_for_pack<'a>(
    repo: &gix::Repository,
    id: ObjectId,
    buf: &'a mut Vec<u8>,
) -> Result<gix::objs::Data<'a>, gix_error::Error> {
    use gix::objs::Find as _;
    repo.objects
        .try_find(&id, buf)
        .map_err(|e| io_error(format!("could not read {id}: {e}")))?
        .ok_or_else(|| io_error(format!("object {id} vanished while packing")))
}

fn io_error(message: String) -> gix_error::Error {
    gix_error::Error::from_error(std::io::Error::other(message))
}

/// `id` as a whole (non-delta) pack entry.
fn whole_entry(
    repo: &gix::Repository,
    id: ObjectId,
    buf: &mut Vec<u8>,
) -> Result<output::Entry, gix_error::Error> {
    let data = read_for_pack(repo, id, buf)?;
    whole_of(id, &data)
}
