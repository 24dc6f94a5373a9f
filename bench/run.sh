#!/usr/bin/env bash
# Aside vs nginx proxy_cache vs Varnish (issue 7).
#
#   bench/run.sh            full run (~12 min): release build, 5 interleaved rounds x 5 s,
#                           report saved to bench/results/YYYY-MM-DD-<cores>c-<cpu>.md and printed
#   bench/run.sh --smoke    < 2 min: checks the harness works end to end (every server starts,
#                           answers correctly, wrk and the storm client report); judges no numbers
#
# Extra arguments go to bench/bench.py (e.g. --only hot-1k,storm --rounds 5 --duration 10 --keep).
# Environment: ASIDE_BIN=path (skip the build), BENCH_NOTE="..." (quoted in the report).
# Exit code: 0 ok, non-zero only when the harness cannot do its job.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
smoke=0
for a in "$@"; do [ "$a" = "--smoke" ] && smoke=1; done

scripts/prereqs.sh nginx varnish wrk

# Many connections in the storm scenario.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

py=python3
command -v python3 >/dev/null || { echo "bench: python3 is required" >&2; exit 2; }

if [ -n "${ASIDE_BIN:-}" ]; then
  aside=$ASIDE_BIN; build=custom
elif [ "$smoke" = 1 ]; then
  # The smoke run keeps CI short: the debug binary (`make test` has built it already).
  cargo build -q -p aside-proxy --bin aside
  aside=$root/target/debug/aside; build=debug
else
  cargo build -q --release -p aside-proxy --bin aside
  aside=$root/target/release/aside; build=release
fi

raw=$(mktemp /tmp/aside-bench-XXXXXX.json)
trap 'rm -f "$raw"' EXIT
$py bench/bench.py --aside "$aside" --aside-build "$build" --out "$raw" "$@" >/dev/null

mkdir -p bench/results
if [ "$smoke" = 1 ]; then
  $py bench/report.py "$raw"
  echo "bench-smoke: harness OK"
else
  cores=$(nproc)
  slug=$($py -c 'import json,sys; print(json.load(open(sys.argv[1]))["machine"]["slug"])' "$raw")
  name="bench/results/$(date +%F)-${cores}c-${slug}"
  # Never overwrite an earlier run of the same day: number the next one.
  if [ -e "$name.md" ]; then
    n=2
    while [ -e "$name-$n.md" ]; do n=$((n + 1)); done
    name="$name-$n"
  fi
  cp "$raw" "$name.json"
  $py bench/report.py "$raw" --out "$name.md"
  echo "saved $name.md (raw data: $name.json)"
fi
