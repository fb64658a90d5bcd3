//! The Lua scripts and the keys they touch.
//!
//! Per resource `r`, every key carries the hash tag `{r}`, so one script
//! can touch them all on a cluster:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `PREFIX lock:{r}` | string | `TOKEN:FENCE` of the holder, `PX ttl` |
//! | `PREFIX lock:{r}:state` | hash | `n`: the fencing counter; `rel`: the last released token (replay detection) |
//! | `PREFIX lock:{r}:fenced` | hash | `f`, `v`: the last accepted fenced write |
//!
//! Release messages go to the channel `PREFIX lock:{r}:released`; their
//! payload is the token of the waiter at the head of the queue.

use std::sync::{Arc, LazyLock};

use aeturnis_redis_core::fred::types::Value;
use aeturnis_redis_core::{KeySpace, LuaScript, Redis, RedisKey};

use crate::error::{Error, Result};

/// Acquire: `SET NX PX` plus the fencing counter, in one script, with a
/// FIFO queue of live waiters for fairness.
///
/// Idempotent for its token: if the lock already holds `TOKEN:…` (a replay
/// of an acquire that succeeded), it answers "acquired" with the fence it
/// issued then, without touching anything.
///
/// Fairness: a waiter (`wait lease > 0`) that finds the lock held joins a
/// queue (a sorted set scored by a ticket counter) and stays in it while it
/// keeps re-trying within its lease (server time). A free lock goes only to
/// the head of the queue, so a task that just released cannot barge ahead
/// of older waiters. Dead waiters (lease run out) are dropped from the head.
///
/// `KEYS`: lock, state, queue, alive. `ARGV`: token, ttl ms, fence ttl ms,
/// fence floor, wait lease ms (`0`: do not queue).
/// Reply: `{1, fence}`, or `{0, pttl}` when held, or `{0, 0}` when free
/// but promised to an older waiter.
static ACQUIRE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "lock_acquire",
        r"
local tok = ARGV[1]
local v = redis.call('GET', KEYS[1])
if v then
  local p = tok .. ':'
  if string.sub(v, 1, #p) == p then
    return {1, tonumber(string.sub(v, #p + 1))}
  end
end
local lease = tonumber(ARGV[5])
if redis.call('EXISTS', KEYS[3]) == 1 or (v and lease > 0) then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  while head do
    if tonumber(redis.call('HGET', KEYS[4], head) or '0') >= now then break end
    redis.call('ZREM', KEYS[3], head)
    redis.call('HDEL', KEYS[4], head)
    head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  end
  if v or (head and head ~= tok) then
    if lease > 0 then
      if not redis.call('ZSCORE', KEYS[3], tok) then
        redis.call('ZADD', KEYS[3], redis.call('HINCRBY', KEYS[2], 'q', 1), tok)
      end
      redis.call('HSET', KEYS[4], tok, now + lease)
      redis.call('PEXPIRE', KEYS[3], lease * 2)
      redis.call('PEXPIRE', KEYS[4], lease * 2)
    end
    if v then
      return {0, redis.call('PTTL', KEYS[1])}
    end
    return {0, 0}
  end
  if head then
    redis.call('ZREM', KEYS[3], tok)
    redis.call('HDEL', KEYS[4], tok)
  end
end
if v then
  return {0, redis.call('PTTL', KEYS[1])}
end
local f = redis.call('HINCRBY', KEYS[2], 'n', 1)
local floor = tonumber(ARGV[4])
if f <= floor then
  f = floor + 1
  redis.call('HSET', KEYS[2], 'n', f)
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], tok .. ':' .. f, 'PX', ARGV[2])
return {1, f}
",
    )
});

/// Leave the waiters' queue (a waiter that gave up or was cancelled).
///
/// `KEYS`: queue, alive. `ARGV`: token. Idempotent.
static DEQUEUE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "lock_dequeue",
        r"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
",
    )
});

/// Release: compare-and-delete, remember the token, and name the head of
/// the waiters' queue (the only waiter that may take the lock next).
///
/// A replay of a release that succeeded finds the token in `rel` and
/// answers "released" again instead of "not yours". The release message
/// (its payload: the head waiter's token) is published only when someone
/// waits in the queue: an uncontended release costs no `PUBLISH`.
///
/// `KEYS`: lock, state, queue. `ARGV`: token, channel, fence ttl ms.
/// Reply: `{1, head}` released (now or by the replayed call; `head` is
/// `''` when nobody waits), `{0, ''}` not ours.
static RELEASE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "lock_release",
        r"
local p = ARGV[1] .. ':'
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #p) == p then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'rel', ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  local h = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  if h then
    redis.call('PUBLISH', ARGV[2], h)
    return {1, h}
  end
  return {1, ''}
end
if redis.call('HGET', KEYS[2], 'rel') == ARGV[1] then
  return {1, ''}
end
return {0, ''}
",
    )
});

/// Extend: compare-and-pexpire (a replay extends again: harmless).
///
/// `KEYS`: lock. `ARGV`: token, ttl ms. Reply: `1` extended, `0` not ours.
static EXTEND: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "lock_extend",
        r"
local p = ARGV[1] .. ':'
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #p) == p then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
",
    )
});

/// Force release (admin): delete whoever holds it and wake the head of
/// the waiters' queue.
///
/// `KEYS`: lock, queue. `ARGV`: channel.
/// Reply: `{1, head}` deleted (`head` is `''` when nobody waits), `{0, ''}`
/// was free.
static FORCE_RELEASE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "lock_force_release",
        r"
if redis.call('DEL', KEYS[1]) == 1 then
  local h = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if h then
    redis.call('PUBLISH', ARGV[1], h)
    return {1, h}
  end
  return {1, ''}
end
return {0, ''}
",
    )
});

/// Fenced write: refuse a fencing token lower than the last accepted one.
/// The same token may write again (so a replay is a no-op in effect).
///
/// `KEYS`: fenced, state. `ARGV`: fence, value, ttl ms.
/// Reply: `{1, previous}` accepted, `{0, last}` refused.
static FENCED_WRITE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "lock_fenced_write",
        r"
local last = tonumber(redis.call('HGET', KEYS[1], 'f') or '0')
if tonumber(ARGV[1]) < last then
  return {0, last}
end
redis.call('HSET', KEYS[1], 'f', ARGV[1], 'v', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return {1, last}
",
    )
});

/// Registers every script with `redis` so `load_scripts` preloads them.
pub(crate) fn register(redis: &Redis) {
    for s in [
        &*ACQUIRE,
        &*RELEASE,
        &*EXTEND,
        &*FORCE_RELEASE,
        &*FENCED_WRITE,
        &*DEQUEUE,
    ] {
        redis.register_script(s);
    }
}

/// The keys and channel of one resource.
#[derive(Debug)]
pub(crate) struct LockKeys {
    pub(crate) resource: String,
    pub(crate) lock: RedisKey,
    pub(crate) state: RedisKey,
    pub(crate) fenced: RedisKey,
    pub(crate) queue: RedisKey,
    pub(crate) alive: RedisKey,
    pub(crate) channel: String,
}

impl LockKeys {
    pub(crate) fn new(keys: &KeySpace, resource: &str) -> Result<Arc<LockKeys>> {
        if resource.is_empty() {
            return Err(Error::InvalidResource {
                reason: "the resource name is empty".to_owned(),
            });
        }
        let lock = keys.key("lock").tag(resource).build()?;
        let state = keys.key("lock").tag(resource).part("state").build()?;
        let fenced = keys.key("lock").tag(resource).part("fenced").build()?;
        let queue = keys.key("lock").tag(resource).part("queue").build()?;
        let alive = keys.key("lock").tag(resource).part("alive").build()?;
        let channel = format!("{lock}:released");
        Ok(Arc::new(LockKeys {
            resource: resource.to_owned(),
            lock,
            state,
            fenced,
            queue,
            alive,
            channel,
        }))
    }
}

/// What one acquire attempt on one server found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Ours, with this fencing token.
    Acquired(u64),
    /// Someone else's, for this many more milliseconds.
    Held(u64),
}

fn pair(reply: &[i64], script: &str) -> Result<(i64, i64)> {
    match reply {
        [a, b] => Ok((*a, *b)),
        other => Err(Error::Redis(aeturnis_redis_core::Error::UnexpectedReply(
            format!("{script} answered {other:?}"),
        ))),
    }
}

pub(crate) async fn acquire(
    redis: &Redis,
    keys: &LockKeys,
    token: &str,
    ttl_ms: u64,
    fence_ttl_ms: u64,
    floor: u64,
    wait_lease_ms: u64,
) -> Result<Attempt> {
    let reply: Vec<i64> = redis
        .script(
            &ACQUIRE,
            vec![
                keys.lock.clone(),
                keys.state.clone(),
                keys.queue.clone(),
                keys.alive.clone(),
            ],
            vec![
                Value::from(token),
                Value::from(ttl_ms.to_string()),
                Value::from(fence_ttl_ms.to_string()),
                Value::from(floor.to_string()),
                Value::from(wait_lease_ms.to_string()),
            ],
        )
        .await?;
    let (ok, n) = pair(&reply, "lock_acquire")?;
    let n = u64::try_from(n).unwrap_or(0);
    Ok(if ok == 1 {
        Attempt::Acquired(n)
    } else {
        Attempt::Held(n)
    })
}

pub(crate) async fn dequeue(redis: &Redis, keys: &LockKeys, token: &str) -> Result<()> {
    let _: i64 = redis
        .script(
            &DEQUEUE,
            vec![keys.queue.clone(), keys.alive.clone()],
            vec![Value::from(token)],
        )
        .await?;
    Ok(())
}

/// What a release found: `None` not ours; `Some(head)` released, `head`
/// the token of the waiter to wake (`None` when nobody waits).
pub(crate) type Released = Option<Option<String>>;

fn released(ok: i64, head: String) -> Released {
    (ok == 1).then(|| (!head.is_empty()).then_some(head))
}

pub(crate) async fn release(
    redis: &Redis,
    keys: &LockKeys,
    token: &str,
    fence_ttl_ms: u64,
) -> Result<Released> {
    let (ok, head): (i64, String) = redis
        .script(
            &RELEASE,
            vec![keys.lock.clone(), keys.state.clone(), keys.queue.clone()],
            vec![
                Value::from(token),
                Value::from(keys.channel.as_str()),
                Value::from(fence_ttl_ms.to_string()),
            ],
        )
        .await?;
    Ok(released(ok, head))
}

pub(crate) async fn extend(
    redis: &Redis,
    keys: &LockKeys,
    token: &str,
    ttl_ms: u64,
) -> Result<bool> {
    let n: i64 = redis
        .script(
            &EXTEND,
            vec![keys.lock.clone()],
            vec![Value::from(token), Value::from(ttl_ms.to_string())],
        )
        .await?;
    Ok(n == 1)
}

pub(crate) async fn force_release(redis: &Redis, keys: &LockKeys) -> Result<Released> {
    let (ok, head): (i64, String) = redis
        .script(
            &FORCE_RELEASE,
            vec![keys.lock.clone(), keys.queue.clone()],
            vec![Value::from(keys.channel.as_str())],
        )
        .await?;
    Ok(released(ok, head))
}

/// `Ok(Ok(previous))` accepted, `Ok(Err(last))` refused.
pub(crate) async fn fenced_write(
    redis: &Redis,
    keys: &LockKeys,
    fence: u64,
    value: Vec<u8>,
    ttl_ms: u64,
) -> Result<std::result::Result<u64, u64>> {
    let reply: Vec<i64> = redis
        .script(
            &FENCED_WRITE,
            vec![keys.fenced.clone(), keys.state.clone()],
            vec![
                Value::from(fence.to_string()),
                Value::Bytes(value.into()),
                Value::from(ttl_ms.to_string()),
            ],
        )
        .await?;
    let (ok, n) = pair(&reply, "lock_fenced_write")?;
    let n = u64::try_from(n).unwrap_or(0);
    Ok(if ok == 1 { Ok(n) } else { Err(n) })
}

#[cfg(test)]
mod tests {
    use aeturnis_redis_core::fred::interfaces::{HashesInterface, KeysInterface};
    use aeturnis_redis_core::RedisConfig;
    use aeturnis_testkit::TestCtx;

    use super::*;

    async fn connect(ctx: &TestCtx) -> anyhow::Result<Redis> {
        Ok(Redis::connect(RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix)).await?)
    }

    /// fred re-sends a script whose connection dropped; sending the same
    /// invocation twice is what a replay looks like to the server.
    async fn should_answer_replayed_scripts_the_same(ctx: TestCtx) -> anyhow::Result<()> {
        let redis = connect(&ctx).await?;
        let keys = LockKeys::new(redis.keys(), "replayed")?;
        let day = 86_400_000;
        let first = acquire(&redis, &keys, "tok-a", 5_000, day, 0, 0).await?;
        let replay = acquire(&redis, &keys, "tok-a", 5_000, day, 0, 0).await?;
        assert_eq!(first, Attempt::Acquired(1));
        assert_eq!(
            replay, first,
            "a replayed acquire must report the same fence"
        );
        let n: i64 = redis.client().hget(&keys.state, "n").await?;
        assert_eq!(n, 1, "the replay must not bump the fencing counter");
        assert!(matches!(
            acquire(&redis, &keys, "tok-b", 5_000, day, 0, 0).await?,
            Attempt::Held(ms) if ms > 0 && ms <= 5_000
        ));
        assert!(extend(&redis, &keys, "tok-a", 5_000).await?);
        assert!(extend(&redis, &keys, "tok-a", 5_000).await?);
        assert!(!extend(&redis, &keys, "tok-b", 5_000).await?);
        assert_eq!(release(&redis, &keys, "tok-a", day).await?, Some(None));
        assert_eq!(
            release(&redis, &keys, "tok-a", day).await?,
            Some(None),
            "a replayed release must still answer released"
        );
        assert_eq!(release(&redis, &keys, "tok-b", day).await?, None);
        let exists: i64 = redis.client().exists(&keys.lock).await?;
        assert_eq!(exists, 0);
        let state_ttl: i64 = redis.client().pttl(&keys.state).await?;
        assert!(state_ttl > 0, "the fence counter must carry a TTL");
        assert_eq!(
            acquire(&redis, &keys, "tok-c", 5_000, day, 0, 0).await?,
            Attempt::Acquired(2)
        );
        Ok(())
    }

    async fn should_name_the_head_waiter_on_release(ctx: TestCtx) -> anyhow::Result<()> {
        let redis = connect(&ctx).await?;
        let keys = LockKeys::new(redis.keys(), "handoff")?;
        let day = 86_400_000;
        assert_eq!(
            acquire(&redis, &keys, "holder", 5_000, day, 0, 0).await?,
            Attempt::Acquired(1)
        );
        for waiter in ["first", "second"] {
            assert!(matches!(
                acquire(&redis, &keys, waiter, 5_000, day, 0, 5_000).await?,
                Attempt::Held(_)
            ));
        }
        assert_eq!(
            release(&redis, &keys, "holder", day).await?,
            Some(Some("first".to_owned())),
            "only the oldest waiter is to be woken"
        );
        assert_eq!(
            acquire(&redis, &keys, "second", 5_000, day, 0, 5_000).await?,
            Attempt::Held(0),
            "a younger waiter must not barge"
        );
        assert_eq!(
            acquire(&redis, &keys, "first", 5_000, day, 0, 5_000).await?,
            Attempt::Acquired(2)
        );
        assert_eq!(
            force_release(&redis, &keys).await?,
            Some(Some("second".to_owned()))
        );
        assert_eq!(force_release(&redis, &keys).await?, None);
        Ok(())
    }

    async fn should_raise_lagging_counters_to_the_floor(ctx: TestCtx) -> anyhow::Result<()> {
        let redis = connect(&ctx).await?;
        let keys = LockKeys::new(redis.keys(), "floored")?;
        let day = 86_400_000;
        assert_eq!(
            acquire(&redis, &keys, "t1", 5_000, day, 41, 0).await?,
            Attempt::Acquired(42)
        );
        assert_eq!(release(&redis, &keys, "t1", day).await?, Some(None));
        assert_eq!(
            acquire(&redis, &keys, "t2", 5_000, day, 0, 0).await?,
            Attempt::Acquired(43)
        );
        Ok(())
    }

    async fn should_refuse_only_older_fences(ctx: TestCtx) -> anyhow::Result<()> {
        let redis = connect(&ctx).await?;
        let keys = LockKeys::new(redis.keys(), "fenced")?;
        let day = 86_400_000;
        assert_eq!(
            fenced_write(&redis, &keys, 5, b"a".to_vec(), day).await?,
            Ok(0)
        );
        assert_eq!(
            fenced_write(&redis, &keys, 5, b"a".to_vec(), day).await?,
            Ok(5)
        );
        assert_eq!(
            fenced_write(&redis, &keys, 4, b"x".to_vec(), day).await?,
            Err(5)
        );
        assert_eq!(
            fenced_write(&redis, &keys, 6, b"b".to_vec(), day).await?,
            Ok(5)
        );
        let ttl: i64 = redis.client().pttl(&keys.fenced).await?;
        assert!(ttl > 0);
        Ok(())
    }

    aeturnis_testkit::topology_tests!(
        should_answer_replayed_scripts_the_same,
        should_name_the_head_waiter_on_release,
        should_raise_lagging_counters_to_the_floor,
        should_refuse_only_older_fences,
    );
}
