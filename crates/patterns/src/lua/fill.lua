-- Store an entry only if the key still holds the value the writer started
-- from: its lease, or the entry it is refreshing (token in bytes 3..10).
-- An invalidation (UNLINK) or a newer write in between changed or removed
-- it, so a stale load is never written back.
-- KEYS[1] the entry key; ARGV[1] the expected token (8 bytes);
-- ARGV[2] the new entry; ARGV[3] its TTL (ms).
-- Returns 1 when stored (also when a replay finds our own entry), else 0.
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[2] then
  return 1
end
if cur and string.sub(cur, 3, 10) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
