//! What the server says first: the v0 reference advertisement of `info/refs` (upload-pack and
//! receive-pack) and the protocol v2 capability advertisement.

use std::io::{self, Write};

use crate::pkt;
use crate::refs::Snapshot;

/// The `agent=` we announce.
pub const AGENT: &str = concat!("orbit/", env!("CARGO_PKG_VERSION"));

/// Which service a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Clone and fetch.
    UploadPack,
    /// Push.
    ReceivePack,
}

impl Service {
    /// `git-upload-pack` or `git-receive-pack`.
    pub fn name(self) -> &'static str {
        match self {
            Service::UploadPack => "git-upload-pack",
            Service::ReceivePack => "git-receive-pack",
        }
    }

    /// Parses the `service=` query value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "git-upload-pack" => Some(Service::UploadPack),
            "git-receive-pack" => Some(Service::ReceivePack),
            _ => None,
        }
    }
}

/// Capabilities of upload-pack in protocol v0.
pub fn upload_pack_v0_capabilities(snapshot: &Snapshot) -> String {
    let mut caps = vec![
        "multi_ack_detailed".to_owned(),
        "no-done".into(),
        "side-band-64k".into(),
        "side-band".into(),
        "thin-pack".into(),
        "ofs-delta".into(),
        "shallow".into(),
        "deepen-since".into(),
        "deepen-not".into(),
        "deepen-relative".into(),
        "no-progress".into(),
        "include-tag".into(),
        "filter".into(),
        "allow-tip-sha1-in-want".into(),
        "allow-reachable-sha1-in-want".into(),
    ];
    if let Some(head) = &snapshot.head_symref {
        if snapshot.head.is_some() {
            caps.push(format!("symref=HEAD:{head}"));
        }
    }
    caps.push("object-format=sha1".into());
    caps.push(format!("agent={AGENT}"));
    caps.join(" ")
}

/// Capabilities of receive-pack.
pub fn receive_pack_capabilities() -> String {
    [
        "report-status",
        "report-status-v2",
        "delete-refs",
        "side-band-64k",
        "quiet",
        "atomic",
        "ofs-delta",
        "push-options",
        "object-format=sha1",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain(std::iter::once(format!("agent={AGENT}")))
    .collect::<Vec<_>>()
    .join(" ")
}

/// Writes the smart-HTTP `info/refs` body for protocol v0: the `# service=` header, then every
/// reference (peeled tags as `^{}`), capabilities on the first line.
pub fn info_refs_v0(out: &mut impl Write, service: Service, snapshot: &Snapshot) -> io::Result<()> {
    pkt::text(out, &format!("# service={}", service.name()))?;
    pkt::flush(out)?;
    let caps = match service {
        Service::UploadPack => upload_pack_v0_capabilities(snapshot),
        Service::ReceivePack => receive_pack_capabilities(),
    };
    let mut lines: Vec<(String, String)> = Vec::new();
    if service == Service::UploadPack {
        if let Some(head) = snapshot.head {
            lines.push((head.to_string(), "HEAD".into()));
        }
    }
    for r in &snapshot.refs {
        lines.push((r.target.to_string(), r.name.clone()));
        if service == Service::UploadPack {
            if let Some(p) = r.peeled {
                lines.push((p.to_string(), format!("{}^{{}}", r.name)));
            }
        }
    }
    if lines.is_empty() {
        lines.push(("0".repeat(40), "capabilities^{}".into()));
    }
    for (i, (id, name)) in lines.iter().enumerate() {
        if i == 0 {
            let mut line = format!("{id} {name}").into_bytes();
            line.push(0);
            line.extend_from_slice(caps.as_bytes());
            line.push(b'\n');
            pkt::data(out, &line)?;
        } else {
            pkt::text(out, &format!("{id} {name}"))?;
        }
    }
    pkt::flush(out)
}

/// Writes the protocol v2 capability advertisement. Like `git http-backend`, no `# service=`
/// header precedes it in v2.
pub fn info_refs_v2(out: &mut impl Write) -> io::Result<()> {
    for line in [
        "version 2".to_owned(),
        format!("agent={AGENT}"),
        "ls-refs=unborn".into(),
        "fetch=shallow filter".into(),
        "server-option".into(),
        "object-format=sha1".into(),
    ] {
        pkt::text(out, &line)?;
    }
    pkt::flush(out)
}
