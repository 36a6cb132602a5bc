# What the peer needs, installed when missing: Debian's redis-server (apt, with sudo when not
# root) and the Python packages of requirements.txt with pip into $PEER_PY (no root, no
# virtualenv), skipped when its sentinel says the same requirements are already there.
# Sourced by serve.sh and smoke.sh; exports PEER_PY and PYTHONPATH.
# shellcheck shell=bash
PEER_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PEER_PY="${PEER_PY:-/var/tmp/reel-peer-py}"
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then peer_sudo=(); else peer_sudo=(sudo); fi
  "${peer_sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${peer_sudo[@]}" apt-get install -y -qq --no-install-recommends redis-server
  unset peer_sudo
fi
peer_want="$(sha1sum "$PEER_HERE/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$PEER_PY/.installed" 2>/dev/null)" != "$peer_want" ]; then
  rm -rf "$PEER_PY"
  python3 -m pip install --quiet --target "$PEER_PY" -r "$PEER_HERE/requirements.txt"
  echo "$peer_want" >"$PEER_PY/.installed"
fi
unset peer_want
export PYTHONPATH="$PEER_PY:$PEER_HERE"
export PATH="$PEER_PY/bin:$PATH"
