-- lock_fenced_write: see `FENCED_WRITE` in src/scripts.rs for KEYS, ARGV and the reply.
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
