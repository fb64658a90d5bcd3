-- Read a key, or lease it when it is absent.
-- KEYS[1] the entry key; ARGV[1] the lease bytes; ARGV[2] the lease TTL (ms).
-- Returns the current value (an entry or someone's lease), or 1 when the
-- lease was installed. A replay after success returns our own lease bytes,
-- which the caller recognises as its lease: safe to run twice.
local cur = redis.call('GET', KEYS[1])
if cur then
  return cur
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
