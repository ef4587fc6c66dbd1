#!/usr/bin/env bash
# scripts/test.sh - builds bursar and runs the whole test suite (ctest).
# Installs the Debian packages it needs when missing (scripts/deps.sh).
#
#   scripts/test.sh              the build in ./build, every test
#   scripts/test.sh --sanitize   an AddressSanitizer + UBSan build in
#                                ./build-sanitize, the suite under them
#
# Under the sanitizers any finding fails its test: UBSan does not recover
# (-fno-sanitize-recover=all, halt_on_error=1), ASan stops at the first
# error and LeakSanitizer reports leaks at exit; the daemons and programs
# the integration tests start inherit the options. Every test runs,
# test_sim_ope_check included (12,000 tasks through bursard, bursar-agent,
# bursar and bursar-sim: the largest workload under the sanitizers; 61 s
# of its 120 s limit on the project's 2-core VM, 52 s without them).
#
# CI (.ci/run) runs both. Environment: BURSAR_BUILD_DIR (default ./build,
# or ./build-sanitize with --sanitize).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sanitize=0
case ${1:-} in
--sanitize) sanitize=1 ;;
"") ;;
*)
    echo "usage: scripts/test.sh [--sanitize]" >&2
    exit 2
    ;;
esac
jobs=$(nproc 2>/dev/null || echo 2)

"$here/scripts/deps.sh"
if [[ $sanitize -eq 0 ]]; then
    build=${BURSAR_BUILD_DIR:-$here/build}
    cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j"$jobs"
    cd "$build"
    exec ctest --output-on-failure -j"$jobs" --timeout 600
fi

build=${BURSAR_BUILD_DIR:-$here/build-sanitize}
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBURSAR_SANITIZE=ON -DCMAKE_C_FLAGS="-fno-sanitize-recover=all" \
    >/dev/null
cmake --build "$build" -j"$jobs"
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
cd "$build"
exec ctest --output-on-failure -j"$jobs" --timeout 600
