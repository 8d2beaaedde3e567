//! The GCRA of [`super::Limiter`] on Redis, as one Lua script (atomic across every Orbit process
//! sharing the Redis), with Redis's own clock. Every call is bounded by 250 ms; a slow or absent
//! Redis is an error the caller answers with its local limiter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use super::Decision;

/// Keys hold the theoretical arrival time (ms); they expire when the bucket is full again.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local period = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + period
local allow_at = new_tat - period * burst
if allow_at > now then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, new_tat - now))
local remaining = math.floor((now + period * burst - new_tat) / period)
return {1, remaining, new_tat - now, 0}
"#;

/// How long one limiter call may take before the local limiter answers instead.
const TIMEOUT: Duration = Duration::from_millis(250);

/// A lazily connected, self-reconnecting Redis connection and the script.
pub struct Shared {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    script: redis::Script,
    /// After a failure, Redis is skipped until this time (ms since the epoch), so an outage
    /// costs one timeout a second, not one per request.
    skip_until_ms: AtomicU64,
}

/// How long Redis is left alone after a failure.
const BREAK: Duration = Duration::from_secs(1);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Shared {
    /// `None` when the URL is not one the redis crate accepts.
    pub fn new(url: &str) -> Option<Self> {
        match redis::Client::open(url) {
            Ok(client) => Some(Self {
                client,
                conn: OnceCell::new(),
                script: redis::Script::new(SCRIPT),
                skip_until_ms: AtomicU64::new(0),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "REDIS_URL: unusable; rate limits stay local");
                None
            }
        }
    }

    async fn connection(&self) -> Result<ConnectionManager, String> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT)
            .set_number_of_retries(1);
        self.conn
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .cloned()
            .map_err(|e| format!("cannot connect: {e}"))
    }

    fn broken(&self, e: String) -> String {
        self.skip_until_ms
            .store(now_ms() + BREAK.as_millis() as u64, Ordering::Relaxed);
        e
    }

    /// Charges one request to `key`.
    pub async fn check(&self, key: &str, period: Duration, limit: u32) -> Result<Decision, String> {
        if now_ms() < self.skip_until_ms.load(Ordering::Relaxed) {
            return Err("Redis failed less than a second ago".to_owned());
        }
        let period_ms = period.as_millis().max(1) as u64;
        let run = async {
            let mut conn = self.connection().await?;
            self.script
                .key(key)
                .arg(period_ms)
                .arg(limit)
                .invoke_async::<Vec<i64>>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        };
        let reply = match tokio::time::timeout(TIMEOUT, run).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(self.broken(e)),
            Err(_) => {
                return Err(self.broken(format!("no answer within {} ms", TIMEOUT.as_millis())))
            }
        };
        let [allowed, remaining, reset_ms, retry_ms] = reply[..] else {
            return Err(format!("unexpected script reply {reply:?}"));
        };
        let ms = |v: i64| Duration::from_millis(u64::try_from(v).unwrap_or(0));
        Ok(Decision {
            allowed: allowed == 1,
            limit,
            remaining: u32::try_from(remaining).unwrap_or(0),
            reset_after: ms(reset_ms),
            retry_after: ms(retry_ms),
        })
    }
}
