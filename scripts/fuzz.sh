#!/usr/bin/env bash
# scripts/fuzz.sh - builds the libFuzzer targets (tests/fuzz, docs/fuzzing.md)
# with clang in ./build-fuzz and runs them.
#
#   scripts/fuzz.sh [--seconds N] [--jobs J] [--regress] [--keep DIR] [TARGET...]
#
# First the regression pass: every input of tests/fuzz/corpus/<target>
# (the seeds and one regress-* input per finding) runs once. Then, unless
# --regress (that pass only) or --seconds 0, each target fuzzes for N
# seconds (default 10) on a copy of its corpus, with its dictionary
# (tests/fuzz/<target>.dict), one process per target, J targets at a time
# (default 1). Per target it prints the executions, libFuzzer's final
# coverage (cov: edges, ft: features) and the corpus size. It fails if any
# target crashes, leaks, times out (10 s per input) or runs out of memory,
# naming the input: a regression input by its path, a new finding by the
# file libFuzzer wrote (kept in the work directory, which is then kept).
# The repository's corpus is never written. --keep DIR keeps the work
# directory (copies of the corpora, grown, and the logs) in DIR.
#
# TARGET: proto_request proto_reply cfg csv jsonl olog scenario validate chat
# (the default: every target the build has). Needs clang and its libFuzzer
# runtime (Debian: clang, libclang-rt-14-dev), installed here when missing
# (root or sudo), and the project's packages (scripts/deps.sh).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=10
jobs=1
regress_only=0
keep=
usage() {
    echo "usage: scripts/fuzz.sh [--seconds N] [--jobs J] [--regress]" \
        "[--keep DIR] [TARGET...]" >&2
    exit 2
}
targets=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --seconds) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage; seconds=$2; shift ;;
    --jobs) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage; jobs=$2; shift ;;
    --regress) regress_only=1 ;;
    --keep) [[ $# -ge 2 ]] || usage; keep=$2; shift ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    -*) echo "scripts/fuzz.sh: unknown option '$1'" >&2; usage ;;
    *) targets+=("$1") ;;
    esac
    shift
done

# ------------------------------------------------------------ packages
need=()
command -v clang >/dev/null || need+=(clang)
if command -v dpkg-query >/dev/null; then
    # the libFuzzer runtime (libclang_rt.fuzzer) of Debian 12's clang 14
    dpkg-query -W -f='${Status}' libclang-rt-14-dev 2>/dev/null |
        grep -q "ok installed" || need+=(libclang-rt-14-dev)
fi
if [[ ${#need[@]} -gt 0 ]]; then
    echo "fuzz.sh: installing ${need[*]}" >&2
    sudo=
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" \
        >/dev/null
fi
"$here/scripts/deps.sh"

# --------------------------------------------------------------- build
build=$here/build-fuzz
CC=clang cmake -S "$here" -B "$build" -DBURSAR_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
if [[ ${#targets[@]} -eq 0 ]]; then
    for f in "$here"/tests/fuzz/fuzz_*.c; do
        t=$(basename "$f" .c)
        t=${t#fuzz_}
        # a target whose library is not built (BURSAR_SKIP) is left out
        grep -qx "\.\.\. fuzz_$t" <(make -C "$build" help 2>/dev/null) &&
            targets+=("$t")
    done
fi
make_targets=()
for t in "${targets[@]}"; do
    [[ -f $here/tests/fuzz/fuzz_$t.c ]] || {
        echo "fuzz.sh: no target '$t' (tests/fuzz/fuzz_$t.c)" >&2
        exit 2
    }
    make_targets+=("fuzz_$t")
done
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" \
    --target "${make_targets[@]}" >/dev/null

work=${keep:-$(mktemp -d "${TMPDIR:-/tmp}/bursar-fuzz.XXXXXX")}
mkdir -p "$work"
failed=0
# LeakSanitizer is on by default; UBSan stops at the first finding.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# ----------------------------------------------------------- regression
for t in "${targets[@]}"; do
    corpus=$here/tests/fuzz/corpus/$t
    log=$work/$t.regress.log
    inputs=("$corpus"/*)
    if "$build/bin/fuzz_$t" -timeout=10 -rss_limit_mb=2048 "${inputs[@]}" \
        >"$log" 2>&1; then
        printf 'regress  %-14s %4d inputs  ok\n' "$t" "${#inputs[@]}"
    else
        bad=$(grep '^Running: ' "$log" | tail -1 | sed 's/^Running: //')
        printf 'regress  %-14s FAILED on %s (log: %s)\n' "$t" "$bad" "$log"
        grep -m3 -E 'ERROR|runtime error|SUMMARY' "$log" | sed 's/^/    /'
        failed=1
    fi
done
if [[ $regress_only -eq 1 || $seconds -eq 0 ]]; then
    [[ -n $keep || $failed -ne 0 ]] || rm -rf "$work"
    exit $failed
fi

# ------------------------------------------------------------- fuzzing
run_one() {
    local t=$1
    local dir=$work/$t
    rm -rf "$dir"
    mkdir -p "$dir/corpus" "$dir/artifacts"
    cp "$here/tests/fuzz/corpus/$t"/* "$dir/corpus/"
    local dict=()
    [[ -f $here/tests/fuzz/$t.dict ]] && dict=(-dict="$here/tests/fuzz/$t.dict")
    "$build/bin/fuzz_$t" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="$dir/artifacts/" "$dir/corpus" >"$dir/log" 2>&1
}
report_one() {
    local t=$1 rc=$2
    local dir=$work/$t
    local execs cov ft size
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$dir/log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -oE 'ft: [0-9]+' "$dir/log" | tail -1 | cut -d' ' -f2)
    # libFuzzer's own count (inputs that add coverage), not the files
    size=$(grep -oE 'corp: [0-9]+' "$dir/log" | tail -1 | cut -d' ' -f2)
    if [[ $rc -eq 0 ]]; then
        printf 'fuzz     %-14s %5ss %10s execs  cov %5s  ft %6s  corpus %5s  ok\n' \
            "$t" "$seconds" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${size:-?}"
    else
        local art
        art=$(find "$dir/artifacts" -type f | head -1)
        printf 'fuzz     %-14s FAILED (exit %s): %s (log: %s)\n' "$t" "$rc" \
            "${art:-no input written}" "$dir/log"
        grep -m3 -E 'ERROR|runtime error|SUMMARY|fast path' "$dir/log" |
            sed 's/^/    /'
        failed=1
    fi
}
pending=("${targets[@]}")
while [[ ${#pending[@]} -gt 0 ]]; do
    batch=("${pending[@]:0:jobs}")
    pending=("${pending[@]:jobs}")
    pids=()
    for t in "${batch[@]}"; do
        run_one "$t" &
        pids+=($!)
    done
    for i in "${!batch[@]}"; do
        rc=0
        wait "${pids[$i]}" || rc=$?
        report_one "${batch[$i]}" "$rc"
    done
done
if [[ -z $keep && $failed -eq 0 ]]; then
    rm -rf "$work"
elif [[ $failed -ne 0 ]]; then
    echo "fuzz.sh: work directory kept: $work" >&2
fi
exit $failed
