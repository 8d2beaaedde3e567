//! The client side of a push over smart HTTP (`git send-pack`), without a git executable and
//! without any HTTP: the caller fetches the remote's receive-pack advertisement, hands it to
//! [`parse_advertisement`], decides the commands ([`mirror_commands`]), streams the request from
//! [`write_request`] (commands, then a pack thin against what the remote has and we have), and
//! reads the answer with [`parse_report`].

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::sync::atomic::AtomicBool;

use gix::ObjectId;

use crate::pkt::{self, Line};
use crate::refs::Snapshot;

/// Errors of the client side of a push.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The remote's answer is not what the protocol says.
    #[error("the remote's answer is malformed: {0}")]
    Protocol(String),
    /// Reading the remote's answer failed.
    #[error("could not read the remote's answer")]
    Read(#[source] pkt::ReadError),
    /// Writing the request failed (the connection went away).
    #[error("could not write the push request")]
    Write(#[source] std::io::Error),
    /// The pack could not be made.
    #[error("could not generate the pack")]
    Pack(#[source] crate::pack::Error),
    /// The references could not be read.
    #[error(transparent)]
    Refs(#[from] crate::refs::Error),
}

/// A remote's receive-pack advertisement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertised {
    /// Its references (without peeled `^{}` entries), by name.
    pub refs: BTreeMap<String, ObjectId>,
    /// Its capabilities.
    pub capabilities: Vec<String>,
}

impl Advertised {
    /// Whether the remote has capability `name` (with or without a value).
    pub fn has(&self, name: &str) -> bool {
        self.capabilities
            .iter()
            .any(|c| c == name || c.strip_prefix(name).is_some_and(|r| r.starts_with('=')))
    }
}

fn parse_oid(hex: &[u8]) -> Result<ObjectId, Error> {
    ObjectId::from_hex(hex)
        .map_err(|_| Error::Protocol(format!("bad object id {:?}", String::from_utf8_lossy(hex))))
}

/// Parses the body of `GET …/info/refs?service=git-receive-pack` (protocol v0, as every
/// receive-pack answers): the `# service=` banner, then `<oid> <ref>` lines, capabilities after
/// a NUL on the first (an empty repository advertises `capabilities^{}` with the zero id).
pub fn parse_advertisement(body: impl Read) -> Result<Advertised, Error> {
    let mut reader = pkt::Reader::new(body);
    let mut out = Advertised::default();
    let mut first = true;
    loop {
        match reader.line_or_eof().map_err(Error::Read)? {
            None => break,
            Some(Line::Flush) => {
                if first {
                    continue; // after the banner
                }
                break;
            }
            Some(Line::Data(line)) => {
                if line.starts_with(b"# service=") {
                    continue;
                }
                let (refpart, caps) = match line.iter().position(|b| *b == 0) {
                    Some(i) => (&line[..i], Some(&line[i + 1..])),
                    None => (&line[..], None),
                };
                if let Some(caps) = caps {
                    out.capabilities = String::from_utf8_lossy(caps)
                        .split(' ')
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                first = false;
                let (hex, name) = match refpart.iter().position(|b| *b == b' ') {
                    Some(i) => (&refpart[..i], &refpart[i + 1..]),
                    None => return Err(Error::Protocol("a ref line without a name".into())),
                };
                let id = parse_oid(hex)?;
                let name = String::from_utf8_lossy(name).into_owned();
                if name == "capabilities^{}" || name.ends_with("^{}") {
                    continue;
                }
                out.refs.insert(name, id);
            }
            Some(other) => return Err(Error::Protocol(format!("unexpected {other:?}"))),
        }
    }
    Ok(out)
}

/// One ref update to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Full ref name.
    pub name: String,
    /// What the remote has (zero for a create).
    pub old: ObjectId,
    /// What it should have (zero for a delete).
    pub new: ObjectId,
}

/// The commands that make the remote's refs under `prefixes` equal to ours: creates, updates
/// (fast-forward or not) and deletes, sorted by name.
pub fn mirror_commands(local: &Snapshot, remote: &Advertised, prefixes: &[&str]) -> Vec<Command> {
    let zero = ObjectId::null(gix::hash::Kind::Sha1);
    let ours: BTreeMap<&str, ObjectId> = local
        .refs
        .iter()
        .filter(|r| prefixes.iter().any(|p| r.name.starts_with(p)))
        .map(|r| (r.name.as_str(), r.target))
        .collect();
    let mut out = Vec::new();
    for (name, id) in &ours {
        match remote.refs.get(*name) {
            Some(theirs) if theirs == id => {}
            Some(theirs) => out.push(Command {
                name: (*name).to_owned(),
                old: *theirs,
                new: *id,
            }),
            None => out.push(Command {
                name: (*name).to_owned(),
                old: zero,
                new: *id,
            }),
        }
    }
    for (name, theirs) in &remote.refs {
        if prefixes.iter().any(|p| name.starts_with(p)) && !ours.contains_key(name.as_str()) {
            out.push(Command {
                name: name.clone(),
                old: *theirs,
                new: zero,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// What [`write_request`] sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Objects in the pack (0 when only deletes were sent, with no pack).
    pub objects: usize,
}

/// Writes the push request: the commands (capabilities `report-status`, and `ofs-delta` and
/// `delete-refs` when the remote offers them) and, unless every command is a delete, a pack of
/// what the new tips reach and the remote's tips do not — thin (deltas against objects the
/// remote has) unless the remote says `no-thin`.
pub fn write_request(
    repo: &gix::Repository,
    commands: &[Command],
    remote: &Advertised,
    mut out: impl Write,
    interrupt: &AtomicBool,
) -> Result<Sent, Error> {
    let mut caps = vec!["report-status".to_owned()];
    for c in ["ofs-delta", "delete-refs", "quiet"] {
        if remote.has(c) {
            caps.push(c.to_owned());
        }
    }
    caps.push(format!("agent=orbit/{}", env!("CARGO_PKG_VERSION")));
    for (i, c) in commands.iter().enumerate() {
        let mut line = format!("{} {} {}", c.old, c.new, c.name).into_bytes();
        if i == 0 {
            line.push(0);
            line.extend_from_slice(caps.join(" ").as_bytes());
        }
        line.push(b'\n');
        pkt::data(&mut out, &line).map_err(Error::Write)?;
    }
    pkt::flush(&mut out).map_err(Error::Write)?;
    let wants: Vec<ObjectId> = commands
        .iter()
        .filter(|c| !c.new.is_null())
        .map(|c| c.new)
        .collect();
    if wants.is_empty() {
        return Ok(Sent::default());
    }
    // What the remote has that we have too: the walk stops there, and thin deltas may use it.
    let mut common: Vec<ObjectId> = Vec::new();
    let mut seen = HashSet::new();
    for id in remote.refs.values() {
        let Ok(object) = repo.find_object(*id) else {
            continue;
        };
        if let Ok(commit) = object.peel_to_commit() {
            if seen.insert(commit.id) {
                common.push(commit.id);
            }
        }
    }
    let mut named = Vec::new();
    let commits = crate::pack::split_wants(repo, &wants, &mut named).map_err(Error::Pack)?;
    let commits =
        crate::pack::walk_commits(repo, &commits, &common, interrupt).map_err(Error::Pack)?;
    let selection = crate::pack::objects_for(
        repo,
        commits,
        &named,
        &common,
        &[],
        false,
        crate::pack::Filter::default(),
        interrupt,
    )
    .map_err(Error::Pack)?;
    let objects = selection.ids.len();
    let thin = (!remote.has("no-thin") && !common.is_empty()).then_some(crate::pack::Thin {
        known: &selection.known,
        delta_bases: &selection.delta_bases,
    });
    crate::pack::write(repo, selection.ids, thin, &mut out, interrupt, None)
        .map_err(Error::Pack)?;
    out.flush().map_err(Error::Write)?;
    Ok(Sent { objects })
}

/// The remote's `report-status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `unpack ok`, or the remote's reason.
    pub unpack: Result<(), String>,
    /// Per ref: accepted, or the remote's reason.
    pub refs: Vec<(String, Result<(), String>)>,
}

impl Report {
    /// The first failure, as one line (`refs/heads/x: protected branch`), if any.
    pub fn first_failure(&self) -> Option<String> {
        if let Err(e) = &self.unpack {
            return Some(format!("unpack failed: {e}"));
        }
        self.refs
            .iter()
            .find_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
    }
}

/// Reads the answer to a push without side-band: `unpack ok|<reason>`, then `ok <ref>` or
/// `ng <ref> <reason>` per command, then a flush.
pub fn parse_report(input: impl Read) -> Result<Report, Error> {
    let mut reader = pkt::Reader::new(input);
    let mut unpack = None;
    let mut refs = Vec::new();
    loop {
        match reader.line_or_eof().map_err(Error::Read)? {
            None | Some(Line::Flush) => break,
            Some(Line::Data(line)) => {
                let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                if let Some(rest) = text.strip_prefix("unpack ") {
                    unpack = Some(if rest == "ok" {
                        Ok(())
                    } else {
                        Err(rest.to_owned())
                    });
                } else if let Some(name) = text.strip_prefix("ok ") {
                    refs.push((name.to_owned(), Ok(())));
                } else if let Some(rest) = text.strip_prefix("ng ") {
                    let (name, reason) = rest.split_once(' ').unwrap_or((rest, "rejected"));
                    refs.push((name.to_owned(), Err(reason.to_owned())));
                } else if let Some(message) = text.strip_prefix("ERR ") {
                    return Err(Error::Protocol(format!("the remote said: {message}")));
                } else {
                    return Err(Error::Protocol(format!("unexpected line {text:?}")));
                }
            }
            Some(other) => return Err(Error::Protocol(format!("unexpected {other:?}"))),
        }
    }
    let unpack =
        unpack.ok_or_else(|| Error::Protocol("no unpack status in the report".to_owned()))?;
    Ok(Report { unpack, refs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertisement_of_an_empty_and_a_full_repository() {
        let mut body = Vec::new();
        pkt::text(&mut body, "# service=git-receive-pack").expect("w");
        pkt::flush(&mut body).expect("w");
        pkt::data(
            &mut body,
            b"0000000000000000000000000000000000000000 capabilities^{}\0report-status delete-refs ofs-delta\n",
        )
        .expect("w");
        pkt::flush(&mut body).expect("w");
        let a = parse_advertisement(&body[..]).expect("parse");
        assert!(a.refs.is_empty());
        assert!(a.has("report-status") && a.has("ofs-delta") && !a.has("atomic"));

        let mut body = Vec::new();
        pkt::data(
            &mut body,
            b"1111111111111111111111111111111111111111 refs/heads/main\0report-status agent=x\n",
        )
        .expect("w");
        pkt::text(
            &mut body,
            "2222222222222222222222222222222222222222 refs/tags/v1",
        )
        .expect("w");
        pkt::text(
            &mut body,
            "3333333333333333333333333333333333333333 refs/tags/v1^{}",
        )
        .expect("w");
        pkt::flush(&mut body).expect("w");
        let a = parse_advertisement(&body[..]).expect("parse");
        assert_eq!(a.refs.len(), 2);
        assert!(a.has("agent"));
        assert!(parse_advertisement(&b"0009zzzz\n"[..]).is_err());
    }

    #[test]
    fn reports_with_rejections() {
        let mut body = Vec::new();
        pkt::text(&mut body, "unpack ok").expect("w");
        pkt::text(&mut body, "ok refs/heads/main").expect("w");
        pkt::text(
            &mut body,
            "ng refs/heads/prod protected branch hook declined",
        )
        .expect("w");
        pkt::flush(&mut body).expect("w");
        let r = parse_report(&body[..]).expect("parse");
        assert_eq!(r.unpack, Ok(()));
        assert_eq!(
            r.first_failure().as_deref(),
            Some("refs/heads/prod: protected branch hook declined")
        );
        let mut body = Vec::new();
        pkt::text(&mut body, "ERR access denied").expect("w");
        assert!(parse_report(&body[..]).is_err());
        assert!(parse_report(&b""[..]).is_err(), "no unpack line");
    }
}
