-- lock_acquire: see `ACQUIRE` in src/scripts.rs for KEYS, ARGV and the reply.
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
