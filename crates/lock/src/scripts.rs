//! The Lua scripts and the keys they touch.
//!
//! Per resource `r`, every key carries the hash tag `{r}`, so one script
//! can touch them all on a cluster. Scripts are given the lock key only and
//! derive the others by suffix (same tag, so the same slot):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `PREFIX lock:{r}` | string | the holder: `TOKEN[:FENCE][!]`, `PX ttl` |
//! | `PREFIX lock:{r}:state` | hash | `n`: the fencing counter (bumped by `lock_fence`; Redlock: by `lock_acquire`) |
//! | `PREFIX lock:{r}:forced` | string | the token a force release took the lock from, for the rest of its TTL |
//! | `PREFIX lock:{r}:queue` | sorted set | waiters' tokens by ticket (FIFO) |
//! | `PREFIX lock:{r}:alive` | hash | waiter token → `LEASE_DEADLINE_MS:TTL_MS`; `#`: the ticket counter |
//! | `PREFIX lock:{r}:fenced` | hash | `f`, `v`, `h`: the last accepted fenced write (fence, value, holder's token) |
//!
//! The holder's value starts with its 32-character token, so "is it mine"
//! is a prefix test. `:FENCE` is present once the holder asked for a fence
//! (a Redlock master: from the acquisition, in fenced mode). A trailing `!`
//! means "waiters are queued": only then does a release take the hand-off
//! path (an uncontended release is `GET` + `DEL`, like a bare
//! compare-and-delete).
//!
//! **Hand-off.** A release that finds `!` gives the lock straight to the
//! oldest live waiter: it sets the lock to that waiter's token (with the
//! TTL the waiter asked for, and no fence: the new holder asks for one on
//! demand, above every fence issued before) and publishes the new value
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
//!
//! The Lua source of each script is in `src/lua/*.lua`. This module is
//! internal; the `test-hooks` feature exposes it (hidden) so the crate's
//! own tests can call each script directly.

use std::sync::{Arc, LazyLock};

use aeturnis_redis_core::fred::bytes_utils::Str;
use aeturnis_redis_core::fred::interfaces::KeysInterface;
use aeturnis_redis_core::fred::types::{Expiration, SetOptions, Value};
use aeturnis_redis_core::{KeyError, KeySpace, LuaScript, Redis, RedisKey};

use crate::error::{Error, Result};
use crate::token::LockToken;

/// Redlock's fenced acquire: the fencing counter and `SET NX PX` in one
/// script (a [`LockManager`](crate::LockManager) acquires with a native
/// `SET NX PX GET` and issues fences on demand with [`FENCE`]).
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
static ACQUIRE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("lock_acquire", include_str!("lua/acquire.lua")));

/// A waiter's attempt: take the lock if it is ours (handed over) or free
/// and nobody older waits; otherwise join the FIFO queue (or keep our
/// place: the lease is refreshed on every attempt) and mark the lock `!`
/// so its release hands it over.
///
/// Dead waiters (lease run out) are dropped from the head. Idempotent for
/// its token: a replay finds the lock holding our token, or us queued.
///
/// `KEYS`: lock. `ARGV`: token, ttl ms, lease ms.
/// Reply: `{1, value}` ours (the lock's value: `TOKEN[!]`),
/// `{0, pttl}` held, `{0, 0}` free but promised to an older waiter.
static WAIT: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("lock_wait", include_str!("lua/wait.lua")));

/// A fence on demand: bump the counter and write the fence into the lock
/// value (`TOKEN:FENCE[!]`, `KEEPTTL`) only while `TOKEN` holds the lock.
/// A holder that lost the lock gets `0`, never a fence; so fences are
/// issued only to the current holder and grow in holding order. A holder
/// that already has a fence gets the same one back: a replay (fred re-sends
/// it after a reconnect) or a second call issues nothing new. A new fence
/// is above the last accepted fenced write too (`:fenced`'s `f`): after a
/// data loss restarts the counter, a write from before the loss may land on
/// the emptied server, and holders would otherwise be refused until the
/// counter passed it.
///
/// `KEYS`: lock. `ARGV`: token, fence ttl ms.
/// Reply: the fence, or `0` when the lock is not ours.
static FENCE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("lock_fence", include_str!("lua/fence.lua")));

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
/// out dead, the lock is set to `NEXT` `PX NEXT_TTL` (no fence: the waiter
/// asks for one on demand), without `PUBLISH` (nobody outside needs to
/// know), and the new value is the reply. A replay of a hand-off that
/// already ran finds the lock starting with `NEXT` and answers the same
/// value again, never "not ours".
///
/// `KEYS`: lock. `ARGV`: token (`''` for force), then `MODE FENCE` in one
/// argument (`MODE`: `r` release, `f` force, `l` leave, `h` hand to local;
/// `FENCE`: the holder's fence, `0` when it has none), so the common case
/// parses one short string; mode `h` adds `NEXT`, `NEXT_TTL`.
/// Reply: `1` released, `value` (a string) released and handed to the
/// waiter whose token starts `value` (a remote waiter, or `NEXT`), `0` not
/// ours (or, for force, was free), `-1` lost for certain.
static RELEASE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("lock_release", include_str!("lua/release.lua")));

/// Extend: compare-and-pexpire (a replay extends again: harmless).
///
/// `KEYS`: lock. `ARGV`: token, ttl ms. Reply: `1` extended, `0` not ours.
static EXTEND: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("lock_extend", include_str!("lua/extend.lua")));

/// Fenced write: refuse a fencing token lower than the last accepted one,
/// and an equal one from another holder (two sides of a split brain can
/// issue the same number). The same holder may write again with the same
/// fence (so a replay is a no-op in effect).
///
/// `KEYS`: fenced, state. `ARGV`: fence, value, ttl ms, holder's token
/// (`''`: none, so an equal fence is refused).
/// Reply: `{1, previous}` accepted, `{0, last}` refused.
static FENCED_WRITE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("lock_fenced_write", include_str!("lua/fenced_write.lua")));

/// The names of every lock script, in registration order.
#[cfg(any(test, feature = "test-hooks"))]
pub const NAMES: [&str; 6] = [
    "lock_acquire",
    "lock_wait",
    "lock_fence",
    "lock_release",
    "lock_extend",
    "lock_fenced_write",
];

/// Registers every script with `redis` (once per handle) so
/// `Redis::load_scripts` preloads them all.
pub fn register(redis: &Redis) {
    redis.register_scripts([
        &*ACQUIRE,
        &*WAIT,
        &*FENCE,
        &*RELEASE,
        &*EXTEND,
        &*FENCED_WRITE,
    ]);
}

/// The lock key of one resource (the scripts derive the others).
#[derive(Debug)]
pub struct LockKeys {
    /// The resource name as given.
    pub resource: String,
    /// The lock key, `PREFIX lock:{resource}`.
    pub lock: RedisKey,
}

impl LockKeys {
    /// The keys of `resource` under `keys`' prefix.
    ///
    /// # Errors
    /// [`Error::Key`] for an empty resource or one a key cannot hold.
    pub fn new(keys: &KeySpace, resource: &str) -> Result<Arc<LockKeys>> {
        if resource.is_empty() {
            return Err(Error::Key(KeyError::Empty));
        }
        let lock = keys.key("lock").tag(resource).build()?;
        Ok(Arc::new(LockKeys {
            resource: resource.to_owned(),
            lock,
        }))
    }

    /// The pub/sub channel that carries hand-offs.
    pub fn channel(&self) -> String {
        format!("{}:released", self.lock)
    }

    /// The fencing state hash (counter and last released token).
    pub fn state(&self) -> String {
        format!("{}:state", self.lock)
    }

    /// The last accepted fenced write.
    pub fn fenced(&self) -> String {
        format!("{}:fenced", self.lock)
    }
}

/// What one acquire attempt on one server found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
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
pub fn fence_of(value: &str) -> u64 {
    let rest = value.get(LockToken::LEN..).unwrap_or("");
    rest.strip_prefix(':')
        .map(|f| f.trim_end_matches('!'))
        .and_then(|f| f.parse().ok())
        .unwrap_or(0)
}

fn ms(v: u64) -> Value {
    Value::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

/// Redlock's fenced attempt on one master (`floor`: the highest fence
/// seen).
pub async fn acquire(
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

/// The native attempt (every [`LockManager`](crate::LockManager) acquire,
/// and unfenced Redlock): one `SET key token NX PX ttl GET` (a replay
/// finds our own token and still answers "acquired"); `PTTL` only when
/// the lock turns out held. If the holder's lock is gone by the time the
/// `PTTL` runs (released or expired in between: the two commands are not
/// atomic), the lock is free, so the `SET` is sent again, up to
/// [`NATIVE_ATTEMPTS`] times in all; a lock that keeps changing hands that
/// fast answers "held" for 1 ms.
pub async fn acquire_unfenced(
    redis: &Redis,
    keys: &LockKeys,
    token: &str,
    ttl_ms: u64,
) -> Result<Attempt> {
    let client = redis.client();
    for _ in 0..NATIVE_ATTEMPTS {
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
            None => return Ok(Attempt::Acquired(0)),
            Some(v) if v.starts_with(token) => return Ok(Attempt::Acquired(0)),
            Some(_) => {
                let pttl: i64 = client
                    .pttl(&keys.lock)
                    .await
                    .map_err(aeturnis_redis_core::Error::from)?;
                // -2: gone since the SET (free now); -1 cannot happen
                // (every lock key has a TTL) and counts as a short hold
                match pttl {
                    -2 => continue,
                    p => return Ok(Attempt::Held(u64::try_from(p).unwrap_or(1).max(1))),
                }
            }
        }
    }
    Ok(Attempt::Held(1))
}

/// How many `SET NX` a native attempt sends when the holder's lock keeps
/// vanishing between its `SET` and `PTTL`.
pub const NATIVE_ATTEMPTS: usize = 3;

/// What a waiter's attempt found: ours (with the lock's value), or held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitAttempt {
    /// Ours: the lock's value (`TOKEN[:FENCE][!]`).
    Acquired(String),
    /// Held for this many more milliseconds (0: free but promised to an
    /// older waiter).
    Held(u64),
}

/// A waiter's attempt (`lock_wait`): take the lock if handed to us or
/// free with nobody older waiting, else join or keep our place in the
/// queue for `lease_ms`.
///
/// # Errors
/// Redis, or an unexpected reply.
pub async fn wait(
    redis: &Redis,
    keys: &LockKeys,
    token: &str,
    ttl_ms: u64,
    lease_ms: u64,
) -> Result<WaitAttempt> {
    let reply: Vec<Value> = redis
        .script_on(&WAIT, &keys.lock, |args| {
            args.extend([Value::from(token), ms(ttl_ms), ms(lease_ms)]);
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
pub enum ReleaseMode {
    /// Compare-and-delete by the holder.
    Release,
    /// Whoever holds it (admin).
    Force,
    /// A waiter giving up: leave the queue, release if handed over.
    Leave,
}

/// What a release found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseOutcome {
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

/// A release, force release or leave (`lock_release`), with the hand-off
/// to the oldest live waiter when the lock is marked `!`.
///
/// # Errors
/// Redis, or an unexpected reply.
pub async fn release(
    redis: &Redis,
    keys: &LockKeys,
    token: &str,
    fence: u64,
    mode: ReleaseMode,
) -> Result<ReleaseOutcome> {
    let (mode, unfenced) = match mode {
        ReleaseMode::Release => ('r', "r 0"),
        ReleaseMode::Force => ('f', "f 0"),
        ReleaseMode::Leave => ('l', "l 0"),
    };
    // a holder that never asked for a fence (the common case) sends a
    // static argument: nothing to format
    let flags = if fence == 0 {
        Value::String(Str::from_static(unfenced))
    } else {
        Value::from(format!("{mode} {fence}"))
    };
    release_call(redis, keys, |args| {
        args.extend([Value::from(token), flags.clone()]);
    })
    .await
}

/// A holder's release that hands the lock to `next`, a waiter of this
/// process asking for `next_ttl_ms`, unless remote waiters are queued
/// (mode `h` of the release script). `Released(Some(value))` with `value`
/// starting with `next`: handed to it; starting with another token: handed
/// to that remote waiter (`next` must then queue in Redis itself).
pub async fn release_to_local(
    redis: &Redis,
    keys: &LockKeys,
    token: &str,
    fence: u64,
    next: &str,
    next_ttl_ms: u64,
) -> Result<ReleaseOutcome> {
    release_call(redis, keys, |args| {
        args.extend([
            Value::from(token),
            Value::from(format!("h {fence}")),
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

/// Compare-and-`PEXPIRE` (`lock_extend`): whether the lock was still ours.
///
/// # Errors
/// Redis.
pub async fn extend(redis: &Redis, keys: &LockKeys, token: &str, ttl_ms: u64) -> Result<bool> {
    let n: i64 = redis
        .script_on(&EXTEND, &keys.lock, |args| {
            args.extend([Value::from(token), ms(ttl_ms)]);
        })
        .await?;
    Ok(n == 1)
}

/// A fence on demand (`lock_fence`): `Some(fence)`, or `None` when
/// `token` no longer holds the lock.
///
/// # Errors
/// Redis.
pub async fn fence(
    redis: &Redis,
    keys: &LockKeys,
    token: &str,
    fence_ttl_ms: u64,
) -> Result<Option<u64>> {
    let n: i64 = redis
        .script_on(&FENCE, &keys.lock, |args| {
            args.extend([Value::from(token), ms(fence_ttl_ms)]);
        })
        .await?;
    Ok(u64::try_from(n).ok().filter(|&n| n > 0))
}

/// `Ok(Ok(previous))` accepted, `Ok(Err(last))` refused. `holder`: the
/// writer's lock token (`""`: none).
#[allow(clippy::too_many_arguments)]
pub async fn fenced_write(
    redis: &Redis,
    fenced: String,
    state: String,
    fence: u64,
    holder: &str,
    value: Vec<u8>,
    ttl_ms: u64,
) -> Result<std::result::Result<u64, u64>> {
    let reply: Vec<i64> = redis
        .script(
            &FENCED_WRITE,
            vec![fenced, state],
            vec![
                ms(fence),
                Value::Bytes(value.into()),
                ms(ttl_ms),
                Value::from(holder),
            ],
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
    use super::*;

    #[test]
    fn should_parse_fences_from_lock_values() {
        let t = "0123456789abcdef0123456789abcdef";
        assert_eq!(fence_of(t), 0);
        assert_eq!(fence_of(&format!("{t}!")), 0);
        assert_eq!(fence_of(&format!("{t}:42")), 42);
        assert_eq!(fence_of(&format!("{t}:42!")), 42);
        assert_eq!(fence_of("short"), 0);
    }

    #[test]
    fn should_name_every_script_once() {
        let scripts = [
            &*ACQUIRE,
            &*WAIT,
            &*FENCE,
            &*RELEASE,
            &*EXTEND,
            &*FENCED_WRITE,
        ];
        let names: Vec<&str> = scripts.iter().map(|s| s.name()).collect();
        assert_eq!(names, NAMES);
        for s in scripts {
            assert!(!s.sha1().is_empty(), "{}", s.name());
        }
    }
}
