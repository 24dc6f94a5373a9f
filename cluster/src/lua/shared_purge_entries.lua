-- Purges the shared entries named by hex hash (a host's or a tag's members, or
-- hashes given in the purge).
-- KEYS: 1 url index, 2 expiry index. ARGV: 1 entry key prefix, 2 soft (0/1), 3.. hex.
-- Returns the number of entries purged.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local soft = ARGV[2] == '1'
local n = 0
for i = 3, #ARGV do
  local key = ARGV[1] .. ARGV[i]
  local v = redis.call('HMGET', key, 'u', 'f')
  if v[1] then
    if soft then
      redis.call('HSET', key, 'p', '1', 'f', tostring(math.min(tonumber(v[2]) or now, now)))
    else
      redis.call('UNLINK', key)
      local m = v[1] .. '\n' .. ARGV[i]
      redis.call('ZREM', KEYS[1], m)
      redis.call('ZREM', KEYS[2], m)
    end
    n = n + 1
  end
end
return n
