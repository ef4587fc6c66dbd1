#!/usr/bin/env bash
# scripts/status_screenshot.sh - regenerates docs/status.png, the status
# page's picture in docs/controller.md: test_status_page (tests/status)
# runs a day of traffic through the real bursard on a test clock, loads
# the page in headless Chromium, checks it, and saves the screenshot in
# the build tree ($BURSAR_STATUS_SHOT); this copies it into docs/.
#
#   scripts/status_screenshot.sh [BUILD_DIR]   (default: build)
#
# Builds what the test needs in BUILD_DIR (configured if it is not yet);
# needs node, npm (once, for playwright-core) and chromium, as the test
# does (scripts/deps.sh installs them).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build}
[[ $build = /* ]] || build=$PWD/$build
out=$root/docs/status.png
[[ -f $build/CMakeCache.txt ]] || cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug >/dev/null
make -C "$build" -j2 bursard bursar test_status_page >/dev/null
cd "$build"
shot=$build/tests/status/status.png
rm -f "$shot"
ctest -R 'test_status_(npm_ci|page)' --output-on-failure >&2 ||
    { echo "status_screenshot.sh: test_status_page failed: $out not updated" >&2; exit 1; }
cp "$shot" "$out"
echo "status_screenshot.sh: wrote $out ($(stat -c %s "$out") bytes)"
