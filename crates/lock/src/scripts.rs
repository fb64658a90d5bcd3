//! The Lua scripts and the keys they touch.
//!
//! Per resource `r`, every key carries the hash tag `{r}`, so one script
//! can touch them all on a cluster. Scripts are given the lock key only and
//! derive the others by suffix (same tag, so the same slot):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `PREFIX lock:{r}` | string | the holder: `TOKEN[:FENCE][!]`, `PX ttl` |
//! | `PREFIX lock:{r}:state` | hash | `n`: the fencing counter (fenced mode only) |
//! | `PREFIX lock:{r}:forced` | string | the token a force release took the lock from, for the rest of its TTL |
//! | `PREFIX lock:{r}:queue` | sorted set | waiters' tokens by ticket (FIFO) |
//! | `PREFIX lock:{r}:alive` | hash | waiter token → `LEASE_DEADLINE_MS:TTL_MS`; `#`: the ticket counter |
//! | `PREFIX lock:{r}:fenced` | hash | `f`, `v`: the last accepted fenced write |
//!
//! The holder's value starts with its 32-character token, so "is it mine"
//! is a prefix test. `:FENCE` is present in fenced mode. A trailing `!`
//! means "waiters are queued": only then does a release take the hand-off
//! path (an uncontended release is `GET` + `DEL`, like a bare
//! compare-and-delete).
//!
//! **Hand-off.** A release that finds `!` gives the lock straight to the
//! oldest live waiter: it sets the lock to that waiter's token (with the
//! TTL the waiter asked for, and a fresh fence) and publishes the new value
//! on `PREFIX lock:{r}:released` with `SPUBLISH`: the channel carries the
//! lock's hash tag, so the message stays on the lock's shard. (A plain
//! `PUBLISH` goes to every node over the cluster bus; measured on the
//! 6-node test cluster, 16–25 % of hand-offs then reached their waiter
//! ~40 ms late (the signature of a Nagle/delayed-ACK stall on the bus
//! link), against none with
//! `SPUBLISH`.) The waiter learns it holds the lock from
//! the message (or from the release's reply, in the same process) without
//! another round trip; a waiter that missed the message finds its own
//! token in the lock at its next poll. Nobody can barge in between: the
//! lock is never free during a hand-off.

use std::sync::{Arc, LazyLock};

use aeturnis_redis_core::fred::bytes_utils::Str;
use aeturnis_redis_core::fred::interfaces::KeysInterface;
use aeturnis_redis_core::fred::types::{Expiration, SetOptions, Value};
use aeturnis_redis_core::{KeySpace, LuaScript, Redis, RedisKey};

use crate::error::{Error, Result};
use crate::token::LockToken;

/// Fenced acquire: the fencing counter and `SET NX PX` in one script.
///
/// The counter is bumped first and written into the lock value
/// (`TOKEN:FENCE`), so a failed attempt wastes a number (harmless: fences
/// only need to grow) and a replay of an acquire that succeeded finds its
/// own token and answers "acquired" with the fence it issued then.
/// `floor` (Redlock) raises a lagging counter above the highest fence seen
/// on any master.
///
/// A free lock is taken even if waiters are queued: that only happens
/// after a holder's lease ran out (a release hands the lock over instead
/// of freeing it), and the queue's head re-tries within its back-off.
///
/// `KEYS`: lock. `ARGV`: token, ttl ms, fence ttl ms, floor.
/// Reply: `{1, fence}`, or `{0, pttl}` when held.
static ACQUIRE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "lock_acquire",
        r"
local tok = ARGV[1]
local st = KEYS[1] .. ':state'
local f = redis.call('HINCRBY', st, 'n', 1)
local floor = tonumber(ARGV[4])
if f <= floor then
  f = floor + 1
  redis.call('HSET', st, 'n', f)
end
local v = redis.call('SET', KEYS[1], tok .. ':' .. f, 'NX', 'PX', ARGV[2], 'GET')
if not v then
  redis.call('PEXPIRE', st, ARGV[3])
  return {1, f}
end
if f == 1 then
  redis.call('PEXPIRE', st, ARGV[3])
end
if string.sub(v, 1, #tok) == tok then
  return {1, tonumber(string.match(v, '^[^:!]*:(%d+)') or '0')}
end
return {0, redis.call('PTTL', KEYS[1])}
",
    )
});

/// A waiter's attempt: take the lock if it is ours (handed over) or free
/// and nobody older waits; otherwise join the FIFO queue (or keep our
/// place: the lease is refreshed on every attempt) and mark the lock `!`
/// so its release hands it over.
///
/// Dead waiters (lease run out) are dropped from the head. Idempotent for
/// its token: a replay finds the lock holding our token, or us queued.
///
/// `KEYS`: lock. `ARGV`: token, ttl ms, fenced (`1`/`0`), fence ttl ms,
/// lease ms. Reply: `{1, value}` ours (the lock's value: token, fence),
/// `{0, pttl}` held, `{0, 0}` free but promised to an older waiter.
static WAIT: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "lock_wait",
        r"
local tok = ARGV[1]
local q, alive = KEYS[1] .. ':queue', KEYS[1] .. ':alive'
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #tok) == tok then
  redis.call('ZREM', q, tok)
  redis.call('HDEL', alive, tok)
  return {1, v}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[5])
if not v then
  local head = redis.call('ZRANGE', q, 0, 0)[1]
  while head do
    local e = redis.call('HGET', alive, head)
    if e and tonumber(string.match(e, '^(%d+)')) >= now then break end
    redis.call('ZREM', q, head)
    redis.call('HDEL', alive, head)
    head = redis.call('ZRANGE', q, 0, 0)[1]
  end
  if not head or head == tok then
    if head then
      redis.call('ZREM', q, tok)
      redis.call('HDEL', alive, tok)
    end
    local val = tok
    if ARGV[3] == '1' then
      local st = KEYS[1] .. ':state'
      val = tok .. ':' .. redis.call('HINCRBY', st, 'n', 1)
      redis.call('PEXPIRE', st, ARGV[4])
    end
    if redis.call('ZCARD', q) > 0 then val = val .. '!' end
    redis.call('SET', KEYS[1], val, 'PX', ARGV[2])
    return {1, val}
  end
end
if not redis.call('ZSCORE', q, tok) then
  redis.call('ZADD', q, redis.call('HINCRBY', alive, '#', 1), tok)
end
redis.call('HSET', alive, tok, (now + lease) .. ':' .. ARGV[2])
redis.call('PEXPIRE', q, lease * 2)
redis.call('PEXPIRE', alive, lease * 2)
if v then
  if string.sub(v, -1) ~= '!' then
    redis.call('SET', KEYS[1], v .. '!', 'KEEPTTL')
  end
  return {0, redis.call('PTTL', KEYS[1])}
end
return {0, 0}
",
    )
});

/// Release (compare-and-delete), force release (admin: whoever holds it),
/// or leave (a waiter giving up: leave the queue, and release the lock if
/// it was handed to us meanwhile) — with the hand-off to the oldest live
/// waiter when the lock is marked `!`.
///
/// An uncontended release is `GET` + `DEL`, like a bare compare-and-delete:
/// it keeps no record. A replay of a release that succeeded therefore finds
/// the lock gone (or someone else's) and answers "not ours" (`{0}`); the
/// client tells that apart from a real loss by its own lease (see
/// `LockManager::release_lease`). What the client cannot see is marked
/// here: a force release leaves `PREFIX lock:{r}:forced` = the holder's
/// token for the rest of its TTL, and a fencing counter below the holder's
/// fence means Redis lost data (restart, failover); both answer `{-1}`,
/// lost for certain.
///
/// **Hand to local** (mode `h`): the holder releases with the next waiter
/// of its own process in mind (`NEXT`, `NEXT_TTL`). Remote waiters still
/// come first: a `!`-marked lock goes to the oldest live remote waiter
/// exactly as a plain release would (the local waiter then queues in
/// Redis itself). Otherwise, and when every queued remote waiter turns
/// out dead, the lock is set to `NEXT[:FENCE]` (a new fence from the
/// counter) `PX NEXT_TTL`, without `PUBLISH` (nobody outside needs to
/// know), and the new value is the reply. A replay of a hand-off that
/// already ran finds the lock starting with `NEXT` and answers the same
/// value again, never "not ours".
///
/// `KEYS`: lock. `ARGV`: token (`''` for force), then `MODE FENCED
/// FENCE_TTL FENCE` in one argument (`MODE`: `r` release, `f` force, `l`
/// leave, `h` hand to local; `FENCED`: `1`/`0`; the fence TTL in ms; the
/// holder's fence), so the common case parses one short string; mode `h`
/// adds `NEXT`, `NEXT_TTL`.
/// Reply: `1` released, `value` (a string) released and handed to the
/// waiter whose token starts `value` (a remote waiter, or `NEXT`), `0` not
/// ours (or, for force, was free), `-1` lost for certain.
static RELEASE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "lock_release",
        r"
local v = redis.call('GET', KEYS[1])
local tok = ARGV[1]
if v and string.byte(ARGV[2], 1) == 114 and string.find(v, tok, 1, true) == 1
    and string.byte(v, -1) ~= 33 then
  redis.call('DEL', KEYS[1])
  return 1
end
local mode, fenced, fence_ttl, fence = string.match(ARGV[2], '^(%a)(%d) (%d+) (%d+)$')
local q, alive, st = KEYS[1] .. ':queue', KEYS[1] .. ':alive', KEYS[1] .. ':state'
if mode == 'h' and v and string.find(v, ARGV[3], 1, true) == 1 then
  return v
end
if mode == 'l' then
  redis.call('ZREM', q, tok)
  redis.call('HDEL', alive, tok)
end
if mode == 'f' then
  if not v then return 0 end
  local left = redis.call('PTTL', KEYS[1])
  redis.call('SET', KEYS[1] .. ':forced', string.sub(v, 1, 32), 'PX', math.max(left, 1) + 1000)
elseif not v or string.find(v, tok, 1, true) ~= 1 then
  if mode == 'r' or mode == 'h' then
    if redis.call('GET', KEYS[1] .. ':forced') == tok then return -1 end
    if fenced == '1' and tonumber(redis.call('HGET', st, 'n') or '0') < tonumber(fence) then
      return -1
    end
  end
  return 0
end
local function to_local()
  local val = ARGV[3]
  if fenced == '1' then
    val = val .. ':' .. redis.call('HINCRBY', st, 'n', 1)
    redis.call('PEXPIRE', st, fence_ttl)
  end
  redis.call('SET', KEYS[1], val, 'PX', ARGV[4])
  return val
end
if string.byte(v, -1) ~= 33 then
  if mode == 'h' then return to_local() end
  redis.call('DEL', KEYS[1])
  return 1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
while true do
  local head = redis.call('ZPOPMIN', q)[1]
  if not head then
    if mode == 'h' then return to_local() end
    redis.call('DEL', KEYS[1])
    return 1
  end
  local e = redis.call('HGET', alive, head)
  redis.call('HDEL', alive, head)
  if e then
    local deadline, ttl = string.match(e, '^(%d+):(%d+)$')
    if deadline and tonumber(deadline) >= now then
      local val = head
      if fenced == '1' then
        val = head .. ':' .. redis.call('HINCRBY', st, 'n', 1)
        redis.call('PEXPIRE', st, fence_ttl)
      end
      if redis.call('ZCARD', q) > 0 then val = val .. '!' end
      redis.call('SET', KEYS[1], val, 'PX', ttl)
      redis.call('SPUBLISH', KEYS[1] .. ':released', val)
      return val
    end
  end
end
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
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
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
    for s in [&*ACQUIRE, &*WAIT, &*RELEASE, &*EXTEND, &*FENCED_WRITE] {
        redis.register_script(s);
    }
}

/// The lock key of one resource (the scripts derive the others).
#[derive(Debug)]
pub(crate) struct LockKeys {
    pub(crate) resource: String,
    pub(crate) lock: RedisKey,
}

impl ReleaseOutcome {
    /// The new holder's lock value, when the release handed the lock over.
    #[cfg(test)]
    fn handed(self) -> Option<String> {
        match self {
            ReleaseOutcome::Released(handed) => handed,
            _ => None,
        }
    }
}

impl LockKeys {
    pub(crate) fn new(keys: &KeySpace, resource: &str) -> Result<Arc<LockKeys>> {
        if resource.is_empty() {
            return Err(Error::InvalidResource {
                reason: "the resource name is empty".to_owned(),
            });
        }
        let lock = keys.key("lock").tag(resource).build()?;
        Ok(Arc::new(LockKeys {
            resource: resource.to_owned(),
            lock,
        }))
    }

    /// The pub/sub channel that carries hand-offs.
    pub(crate) fn channel(&self) -> String {
        format!("{}:released", self.lock)
    }

    /// The fencing state hash (counter and last released token).
    pub(crate) fn state(&self) -> String {
        format!("{}:state", self.lock)
    }

    /// The last accepted fenced write.
    pub(crate) fn fenced(&self) -> String {
        format!("{}:fenced", self.lock)
    }
}

/// What one acquire attempt on one server found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Ours, with this fencing token (0 when unfenced).
    Acquired(u64),
    /// Someone else's, for this many more milliseconds (0: free but
    /// promised to an older waiter).
    Held(u64),
}

fn unexpected(script: &str, reply: &[Value]) -> Error {
    Error::Redis(aeturnis_redis_core::Error::UnexpectedReply(format!(
        "{script} answered {reply:?}"
    )))
}

/// The fence in a lock value `TOKEN[:FENCE][!]` (0 when there is none).
pub(crate) fn fence_of(value: &str) -> u64 {
    let rest = value.get(LockToken::LEN..).unwrap_or("");
    rest.strip_prefix(':')
        .map(|f| f.trim_end_matches('!'))
        .and_then(|f| f.parse().ok())
        .unwrap_or(0)
}

fn ms(v: u64) -> Value {
    Value::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

/// Fenced fast path (`floor`: Redlock's; 0 on one server).
pub(crate) async fn acquire(
    redis: &Redis,
    keys: &LockKeys,
    token: &str,
    ttl_ms: u64,
    fence_ttl_ms: u64,
    floor: u64,
) -> Result<Attempt> {
    let reply: Vec<i64> = redis
        .script_on(&ACQUIRE, &keys.lock, |args| {
            args.extend([Value::from(token), ms(ttl_ms), ms(fence_ttl_ms), ms(floor)]);
        })
        .await?;
    let [ok, n] = reply[..] else {
        return Err(Error::Redis(aeturnis_redis_core::Error::UnexpectedReply(
            format!("lock_acquire answered {reply:?}"),
        )));
    };
    let n = u64::try_from(n).unwrap_or(0);
    Ok(if ok == 1 {
        Attempt::Acquired(n)
    } else {
        Attempt::Held(n)
    })
}

/// Unfenced fast path: one native `SET key token NX PX ttl GET` (a replay
/// finds our own token and still answers "acquired"); `PTTL` only when
/// the lock turns out held.
pub(crate) async fn acquire_unfenced(
    redis: &Redis,
    keys: &LockKeys,
    token: &str,
    ttl_ms: u64,
) -> Result<Attempt> {
    let client = redis.client();
    let previous: Option<String> = client
        .set(
            &keys.lock,
            token,
            Some(Expiration::PX(i64::try_from(ttl_ms).unwrap_or(i64::MAX))),
            Some(SetOptions::NX),
            true,
        )
        .await
        .map_err(aeturnis_redis_core::Error::from)?;
    match previous {
        None => Ok(Attempt::Acquired(0)),
        Some(v) if v.starts_with(token) => Ok(Attempt::Acquired(0)),
        Some(_) => {
            let pttl: i64 = client
                .pttl(&keys.lock)
                .await
                .map_err(aeturnis_redis_core::Error::from)?;
            Ok(Attempt::Held(u64::try_from(pttl).unwrap_or(0)))
        }
    }
}

/// What a waiter's attempt found: ours (with the lock's value), or held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WaitAttempt {
    Acquired(String),
    Held(u64),
}

pub(crate) async fn wait(
    redis: &Redis,
    keys: &LockKeys,
    token: &str,
    ttl_ms: u64,
    fenced: bool,
    fence_ttl_ms: u64,
    lease_ms: u64,
) -> Result<WaitAttempt> {
    let reply: Vec<Value> = redis
        .script_on(&WAIT, &keys.lock, |args| {
            args.extend([
                Value::from(token),
                ms(ttl_ms),
                Value::String(Str::from_static(if fenced { "1" } else { "0" })),
                ms(fence_ttl_ms),
                ms(lease_ms),
            ]);
        })
        .await?;
    match &reply[..] {
        [ok, value] if ok.as_i64() == Some(1) => value
            .as_string()
            .map(WaitAttempt::Acquired)
            .ok_or_else(|| unexpected("lock_wait", &reply)),
        [ok, pttl] if ok.as_i64() == Some(0) => Ok(WaitAttempt::Held(
            pttl.as_i64()
                .and_then(|p| u64::try_from(p).ok())
                .unwrap_or(0),
        )),
        _ => Err(unexpected("lock_wait", &reply)),
    }
}

/// How a release call is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReleaseMode {
    /// Compare-and-delete by the holder.
    Release,
    /// Whoever holds it (admin).
    Force,
    /// A waiter giving up: leave the queue, release if handed over.
    Leave,
}

/// What a release found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReleaseOutcome {
    /// Released now; `Some(value)`: handed to the waiter whose token starts
    /// `value` (the lock's new value).
    Released(Option<String>),
    /// Not ours (for force: was free). For a holder's release this is
    /// either a replay of a release that already ran, or a lost lock: the
    /// caller decides by its lease.
    NotOurs,
    /// Lost for certain: force-released, or Redis lost the lock's data.
    Lost,
}

pub(crate) async fn release(
    redis: &Redis,
    keys: &LockKeys,
    token: &str,
    fence: u64,
    fenced: bool,
    fence_ttl_ms: u64,
    mode: ReleaseMode,
) -> Result<ReleaseOutcome> {
    let mode = match mode {
        ReleaseMode::Release => 'r',
        ReleaseMode::Force => 'f',
        ReleaseMode::Leave => 'l',
    };
    release_call(redis, keys, |args| {
        args.extend([
            Value::from(token),
            Value::from(format!("{mode}{} {fence_ttl_ms} {fence}", u8::from(fenced))),
        ]);
    })
    .await
}

/// A holder's release that hands the lock to `next`, a waiter of this
/// process asking for `next_ttl_ms`, unless remote waiters are queued
/// (mode `h` of the release script). `Released(Some(value))` with `value`
/// starting with `next`: handed to it; starting with another token: handed
/// to that remote waiter (`next` must then queue in Redis itself).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn release_to_local(
    redis: &Redis,
    keys: &LockKeys,
    token: &str,
    fence: u64,
    fenced: bool,
    fence_ttl_ms: u64,
    next: &str,
    next_ttl_ms: u64,
) -> Result<ReleaseOutcome> {
    release_call(redis, keys, |args| {
        args.extend([
            Value::from(token),
            Value::from(format!("h{} {fence_ttl_ms} {fence}", u8::from(fenced))),
            Value::from(next),
            ms(next_ttl_ms),
        ]);
    })
    .await
}

async fn release_call(
    redis: &Redis,
    keys: &LockKeys,
    args: impl Fn(&mut Vec<Value>) + Send + Sync,
) -> Result<ReleaseOutcome> {
    let reply: Value = redis.script_on(&RELEASE, &keys.lock, args).await?;
    match reply {
        Value::Integer(1) => Ok(ReleaseOutcome::Released(None)),
        Value::Integer(0) => Ok(ReleaseOutcome::NotOurs),
        Value::Integer(-1) => Ok(ReleaseOutcome::Lost),
        Value::String(_) | Value::Bytes(_) => Ok(ReleaseOutcome::Released(reply.as_string())),
        other => Err(unexpected("lock_release", &[other])),
    }
}

pub(crate) async fn extend(
    redis: &Redis,
    keys: &LockKeys,
    token: &str,
    ttl_ms: u64,
) -> Result<bool> {
    let n: i64 = redis
        .script_on(&EXTEND, &keys.lock, |args| {
            args.extend([Value::from(token), ms(ttl_ms)]);
        })
        .await?;
    Ok(n == 1)
}

/// `Ok(Ok(previous))` accepted, `Ok(Err(last))` refused.
pub(crate) async fn fenced_write(
    redis: &Redis,
    fenced: String,
    state: String,
    fence: u64,
    value: Vec<u8>,
    ttl_ms: u64,
) -> Result<std::result::Result<u64, u64>> {
    let reply: Vec<i64> = redis
        .script(
            &FENCED_WRITE,
            vec![fenced, state],
            vec![ms(fence), Value::Bytes(value.into()), ms(ttl_ms)],
        )
        .await?;
    let [ok, n] = reply[..] else {
        return Err(Error::Redis(aeturnis_redis_core::Error::UnexpectedReply(
            format!("lock_fenced_write answered {reply:?}"),
        )));
    };
    let n = u64::try_from(n).unwrap_or(0);
    Ok(if ok == 1 { Ok(n) } else { Err(n) })
}

#[cfg(test)]
mod tests {
    use aeturnis_redis_core::fred::interfaces::{HashesInterface, KeysInterface};
    use aeturnis_redis_core::RedisConfig;
    use aeturnis_testkit::TestCtx;

    use super::*;

    const DAY: u64 = 86_400_000;

    async fn connect(ctx: &TestCtx) -> anyhow::Result<Redis> {
        Ok(Redis::connect(RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix)).await?)
    }

    fn tok() -> String {
        LockToken::random().as_str().to_owned()
    }

    /// fred re-sends a script whose connection dropped; sending the same
    /// invocation twice is what a replay looks like to the server.
    async fn should_answer_replayed_scripts_the_same(ctx: TestCtx) -> anyhow::Result<()> {
        let redis = connect(&ctx).await?;
        let keys = LockKeys::new(redis.keys(), "replayed")?;
        let (a, b, c) = (tok(), tok(), tok());
        let first = acquire(&redis, &keys, &a, 5_000, DAY, 0).await?;
        let replay = acquire(&redis, &keys, &a, 5_000, DAY, 0).await?;
        assert_eq!(first, Attempt::Acquired(1));
        assert_eq!(
            replay, first,
            "a replayed acquire must report the fence it issued"
        );
        assert!(matches!(
            acquire(&redis, &keys, &b, 5_000, DAY, 0).await?,
            Attempt::Held(ms) if ms > 0 && ms <= 5_000
        ));
        assert!(extend(&redis, &keys, &a, 5_000).await?);
        assert!(extend(&redis, &keys, &a, 5_000).await?);
        assert!(!extend(&redis, &keys, &b, 5_000).await?);
        let release_a = || release(&redis, &keys, &a, 1, true, DAY, ReleaseMode::Release);
        assert_eq!(release_a().await?, ReleaseOutcome::Released(None));
        assert_eq!(
            release_a().await?,
            ReleaseOutcome::NotOurs,
            "a replayed release finds nothing: the client decides by its lease"
        );
        assert_eq!(
            release(&redis, &keys, &b, 0, true, DAY, ReleaseMode::Release).await?,
            ReleaseOutcome::NotOurs
        );
        let exists: i64 = redis.client().exists(&keys.lock).await?;
        assert_eq!(exists, 0);
        let state_ttl: i64 = redis.client().pttl(keys.state()).await?;
        assert!(state_ttl > 0, "the fence counter must carry a TTL");
        match acquire(&redis, &keys, &c, 5_000, DAY, 0).await? {
            Attempt::Acquired(f) => assert!(f > 1, "fences must grow: got {f}"),
            other => panic!("expected the free lock, got {other:?}"),
        }
        Ok(())
    }

    async fn should_hand_the_lock_to_the_oldest_waiter(ctx: TestCtx) -> anyhow::Result<()> {
        let redis = connect(&ctx).await?;
        let keys = LockKeys::new(redis.keys(), "handoff")?;
        let (holder, first, second, late) = (tok(), tok(), tok(), tok());
        assert_eq!(
            acquire(&redis, &keys, &holder, 5_000, DAY, 0).await?,
            Attempt::Acquired(1)
        );
        for waiter in [&first, &second] {
            assert!(matches!(
                wait(&redis, &keys, waiter, 7_000, true, DAY, 5_000).await?,
                WaitAttempt::Held(ms) if ms > 0
            ));
        }
        let handed = release(&redis, &keys, &holder, 0, true, DAY, ReleaseMode::Release)
            .await?
            .handed()
            .expect("the release must hand the lock over");
        assert!(
            handed.starts_with(first.as_str()),
            "the oldest waiter goes first"
        );
        let fence = fence_of(&handed);
        assert!(fence > 1, "a hand-off issues a new fence, got {fence}");
        let pttl: i64 = redis.client().pttl(&keys.lock).await?;
        assert!(
            pttl > 5_000,
            "the lock carries the waiter's own TTL, got {pttl}"
        );
        assert!(
            matches!(
                acquire(&redis, &keys, &late, 5_000, DAY, 0).await?,
                Attempt::Held(_)
            ),
            "nobody can barge in during a hand-off"
        );
        assert!(matches!(
            wait(&redis, &keys, &second, 7_000, true, DAY, 5_000).await?,
            WaitAttempt::Held(_)
        ));
        assert_eq!(
            wait(&redis, &keys, &first, 7_000, true, DAY, 5_000).await?,
            WaitAttempt::Acquired(handed.clone()),
            "a waiter that missed the message finds the lock its own"
        );
        assert!(extend(&redis, &keys, &first, 5_000).await?);
        // force release hands over too
        let forced = release(&redis, &keys, "", 0, true, DAY, ReleaseMode::Force)
            .await?
            .handed()
            .expect("force release must hand over to the next waiter");
        assert!(forced.starts_with(second.as_str()));
        assert!(fence_of(&forced) > fence);
        assert_eq!(
            release(
                &redis,
                &keys,
                &first,
                fence,
                true,
                DAY,
                ReleaseMode::Release
            )
            .await?,
            ReleaseOutcome::Lost,
            "a force-released holder learns it lost the lock"
        );
        assert_eq!(
            release(&redis, &keys, &second, 0, true, DAY, ReleaseMode::Release).await?,
            ReleaseOutcome::Released(None),
            "the last waiter's release frees the lock"
        );
        assert_eq!(
            release(&redis, &keys, "", 0, true, DAY, ReleaseMode::Force).await?,
            ReleaseOutcome::NotOurs
        );
        Ok(())
    }

    async fn should_release_what_a_leaving_waiter_was_handed(ctx: TestCtx) -> anyhow::Result<()> {
        let redis = connect(&ctx).await?;
        let keys = LockKeys::new(redis.keys(), "leave")?;
        let (holder, gone, next) = (tok(), tok(), tok());
        acquire(&redis, &keys, &holder, 5_000, DAY, 0).await?;
        for waiter in [&gone, &next] {
            wait(&redis, &keys, waiter, 5_000, true, DAY, 5_000).await?;
        }
        release(&redis, &keys, &holder, 0, true, DAY, ReleaseMode::Release).await?;
        // `gone` was handed the lock, but gives up before it hears of it
        let handed = release(&redis, &keys, &gone, 0, true, DAY, ReleaseMode::Leave)
            .await?
            .handed()
            .expect("leaving must pass the lock on");
        assert!(handed.starts_with(next.as_str()));
        Ok(())
    }

    async fn should_skip_dead_waiters(ctx: TestCtx) -> anyhow::Result<()> {
        let redis = connect(&ctx).await?;
        let keys = LockKeys::new(redis.keys(), "dead")?;
        let (holder, dead, live) = (tok(), tok(), tok());
        acquire(&redis, &keys, &holder, 5_000, DAY, 0).await?;
        wait(&redis, &keys, &dead, 5_000, true, DAY, 5_000).await?;
        wait(&redis, &keys, &live, 5_000, true, DAY, 5_000).await?;
        // the first waiter's lease ran out (its process died)
        let _: i64 = redis
            .client()
            .hset(format!("{}:alive", keys.lock), (dead.as_str(), "1:5000"))
            .await?;
        let handed = release(&redis, &keys, &holder, 0, true, DAY, ReleaseMode::Release)
            .await?
            .handed()
            .expect("the live waiter must get the lock");
        assert!(handed.starts_with(live.as_str()));
        Ok(())
    }

    async fn should_report_a_lock_whose_data_redis_lost(ctx: TestCtx) -> anyhow::Result<()> {
        let redis = connect(&ctx).await?;
        let keys = LockKeys::new(redis.keys(), "wiped")?;
        let (a, b) = (tok(), tok());
        let Attempt::Acquired(fence) = acquire(&redis, &keys, &a, 5_000, DAY, 7).await? else {
            panic!("the free lock must be granted");
        };
        // Redis loses the lock and its counter (a restart without
        // persistence); someone else takes the lock afresh
        let _: i64 = redis
            .client()
            .del(vec![keys.lock.to_string(), keys.state()])
            .await?;
        assert_eq!(
            acquire(&redis, &keys, &b, 5_000, DAY, 0).await?,
            Attempt::Acquired(1)
        );
        assert_eq!(
            release(&redis, &keys, &a, fence, true, DAY, ReleaseMode::Release).await?,
            ReleaseOutcome::Lost,
            "a counter below our fence means the lock's data was lost"
        );
        Ok(())
    }

    async fn should_raise_lagging_counters_to_the_floor(ctx: TestCtx) -> anyhow::Result<()> {
        let redis = connect(&ctx).await?;
        let keys = LockKeys::new(redis.keys(), "floored")?;
        let (t1, t2) = (tok(), tok());
        assert_eq!(
            acquire(&redis, &keys, &t1, 5_000, DAY, 41).await?,
            Attempt::Acquired(42)
        );
        assert_eq!(
            release(&redis, &keys, &t1, 42, true, DAY, ReleaseMode::Release).await?,
            ReleaseOutcome::Released(None)
        );
        assert_eq!(
            acquire(&redis, &keys, &t2, 5_000, DAY, 0).await?,
            Attempt::Acquired(43)
        );
        Ok(())
    }

    async fn should_acquire_unfenced_with_one_native_set(ctx: TestCtx) -> anyhow::Result<()> {
        let redis = connect(&ctx).await?;
        let keys = LockKeys::new(redis.keys(), "unfenced")?;
        let (a, b) = (tok(), tok());
        assert_eq!(
            acquire_unfenced(&redis, &keys, &a, 5_000).await?,
            Attempt::Acquired(0)
        );
        assert_eq!(
            acquire_unfenced(&redis, &keys, &a, 5_000).await?,
            Attempt::Acquired(0),
            "a replayed SET NX GET finds our own token: still acquired"
        );
        assert!(matches!(
            acquire_unfenced(&redis, &keys, &b, 5_000).await?,
            Attempt::Held(ms) if ms > 0 && ms <= 5_000
        ));
        let state: i64 = redis.client().exists(keys.state()).await?;
        assert_eq!(state, 0, "unfenced locks keep no counter");
        assert_eq!(
            release(&redis, &keys, &a, 0, false, DAY, ReleaseMode::Release).await?,
            ReleaseOutcome::Released(None)
        );
        assert_eq!(
            release(&redis, &keys, &a, 0, false, DAY, ReleaseMode::Release).await?,
            ReleaseOutcome::NotOurs
        );
        Ok(())
    }

    async fn should_refuse_only_older_fences(ctx: TestCtx) -> anyhow::Result<()> {
        let redis = connect(&ctx).await?;
        let keys = LockKeys::new(redis.keys(), "fenced")?;
        let write = |f: u64, v: &'static [u8]| {
            fenced_write(&redis, keys.fenced(), keys.state(), f, v.to_vec(), DAY)
        };
        assert_eq!(write(5, b"a").await?, Ok(0));
        assert_eq!(write(5, b"a").await?, Ok(5));
        assert_eq!(write(4, b"x").await?, Err(5));
        assert_eq!(write(6, b"b").await?, Ok(5));
        let ttl: i64 = redis.client().pttl(keys.fenced()).await?;
        assert!(ttl > 0);
        Ok(())
    }

    /// Mode `h`: the holder hands the lock to a waiter of its own process
    /// in one call; a replay of that call answers the same grant (never
    /// "not ours"); remote waiters still come first.
    async fn should_hand_to_local_idempotently(ctx: TestCtx) -> anyhow::Result<()> {
        let redis = connect(&ctx).await?;
        for fenced in [true, false] {
            let keys = LockKeys::new(redis.keys(), if fenced { "local" } else { "local_plain" })?;
            let (holder, next, remote, after) = (tok(), tok(), tok(), tok());
            let fence = if fenced {
                match acquire(&redis, &keys, &holder, 5_000, DAY, 0).await? {
                    Attempt::Acquired(f) => f,
                    other => panic!("expected the free lock, got {other:?}"),
                }
            } else {
                assert_eq!(
                    acquire_unfenced(&redis, &keys, &holder, 5_000).await?,
                    Attempt::Acquired(0)
                );
                0
            };
            let hand = |from: &str, to: &str| {
                let (from, to) = (from.to_owned(), to.to_owned());
                let (redis, keys) = (&redis, &keys);
                async move { release_to_local(redis, keys, &from, fence, fenced, DAY, &to, 9_000).await }
            };
            let first = hand(&holder, &next)
                .await?
                .handed()
                .expect("the lock must be handed to the local waiter");
            let replay = hand(&holder, &next).await?.handed();
            assert_eq!(
                replay.as_deref(),
                Some(first.as_str()),
                "a replayed hand-off answers the same grant"
            );
            assert!(first.starts_with(next.as_str()));
            if fenced {
                assert!(fence_of(&first) > fence, "a hand-off issues a new fence");
            } else {
                assert_eq!(first, next, "unfenced: the value is the token");
            }
            let pttl: i64 = redis.client().pttl(&keys.lock).await?;
            assert!(
                pttl > 5_000,
                "the lock carries the waiter's TTL, got {pttl}"
            );
            // a remote waiter queues: the next release serves it first,
            // however many local waiters there are
            assert!(matches!(
                wait(&redis, &keys, &remote, 5_000, fenced, DAY, 5_000).await?,
                WaitAttempt::Held(_)
            ));
            let to_remote = release_to_local(
                &redis,
                &keys,
                &next,
                fence_of(&first),
                fenced,
                DAY,
                &after,
                9_000,
            )
            .await?
            .handed()
            .expect("the remote waiter must get the lock");
            assert!(
                to_remote.starts_with(remote.as_str()),
                "remote waiters take precedence"
            );
            assert_eq!(
                release(&redis, &keys, &remote, 0, fenced, DAY, ReleaseMode::Release).await?,
                ReleaseOutcome::Released(None)
            );
        }
        Ok(())
    }

    #[test]
    fn should_parse_fences_from_lock_values() {
        let t = "0123456789abcdef0123456789abcdef";
        assert_eq!(fence_of(t), 0);
        assert_eq!(fence_of(&format!("{t}!")), 0);
        assert_eq!(fence_of(&format!("{t}:42")), 42);
        assert_eq!(fence_of(&format!("{t}:42!")), 42);
        assert_eq!(fence_of("short"), 0);
    }

    aeturnis_testkit::topology_tests!(
        should_answer_replayed_scripts_the_same,
        should_hand_the_lock_to_the_oldest_waiter,
        should_release_what_a_leaving_waiter_was_handed,
        should_skip_dead_waiters,
        should_report_a_lock_whose_data_redis_lost,
        should_raise_lagging_counters_to_the_floor,
        should_acquire_unfenced_with_one_native_set,
        should_refuse_only_older_fences,
        should_hand_to_local_idempotently,
    );
}
