#!/bin/bash
# Builds a ThreadSanitizer copy of the addon in a temp dir (build/ is not
# touched) and runs test/engine-native/memcheck-scenario.js (ioThreads 0 and
# 2) against it with libtsan preloaded into node, once per engine given.
# A data race is what would make the code depend on x86's ordering: code
# free of races under the C++ memory model (every cross-thread hand-off
# through a mutex or an acquire/release pair) is correct on a weakly ordered
# CPU too; the kernel side of the io_uring rings is outside what TSan sees
# (NATIVE.md, "Memory ordering", reviews it).
#   bash scripts/tsan-check.sh [epoll|uring]...   (default: epoll uring)
# Exit status: non-zero if a scenario failed or TSan reported anything
# outside node's own V8 platform code (suppressed below: node itself is not
# instrumented, so its job-thread teardown shows as a race that is not ours).
set -euo pipefail
KINDS=("$@")
((${#KINDS[@]})) || KINDS=(epoll uring)
PKG=$(cd "$(dirname "$0")/.." && pwd)
CXX=${CXX:-g++}
LIBTSAN=$($CXX -print-file-name=libtsan.so)
[[ -f "$LIBTSAN" ]] || { echo "[tsan-check] ERROR: no libtsan.so for $CXX (Debian: libgcc-12-dev)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/fastport-tsan-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/src-copy" "$WORK/pkg/test/engine-native"
cp -r "$PKG/binding.gyp" "$PKG/package.json" "$PKG/src" "$WORK/src-copy/"
ln -s "$PKG/node_modules" "$WORK/src-copy/node_modules"
NODEDIR=$(node -p "require('path').resolve(process.execPath, '../..')")
(cd "$WORK/src-copy" && CXXFLAGS="-fsanitize=thread -g -O1" CFLAGS="-fsanitize=thread -g -O1" \
  LDFLAGS="-fsanitize=thread" node "$PKG/node_modules/node-gyp/bin/node-gyp.js" rebuild --nodedir="$NODEDIR" \
  >"$WORK/build.log" 2>&1) || { cat "$WORK/build.log" >&2; echo "[tsan-check] ERROR: TSan build failed" >&2; exit 1; }
cp -r "$PKG/dist" "$PKG/package.json" "$WORK/pkg/"
ln -s "$WORK/src-copy/build" "$WORK/pkg/build"
ln -s "$PKG/node_modules" "$WORK/pkg/node_modules"
cp "$PKG/test/engine-native/memcheck-scenario.js" "$WORK/pkg/test/engine-native/"
cat >"$WORK/tsan.supp" <<'EOF'
# V8's platform worker threads (node is not built with TSan: its locking is invisible)
race:v8::platform::DefaultJobState
race:v8::platform::DefaultJobWorker
# V8's trace-category table (strdup'd on one thread, read on another under node's own locks)
race:v8::platform::tracing::TracingController
EOF
cd "$WORK/pkg"
for kind in "${KINDS[@]}"; do
  echo "[tsan-check] $kind"
  LD_PRELOAD="$LIBTSAN" TSAN_OPTIONS="suppressions=$WORK/tsan.supp report_signal_unsafe=0 exitcode=66" \
    node test/engine-native/memcheck-scenario.js "$kind"
done
