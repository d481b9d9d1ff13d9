#!/usr/bin/env bash
# fastport-server in Windows node.exe under Wine, so Linux tools can drive it
# (root script: pnpm run server:win32 -- <fastport-server flags>).
#   - scripts/setup-win32.sh --check (run scripts/setup-win32.sh first if it names something missing)
#   - cross-builds prebuilds/win32-x64 when it is missing or older than src/ or binding.gyp
#   - expects the TypeScript built (the root script runs turbo build first)
#   - stages apps/server with a hoisted node_modules (scripts/stage-win32-app.js:
#     Wine shows pnpm's symlinks as plain directories) into .win32/app-server
#   - PREBUILDS_ONLY=1: node-gyp-build must never pick a Linux build/Release
# node.exe's output goes to a log file (a pipe from node.exe under Wine can
# lose output), followed here; Ctrl-C / SIGTERM stop the server.
set -euo pipefail

PKG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(cd "$PKG_ROOT/../.." && pwd)"
WIN_DIR="${FASTPORT_WIN32_DIR:-$PKG_ROOT/.win32}"
[[ "${1:-}" == "--" ]] && shift

bash "$PKG_ROOT/scripts/setup-win32.sh" --check >/dev/null ||
  { echo "[server-win32] run: bash packages/native-io/scripts/setup-win32.sh" >&2; exit 1; }
# shellcheck disable=SC1091
source "$WIN_DIR/env.sh"

prebuild="$PKG_ROOT/prebuilds/win32-x64/@fastport+native-io.node"
if [[ ! -f "$prebuild" || -n "$(find "$PKG_ROOT/src" "$PKG_ROOT/binding.gyp" -newer "$prebuild" -print -quit)" ]]; then
  node "$PKG_ROOT/scripts/build-win32.js" >&2
fi
server_js="$REPO_ROOT/apps/server/dist/main.js"
[[ -f "$server_js" ]] || { echo "[server-win32] $server_js missing: build first (npx -y pnpm@10 build)" >&2; exit 1; }

app="$WIN_DIR/app-server"
node "$PKG_ROOT/scripts/stage-win32-app.js" "$REPO_ROOT/apps/server" "$app" >&2

log="$(mktemp "${TMPDIR:-/tmp}/fastport-server-win32.XXXXXX.log")"
export PREBUILDS_ONLY=1
wine "$FASTPORT_WIN32_NODE" "$(winepath -w "$app/app/bin/fastport-server" | tr -d '\r')" "$@" >"$log" 2>&1 &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' INT TERM
echo "[server-win32] node.exe under wine (pid $pid), output in $log" >&2
# In the background: bash runs traps only between commands, and `wait` is one.
tail -n +1 --pid="$pid" -f "$log" | sed -u 's/\r$//' &
rc=0
wait "$pid" || rc=$?
# A trapped signal ends `wait` early: wait for the server itself to exit.
while kill -0 "$pid" 2>/dev/null; do wait "$pid" || rc=$?; done
wait
rm -f "$log"
exit "$rc"
