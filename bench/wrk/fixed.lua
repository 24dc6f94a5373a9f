-- One URL (given on the wrk command line): hot-hit scenarios.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
