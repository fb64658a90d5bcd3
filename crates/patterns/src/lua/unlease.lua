-- Remove a key only while it still holds the given token (our lease, or
-- the stale entry a failed refresh gives up on). Safe to run twice.
-- KEYS[1] the key; ARGV[1] the token (8 bytes). Returns 1 when removed.
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 3, 10) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
