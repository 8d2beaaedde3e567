//! Git on gix for Orbit.
//!
//! This crate is the git half of Orbit: repository storage today, and the native smart-HTTP
//! protocol (upload-pack, receive-pack), pack generation and ingestion, and repository reads as
//! they land. It knows nothing of HTTP, async runtimes, databases or serde: it works on paths,
//! `impl Read`/`impl Write` and gix repository handles, so it can be tested and benchmarked alone.
//!
//! It never runs the `git` executable.

pub mod storage;
