-- lock_release: see `RELEASE` in src/scripts.rs for KEYS, ARGV and the reply.
local v = redis.call('GET', KEYS[1])
local tok = ARGV[1]
if v and string.byte(ARGV[2], 1) == 114 and string.find(v, tok, 1, true) == 1
    and string.byte(v, -1) ~= 33 then
  redis.call('DEL', KEYS[1])
  return 1
end
local mode, fence = string.match(ARGV[2], '^(%a) (%d+)$')
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
    if fence ~= '0' and tonumber(redis.call('HGET', st, 'n') or '0') < tonumber(fence) then
      return -1
    end
  end
  return 0
end
local function to_local()
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
  return ARGV[3]
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
      if redis.call('ZCARD', q) > 0 then val = val .. '!' end
      redis.call('SET', KEYS[1], val, 'PX', ttl)
      redis.call('SPUBLISH', KEYS[1] .. ':released', val)
      return val
    end
  end
end
