#!/usr/bin/env bash
# Re-measures the sections of BENCHMARKS.md (machine, date, command, tables, chart).
# Run it on an otherwise idle machine: each target waits for quiet CPUs and is
# measured again when another process disturbed it (see "other CPU%").
#
#   bash apps/benchmark/scripts/build-kit.sh /tmp/kit      # once: echo-bench + ref-echo
#   bash apps/benchmark/scripts/benchmarks.sh [section...]  # all sections, or some of:
#        client-check compare-rr compare-depth bandwidth connect open idle
set -euo pipefail
cd "$(dirname "$0")/../../.."
KIT=${FASTPORT_KIT:-/tmp/kit}
DUR=${DURATION:-5}
R=apps/benchmark/results
mkdir -p "$R"
[ -x "$KIT/echo-bench" ] && [ -x "$KIT/ref-echo" ] || bash apps/benchmark/scripts/build-kit.sh "$KIT"

bench() {
  local label=$1; shift
  node apps/benchmark/bin/fastport-bench --kit "$KIT" --wait-quiet ${WAIT_QUIET:-120} --retry-noisy ${RETRY_NOISY:-4} \
    --markdown BENCHMARKS.md --label "$label" \
    --chart "$R/$label.svg" --json "$R/$label.json" --csv "$R/$label.csv" "$@" || true
}

SECTIONS="$*"
sel() { [ -z "$SECTIONS" ] || [[ " $SECTIONS " == *" $1 "* ]]; }

# The issue's check: fastport-bench's client against echo-bench on ref-echo uring,
# same connections, depth, size and pinning, for each client engine.
if sel client-check; then
  for ce in uring epoll node; do
    bench "client-check-$ce" --repeat 3 --engine ref-uring --framing u32le --echo-bench --client-engine "$ce" -c 50 -d 1 -s 64 --duration "$DUR"
    bench "client-check-$ce-d8" --repeat 3 --engine ref-uring --framing u32le --echo-bench --client-engine "$ce" -c 50 -d 8 -s 64 --duration "$DUR"
  done
fi
# All engines side by side with the C reference servers, echo-bench beside each.
sel compare-rr && bench compare-rr --compare --engine uring,epoll,node,ref-uring,ref-epoll --framing u32le --echo-bench -c 50 -d 1 -s 64 --duration "$DUR"
sel compare-depth && bench compare-depth --compare --engine uring,epoll,node,ref-uring,ref-epoll --framing u32le --echo-bench -c 50 -d 8 -s 64 --duration "$DUR"
sel compare-protobuf && bench compare-protobuf --compare --engine uring,epoll,node --protocol benchmark -c 50 -d 1 -s 64 --duration "$DUR"
sel bandwidth && bench bandwidth --compare --engine uring,epoll,node,ref-uring --workload bandwidth --size 1048576 --duration "$DUR"
sel connect && bench connect --compare --engine uring,epoll,node,ref-uring --workload connect --duration "$DUR"
sel open && bench open --compare --engine uring,epoll,node --rate 50000 --duration "$DUR"
sel idle && bench idle --compare --engine uring,epoll,node --workload idle -c 15000
exit 0
