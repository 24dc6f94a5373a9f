-- Versioned set, compare-and-swap, set-if-absent, with TTL (on the server's clock).
-- KEYS: 1 item hash, 2 lex index, 3 expiry index, 4 version counter.
-- ARGV: 1 member (key with '/' as 0x00), 2 value text, 3 ttl ms ('0' = none),
--       4 mode 'any' | 'absent' | 'ver', 5 expected version (decimal).
-- Returns {1, version, expires_at_ms (0 = never)} or {0} when the condition fails.
local cur = redis.call('HGET', KEYS[1], 'ver')            -- false when absent or expired
if (ARGV[4] == 'absent' and cur) or (ARGV[4] == 'ver' and cur ~= ARGV[5]) then
  return {0}
end
local ver = redis.call('INCR', KEYS[4])
local ttl = tonumber(ARGV[3])
local at = 0
if ttl > 0 then
  local t = redis.call('TIME')
  at = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ttl
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'ver', string.format('%d', ver), 'exp', string.format('%d', at))
redis.call('ZADD', KEYS[2], 0, ARGV[1])
if at > 0 then
  redis.call('PEXPIREAT', KEYS[1], string.format('%d', at))
  redis.call('ZADD', KEYS[3], string.format('%d', at), ARGV[1])
else
  redis.call('PERSIST', KEYS[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
end
return {1, ver, at}
