-- lock_extend: see `EXTEND` in src/scripts.rs for KEYS, ARGV and the reply.
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
