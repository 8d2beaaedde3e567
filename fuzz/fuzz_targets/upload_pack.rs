//! upload-pack: the first input byte picks protocol v0 or v2, the rest is the request body,
//! served from a real repository into memory. Any request ends in an answer or an error.
#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

use gitcore::upload_pack::{serve, Options, Protocol};
use libfuzzer_sys::fuzz_target;

fn repo() -> &'static gix::ThreadSafeRepository {
    static REPO: OnceLock<gix::ThreadSafeRepository> = OnceLock::new();
    REPO.get_or_init(|| {
        gitcore::storage::open(common::template())
            .expect("open")
            .into_sync()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let protocol = if first & 1 == 0 { Protocol::V0 } else { Protocol::V2 };
    let repo = repo().to_thread_local();
    let mut out = Vec::new();
    let interrupt = AtomicBool::new(false);
    let options = Options {
        thread_limit: Some(1),
        pack_cache: None,
    };
    let _ = serve(&repo, protocol, body, &mut out, &interrupt, &options);
});
