#!/usr/bin/env bash
# scripts/test.sh - builds bursar and runs the whole test suite (ctest).
# Installs the Debian packages it needs when missing (scripts/deps.sh).
#
# Environment: BURSAR_BUILD_DIR (default ./build).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BURSAR_BUILD_DIR:-$here/build}
jobs=$(nproc 2>/dev/null || echo 2)

"$here/scripts/deps.sh"
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$jobs"
cd "$build"
ctest --output-on-failure -j"$jobs" --timeout 600
