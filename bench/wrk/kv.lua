-- KV API load through the admin listener: half PUT /kv/items/bench/<n>, half
-- GET of the same keys (written before the run), with the bearer token.
-- Env: KV_TOKEN, KV_KEYS (working set, default 1000).
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local token = os.getenv("KV_TOKEN") or ""
local keys = tonumber(os.getenv("KV_KEYS") or "1000")
local n = 0

request = function()
  n = n + 1
  local key = "/kv/items/bench/" .. (math.random(keys) - 1)
  local headers = { ["Authorization"] = "Bearer " .. token }
  if n % 2 == 0 then
    headers["Content-Type"] = "application/json"
    return wrk.format("PUT", key, headers, '{"value":{"n":' .. n .. ',"s":"bench"}}')
  end
  return wrk.format("GET", key, headers)
end
