-- KV API load through the admin listener: half PUT /kv/items/bench/<n>, half
-- GET of the same keys (written before the run), with the bearer token.
-- Env: KV_TOKEN, KV_KEYS (working set, default 1000).
-- The requests are built once per thread in init(), as redis-benchmark builds
-- its commands once: the run measures the server, not wrk's Lua.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local token = os.getenv("KV_TOKEN") or ""
local keys = tonumber(os.getenv("KV_KEYS") or "1000")
local gets, puts = {}, {}
local n = 0

init = function(args)
  local auth = { ["Authorization"] = "Bearer " .. token }
  local json = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
  for k = 1, keys do
    local path = "/kv/items/bench/" .. (k - 1)
    gets[k] = wrk.format("GET", path, auth)
    puts[k] = wrk.format("PUT", path, json, '{"value":{"n":' .. k .. ',"s":"bench"}}')
  end
end

request = function()
  n = n + 1
  local k = math.random(keys)
  if n % 2 == 0 then
    return puts[k]
  end
  return gets[k]
end
