-- Writes one cache entry to the shared tier (replacing an older copy).
-- KEYS: 1 entry hash, 2 url index (ZSET, member "<url>\n<hex>"), 3 expiry index
--       (ZSET, score stale_until ms, same member), 4 lease, 5 host set, 6.. tag sets.
-- ARGV: 1 hex, 2 url, 3 host, 4 tags ("\n"-joined), 5 status, 6 meta internal,
--       7 meta header, 8 body, 9 stored_at ms, 10 fresh_until ms, 11 stale_until ms,
--       12 soft-purged (0/1), 13 entry key prefix (to sweep expired index rows),
--       14 the lease token this node fetched under ('' for none): the lease is
--       released with the write, so waiting nodes find the copy when it goes,
--       15 the channel on which the hex is published (waiting nodes wake up).
-- Returns 1 when written, 0 when the entry was already past its stale window.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local x = tonumber(ARGV[11])
local function release()
  if ARGV[14] ~= '' and redis.call('GET', KEYS[4]) == ARGV[14] then
    redis.call('DEL', KEYS[4])
  end
end
if x <= now then
  release()
  return 0
end
local member = ARGV[2] .. '\n' .. ARGV[1]
redis.call('UNLINK', KEYS[1])
redis.call('HSET', KEYS[1], 'u', ARGV[2], 'o', ARGV[3], 't', ARGV[4], 's', ARGV[5],
  'm', ARGV[6], 'h', ARGV[7], 'b', ARGV[8], 'c', ARGV[9], 'f', ARGV[10], 'x', ARGV[11],
  'p', ARGV[12])
redis.call('PEXPIREAT', KEYS[1], x)
redis.call('ZADD', KEYS[2], 0, member)
redis.call('ZADD', KEYS[3], x, member)
-- Host and tag sets live as long as their longest-lived entry.
for i = 5, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[1])
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl < 0 or ttl < x - now then
    redis.call('PEXPIREAT', KEYS[i], x)
  end
end
-- Bounded sweep of index rows whose entries expired.
local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 32)
for _, m in ipairs(old) do
  redis.call('ZREM', KEYS[2], m)
  redis.call('ZREM', KEYS[3], m)
end
release()
redis.call('PUBLISH', ARGV[15], ARGV[1])
return 1
