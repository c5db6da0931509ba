#!/usr/bin/env bash
# The README's run command. Until the gRPC server lands, "running segd" means running
# the engine on the standard workload (../shared/BENCHMARK.md) in-process: preload,
# the 20 standard segments, ingest, backfill and a funnel, with a table of figures.
# Arguments go to segd-engine-bench (e.g. --profiles=1000000; --help lists them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh" >/dev/null
exec "$root/build/loadgen/segd-engine-bench" --profiles=200000 --updates=2000000 "$@"
