-- One page of a listing in part-wise key order, plus the total of the window.
-- KEYS: 1 lex index, 2 expiry index.
-- ARGV: 1 item key prefix, 2 window low, 3 window high (ZLEXCOUNT bounds of the whole
--       window: '[x' | '(x' | '-' | '+'), 4 page low, 5 page high (the window narrowed by
--       the cursor), 6 limit, 7 reverse '1' | '0'.
-- Returns {{{member, value, version, expires_at_ms}...}, more (1 | 0), total}.
local idx, exq, pfx = KEYS[1], KEYS[2], ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Expired items leave the indexes here (bounded work per call; the rest next time).
-- Redis keeps a key alive while now <= its expiry, so only scores < now go.
local dead = redis.call('ZRANGE', exq, '-inf', string.format('(%d', now), 'BYSCORE', 'LIMIT', 0, 10000)
for _, m in ipairs(dead) do
  redis.call('ZREM', idx, m)
  redis.call('ZREM', exq, m)
  redis.call('UNLINK', pfx .. m)
end
local limit, rev = tonumber(ARGV[6]), ARGV[7] == '1'
local a, b = ARGV[4], ARGV[5]
local out, more = {}, 0
while true do
  local batch
  if rev then
    batch = redis.call('ZRANGE', idx, b, a, 'BYLEX', 'REV', 'LIMIT', 0, limit + 1)
  else
    batch = redis.call('ZRANGE', idx, a, b, 'BYLEX', 'LIMIT', 0, limit + 1)
  end
  local last = nil
  for _, m in ipairs(batch) do
    last = m
    local r = redis.call('HMGET', pfx .. m, 'v', 'ver', 'exp')
    if r[1] then
      if #out == limit then more = 1; break end
      out[#out + 1] = {m, r[1], r[2], r[3] or '0'}
    else                                                    -- vanished: drop its entries
      redis.call('ZREM', idx, m)
      redis.call('ZREM', exq, m)
    end
  end
  if more == 1 or #batch < limit + 1 then break end
  if rev then b = '(' .. last else a = '(' .. last end
end
return {out, more, redis.call('ZLEXCOUNT', idx, ARGV[2], ARGV[3])}
