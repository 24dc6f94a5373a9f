-- One token bucket shared by every node: an upstream's request budget.
-- KEYS: 1 bucket hash. ARGV: 1 capacity (burst), 2 refill tokens per second.
-- Returns {1, 0} when a token was taken, else {0, ms to wait for one}.
-- The server's clock is used, so the nodes' clocks do not matter.
local cap, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = t[1] * 1000 + t[2] / 1000
local b = redis.call('HMGET', KEYS[1], 'tok', 'ts')
local tok, ts = tonumber(b[1]) or cap, tonumber(b[2]) or now
if now > ts then
  tok = math.min(cap, tok + (now - ts) * rate / 1000)
  ts = now
end
local ok, wait = 0, 0
if tok >= 1 then
  tok = tok - 1
  ok = 1
else
  wait = math.ceil((1 - tok) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tok', tostring(tok), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(cap * 1000 / rate) + 1000)
return {ok, wait}
