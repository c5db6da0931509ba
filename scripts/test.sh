#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, and runs every test.
# SEGD_SANITIZE=address,undefined runs the same suite under the sanitizers.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh"
build_dir=${SEGD_BUILD_DIR:-$root/build}
[ -n "${SEGD_SANITIZE:-}" ] && build_dir=${SEGD_BUILD_DIR:-$root/build-asan}
cd "$build_dir"
ctest --output-on-failure --parallel "$(nproc)" "$@"
