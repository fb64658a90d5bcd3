-- Index one key under one tag: a sorted set of member keys scored by their
-- expiry on the server's clock. Expired members are pruned on every call,
-- and the set lives as long as its longest-lived member, so it stays
-- bounded by the live members.
-- KEYS[1] the tag's set; ARGV[1] the member key; ARGV[2] its TTL (ms).
-- Safe to run twice: a replay sets the same member's expiry again.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local expires = now + tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], expires, ARGV[1])
local pttl = redis.call('PTTL', KEYS[1])
if pttl < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('ZCARD', KEYS[1])
