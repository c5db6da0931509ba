#!/usr/bin/env bash
# The standard benchmark (../shared/BENCHMARK.md) on this machine: builds (scripts/deps.sh
# installs Debian's redis-server with the rest), starts a fresh segd and a Redis to compare
# with, both on free loopback ports, runs segload against them, and stops both.
#
#   scripts/bench.sh [segload flags]     e.g. --profiles=4000000 --json=out.json --csv=s.csv
#   scripts/bench.sh engine [flags]      the in-process engine benchmark (segd-engine-bench)
#
# SEGD_FLAGS adds flags to segd (e.g. SEGD_FLAGS="--shards=2"). Figures go to stdout, progress
# and the servers' logs to stderr and $SEGD_BENCH_LOGS (default: a temporary directory).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh" >/dev/null
build_dir=${SEGD_BUILD_DIR:-$root/build}

if [ "${1:-}" = engine ]; then
  shift
  exec "$build_dir/loadgen/segd-engine-bench" --profiles=200000 --updates=2000000 "$@"
fi

logs=${SEGD_BENCH_LOGS:-$(mktemp -d /tmp/segd-bench.XXXXXX)}
mkdir -p "$logs"
segd_pid=
redis_pid=
stop() {
  # Only the two servers started here, by their pids.
  for pid in $segd_pid $redis_pid; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $segd_pid $redis_pid; do wait "$pid" 2>/dev/null || true; done
}
trap stop EXIT

# segd on a port of its choosing: its start line names the port.
# shellcheck disable=SC2086  # SEGD_FLAGS is a list of flags
"$build_dir/server/segd" --listen=127.0.0.1:0 --log-level=info ${SEGD_FLAGS:-} \
  >"$logs/segd.log" 2>&1 &
segd_pid=$!
segd_port=
for _ in $(seq 1 500); do
  segd_port=$(sed -n 's/.*segd started: .* port=\([0-9]*\) .*/\1/p' "$logs/segd.log")
  [ -n "$segd_port" ] && break
  kill -0 "$segd_pid" 2>/dev/null || break
  sleep 0.02
done
if [ -z "$segd_port" ]; then
  echo "segd did not start:" >&2
  cat "$logs/segd.log" >&2
  exit 1
fi

# Redis: no persistence, nothing written to disk; a port picked free just before.
redis_port=$(/usr/bin/python3 -c \
  'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$logs" \
  >"$logs/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 500); do
  (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
  kill -0 "$redis_pid" 2>/dev/null || { cat "$logs/redis.log" >&2; exit 1; }
  sleep 0.02
done

echo "segd on 127.0.0.1:$segd_port, redis-server on 127.0.0.1:$redis_port, logs in $logs" >&2
"$build_dir/loadgen/segload" --servers="127.0.0.1:$segd_port" --redis="127.0.0.1:$redis_port" "$@"
