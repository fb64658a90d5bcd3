-- lock_fence: see `FENCE` in src/scripts.rs for KEYS, ARGV and the reply.
local v = redis.call('GET', KEYS[1])
local tok = ARGV[1]
if not v or string.find(v, tok, 1, true) ~= 1 then
  return 0
end
local issued = string.match(v, '^[^:!]*:(%d+)')
if issued then
  return tonumber(issued)
end
local st = KEYS[1] .. ':state'
-- never below the last accepted fenced write: after a data loss the
-- counter restarts, while a write from before it may already be back
local floor = tonumber(redis.call('HGET', KEYS[1] .. ':fenced', 'f') or '0')
if tonumber(redis.call('HGET', st, 'n') or '0') < floor then
  redis.call('HSET', st, 'n', floor)
end
local f = redis.call('HINCRBY', st, 'n', 1)
redis.call('PEXPIRE', st, ARGV[2])
local mark = ''
if string.byte(v, -1) == 33 then mark = '!' end
redis.call('SET', KEYS[1], tok .. ':' .. f .. mark, 'KEEPTTL')
return f
