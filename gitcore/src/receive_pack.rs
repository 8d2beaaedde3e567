//! receive-pack: one push. Commands are parsed, the pack is indexed into a quarantine directory,
//! checked (checksum, object validity, connectivity, fsck-style tree rules, ref names), moved into
//! place, and then each reference moves by compare-and-swap (or all of them, with `atomic`).
//! Nothing becomes visible to readers before every check passed.

use std::collections::HashSet;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::objs::{Exists as _, Find as _, FindHeader as _};
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::{FullName, Target};
use gix::ObjectId;

use crate::pkt::{self, Line};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors that end a push before any report could be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The commands could not be read.
    #[error("receive-pack: bad request")]
    Read(#[from] pkt::ReadError),
    /// The request is not what the protocol allows.
    #[error("receive-pack: {0}")]
    Protocol(String),
    /// The repository could not be opened.
    #[error("receive-pack: could not open the repository")]
    Open(#[source] BoxError),
    /// Writing the report failed (the client went away).
    #[error("receive-pack: could not write the report")]
    Io(#[from] io::Error),
}

/// One ref update requested by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The value the client believes the ref has (zero: must not exist).
    pub old: ObjectId,
    /// The new value (zero: delete).
    pub new: ObjectId,
    /// The full ref name.
    pub name: String,
}

impl Command {
    /// Whether this deletes the ref.
    pub fn is_delete(&self) -> bool {
        self.new.is_null()
    }
}

/// The result of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefResult {
    /// The command.
    pub command: Command,
    /// `None` when the command succeeded; otherwise why not (as shown to the user).
    pub error: Option<String>,
    /// Whether a ref moved (a delete of a ref that does not exist succeeds and moves nothing).
    pub changed: bool,
}

/// Limits and policy of a push.
#[derive(Debug, Clone)]
pub struct Options {
    /// Largest accepted pack, in bytes.
    pub max_pack_bytes: u64,
    /// Largest accepted object (inflated), in bytes.
    pub max_object_bytes: usize,
    /// Most ref updates in one push.
    pub max_ref_updates: usize,
    /// When set, every update is refused with this reason (e.g. an archived repository).
    pub read_only: Option<String>,
    /// Threads for indexing; `None` for all cores.
    pub thread_limit: Option<usize>,
    /// Branch protection rules ([`crate::protection`]).
    pub protected: Vec<crate::protection::BranchRule>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_pack_bytes: 2 << 30,
            max_object_bytes: 512 << 20,
            max_ref_updates: usize::MAX,
            read_only: None,
            thread_limit: None,
            protected: Vec::new(),
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Per command results, in request order.
    pub results: Vec<RefResult>,
    /// `push-options` sent by the client.
    pub push_options: Vec<String>,
    /// Why the pack was refused, if it was.
    pub unpack_error: Option<String>,
}

impl Outcome {
    /// The commands that took effect.
    pub fn updated(&self) -> impl Iterator<Item = &Command> {
        self.results
            .iter()
            .filter(|r| r.changed)
            .map(|r| &r.command)
    }
}

struct Request {
    commands: Vec<Command>,
    caps: HashSet<String>,
    push_options: Vec<String>,
}

/// Most commands (and push options) parsed from one request, whatever the configured limit on
/// ref updates: reading stops here so memory stays bounded.
const MAX_COMMANDS: usize = 100_000;

fn parse_commands<R: Read>(reader: &mut pkt::Reader<R>) -> Result<Request, Error> {
    let mut req = Request {
        commands: Vec::new(),
        caps: HashSet::new(),
        push_options: Vec::new(),
    };
    loop {
        let line = match reader.line_or_eof()? {
            // A request always ends its commands with a flush: one that stops short was cut off
            // and must change nothing.
            None if req.commands.is_empty() => {
                return Err(Error::Protocol(
                    "empty request: expected ref update commands".into(),
                ))
            }
            None => {
                return Err(Error::Protocol(
                    "the request ended before the flush after its commands".into(),
                ))
            }
            Some(Line::Flush) => break,
            Some(Line::Data(l)) => l,
            Some(other) => {
                return Err(Error::Protocol(format!(
                    "unexpected {other:?} among commands"
                )))
            }
        };
        let (cmd, caps) = match line.iter().position(|b| *b == 0) {
            Some(i) => (&line[..i], Some(&line[i + 1..])),
            None => (&line[..], None),
        };
        if let Some(caps) = caps {
            req.caps = String::from_utf8_lossy(caps)
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if cmd.starts_with(b"shallow ") {
            return Err(Error::Protocol(
                "pushing from a shallow clone is not supported".into(),
            ));
        }
        if req.commands.len() >= MAX_COMMANDS {
            return Err(Error::Protocol(format!(
                "too many commands in one push (limit {MAX_COMMANDS})"
            )));
        }
        let text =
            std::str::from_utf8(cmd).map_err(|_| Error::Protocol("command is not UTF-8".into()))?;
        let mut parts = text.splitn(3, ' ');
        let (Some(old), Some(new), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::Protocol(format!("malformed command {text:?}")));
        };
        let oid = |h: &str| {
            ObjectId::from_hex(h.as_bytes())
                .map_err(|_| Error::Protocol(format!("invalid object id {h:?}")))
        };
        req.commands.push(Command {
            old: oid(old)?,
            new: oid(new)?,
            name: name.to_owned(),
        });
    }
    if !req.commands.is_empty() && req.caps.contains("push-options") {
        loop {
            match reader.line_or_eof()? {
                None => {
                    return Err(Error::Protocol(
                        "the request ended before the flush after its push options".into(),
                    ))
                }
                Some(Line::Flush) => break,
                Some(Line::Data(l)) if req.push_options.len() < MAX_COMMANDS => req
                    .push_options
                    .push(String::from_utf8_lossy(&l).into_owned()),
                Some(Line::Data(_)) => {
                    return Err(Error::Protocol("too many push options".into()));
                }
                Some(other) => {
                    return Err(Error::Protocol(format!(
                        "unexpected {other:?} among push options"
                    )))
                }
            }
        }
    }
    Ok(req)
}

/// The namespaces a push may write: branches, tags and notes (`git push origin refs/notes/*`).
/// `refs/pull/*` belongs to the server (pull request heads); other namespaces are refused.
pub const WRITABLE_NAMESPACES: [&str; 3] = ["refs/heads/", "refs/tags/", "refs/notes/"];

/// Checks a ref name: valid per `git check-ref-format`, and in one of [`WRITABLE_NAMESPACES`].
pub fn check_ref_name(name: &str) -> Result<(), String> {
    if name.starts_with("refs/pull/") {
        return Err(
            "refs/pull/* is read-only: the server publishes pull request heads there".into(),
        );
    }
    let Some(prefix) = WRITABLE_NAMESPACES.iter().find(|p| name.starts_with(**p)) else {
        return Err("only refs/heads/*, refs/tags/* and refs/notes/* may be pushed".into());
    };
    FullName::try_from(name).map_err(|_| "invalid ref name".to_owned())?;
    let short = &name[prefix.len()..];
    if short.is_empty() || short.starts_with('-') || name.ends_with('/') {
        return Err("invalid ref name".into());
    }
    Ok(())
}

/// Serves one push from `input` onto `out`, against the bare repository at `repo_path`.
pub fn serve(
    repo_path: &Path,
    input: impl Read,
    out: impl Write,
    interrupt: &AtomicBool,
    options: &Options,
) -> Result<Outcome, Error> {
    let mut out = io::BufWriter::new(out);
    let mut reader = pkt::Reader::new(input);
    let req = match parse_commands(&mut reader) {
        Ok(r) => r,
        Err(e) => {
            let _ = pkt::err(&mut out, &e.to_string());
            let _ = out.flush();
            return Err(e);
        }
    };
    if req.commands.is_empty() {
        return Ok(Outcome::default());
    }
    let sideband = req.caps.contains("side-band-64k");
    let quiet = req.caps.contains("quiet");
    let repo = crate::storage::open(repo_path).map_err(|e| Error::Open(e.into()))?;
    let mut outcome = Outcome {
        push_options: req.push_options.clone(),
        ..Outcome::default()
    };

    // A push refused as a whole (read-only repository, too many updates) is not indexed at all.
    let refused_outright =
        options.read_only.is_some() || req.commands.len() > options.max_ref_updates;
    let needs_pack = !refused_outright && req.commands.iter().any(|c| !c.is_delete());
    let mut input = reader.into_inner();
    let mut quarantine = None;
    if needs_pack {
        match ingest(&repo, &mut input, interrupt, options) {
            Ok(q) => quarantine = Some(q),
            Err(reason) => outcome.unpack_error = Some(reason),
        }
    }
    // Drain whatever the client still sends (a refused pack included), so it reads our report
    // instead of a broken pipe. Bounded, so a client cannot keep us reading forever.
    let drain_limit = options.max_pack_bytes.saturating_mul(4).max(1 << 30);
    let _ = io::copy(&mut input.take(drain_limit), &mut io::sink());

    let mut errors: Vec<Option<String>> = vec![None; req.commands.len()];
    if let Some(reason) = &outcome.unpack_error {
        errors
            .iter_mut()
            .for_each(|e| *e = Some(format!("unpacker error: {reason}")));
    } else if let Some(reason) = &options.read_only {
        errors.iter_mut().for_each(|e| *e = Some(reason.clone()));
    } else if req.commands.len() > options.max_ref_updates {
        let reason = format!(
            "too many ref updates in one push (limit {})",
            options.max_ref_updates
        );
        errors.iter_mut().for_each(|e| *e = Some(reason.clone()));
    } else {
        let mut seen = HashSet::new();
        let current = current_branch(&repo);
        // One handle on the quarantine for every command (opening it resolves alternates and
        // loads indices: once per push, not once per ref).
        let quarantine_odb = quarantine.as_ref().map(Quarantine::odb);
        for (cmd, err) in req.commands.iter().zip(errors.iter_mut()) {
            if let Err(reason) = check_ref_name(&cmd.name) {
                *err = Some(reason);
            } else if !seen.insert(cmd.name.clone()) {
                *err = Some("duplicate ref update".into());
            } else if cmd.is_delete() && current.as_deref() == Some(cmd.name.as_str()) {
                *err = Some(format!(
                    "refusing to delete the current branch: {}",
                    cmd.name
                ));
            } else if !cmd.is_delete() {
                *err = check_tip(&repo, quarantine_odb.as_ref(), cmd).err();
            }
            if err.is_none() && !options.protected.is_empty() {
                let odb = match &quarantine_odb {
                    Some(Ok(q)) => q.clone(),
                    _ => repo.objects.clone().into_inner(),
                };
                let find = crate::protection::commits_in(&odb);
                // The old value the client saw; a delete without one is checked like any delete.
                *err = crate::protection::check(
                    &options.protected,
                    &find,
                    &cmd.name,
                    cmd.old,
                    cmd.new,
                )
                .err();
            }
        }
    }
    let atomic = req.caps.contains("atomic");
    if atomic && errors.iter().any(Option::is_some) {
        for e in errors.iter_mut().filter(|e| e.is_none()) {
            *e = Some("atomic push failed".into());
        }
    }
    let any_ok = errors.iter().any(Option::is_none);
    if let Some(q) = quarantine.take() {
        if any_ok {
            if let Err(e) = q.publish() {
                let reason = format!("could not store the pack: {e}");
                errors.iter_mut().for_each(|x| *x = Some(reason.clone()));
                outcome.unpack_error = Some(reason);
            }
        } else {
            q.discard();
        }
    }
    let noop: Vec<bool> = req
        .commands
        .iter()
        .map(|c| deletes_nothing(&repo, c))
        .collect();
    update_refs(&repo, &req.commands, &noop, &mut errors, atomic);
    outcome.results = req
        .commands
        .iter()
        .cloned()
        .zip(errors)
        .zip(noop)
        .map(|((command, error), noop)| RefResult {
            changed: error.is_none() && !noop,
            command,
            error,
        })
        .collect();

    let mut report = Vec::new();
    match &outcome.unpack_error {
        None => pkt::text(&mut report, "unpack ok")?,
        Some(e) => pkt::text(&mut report, &format!("unpack {}", one_line(e)))?,
    }
    for r in &outcome.results {
        match &r.error {
            None => pkt::text(&mut report, &format!("ok {}", r.command.name))?,
            Some(e) => pkt::text(
                &mut report,
                &format!("ng {} {}", r.command.name, one_line(e)),
            )?,
        }
    }
    pkt::flush(&mut report)?;
    if sideband {
        if !quiet {
            if let Some(e) = &outcome.unpack_error {
                pkt::band(
                    &mut out,
                    gix_packetline::Channel::Progress,
                    format!("error: {e}\n").as_bytes(),
                )?;
            }
        }
        pkt::band(&mut out, gix_packetline::Channel::Data, &report)?;
        pkt::flush(&mut out)?;
    } else if req.caps.contains("report-status") || req.caps.contains("report-status-v2") {
        out.write_all(&report)?;
    }
    out.flush()?;
    Ok(outcome)
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// A pack indexed into `objects/incoming-*/pack`, not yet visible.
struct Quarantine {
    dir: PathBuf,
    objects_dir: PathBuf,
    pack: Option<(PathBuf, PathBuf)>,
    /// Held while the push lives: a sweep in any process leaves a held quarantine alone and
    /// removes one whose holder died at once.
    _lock: Option<crate::lock::Held>,
}

/// The lock file inside a quarantine.
const QUARANTINE_LOCK: &str = "orbit-push.lock";

impl Quarantine {
    /// Moves the pack into `objects/pack` (data first, then index) and removes the quarantine.
    fn publish(mut self) -> io::Result<()> {
        if let Some((data, index)) = self.pack.take() {
            let pack_dir = self.objects_dir.join("pack");
            for file in [&data, &index] {
                let name = file
                    .file_name()
                    .ok_or_else(|| io::Error::other("pack file without a name"))?;
                std::fs::rename(file, pack_dir.join(name))?;
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }

    fn discard(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// The quarantine and the repository's objects together.
    fn odb(&self) -> io::Result<gix::odb::Handle> {
        gix::odb::at(&self.dir, gix::hash::Kind::Sha1)
    }
}

impl Drop for Quarantine {
    fn drop(&mut self) {
        if self.pack.is_some() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A reader that fails once more than `limit` bytes were read.
struct Limited<R> {
    inner: R,
    remaining: u64,
    limit: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.remaining {
            return Err(io::Error::other(format!(
                "pack exceeds the maximum size of {} bytes",
                self.limit
            )));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// A quarantine without a lock file (made by an older Orbit, or in its first instant) untouched
/// for this long belongs to a push that died with its server.
pub const STALE_QUARANTINE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Removes the `incoming-*` quarantines under `objects_dir` whose push is gone: a server killed
/// in the middle of a push cannot clean its own. A quarantine's push holds its lock file while
/// it runs (in whatever process); one whose lock nobody holds is removed at once. Without a
/// lock file, one not modified for `older_than` is removed.
pub fn sweep_stale_quarantines(objects_dir: &Path, older_than: std::time::Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(objects_dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("incoming-") {
            continue;
        }
        // A lock file not yet renamed into place (`.new`) may belong to a push starting right
        // now: such a quarantine goes by age only.
        let lock = entry.path().join(QUARANTINE_LOCK);
        let stale = if lock.exists() {
            // Hold the dead push's lock while removing, so no one else acts on it meanwhile.
            match crate::lock::try_lock(&lock) {
                Ok(Some(held)) => {
                    let removed = std::fs::remove_dir_all(entry.path()).is_ok();
                    drop(held);
                    removed as usize
                }
                _ => 0,
            }
        } else {
            let newest = newest_mtime(&entry.path());
            let old = newest
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= older_than);
            (old && std::fs::remove_dir_all(entry.path()).is_ok()) as usize
        };
        if stale > 0 {
            removed += 1;
        }
    }
    removed
}

/// The newest modification time of `dir` and the files directly in it or in `dir/pack`.
fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = std::fs::metadata(dir).and_then(|m| m.modified()).ok();
    for sub in [dir.to_owned(), dir.join("pack")] {
        for e in std::fs::read_dir(sub).into_iter().flatten().flatten() {
            if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                newest = Some(newest.map_or(t, |n| n.max(t)));
            }
        }
    }
    newest
}

/// Indexes the incoming pack into a fresh quarantine and checks every object in it.
/// Returns the reason shown to the user on failure; nothing is left behind then.
fn ingest(
    repo: &gix::Repository,
    input: &mut impl Read,
    interrupt: &AtomicBool,
    options: &Options,
) -> Result<Quarantine, String> {
    let objects_dir = repo.objects.store_ref().path().to_owned();
    sweep_stale_quarantines(&objects_dir, STALE_QUARANTINE);
    let dir = objects_dir.join(format!("incoming-{}", unique_suffix()));
    let pack_dir = dir.join("pack");
    let mut q = Quarantine {
        dir: dir.clone(),
        objects_dir: objects_dir.clone(),
        pack: None,
        _lock: None,
    };
    let mut setup = || -> io::Result<()> {
        std::fs::create_dir_all(&pack_dir)?;
        q._lock = Some(crate::lock::create_held(&dir.join(QUARANTINE_LOCK))?);
        std::fs::create_dir_all(dir.join("info"))?;
        let abs = std::fs::canonicalize(&objects_dir)?;
        std::fs::write(
            dir.join("info").join("alternates"),
            format!("{}\n", abs.display()),
        )
    };
    if let Err(e) = setup() {
        q.discard();
        return Err(format!("could not create the quarantine: {e}"));
    }
    // Mark the quarantine as owned so Drop cleans it on every early return below.
    q.pack = Some((PathBuf::new(), PathBuf::new()));
    let mut limited = BufReader::with_capacity(
        64 * 1024,
        Limited {
            inner: input,
            remaining: options.max_pack_bytes,
            limit: options.max_pack_bytes,
        },
    );
    let bundle = gix_pack::Bundle::write_to_directory(
        &mut limited,
        Some(&pack_dir),
        &mut gix::progress::Discard,
        interrupt,
        Some(repo.objects.clone()),
        gix::hash::Kind::Sha1,
        gix_pack::bundle::write::Options {
            thread_limit: options.thread_limit,
            iteration_mode: gix_pack::data::input::Mode::Verify,
            index_version: Default::default(),
            alloc_limit_bytes: Some(options.max_object_bytes),
            compression: Default::default(),
        },
    )
    .map_err(|e| pack_error_message(&e))?;
    if let Some(keep) = &bundle.keep_path {
        let _ = std::fs::remove_file(keep);
    }
    match (bundle.data_path, bundle.index_path) {
        (Some(data), Some(index)) => {
            check_objects(&q, &index)?;
            q.pack = Some((data, index));
        }
        _ => q.pack = None,
    }
    Ok(q)
}

fn pack_error_message(e: &dyn std::error::Error) -> String {
    let msg = crate::error_chain(e);
    if msg.contains("maximum size") {
        // The size limit is the cause worth showing.
        if let Some(i) = msg.find("pack exceeds") {
            return msg[i..].to_owned();
        }
    }
    format!("invalid pack: {msg}")
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos:x}", std::process::id())
}

/// Every object of the new pack decodes, passes the fsck rules, and links only to objects that
/// exist (in the pack or the repository).
fn check_objects(q: &Quarantine, index_path: &Path) -> Result<(), String> {
    let index = gix_pack::index::File::at(index_path, gix::hash::Kind::Sha1)
        .map_err(|e| format!("unreadable index: {e}"))?;
    let odb = q
        .odb()
        .map_err(|e| format!("could not open the quarantine: {e}"))?;
    let mut buf = Vec::new();
    for entry in index.iter() {
        let id = entry.oid;
        // Blobs link to nothing and their bytes were hashed while indexing: only commits,
        // trees and tags need decoding here (blobs are most of a pack's bytes).
        let header = odb
            .try_header(&id)
            .map_err(|e| format!("object {id} is unreadable: {e}"))?
            .ok_or_else(|| format!("object {id} is missing"))?;
        if header.kind == gix::objs::Kind::Blob {
            continue;
        }
        let data = odb
            .try_find(&id, &mut buf)
            .map_err(|e| format!("object {id} is unreadable: {e}"))?
            .ok_or_else(|| format!("object {id} is missing"))?;
        let kind = data.kind;
        let object = data
            .decode()
            .map_err(|e| format!("object {id} is malformed: {e}"))?;
        let missing = |link: &gix::oid| -> Result<(), String> {
            if odb.exists(link) {
                Ok(())
            } else {
                Err(format!("object {id} links to missing object {link}"))
            }
        };
        match object {
            gix::objs::ObjectRef::Commit(c) => {
                missing(&c.tree())?;
                for p in c.parents() {
                    missing(&p)?;
                }
            }
            gix::objs::ObjectRef::Tree(t) => {
                crate::fsck::check_tree(&t).map_err(|e| format!("tree {id}: {e}"))?;
                for e in &t.entries {
                    if !e.mode.is_commit() {
                        missing(e.oid)?;
                    }
                }
            }
            gix::objs::ObjectRef::Tag(t) => {
                missing(&t.target())?;
            }
            gix::objs::ObjectRef::Blob(_) => {}
        }
        let _ = kind;
    }
    Ok(())
}

/// The full name of the branch `HEAD` points at (the default branch), if any.
fn current_branch(repo: &gix::Repository) -> Option<String> {
    repo.head_name()
        .ok()
        .flatten()
        .map(|n| n.as_bstr().to_string())
}

/// Whether `cmd` deletes a ref that does not exist without naming an old value: C git reports
/// it as done ("deleting a non-existent ref") and so does Orbit, without touching anything.
fn deletes_nothing(repo: &gix::Repository, cmd: &Command) -> bool {
    cmd.is_delete()
        && cmd.old.is_null()
        && matches!(repo.try_find_reference(cmd.name.as_str()), Ok(None))
}

/// The new value of a non-delete command exists, and branches point at commits.
fn check_tip(
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
fn other_failure(text: &str) -> String {
    format!(
        "failed to update ref: {}",
        one_line(text.trim_start_matches("invalid pack: "))
    )
}

fn edit_for(cmd: &Command) -> Result<RefEdit, String> {
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
fn update_refs(
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
            repo.edit_references_as(edits, None)
                .map(|_| ())
                .map_err(|e| reason(&*Box::<dyn std::error::Error + Send + Sync>::from(e)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stale_quarantines_are_swept() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let objects = tmp.path();
        std::fs::create_dir_all(objects.join("incoming-old/pack")).expect("mkdir");
        std::fs::write(objects.join("incoming-old/pack/tmp_pack_x"), b"half a pack")
            .expect("write");
        std::fs::create_dir_all(objects.join("pack")).expect("mkdir");
        std::fs::create_dir_all(objects.join("info")).expect("mkdir");
        // Nothing is a day old yet: nothing goes.
        assert_eq!(sweep_stale_quarantines(objects, STALE_QUARANTINE), 0);
        assert!(objects.join("incoming-old").exists());
        // With a zero age every incoming-* is stale; other directories stay.
        assert_eq!(
            sweep_stale_quarantines(objects, std::time::Duration::ZERO),
            1
        );
        assert!(!objects.join("incoming-old").exists());
        assert!(objects.join("pack").exists() && objects.join("info").exists());
    }

    #[test]
    fn ref_names_follow_git_and_the_writable_namespaces() {
        for ok in [
            "refs/heads/main",
            "refs/heads/feature/x",
            "refs/tags/v1.0",
            "refs/notes/commits",
        ] {
            assert!(check_ref_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "HEAD",
            "refs/pull/1/head",
            "refs/changes/01/1/1",
            "refs/notes/",
            "refs/heads/a..b",
            "refs/heads/",
            "refs/heads/x.lock",
            "refs/heads/-x",
            "refs/x",
        ] {
            assert!(check_ref_name(bad).is_err(), "{bad}");
        }
    }
}
