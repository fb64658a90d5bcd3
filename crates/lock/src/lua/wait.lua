-- lock_wait: see `WAIT` in src/scripts.rs for KEYS, ARGV and the reply.
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
local lease = tonumber(ARGV[3])
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
