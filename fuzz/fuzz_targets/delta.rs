//! The delta codec: `apply` on any bytes never panics, and `encode` then `apply` gives the
//! target back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gitcore::delta::apply(&data[..data.len() / 3], &data[data.len() / 3..]);
    let (source, target) = data.split_at(data.len() / 2);
    if let Some(delta) = gitcore::delta::encode(source, target, usize::MAX) {
        assert_eq!(gitcore::delta::apply(source, &delta).as_deref(), Some(target));
    }
});
