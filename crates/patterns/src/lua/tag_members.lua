-- The live members of a tag (pruning the expired ones first).
-- KEYS[1] the tag's set. Read-only apart from the pruning: safe to run twice.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
