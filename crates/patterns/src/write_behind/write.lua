-- write-behind: cache the entry and record the write, atomically.
-- KEYS[1] cache key, KEYS[2] stream; ARGV[1] entry, ARGV[2] ttl ms,
-- ARGV[3] key text, ARGV[4] value bytes. Returns the stream id.
-- Sent without replay: a re-sent XADD would give an older value a newer id.
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('XADD', KEYS[2], '*', 'k', ARGV[3], 'v', ARGV[4])
