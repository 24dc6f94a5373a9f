-- Appends one purge event with a gapless sequence number (a reader that sees a
-- jump knows entries were trimmed before it read them).
-- KEYS: 1 P{purge}:log, 2 P{purge}:seq. ARGV: 1 maxlen, 2 origin node, 3 event JSON.
local seq = redis.call('INCR', KEYS[2])
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'seq', seq, 'origin', ARGV[2], 'ev', ARGV[3])
return {id, seq}
