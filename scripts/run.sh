#!/usr/bin/env bash
# The README's run command: installs what is missing, builds, then runs a demo cluster on
# loopback — three segd shards on 127.0.0.1:7070-7072 (wall clock), the 20 standard
# segments, and a trickle of the standard workload (segctl demo-traffic) — and prints
# segctl commands to try. Ctrl-C stops everything it started.
#
#   scripts/run.sh [segd flags]            the demo cluster; flags go to every shard
#   scripts/run.sh --single [segd flags]   one segd on 127.0.0.1:7070, nothing else
#
# SEGD_DEMO_PROFILES (default 5000) and SEGD_DEMO_RATE (updates/s, default 200) size the
# traffic; SEGD_RUN_LOGS is where the logs go (default: a new directory under /tmp).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
"$root/scripts/build.sh" >/dev/null
build_dir=${SEGD_BUILD_DIR:-$root/build}
segd=$build_dir/server/segd
segctl=$build_dir/client/segctl

if [ "${1:-}" = --single ]; then
  shift
  exec "$segd" "$@"
fi

ports=(7070 7071 7072)
servers=$(printf '127.0.0.1:%s,' "${ports[@]}")
servers=${servers%,}
logs=${SEGD_RUN_LOGS:-$(mktemp -d /tmp/segd-run.XXXXXX)}
mkdir -p "$logs"

# The children run in sessions of their own (setsid), so that Ctrl-C reaches only this
# script, which stops them in order: the traffic first, then the shards.
pids=()        # segd shards
traffic_pid=
stop() {
  trap - INT TERM EXIT
  # Only the processes started here, by their pids; SIGTERM makes segd drain.
  if [ -n "$traffic_pid" ]; then
    kill -TERM "$traffic_pid" 2>/dev/null || true
    wait "$traffic_pid" 2>/dev/null || true
  fi
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "stopped; logs are in $logs" >&2
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for port in "${ports[@]}"; do
  setsid "$segd" --listen="127.0.0.1:$port" "$@" >"$logs/segd-$port.log" 2>&1 &
  pids+=($!)
done
for i in "${!ports[@]}"; do
  port=${ports[$i]}
  for _ in $(seq 1 500); do
    grep -q "segd started" "$logs/segd-$port.log" && break
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "segd on port $port did not start (is the port taken?):" >&2
      cat "$logs/segd-$port.log" >&2
      exit 1
    fi
    sleep 0.02
  done
done

setsid "$segctl" demo-traffic --servers="$servers" --profiles="${SEGD_DEMO_PROFILES:-5000}" \
  --rate="${SEGD_DEMO_RATE:-200}" >"$logs/demo-traffic.log" 2>&1 &
traffic_pid=$!
for _ in $(seq 1 1500); do
  grep -q "sending" "$logs/demo-traffic.log" && break
  if ! kill -0 "$traffic_pid" 2>/dev/null; then
    echo "segctl demo-traffic stopped:" >&2
    cat "$logs/demo-traffic.log" >&2
    exit 1
  fi
  sleep 0.02
done

cat <<EOF
segd demo: 3 shards on $servers, the 20 standard segments,
${SEGD_DEMO_PROFILES:-5000} profiles u0 … u$((${SEGD_DEMO_PROFILES:-5000} - 1)), ${SEGD_DEMO_RATE:-200} updates/s. Logs: $logs

Try, in another terminal:
  export SEGD_SERVERS=$servers
  alias segctl=$segctl
  segctl stats                                   # each shard's profiles, events, memory
  segctl segment list                            # the segments and their member counts
  segctl profile get u42                         # attributes, events, segments
  segctl explain u42 --segment vip               # why u42 is (not) a vip
  segctl count 'country = "DK" and did(purchase within 30d)'
  segctl funnel page_view add_to_cart purchase --within 7d
  segctl subscribe --segments vip,cart_abandoner # live changes as JSON lines (Ctrl-C)
  segctl segment put dk_buyers 'country = "DK" and did(purchase within 30d)'
  segctl export backup.jsonl                     # then see README, "Recovering a shard"

Ctrl-C stops the cluster.
EOF

# Until Ctrl-C, or until a child stops by itself.
while true; do
  for pid in "${pids[@]}" "$traffic_pid"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "a demo process ($pid) stopped; see $logs" >&2
      exit 1
    fi
  done
  sleep 1
done
