-- write-behind: remove written entries from their stream and acknowledge
-- them, atomically (so no entry is ever acknowledged but left in the
-- stream, where nobody would read it again).
-- KEYS[1] stream; ARGV[1] group, ARGV[2..] entry ids. Returns the count
-- acknowledged. Safe to run twice: a replay deletes and acknowledges
-- nothing more.
local group, n, last = ARGV[1], 0, #ARGV
-- in chunks: `unpack` is bounded by the Lua stack
for i = 2, last, 1000 do
  local j = math.min(i + 999, last)
  redis.call('XDEL', KEYS[1], unpack(ARGV, i, j))
  n = n + redis.call('XACK', KEYS[1], group, unpack(ARGV, i, j))
end
return n
