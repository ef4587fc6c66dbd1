#!/bin/sh
# ope_cascade.sh - off-policy evaluation of a log with cascades, per request
# and per decision, against the truth (docs/ope.md, "Cascades and
# exclusions").
#
# The setting of scripts/ope_check.sh (bursard with plain Thompson sampling
# and an exploration floor of 0.1, 2 buckets x 3 models, bursar-agent
# --simulate on known success rates and fixed costs), but the agent keeps
# its default two escalations: a task whose answer fails validation asks
# again with the tried models excluded, naming the decision it escalates.
# For each seed: export the log, then `bursar-sim evaluate` of uniform and
# fixed:mid ("mid first, then uniformly among the models left") as
# bursar-sim reads the log now (per request) and as it did before
# (--per-decision). The truth: with three models and three tries every
# model is tried until one passes, so the quality of any such cascade is
# 1 - prod(1 - p) per bucket; its cost, the mean over the orders the
# target tries the models in of the summed cost of the tries made.
#
# usage: scripts/ope_cascade.sh [BUILD_DIR] [SEEDS] [TASKS]
#        (defaults: build, 1 seed, 2000 tasks per seed)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/ope_lib.sh
. "$here/scripts/ope_lib.sh"
bin=${1:-$here/build}/bin
seeds=${2:-1}
tasks=${3:-2000}
for p in bursard bursar bursar-agent bursar-sim; do
    if [ ! -x "$bin/$p" ]; then
        echo "ope_cascade: $bin/$p is not built" >&2
        exit 1
    fi
done
command -v jq >/dev/null || { echo "ope_cascade: jq is needed" >&2; exit 1; }
work=$(mktemp -d /tmp/ope_cascade.XXXXXX)
dpid=
cleanup() {
    if [ -n "$dpid" ]; then kill "$dpid" 2>/dev/null || true; fi
    [ -n "${BURSAR_KEEP_TEST_DIRS:-}" ] || rm -rf "$work"
}
trap cleanup EXIT INT TERM

# truth POLICY: quality and cost per request of the cascade (half code,
# half chat). Rates and costs as in the scenario below.
truth() {
    awk -v pol="$1" 'BEGIN {
        split("big mid small", m, " ")
        p["code", "big"] = 0.90; p["code", "mid"] = 0.70; p["code", "small"] = 0.40
        p["chat", "big"] = 0.85; p["chat", "mid"] = 0.80; p["chat", "small"] = 0.70
        c["big"] = 0.01; c["mid"] = 0.002; c["small"] = 0.0004
        split("code chat", bk, " ")
        for (bi = 1; bi <= 2; bi++) {
            b = bk[bi]; f = 1; n = 0; cs = 0
            for (i = 1; i <= 3; i++) f *= 1 - p[b, m[i]]
            # the six orders; fixed:M keeps those that start with M
            for (i = 1; i <= 3; i++) for (j = 1; j <= 3; j++) for (k = 1; k <= 3; k++) {
                if (i == j || j == k || i == k) continue
                if (pol != "uniform" && "fixed:" m[i] != pol) continue
                a = m[i]; x = m[j]; y = m[k]
                cs += c[a] + (1 - p[b, a]) * (c[x] + (1 - p[b, x]) * c[y]); n++
            }
            q += (1 - f) / 2; cost += cs / n / 2
        }
        printf "%.4f %.6f\n", q, cost }'
}

s=1
while [ "$s" -le "$seeds" ]; do
    d=$work/seed$s
    ope_run_seed ope_cascade "$bin" "$d" "$s" "$tasks" --quiet
    for mode in "" --per-decision; do
        # shellcheck disable=SC2086
        "$bin/bursar-sim" evaluate --log "$d/log.jsonl" --policy uniform \
            --policy fixed:mid --seed "$s" --json $mode > "$d/ope.json"
        for p in uniform fixed:mid; do
            # shellcheck disable=SC2046
            set -- $(truth "$p")
            jq -r --arg p "$p" --arg s "$s" --arg tq "$1" --arg tc "$2" '
              def r(n): . * n | round / n;
              .policies[] | select(.policy == $p) | .estimators as $e
              | "seed \($s) \(.evaluation): \($p) truth \($tq) USD \($tc)",
                (["ips", "snips"][] as $k | $e[$k]
                 | "  \($k) \(.estimate | r(1000)) [\(.ci95[0] | r(1000)), \(.ci95[1] | r(1000))]  USD \(.cost_per_request_usd | r(1000000)) [\(.cost_ci95[0] | r(1000000)), \(.cost_ci95[1] | r(1000000))]")' \
                "$d/ope.json"
        done
    done
    s=$((s + 1))
done
