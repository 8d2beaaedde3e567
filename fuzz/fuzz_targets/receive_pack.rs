//! receive-pack: commands and a pack, ingested into a fresh copy of a real repository. Whatever
//! the input, no panic; afterwards every ref points at an object the repository has, and no
//! quarantine directory is left behind.
#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::atomic::AtomicBool;

use gitcore::receive_pack::{serve, Options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tmp = common::copy_of_template();
    let path = tmp.path().join("repo.git");
    let mut out = Vec::new();
    let interrupt = AtomicBool::new(false);
    let options = Options {
        max_pack_bytes: 1 << 20,
        max_object_bytes: 1 << 20,
        thread_limit: Some(1),
        ..Options::default()
    };
    let _ = serve(&path, data, &mut out, &interrupt, &options);
    let repo = gitcore::storage::open(&path).expect("reopen");
    let refs = repo.references().expect("refs");
    for r in refs.all().expect("iter").flatten() {
        if let Some(id) = r.target().try_id() {
            assert!(repo.has_object(id), "{} points at missing {id}", r.name().as_bstr());
        }
    }
    for e in std::fs::read_dir(path.join("objects")).expect("objects").flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        assert!(!name.starts_with("incoming-") && !name.starts_with("quarantine"), "left {name}");
    }
});
