//! The entries of a small pack (most fetches), made on the calling thread.
//!
//! What gix's `iter_from_counts` does for `PackCopyAndBaseObjects`, without its thread pool
//! (each use asks the OS for the number of CPUs three times: cgroup files read on every fetch)
//! and without compressing an object twice: an object stored as a delta against something not
//! in the pack is decoded once and sent either as a new delta against the client's version at
//! the same path (thin packs) or compressed whole, where gix would compress it whole first and
//! the thin-pack pass would then replace it.

use std::cmp::Ordering;
use std::ops::Range;

use gix::ObjectId;
use gix_pack::data::output;
use gix_pack::data::output::count::PackLocation;

use super::Thin;

/// Loose objects first, then by pack and offset (as gix orders them, so a stored delta's base
/// in the same pack can be found among the counts by offset).
fn by_location(a: &output::Count, b: &output::Count) -> Ordering {
    match (&a.entry_pack_location, &b.entry_pack_location) {
        (PackLocation::LookedUp(Some(a)), PackLocation::LookedUp(Some(b))) => a
            .pack_id
            .cmp(&b.pack_id)
            .then(a.pack_offset.cmp(&b.pack_offset)),
        (PackLocation::LookedUp(Some(_)), _) => Ordering::Greater,
        (_, PackLocation::LookedUp(Some(_))) => Ordering::Less,
        _ => Ordering::Equal,
    }
}

/// The entries of a pack of `ids`, in the order they are written.
pub(super) fn entries(
    repo: &gix::Repository,
    ids: Vec<ObjectId>,
    thin: Option<Thin<'_>>,
) -> Result<Vec<output::Entry>, gix_error::Error> {
    let mut db = repo.objects.clone().into_inner();
    db.prevent_pack_unload();
    let mut buf = Vec::new();
    let mut counts = Vec::with_capacity(ids.len());
    for id in ids {
        let location = gix_pack::Find::location_by_oid(&db, &id, &mut buf)?;
        counts.push(output::Count {
            id,
            entry_pack_location: PackLocation::LookedUp(location),
        });
    }
    counts.sort_by(by_location);
    // The range of counts in each pack.
    let mut packs: Vec<(u32, Range<usize>)> = Vec::new();
    for (i, count) in counts.iter().enumerate() {
        let Some(location) = count.entry_pack_location.as_ref() else {
            continue;
        };
        match packs.last_mut() {
            Some((pack, range)) if *pack == location.pack_id => range.end = i + 1,
            _ => packs.push((location.pack_id, i..i + 1)),
        }
    }
    let mut out = Vec::with_capacity(counts.len());
    for count in &counts {
        let copied = count.entry_pack_location.as_ref().and_then(|location| {
            let stored = gix_pack::Find::entry_by_location(&db, location)?;
            let (_, range) = packs.iter().find(|(p, _)| *p == location.pack_id)?;
            output::Entry::from_pack_entry(
                stored,
                count,
                &counts[range.clone()],
                range.start,
                None::<fn(u32, u64) -> gix_error::Result<Option<ObjectId>>>,
                gix_pack::data::Version::V2,
            )
        });
        let entry = match copied {
            Some(entry) => {
                let mut entry = entry?;
                if let Some(thin) = thin {
                    super::thin_fix(repo, thin, &mut entry, &mut buf)?;
                }
                entry
            }
            None => fresh(
                repo,
                count,
                thin.and_then(|t| t.path_base(&count.id)),
                &mut buf,
            )?,
        };
        out.push(entry);
    }
    Ok(out)
}

/// An object that cannot be copied as stored, decoded once: a delta against `path_base` where
/// that is less than half its size, else whole.
fn fresh(
    repo: &gix::Repository,
    count: &output::Count,
    path_base: Option<ObjectId>,
    buf: &mut Vec<u8>,
) -> Result<output::Entry, gix_error::Error> {
    let id = count.id;
    let target = super::read_for_pack(repo, id, buf)?;
    if let Some(base) = path_base {
        if let Some(delta) = super::delta_of(repo, id, &target, base)? {
            return Ok(delta);
        }
    }
    super::whole_of(id, &target)
}
