//! The identity provider's JSON Web Key Set: fetched with a timeout, cached, refreshed when a
//! token names an unknown `kid` (at most once per minimum interval), and refreshed when stale.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use josekit::jwk::JwkSet;
use josekit::jws::alg::rsassa::RsassaJwsVerifier;
use josekit::jws::RS256;
use reqwest::Url;
use tokio::sync::{Mutex, RwLock};

use super::token::Error;

/// How long a fetched key set is used before it is fetched again.
const MAX_AGE: Duration = Duration::from_secs(3600);

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, RsassaJwsVerifier>,
    /// Keys without a `kid`, tried when a token has none.
    anonymous: Vec<RsassaJwsVerifier>,
    fetched_at: Option<Instant>,
}

/// A cached JWKS.
pub struct JwksCache {
    url: Url,
    client: reqwest::Client,
    min_refresh_interval: Duration,
    keys: RwLock<Keys>,
    /// Serialises fetches and remembers when the last one was attempted.
    last_attempt: Mutex<Option<Instant>>,
}

impl JwksCache {
    /// A cache over the key set at `url`, fetched lazily.
    pub fn new(url: Url, timeout: Duration, min_refresh_interval: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .unwrap_or_default();
        Self {
            url,
            client,
            min_refresh_interval,
            keys: RwLock::new(Keys::default()),
            last_attempt: Mutex::new(None),
        }
    }

    /// The verifier for `kid`, fetching or refreshing the key set when needed.
    pub async fn verifier_for(&self, kid: Option<&str>) -> Result<RsassaJwsVerifier, Error> {
        if let Some(v) = self.lookup(kid, false).await {
            return Ok(v);
        }
        self.refresh().await;
        // After a failed refresh, stale keys are better than none.
        if let Some(v) = self.lookup(kid, true).await {
            return Ok(v);
        }
        if self.keys.read().await.fetched_at.is_none() {
            Err(Error::JwksUnavailable)
        } else {
            Err(Error::UnknownKey)
        }
    }

    async fn lookup(&self, kid: Option<&str>, allow_stale: bool) -> Option<RsassaJwsVerifier> {
        let keys = self.keys.read().await;
        let fresh = keys.fetched_at.is_some_and(|t| t.elapsed() < MAX_AGE);
        if !fresh && !allow_stale {
            return None;
        }
        match kid {
            Some(kid) => keys.by_kid.get(kid).cloned(),
            None if keys.anonymous.len() + keys.by_kid.len() == 1 => keys
                .anonymous
                .first()
                .or_else(|| keys.by_kid.values().next())
                .cloned(),
            None => None,
        }
    }

    /// Fetches the key set unless another fetch happened within the minimum interval.
    /// A failed fetch keeps the previous keys.
    async fn refresh(&self) {
        let mut last = self.last_attempt.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.min_refresh_interval) {
            return;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => *self.keys.write().await = keys,
            Err(e) => tracing::warn!(url = %self.url, error = %e, "could not fetch the JWKS"),
        }
    }

    async fn fetch(&self) -> Result<Keys, String> {
        let resp = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        let set = JwkSet::from_bytes(&body).map_err(|e| e.to_string())?;
        let mut keys = Keys {
            fetched_at: Some(Instant::now()),
            ..Keys::default()
        };
        for jwk in set.keys() {
            if jwk.key_type() != "RSA" {
                continue;
            }
            let Ok(verifier) = RS256.verifier_from_jwk(jwk) else {
                continue;
            };
            match jwk.key_id() {
                Some(kid) => {
                    keys.by_kid.insert(kid.to_owned(), verifier);
                }
                None => keys.anonymous.push(verifier),
            }
        }
        Ok(keys)
    }
}
