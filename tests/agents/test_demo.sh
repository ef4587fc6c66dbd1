#!/usr/bin/env bash
# tests/agents/test_demo.sh - scripts/demo.sh against this build (ctest
# test_demo): the story's chapters on standard output, only progress on
# standard error, and its figures present and consistent with the files the
# demo keeps (BURSAR_DEMO_DIR): always the strongest model costs more than
# bursar; the binding budget's spend is within its limit and its mu > 0;
# the cascade shows a refused answer escalated, linked in the export; the
# outage opens the breaker and traffic comes back; every column of the
# stats table has its line in the legend. Then --real without API keys
# fails at once naming the variables, and a bad argument is a usage error.
#
# Environment (from ctest): BURSAR_BUILD_DIR, BURSAR_SOURCE_DIR.
set -uo pipefail

src=${BURSAR_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
build=${BURSAR_BUILD_DIR:?BURSAR_BUILD_DIR: the build directory}
fails=0
fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}
ok() {
    echo "ok: $*"
}

# What the demo needs: a missing one fails the test (never a skip).
command -v jq >/dev/null || {
    echo "FAIL: jq is missing: apt-get install jq (scripts/deps.sh)" >&2
    exit 1
}
for p in bursard bursar bursar-agent bursar-mock-provider; do
    [[ -x $build/bin/$p ]] || {
        echo "FAIL: $build/bin/$p is not built" >&2
        exit 1
    }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_demo.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
files=$tmp/files

# --- the simulated story ----------------------------------------------------

t0=$SECONDS
BURSAR_BUILD_DIR=$build BURSAR_DEMO_DIR=$files "$src/scripts/demo.sh" >"$tmp/out" 2>"$tmp/err"
rc=$?
took=$((SECONDS - t0))
echo "--- scripts/demo.sh: exit $rc in $took s; standard error:"
cat "$tmp/err"
if [[ $rc -ne 0 ]]; then
    echo "--- standard output:"
    cat "$tmp/out"
    echo "FAIL: scripts/demo.sh exited $rc" >&2
    exit 1
fi
out=$tmp/out

# Standard error holds progress only ("demo: ..."), the story is on stdout.
if grep -qv '^demo: ' "$tmp/err"; then
    fail "standard error has more than progress lines"
else
    ok "standard error: progress lines only"
fi

# The programs' own logs (bursard, bursar-agent, the mock): no sanitizer
# report (under scripts/test.sh --sanitize), no bursard error.
reports=$(grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
    "$files"/*.log 2>/dev/null)
if [[ -n $reports ]]; then
    fail "sanitizer reports in: $reports"
    # shellcheck disable=SC2086 # one file a word
    grep -h -A20 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' $reports
elif grep -q . "$files"/bursard-*.log; then
    fail "bursard complained: $(cat "$files"/bursard-*.log)"
else
    ok "no sanitizer report, no bursard error in the logs"
fi

# The chapters, in order.
prev=0
for c in 1 2 3 4 5; do
    line=$(grep -n "^== $c\. " "$out" | head -1 | cut -d: -f1)
    if [[ -z $line || $line -le $prev ]]; then
        fail "chapter $c missing or out of order"
    else
        prev=$line
    fi
done
[[ $prev -gt 0 ]] && ok "five chapters in order"

# chapter N's text
chapter() {
    sed -n "/^== $1\. /,/^== $(($1 + 1))\. /p" "$out"
}
# the Nth dollar figure of a line (the "$" dropped)
dollars() {
    grep -o '\$[0-9][0-9.e+-]*' | sed -n "${1}p" | tr -d '$'
}
# awk as a test: lt A B
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b + 1e-9) }'; }
near() { awk -v a="$1" -v b="$2" -v e="$3" 'BEGIN { d = a - b; exit !(d <= e && -d <= e) }'; }

# --- 1. the same traffic, served two ways
ch1=$(chapter 1)
cost_line=$(grep -E '^  cost ' <<<"$ch1")
cs=$(dollars 1 <<<"$cost_line")
cb=$(dollars 2 <<<"$cost_line")
sum_s=$(jq -s 'map(.cost_usd) | add' "$files/strongest.jsonl")
sum_b=$(jq -s 'map(.cost_usd) | add' "$files/bursar.jsonl")
if [[ -z $cs || -z $cb ]]; then
    fail "chapter 1: no cost line: $cost_line"
elif ! lt "$cb" "$cs"; then
    fail "chapter 1: bursar's cost $cb is not below the strongest's $cs"
elif ! near "$cs" "$sum_s" 0.0001 || ! near "$cb" "$sum_b" 0.0001; then
    fail "chapter 1: costs $cs, $cb are not the results' sums $sum_s, $sum_b"
else
    ok "chapter 1: bursar \$$cb < always the strongest \$$cs (the results' sums)"
fi
for row in "valid on the first try" "valid after escalation"; do
    n=$(grep -cE "^  $row +[0-9.]+% +[0-9.]+%$" <<<"$ch1")
    [[ $n -eq 1 ]] || fail "chapter 1: no row \"$row\" with two percentages"
done
n=$(jq -s length "$files/bursar.jsonl")
valid=$(jq -s 'map(select(.valid)) | length' "$files/bursar.jsonl")
want=$(awk -v v="$valid" -v n="$n" 'BEGIN { printf "%.1f%%", 100 * v / n }')
if grep -qE "^  valid after escalation +[0-9.]+% +$want$" <<<"$ch1"; then
    ok "chapter 1: bursar's quality after escalation $want from its results"
else
    fail "chapter 1: bursar's quality after escalation is not $want"
fi
if grep -qE "^bursar: [0-9]+% of the strongest's first-try quality \([0-9]+% after escalation\) for [0-9]+% of its cost\.$" <<<"$ch1"; then
    ok "chapter 1: the ratio line"
else
    fail "chapter 1: no ratio line"
fi

# --- 2. a budget that binds
ch2=$(chapter 2)
spent_line=$(grep -E '^  spent ' <<<"$ch2")
spent=$(dollars 1 <<<"$spent_line")
limit=$(dollars 2 <<<"$spent_line")
mu=$(grep -E '^  mu ' <<<"$ch2" | awk '{ sub(",", "", $2); print $2 }')
st=$files/tight-stats.json
if [[ -z $spent || -z $limit ]]; then
    fail "chapter 2: no spend line"
elif ! le "$spent" "$limit"; then
    fail "chapter 2: spent \$$spent over the \$$limit limit"
elif ! near "$spent" "$(jq .budget.spent_usd "$st")" 0.0001 ||
    ! near "$limit" "$(jq .budget.limit_usd "$st")" 0.001; then
    fail "chapter 2: spend line \$$spent of \$$limit is not what stats say"
else
    ok "chapter 2: spent \$$spent of the \$$limit limit"
fi
if [[ -z $mu ]] || ! lt 0 "$mu"; then
    fail "chapter 2: mu ($mu) is not above 0"
elif ! near "$mu" "$(jq .policy.mu "$st")" 0.005; then
    fail "chapter 2: mu $mu is not the stats' $(jq .policy.mu "$st")"
else
    ok "chapter 2: mu $mu > 0"
fi
grep -qE '^  target +\$' <<<"$ch2" || fail "chapter 2: no target line"
if grep -qE '^mu = [0-9.]+: bursar now counts every target.s worth of dollars$|^The budget is used up' <<<"$ch2"; then
    ok "chapter 2: mu explained"
else
    fail "chapter 2: mu not explained"
fi
if grep -qE '^  bucket +model +strongest +bursar \$[0-9.]+ +bursar \$[0-9.]+$' <<<"$ch2" &&
    [[ $(grep -cE '^  +[a-z0-9-]+ +[0-9]+% +[0-9]+% +[0-9]+%$' <<<"$ch2") -ge 4 ]]; then
    ok "chapter 2: the shares table"
else
    fail "chapter 2: no shares table"
fi

# --- 3. a cascade with a validator
ch3=$(chapter 3)
if grep -qE '^  1\. gpt-4o-mini +invalid +\$\.born: must be an integer, got string' <<<"$ch3" &&
    grep -qE '^  2\. gpt-4o +valid ' <<<"$ch3"; then
    ok "chapter 3: the refused answer and the escalation's valid one"
else
    fail "chapter 3: the steps are not shown"
fi
first=$(grep -E '^  decision [0-9]+ step 0 ' <<<"$ch3" | awk '{ print $2 }')
esc=$(grep -E '^  decision [0-9]+ step 1 +escalates ' <<<"$ch3" | awk '{ print $6 }')
if [[ -n $first && $first == "$esc" ]]; then
    ok "chapter 3: the export links step 1 to decision $first"
else
    fail "chapter 3: no escalation linked in the export ($first, $esc)"
fi
if [[ -n $esc ]] && jq -s -e --arg f "$esc" 'any(.[]; .step == 1
        and .escalates_seq == $f and .model == "gpt-4o" and .reward == 1)' \
    "$files/cascade-export.jsonl" >/dev/null; then
    ok "chapter 3: the export's step 1 escalates decision $esc, gpt-4o, reward 1"
else
    fail "chapter 3: no escalation of decision $esc in the export"
fi
if grep -qE '^validator refused gpt-4o-mini.s answer; ([0-9]+) of \1 valid in the end' <<<"$ch3"; then
    ok "chapter 3: every request valid in the end"
else
    fail "chapter 3: not every request valid in the end"
fi

# --- 4. a model outage
ch4=$(chapter 4)
row() {
    grep -E "^  $1 " <<<"$ch4"
}
before=$(row before)
during=$(row outage)
after=$(row after)
# columns: stretch requests sonnet gpt-4o errors answered valid breaker
field() {
    awk -v i="$2" '{ gsub("%", ""); print $i }' <<<"$1"
}
if [[ -z $before || -z $during || -z $after ]]; then
    fail "chapter 4: the three stretches are not shown"
else
    errors=$(field "$during" 5)
    breaker=$(field "$during" 8)
    if [[ $errors -ge 3 && $breaker =~ ^(cooldown|half_open|probing)$ ]]; then
        ok "chapter 4: $errors provider errors, the breaker $breaker"
    else
        fail "chapter 4: outage: $errors errors, breaker $breaker"
    fi
    if [[ $(field "$after" 8) == ok && $(field "$before" 8) == ok ]]; then
        ok "chapter 4: the breaker closed before and after"
    else
        fail "chapter 4: breaker not ok before or after"
    fi
    sb=$(field "$before" 3) sd=$(field "$during" 3) sa=$(field "$after" 3)
    # claude-sonnet (0.95) against gpt-4o (0.85): Thompson sampling gives it
    # most of 200 requests; during the outage only the requests chosen
    # before the breaker opened (16 at most: 8 in flight, twice) and the
    # probes reach it.
    if [[ $sb -ge 30 && $sd -le 15 && $sa -ge 30 ]]; then
        ok "chapter 4: claude-sonnet's share $sb% -> $sd% -> $sa%"
    else
        fail "chapter 4: claude-sonnet's share $sb% -> $sd% -> $sa%"
    fi
    for r in "$before" "$during" "$after"; do
        a=$(field "$r" 6)
        [[ ${a%/*} == "${a#*/}" ]] || fail "chapter 4: unanswered requests: $r"
    done
fi

# --- 5. the stats table and its legend
ch5=$(sed -n '/^== 5\. /,$p' "$out")
header=$(grep -m1 -E '^  model +mean ' <<<"$ch5")
legend=$(sed -n '/^Reading it, column by column:/,$p' <<<"$ch5")
if [[ -z $header || -z $legend ]]; then
    fail "chapter 5: no stats table or no legend"
else
    # the header's columns: separated by two spaces or more
    missing=
    while IFS= read -r col; do
        [[ -z $col ]] && continue
        grep -qE "^  $col( |$)" <<<"$legend" || missing="$missing \"$col\""
    done < <(sed -E 's/^ +//; s/ {2,}/\n/g' <<<"$header")
    for line in "bucket" "policy" "budget"; do
        grep -qE "^  $line" <<<"$legend" || missing="$missing \"$line\""
    done
    if [[ -n $missing ]]; then
        fail "chapter 5: columns without a legend line:$missing"
    else
        ok "chapter 5: every column of the stats table explained"
    fi
fi

# --- --real without keys, a bad argument --------------------------------------

t0=$SECONDS
env -u OPENAI_API_KEY -u ANTHROPIC_API_KEY -u TOGETHER_API_KEY \
    BURSAR_BUILD_DIR="$build" "$src/scripts/demo.sh" --real \
    >"$tmp/real.out" 2>"$tmp/real.err"
rc=$?
if [[ $rc -eq 0 ]]; then
    fail "--real without keys exited 0"
elif [[ -s $tmp/real.out ]]; then
    fail "--real without keys printed a story"
elif ! grep -q OPENAI_API_KEY "$tmp/real.err" ||
    ! grep -q ANTHROPIC_API_KEY "$tmp/real.err" ||
    ! grep -q TOGETHER_API_KEY "$tmp/real.err"; then
    fail "--real without keys: the variables are not named"
elif [[ $((SECONDS - t0)) -gt 5 ]]; then
    fail "--real without keys took $((SECONDS - t0)) s"
else
    ok "--real without keys: exit $rc, the three variables named"
fi
cat "$tmp/real.err"
env -u TOGETHER_API_KEY OPENAI_API_KEY=x ANTHROPIC_API_KEY=y \
    BURSAR_BUILD_DIR="$build" "$src/scripts/demo.sh" --real \
    >/dev/null 2>"$tmp/real.err"
rc=$?
if [[ $rc -ne 0 ]] && grep -q TOGETHER_API_KEY "$tmp/real.err" &&
    ! grep -q OPENAI_API_KEY "$tmp/real.err"; then
    ok "--real with one key missing names that one only"
else
    fail "--real with TOGETHER_API_KEY unset: exit $rc, $(cat "$tmp/real.err")"
fi
BURSAR_BUILD_DIR=$build "$src/scripts/demo.sh" --frobnicate \
    >/dev/null 2>"$tmp/usage.err"
rc=$?
if [[ $rc -eq 2 ]] && grep -q '^usage: scripts/demo.sh' "$tmp/usage.err"; then
    ok "a bad argument: usage, exit 2"
else
    fail "a bad argument: exit $rc"
fi

echo "--- the demo's standard output:"
cat "$out"
if [[ $fails -ne 0 ]]; then
    echo "$fails check(s) failed" >&2
    exit 1
fi
echo "all checks passed ($took s for the demo)"
