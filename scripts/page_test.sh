#!/usr/bin/env bash
# The web page in a real browser: Debian's Chromium, driven by playwright-core
# (tests/page/e2e.mjs), against the real release binary serving open on loopback. It types a
# prompt and clicks, follows the progress to 100%, checks that the <video> plays, the preview
# and the live frames, cancel, delete and open in the task list, an API error shown by the page,
# and the API key field on a server that has keys; then, against a second server serving the
# tiny Wan2.1 checkpoint (model/wan/tiny), the free-form form built from /openapi.json, a
# non-square task followed to its video, and the server's message for a bad width. Called by
# .ci/run with REEL_BIN; it fails, not skips, when Chromium is missing and cannot be installed.
#
#   scripts/page_test.sh                 # the test
#   scripts/page_test.sh --screenshots   # the same, writing docs/page/*.png (one per state)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

screenshots=""
for arg in "$@"; do
  case "$arg" in
    --screenshots) screenshots="$PWD/docs/page" ;;
    *) echo "usage: $0 [--screenshots]" >&2; exit 2 ;;
  esac
done

# Debian's Chromium (it decodes H.264) and Node.js with npm, from apt when missing.
page_apt_need=()
[ -x /usr/bin/chromium ] || page_apt_need+=(chromium)
command -v npm >/dev/null || page_apt_need+=(nodejs npm)
# Screenshots show a Chinese prompt: a small CJK font (the test itself needs none).
if [ -n "$screenshots" ] && ! fc-list :lang=zh 2>/dev/null | grep -q .; then
  page_apt_need+=(fonts-wqy-microhei)
fi
if [ ${#page_apt_need[@]} -gt 0 ]; then
  reel_sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive reel_sudo apt-get install -y -qq --no-install-recommends \
    "${page_apt_need[@]}"
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "page_test: /usr/bin/chromium is missing and could not be installed" >&2
  exit 1
fi
/usr/bin/chromium --version

# playwright-core at the version package-lock.json pins (it drives the browser; it downloads
# none).
(cd tests/page && npm ci --no-audit --no-fund --loglevel=error)

source scripts/keyed_server.sh
# The free-form model's server first (it idles until the test reaches it), then the built-in's.
# The tiny checkpoint makes a task in under 0.1 s, often before the page's event stream has
# connected; held to 5% of the CPU it takes a second or two, so its live frames are seen
# before the task completes.
reel_open_server --model wan:model/wan/tiny --max-cpu-percent 5
wan_base="$base"
wan_server="$reel_server"
reel_open_server

[ -z "$screenshots" ] || mkdir -p "$screenshots"
REEL_BASE="$base" REEL_WAN_BASE="$wan_base" REEL_SCREENSHOTS="$screenshots" CHROMIUM=/usr/bin/chromium \
  node tests/page/e2e.mjs
# The servers must have stayed up through it all.
kill -0 "$reel_server"
kill -0 "$wan_server"
