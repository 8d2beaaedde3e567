//! Sending the pack of an upload-pack answer: object selection, then the pack on side-band 1
//! (or raw), through the [pack cache](crate::pack_cache) when one is configured.

use std::io::{self, Read, Write};
use std::sync::atomic::AtomicBool;

use gix::ObjectId;

use super::{Error, Failure, Options, Request};
use crate::pack_cache::{Key, Lookup};
use crate::pkt::SideBand;
use crate::refs::Snapshot;

/// The cache key of a pack answer: everything that decides its bytes.
fn cache_key(
    repo: &gix::Repository,
    snapshot: &Snapshot,
    req: &Request,
    common: &[ObjectId],
) -> Key {
    let mut refs = Vec::new();
    for r in &snapshot.refs {
        refs.extend_from_slice(r.name.as_bytes());
        refs.push(0);
        refs.extend_from_slice(r.target.as_bytes());
    }
    let ids = |list: &[ObjectId]| {
        let mut v: Vec<ObjectId> = list.to_vec();
        v.sort_unstable();
        v.dedup();
        v.iter()
            .flat_map(|id| id.as_bytes().to_vec())
            .collect::<Vec<u8>>()
    };
    let shallow = format!(
        "{:?} {:?} {:?}",
        req.shallow.deepen, req.shallow.relative, req.filter
    );
    let caps: String = ["thin-pack", "include-tag", "ofs-delta"]
        .iter()
        .map(|c| if req.has(c) { '1' } else { '0' })
        .collect();
    Key::of(&[
        repo.path().as_os_str().as_encoded_bytes(),
        &refs,
        &ids(&req.wants),
        &ids(common),
        &ids(&req.shallow.client_shallows),
        shallow.as_bytes(),
        caps.as_bytes(),
    ])
}

/// Copies the rest of `file` (a finished cache entry, a stored pack) to `out`, in reads that
/// each fit one side-band packet.
pub(super) fn copy_file(
    mut file: std::fs::File,
    out: &mut (impl Write + ?Sized),
) -> io::Result<()> {
    let mut buf = vec![0u8; crate::pkt::MAX_BAND_DATA];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])?;
    }
}

/// Writes to the client and to the cache entry being generated.
struct Tee<'a, A: Write + ?Sized, B: Write> {
    client: &'a mut A,
    cache: &'a mut B,
}

impl<A: Write + ?Sized, B: Write> Write for Tee<'_, A, B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.client.write_all(buf)?;
        self.cache.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.client.flush()?;
        self.cache.flush()
    }
}

/// Runs `f` on the pack's channel: side-band 1, or the raw stream.
fn on_data<W: Write, T>(out: &mut W, sideband: bool, f: impl FnOnce(&mut dyn Write) -> T) -> T {
    if sideband {
        let mut sb = SideBand::new(out);
        f(&mut sb)
    } else {
        f(out)
    }
}

/// Selects the objects of `commits` (and `named`) the client lacks and writes them as a pack.
#[allow(clippy::too_many_arguments)]
pub(super) fn send_pack<W: Write>(
    repo: &gix::Repository,
    snapshot: &Snapshot,
    req: &Request,
    commits: Vec<ObjectId>,
    named: &[ObjectId],
    common: &[ObjectId],
    out: &mut W,
    sideband: bool,
    interrupt: &AtomicBool,
    options: &Options,
) -> Result<usize, Failure> {
    let progress = sideband && !req.has("no-progress");
    let in_pack = |e: Error| Failure::InPack(e, sideband);
    let io_err = |e: io::Error| Failure::InPack(Error::from(crate::pack::Error::Io(e)), sideband);
    let lookup = options
        .pack_cache
        .as_ref()
        .map(|cache| cache.get(cache_key(repo, snapshot, req, common)));
    let mut generator = match lookup {
        Some(Lookup::Hit { file, objects }) => {
            on_data(out, sideband, |sink| copy_file(file, sink)).map_err(io_err)?;
            return Ok(objects);
        }
        Some(Lookup::Follow(follower)) => {
            return on_data(out, sideband, |sink| follower.copy_to(sink)).map_err(io_err)
        }
        Some(Lookup::Generate(g)) => Some(g),
        None => None,
    };
    let tag_refs: Vec<(ObjectId, ObjectId)> = snapshot
        .refs
        .iter()
        .filter(|r| r.name.starts_with("refs/tags/"))
        .filter_map(|r| r.peeled.map(|p| (r.target, p)))
        .collect();
    let selection = crate::pack::objects_for(
        repo,
        commits,
        named,
        common,
        &tag_refs,
        req.has("include-tag"),
        req.filter,
        interrupt,
    )
    .map_err(|e| in_pack(e.into()))?;
    let count = selection.ids.len();
    let thin = (req.has("thin-pack") && !common.is_empty()).then_some(crate::pack::Thin {
        known: &selection.known,
        delta_bases: &selection.delta_bases,
    });
    if progress {
        SideBand::new(&mut *out)
            .progress(&format!("Enumerating objects: {count}, done.\n"))
            .map_err(io_err)?;
    }
    let written = on_data(out, sideband, |sink| match generator.as_mut() {
        Some(g) => {
            let mut tee = Tee {
                client: sink,
                cache: g,
            };
            crate::pack::write(
                repo,
                selection.ids,
                thin,
                &mut tee,
                interrupt,
                options.thread_limit,
            )
        }
        None => crate::pack::write(
            repo,
            selection.ids,
            thin,
            sink,
            interrupt,
            options.thread_limit,
        ),
    });
    written.map_err(|e| in_pack(e.into()))?;
    if let Some(g) = generator {
        // The client has its pack; a cache that could not keep it only costs a later request.
        let _ = g.finish(count);
    }
    if progress {
        SideBand::new(&mut *out)
            .progress(&format!(
                "Total {count} (reused from packs where possible)\n"
            ))
            .map_err(io_err)?;
    }
    Ok(count)
}

/// Streams a stored pack ([`super::reuse`]) as the answer.
pub(super) fn send_stored<W: Write>(
    req: &Request,
    pack: super::reuse::Reusable,
    out: &mut W,
    sideband: bool,
) -> Result<usize, Failure> {
    let io_err = |e: io::Error| Failure::InPack(Error::from(crate::pack::Error::Io(e)), sideband);
    if sideband && !req.has("no-progress") {
        let message = if pack.is_blobless() {
            format!(
                "Reusing a stored pack without its blobs: {} of its {} objects\n",
                pack.objects, pack.stored
            )
        } else {
            format!("Reusing a stored pack of {} objects\n", pack.objects)
        };
        SideBand::new(&mut *out)
            .progress(&message)
            .map_err(io_err)?;
    }
    on_data(out, sideband, |sink| super::reuse::stream(pack, sink)).map_err(io_err)
}
