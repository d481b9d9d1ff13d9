#!/usr/bin/env bash
# Builds the independent C measuring kit into DIR (default /tmp/kit):
#   echo-bench  - a load generator in plain C (epoll), the yardstick for fastport-bench's client
#   ref-echo    - reference echo servers in plain C (epoll, io_uring), the yardstick for our engines
# Sources: shared/tools/echo-bench/ beside the repository (override with KIT_SRC=...).
# ref-echo needs liburing (Debian/Ubuntu: liburing-dev); this script installs it with
# apt-get when it is missing and it can. Not used by CI: the tests never need the kit.
#
#   bash apps/benchmark/scripts/build-kit.sh [/tmp/kit]
#   node apps/benchmark/bin/fastport-bench --engine ref-uring,node --framing u32le --echo-bench --kit /tmp/kit
set -euo pipefail
out=${1:-/tmp/kit}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
src=${KIT_SRC:-}
if [ -z "$src" ]; then
  for c in "$repo/../shared/tools/echo-bench" "$repo/shared/tools/echo-bench"; do
    if [ -f "$c/echo-bench.c" ]; then src=$(cd "$c" && pwd); break; fi
  done
fi
if [ -z "$src" ] || [ ! -f "$src/echo-bench.c" ]; then
  echo "build-kit: cannot find shared/tools/echo-bench (set KIT_SRC=/path/to/echo-bench)" >&2
  exit 1
fi

need=()
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
[ -f /usr/include/liburing.h ] || need+=(liburing-dev)
if [ ${#need[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "build-kit: please install ${need[*]} (no apt-get here)" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "build-kit: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

sh "$src/build.sh" "$out"
[ -x "$out/echo-bench" ] && [ -x "$out/ref-echo" ] || { echo "build-kit: build failed" >&2; exit 1; }
command -v taskset >/dev/null 2>&1 || echo "build-kit: note: taskset (util-linux) is missing: fastport-bench will not pin" >&2
echo "kit ready in $out: $(ls "$out" | tr '\n' ' ')"
