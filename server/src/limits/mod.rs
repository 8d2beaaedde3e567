//! Rate limits per caller (GCRA with `governor`, shared through Redis when `REDIS_URL` is set)
//! and admission control for git work ([`admission`]).
//!
//! Every request but `/health` is charged to one caller and one resource:
//! - the caller is the JWT subject (`user:<uuid>`), the internal service (`internal`) for a valid
//!   `X-Internal-Token`, or the client IP (`ip:<addr>`) for anonymous callers and invalid
//!   credentials; `X-Forwarded-For` is read only when the peer is in `TRUSTED_PROXIES`;
//! - the resource is `git` for smart-HTTP routes, `rest-read` for GET/HEAD/OPTIONS and
//!   `rest-write` for the rest, each with its own quota per minute (`RATE_LIMIT_*`, 0 turns one off).
//!
//! Answers carry `X-RateLimit-Limit`, `-Remaining`, `-Reset` (epoch seconds when the bucket is full
//! again) and `-Resource`; past the quota: 429 with `Retry-After`, the error envelope
//! (`RATE_LIMITED`) on REST and a plain-text line git prints on git routes.

pub mod admission;
mod redis_gcra;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::api::error::ApiError;
use crate::config::LimitsConfig;
use crate::state::AppState;

/// What a request is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// REST GET/HEAD/OPTIONS.
    RestRead,
    /// Other REST methods.
    RestWrite,
    /// Git smart HTTP.
    Git,
}

impl Resource {
    /// The name in `X-RateLimit-Resource` and in Redis keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::RestRead => "rest-read",
            Resource::RestWrite => "rest-write",
            Resource::Git => "git",
        }
    }
}

/// The outcome of charging one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The quota (requests per minute, also the burst).
    pub limit: u32,
    /// Requests left in the burst after this one.
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset_after: Duration,
    /// For a refused request: when to retry.
    pub retry_after: Duration,
}

type Local =
    RateLimiter<String, HashMapStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// The limiters of one process: a local GCRA per resource and, when configured, Redis.
pub struct Limiter {
    config: LimitsConfig,
    local: Vec<(Resource, Local, u32)>,
    redis: Option<redis_gcra::Shared>,
    clock: DefaultClock,
    last_fallback_log: AtomicI64,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// Limiters for `config`; Redis is connected lazily (`redis_url`).
    pub fn new(config: LimitsConfig, redis_url: Option<&reqwest::Url>) -> Self {
        let mut local = Vec::new();
        for (resource, per_minute) in [
            (Resource::RestRead, config.rest_read),
            (Resource::RestWrite, config.rest_write),
            (Resource::Git, config.git),
        ] {
            if let Some(n) = NonZeroU32::new(per_minute) {
                let limiter = RateLimiter::hashmap(Quota::per_minute(n))
                    .with_middleware::<StateInformationMiddleware>();
                local.push((resource, limiter, per_minute));
            }
        }
        let redis = redis_url.and_then(|u| redis_gcra::Shared::new(u.as_str()));
        Self {
            config,
            local,
            redis,
            clock: DefaultClock::default(),
            last_fallback_log: AtomicI64::new(0),
        }
    }

    /// Charges one request of `caller` to `resource`; `None` when that resource is unlimited.
    pub async fn check(&self, resource: Resource, caller: &str) -> Option<Decision> {
        let (_, local, limit) = self.local.iter().find(|(r, _, _)| *r == resource)?;
        let limit = *limit;
        let period = Duration::from_secs(60) / limit;
        if let Some(redis) = &self.redis {
            let key = format!("orbit:rl:{}:{caller}", resource.as_str());
            match redis.check(&key, period, limit).await {
                Ok(d) => return Some(d),
                Err(e) => self.log_fallback(&e),
            }
        }
        Some(match local.check_key(&caller.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit,
                    remaining,
                    reset_after: period * (limit - remaining.min(limit)),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Decision {
                    allowed: false,
                    limit,
                    remaining: 0,
                    reset_after: period * limit,
                    retry_after: wait,
                }
            }
        })
    }

    fn log_fallback(&self, e: &str) {
        let now = unix_now().as_secs() as i64;
        let last = self.last_fallback_log.load(Ordering::Relaxed);
        if now - last >= 60
            && self
                .last_fallback_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(error = %e, "rate limits: Redis unavailable, using this process's own limits (logged once a minute)");
        }
    }

    /// Forgets idle callers of the local limiters (call now and then).
    pub fn shrink(&self) {
        for (_, l, _) in &self.local {
            l.retain_recent();
        }
    }

    /// The configuration in effect.
    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Whether `path` is a git smart-HTTP route.
fn is_git_path(path: &str) -> bool {
    path.ends_with("/info/refs")
        || path.ends_with("/git-upload-pack")
        || path.ends_with("/git-receive-pack")
}

/// The client's address: the peer, or the first untrusted hop of `X-Forwarded-For` when the
/// peer is a trusted proxy.
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[(IpAddr, u8)],
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.iter().any(|(net, bits)| in_net(peer, *net, *bits)) {
        return Some(peer);
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect();
    // Walk from the nearest hop back; the first one we do not trust is the client.
    for ip in hops.iter().rev() {
        if !trusted.iter().any(|(net, bits)| in_net(*ip, *net, *bits)) {
            return Some(*ip);
        }
    }
    Some(hops.first().copied().unwrap_or(peer))
}

/// Whether `ip` is in `net/bits`.
pub fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let bits = u32::from(bits.min(32));
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let bits = u32::from(bits.min(128));
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V4(_)) => a
            .to_ipv4_mapped()
            .is_some_and(|a| in_net(IpAddr::V4(a), net, bits)),
        _ => false,
    }
}

/// The peer address of a connection, as axum's `ConnectInfo` (works over TLS too).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

macro_rules! peer_from {
    ($($listener:ty),* $(,)?) => {$(
        impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, $listener>> for Peer {
            fn connect_info(stream: axum::serve::IncomingStream<'_, $listener>) -> Self {
                Peer(*stream.remote_addr())
            }
        }
    )*};
}

peer_from!(
    tokio::net::TcpListener,
    crate::tls::TlsListener,
    crate::tls::NoDelayListener,
);

/// Who a request is charged to, and the JWT verification done on the way (kept for the handler).
async fn caller_key(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    git: bool,
) -> (String, Option<crate::auth::Verified>) {
    if !git {
        if let Some(t) = headers
            .get(crate::auth::INTERNAL_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            if state.auth.internal_routes_enabled() && state.auth.is_internal_token(t) {
                return ("internal".to_owned(), None);
            }
        }
    }
    let jwt = if git {
        crate::git_http::git_token(headers).ok().flatten()
    } else {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_owned())
    };
    if let Some(jwt) = jwt {
        if let Ok(identity) = state.auth.verify_jwt(&jwt).await {
            let key = format!("user:{}", identity.user_id);
            return (key, Some(crate::auth::Verified { jwt, identity }));
        }
    }
    let key = match client_ip(peer, headers, &state.config.limits.trusted_proxies) {
        Some(ip) => format!("ip:{ip}"),
        None => "ip:unknown".to_owned(),
    };
    (key, None)
}

fn set_headers(h: &mut HeaderMap, resource: Resource, d: &Decision) {
    let reset = (unix_now() + d.reset_after).as_secs();
    for (name, value) in [
        ("x-ratelimit-limit", d.limit.to_string()),
        ("x-ratelimit-remaining", d.remaining.to_string()),
        ("x-ratelimit-reset", reset.to_string()),
        ("x-ratelimit-resource", resource.as_str().to_owned()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
}

/// The middleware: charges the request, answers 429 past the quota, and adds the headers.
pub async fn rate_limit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/health" || path == "/v1/health" {
        return next.run(req).await;
    }
    let git = is_git_path(path);
    let resource = if git {
        Resource::Git
    } else if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        Resource::RestRead
    } else {
        Resource::RestWrite
    };
    let limiter: Arc<Limiter> = state.limiter.clone();
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0 .0.ip());
    let (key, verified) = caller_key(&state, req.headers(), peer, git).await;
    if let Some(v) = verified {
        req.extensions_mut().insert(v);
    }
    let Some(decision) = limiter.check(resource, &key).await else {
        return next.run(req).await;
    };
    if !decision.allowed {
        let secs = decision.retry_after.as_secs_f64().ceil().max(1.0) as u64;
        let mut resp = if git {
            (
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "rate limit exceeded: {} git requests per minute; retry in {secs}s\n",
                    decision.limit
                ),
            )
                .into_response()
        } else {
            ApiError::rate_limited(format!(
                "rate limit exceeded: {} {} requests per minute; retry in {secs}s",
                decision.limit,
                resource.as_str()
            ))
            .into_response()
        };
        set_headers(resp.headers_mut(), resource, &decision);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    let mut resp = next.run(req).await;
    set_headers(resp.headers_mut(), resource, &decision);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(read: u32) -> LimitsConfig {
        LimitsConfig {
            rest_read: read,
            rest_write: 0,
            git: 5,
            ..LimitsConfig::default()
        }
    }

    #[tokio::test]
    async fn quota_counts_down_then_refuses_per_caller() {
        let l = Limiter::new(cfg(3), None);
        for left in [2, 1, 0] {
            let d = l
                .check(Resource::RestRead, "user:a")
                .await
                .expect("limited");
            assert!(d.allowed);
            assert_eq!((d.limit, d.remaining), (3, left));
        }
        let d = l
            .check(Resource::RestRead, "user:a")
            .await
            .expect("limited");
        assert!(!d.allowed);
        assert!(
            d.retry_after > Duration::from_secs(10) && d.retry_after <= Duration::from_secs(20)
        );
        // Another caller and another resource have their own buckets; 0 is unlimited.
        assert!(
            l.check(Resource::RestRead, "user:b")
                .await
                .expect("x")
                .allowed
        );
        assert!(l.check(Resource::Git, "user:a").await.expect("x").allowed);
        assert!(l.check(Resource::RestWrite, "user:a").await.is_none());
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_proxies() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 10.0.0.7"),
        );
        let peer: IpAddr = "10.0.0.1".parse().expect("ip");
        let trusted = vec![("10.0.0.0".parse().expect("ip"), 8)];
        assert_eq!(
            client_ip(Some(peer), &h, &trusted),
            Some("203.0.113.9".parse().expect("ip"))
        );
        assert_eq!(client_ip(Some(peer), &h, &[]), Some(peer));
        let outsider: IpAddr = "198.51.100.2".parse().expect("ip");
        assert_eq!(client_ip(Some(outsider), &h, &trusted), Some(outsider));
        assert!(in_net(
            "::ffff:10.1.2.3".parse().expect("ip"),
            "10.0.0.0".parse().expect("ip"),
            8
        ));
        assert!(!in_net(
            "11.0.0.1".parse().expect("ip"),
            "10.0.0.0".parse().expect("ip"),
            8
        ));
    }
}
