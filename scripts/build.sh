#!/usr/bin/env bash
# Configures and builds segd into $SEGD_BUILD_DIR (default build/, or build-asan/ when
# SEGD_SANITIZE is set). Extra arguments go to cmake's configure step.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
sanitize=${SEGD_SANITIZE:-}
default_dir=$root/build
[ -n "$sanitize" ] && default_dir=$root/build-asan
build_dir=${SEGD_BUILD_DIR:-$default_dir}
build_type=${SEGD_BUILD_TYPE:-Release}
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" \
  -DSEGD_SANITIZE="$sanitize" "$@" >/dev/null
cmake --build "$build_dir" --parallel "$(nproc)"
