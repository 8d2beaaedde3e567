//! Git on gix for Orbit.
//!
//! This crate is the git half of Orbit: repository storage, the native smart-HTTP protocol
//! (upload-pack for clone and fetch, receive-pack for push), pack generation and ingestion. It
//! knows nothing of HTTP, async runtimes, databases or serde: it works on paths, `impl Read` /
//! `impl Write` and gix repository handles, so it can be tested and benchmarked alone.
//!
//! It never runs the `git` executable.

pub mod advertise;
pub mod client;
pub mod delta;
pub mod fsck;
pub mod lock;
pub mod merge;
pub mod pack;
pub mod pack_cache;
pub mod pkt;
pub mod protection;
pub mod read;
pub mod receive_pack;
pub mod ref_journal;
pub mod refs;
pub mod shallow;
pub mod storage;
pub mod upload_pack;
pub mod write;

pub use gix::{ObjectId, Repository, ThreadSafeRepository};

/// An error and all its causes on one line (`error: cause: cause`), for git users and logs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
