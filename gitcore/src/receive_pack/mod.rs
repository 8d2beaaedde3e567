//! receive-pack: one push. Commands are parsed, the pack is indexed into a quarantine directory,
//! checked (checksum, object validity, connectivity, fsck-style tree rules, ref names), moved into
//! place, and then each reference moves by compare-and-swap (or all of them, with `atomic`).
//! Nothing becomes visible to readers before every check passed.

mod commands;
mod index;
mod quarantine;
mod refs;
#[cfg(test)]
mod serve_tests;

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::AtomicBool;

use gix::ObjectId;

use crate::pkt::{self};

pub use commands::check_ref_name;
use commands::parse_commands;
use quarantine::{ingest, Quarantine};
pub use quarantine::{sweep_stale_quarantines, STALE_QUARANTINE};
use refs::{check_tip, current_branch, deletes_nothing, update_refs};

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
    /// The commits of the stored pack, as the push parsed them (for listing what it brought
    /// without reading them again); `None` when not known.
    pub pack_commits: Option<PackCommits>,
}

/// A push's commits: id → (committer time, parents).
#[derive(Clone, Default)]
pub struct PackCommits(pub std::sync::Arc<crate::read::new_commits::Known>);

impl std::fmt::Debug for PackCommits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackCommits({} commits)", self.0.len())
    }
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
    let mut clone_pack = None;
    if let Some(mut q) = quarantine.take() {
        if any_ok {
            clone_pack = q.published_pack().zip(q.closure.take());
            outcome.pack_commits = q
                .commits
                .take()
                .map(|c| PackCommits(std::sync::Arc::new(c)));
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
    if outcome.unpack_error.is_none() {
        if let Some((pack, closure)) = clone_pack {
            record_clone_pack(&repo, repo_path, &pack, &closure);
        }
    }
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

/// After a push whose pack links to nothing outside it: when the pack holds exactly what a
/// clone of the branches and tags now needs (a first push, typically), records it as the clone
/// pack, as upkeep's [`crate::upload_pack::reuse::mark`] would after enumerating every object.
/// A pure fact about the pack's content and the tips read here, so a concurrent push cannot
/// make it wrong: a clone stream is used only while its wants equal these tips.
fn record_clone_pack(
    repo: &gix::Repository,
    repo_path: &Path,
    pack: &Path,
    closure: &index::Closure,
) {
    let Ok(snapshot) = crate::refs::Snapshot::read(repo) else {
        return;
    };
    let tips = crate::upload_pack::reuse::clone_tips(&snapshot);
    if !closure.is_exactly_reachable_from(&tips) {
        return;
    }
    let Ok(objects) = u32::try_from(closure.ids.len()) else {
        return;
    };
    let _ = crate::upload_pack::reuse::write_manifest(repo_path, pack, objects, &tips);
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
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
