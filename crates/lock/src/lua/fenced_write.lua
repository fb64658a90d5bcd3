-- lock_fenced_write: see `FENCED_WRITE` in src/scripts.rs for KEYS, ARGV and the reply.
local rec = redis.call('HMGET', KEYS[1], 'f', 'h')
local last = tonumber(rec[1] or '0')
local f = tonumber(ARGV[1])
if f < last or (f == last and (ARGV[4] == '' or rec[2] ~= ARGV[4])) then
  return {0, last}
end
redis.call('HSET', KEYS[1], 'f', ARGV[1], 'v', ARGV[2], 'h', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return {1, last}
