//! The Lua scripts. Each runs on one hash slot: a session key
//! `PREFIX s:{TAG}:RANDOM` and its user's index `PREFIX su:{TAG}:USER` share
//! the tag `{TAG}`. Scripts that act on a user's sessions derive the session
//! keys from the index members (and the index key from the user id stored in
//! a session); every such key carries the same tag, so the scripts never
//! leave the slot of the keys they were given.
//!
//! Time is the server's (`TIME`), in milliseconds. Every write checks that
//! the session still exists first: nothing here ever writes a missing
//! session back (no resurrection).

use std::sync::LazyLock;

use aeturnis_redis_core::LuaScript;

macro_rules! helpers {
    () => {
        r#"
local function u64(s, i)
  return (struct.unpack('>I8', s, i))
end
local function p64(n)
  return struct.pack('>I8', n)
end
local function now_ms()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end
local function user_of(v)
  local len = string.byte(v, 26) * 256 + string.byte(v, 27)
  return string.sub(v, 28, 27 + len)
end
local function index_of(head, v)
  local user = user_of(v)
  if string.find(user, '[%%:{}]') then
    user = string.gsub(user, '[%%:{}]',
      {['%'] = '%25', [':'] = '%3A', ['{'] = '%7B', ['}'] = '%7D'})
  end
  return head .. user
end
-- the index outlives every session it lists: TTL + touch interval + 1 s
local function keep_index(idx, ttl)
  ttl = ttl + 1000
  if redis.call('PTTL', idx) < ttl then redis.call('PEXPIRE', idx, ttl) end
end
-- the same for an index that already existed (and so has a TTL, which
-- every writer sets): one call, never shortening it
local function raise_index(idx, ttl)
  redis.call('PEXPIRE', idx, ttl + 1000, 'GT')
end
-- the expiry of a session whose TTL is ttl unless the absolute expiry abs
-- comes first: {'PX', ttl}, or {'PXAT', abs} to the millisecond (a PX
-- counted from the script's cached clock could land 1 ms late)
local function expiry(ttl, abs, now)
  if abs - now <= ttl then return 'PXAT', abs end
  return 'PX', ttl
end
local function expire(key, ttl, abs, now)
  local unit, at = expiry(ttl, abs, now)
  if unit == 'PXAT' then return redis.call('PEXPIREAT', key, at) end
  return redis.call('PEXPIRE', key, at)
end
"#
    };
}

/// Get and slide.
/// KEYS: session. ARGV: idle ms, touch interval ms, index head, member,
/// index TTL ms for a session whose TTL is the idle one (idle + touch
/// interval + 1 s).
/// Returns false, or {value, now, ttl}.
///
/// Written as [`CREATE`] is (no helpers, numbers as text where the text is
/// at hand): it runs on every read when the touch interval is zero.
pub(crate) static GET_SLIDE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "session_get_slide",
        r#"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local idle, abs = tonumber(ARGV[1]), struct.unpack('>I8', v, 18)
local ttl = math.min(idle, abs - now)
local touch = tonumber(ARGV[2])
-- the new expiry: PX idle, or PXAT abs to the millisecond when the
-- absolute expiry comes first (a PX counted from the script's cached clock
-- could land 1 ms late)
local unit, at = 'PX', ARGV[1]
if abs - now <= idle then unit, at = 'PXAT', abs end
if ttl > 0 and now - struct.unpack('>I8', v, 10) < touch then
  if unit == 'PXAT' then redis.call('PEXPIREAT', KEYS[1], at)
  else redis.call('PEXPIRE', KEYS[1], at) end
  return {v, now, ttl}
end
-- the user's index: its head and the (escaped) user id stored in v
local len = string.byte(v, 26) * 256 + string.byte(v, 27)
local user = string.sub(v, 28, 27 + len)
if string.find(user, '[%%:{}]') then
  user = string.gsub(user, '[%%:{}]',
    {['%'] = '%25', [':'] = '%3A', ['{'] = '%7B', ['}'] = '%7D'})
end
local idx = ARGV[3] .. user
if ttl <= 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', idx, ARGV[4])
  return false
end
-- record last seen: one SET of the patched value, with the new TTL
v = string.sub(v, 1, 9) .. struct.pack('>I8', now) .. string.sub(v, 18)
redis.call('SET', KEYS[1], v, unit, at)
-- the index outlives every session it lists: TTL + touch interval + 1 s
-- (an index that already listed the member has a TTL: one call, never
-- shortening it)
local keep = ARGV[5]
if ttl < idle then keep = ttl + touch + 1000 end
if redis.call('ZADD', idx, t[1] .. string.sub('00000' .. t[2], -6, -4), ARGV[4]) == 0 then
  redis.call('PEXPIRE', idx, keep, 'GT')
elseif redis.call('PTTL', idx) < tonumber(keep) then
  redis.call('PEXPIRE', idx, keep)
end
return {v, now, ttl}
"#,
    )
});

/// Create, evicting the least recently used sessions over the limit.
/// KEYS: session, index. ARGV: member, fields, idle ms, absolute ms, max,
/// touch interval ms, session head, index TTL ms for a session whose TTL is
/// the idle one (idle + touch interval + 1 s).
/// Returns {false, now, ttl, 1, evicted, evicted duration ms} for a fresh
/// session (the caller has every field: the value is not sent back), or
/// {value, now, ttl, 0 (replay) / -1 (taken), 0, 0}.
///
/// Eight calls at most on the fresh path at the limit (`TIME`, `SET NX`,
/// `ZRANGE`, one `MGET` of the listed sessions, `DEL`, `ZREM`, `ZADD`,
/// `PEXPIRE`), four under it. Written without the shared helpers: every
/// `local function` is a fresh closure on every run. Numbers that Redis
/// would format with `%.17g` (≈5k instructions for a timestamp) go out as
/// text instead where the text is at hand: the idle TTL and the index TTL
/// as the caller sent them, the score as `TIME`'s own digits (`callgrind`
/// on the server, see the session bench history).
pub(crate) static CREATE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "session_create",
        r#"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
-- the same milliseconds as text, for the score
local now_s = t[1] .. string.sub('00000' .. t[2], -6, -4)
local idle = tonumber(ARGV[3])
local absolute = now + tonumber(ARGV[4])
local ttl = math.min(idle, absolute - now)
local v = string.char(1) .. struct.pack('>I8I8I8', now, now, absolute) .. ARGV[2]
-- PXAT to the millisecond when the absolute expiry comes first
local unit, at = 'PX', ARGV[3]
if absolute - now <= idle then unit, at = 'PXAT', absolute end
-- NX: a replay (or an id taken by another session) changes nothing
if not redis.call('SET', KEYS[1], v, 'NX', unit, at) then
  local existing = redis.call('GET', KEYS[1])
  local len = string.byte(ARGV[2], 1) * 256 + string.byte(ARGV[2], 2)
  local elen = string.byte(existing, 26) * 256 + string.byte(existing, 27)
  local same = string.sub(existing, 28, 27 + elen) == string.sub(ARGV[2], 3, 2 + len)
  return {existing, now, redis.call('PTTL', KEYS[1]), same and 0 or -1, 0, 0}
end
local max = tonumber(ARGV[5])
local members = redis.call('ZRANGE', KEYS[2], 0, -1)
local indexed = #members
local evicted, ended = 0, 0
-- under the limit nothing can be evicted: skip the staleness check (stale
-- members are harmless until then; list and eviction drop them)
if indexed >= max then
  local keys = {}
  for i = 1, indexed do keys[i] = ARGV[7] .. members[i] end
  -- MGET in chunks: unpack() has a limit on its results
  local values
  if indexed <= 1000 then
    values = redis.call('MGET', unpack(keys))
  else
    values = {}
    for i = 1, indexed, 1000 do
      local r = redis.call('MGET', unpack(keys, i, math.min(i + 999, indexed)))
      for j = 1, #r do values[#values + 1] = r[j] end
    end
  end
  -- a member is live when its session exists and is within its absolute
  -- expiry (a key that lingers past it is deleted, like an expired one)
  local live = 0
  for i = 1, indexed do
    local val = values[i]
    if val and struct.unpack('>I8', val, 18) > now then
      live = live + 1
    else
      values[i] = false
    end
  end
  local excess = live - max + 1
  local dead, gone = {}, {}
  for i = 1, indexed do
    if not values[i] then
      gone[#gone + 1] = members[i]
      dead[#dead + 1] = keys[i]
    elseif excess > 0 then
      -- members come oldest first: the least recently used go
      excess = excess - 1
      ended = ended + now - struct.unpack('>I8', values[i], 2)
      evicted = evicted + 1
      gone[#gone + 1] = members[i]
      dead[#dead + 1] = keys[i]
    end
  end
  -- dead[i] is the key of gone[i]: one chunking for both
  for i = 1, #dead, 1000 do
    local last = math.min(i + 999, #dead)
    redis.call('DEL', unpack(dead, i, last))
    redis.call('ZREM', KEYS[2], unpack(gone, i, last))
  end
  indexed = indexed - #gone
end
redis.call('ZADD', KEYS[2], now_s, ARGV[1])
-- the index outlives every session it lists: TTL + touch interval + 1 s;
-- an index that still had members has a TTL (one call, never shortening
-- it), a new one needs its first
local keep = ARGV[8]
if ttl < idle then keep = ttl + tonumber(ARGV[6]) + 1000 end
if indexed > 0 then
  redis.call('PEXPIRE', KEYS[2], keep, 'GT')
elseif redis.call('PTTL', KEYS[2]) < tonumber(keep) then
  redis.call('PEXPIRE', KEYS[2], keep)
end
return {false, now, ttl, 1, evicted, ended}
"#,
    )
});

/// Extend the idle expiry by a duration, capped by the absolute expiry.
/// Not idempotent: sent without replay.
/// KEYS: session. ARGV: by ms, touch interval ms, index head.
/// Returns false, or {value, now, ttl}.
pub(crate) static EXTEND: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "session_extend",
        concat!(
            helpers!(),
            r#"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local now = now_ms()
local pttl = redis.call('PTTL', KEYS[1])
if pttl < 0 then pttl = 0 end
local abs = u64(v, 18)
local ttl = math.min(pttl + tonumber(ARGV[1]), abs - now)
if ttl <= 0 then return false end
expire(KEYS[1], pttl + tonumber(ARGV[1]), abs, now)
keep_index(index_of(ARGV[3], v), ttl + tonumber(ARGV[2]))
return {v, now, ttl}
"#
        ),
    )
});

/// Replace some fields (never the user), keeping the TTL. A session past
/// its absolute expiry counts as gone.
/// KEYS: session. ARGV: pairs of (field number, encoded field).
/// Returns false, or {value, now, ttl}.
pub(crate) static UPDATE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "session_update",
        concat!(
            helpers!(),
            r#"
local v = redis.call('GET', KEYS[1])
local now = now_ms()
-- past its absolute expiry is gone, even if the key lingers (see get)
if not v or u64(v, 18) <= now then return false end
local chunks = {}
local pos = 26
for f = 1, 6 do
  local len = string.byte(v, pos) * 256 + string.byte(v, pos + 1)
  local stop = pos + 1
  if len ~= 65535 then stop = stop + len end
  chunks[f] = string.sub(v, pos, stop)
  pos = stop + 1
end
for i = 1, #ARGV, 2 do
  local f = tonumber(ARGV[i]) + 1
  if f > 1 and f <= 6 then chunks[f] = ARGV[i + 1] end
end
v = string.sub(v, 1, 25) .. table.concat(chunks)
redis.call('SET', KEYS[1], v, 'KEEPTTL')
return {v, now, redis.call('PTTL', KEYS[1])}
"#
        ),
    )
});

/// Rotate: move a session to a new id, atomically. A session past its
/// absolute expiry counts as gone.
/// KEYS: old session, new session. ARGV: index head, old member, new member.
/// Returns false, {value, now, ttl} (a replay finds the new key and returns
/// it), or -1 when the new id is taken.
pub(crate) static ROTATE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "session_rotate",
        concat!(
            helpers!(),
            r#"
local now = now_ms()
local v = redis.call('GET', KEYS[1])
if not v then
  local moved = redis.call('GET', KEYS[2])
  if moved then return {moved, now, redis.call('PTTL', KEYS[2])} end
  return false
end
if u64(v, 18) <= now then return false end
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
redis.call('RENAME', KEYS[1], KEYS[2])
local idx = index_of(ARGV[1], v)
local score = redis.call('ZSCORE', idx, ARGV[2]) or now
-- add before removing, so the index never empties (and never loses its TTL)
redis.call('ZADD', idx, score, ARGV[3])
redis.call('ZREM', idx, ARGV[2])
return {v, now, redis.call('PTTL', KEYS[2])}
"#
        ),
    )
});

/// Revoke one session.
/// KEYS: session. ARGV: index head, member.
/// Returns false (nothing to revoke) or the session's age in ms.
pub(crate) static REVOKE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "session_revoke",
        concat!(
            helpers!(),
            r#"
local v = redis.call('GET', KEYS[1])
if not v then return false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', index_of(ARGV[1], v), ARGV[2])
return now_ms() - u64(v, 2)
"#
        ),
    )
});

/// Revoke all of a user's sessions, or all but one.
/// KEYS: index. ARGV: session head, member to keep ('' for none).
/// Returns {revoked, summed age ms}, or -1 when the member to keep is not a
/// live session of this user.
pub(crate) static REVOKE_ALL: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "session_revoke_all",
        concat!(
            helpers!(),
            r#"
local keep = ARGV[2]
if keep ~= '' and (not redis.call('ZSCORE', KEYS[1], keep)
    or redis.call('EXISTS', ARGV[1] .. keep) == 0) then
  return -1
end
local now = now_ms()
local n, ended = 0, 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if m ~= keep then
    local k = ARGV[1] .. m
    local created = redis.call('GETRANGE', k, 1, 8)
    if #created == 8 then
      ended = ended + now - u64(created, 1)
      n = n + 1
      redis.call('DEL', k)
    end
    redis.call('ZREM', KEYS[1], m)
  end
end
if keep == '' then redis.call('DEL', KEYS[1]) end
return {n, ended}
"#
        ),
    )
});

/// List a user's live sessions, dropping index members whose session has
/// expired (and deleting a session past its absolute expiry whose key
/// lingers: see the fast read path in `manager.rs`).
/// KEYS: index. ARGV: session head.
/// Returns {now, member, value, ttl, member, value, ttl, ...}.
pub(crate) static LIST: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "session_list",
        concat!(
            helpers!(),
            r#"
local now = now_ms()
local out = {now}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local k = ARGV[1] .. m
  local v = redis.call('GET', k)
  if v and u64(v, 18) > now then
    out[#out + 1] = m
    out[#out + 1] = v
    out[#out + 1] = redis.call('PTTL', k)
  else
    -- expired, or past its absolute expiry with the key lingering
    if v then redis.call('DEL', k) end
    redis.call('ZREM', KEYS[1], m)
  end
end
return out
"#
        ),
    )
});

/// Apply buffered deltas to the global counters (their own slot, never
/// inside a per-user script) and read them back. Not idempotent: sent
/// without replay. With all deltas zero and no users it only reads.
/// KEYS: counters hash, users HyperLogLog. ARGV: ttl ms, active delta,
/// created delta, ended delta, ended ms delta, users...
/// Returns {active, created, ended, ended ms, unique users}.
pub(crate) static STATS: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "session_stats",
        r#"
local fields = {'active', 'created', 'ended', 'ended_ms'}
local changed = false
for i, f in ipairs(fields) do
  local d = tonumber(ARGV[i + 1])
  if d ~= 0 then
    redis.call('HINCRBY', KEYS[1], f, d)
    changed = true
  end
end
-- PFADD in chunks: unpack() has a limit on the number of results
for i = 6, #ARGV, 1000 do
  redis.call('PFADD', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if changed then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if #ARGV > 5 then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
local out = redis.call('HMGET', KEYS[1], 'active', 'created', 'ended', 'ended_ms')
for i = 1, 4 do out[i] = tonumber(out[i]) or 0 end
out[5] = redis.call('PFCOUNT', KEYS[2])
return out
"#,
    )
});

/// Every script of the crate, for
/// [`Redis::register_scripts`](aeturnis_redis_core::Redis::register_scripts).
pub(crate) fn all() -> [&'static LuaScript; 9] {
    [
        &GET_SLIDE,
        &CREATE,
        &EXTEND,
        &UPDATE,
        &ROTATE,
        &REVOKE,
        &REVOKE_ALL,
        &LIST,
        &STATS,
    ]
}
