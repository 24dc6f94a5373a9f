-- A node revalidated an entry (the origin answered 304): the shared copy gets
-- the new meta and freshness, if it still exists (a purge may have removed it).
-- KEYS: 1 entry hash, 2 expiry index. ARGV: 1 meta internal, 2 meta header,
-- 3 fresh_until ms, 4 stale_until ms, 5 the entry's hex (its index member is
-- "<url>\n<hex>", the url read from the entry). Returns 1 when updated, 0 when
-- there was no copy.
local url = redis.call('HGET', KEYS[1], 'u')
if not url then
  return 0
end
redis.call('HSET', KEYS[1], 'm', ARGV[1], 'h', ARGV[2], 'f', ARGV[3], 'x', ARGV[4], 'p', '0')
redis.call('PEXPIREAT', KEYS[1], tonumber(ARGV[4]))
redis.call('ZADD', KEYS[2], tonumber(ARGV[4]), url .. '\n' .. ARGV[5])
return 1
