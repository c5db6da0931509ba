#!/usr/bin/env bash
# The in-process engine benchmark on the standard workload (../shared/BENCHMARK.md):
# preload, the 20 standard segments, ingest, backfill and a funnel, with a table of
# figures. Arguments go to segd-engine-bench (e.g. --profiles=1000000 --json=out.json).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh" >/dev/null
exec "$root/build/loadgen/segd-engine-bench" --profiles=200000 --updates=2000000 "$@"
