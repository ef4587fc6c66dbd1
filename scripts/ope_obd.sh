#!/bin/sh
# ope_obd.sh - off-policy evaluation on the Open Bandit Dataset sample
# (../shared/data/obd, see its README): estimate the value (click rate) of
# the uniform random policy from the Bernoulli Thompson sampling log of each
# campaign, and compare it with the random log's own click rate (the truth,
# itself a sample: its interval is the bootstrap interval of its mean).
#
# Position: each position (1-3) is a bucket; the propensity_score of a row
# is the logging policy's probability of that item at that position, and
# the uniform policy puts 1/34 (men) or 1/46 (women) on each item at each
# position. So the estimand is the click rate per impression over all
# positions, the quantity the random log measures directly.
#
# usage: scripts/ope_obd.sh [BUILD_DIR] [DATA_DIR]
#        (defaults: build, ../shared/data/obd beside the checkout)
# Exits 0 with a message when the data is absent.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$here/build}/bin
data=${2:-$here/../shared/data/obd}
if [ ! -d "$data/bts" ] || [ ! -d "$data/random" ]; then
    echo "ope_obd: $data not found (the Open Bandit Dataset sample lives in ../shared/data/obd beside the checkout): skipped"
    exit 0
fi
[ -x "$bin/bursar-sim" ] || { echo "ope_obd: $bin/bursar-sim is not built" >&2; exit 1; }
command -v jq >/dev/null || { echo "ope_obd: jq is needed" >&2; exit 1; }

fmt='
  def r: if . == null then "n/a" else . * 100000 | round / 100000 end;
  def ci: if . == null then "-" else "[\(.[0] | r), \(.[1] | r)]" end;'
for c in men women; do
    truth=$("$bin/bursar-sim" evaluate --log "$data/random/$c/$c.csv" \
        --policy uniform --json)
    est=$("$bin/bursar-sim" evaluate --log "$data/bts/$c/$c.csv" \
        --policy uniform --json)
    echo "campaign $c"
    echo "$truth" | jq -r "$fmt"'
      "  random log, own click rate: \(.estimators.ips.estimate | r) \(.estimators.ips.ci95 | ci)  (\(.log.rows) impressions)"'
    echo "$est" | jq -r --argjson t "$(echo "$truth" | jq .estimators.ips.estimate)" \
        --argjson tc "$(echo "$truth" | jq -c .estimators.ips.ci95)" "$fmt"'
      "  uniform policy estimated from the BTS log (\(.log.rows) impressions, smallest propensity \(.log.min_propensity)):",
      (.estimators | to_entries[] |
        "    \(.key | . + "      " | .[0:7]) \(.value.estimate | r)  \(.value.ci95 | ci)  ESS \(.value.ess | r | tostring | .[0:7])  \(if .value.ci95 == null then "" elif (.value.ci95[0] <= $t and $t <= .value.ci95[1]) then "holds the random CTR" elif (.value.ci95[0] <= $tc[1] and $tc[0] <= .value.ci95[1]) then "misses it; the intervals overlap" else "misses it; disjoint intervals" end)"),
      (.warnings[] | "    warning: \(.)")'
done
