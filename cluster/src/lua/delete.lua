-- Delete one item and its index entries.
-- KEYS: 1 item hash, 2 lex index, 3 expiry index. ARGV: 1 member.
-- Returns 1 when a live item existed (an expired one counts as absent), else 0.
local n = redis.call('UNLINK', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return n
