-- Purges one batch of shared entries whose URL index member lies in a lex range.
-- KEYS: 1 url index, 2 expiry index. ARGV: 1 entry key prefix, 2 soft (0/1),
-- 3 min, 4 max (ZRANGEBYLEX bounds), 5 batch size.
-- Returns {entries purged, last member seen or ''}: the caller continues from
-- "(" .. last until a batch comes back short.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local soft = ARGV[2] == '1'
local members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[3], ARGV[4], 'LIMIT', 0, tonumber(ARGV[5]))
local n = 0
for _, m in ipairs(members) do
  local hex = string.match(m, '\n(%x+)$')
  if hex then
    local key = ARGV[1] .. hex
    if soft then
      local f = tonumber(redis.call('HGET', key, 'f'))
      if f then
        redis.call('HSET', key, 'p', '1', 'f', tostring(math.min(f, now)))
        n = n + 1
      end
    else
      n = n + redis.call('UNLINK', key)
      redis.call('ZREM', KEYS[1], m)
      redis.call('ZREM', KEYS[2], m)
    end
  end
end
return {n, members[#members] or ''}
