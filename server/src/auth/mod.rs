//! Authentication: who is calling, and with what restrictions.
//!
//! - `Authorization: Bearer <JWT>`: RS256 via the identity provider's JWKS ([`jwks`]) or HS256 via
//!   the shared secret ([`secret`]); claims are checked in [`token`].
//! - `X-Internal-Token`: service-to-service, compared in constant time; opens internal and admin
//!   routes only, and a JWT never does.
//! - `orbit:` scopes restrict a token to named repositories ([`scope`]).
//!
//! Extractors: [`Caller`] (optional identity, for user routes) and [`Internal`] (for internal and
//! admin routes).

pub mod jwks;
pub mod scope;
pub mod secret;
pub mod token;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::api::error::ApiError;
use crate::config::Config;
pub use scope::{Access, Scopes};

/// An authenticated user, as proven by a JWT.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The user's UUID (`sub`).
    pub user_id: Uuid,
    /// `None`: full rights of the user. `Some`: restricted to these `orbit:` scopes.
    pub scopes: Option<Scopes>,
}

/// A JWT the rate limiter already verified for this request, with what it proved; the
/// extractors reuse it instead of verifying the same token twice.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The token as presented.
    pub jwt: String,
    /// What it proved.
    pub identity: Identity,
}

/// The identity of `jwt` if the request already carries its verification.
pub fn already_verified(extensions: &axum::http::Extensions, jwt: &str) -> Option<Identity> {
    extensions
        .get::<Verified>()
        .filter(|v| v.jwt == jwt)
        .map(|v| v.identity.clone())
}

/// HS256 tokens kept verified, at most.
const VERIFIED_HS256_TOKENS: usize = 4096;

/// Verifies credentials. Built once at startup and shared.
pub struct Authenticator {
    hs256: token::Hs256,
    /// HS256 tokens whose signature was verified, with their claims: the key never changes
    /// while the process runs, so a signature checked once is good for the token's life (its
    /// `exp` and `nbf` are still checked on every use). Programs send the same token all day;
    /// this spares the base64, JSON and HMAC work on each request. Bounded; cleared when full.
    verified_hs256: std::sync::Mutex<std::collections::HashMap<String, josekit::jwt::JwtPayload>>,
    rs256: Option<(jwks::JwksCache, crate::config::Auth0Config)>,
    internal_token: Option<Vec<u8>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("rs256", &self.rs256.as_ref().map(|(_, c)| &c.domain))
            .field("internal_token", &self.internal_token.is_some())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Builds the authenticator from configuration and the HS256 secret in effect.
    pub fn new(config: &Config, hs256_secret: &[u8]) -> Result<Self, token::Error> {
        let rs256 = config.auth0.as_ref().map(|a| {
            (
                jwks::JwksCache::new(
                    a.jwks_url.clone(),
                    config.jwks_fetch_timeout,
                    config.jwks_refresh_min_interval,
                ),
                a.clone(),
            )
        });
        Ok(Self {
            hs256: token::Hs256::new(hs256_secret)?,
            verified_hs256: Default::default(),
            rs256,
            internal_token: config
                .internal_token
                .as_ref()
                .map(|t| t.as_bytes().to_vec()),
        })
    }

    /// Verifies a JWT and returns who it names.
    pub async fn verify_jwt(&self, jwt: &str) -> Result<Identity, token::Error> {
        let known = self
            .verified_hs256
            .lock()
            .ok()
            .and_then(|m| m.get(jwt).cloned());
        if let Some(claims) = known {
            return token::identity_from_claims(&claims, std::time::SystemTime::now());
        }
        let header = josekit::jwt::decode_header(jwt).map_err(|_| token::Error::Malformed)?;
        let alg = header.claim("alg").and_then(|v| v.as_str()).unwrap_or("");
        let claims = match alg {
            "HS256" => {
                let claims = self.hs256.verify(jwt)?;
                if let Ok(mut m) = self.verified_hs256.lock() {
                    if m.len() >= VERIFIED_HS256_TOKENS {
                        m.clear();
                    }
                    m.insert(jwt.to_owned(), claims.clone());
                }
                claims
            }
            "RS256" => {
                let Some((cache, auth0)) = &self.rs256 else {
                    return Err(token::Error::Rs256NotConfigured);
                };
                let kid = header
                    .claim("kid")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned);
                let verifier = cache.verifier_for(kid.as_deref()).await?;
                let (payload, _) = josekit::jwt::decode_with_verifier(jwt, &verifier)
                    .map_err(|_| token::Error::BadSignature)?;
                token::check_audience_and_issuer(&payload, &auth0.audience, &auth0.issuer)?;
                payload
            }
            "none" | "" => return Err(token::Error::UnsupportedAlg("none".into())),
            other => return Err(token::Error::UnsupportedAlg(other.to_owned())),
        };
        token::identity_from_claims(&claims, std::time::SystemTime::now())
    }

    /// Whether `presented` is the internal service token. Constant time in the token's content.
    pub fn is_internal_token(&self, presented: &str) -> bool {
        match &self.internal_token {
            Some(expected) => bool::from(expected.as_slice().ct_eq(presented.as_bytes())),
            None => false,
        }
    }

    /// Whether internal and admin routes are open at all (`INTERNAL_SERVICE_TOKEN` is set).
    pub fn internal_routes_enabled(&self) -> bool {
        self.internal_token.is_some()
    }
}

/// The bearer token of `Authorization`, if that header is present.
///
/// `Ok(None)`: no header. `Err`: a header that is not `Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?;
    let mut parts = value.splitn(2, ' ');
    let scheme = parts.next().unwrap_or("");
    let rest = parts.next().unwrap_or("").trim();
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthorized(
            "the Authorization header must be 'Bearer <token>'",
        ));
    }
    if rest.is_empty() {
        return Err(ApiError::unauthorized("the bearer token is empty"));
    }
    Ok(Some(rest))
}

/// The caller of a user route: anonymous (`None`) or an authenticated [`Identity`].
///
/// A present but invalid credential is rejected (401) even on routes that allow anonymous
/// callers, like GitHub does. `X-Internal-Token` is ignored here: it never opens a user route.
#[derive(Debug, Clone)]
pub struct Caller(pub Option<Identity>);

impl Caller {
    /// The identity, or 401 for an anonymous caller.
    pub fn require(&self) -> Result<&Identity, ApiError> {
        self.0.as_ref().ok_or_else(|| {
            ApiError::unauthorized("authentication required: send Authorization: Bearer <token>")
        })
    }
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Some(jwt) = bearer(&parts.headers)? else {
            return Ok(Caller(None));
        };
        if let Some(identity) = already_verified(&parts.extensions, jwt) {
            return Ok(Caller(Some(identity)));
        }
        let auth = Arc::<Authenticator>::from_ref(state);
        match auth.verify_jwt(jwt).await {
            Ok(identity) => Ok(Caller(Some(identity))),
            Err(e) => {
                tracing::debug!(error = %e, "rejected bearer token");
                Err(ApiError::unauthorized(format!("invalid token: {e}")))
            }
        }
    }
}

/// Proof that the request carries the internal service token.
#[derive(Debug, Clone, Copy)]
pub struct Internal;

/// The header carrying the internal service token.
pub const INTERNAL_TOKEN_HEADER: &str = "x-internal-token";

impl<S> FromRequestParts<S> for Internal
where
    S: Send + Sync,
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Arc::<Authenticator>::from_ref(state);
        if !auth.internal_routes_enabled() {
            return Err(ApiError::unauthorized(
                "internal routes are closed: INTERNAL_SERVICE_TOKEN is not configured",
            ));
        }
        let presented = parts
            .headers
            .get(INTERNAL_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized("this route needs the X-Internal-Token header")
            })?;
        if auth.is_internal_token(presented) {
            Ok(Internal)
        } else {
            Err(ApiError::unauthorized("invalid internal token"))
        }
    }
}
