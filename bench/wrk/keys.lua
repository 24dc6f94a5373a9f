-- Uniformly random keys over a working set: the cold-tier scenario.
-- env: BENCH_KEYS (number of keys), BENCH_SIZE (body bytes).
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

local n, size
function init(args)
  n = tonumber(os.getenv("BENCH_KEYS"))
  size = os.getenv("BENCH_SIZE")
  math.randomseed(os.time() * 100 + (tid or 0))
end

function request()
  return wrk.format("GET", "/bytes?size=" .. size .. "&k=" .. math.random(1, n))
end
