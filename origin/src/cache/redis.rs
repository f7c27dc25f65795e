//! L2: Redis, shared by every origin instance. Each call has a short timeout, and after
//! a run of failures a breaker skips Redis for a moment, so an outage or a hung server
//! costs a request one timeout at most and never an error: to callers a Redis failure
//! is a miss. The connection is lazy, so the origin starts while Redis is down, and it
//! reconnects by itself when Redis returns. Redis may be one server, a Cluster or a
//! Sentinel-managed primary (`topology.rs`); every command here names one key, or keys of
//! one workspace, which share a hash tag, so nothing ever spans slots.

use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;

use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamInfoConsumersReply,
    StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, Client, FromRedisValue, RedisError, ToRedisArgs};

use super::entry::now_ms;
use super::topology::{ping, Conn, Connector, Layout};

#[derive(Debug, thiserror::Error)]
pub enum RedisFailure {
    #[error("redis circuit open")]
    CircuitOpen,
    #[error("redis timed out")]
    Timeout,
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
}

const TRIP_AFTER_FAILURES: u32 = 3;

/// The one field of each stream entry: a change as it was queued, or changes folded
/// together, which stand for entries older than their own id.
const STREAM_FIELD: &str = "v";
const FOLDED_FIELD: &str = "f";

/// Of stream `KEYS[1]` (`ARGV[1]` is unused): the time (server clock, ms) before which
/// every entry was delivered (the oldest entry's, now when none is left, 0 when the
/// oldest holds folded changes, which are older than it), and the time now.
const DRAINED_BEFORE: &str = "local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
if not first then return {now, now} end
if first[2][1] == 'f' then return {0, now} end
return {tonumber(string.match(first[1], '^(%d+)')), now}";

/// Takes `ARGV[1]` numbers of sequence `KEYS[1]` and publishes, on channel `ARGV[2]`,
/// prefix `ARGV[3]`, the first number taken, `:` and payload `ARGV[4]`.
const NUMBER_AND_PUBLISH: &str = "local last = redis.call('INCRBY', KEYS[1], ARGV[1]) \
    redis.call('PUBLISH', ARGV[2], ARGV[3] .. (last - tonumber(ARGV[1]) + 1) .. ':' .. ARGV[4]) \
    return last";

/// Compare-and-delete of lock `KEYS[1]` held by `ARGV[1]`, then `ARGV[3]` published on
/// channel `ARGV[2]` whoever held it: one step on the server, so the announcement never
/// comes before the release.
const RELEASE: &str = "local mine = redis.call('GET', KEYS[1]) == ARGV[1] \
    if mine then redis.call('DEL', KEYS[1]) end \
    redis.call('PUBLISH', ARGV[2], ARGV[3]) \
    if mine then return 1 else return 0 end";
/// The start of a generation hash's counters, as script code defining `epoch` (a string)
/// for hash `KEYS[1]`: the server's clock in microseconds when the hash was created, kept
/// in the hash. Every counter starts from it, so a hash that Redis lost (a restart, an
/// eviction, a FLUSHALL) comes back above every value the lost one reached, and no key
/// built before the loss is met again. Numbers stay strings: Lua's doubles print in
/// exponent form past 14 digits.
macro_rules! epoch {
    () => {
        "local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  local t = redis.call('TIME')
  epoch = t[1] .. string.format('%06d', tonumber(t[2]))
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
"
    };
}

/// Increments the fields `ARGV[4..]` of hash `KEYS[1]` (a field it lacks starts at the
/// epoch); for an edit (`ARGV[1]` a contact id), also logs `first new value:contact` at
/// the head of list `KEYS[2]`, trimmed to `ARGV[2]` entries and kept `ARGV[3]` seconds.
/// One script, so no instance ever sees the bump without its log entry.
const BUMP: &str = concat!(epoch!(), "local values = {}
for i = 4, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then redis.call('HSET', KEYS[1], ARGV[i], epoch) end
  values[#values + 1] = redis.call('HINCRBY', KEYS[1], ARGV[i], 1)
end
if ARGV[1] ~= '' then
  redis.call('LPUSH', KEYS[2], string.format('%.0f', values[1]) .. ':' .. ARGV[1])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
return values");

/// The fields `ARGV` of hash `KEYS[1]`, a field it lacks read as the epoch.
const READ: &str = concat!(
    epoch!(),
    "local values = {}
for i = 1, #ARGV do values[i] = redis.call('HGET', KEYS[1], ARGV[i]) or epoch end
return values"
);

/// Moves field `ws` of hash `KEYS[1]` past both its value and `ARGV[1]` (what an instance
/// saw before the hash went back: a failover to a replica that missed bumps); the new value.
const ADVANCE: &str = concat!(
    epoch!(),
    "local ws = tonumber(redis.call('HGET', KEYS[1], 'ws') or epoch)
local new = string.format('%.0f', math.max(ws, tonumber(ARGV[1])) + 1)
redis.call('HSET', KEYS[1], 'ws', new)
return new"
);

/// The value of `KEYS[1]`, first set to the server's clock in ms (`ARGV[1]` is unused).
const INCARNATION: &str = "local v = redis.call('GET', KEYS[1])
if not v then
  local t = redis.call('TIME')
  v = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  redis.call('SET', KEYS[1], v)
end
return tonumber(v)";

/// Raises field `ARGV[1]` of hash `KEYS[1]` to `ARGV[2]` unless it holds more already.
const RAISE: &str = "local v = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > v then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1";

/// Lists instance `ARGV[1]` in hash `KEYS[1]` for `ARGV[2]` ms (by the server's clock),
/// removes the entries past their time, and returns how many are listed, then the
/// instances removed.
const REGISTER: &str = "local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.0f', now + tonumber(ARGV[2])))
local listed = 0
local out = {''}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) < now then
    redis.call('HDEL', KEYS[1], all[i])
    out[#out + 1] = all[i]
  else
    listed = listed + 1
  end
end
out[1] = tostring(listed)
return out";

/// Adds `ARGV[2]` to field `ARGV[1]` of hash `KEYS[1]`, removing it at 0 or below.
const COUNT: &str = "if redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2]) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1";

/// Hash `KEYS[1]`'s field names, and the hash deleted.
const TAKE_FIELDS: &str = "local fields = redis.call('HKEYS', KEYS[1])
redis.call('DEL', KEYS[1])
return fields";

const OPEN_FOR_MS: i64 = 1000;

/// Counts consecutive failures; once tripped, calls fail fast until `open_until`, after
/// which one call at a time probes again. A timeout counts only when no call succeeded
/// while it waited: a hung or unreachable Redis answers nobody, whereas a busy instance
/// (many callers queued on its connections) still sees answers arrive, and tripping then
/// would only move that load onto Postgres.
#[derive(Default)]
struct Breaker {
    failures: AtomicU32,
    open_until_ms: AtomicI64,
    last_success_ms: AtomicI64,
}

/// What the breaker lets a call do.
#[derive(Debug, PartialEq, Eq)]
enum Gate {
    /// Closed: the call goes to Redis.
    Pass,
    /// The first call past the open deadline: it tries Redis again for everyone, waking
    /// every pooled connection first (`Connector::wake`).
    Probe,
    /// Open: the call fails at once, costing nothing while Redis is away.
    FailFast,
}

impl Breaker {
    fn gate(&self) -> Gate {
        let until = self.open_until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return Gate::Pass;
        }
        let now = now_ms();
        let first_past = now >= until
            && self
                .open_until_ms
                .compare_exchange(
                    until,
                    now + OPEN_FOR_MS,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok();
        if first_past {
            Gate::Probe
        } else {
            Gate::FailFast
        }
    }

    fn success(&self) {
        self.last_success_ms.store(now_ms(), Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        self.open_until_ms.store(0, Ordering::Relaxed);
    }

    fn failure(&self) {
        if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= TRIP_AFTER_FAILURES {
            self.open_until_ms
                .store(now_ms() + OPEN_FOR_MS, Ordering::Relaxed);
        }
    }

    /// A call begun at `started_ms` timed out.
    fn timeout(&self, started_ms: i64) {
        if self.last_success_ms.load(Ordering::Relaxed) < started_ms {
            self.failure();
        }
    }

    fn is_open(&self) -> bool {
        self.open_until_ms.load(Ordering::Relaxed) != 0
    }
}

pub struct RedisCache {
    connector: Connector,
    timeout: Duration,
    breaker: Breaker,
}

impl RedisCache {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, RedisError> {
        Ok(Self {
            connector: Connector::new(url, timeout)?,
            timeout,
            breaker: Breaker::default(),
        })
    }

    pub fn layout(&self) -> &Layout {
        self.connector.layout()
    }

    /// A client to subscribe with (see `Connector::pubsub_client`).
    pub async fn pubsub_client(&self) -> Result<Client, RedisError> {
        self.connector.pubsub_client().await
    }

    /// Whether Redis answered the last calls (false while the breaker is open).
    pub fn is_up(&self) -> bool {
        !self.breaker.is_open()
    }

    async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, RedisFailure>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let probe = match self.breaker.gate() {
            Gate::Pass => false,
            Gate::Probe => true,
            Gate::FailFast => return Err(RedisFailure::CircuitOpen),
        };
        let started_ms = now_ms();
        let attempt = async {
            if probe {
                // Boxed: rare, and it would otherwise weigh on every call's future.
                Box::pin(self.wake()).await;
            }
            f(self.connector.get().await?).await
        };
        let result = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(RedisFailure::Redis(e)),
            Err(_) => Err(RedisFailure::Timeout),
        };
        match &result {
            Ok(_) => self.breaker.success(),
            Err(e) => {
                if matches!(e, RedisFailure::Timeout) {
                    self.breaker.timeout(started_ms);
                } else {
                    self.breaker.failure();
                }
                self.connector.failed();
                metrics::counter!("edgecache_redis_errors_total", "op" => op).increment(1);
                tracing::debug!(op, error = %e, "redis call failed");
            }
        }
        result
    }

    pub async fn get(&self, key: &str) -> Result<Option<String>, RedisFailure> {
        self.call("get", |mut c| async move { c.get(key).await })
            .await
    }

    pub async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), RedisFailure> {
        let secs = ttl.as_secs().max(1);
        self.call(
            "set",
            |mut c| async move { c.set_ex(key, value, secs).await },
        )
        .await
    }

    /// Takes a short lock for `owner`; `false` means someone else holds it.
    pub async fn try_lock(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, RedisFailure> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.call("lock", |mut c| async move {
            let reply: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(owner)
                .arg("NX")
                .arg("PX")
                .arg(millis)
                .query_async(&mut c)
                .await?;
            Ok(reply.is_some())
        })
        .await
    }

    /// Releases a lock only while `owner` still holds it: a holder slower than the lock's
    /// TTL must not delete the lock another instance has taken since. `true` if released.
    /// Releases lock `key` if `owner` holds it (whether it did is the answer), and
    /// publishes `announcement` on `channel` either way.
    pub async fn release(
        &self,
        key: &str,
        owner: &str,
        channel: &str,
        announcement: &str,
    ) -> Result<bool, RedisFailure> {
        let released: i64 = self
            .eval("unlock", RELEASE, key, (owner, channel, announcement))
            .await?;
        Ok(released == 1)
    }

    /// Runs Lua `script` on one key, `key`, with `args`, as operation `op`.
    async fn eval<T: FromRedisValue>(
        &self,
        op: &'static str,
        script: &'static str,
        key: &str,
        args: impl ToRedisArgs,
    ) -> Result<T, RedisFailure> {
        self.call(op, |mut c| async move {
            redis::cmd("EVAL")
                .arg(script)
                .arg(1)
                .arg(key)
                .arg(args)
                .query_async(&mut c)
                .await
        })
        .await
    }

    pub async fn exists(&self, key: &str) -> Result<bool, RedisFailure> {
        self.call("exists", |mut c| async move { c.exists(key).await })
            .await
    }

    pub async fn del(&self, key: &str) -> Result<(), RedisFailure> {
        self.call("del", |mut c| async move { c.del(key).await })
            .await
    }

    /// The generation counters `fields` of hash `key`, in order (see `epoch!`).
    pub async fn generations(
        &self,
        key: &str,
        fields: &[String],
    ) -> Result<Vec<u64>, RedisFailure> {
        self.eval("generations", READ, key, fields).await
    }

    /// Increments each generation counter `fields` of hash `key` in one atomic step; the
    /// new values, in order. With `edit` (a log list, its length and lifetime, and the
    /// edited contact), the first field's new value and the contact go to the log in the
    /// same step.
    pub async fn hincr_all(
        &self,
        key: &str,
        fields: &[String],
        edit: Option<(&str, usize, Duration, i64)>,
    ) -> Result<Vec<u64>, RedisFailure> {
        self.call("hincrby", |mut c| async move {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(BUMP);
            match edit {
                Some((log, len, keep, contact)) => {
                    cmd.arg(2).arg(key).arg(log).arg(contact);
                    cmd.arg(len).arg(keep.as_secs().max(1));
                }
                None => {
                    cmd.arg(1).arg(key).arg("").arg(0).arg(0);
                }
            }
            cmd.arg(fields).query_async(&mut c).await
        })
        .await
    }

    /// Lists `instance` in registry `key` for `ttl`; how many instances are listed, and
    /// those whose entries ran out (removed here).
    pub async fn register(
        &self,
        key: &str,
        instance: &str,
        ttl: Duration,
    ) -> Result<(u64, Vec<String>), RedisFailure> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let mut out: Vec<String> = self
            .eval("register", REGISTER, key, (instance, ttl_ms))
            .await?;
        let listed = if out.is_empty() {
            0
        } else {
            out.remove(0).parse().unwrap_or(0)
        };
        Ok((listed, out))
    }

    /// Adds `delta` to field `field` of hash `key` (removed at 0).
    pub async fn count(&self, key: &str, field: &str, delta: i64) -> Result<(), RedisFailure> {
        self.eval("count", COUNT, key, (field, delta)).await
    }

    /// The field names of hash `key`, which is deleted.
    pub async fn take_fields(&self, key: &str) -> Result<Vec<String>, RedisFailure> {
        self.eval("take", TAKE_FIELDS, key, &[] as &[&str]).await
    }

    /// One field of a hash, as a number (`None` where it is absent).
    pub async fn hget(&self, key: &str, field: &str) -> Result<Option<u64>, RedisFailure> {
        self.call("hget", |mut c| async move { c.hget(key, field).await })
            .await
    }

    /// Raises field `field` of hash `key` to `value`, never lowers it.
    pub async fn raise(&self, key: &str, field: &str, value: u64) -> Result<(), RedisFailure> {
        self.eval("raise", RAISE, key, (field, value)).await
    }

    /// Moves the workspace counter of hash `key` past `seen`; its new value.
    pub async fn advance(&self, key: &str, seen: u64) -> Result<u64, RedisFailure> {
        self.eval("advance", ADVANCE, key, seen).await
    }

    /// A whole list, head first.
    pub async fn list(&self, key: &str) -> Result<Vec<String>, RedisFailure> {
        self.call("lrange", |mut c| async move { c.lrange(key, 0, -1).await })
            .await
    }

    /// Returns how many subscribers received the message.
    pub async fn publish(&self, channel: &str, message: &str) -> Result<u64, RedisFailure> {
        self.call("publish", |mut c| async move {
            c.publish(channel, message).await
        })
        .await
    }

    /// Takes `count` numbers of the sequence `key` and publishes `prefix`, the first of
    /// them, `:` and `payload` on `channel`, in one script; the last number taken.
    pub async fn announce(
        &self,
        key: &str,
        channel: &str,
        prefix: &str,
        count: usize,
        payload: &str,
    ) -> Result<u64, RedisFailure> {
        self.eval(
            "announce",
            NUMBER_AND_PUBLISH,
            key,
            (count, channel, prefix, payload),
        )
        .await
    }

    /// Reads and deletes `key`.
    pub async fn take(&self, key: &str) -> Result<Option<String>, RedisFailure> {
        self.call("getdel", |mut c| async move { c.get_del(key).await })
            .await
    }

    /// Appends `value` to a stream. Never trimmed: its entries are changes not yet
    /// delivered (the outbox bounds itself by folding them).
    pub async fn stream_add(&self, stream: &str, value: &str) -> Result<(), RedisFailure> {
        self.xadd(stream, STREAM_FIELD, value).await
    }

    /// `stream_add` of changes folded from older entries (see `drained_before`).
    pub async fn stream_add_folded(&self, stream: &str, value: &str) -> Result<(), RedisFailure> {
        self.xadd(stream, FOLDED_FIELD, value).await
    }

    async fn xadd(&self, stream: &str, field: &str, value: &str) -> Result<(), RedisFailure> {
        self.call("xadd", |mut c| async move {
            c.xadd::<_, _, _, _, Option<String>>(stream, "*", &[(field, value)])
                .await
                .map(drop)
        })
        .await
    }

    /// The time before which every entry of `stream` was delivered, in ms of the server's
    /// clock (0: unknown), and the server's time now.
    pub async fn drained_before(&self, stream: &str) -> Result<(u64, u64), RedisFailure> {
        let [before, now]: [u64; 2] = self.eval("drained", DRAINED_BEFORE, stream, 0).await?;
        Ok((before, now))
    }

    /// Removes from `group` the consumers other than `keep` idle for `idle` with nothing
    /// pending (instances that are gone; what they left pending is claimed by others first).
    pub async fn stream_prune_consumers(
        &self,
        stream: &str,
        group: &str,
        keep: &str,
        idle: Duration,
    ) -> Result<usize, RedisFailure> {
        let idle_ms = usize::try_from(idle.as_millis()).unwrap_or(usize::MAX);
        self.call("xinfo", |mut c| async move {
            let info: StreamInfoConsumersReply = c.xinfo_consumers(stream, group).await?;
            let mut removed = 0;
            for consumer in info.consumers {
                if consumer.name != keep && consumer.pending == 0 && consumer.idle >= idle_ms {
                    c.xgroup_delconsumer::<_, _, _, ()>(stream, group, &consumer.name)
                        .await?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
    }

    /// Creates the stream and its consumer group unless they exist.
    /// Makes the group (and the stream); whether it was made (it did not exist).
    pub async fn stream_group(&self, stream: &str, group: &str) -> Result<bool, RedisFailure> {
        self.call("xgroup", |mut c| async move {
            match c
                .xgroup_create_mkstream::<_, _, _, ()>(stream, group, "0")
                .await
            {
                Err(e) if e.code() == Some("BUSYGROUP") => Ok(false),
                done => done.map(|()| true),
            }
        })
        .await
    }

    /// When (the server's clock, ms) `key` was first asked for since it last went.
    pub async fn incarnation(&self, key: &str) -> Result<u64, RedisFailure> {
        self.eval("incarnation", INCARNATION, key, 0).await
    }

    /// Up to `count` entries for `consumer`: first its own not yet acknowledged, up to
    /// half of them (a send that failed is tried again with what came since, so a
    /// backlog folds), then those another consumer left unacknowledged for `idle` (it
    /// died, or its sends failed), then new ones. Never blocks: the connection is shared
    /// with the cache.
    pub async fn stream_take(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        idle: Duration,
        count: usize,
    ) -> Result<Vec<(String, String)>, RedisFailure> {
        let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        self.call("xreadgroup", |mut c| async move {
            // Half the batch at most, so new entries are read (and folded) too.
            let own = (count / 2).max(1);
            let mut entries = read_group(&mut c, stream, group, consumer, "0", own).await?;
            if entries.len() < count {
                let claimed: StreamAutoClaimReply = c
                    .xautoclaim_options(
                        stream,
                        group,
                        consumer,
                        idle_ms,
                        "0-0",
                        StreamAutoClaimOptions::default().count(count - entries.len()),
                    )
                    .await?;
                for e in claimed.claimed {
                    if !entries.iter().any(|held| held.id == e.id) {
                        entries.push(e);
                    }
                }
            }
            if entries.len() < count {
                let wanted = count - entries.len();
                entries.extend(read_group(&mut c, stream, group, consumer, ">", wanted).await?);
            }
            Ok(entries
                .into_iter()
                .filter_map(|e| {
                    let value: String = e.get(STREAM_FIELD).or_else(|| e.get(FOLDED_FIELD))?;
                    Some((e.id, value))
                })
                .collect())
        })
        .await
    }

    /// Acknowledges and deletes handled entries.
    pub async fn stream_done(
        &self,
        stream: &str,
        group: &str,
        ids: &[String],
    ) -> Result<(), RedisFailure> {
        if ids.is_empty() {
            return Ok(());
        }
        // Both or neither: an entry acknowledged but left in the stream would keep the
        // outbox from ever counting as drained.
        self.call("xack", |mut c| async move {
            redis::pipe()
                .atomic()
                .xack(stream, group, ids)
                .ignore()
                .xdel(stream, ids)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// Entries in a stream.
    pub async fn stream_len(&self, stream: &str) -> Result<u64, RedisFailure> {
        self.call("xlen", |mut c| async move { c.xlen(stream).await })
            .await
    }

    pub async fn ping(&self) -> Result<(), RedisFailure> {
        self.call("ping", |mut c| async move { ping(&mut c).await })
            .await
    }

    /// Wakes the pooled connections (`Connector::wake`) for a quarter of the timeout at
    /// most: a connection that hangs rather than fails stays as it is, and the call after
    /// this has the rest of the timeout.
    async fn wake(&self) {
        let _ = tokio::time::timeout(self.timeout / 4, self.connector.wake()).await;
    }

    /// Brings the connections back once Redis is known to answer again (the pub/sub
    /// subscription came back), and closes the breaker if it does: reads that follow find
    /// Redis instead of failing fast until the next probe.
    pub async fn revive(&self) {
        let woken = tokio::time::timeout(self.timeout, async {
            self.wake().await;
            ping(&mut self.connector.get().await?).await
        })
        .await;
        if matches!(woken, Ok(Ok(()))) {
            self.breaker.success();
        }
    }
}

/// Up to `count` entries of `stream` for `consumer` of `group`: from `0` its own not yet
/// acknowledged, from `>` new ones.
async fn read_group(
    c: &mut Conn,
    stream: &str,
    group: &str,
    consumer: &str,
    from: &str,
    count: usize,
) -> Result<Vec<StreamId>, RedisError> {
    let options = StreamReadOptions::default()
        .group(group, consumer)
        .count(count);
    let read: Option<StreamReadReply> = c.xread_options(&[stream], &[from], &options).await?;
    Ok(read
        .into_iter()
        .flat_map(|r| r.keys)
        .flat_map(|k| k.ids)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real Redis (`REDIS_URL`): the registry counts the instances whose entries have
    /// not run out, and drops the others.
    #[tokio::test]
    async fn the_registry_counts_the_instances_listed_and_forgets_the_gone() {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let redis = RedisCache::new(&url, Duration::from_secs(2)).expect("client");
        let key = format!("registry{}", std::process::id());
        redis.del(&key).await.expect("redis");
        let short = Duration::from_millis(100);
        let long = Duration::from_secs(60);
        assert_eq!(
            redis.register(&key, "a", short).await.expect("redis"),
            (1, vec![])
        );
        assert_eq!(
            redis.register(&key, "b", long).await.expect("redis"),
            (2, vec![])
        );
        assert_eq!(
            redis.register(&key, "b", long).await.expect("redis"),
            (2, vec![])
        );
        // The subject is an entry running out: wait past it.
        tokio::time::sleep(short * 2).await;
        let after = redis.register(&key, "c", long).await.expect("redis");
        assert_eq!(after, (2, vec!["a".to_owned()]), "a ran out");
        redis.del(&key).await.expect("redis");
    }

    /// Real Redis: what the outbox vouches for is bounded by its oldest entry, and by
    /// nothing while that entry holds folded changes.
    #[tokio::test]
    async fn a_stream_is_drained_before_its_oldest_entry_unless_that_one_is_folded() {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let redis = RedisCache::new(&url, Duration::from_secs(2)).expect("client");
        let key = format!("drained{}", std::process::id());
        redis.del(&key).await.expect("redis");
        let (before, now) = redis.drained_before(&key).await.expect("redis");
        assert_eq!(before, now, "nothing waits");
        redis.stream_add(&key, "a").await.expect("redis");
        let ids = redis.stream_ids(&key).await;
        let (before, now) = redis.drained_before(&key).await.expect("redis");
        assert_eq!(before, ids[0]);
        assert!(before <= now);
        redis.del(&key).await.expect("redis");
        redis.stream_add_folded(&key, "b").await.expect("redis");
        redis.stream_add(&key, "c").await.expect("redis");
        assert_eq!(redis.drained_before(&key).await.expect("redis").0, 0);
        redis.del(&key).await.expect("redis");
    }

    impl RedisCache {
        /// The ms part of each entry id of `stream`, oldest first.
        async fn stream_ids(&self, stream: &str) -> Vec<u64> {
            self.call("xrange", |mut c| async move {
                c.xrange_all::<_, redis::streams::StreamRangeReply>(stream)
                    .await
            })
            .await
            .expect("redis")
            .ids
            .iter()
            .map(|e| {
                e.id.split('-')
                    .next()
                    .and_then(|ms| ms.parse().ok())
                    .expect("an id")
            })
            .collect()
        }
    }

    #[test]
    fn timeouts_with_no_answer_meanwhile_trip_the_breaker() {
        let b = Breaker::default();
        for _ in 0..TRIP_AFTER_FAILURES {
            assert!(!b.is_open());
            b.timeout(now_ms());
        }
        assert!(b.is_open());
    }

    #[test]
    fn timeouts_while_other_calls_are_answered_do_not_trip_it() {
        let b = Breaker::default();
        for _ in 0..10 * TRIP_AFTER_FAILURES {
            let started = now_ms() - 5;
            b.success();
            b.timeout(started);
        }
        assert!(!b.is_open());
    }

    #[test]
    fn once_open_only_the_first_call_past_the_deadline_probes() {
        let b = Breaker::default();
        assert_eq!(b.gate(), Gate::Pass);
        for _ in 0..TRIP_AFTER_FAILURES {
            b.failure();
        }
        assert_eq!(b.gate(), Gate::FailFast);
        b.open_until_ms.store(now_ms() - 1, Ordering::Relaxed);
        assert_eq!(b.gate(), Gate::Probe);
        assert_eq!(b.gate(), Gate::FailFast, "one probe at a time");
        b.success();
        assert_eq!(b.gate(), Gate::Pass);
    }

    #[test]
    fn connection_errors_trip_it_whatever_else_succeeded() {
        let b = Breaker::default();
        b.success();
        for _ in 0..TRIP_AFTER_FAILURES {
            b.failure();
        }
        assert!(b.is_open());
    }
}
