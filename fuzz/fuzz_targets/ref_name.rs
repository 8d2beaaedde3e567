//! Ref-name checks: no panic, and a name Orbit accepts is one gix accepts as a full ref name
//! (so a later ref transaction cannot trip on it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    if gitcore::receive_pack::check_ref_name(name).is_ok() {
        assert!(
            gix::refs::FullName::try_from(name).is_ok(),
            "accepted {name:?} that gix refuses"
        );
    }
    if gitcore::storage::is_valid_branch_name(name) {
        assert!(gitcore::storage::branch_ref_name(name).is_ok(), "{name:?}");
    }
});
