//! JWT handling: header decoding, HS256 verification and the claim checks on any input.
//! The first half is tried as a compact token; the second as a claims object.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use orbit_server::auth::token::{check_audience_and_issuer, identity_from_claims, Hs256};

fn hs() -> &'static Hs256 {
    static HS: OnceLock<Hs256> = OnceLock::new();
    HS.get_or_init(|| Hs256::new(b"orbit-fuzz-secret-0123456789abcdef").expect("key"))
}

fuzz_target!(|data: &[u8]| {
    let (token, claims) = data.split_at(data.len() / 2);
    if let Ok(token) = std::str::from_utf8(token) {
        let _ = josekit::jwt::decode_header(token);
        if let Ok(payload) = hs().verify(token) {
            let _ = identity_from_claims(&payload, SystemTime::now());
        }
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(claims) {
        if let Ok(payload) = josekit::jwt::JwtPayload::from_map(map) {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
            let _ = identity_from_claims(&payload, now);
            let _ = check_audience_and_issuer(&payload, "https://api.orbit.test", "https://idp/");
        }
    }
});
