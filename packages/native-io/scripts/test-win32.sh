#!/usr/bin/env bash
# The Windows side of @fastport/native-io, cross-built here and run under Wine
# (package script test:win32):
#   1. scripts/setup-win32.sh      (installs what is missing; --check with FASTPORT_WIN32_NO_INSTALL=1)
#   2. scripts/build-win32.js      prebuilds/win32-x64/@fastport+native-io.node
#   3. tsc                          dist/ (the loader that the harness uses)
#   4. probe: Windows node.exe loads the prebuild through dist/native.js from a
#      staged package copy and must answer probe() with platform 'win32'
#   5. IOCP proof: test/win32/iocp_echo.cc (completion port, AcceptEx,
#      ConnectEx, zero-byte WSARecv) cross-compiled and run under Wine, in
#      self-test mode and then as a server driven by Linux node clients
#   6. the IOCP backend (src/win/iocp.cc) against the backend contract:
#      test/win32/iocp_backend_test.cc plays the core
#   6b. the rio backend (src/win/rio.cc) on the emulated RIO table, same test
#      (-DFASTPORT_TEST_RIO), plus the emulated table's own objects all gone
#   7. the iocp and rio engines through createEngine (test/win32/engine-smoke.js):
#      echo and a 1,000-connection reset flood with ioThreads 0 and 1 (rio on
#      the emulated table), RIO_CORRUPT_CQ ends every rio connection with EIO,
#      engineAvailability('rio') says unavailable (the system table is absent),
#      auto picks iocp and says why (even with FASTPORT_RIO_TABLE=emulated),
#      kind 'rio' on the system table fails with the RIO-absent error
#   8. the engine conformance suite (test/engine/conformance.test.ts,
#      compiled by tsc, test/win32/mini-vitest.js standing in for vitest)
#      against iocp and against rio on the emulated table, ioThreads 0 and 1
# Exit 0 only if every step passed; prints a one-line summary per step and
# a closing "N passed, N failed" line.
set -uo pipefail

PKG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WIN_DIR="${FASTPORT_WIN32_DIR:-$PKG_ROOT/.win32}"
cd "$PKG_ROOT"

REPORT_TAG=test-win32
# shellcheck source=step-report.sh
source "$PKG_ROOT/scripts/step-report.sh"

if [[ "${FASTPORT_WIN32_NO_INSTALL:-}" == 1 ]]; then
  bash scripts/setup-win32.sh --check || fatal "setup (--check): a piece is missing, named above"
else
  bash scripts/setup-win32.sh || fatal "setup: a piece is missing, named above"
fi
# shellcheck disable=SC1091
source "$WIN_DIR/env.sh"

# node.exe gets Windows paths (Z: is the Linux root in a Wine prefix).
winpath() { winepath -w "$1" 2>/dev/null | tr -d '\r'; }

# Bounded wine run: wine_node <seconds> <args...>; node.exe's stdout and stderr
# go to files (a pipe from node.exe under Wine can lose output).
run_log="$(mktemp -d)"
trap 'rm -rf "$run_log"' EXIT
wine_run() {
  local secs="$1"
  shift
  timeout --kill-after=10 "$secs" wine "$@" >"$run_log/out" 2>"$run_log/err"
}

# ------------------------------------------------------------ 2. cross build
if node scripts/build-win32.js; then
  ok "build: prebuilds/win32-x64/@fastport+native-io.node"
else
  fatal "build: scripts/build-win32.js failed"
fi

# ------------------------------------------------------------ 3. loader
if npx tsc -p tsconfig.json; then ok "tsc: dist/"; else fatal "tsc -p tsconfig.json failed"; fi

# ------------------------------------------------------------ 4. probe under Wine
stage="$WIN_DIR/stage"
rm -rf "$stage"
mkdir -p "$stage/prebuilds/win32-x64" "$stage/node_modules"
cp package.json "$stage/"
cp -r dist "$stage/dist"
cp prebuilds/win32-x64/@fastport+native-io.node "$stage/prebuilds/win32-x64/"
# With the linux-x64 prebuild beside it (as the packed tarball has both), the
# loader must still pick win32-x64.
both=""
if [[ -f prebuilds/linux-x64/@fastport+native-io.node ]]; then
  mkdir -p "$stage/prebuilds/linux-x64"
  cp prebuilds/linux-x64/@fastport+native-io.node "$stage/prebuilds/linux-x64/"
  both=" (linux-x64 prebuild beside it)"
fi
cp -rL "$(node -p "path.dirname(require.resolve('node-gyp-build/package.json'))")" "$stage/node_modules/node-gyp-build"
probe_json="$WIN_DIR/probe.json"
rm -f "$probe_json"
if wine_run 120 "$FASTPORT_WIN32_NODE" "$(winpath "$PKG_ROOT/test/win32/probe-harness.js")" \
  "$(winpath "$stage")" "$(winpath "$probe_json")" && [[ -s "$probe_json" ]]; then
  if summary="$(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const fail = (m) => { console.error(m + "\n" + JSON.stringify(r, null, 2)); process.exit(1); };
    if (r.harnessError) fail("harness: " + r.harnessError);
    if (r.platform !== "win32") fail("process.platform " + r.platform);
    if (r.loadError) fail("loadNative: " + r.loadError);
    if (!/prebuilds[\\/]win32-x64[\\/]@fastport\+native-io\.node$/.test(r.addonPath || "")) fail("loaded " + r.addonPath);
    const p = r.probe;
    if (!p || p.platform !== "win32") fail("probe().platform " + (p && p.platform));
    if (p.uring.available !== false || p.uring.error !== "ENOSYS") fail("uring should be unavailable (ENOSYS)");
    if (p.epoll.available !== false) fail("epoll should be unavailable");
    if (r.version !== require(process.argv[2]).version) fail("version " + r.version);
    console.log(`node ${r.nodeVersion} ${r.platform}-${r.arch}, addon ${r.version}, N-API ${r.napiVersion}, wire ${r.wireVersion}, ` +
      `kernel "${p.kernel}", note "${p.note}", NativeEngine ${r.hasNativeEngine ? "present" : "absent"}`);
  ' "$probe_json" "$PKG_ROOT/package.json")"; then
    ok "probe under wine$both: $summary"
  else
    bad "probe under wine: wrong answer (above)"
  fi
else
  bad "probe under wine: node.exe failed (exit $?); stderr: $(tail -c 2000 "$run_log/err")"
fi

# ------------------------------------------------------------ 5. IOCP proof
iocp_exe="$WIN_DIR/iocp_echo.exe"
if "$FASTPORT_WIN32_CXX" -std=c++17 -O2 -Wall -Wextra -Werror -D_WIN32_WINNT=0x0A00 -D__USE_MINGW_ANSI_STDIO=1 \
  -static -s -o "$iocp_exe" test/win32/iocp_echo.cc -lws2_32 -lmswsock; then
  ok "iocp_echo.exe compiled"
  # Self test: 32 clients x 8 rounds (one 1 MiB message) in one process,
  # then the two abort checks (recv pending at close, AcceptEx pool at listener close).
  if wine_run 120 "$iocp_exe" selftest 32 8; then
    ok "iocp selftest under wine: $(tr -d '\r' <"$run_log/out" | grep -E '^(accepted|bytes_verified|inline_completions|packets|abort_recv_status|abort_accept_status)=' | tr '\n' ' ')"
  else
    bad "iocp selftest under wine (exit $?): $(tr -d '\r' <"$run_log/out" | tr '\n' ' ') $(tail -c 1000 "$run_log/err")"
  fi
  # RIO: Wine has none (the rio engine must fail cleanly there and auto pick iocp).
  if wine_run 60 "$iocp_exe" rio-probe; then
    ok "rio probe under wine: $(tr -d '\r' <"$run_log/out" | grep -E '^rio' | tr '\n' ' ')"
  else
    bad "rio probe under wine (exit $?): $(tr -d '\r' <"$run_log/out" | tr '\n' ' ')"
  fi
  # Served to Linux: the echo server in Wine, 50 node clients on the Linux side.
  portfile="$WIN_DIR/iocp_echo.port"
  rm -f "$portfile"
  timeout --kill-after=10 90 wine "$iocp_exe" serve "$(winpath "$portfile")" 50 60 >"$run_log/serve.out" 2>"$run_log/serve.err" &
  serve_pid=$!
  for _ in $(seq 300); do [[ -s "$portfile" ]] && break; sleep 0.1; done
  if [[ -s "$portfile" ]] && driver="$(node test/win32/drive-echo.js "$(tr -d '\r\n' <"$portfile")" 50 6 60)"; then
    if wait "$serve_pid"; then
      ok "iocp serve under wine, driven from Linux: $driver; server $(tr -d '\r' <"$run_log/serve.out" | grep -E '^(accepted|bytes_echoed|result)=' | tr '\n' ' ')"
    else
      bad "iocp serve under wine: server failed: $(tr -d '\r' <"$run_log/serve.out" | tr '\n' ' ')"
    fi
  else
    kill "$serve_pid" 2>/dev/null
    wait "$serve_pid" 2>/dev/null
    bad "iocp serve under wine: driver failed: ${driver:-no port file}; server: $(tr -d '\r' <"$run_log/serve.out" | tr '\n' ' ')"
  fi
else
  bad "iocp_echo.cc does not compile"
fi

# ------------------------------------------------------------ 6. IOCP backend vs the contract
backend_exe="$WIN_DIR/iocp_backend_test.exe"
if "$FASTPORT_WIN32_CXX" -std=c++17 -O2 -Wall -Wextra -Werror -fno-exceptions -fno-rtti -D_WIN32_WINNT=0x0A00 \
  -DWIN32_LEAN_AND_MEAN -DNOMINMAX -D__USE_MINGW_ANSI_STDIO=1 -Isrc -static -s -o "$backend_exe" \
  test/win32/iocp_backend_test.cc src/win/iocp.cc src/win/sockets.cc src/win/wsa_errno.cc -lws2_32 -lmswsock; then
  if wine_run 180 "$backend_exe"; then
    ok "iocp backend under wine: $(tr -d '\r' <"$run_log/out" | grep -E '^accepted=' )"
  else
    bad "iocp backend under wine (exit $?): $(tr -d '\r' <"$run_log/out" | grep -E 'FAILED|note=|result' | tr '\n' ' ') $(tail -c 1000 "$run_log/err")"
  fi
else
  bad "src/win/{iocp,sockets,wsa_errno}.cc + test/win32/iocp_backend_test.cc do not compile"
fi

# ------------------------------------------------------------ 6b. rio backend vs the contract (emulated table)
rio_exe="$WIN_DIR/rio_backend_test.exe"
if "$FASTPORT_WIN32_CXX" -std=c++17 -O2 -Wall -Wextra -Werror -fno-exceptions -fno-rtti -D_WIN32_WINNT=0x0A00 \
  -DWIN32_LEAN_AND_MEAN -DNOMINMAX -D__USE_MINGW_ANSI_STDIO=1 -DFASTPORT_TEST_RIO -Isrc -static -s -o "$rio_exe" \
  test/win32/iocp_backend_test.cc src/win/rio.cc src/win/rio_table.cc src/win/rio_emulated.cc src/win/iocp.cc \
  src/win/sockets.cc src/win/wsa_errno.cc -lws2_32 -lmswsock; then
  if wine_run 180 "$rio_exe"; then
    ok "rio backend (emulated table) under wine: $(tr -d '\r' <"$run_log/out" | grep -E '^(accepted=|emulated_live)' | tr '\n' ' ')"
  else
    bad "rio backend under wine (exit $?): $(tr -d '\r' <"$run_log/out" | grep -E 'FAILED|note=|result' | tr '\n' ' ') $(tail -c 1000 "$run_log/err")"
  fi
else
  bad "src/win/rio*.cc + test/win32/iocp_backend_test.cc (-DFASTPORT_TEST_RIO) do not compile"
fi

# ------------------------------------------------------------ 7. iocp engine through createEngine
smoke_json="$WIN_DIR/engine-smoke.json"
rm -f "$smoke_json"
if wine_run 180 "$FASTPORT_WIN32_NODE" "$(winpath "$PKG_ROOT/test/win32/engine-smoke.js")" "$(winpath "$stage")" \
  "$(winpath "$smoke_json")" && [[ -s "$smoke_json" ]]; then
  if summary="$(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const fail = (m) => { console.error(m + "\n" + JSON.stringify(r, null, 2)); process.exit(1); };
    if (r.error) fail("harness: " + r.error);
    const out = [];
    const name = (s) => s.kind + (s.rioTable ? "(" + s.rioTable + " table)" : "");
    for (const s of r.steps) {
      if (s.kind === "rio" && s.rioTable !== "emulated") fail("rio ran on the " + s.rioTable + " table");
      if (s.bad !== 0 || s.closed !== 2 * s.clients || s.accepted !== s.clients || s.closeErrors.length) fail("echo " + name(s) + " ioThreads " + s.ioThreads);
      out.push(`${name(s)} ioThreads ${s.ioThreads}: ${s.clients} clients, ${s.bytes} bytes echoed, 0 bad`);
    }
    if (r.steps.map((s) => s.kind).join() !== "iocp,iocp,rio,rio") fail("expected echo runs: iocp and rio, ioThreads 0 and 1");
    for (const f of r.flood || []) {
      if (f.closed !== f.accepted || f.listenerErrors.length || f.sentinel !== "sentinel") fail("flood " + f.kind + " ioThreads " + f.ioThreads);
      out.push(`${f.kind} ioThreads ${f.ioThreads}: ${f.n} connects reset at once, ${f.accepted} accepted and closed, sentinel echoed`);
    }
    if (!r.flood || r.flood.map((f) => f.kind).join() !== "iocp,iocp,rio,rio") fail("expected flood runs: iocp and rio, ioThreads 0 and 1");
    if (!r.corrupt || r.corrupt.closed !== 4 || r.corrupt.codes.some((c) => c !== "EIO")) fail("RIO_CORRUPT_CQ: every connection must end with EIO");
    out.push(`rio RIO_CORRUPT_CQ: ${r.corrupt.closed} connections closed with EIO, destroy resolved`);
    const a = r.availability;
    if (!a || a.rio.available !== false || !/RIO function table is absent/.test(a.rio.reason)) fail("engineAvailability(rio) must say unavailable");
    if (a.rioEmulated.available !== true || !/emulated RIO table/.test(a.rioEmulated.reason)) fail("engineAvailability(rio, emulated)");
    if (!r.auto || r.auto.kind !== "iocp" || !/skipped rio: the RIO function table is absent/.test(r.auto.reason)) fail("auto");
    if (!r.autoWithEmulatedEnv || r.autoWithEmulatedEnv.kind !== "iocp") fail("auto with FASTPORT_RIO_TABLE=emulated must still pick iocp");
    if (!r.rio || r.rio.created || r.rio.code !== "ERR_ENGINE_UNAVAILABLE" || !/RIO function table is absent/.test(r.rio.message)) fail("kind rio");
    out.push(`engineAvailability(rio): unavailable ("${a.rio.reason.slice(0, 40)}...")`, `auto -> ${r.auto.kind} ("${r.auto.reason.slice(0, 60)}...")`, `rio on the system table -> ${r.rio.code}`);
    console.log(out.join("; "));
  ' "$smoke_json")"; then
    ok "iocp and rio (emulated table) engines under wine: $summary"
  else
    bad "iocp and rio engines under wine: wrong answer (above)"
  fi
  # The fatal-error message of the RIO_CORRUPT_CQ run, on node.exe's stderr.
  if tr -d '\r' <"$run_log/err" | grep -q 'FATAL: RIODequeueCompletion returned RIO_CORRUPT_CQ'; then
    ok "rio RIO_CORRUPT_CQ reported on stderr: $(tr -d '\r' <"$run_log/err" | grep -m1 'RIO_CORRUPT_CQ' | cut -c1-110)..."
  else
    bad "rio RIO_CORRUPT_CQ: no fatal message on stderr: $(tail -c 500 "$run_log/err")"
  fi
else
  bad "iocp engine under wine: node.exe failed (exit $?); stderr: $(tail -c 2000 "$run_log/err")"
fi

# ------------------------------------------------------------ 8. conformance suite under Wine
# The suite imports @fastport/test-utils (TypeScript sources; tsc leaves a
# package it resolves through node_modules unemitted): compiled on its own
# into the staged node_modules, its vitest glue resolving to mini-vitest.
test_utils_stage="$stage/node_modules/@fastport/test-utils"
if npx tsc -p test/win32/tsconfig.suite.json --outDir "$stage" &&
  npx tsc -p ../test-utils/tsconfig.json --noEmit false --declaration false --declarationMap false --sourceMap false --outDir "$test_utils_stage/src"; then
  printf '{"name":"@fastport/test-utils","main":"src/index.js","exports":{".":"./src/index.js","./vitest":"./src/vitest.js"}}\n' >"$test_utils_stage/package.json"
  mkdir -p "$stage/node_modules/vitest"
  cp test/win32/mini-vitest.js "$stage/node_modules/vitest/index.js"
  # iocp, and rio on the emulated RIO table (FASTPORT_RIO_TABLE=emulated:
  # the only way rio runs here), each with ioThreads 0 and 1.
  for engine in iocp rio; do
    table=""
    [[ "$engine" == rio ]] && table=emulated
    for threads in 0 1; do
      suite_log="$WIN_DIR/conformance-$engine-t$threads.log"
      rm -f "$suite_log"
      FASTPORT_IO_THREADS=$threads FASTPORT_ENGINES=$engine FASTPORT_ENGINES_STRICT=1 FASTPORT_RIO_TABLE=$table \
        wine_run 900 "$FASTPORT_WIN32_NODE" "$(winpath "$PKG_ROOT/test/win32/run-suite.js")" "$(winpath "$suite_log")" \
        "$(winpath "$stage/test/engine/conformance.test.js")"
      rc=$?
      line="$(tr -d '\r' <"$suite_log" 2>/dev/null | grep '^suite:' | tail -n1)"
      label="conformance under wine, $engine${table:+ ($table RIO table)}, ioThreads $threads"
      if [[ "$rc" == 0 && -n "$line" ]]; then
        ok "$label: ${line#suite: }"
        grep '^KNOWN-WINE' "$suite_log" | tr -d '\r' | sed 's/^/[test-win32]   /'
      else
        bad "$label (exit $rc): ${line:-no summary}; failures:"
        tr -d '\r' <"$suite_log" 2>/dev/null | grep -A4 -E '^(FAIL|UNCAUGHT)' | head -n 60 >&2
      fi
    done
  done
else
  bad "tsc -p test/win32/tsconfig.suite.json (or of ../test-utils) failed"
fi

finish
