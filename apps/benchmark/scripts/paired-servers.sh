#!/usr/bin/env bash
# Paired runs of echo-bench against several servers, alternated within every
# round so each ratio compares runs made seconds apart (server on CPU 0,
# echo-bench on CPU 1). One server per stdin line: "label|ENV=V ...|command",
# PORT in the command replaced by a fresh port. Prints one line per round.
#
#   S="node apps/server/bin/fastport-server --engine epoll --mode echo --framing u32le --port PORT --log-level warn"
#   printf '%s\n' "ref||/tmp/kit/ref-echo epoll PORT" "fixed|FASTPORT_EPOLL_MAX_EVENTS=1024|$S" "adaptive||$S" |
#     KIT=/tmp/kit DUR=3 bash apps/benchmark/scripts/paired-servers.sh 6 50 1
set -euo pipefail
rounds=$1 conns=$2 depth=$3 size=${4:-64}
kit=${KIT:-/tmp/kit}
mapfile -t servers
port=${BASE_PORT:-19900}
for r in $(seq 1 "$rounds"); do
  line=""
  for s in "${servers[@]}"; do
    label=${s%%|*}; rest=${s#*|}; envs=${rest%%|*}; cmd=${rest#*|}
    port=$((port + 1))
    cmd=${cmd//PORT/$port}
    # shellcheck disable=SC2086
    env $envs taskset -c 0 $cmd >/dev/null 2>&1 &
    spid=$!
    for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
    out=$(taskset -c 1 "$kit/echo-bench" -a 127.0.0.1 -p "$port" -c "$conns" -k "$depth" -s "$size" -H u32le -d "${DUR:-4}" -w 1 2>/dev/null || true)
    kill "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    m=$(printf '%s' "$out" | python3 -c "import json,sys;print(json.load(sys.stdin)['msgs_per_s'])" 2>/dev/null || echo failed)
    line="$line $label=$m"
  done
  echo "round $r:$line"
done
