//! JWT claims: verification of HS256 tokens, the claim checks shared by both algorithms, and
//! minting (for `orbit token mint` and tests).

use std::time::{Duration, SystemTime};

use josekit::jws::{JwsHeader, HS256};
use josekit::jwt::{self, JwtPayload};
use uuid::Uuid;

use super::scope::Scopes;
use super::Identity;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(30);

/// Why a token was refused. The message is safe to show to the caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not three base64url parts with a JSON header.
    #[error("malformed token")]
    Malformed,
    /// `alg` is not one we accept.
    #[error("unsupported algorithm {0:?} (HS256 and RS256 are accepted)")]
    UnsupportedAlg(String),
    /// An RS256 token, but no identity provider is configured.
    #[error("RS256 tokens are not accepted: no identity provider is configured")]
    Rs256NotConfigured,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The `kid` is not in the identity provider's key set.
    #[error("unknown signing key")]
    UnknownKey,
    /// The key set could not be fetched.
    #[error("the identity provider's key set is unavailable")]
    JwksUnavailable,
    /// `exp` is missing.
    #[error("the token has no expiry (exp)")]
    MissingExpiry,
    /// `exp` is in the past.
    #[error("the token has expired")]
    Expired,
    /// `exp` or `nbf` is not a usable NumericDate.
    #[error("the token's {0} claim is not a valid time")]
    BadTime(&'static str),
    /// `nbf` is in the future.
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// `aud` does not include the configured audience.
    #[error("wrong audience")]
    WrongAudience,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `sub` is missing or not a UUID.
    #[error("the subject (sub) must be a user UUID")]
    BadSubject,
    /// `scope` is not a string.
    #[error("the scope claim must be a space-separated string")]
    BadScope,
    /// The HS256 key could not be used.
    #[error("the HS256 key is unusable")]
    Key(#[source] josekit::JoseError),
    /// Signing failed.
    #[error("could not sign the token")]
    Sign(#[source] josekit::JoseError),
}

/// HS256 signing and verification with the shared secret.
pub struct Hs256 {
    signer: josekit::jws::alg::hmac::HmacJwsSigner,
    verifier: josekit::jws::alg::hmac::HmacJwsVerifier,
}

impl Hs256 {
    /// Builds signer and verifier from the secret bytes.
    pub fn new(secret: &[u8]) -> Result<Self, Error> {
        Ok(Self {
            signer: HS256.signer_from_bytes(secret).map_err(Error::Key)?,
            verifier: HS256.verifier_from_bytes(secret).map_err(Error::Key)?,
        })
    }

    /// Verifies the signature (and that `alg` is HS256) and returns the payload, unchecked.
    pub fn verify(&self, jwt: &str) -> Result<JwtPayload, Error> {
        jwt::decode_with_verifier(jwt, &self.verifier)
            .map(|(payload, _)| payload)
            .map_err(|_| Error::BadSignature)
    }

    /// Mints a token for `sub`, valid for `ttl`, with an optional `scope` claim.
    pub fn mint(&self, sub: Uuid, scope: Option<&str>, ttl: Duration) -> Result<String, Error> {
        let now = SystemTime::now();
        let mut payload = JwtPayload::new();
        payload.set_subject(sub.to_string());
        payload.set_issued_at(&now);
        payload.set_expires_at(&(now + ttl));
        payload.set_issuer("orbit");
        if let Some(scope) = scope {
            payload
                .set_claim("scope", Some(serde_json::Value::String(scope.to_owned())))
                .map_err(Error::Sign)?;
        }
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        jwt::encode_with_signer(&payload, &header, &self.signer).map_err(Error::Sign)
    }
}

/// Checks `aud` (string or array) contains `audience` and `iss` equals `issuer`.
pub fn check_audience_and_issuer(
    payload: &JwtPayload,
    audience: &str,
    issuer: &str,
) -> Result<(), Error> {
    if !payload
        .audience()
        .is_some_and(|auds| auds.contains(&audience))
    {
        return Err(Error::WrongAudience);
    }
    if payload.issuer() != Some(issuer) {
        return Err(Error::WrongIssuer);
    }
    Ok(())
}

/// Checks `exp` and `nbf` against `now` and extracts the identity (`sub`, `scope`).
/// A NumericDate claim (seconds since the epoch, possibly fractional) as a time; `None` when it is
/// not a number, negative, or beyond what `SystemTime` holds.
fn epoch_time(v: &serde_json::Value) -> Option<SystemTime> {
    let secs = v.as_f64().filter(|s| s.is_finite() && *s >= 0.0)?;
    let d = Duration::try_from_secs_f64(secs).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(d)
}

pub fn identity_from_claims(payload: &JwtPayload, now: SystemTime) -> Result<Identity, Error> {
    // Read from the raw claims: josekit's `expires_at`/`not_before` panic on negative or huge
    // numbers (found by fuzz/jwt).
    let exp = match payload.claim("exp") {
        None => return Err(Error::MissingExpiry),
        Some(v) => epoch_time(v).ok_or(Error::BadTime("exp"))?,
    };
    if exp.checked_add(LEEWAY).is_none_or(|t| t <= now) {
        return Err(Error::Expired);
    }
    if let Some(v) = payload.claim("nbf") {
        let nbf = epoch_time(v).ok_or(Error::BadTime("nbf"))?;
        if now.checked_add(LEEWAY).is_some_and(|limit| nbf > limit) {
            return Err(Error::NotYetValid);
        }
    }
    let user_id = payload
        .subject()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or(Error::BadSubject)?;
    let scopes = match payload.claim("scope") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Scopes::parse(s),
        Some(_) => return Err(Error::BadScope),
    };
    Ok(Identity { user_id, scopes })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `fuzz/` (jwt): josekit's time accessors panicked on these.
    #[test]
    fn hostile_times_are_refused_without_panicking() {
        let sub = Uuid::new_v4().to_string();
        let now = SystemTime::now();
        for (exp, nbf) in [
            (serde_json::json!(1e30), None),
            (serde_json::json!(-1), None),
            (serde_json::json!(u64::MAX), None),
            (serde_json::json!("soon"), None),
            (
                serde_json::json!(4_000_000_000u64),
                Some(serde_json::json!(-5)),
            ),
            (
                serde_json::json!(4_000_000_000u64),
                Some(serde_json::json!(1e300)),
            ),
        ] {
            let mut map = serde_json::Map::new();
            map.insert("sub".into(), serde_json::json!(sub));
            map.insert("exp".into(), exp.clone());
            if let Some(n) = &nbf {
                map.insert("nbf".into(), n.clone());
            }
            // josekit refuses some of them itself (negative, not a number).
            let Ok(payload) = JwtPayload::from_map(map) else {
                continue;
            };
            assert!(
                identity_from_claims(&payload, now).is_err(),
                "{exp} {nbf:?}"
            );
        }
    }

    #[test]
    fn mint_then_verify_round_trips() {
        let hs = Hs256::new(b"0123456789abcdef0123456789abcdef").expect("key");
        let sub = Uuid::new_v4();
        let t = hs
            .mint(sub, Some("orbit:repo:x/y:read"), Duration::from_secs(60))
            .expect("mint");
        let id = identity_from_claims(&hs.verify(&t).expect("verify"), SystemTime::now())
            .expect("claims");
        assert_eq!(id.user_id, sub);
        assert!(id.scopes.is_some());
    }

    #[test]
    fn expiry_and_not_before_are_enforced_with_leeway() {
        let mut p = JwtPayload::new();
        p.set_subject(Uuid::new_v4().to_string());
        let now = SystemTime::now();
        assert!(matches!(
            identity_from_claims(&p, now),
            Err(Error::MissingExpiry)
        ));
        p.set_expires_at(&(now - Duration::from_secs(10)));
        assert!(identity_from_claims(&p, now).is_ok(), "inside leeway");
        p.set_expires_at(&(now - Duration::from_secs(120)));
        assert!(matches!(identity_from_claims(&p, now), Err(Error::Expired)));
        p.set_expires_at(&(now + Duration::from_secs(120)));
        p.set_not_before(&(now + Duration::from_secs(300)));
        assert!(matches!(
            identity_from_claims(&p, now),
            Err(Error::NotYetValid)
        ));
    }
}
