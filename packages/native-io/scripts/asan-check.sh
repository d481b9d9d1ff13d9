#!/bin/bash
# Builds an AddressSanitizer copy of the addon in a temp dir (build/ is not
# touched) and runs test/engine-native/memcheck-scenario.js against it with
# libasan preloaded into node. Exit status: the scenario's (ASan errors and
# LeakSanitizer leaks make it non-zero).
#   bash scripts/asan-check.sh [epoll|uring]
set -euo pipefail
KIND=${1:-epoll}
PKG=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/fastport-asan-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/src-copy" "$WORK/pkg/test/engine-native"
cp -r "$PKG/binding.gyp" "$PKG/package.json" "$PKG/src" "$WORK/src-copy/"
ln -s "$PKG/node_modules" "$WORK/src-copy/node_modules"
NODEDIR=$(node -p "require('path').resolve(process.execPath, '../..')")
(cd "$WORK/src-copy" && CXXFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" \
  LDFLAGS="-fsanitize=address" node "$PKG/node_modules/node-gyp/bin/node-gyp.js" rebuild --nodedir="$NODEDIR" >/dev/null)
cp -r "$PKG/dist" "$PKG/package.json" "$WORK/pkg/"
ln -s "$WORK/src-copy/build" "$WORK/pkg/build"
ln -s "$PKG/node_modules" "$WORK/pkg/node_modules"
cp "$PKG/test/engine-native/memcheck-scenario.js" "$WORK/pkg/test/engine-native/"
LIBASAN=$(${CXX:-g++} -print-file-name=libasan.so)
cd "$WORK/pkg"
LD_PRELOAD="$LIBASAN" ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 node test/engine-native/memcheck-scenario.js "$KIND"
