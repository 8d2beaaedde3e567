//! upload-pack: one stateless request of a clone or fetch, in protocol v0 (smart-HTTP
//! stateless RPC with `multi_ack_detailed`) or v2 (`ls-refs`, `fetch`).
//!
//! Each call reads one request and writes one response; the HTTP layer calls it once per POST.
//! Negotiation keeps no state between requests: as in git's stateless RPC, the client resends
//! its wants and the haves found common so far.

use std::collections::HashSet;
use std::io::{BufWriter, Read, Write};
use std::sync::atomic::AtomicBool;

use gix::ObjectId;

use crate::pack::Filter;
use crate::pkt::{self, Line};
use crate::refs::Snapshot;
use crate::shallow::Deepen;

mod blobless;
mod reach;
use reach::check_wants;
pub(crate) use reach::commit_time;
pub mod reuse;
mod send;
use send::send_pack;

/// Errors of [`serve`]. Their text is shown to the git user (on band 3 or in an `ERR` line).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request could not be read.
    #[error("upload-pack: bad request")]
    Read(#[from] pkt::ReadError),
    /// The request is not what the protocol allows.
    #[error("upload-pack: {0}")]
    Protocol(String),
    /// A want names something the client may not have.
    #[error("upload-pack: not our ref {0}")]
    NotOurRef(ObjectId),
    /// Reading references failed.
    #[error("upload-pack: could not read references")]
    Refs(#[from] crate::refs::Error),
    /// Generating the pack failed.
    #[error("upload-pack: could not send the pack")]
    Pack(#[from] crate::pack::Error),
    /// Writing the response failed (the client went away).
    #[error("upload-pack: could not write the response")]
    Io(#[from] std::io::Error),
}

/// Protocol version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Protocol v0/v1.
    V0,
    /// Protocol v2.
    V2,
}

/// Knobs of [`serve`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Threads for pack generation; `None` for all cores.
    pub thread_limit: Option<usize>,
    /// Where identical pack answers are shared ([`crate::pack_cache`]); `None` generates each.
    pub pack_cache: Option<std::sync::Arc<crate::pack_cache::PackCache>>,
}

/// What a request did, for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Whether a pack was sent.
    pub sent_pack: bool,
    /// Objects in that pack.
    pub objects: usize,
    /// The v2 command served (`ls-refs`, `fetch`), or `upload-pack` for v0.
    pub command: String,
}

/// Serves one upload-pack request from `input` onto `out`.
pub fn serve(
    repo: &gix::Repository,
    protocol: Protocol,
    input: impl Read,
    out: impl Write,
    interrupt: &AtomicBool,
    options: &Options,
) -> Result<Outcome, Error> {
    let mut out = BufWriter::with_capacity(pkt::MAX_BAND_DATA, out);
    let result = match protocol {
        Protocol::V0 => serve_v0(repo, pkt::Reader::new(input), &mut out, interrupt, options),
        Protocol::V2 => serve_v2(repo, pkt::Reader::new(input), &mut out, interrupt, options),
    };
    match result {
        Ok(outcome) => {
            out.flush()?;
            Ok(outcome)
        }
        Err(Failure::BeforePack(e)) => {
            // Nothing of a pack went out yet: an ERR line is what git shows best.
            let _ = pkt::err(&mut out, &crate::error_chain(&e));
            let _ = out.flush();
            Err(e)
        }
        Err(Failure::InPack(e, sideband)) => {
            if sideband {
                let _ = pkt::band(
                    &mut out,
                    gix_packetline::Channel::Error,
                    format!("{}\n", crate::error_chain(&e)).as_bytes(),
                );
            }
            let _ = out.flush();
            Err(e)
        }
    }
}

enum Failure {
    BeforePack(Error),
    /// The bool: whether side-band is in use (to report on band 3).
    InPack(Error, bool),
}

impl<E: Into<Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::BeforePack(e.into())
    }
}

fn parse_oid(hex: &[u8]) -> Result<ObjectId, Error> {
    ObjectId::from_hex(hex).map_err(|_| {
        Error::Protocol(format!(
            "invalid object id {:?}",
            String::from_utf8_lossy(hex)
        ))
    })
}

/// The negotiation state of one request.
#[derive(Default)]
struct Request {
    wants: Vec<ObjectId>,
    haves: Vec<ObjectId>,
    done: bool,
    caps: HashSet<String>,
    shallow: crate::shallow::Request,
    /// `deepen-not` revisions, resolved once references are read.
    deepen_not: Vec<String>,
    filter: Filter,
}

/// Most wants and haves one request may carry (git clients send a few hundred per round).
const MAX_IDS_PER_REQUEST: usize = 100_000;

impl Request {
    fn push_want(&mut self, id: ObjectId) -> Result<(), Error> {
        self.check_size()?;
        self.wants.push(id);
        Ok(())
    }

    fn push_have(&mut self, id: ObjectId) -> Result<(), Error> {
        self.check_size()?;
        self.haves.push(id);
        Ok(())
    }

    fn check_size(&self) -> Result<(), Error> {
        if self.wants.len() + self.haves.len() >= MAX_IDS_PER_REQUEST {
            return Err(Error::Protocol(format!(
                "too many wants and haves in one request (limit {MAX_IDS_PER_REQUEST})"
            )));
        }
        Ok(())
    }

    /// Parses a `shallow`/`deepen*`/`filter` line; `Ok(false)` if it is none of these.
    fn parse_history_line(&mut self, line: &[u8]) -> Result<bool, Error> {
        let text = String::from_utf8_lossy(line);
        if let Some(hex) = line.strip_prefix(b"shallow ") {
            self.shallow.client_shallows.push(parse_oid(hex)?);
        } else if let Some(n) = text.strip_prefix("deepen ") {
            let n = n
                .trim()
                .parse::<u32>()
                .map_err(|_| Error::Protocol(format!("invalid depth {n:?}")))?;
            if n == 0 {
                return Err(Error::Protocol("depth must be positive".into()));
            }
            self.shallow.deepen = Some(Deepen::Depth(n));
        } else if let Some(t) = text.strip_prefix("deepen-since ") {
            let t = t
                .trim()
                .parse::<i64>()
                .map_err(|_| Error::Protocol(format!("invalid time {t:?}")))?;
            self.shallow.deepen = Some(Deepen::Since(t));
        } else if let Some(r) = text.strip_prefix("deepen-not ") {
            self.deepen_not.push(r.trim().to_owned());
        } else if text == "deepen-relative" {
            self.shallow.relative = true;
        } else if let Some(spec) = text.strip_prefix("filter ") {
            self.filter = Filter::parse(spec.trim()).map_err(Error::Protocol)?;
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// Resolves `deepen-not` names against the references.
    fn resolve_deepen_not(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        if self.deepen_not.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::new();
        for name in &self.deepen_not {
            let id = [
                name.clone(),
                format!("refs/heads/{name}"),
                format!("refs/tags/{name}"),
            ]
            .iter()
            .find_map(|n| {
                snapshot
                    .refs
                    .iter()
                    .find(|r| &r.name == n)
                    .map(|r| r.peeled.unwrap_or(r.target))
            })
            .or_else(|| ObjectId::from_hex(name.as_bytes()).ok())
            .ok_or_else(|| Error::Protocol(format!("deepen-not: unknown revision {name:?}")))?;
            ids.push(id);
        }
        self.shallow.deepen = Some(Deepen::Not(ids));
        Ok(())
    }

    /// Whether the response carries shallow information.
    fn has_shallow_section(&self) -> bool {
        self.shallow.is_deepening() || !self.shallow.client_shallows.is_empty()
    }
}

/// Commits to send and the shallow lines for them.
fn plan_commits(
    repo: &gix::Repository,
    req: &Request,
    commit_wants: &[ObjectId],
    common: &[ObjectId],
    interrupt: &AtomicBool,
) -> Result<crate::shallow::Plan, Error> {
    if req.shallow.is_deepening() {
        return Ok(crate::shallow::plan(
            repo,
            commit_wants,
            &req.shallow,
            interrupt,
        )?);
    }
    // A shallow client's boundary commits are where its history stops: never walk past them.
    let mut hidden: Vec<ObjectId> = common.to_vec();
    hidden.extend(req.shallow.client_shallows.iter().copied());
    Ok(crate::shallow::Plan {
        commits: crate::pack::walk_commits(repo, commit_wants, &hidden, interrupt)?,
        ..Default::default()
    })
}

fn write_shallow_lines(out: &mut impl Write, plan: &crate::shallow::Plan) -> std::io::Result<()> {
    for id in &plan.shallow {
        pkt::text(out, &format!("shallow {id}"))?;
    }
    for id in &plan.unshallow {
        pkt::text(out, &format!("unshallow {id}"))?;
    }
    Ok(())
}

impl Request {
    fn has(&self, cap: &str) -> bool {
        self.caps.contains(cap)
    }

    /// The stored pack that answers this request as it is: a clone of every branch and tag,
    /// with nothing in common, no shallow history, no filter or `blob:none`, taking ofs-deltas.
    fn reusable(&self, repo: &gix::Repository, common: &[ObjectId]) -> Option<reuse::Reusable> {
        let plain = common.is_empty()
            && self.shallow.client_shallows.is_empty()
            && !self.shallow.is_deepening()
            && matches!(self.filter, Filter::None | Filter::BlobNone)
            && self.has("ofs-delta");
        plain
            .then(|| reuse::find(repo.path(), &self.wants, self.filter))
            .flatten()
    }
}

fn serve_v0<R: Read, W: Write>(
    repo: &gix::Repository,
    mut reader: pkt::Reader<R>,
    out: &mut W,
    interrupt: &AtomicBool,
    options: &Options,
) -> Result<Outcome, Failure> {
    let mut req = Request::default();
    // Wants (and shallow/deepen/filter lines) up to the first flush.
    loop {
        match reader.line_or_eof()? {
            None => {
                return Err(Error::Protocol(
                    "the request ended before the flush after its wants".into(),
                )
                .into())
            }
            Some(Line::Flush) => break,
            Some(Line::Data(line)) => {
                if let Some(rest) = line.strip_prefix(b"want ") {
                    let (hex, caps) = match rest.iter().position(|b| *b == b' ') {
                        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                        None => (rest, None),
                    };
                    req.push_want(parse_oid(hex)?)?;
                    if let Some(caps) = caps {
                        if req.caps.is_empty() {
                            req.caps = String::from_utf8_lossy(caps)
                                .split(' ')
                                .map(str::to_owned)
                                .collect();
                        }
                    }
                } else if !req.parse_history_line(&line)? {
                    return Err(Error::Protocol(format!(
                        "unexpected line {:?}",
                        String::from_utf8_lossy(&line)
                    ))
                    .into());
                }
            }
            Some(other) => return Err(Error::Protocol(format!("unexpected {other:?}")).into()),
        }
    }
    // In v0, deepen-relative arrives as a capability of the first want.
    if req.has("deepen-relative") {
        req.shallow.relative = true;
    }
    if req.wants.is_empty() {
        // `git ls-remote` style: nothing wanted, nothing to send.
        return Ok(Outcome {
            command: "upload-pack".into(),
            ..Outcome::default()
        });
    }
    // Haves, up to `done` or the end of this round. A request that ends right after the wants
    // is a stateless client collecting the shallow list only: answer that and nothing else.
    let mut wants_only = true;
    loop {
        let line = reader.line_or_eof()?;
        if line.is_some() {
            wants_only = false;
        }
        match line {
            None if wants_only => break,
            None => {
                return Err(
                    Error::Protocol("the request ended in the middle of its haves".into()).into(),
                )
            }
            Some(Line::Flush) => break,
            Some(Line::Data(line)) => {
                if line == b"done" {
                    req.done = true;
                    break;
                } else if let Some(hex) = line.strip_prefix(b"have ") {
                    req.push_have(parse_oid(hex)?)?;
                } else {
                    return Err(Error::Protocol(format!(
                        "unexpected line {:?}",
                        String::from_utf8_lossy(&line)
                    ))
                    .into());
                }
            }
            Some(other) => return Err(Error::Protocol(format!("unexpected {other:?}")).into()),
        }
    }
    let snapshot = Snapshot::read_cached(repo)?;
    req.resolve_deepen_not(&snapshot)?;
    check_wants(repo, &snapshot, &req.wants)?;
    let common = common_commits(repo, &req.haves);
    let reusable = req.reusable(repo, &common);
    let mut named = Vec::new();
    let plan = match reusable {
        Some(_) => crate::shallow::Plan::default(),
        None => {
            let commit_wants = crate::pack::split_wants(repo, &req.wants, &mut named)?;
            plan_commits(repo, &req, &commit_wants, &common, interrupt)?
        }
    };
    // v0 sends a shallow list (ended by a flush) only to a deepening request, as git's
    // `send_shallow_list` does; a shallow client fetching without deepening reads ACK/NAK next.
    if req.shallow.is_deepening() {
        write_shallow_lines(out, &plan)?;
        pkt::flush(out)?;
    }
    if wants_only {
        return Ok(Outcome {
            command: "upload-pack".into(),
            ..Outcome::default()
        });
    }
    let detailed = req.has("multi_ack_detailed");
    let multi_ack = detailed || req.has("multi_ack");
    for c in &common {
        if detailed {
            pkt::text(out, &format!("ACK {c} common"))?;
        }
    }
    if !req.done {
        pkt::text(out, "NAK")?;
        return Ok(Outcome {
            command: "upload-pack".into(),
            ..Outcome::default()
        });
    }
    let ack = if multi_ack {
        common.last()
    } else {
        common.first()
    };
    match ack {
        Some(id) => pkt::text(out, &format!("ACK {id}"))?,
        None => pkt::text(out, "NAK")?,
    }
    let sideband = req.has("side-band-64k") || req.has("side-band");
    let objects = match reusable {
        Some(pack) => send::send_stored(&req, pack, out, sideband)?,
        None => send_pack(
            repo,
            &snapshot,
            &req,
            plan.commits,
            &named,
            &common,
            out,
            sideband,
            interrupt,
            options,
        )?,
    };
    if sideband {
        pkt::flush(out)?;
    }
    Ok(Outcome {
        sent_pack: true,
        objects,
        command: "upload-pack".into(),
    })
}

/// The haves we have, as commits.
fn common_commits(repo: &gix::Repository, haves: &[ObjectId]) -> Vec<ObjectId> {
    let mut seen = HashSet::new();
    haves
        .iter()
        .filter(|h| seen.insert(**h))
        .filter(|h| repo.find_commit(**h).is_ok())
        .copied()
        .collect()
}

fn serve_v2<R: Read, W: Write>(
    repo: &gix::Repository,
    mut reader: pkt::Reader<R>,
    out: &mut W,
    interrupt: &AtomicBool,
    options: &Options,
) -> Result<Outcome, Failure> {
    let command = match reader.line_or_eof()? {
        None | Some(Line::Flush) => {
            return Ok(Outcome::default());
        }
        Some(Line::Data(line)) => match line.strip_prefix(b"command=") {
            Some(c) => String::from_utf8_lossy(c).into_owned(),
            None => return Err(Error::Protocol("expected command=".into()).into()),
        },
        Some(other) => return Err(Error::Protocol(format!("unexpected {other:?}")).into()),
    };
    // Capability lines up to the delimiter (or flush when there are no arguments).
    let mut has_args = false;
    loop {
        match reader.line()? {
            Line::Delimiter => {
                has_args = true;
                break;
            }
            Line::Flush => break,
            Line::Data(line) => {
                if let Some(fmt) = line.strip_prefix(b"object-format=") {
                    if fmt != b"sha1" {
                        return Err(
                            Error::Protocol("only object-format=sha1 is supported".into()).into(),
                        );
                    }
                }
            }
            Line::ResponseEnd => {
                return Err(Error::Protocol("unexpected response-end".into()).into())
            }
        }
    }
    let mut args = Vec::new();
    if has_args {
        loop {
            match reader.line()? {
                Line::Flush => break,
                Line::Data(_) if args.len() >= MAX_IDS_PER_REQUEST => {
                    return Err(Error::Protocol(format!(
                        "too many arguments in one request (limit {MAX_IDS_PER_REQUEST})"
                    ))
                    .into())
                }
                Line::Data(line) => args.push(line),
                other => {
                    return Err(
                        Error::Protocol(format!("unexpected {other:?} in arguments")).into(),
                    )
                }
            }
        }
    }
    match command.as_str() {
        "ls-refs" => ls_refs(repo, &args, out).map_err(Failure::BeforePack)?,
        "fetch" => return fetch_v2(repo, &args, out, interrupt, options),
        other => return Err(Error::Protocol(format!("unknown command {other:?}")).into()),
    }
    Ok(Outcome {
        command,
        ..Outcome::default()
    })
}

fn ls_refs<W: Write>(repo: &gix::Repository, args: &[Vec<u8>], out: &mut W) -> Result<(), Error> {
    let mut symrefs = false;
    let mut peel = false;
    let mut unborn = false;
    let mut prefixes: Vec<String> = Vec::new();
    for a in args {
        match a.as_slice() {
            b"symrefs" => symrefs = true,
            b"peel" => peel = true,
            b"unborn" => unborn = true,
            other => {
                if let Some(p) = other.strip_prefix(b"ref-prefix ") {
                    prefixes.push(String::from_utf8_lossy(p).into_owned());
                }
            }
        }
    }
    let wanted =
        |name: &str| prefixes.is_empty() || prefixes.iter().any(|p| name.starts_with(p.as_str()));
    let snapshot = Snapshot::read_cached(repo)?;
    if wanted("HEAD") {
        match (snapshot.head, &snapshot.head_symref) {
            (Some(head), target) => {
                let mut line = format!("{head} HEAD");
                if let (true, Some(t)) = (symrefs, target) {
                    line.push_str(&format!(" symref-target:{t}"));
                }
                pkt::text(out, &line)?;
            }
            (None, Some(target)) if unborn => {
                pkt::text(out, &format!("unborn HEAD symref-target:{target}"))?;
            }
            _ => {}
        }
    }
    for r in snapshot.refs.iter().filter(|r| wanted(&r.name)) {
        let mut line = format!("{} {}", r.target, r.name);
        if let (true, Some(p)) = (peel, r.peeled) {
            line.push_str(&format!(" peeled:{p}"));
        }
        pkt::text(out, &line)?;
    }
    pkt::flush(out)?;
    Ok(())
}

fn fetch_v2<W: Write>(
    repo: &gix::Repository,
    args: &[Vec<u8>],
    out: &mut W,
    interrupt: &AtomicBool,
    options: &Options,
) -> Result<Outcome, Failure> {
    let mut req = Request::default();
    let snapshot = Snapshot::read_cached(repo)?;
    for a in args {
        let a = a.as_slice();
        if let Some(hex) = a.strip_prefix(b"want ") {
            req.push_want(parse_oid(hex)?)?;
        } else if let Some(name) = a.strip_prefix(b"want-ref ") {
            let name = String::from_utf8_lossy(name);
            let id = snapshot
                .get(&name)
                .ok_or_else(|| Error::Protocol(format!("unknown ref {name}")))?;
            req.push_want(id)?;
        } else if let Some(hex) = a.strip_prefix(b"have ") {
            req.push_have(parse_oid(hex)?)?;
        } else if a == b"done" {
            req.done = true;
        } else if req.parse_history_line(a)? {
            // shallow, deepen*, filter
        } else {
            // thin-pack, no-progress, include-tag, ofs-delta, sideband-all, wait-for-done, ...
            req.caps.insert(String::from_utf8_lossy(a).into_owned());
        }
    }
    if req.wants.is_empty() {
        return Err(Error::Protocol("fetch without any want".into()).into());
    }
    req.resolve_deepen_not(&snapshot)?;
    check_wants(repo, &snapshot, &req.wants)?;
    let common = common_commits(repo, &req.haves);
    if !req.done {
        pkt::text(out, "acknowledgments")?;
        if common.is_empty() {
            pkt::text(out, "NAK")?;
        }
        for c in &common {
            pkt::text(out, &format!("ACK {c}"))?;
        }
        pkt::flush(out)?;
        return Ok(Outcome {
            command: "fetch".into(),
            ..Outcome::default()
        });
    }
    let reusable = req.reusable(repo, &common);
    let mut named = Vec::new();
    let plan = match reusable {
        Some(_) => crate::shallow::Plan::default(),
        None => {
            let commit_wants = crate::pack::split_wants(repo, &req.wants, &mut named)?;
            plan_commits(repo, &req, &commit_wants, &common, interrupt)?
        }
    };
    if req.has_shallow_section() {
        pkt::text(out, "shallow-info")?;
        write_shallow_lines(out, &plan)?;
        pkt::delim(out)?;
    }
    pkt::text(out, "packfile")?;
    let objects = match reusable {
        Some(pack) => send::send_stored(&req, pack, out, true)?,
        None => send_pack(
            repo,
            &snapshot,
            &req,
            plan.commits,
            &named,
            &common,
            out,
            true,
            interrupt,
            options,
        )?,
    };
    pkt::flush(out)?;
    Ok(Outcome {
        sent_pack: true,
        objects,
        command: "fetch".into(),
    })
}
