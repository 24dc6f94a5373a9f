#!/usr/bin/env bash
# Installs what building Aside needs on a fresh Debian machine, only when missing:
# cmake (pingora's zlib-ng build script runs it) and redis-server (cluster tests). Extra Debian packages can be
# passed as arguments (the benchmarks ask for nginx, varnish, wrk). `--ui` adds what the dashboard's
# browser test needs: Debian's chromium, Node.js and npm, then `npm ci` in tests/ui (puppeteer-core).
set -euo pipefail

ui=0
if [ "${1:-}" = "--ui" ]; then
  ui=1
  shift
fi

need=()
if [ "$ui" = 1 ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium fonts-liberation)
  command -v node >/dev/null 2>&1 || need+=(nodejs)
  command -v npm >/dev/null 2>&1 || need+=(npm)
fi
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(gcc)
# The cluster tests start a real redis-server (Debian 12 ships 7.0).
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
for pkg in "$@"; do
  case "$pkg" in
    varnish) command -v varnishd >/dev/null 2>&1 || [ -x /usr/sbin/varnishd ] || need+=(varnish) ;;
    nginx) command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx) ;;
    *) command -v "$pkg" >/dev/null 2>&1 || need+=("$pkg") ;;
  esac
done
npm_ci() {
  [ "$ui" = 1 ] || return 0
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/tests/ui"
  # Reinstall only when the lock file changed since the last install.
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.aside-installed-lock" 2>/dev/null; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$dir/node_modules/.aside-installed-lock"
  fi
}

if [ ${#need[@]} -eq 0 ]; then
  npm_ci
  exit 0
fi

echo "installing: ${need[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO=sudo
if command -v apt-get >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
elif [[ " ${need[*]} " == *" cmake "* ]] && command -v pip >/dev/null 2>&1; then
  pip install --quiet cmake
else
  echo "please install: ${need[*]}" >&2
  exit 1
fi
npm_ci
