-- Mixed traffic: Zipf-distributed keys (exponent BENCH_ZIPF_S, default 1.0) over
-- BENCH_KEYS pre-warmed keys, plus a fraction BENCH_MISS (default 0.1) of
-- requests for never-seen keys (misses that go to the origin), so the hit ratio
-- is 90% by construction whatever the cache's eviction does.
-- env: BENCH_KEYS, BENCH_SIZE, BENCH_NONCE (unique per run, keeps misses cold).
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

local n, size, miss, nonce, cdf
local seq = 0
function init(args)
  n = tonumber(os.getenv("BENCH_KEYS"))
  size = os.getenv("BENCH_SIZE")
  miss = tonumber(os.getenv("BENCH_MISS") or "0.1")
  nonce = os.getenv("BENCH_NONCE") or tostring(os.time())
  local s = tonumber(os.getenv("BENCH_ZIPF_S") or "1.0")
  cdf = {}
  local total = 0
  for i = 1, n do
    total = total + 1 / (i ^ s)
    cdf[i] = total
  end
  for i = 1, n do cdf[i] = cdf[i] / total end
  math.randomseed(os.time() * 100 + (tid or 0))
end

local function zipf_key()
  local u = math.random()
  local lo, hi = 1, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo
end

function request()
  if math.random() < miss then
    seq = seq + 1
    return wrk.format("GET", "/bytes?size=" .. size .. "&k=m-" .. nonce .. "-" .. (tid or 0) .. "-" .. seq)
  end
  return wrk.format("GET", "/bytes?size=" .. size .. "&k=" .. zipf_key())
end
