#!/usr/bin/env bash
# The README's run command: builds, then runs one segd shard on its defaults
# (127.0.0.1:7070, one engine shard per core, wall clock). Ctrl-C drains and stops it.
# Arguments go to segd (--help lists its flags).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh" >/dev/null
exec "$root/build/server/segd" "$@"
