//! [`RedisIncoming`]: the scale-out incoming store on Redis.
//!
//! # Keys (all under `{prefix}:`)
//!
//! - `measures:{metric}`: a list; each `append` RPUSHes one entry per batch,
//!   a measures body as in `codec` (16-byte head, then the timestamps and
//!   values as little-endian arrays).
//! - `sack:{n}`: a set of the metric ids of sack `n` with pending measures.
//! - `counts`: a hash, metric id → pending measures (for `details`).
//! - `total`: pending measures over all metrics.
//! - channel `wakeup`: every append PUBLISHes to it; each process listens and
//!   wakes its metricd.
//!
//! An append is one MULTI/EXEC transaction; `acknowledge` and `forget` are Lua
//! scripts, so the set, the counters and the lists always agree. `read`
//! remembers how many list entries it returned per metric and `acknowledge`
//! LTRIMs exactly that many from the head: entries RPUSHed meanwhile stay.
//!
//! Acknowledging trims by count, so a metric must not be forgotten while a
//! `read` of it is unacknowledged and then receive new measures before that
//! acknowledgement (the janitor forgets only deleted metrics, which accept no
//! more measures).
//!
//! Durability is Redis's: `append` returns when Redis has executed the
//! transaction, which survives a crash of gnocchid; surviving a crash of Redis
//! itself takes `appendonly yes` with `appendfsync always` on the server.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};
use roaring::RoaringBitmap;
use tokio::task::JoinHandle;

use super::codec;
use super::{
    check_sack, sack_of, validate, Backlog, Incoming, IncomingError, MeasureBatch, Measures,
    MetricSeq, Notifier, Pending, Receipt, Sack, Wakeup,
};

const DEFAULT_PREFIX: &str = "gnocchid";
/// Batches are split into list entries of at most this many measures.
const ENTRY_MAX_MEASURES: usize = 1 << 20;
/// Metrics per pipelined LRANGE round trip, and per acknowledge script call.
const METRICS_PER_ROUND_TRIP: usize = 1000;

const ACK_SCRIPT: &str = r"
-- KEYS: sack set, total, counts, then one list per metric
-- ARGV: per metric: id, entries read, measures read
local done = 0
for i = 1, #KEYS - 3 do
  local key = KEYS[3 + i]
  local metric = ARGV[3 * i - 2]
  local n = tonumber(ARGV[3 * i - 1])
  local c = tonumber(ARGV[3 * i])
  redis.call('LTRIM', key, n, -1)
  done = done + c
  if redis.call('LLEN', key) == 0 then
    redis.call('SREM', KEYS[1], metric)
    redis.call('HDEL', KEYS[3], metric)
  else
    redis.call('HINCRBY', KEYS[3], metric, -c)
  end
end
redis.call('DECRBY', KEYS[2], done)
return done
";

const FORGET_SCRIPT: &str = r"
-- KEYS: sack set, total, counts, list; ARGV: metric id
local c = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
redis.call('DEL', KEYS[4])
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if c ~= 0 then redis.call('DECRBY', KEYS[2], c) end
return c
";

/// The scale-out incoming store: a Redis list per metric, a set per sack and
/// counters, shared by every gnocchid process pointing at the same Redis and
/// prefix. See the [module documentation](self) for keys and guarantees.
pub struct RedisIncoming {
    conn: ConnectionManager,
    client: Client,
    prefix: String,
    sack_count: u32,
    notifier: Arc<Notifier>,
    listener: JoinHandle<()>,
    ack: Script,
    forget: Script,
}

impl std::fmt::Debug for RedisIncoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: not shown.
        f.debug_struct("RedisIncoming")
            .field("prefix", &self.prefix)
            .field("sack_count", &self.sack_count)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisIncoming {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Splits `?prefix=…` off a Redis URL; other query parameters stay.
fn split_prefix(url: &str) -> Result<(String, String), IncomingError> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    let mut prefix = DEFAULT_PREFIX.to_string();
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("prefix=") {
            Some(value) => prefix = value.to_string(),
            None => rest.push(pair),
        }
    }
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if prefix.is_empty() || !prefix.chars().all(valid) {
        return Err(IncomingError::InvalidUrl {
            reason:
                "redis key prefix must be non-empty ASCII letters, digits, '_', '-', '.' or ':'"
                    .into(),
        });
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, prefix))
}

impl RedisIncoming {
    /// Connects to `redis://host:port/db?prefix=name` (prefix default
    /// `gnocchid`) and subscribes to the wake-up channel before returning, so
    /// no append made after this returns goes unnoticed. Must run inside a
    /// tokio runtime (a listener task is spawned).
    pub async fn connect(url: &str, sack_count: u32) -> Result<Self, IncomingError> {
        let (url, prefix) = split_prefix(url)?;
        let client = Client::open(url.as_str()).map_err(|_| IncomingError::InvalidUrl {
            reason: "not a valid redis URL".into(),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(30)))
            .set_number_of_retries(2);
        let conn = client.get_connection_manager_with_config(config).await?;
        let channel = format!("{prefix}:wakeup");
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&channel).await?;
        let notifier = Arc::new(Notifier::new());
        let listener = tokio::spawn(listen(client.clone(), channel, notifier.clone(), pubsub));
        Ok(Self {
            conn,
            client,
            prefix,
            sack_count: sack_count.max(1),
            notifier,
            listener,
            ack: Script::new(ACK_SCRIPT),
            forget: Script::new(FORGET_SCRIPT),
        })
    }

    /// The key prefix (without the trailing `:`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Deletes every key under the prefix (tests, decommissioning). Not atomic
    /// with concurrent appends.
    pub async fn destroy(&self) -> Result<(), IncomingError> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}:*", self.prefix);
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async::<()>(&mut conn)
                    .await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    fn list_key(&self, metric: MetricSeq) -> String {
        format!("{}:measures:{metric}", self.prefix)
    }

    fn sack_key(&self, sack: Sack) -> String {
        format!("{}:sack:{}", self.prefix, sack.0)
    }

    fn counts_key(&self) -> String {
        format!("{}:counts", self.prefix)
    }

    fn total_key(&self) -> String {
        format!("{}:total", self.prefix)
    }

    /// The redis client (e.g. to open more connections for locks).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// Forwards wake-up messages to the local notifier; resubscribes after a
/// lost connection (and then wakes everyone, messages may have been missed).
async fn listen(
    client: Client,
    channel: String,
    notifier: Arc<Notifier>,
    first: redis::aio::PubSub,
) {
    let mut pubsub = Some(first);
    loop {
        if let Some(subscribed) = pubsub.take() {
            let mut messages = subscribed.into_on_message();
            while messages.next().await.is_some() {
                notifier.notify();
            }
            tracing::warn!(
                channel,
                "lost the incoming wake-up subscription; reconnecting"
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let attempt = async {
            let mut p = client.get_async_pubsub().await?;
            p.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(p)
        };
        match attempt.await {
            Ok(p) => {
                pubsub = Some(p);
                notifier.notify();
            }
            Err(error) => tracing::warn!(channel, %error, "incoming wake-up subscription failed"),
        }
    }
}

#[async_trait]
impl Incoming for RedisIncoming {
    fn sack_count(&self) -> u32 {
        self.sack_count
    }

    async fn append(&self, batches: Vec<MeasureBatch>) -> Result<(), IncomingError> {
        validate(&batches)?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut total: u64 = 0;
        let counts_key = self.counts_key();
        for b in batches.iter().filter(|b| !b.is_empty()) {
            let list = self.list_key(b.metric);
            let chunks = b
                .timestamps
                .chunks(ENTRY_MAX_MEASURES)
                .zip(b.values.chunks(ENTRY_MAX_MEASURES));
            for (ts, vs) in chunks {
                let mut blob = Vec::with_capacity(codec::measures_body_len(ts.len()));
                codec::put_measures_body(&mut blob, b.metric, ts, vs);
                pipe.cmd("RPUSH").arg(&list).arg(blob).ignore();
            }
            pipe.cmd("SADD")
                .arg(self.sack_key(sack_of(b.metric, self.sack_count)))
                .arg(b.metric)
                .ignore();
            pipe.cmd("HINCRBY")
                .arg(&counts_key)
                .arg(b.metric)
                .arg(b.len())
                .ignore();
            total += b.len() as u64;
        }
        if total == 0 {
            return Ok(());
        }
        pipe.cmd("INCRBY").arg(self.total_key()).arg(total).ignore();
        pipe.cmd("PUBLISH")
            .arg(format!("{}:wakeup", self.prefix))
            .arg(1)
            .ignore();
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        self.notifier.notify();
        Ok(())
    }

    async fn pending(&self, sack: Sack) -> Result<RoaringBitmap, IncomingError> {
        check_sack(sack, self.sack_count)?;
        let mut conn = self.conn.clone();
        let ids: Vec<u32> = redis::cmd("SMEMBERS")
            .arg(self.sack_key(sack))
            .query_async(&mut conn)
            .await?;
        Ok(ids.into_iter().collect())
    }

    async fn read(&self, sack: Sack, metrics: &RoaringBitmap) -> Result<Pending, IncomingError> {
        check_sack(sack, self.sack_count)?;
        // Only metrics with pending measures: `metrics` may be huge (a full
        // range), the sack's set is not.
        let pending = self.pending(sack).await?;
        let wanted: Vec<MetricSeq> = (&pending & metrics).iter().collect();
        let mut conn = self.conn.clone();
        let mut measures = BTreeMap::new();
        let mut receipt = BTreeMap::new();
        for chunk in wanted.chunks(METRICS_PER_ROUND_TRIP) {
            let mut pipe = redis::pipe();
            for metric in chunk {
                pipe.cmd("LRANGE")
                    .arg(self.list_key(*metric))
                    .arg(0)
                    .arg(-1);
            }
            let lists: Vec<Vec<Vec<u8>>> = pipe.query_async(&mut conn).await?;
            for (metric, entries) in chunk.iter().zip(lists) {
                if entries.is_empty() {
                    continue;
                }
                let mut out = Measures::default();
                for entry in &entries {
                    let corrupt = |reason: &str| IncomingError::Corrupt {
                        location: self.list_key(*metric),
                        offset: 0,
                        reason: reason.to_string(),
                    };
                    let view = codec::measures(entry).map_err(corrupt)?;
                    if view.metric != *metric {
                        return Err(corrupt("entry belongs to another metric"));
                    }
                    view.extend_into(&mut out);
                }
                receipt.insert(*metric, (entries.len() as u64, out.len() as u64));
                measures.insert(*metric, out);
            }
        }
        Ok(Pending::new(sack, measures, Receipt::Redis(receipt)))
    }

    async fn acknowledge(&self, done: Pending) -> Result<(), IncomingError> {
        let sack = done.sack;
        let Receipt::Redis(receipt) = done.receipt else {
            return Err(IncomingError::ForeignReceipt);
        };
        let receipt: Vec<_> = receipt.into_iter().collect();
        let mut conn = self.conn.clone();
        for chunk in receipt.chunks(METRICS_PER_ROUND_TRIP) {
            let mut invocation = self.ack.prepare_invoke();
            invocation
                .key(self.sack_key(sack))
                .key(self.total_key())
                .key(self.counts_key());
            for (metric, (entries, count)) in chunk {
                invocation
                    .key(self.list_key(*metric))
                    .arg(*metric)
                    .arg(*entries)
                    .arg(*count);
            }
            invocation.invoke_async::<i64>(&mut conn).await?;
        }
        Ok(())
    }

    async fn backlog(&self, details: bool) -> Result<Backlog, IncomingError> {
        let mut conn = self.conn.clone();
        let (metrics, measures): (u64, Option<i64>) = redis::pipe()
            .cmd("HLEN")
            .arg(self.counts_key())
            .cmd("GET")
            .arg(self.total_key())
            .query_async(&mut conn)
            .await?;
        let per_metric = if details {
            let counts: HashMap<MetricSeq, i64> = redis::cmd("HGETALL")
                .arg(self.counts_key())
                .query_async(&mut conn)
                .await?;
            Some(
                counts
                    .into_iter()
                    .map(|(m, c)| (m, c.max(0) as u64))
                    .collect(),
            )
        } else {
            None
        };
        Ok(Backlog {
            metrics,
            measures: measures.unwrap_or(0).max(0) as u64,
            per_metric,
        })
    }

    async fn forget(&self, metric: MetricSeq) -> Result<(), IncomingError> {
        let mut conn = self.conn.clone();
        self.forget
            .key(self.sack_key(sack_of(metric, self.sack_count)))
            .key(self.total_key())
            .key(self.counts_key())
            .key(self.list_key(metric))
            .arg(metric)
            .invoke_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }

    fn subscribe(&self) -> Wakeup {
        self.notifier.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::split_prefix;

    #[test]
    fn prefix_is_split_off() {
        let (url, prefix) =
            split_prefix("redis://127.0.0.1:6379/2?prefix=abc-1&protocol=resp3").unwrap();
        assert_eq!(url, "redis://127.0.0.1:6379/2?protocol=resp3");
        assert_eq!(prefix, "abc-1");
        let (url, prefix) = split_prefix("redis://h").unwrap();
        assert_eq!((url.as_str(), prefix.as_str()), ("redis://h", "gnocchid"));
        assert!(split_prefix("redis://h?prefix=a*").is_err());
    }
}
