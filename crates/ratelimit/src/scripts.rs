//! The four limiter scripts. Each touches exactly one key (`KEYS[1]`), takes
//! the time from `redis.call('TIME')` (Redis 7 replicates script effects, so
//! `TIME` before a write is allowed), and answers
//! `{allowed, remaining, reset_after_us, retry_after_us (-1 = none), replayed}`.
//!
//! `ARGV`: `mode` (`c` check and consume, `p` peek without writing, `r`
//! refund), `limit`, `window_us` (GCRA: the emission interval), `cost`,
//! `block_us` (`0` = no block), `request_id` (sliding log only).
//!
//! Every number handed to `redis.call` is formatted with `%.0f`: Lua 5.1
//! prints large numbers in exponent form, which would lose microseconds.

use std::sync::LazyLock;

use aeturnis_redis_core::LuaScript;

/// Shared prologue: arguments and the server clock in microseconds.
macro_rules! prologue {
    () => {
        r"
local key = KEYS[1]
local mode = ARGV[1]
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local block = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function fmt(n) return string.format('%.0f', n) end
local function ms(us) local m = math.ceil(us / 1000) if m < 1 then m = 1 end return fmt(m) end
"
    };
}

/// Sliding log: a sorted set of request ids scored by admission time.
/// Members are `<request id>:<unit>`, so a replayed check finds its own
/// members and answers "allowed" again without adding anything. While a key
/// is blocked it holds only the member `#b`, scored by the block's end.
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
local b = redis.call('ZSCORE', key, '#b')
if b then
  local left = tonumber(b) - now
  if left > 0 then return {0, 0, left, left, 0} end
  if mode ~= 'c' then return {1, limit, 0, -1, 0} end
  redis.call('DEL', key)
end
local from = '(' .. fmt(now - window)
if mode == 'c' then
  redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now - window))
end
local count = redis.call('ZCOUNT', key, from, '+inf')
local function reset()
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if newest[2] then return tonumber(newest[2]) + window - now end
  return 0
end
if mode == 'c' and redis.call('ZSCORE', key, id .. ':1') then
  local left = limit - count
  if left < 0 then left = 0 end
  return {1, left, reset(), -1, 1}
end
if count + cost <= limit then
  if mode == 'c' then
    local args = {}
    local score = fmt(now)
    for i = 1, cost do
      args[2 * i - 1] = score
      args[2 * i] = id .. ':' .. i
    end
    redis.call('ZADD', key, unpack(args))
    redis.call('PEXPIRE', key, ms(window))
    return {1, limit - count - cost, window, -1, 0}
  end
  return {1, limit - count, reset(), -1, 0}
end
if mode == 'c' and block > 0 then
  redis.call('DEL', key)
  redis.call('ZADD', key, fmt(now + block), '#b')
  redis.call('PEXPIRE', key, ms(block))
  return {0, 0, block, block, 0}
end
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

/// Fixed window anchored at the key's first request: a hash
/// `{s = window start, c = count}`, or `{b = block end}` while blocked.
pub(crate) static FIXED_WINDOW: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "ratelimit_fixed_window",
        concat!(
            prologue!(),
            r"
local h = redis.call('HMGET', key, 's', 'c', 'b')
local b = tonumber(h[3])
local stale = false
if b then
  if b > now then return {0, 0, b - now, b - now, 0} end
  stale = true
  h = {false, false}
end
local s = tonumber(h[1])
local c = tonumber(h[2]) or 0
local fresh = false
if not s or now >= s + window then s = now; c = 0; fresh = true end
local reset = s + window - now
if mode == 'r' then
  if not fresh and c > 0 then
    local back = cost
    if back > c then back = c end
    redis.call('HINCRBY', key, 'c', -back)
  end
  return {1, 0, 0, -1, 0}
end
if c + cost <= limit then
  if mode == 'c' then
    if stale then redis.call('DEL', key) end
    redis.call('HSET', key, 's', fmt(s), 'c', fmt(c + cost))
    redis.call('PEXPIRE', key, ms(reset))
    return {1, limit - c - cost, reset, -1, 0}
  end
  if c == 0 then reset = 0 end
  return {1, limit - c, reset, -1, 0}
end
if mode == 'c' and block > 0 then
  redis.call('DEL', key)
  redis.call('HSET', key, 'b', fmt(now + block))
  redis.call('PEXPIRE', key, ms(block))
  return {0, 0, block, block, 0}
end
local left = limit - c
if left < 0 then left = 0 end
return {0, left, reset, reset, 0}
"
        ),
    )
});

/// Sliding window counter: a hash `{s = current window start, c = its
/// count, p = previous window's count}` (or `{b = block end}`); the estimate
/// weighs the previous window by the part of it still inside the sliding
/// window.
pub(crate) static SLIDING_WINDOW: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "ratelimit_sliding_window",
        concat!(
            prologue!(),
            r"
local h = redis.call('HMGET', key, 's', 'c', 'p', 'b')
local b = tonumber(h[4])
local stale = false
if b then
  if b > now then return {0, 0, b - now, b - now, 0} end
  stale = true
  h = {false, false, false}
end
local s = tonumber(h[1])
local c = tonumber(h[2]) or 0
local p = tonumber(h[3]) or 0
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
local function reset_after(cur)
  if cur > 0 then return s + 2 * window - now end
  if p > 0 then return s + window - now end
  return 0
end
if mode == 'r' then
  if h[1] then
    if c >= cost then c = c - cost else p = p - (cost - c); c = 0 end
    if p < 0 then p = 0 end
    redis.call('HSET', key, 's', fmt(s), 'c', fmt(c), 'p', fmt(p))
  end
  return {1, 0, 0, -1, 0}
end
if est + cost <= limit then
  if mode == 'c' then
    if stale then redis.call('DEL', key) end
    redis.call('HSET', key, 's', fmt(s), 'c', fmt(c + cost), 'p', fmt(p))
    redis.call('PEXPIRE', key, ms(s + 2 * window - now))
    return {1, math.floor(limit - est - cost), reset_after(c + cost), -1, 0}
  end
  return {1, math.floor(limit - est), reset_after(c), -1, 0}
end
if mode == 'c' and block > 0 then
  redis.call('DEL', key)
  redis.call('HSET', key, 'b', fmt(now + block))
  redis.call('PEXPIRE', key, ms(block))
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
/// microseconds. `limit` is the burst, `window` the emission interval. A
/// block pushes the TAT so that the next request fits exactly when the
/// block ends, and stores it negated to mark the key as blocked, so that
/// requests during the block do not extend it.
pub(crate) static GCRA: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "ratelimit_gcra",
        concat!(
            prologue!(),
            r"
local stored = tonumber(redis.call('GET', key))
local blocked = false
if stored and stored < 0 then stored = -stored; blocked = true end
local tat = stored
if not tat or tat < now then tat = now end
local cap = limit * window
if mode == 'r' then
  if stored and not blocked then
    local nt = tat - cost * window
    if nt <= now then redis.call('DEL', key)
    else redis.call('SET', key, fmt(nt), 'PX', ms(nt - now)) end
  end
  return {1, 0, 0, -1, 0}
end
local new_tat = tat + cost * window
local allow_at = new_tat - cap
if now >= allow_at then
  if mode == 'c' then
    redis.call('SET', key, fmt(new_tat), 'PX', ms(new_tat - now))
    return {1, math.floor((cap - (new_tat - now)) / window), new_tat - now, -1, 0}
  end
  return {1, math.floor((cap - (tat - now)) / window), tat - now, -1, 0}
end
if mode == 'c' and block > 0 and not blocked then
  local bt = now + block + cap - window
  redis.call('SET', key, fmt(-bt), 'PX', ms(bt - now))
  return {0, 0, bt - now, block, 0}
end
local left = math.floor((cap - (tat - now)) / window)
if left < 0 then left = 0 end
return {0, left, tat - now, allow_at - now, 0}
"
        ),
    )
});
