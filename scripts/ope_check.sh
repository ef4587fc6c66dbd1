#!/bin/sh
# ope_check.sh - off-policy evaluation against known truth (issue 5).
#
# For each seed: start the real bursard (plain Thompson sampling with an
# exploration floor of 0.1) on a fresh state directory, drive it with
# `bursar-agent --simulate` on a synthetic scenario (outcomes drawn from
# known success rates, fixed costs), export the decision log with
# `bursar export`, and estimate with `bursar-sim evaluate` the value of
# policies the log did not run: each single model, uniform, and a mixed
# distribution. The truth of a static policy on this scenario is exact:
# sum over buckets of traffic share x sum over models of pi(model) x
# success rate (and the same with the cost). Prints one line per
# (policy, seed), then the share of 95% intervals that hold the truth, per
# estimator. Exit status 1 when the DR coverage is below 90%.
#
# usage: scripts/ope_check.sh [BUILD_DIR] [SEEDS] [TASKS]
#        (defaults: build, 6 seeds, 2000 tasks per seed)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/ope_lib.sh
. "$here/scripts/ope_lib.sh"
bin=${1:-$here/build}/bin
seeds=${2:-6}
tasks=${3:-2000}
for p in bursard bursar bursar-agent bursar-sim; do
    if [ ! -x "$bin/$p" ]; then
        echo "ope_check: $bin/$p is not built" >&2
        exit 1
    fi
done
command -v jq >/dev/null || { echo "ope_check: jq is needed" >&2; exit 1; }
work=$(mktemp -d /tmp/ope_check.XXXXXX)
dpid=
cleanup() {
    [ -n "$dpid" ] && kill "$dpid" 2>/dev/null || true
    [ -n "${BURSAR_KEEP_TEST_DIRS:-}" ] || rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The scenario: true success rates per (model, bucket) and costs. Traffic
# is half code, half chat.
rates='big code 0.90 0.0100
big chat 0.85 0.0100
mid code 0.70 0.0020
mid chat 0.80 0.0020
small code 0.40 0.0004
small chat 0.70 0.0004'
policies='fixed:big fixed:mid fixed:small uniform mix:big=0.2,mid=0.5,small=0.3'

# truth POLICY: expected quality and cost per request on the scenario
truth() {
    echo "$rates" | awk -v pol="$1" '
    BEGIN {
        if (pol == "uniform") { w["big"] = w["mid"] = w["small"] = 1 / 3 }
        else if (pol ~ /^fixed:/) { w[substr(pol, 7)] = 1 }
        else {
            n = split(substr(pol, 5), kv, ",")
            for (i = 1; i <= n; i++) { split(kv[i], p, "="); w[p[1]] = p[2]; s += p[2] }
            for (m in w) w[m] /= s
        }
    }
    { q += 0.5 * w[$1] * $3; c += 0.5 * w[$1] * $4 }
    END { printf "%.12g %.12g\n", q, c }'
}

printf '%-34s %4s %8s  %-17s %-17s %-17s %-17s %-17s\n' policy seed truth \
    replay ips snips dm dr
: > "$work/hits"
: > "$work/cost_hits"
s=1
while [ "$s" -le "$seeds" ]; do
    d=$work/seed$s
    ope_run_seed ope_check "$bin" "$d" "$s" "$tasks" --escalations 0
    args=
    for p in $policies ts; do args="$args --policy $p"; done
    # shellcheck disable=SC2086
    "$bin/bursar-sim" evaluate --log "$d/log.jsonl" $args --seed "$s" --json \
        > "$d/ope.json"
    for p in $policies; do
        set -- $(truth "$p")
        tq=$1
        tc=$2
        jq -r --arg p "$p" --argjson t "$tq" --argjson tc "$tc" '
          def r3: . * 1000 | round / 1000;
          .policies[] | select(.policy == $p) | .estimators as $e
          | ["replay", "ips", "snips", "dm", "dr"] as $k
          | ($k | map($e[.] | [.estimate, .ci95[0], .ci95[1],
                (if .ci95[0] <= $t and $t <= .ci95[1] then 1 else 0 end)]))
            as $q
          | ($q | map("\(.[0] | r3)[\(.[1] | r3),\(.[2] | r3)]\(if .[3] == 1 then "" else "*" end)") | @tsv),
            ($q | map(.[3]) | @tsv),
            ($k | map($e[.].cost_ci95 as $c
                | if $c[0] <= $tc * (1 + 1e-9) and $tc * (1 - 1e-9) <= $c[1]
                  then 1 else 0 end) | @tsv)' "$d/ope.json" > "$d/row"
        printf '%-34s %4d %8.4f  %s\n' "$p" "$s" "$tq" \
            "$(sed -n 1p "$d/row" | awk -F'\t' '{for (i = 1; i <= NF; i++) printf "%-17s ", $i}')"
        sed -n 2p "$d/row" >> "$work/hits"
        sed -n 3p "$d/row" >> "$work/cost_hits"
    done
    jq -r --arg s "$s" '.policies[] | select(.policy == "ts")
        | [$s, .replay_accepted, .estimators.replay.estimate,
           .estimators.replay.ci95[0], .estimators.replay.ci95[1]] | @tsv' \
        "$d/ope.json" >> "$work/ts"
    s=$((s + 1))
done
echo "(* = the 95% interval misses the truth)"
status=0
awk -F'\t' '{ n++; for (i = 1; i <= 5; i++) h[i] += $i }
    END {
        split("replay ips snips dm dr", nm, " ")
        printf "quality coverage over %d (policy, seed) pairs:", n
        for (i = 1; i <= 5; i++) printf " %s %d/%d (%.1f%%)", nm[i], h[i], n, 100 * h[i] / n
        printf "\n"
        exit (h[5] < 0.9 * n) }' "$work/hits" || status=1
awk -F'\t' '{ n++; for (i = 1; i <= 5; i++) h[i] += $i }
    END {
        split("replay ips snips dm dr", nm, " ")
        printf "cost coverage over %d (policy, seed) pairs:   ", n
        for (i = 1; i <= 5; i++) printf " %s %d/%d (%.1f%%)", nm[i], h[i], n, 100 * h[i] / n
        printf "\n" }' "$work/cost_hits"

# A learning policy by replay: ts learns from the accepted rows only, so
# its estimate is the value of ts over a horizon of H = accepted rows. The
# truth: bursar-sim runs ts on the same scenario (its own format) for H
# requests, averaged over 40 scenario draws x 5 policy seeds.
# Informational: not part of the exit status.
sim_truth() {
    cat > "$work/sim.json" <<SIM
{"requests": $1, "traffic": {"code": 1, "chat": 1},
 "models": {"big": {"cost_usd": 0.01, "success": {"code": 0.9, "chat": 0.85}},
            "mid": {"cost_usd": 0.002, "success": {"code": 0.7, "chat": 0.8}},
            "small": {"cost_usd": 0.0004, "success": {"code": 0.4, "chat": 0.7}}}}
SIM
    ss=1
    while [ "$ss" -le 40 ]; do
        "$bin/bursar-sim" --scenario "$work/sim.json" --scenario-seed "$ss" \
            --policy ts --seeds 5 --seed $((ss * 5)) --json | jq .quality
        ss=$((ss + 1))
    done | awk '{ q += $1; n++ } END { printf "%.4f\n", q / n }'
}
echo
echo "learning policy ts by replay (truth: ts run by bursar-sim for H requests)"
printf '%4s %5s %8s  %s\n' seed H truth "replay [95% interval]"
hits=0
n=0
while IFS="$(printf '\t')" read -r s h est lo hi; do
    t=$(sim_truth "$h")
    in=$(awk -v t="$t" -v lo="$lo" -v hi="$hi" 'BEGIN { print (lo <= t && t <= hi) }')
    printf '%4s %5s %8s  %.4f [%.4f, %.4f]%s\n' "$s" "$h" "$t" "$est" "$lo" "$hi" \
        "$([ "$in" = 1 ] || echo ' *')"
    hits=$((hits + in))
    n=$((n + 1))
done < "$work/ts"
echo "ts replay coverage: $hits/$n"
exit "$status"
