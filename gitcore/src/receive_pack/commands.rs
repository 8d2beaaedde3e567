//! The command list of a push: old and new ids, ref names, capabilities, push options.

use std::collections::HashSet;
use std::io::Read;

use gix::refs::FullName;
use gix::ObjectId;

use crate::pkt::{self, Line};

use super::{Command, Error};

pub(super) struct Request {
    pub(super) commands: Vec<Command>,
    pub(super) caps: HashSet<String>,
    pub(super) push_options: Vec<String>,
}

/// Most commands (and push options) parsed from one request, whatever the configured limit on
/// ref updates: reading stops here so memory stays bounded.
pub(super) const MAX_COMMANDS: usize = 100_000;

pub(super) fn parse_commands<R: Read>(reader: &mut pkt::Reader<R>) -> Result<Request, Error> {
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
