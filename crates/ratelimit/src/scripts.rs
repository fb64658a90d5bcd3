//! The four limiter scripts. Each touches exactly one key (`KEYS[1]`) and
//! answers `{allowed, remaining, reset_after_us, retry_after_us (-1 = none),
//! replayed}`.
//!
//! `ARGV`: `mode` (`c` check and consume, `p` peek without writing, `r`
//! refund), `limit` (GCRA: the burst), `window`, `cost`, `block` (`0` = no
//! block), and for the sliding log only the request id. The sliding log,
//! the sliding window counter and GCRA take `window` and `block` in µs
//! (GCRA's `window` is its emission interval) and read the clock with
//! `redis.call('TIME')` (Redis 7 replicates script effects, so `TIME` before
//! a write is allowed). The fixed window takes them in whole milliseconds
//! and needs no clock: its window is the key's TTL, which Redis expires on
//! its own clock.
//!
//! A block stores a marker that makes every check of the key a denial until
//! the marker's TTL (the block) ends; the key then starts from its full
//! quota, whatever the algorithm.
//!
//! Numbers go to `redis.call` as numbers: Redis converts a Lua number
//! argument with `%.17g`, exact for the integral microsecond timestamps
//! here (below 2^53). Only text built with `..` (a score bound such as
//! `(123`, the sliding window's `start:count:previous`) is formatted with
//! `%.0f`, because Lua's own number-to-text conversion (`%.14g`) would
//! print a 16-digit timestamp in exponent form.
//!
//! The scripts keep `redis.call`s to a minimum: on the bench machine each
//! costs ~3 µs of server time (an empty script ~3.5 µs, GCRA's three calls
//! ~12 µs, `INFO commandstats`), more than all the arithmetic around it.
//! They also avoid per-call garbage where it is free to: no closures
//! (a `local function` is a fresh allocation on every run), no
//! `string.format` for values `redis.call` takes as numbers; measured on
//! GCRA with `redis-benchmark -c 50` over 1,000 keys, that took its
//! `EVALSHA` from ~15.9 to ~14.5 µs per call.

use std::sync::LazyLock;

use aeturnis_redis_core::LuaScript;

/// Shared prologue: the shebang, then the arguments.
///
/// `#!lua` (no flags) declares a script that may write and may not use
/// memory past `maxmemory`: under OOM (`maxmemory` with `noeviction`) Redis
/// refuses the whole call before it runs, with `-OOM`. Without it Redis
/// checks only the script's first write, and the sliding log's first write,
/// `ZREMRANGEBYSCORE`, is one OOM does not block: its `ZADD` then wrote past
/// the cap and the check answered "allowed". So under OOM every call of
/// every algorithm (check, peek, refund) fails the same way, writing
/// nothing: an error classed unavailable (`Classify::is_unavailable`, and
/// the core's `is_out_of_memory`), which the limiter's failure policy
/// decides.
macro_rules! prologue {
    () => {
        r"#!lua
local key = KEYS[1]
local mode = ARGV[1]
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local block = tonumber(ARGV[5])
"
    };
}

/// The server clock in microseconds. A TTL in µs becomes `PX` milliseconds
/// as `math.max(math.ceil(us / 1000), 1)` (rounded up, at least 1), written
/// out where it is used rather than as a helper function (see the module
/// docs).
macro_rules! clock {
    () => {
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"
    };
}

/// Sliding log: a sorted set of request ids scored by admission time.
/// Members are `<request id>:<unit>`, so a replayed check finds its own
/// members and answers "allowed" again without adding anything.
///
/// A block adds the member `#b`, scored by the block's end, and sets the
/// key's TTL to the block. The admitted entries stay until then, so a
/// replay of a request admitted within the window still answers "allowed,
/// replayed" during the block; any other check is denied. When the block
/// ends the key expires (or the first check deletes it), and the log starts
/// empty.
///
/// One `ZMSCORE` reads the block marker and the request's own first member
/// together. After trimming to the window, `ZCARD` is the count.
pub(crate) static SLIDING_LOG: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "ratelimit_sliding_log",
        concat!(
            prologue!(),
            r"
local id = ARGV[6]
if mode == 'r' then
  local m = {}
  for i = 1, cost do m[i] = id .. ':' .. i end
  return {redis.call('ZREM', key, unpack(m)), 0, 0, -1, 0}
end
",
            clock!(),
            r"
local fmt = string.format
local first = id .. ':1'
local sc = redis.call('ZMSCORE', key, '#b', first)
local b = tonumber(sc[1])
local mine = tonumber(sc[2])
if mine and mine <= now - window then mine = nil end
if b then
  local left = b - now
  if left > 0 then
    if mode == 'c' and mine then return {1, 0, left, -1, 1} end
    return {0, 0, left, left, 0}
  end
  if mode ~= 'c' then return {1, limit, 0, -1, 0} end
  redis.call('DEL', key)
  mine = nil
end
local count
if mode == 'c' then
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  count = redis.call('ZCARD', key)
else
  count = redis.call('ZCOUNT', key, '(' .. fmt('%.0f', now - window), '+inf')
end
if mode == 'c' and not mine and count + cost <= limit then
  -- the score as TIME's own digits: Redis would format the number with
  -- %.17g, ~5k instructions for a µs timestamp
  local now_s = t[1] .. string.sub('00000' .. t[2], -6)
  if cost == 1 then
    -- the usual cost: no table, no unpack
    redis.call('ZADD', key, now_s, first)
  else
    local args = {}
    for i = 1, cost do
      args[2 * i - 1] = now_s
      args[2 * i] = id .. ':' .. i
    end
    redis.call('ZADD', key, unpack(args))
  end
  redis.call('PEXPIRE', key, math.max(math.ceil(window / 1000), 1))
  return {1, limit - count - cost, window, -1, 0}
end
local function reset()
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if newest[2] then return tonumber(newest[2]) + window - now end
  return 0
end
if mode == 'c' and mine then
  local left = limit - count
  if left < 0 then left = 0 end
  return {1, left, reset(), -1, 1}
end
if count + cost <= limit then
  return {1, limit - count, reset(), -1, 0}
end
if mode == 'c' and block > 0 then
  redis.call('ZADD', key, now + block, '#b')
  redis.call('PEXPIRE', key, math.max(math.ceil(block / 1000), 1))
  return {0, 0, block, block, 0}
end
local from = '(' .. fmt('%.0f', now - window)
local retry = window
local need = count + cost - limit
local e = redis.call('ZRANGEBYSCORE', key, from, '+inf', 'WITHSCORES', 'LIMIT', need - 1, 1)
if e[2] then retry = tonumber(e[2]) + window - now end
local left = limit - count
if left < 0 then left = 0 end
return {0, left, reset(), retry, 0}
"
        ),
    )
});

/// Fixed window anchored at the key's first request: the key is the count
/// (an integer string) and its TTL is what is left of the window, so Redis
/// ends the window by expiring the key and the script needs no clock.
/// `window` and `block` are in milliseconds. While blocked the key holds
/// `-2^52` (every check stays negative after adding its cost) with the
/// block as its TTL.
///
/// A check increments first (one write, no read) and undoes the increment
/// when it denies. A refund that empties the window deletes the key, so the
/// next request starts a new window.
pub(crate) static FIXED_WINDOW: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "ratelimit_fixed_window",
        concat!(
            prologue!(),
            r"
local marker = -4503599627370496
if mode == 'c' then
  -- the cost and the window as the caller sent them: text Redis parses,
  -- where a Lua number would first be formatted with %.17g
  local c = redis.call('INCRBY', key, ARGV[4])
  if c == cost then
    redis.call('PEXPIRE', key, ARGV[3])
    return {1, limit - c, window * 1000, -1, 0}
  end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then ttl = window; redis.call('PEXPIRE', key, window) end
  ttl = ttl * 1000
  if c > 0 and c <= limit then return {1, limit - c, ttl, -1, 0} end
  if c < 0 then
    redis.call('DECRBY', key, cost)
    return {0, 0, ttl, ttl, 0}
  end
  if block > 0 then
    redis.call('SET', key, marker, 'PX', block)
    return {0, 0, block * 1000, block * 1000, 0}
  end
  redis.call('DECRBY', key, cost)
  return {0, limit - c + cost, ttl, ttl, 0}
end
local c = tonumber(redis.call('GET', key))
if not c then
  if mode == 'p' then return {1, limit, 0, -1, 0} end
  return {1, 0, 0, -1, 0}
end
local ttl = redis.call('PTTL', key)
if ttl < 0 then ttl = 0 end
ttl = ttl * 1000
if c < 0 then
  if mode == 'r' then return {1, 0, 0, -1, 0} end
  return {0, 0, ttl, ttl, 0}
end
if mode == 'r' then
  if c <= cost then redis.call('DEL', key) else redis.call('DECRBY', key, cost) end
  return {1, 0, 0, -1, 0}
end
if c + cost <= limit then
  if c == 0 then ttl = 0 end
  return {1, limit - c, ttl, -1, 0}
end
local left = limit - c
if left < 0 then left = 0 end
return {0, left, ttl, ttl, 0}
"
        ),
    )
});

/// Sliding window counter: a string `<current window start µs>:<its
/// count>:<previous window's count>` (or `-<block end µs>` while blocked);
/// the estimate weighs the previous window by the part of it still inside
/// the sliding window. One `GET` and one `SET ... PX` per check.
pub(crate) static SLIDING_WINDOW: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "ratelimit_sliding_window",
        concat!(
            prologue!(),
            clock!(),
            r"
local fmt = string.format
local v = redis.call('GET', key)
local s, c, p
if v then
  local b = tonumber(v)
  if b then
    local left = -b - now
    if left > 0 then
      if mode == 'r' then return {1, 0, 0, -1, 0} end
      return {0, 0, left, left, 0}
    end
  else
    local a, x, y = string.match(v, '^(%d+):(%d+):(%d+)$')
    s = tonumber(a); c = tonumber(x); p = tonumber(y)
  end
end
local existed = s ~= nil
if not s then
  s = now; c = 0; p = 0
elseif now >= s + window then
  local k = math.floor((now - s) / window)
  if k == 1 then p = c else p = 0 end
  c = 0
  s = s + k * window
end
local elapsed = now - s
local est = p * (window - elapsed) / window + c
if mode == 'r' then
  if existed then
    if c >= cost then c = c - cost else p = p - (cost - c); c = 0 end
    if p < 0 then p = 0 end
    redis.call('SET', key, fmt('%.0f:%.0f:%.0f', s, c, p), 'KEEPTTL')
  end
  return {1, 0, 0, -1, 0}
end
if mode == 'c' and est + cost <= limit then
  -- the current window now has a count (cost >= 1): it resets when it
  -- has slid out, at the end of the next window
  local reset = s + 2 * window - now
  redis.call('SET', key, fmt('%.0f:%.0f:%.0f', s, c + cost, p), 'PX',
    math.max(math.ceil(reset / 1000), 1))
  return {1, math.floor(limit - est - cost), reset, -1, 0}
end
local function reset_after(cur)
  if cur > 0 then return s + 2 * window - now end
  if p > 0 then return s + window - now end
  return 0
end
if est + cost <= limit then
  return {1, math.floor(limit - est), reset_after(c), -1, 0}
end
if mode == 'c' and block > 0 then
  redis.call('SET', key, -(now + block), 'PX', math.max(math.ceil(block / 1000), 1))
  return {0, 0, block, block, 0}
end
local retry
if c + cost <= limit then
  retry = window - (limit - cost - c) * window / p - elapsed
else
  local e2 = window - (limit - cost) * window / c
  if e2 < 0 then e2 = 0 end
  retry = s + window + e2 - now
end
retry = math.ceil(retry)
if retry < 1 then retry = 1 end
local left = math.floor(limit - est)
if left < 0 then left = 0 end
return {0, left, reset_after(c), retry, 0}
"
        ),
    )
});

/// GCRA: a string holding the theoretical arrival time (TAT) in
/// microseconds, an integer, so Redis stores it without an allocation of its
/// own. `limit` is the burst, `window` the emission interval.
///
/// A block stores `-<block end µs>` with the block as TTL: checks during the
/// block are denied without extending it, and when it ends the key is gone,
/// so the subject starts again from a full burst (as with the other
/// algorithms) rather than from the single unit a pushed-back TAT would
/// allow.
pub(crate) static GCRA: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "ratelimit_gcra",
        concat!(
            prologue!(),
            clock!(),
            r"
local stored = tonumber(redis.call('GET', key))
if stored and stored < 0 then
  local left = -stored - now
  if left > 0 then
    if mode == 'r' then return {1, 0, 0, -1, 0} end
    return {0, 0, left, left, 0}
  end
  stored = nil
end
local tat = stored
if not tat or tat < now then tat = now end
local cap = limit * window
if mode == 'r' then
  if stored then
    local nt = tat - cost * window
    if nt <= now then redis.call('DEL', key)
    else redis.call('SET', key, nt, 'PX', math.max(math.ceil((nt - now) / 1000), 1)) end
  end
  return {1, 0, 0, -1, 0}
end
local new_tat = tat + cost * window
local allow_at = new_tat - cap
if now >= allow_at then
  if mode == 'c' then
    redis.call('SET', key, new_tat, 'PX', math.max(math.ceil((new_tat - now) / 1000), 1))
    return {1, math.floor((cap - (new_tat - now)) / window), new_tat - now, -1, 0}
  end
  return {1, math.floor((cap - (tat - now)) / window), tat - now, -1, 0}
end
if mode == 'c' and block > 0 then
  redis.call('SET', key, -(now + block), 'PX', math.max(math.ceil(block / 1000), 1))
  return {0, 0, block, block, 0}
end
local left = math.floor((cap - (tat - now)) / window)
if left < 0 then left = 0 end
return {0, left, tat - now, allow_at - now, 0}
"
        ),
    )
});

/// GCRA for emission intervals of whole milliseconds (every preset's, and
/// any quota whose `window ÷ limit` is at least 1 ms and a whole number of
/// them): the theoretical arrival time is kept as the key's **expiry**, so
/// `PTTL` is `TAT − now` on the server's own clock and the script needs no
/// `TIME` and no arithmetic on absolute times: one `PTTL` and one
/// `SET … PX … GET` per admitted check (the µs script above: `TIME`, `GET`,
/// `SET`). `window` (the emission interval) and `block` are in ms; the
/// reply is in µs like every other script's.
///
/// The value is `0`, or `-1` while blocked (TTL = the rest of the block).
/// An admitted check writes `0` with `GET`: when that finds `-1` (a check
/// during a block that would otherwise fit), the marker and its TTL are
/// put back in the same call, so a block is never cut short.
pub(crate) static GCRA_MS: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "ratelimit_gcra_ms",
        concat!(
            prologue!(),
            r"
local cap = limit * window
local left = redis.call('PTTL', key)
if left < 0 then left = 0 end
local new = left + cost * window
if mode == 'c' and new <= cap then
  -- a block with under 1 ms left (`PTTL` 0) is over
  -- '0' as text: a Lua number would be formatted with %.17g
  if redis.call('SET', key, '0', 'PX', new, 'GET') ~= '-1' or left == 0 then
    return {1, math.floor((cap - new) / window), new * 1000, -1, 0}
  end
  redis.call('SET', key, -1, 'PX', left)
  return {0, 0, left * 1000, left * 1000, 0}
end
if left > 0 and redis.call('GET', key) == '-1' then
  if mode == 'r' then return {1, 0, 0, -1, 0} end
  return {0, 0, left * 1000, left * 1000, 0}
end
if mode == 'r' then
  if left > 0 then
    local nt = left - cost * window
    if nt <= 0 then redis.call('DEL', key) else redis.call('PEXPIRE', key, nt) end
  end
  return {1, 0, 0, -1, 0}
end
local rem = math.floor((cap - left) / window)
if rem < 0 then rem = 0 end
if new <= cap then
  return {1, rem, left * 1000, -1, 0}
end
if mode == 'c' and block > 0 then
  redis.call('SET', key, -1, 'PX', block)
  return {0, 0, block * 1000, block * 1000, 0}
end
return {0, rem, left * 1000, (new - cap) * 1000, 0}
"
        ),
    )
});

/// Every script of the crate, registered together on the `Redis` handle
/// when a limiter is built (so `Redis::load_scripts` preloads them all).
pub(crate) fn all() -> [&'static LuaScript; 5] {
    [
        &*SLIDING_LOG,
        &*FIXED_WINDOW,
        &*SLIDING_WINDOW,
        &*GCRA,
        &*GCRA_MS,
    ]
}
