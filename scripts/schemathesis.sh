#!/usr/bin/env bash
# Runs the admin API's own OpenAPI document against the server (schemathesis from
# PyPI, installed into target/schemathesis-venv on first use): target/debug/aside on
# free loopback ports, a temporary data dir and a token; bounded by --max-time.
# Usage: scripts/schemathesis.sh [ASIDE_BIN] [extra schemathesis options]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/debug/aside}
shift || true
VENV=target/schemathesis-venv
ST_VERSION=4.32.5
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$ST_VERSION"; then
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    # Debian ships venv apart from python3.
    rm -rf "$VENV"
    scripts/prereqs.sh python3-venv >/dev/null 2>&1 || apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  # hypothesis pinned too: a new release must not change what CI runs.
  "$VENV/bin/pip" install --quiet "schemathesis==$ST_VERSION" "hypothesis==6.170.17"
fi

DATA=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$DATA"' EXIT
read -r PROXY ADMIN < <(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
ASIDE_ADMIN_TOKEN=$TOKEN RUST_LOG=warn "$BIN" --to http://127.0.0.1:9 \
  --listen "127.0.0.1:$PROXY" --admin-listen "127.0.0.1:$ADMIN" --data "$DATA" \
  >"$DATA/aside.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$ADMIN/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

# Generated strings are ASCII: the key limit is 512 bytes, and JSON Schema's maxLength
# counts characters. 412 (If-Match on a version that does not hold) and 413 (an answer
# over 16 MiB) are answers to schema-valid requests. positive_data_acceptance is left out
# until the document can say what it cannot yet: a cursor is opaque (a forged one is 400)
# and a cache `url` must be an absolute http(s) URL that a route matches.
# One worker: with two, hypothesis's threads call ast.parse at once and CPython 3.11's
# AST builder shares its recursion counter between threads (cpython gh-106905), which
# failed a CI run with "SystemError: AST constructor recursion depth mismatch".
cat >"$DATA/schemathesis.toml" <<TOML
[generation]
codec = "ascii"
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "412", "413"]
TOML
"$VENV/bin/schemathesis" --config-file "$DATA/schemathesis.toml" run \
  "http://127.0.0.1:$ADMIN/openapi.json" \
  -H "Authorization: Bearer $TOKEN" \
  --checks all --exclude-checks positive_data_acceptance \
  --max-time 60 --seed 1 --workers 1 "$@"
