# shellcheck shell=bash
# Sourced by test-win32.sh and test-arm64.sh: a PASS/FAIL line per step and
# the closing "N passed, N failed" line. Set REPORT_TAG first.
passed=0
failed=0
report_started=$(date +%s)
ok() { printf '[%s] PASS %s\n' "$REPORT_TAG" "$*"; passed=$((passed + 1)); }
bad() { printf '[%s] FAIL %s\n' "$REPORT_TAG" "$*" >&2; failed=$((failed + 1)); }
finish() {
  printf '[%s] %ds in all\n' "$REPORT_TAG" "$(($(date +%s) - report_started))"
  printf '%d passed, %d failed\n' "$passed" "$failed"
  [[ "$failed" == 0 ]]
  exit
}
fatal() { bad "$*"; finish; }
