#!/usr/bin/env bash
# scripts/demo.sh - bursar in one command: what budget-aware routing buys,
# told in five chapters on standard output.
#
#   scripts/demo.sh                 simulated models, no API key needed
#   scripts/demo.sh --real [TASKS]  real provider calls with the tasks of
#                                   agents/examples/tasks.jsonl (or TASKS);
#                                   needs OPENAI_API_KEY, ANTHROPIC_API_KEY
#                                   and TOGETHER_API_KEY
#
# The simulated run (10 to 30 s once built, by the machine's load):
#   1. the same simulated traffic served by always the strongest model and
#      by bursar under a daily budget: quality and cost side by side;
#   2. a tighter budget that binds: spend against the limit, the
#      per-request target, the shadow price mu, how the model shares move;
#   3. a cascade: a JSON Schema validator refuses a cheap model's answer
#      and the task is escalated to a stronger model (real HTTP calls to
#      the local mock provider);
#   4. a model outage: the circuit breaker opens, traffic moves to the
#      other models, and comes back when the model recovers;
#   5. the `bursar stats` table, every column explained.
# Each chapter starts its own bursard (state in a temporary directory, an
# ipc:// endpoint, so no port is needed) and stops it at the end.
# Progress and errors go to standard error, the story to standard output.
#
# Environment: BURSAR_BUILD_DIR (default ./build, built if needed),
# BURSAR_DEMO_DIR (keep every configuration, result, export and log
# there instead of in a temporary directory).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BURSAR_BUILD_DIR:-$here/build}
bin=$build/bin

usage() {
    echo "usage: scripts/demo.sh [--real [TASKS.jsonl]]"
}
mode=simulate
tasks=$here/agents/examples/tasks.jsonl
case ${1:-} in
--real)
    mode=real
    tasks=${2:-$tasks}
    ;;
"") ;;
-h | --help)
    sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
*)
    usage >&2
    exit 2
    ;;
esac

die() {
    echo "demo: $*" >&2
    exit 1
}
progress() {
    echo "demo: $*" >&2
}

# --real calls bursard's five built-in models: each needs its provider's
# key. Checked before anything is built or started.
check_keys() {
    local missing='' line var models
    for line in "OPENAI_API_KEY gpt-4o and gpt-4o-mini (OpenAI)" \
        "ANTHROPIC_API_KEY claude-sonnet and claude-haiku (Anthropic)" \
        "TOGETHER_API_KEY llama-70b (Together)"; do
        var=${line%% *}
        models=${line#* }
        if [[ -z ${!var:-} ]]; then
            if [[ -z $missing ]]; then
                echo "demo: --real calls the five models of bursard's" \
                    "built-in configuration, and these API keys are not" \
                    "set:" >&2
            fi
            printf '  %-18s needed by %s\n' "$var" "$models" >&2
            missing=${missing:-$var}
        fi
    done
    if [[ -n $missing ]]; then
        echo "Set them (export $missing=...) and run again, or" \
            "run scripts/demo.sh without --real: simulated models, no key" \
            "needed." >&2
        exit 2
    fi
    [[ -r $tasks ]] || die "cannot read the tasks file $tasks"
}
[[ $mode == real ]] && check_keys

programs=(bursard bursar bursar-agent bursar-mock-provider)
need_build=0
for p in "${programs[@]}"; do
    [[ -x $bin/$p ]] || need_build=1
done
if [[ $need_build -eq 1 ]] || ! command -v jq >/dev/null; then
    "$here/scripts/deps.sh"
fi
if [[ $need_build -eq 1 ]]; then
    progress "building bursar in $build (first run only) ..."
    cmake -S "$here" -B "$build" >/dev/null
    cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" \
        --target "${programs[@]}" >/dev/null
fi

# The state directories want a fast disk (tmpfs when there is one: LMDB
# syncs every commit), the sockets a short path; the files worth keeping
# (configurations, results, exports, logs) go to $work.
tmpbase=${TMPDIR:-/tmp}
[[ -z ${TMPDIR:-} && -d /dev/shm && -w /dev/shm ]] && tmpbase=/dev/shm
scratch=$(mktemp -d "$tmpbase/bursar-demo.XXXXXX")
sockdir=$scratch
if [[ ${#scratch} -gt 80 ]]; then
    sockdir=$(mktemp -d /tmp/bursar-demo-ipc.XXXXXX)
fi
if [[ -n ${BURSAR_DEMO_DIR:-} ]]; then
    mkdir -p "$BURSAR_DEMO_DIR"
    work=$(cd "$BURSAR_DEMO_DIR" && pwd)
else
    work=$scratch/files
    mkdir "$work"
fi
declare -A pids=()
cleanup() {
    local name
    for name in "${!pids[@]}"; do
        kill "${pids[$name]}" 2>/dev/null || true
        wait "${pids[$name]}" 2>/dev/null || true
    done
    rm -rf "$scratch" "$sockdir"
}
trap cleanup EXIT

# --- the controller -------------------------------------------------------

endpoint() {
    echo "ipc://$sockdir/$1.ipc"
}

# ctl_start NAME CONFIG [bursard option]...: a fresh bursard, ready.
ctl_start() {
    local name=$1 cfg=$2
    shift 2
    rm -rf "$scratch/state-$name"
    "$bin/bursard" --config "$cfg" --state-dir "$scratch/state-$name" \
        --listen "$(endpoint "$name")" --quiet "$@" \
        2>"$work/bursard-$name.log" &
    pids[$name]=$!
    for _ in $(seq 200); do
        if "$bin/bursar" --controller "$(endpoint "$name")" --timeout 200 \
            ping >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "${pids[$name]}" 2>/dev/null; then
            cat "$work/bursard-$name.log" >&2
            unset "pids[$name]"
            die "bursard ($name) did not start"
        fi
        sleep 0.05
    done
    die "bursard ($name) did not answer within 10 s"
}

ctl_stop() {
    kill "${pids[$1]}" 2>/dev/null || true
    wait "${pids[$1]}" 2>/dev/null || true
    unset "pids[$1]"
}

# bursar (the operator's command line) against controller NAME.
ctl() {
    local name=$1
    shift
    "$bin/bursar" --controller "$(endpoint "$name")" "$@"
}

# Midnight UTC today: the chapters with a budget run on a clock held there
# (bursard --test-clock=START), so that the whole day's budget lies ahead
# whatever the hour you run this.
midnight=$(($(date +%s) / 86400 * 86400))

# The pacer's expected traffic: budget.expected_requests (requests per
# window) where bursard knows it, else the older budget.prior_rate_per_s.
# (grep reads it all: with -q, bursard could die of SIGPIPE, and pipefail
# would take that for no match)
if "$bin/bursard" --config-reference |
    grep 'budget\.expected_requests' >/dev/null; then
    expect_key=expected_requests
else
    expect_key=prior_rate_per_s
fi

# ctl_config NAME POLICY LIMIT EXPECTED [jq filter]: bursard's built-in
# configuration (five models, four buckets) with this policy, a budget of
# LIMIT USD a day (0: none) for EXPECTED requests a day, a fixed seed;
# prints the file's path.
ctl_config() {
    local name=$1 policy=$2 limit=$3 expected=$4 extra=${5:-.}
    local budget
    if [[ $expect_key == expected_requests ]]; then
        budget="{limit_usd: $limit, window_s: 86400, expected_requests: $expected}"
    else
        budget="{limit_usd: $limit, window_s: 86400, prior_rate_per_s: ($expected / 86400)}"
    fi
    "$bin/bursard" --print-default-config |
        jq ".policy = {name: \"$policy\", seed: 7}
            | .budget = $budget
            | .store = {sync: \"nometasync\", map_size_mb: 256}
            | $extra" >"$work/$name.json"
    echo "$work/$name.json"
}

# agent NAME RUN [bursar-agent option]...: bursar-agent against controller
# NAME; results in $work/RUN.jsonl.
agent() {
    local name=$1 run=$2
    shift 2
    if ! "$bin/bursar-agent" --controller "$(endpoint "$name")" \
        --spool "$scratch/$run.spool" --quiet "$@" \
        >"$work/$run.jsonl" 2>"$work/agent-$run.log"; then
        cat "$work/agent-$run.log" >&2
        die "bursar-agent ($run) failed"
    fi
}

# --- figures from a run's results (one JSON object per task) --------------

# jq definitions the figures share: usd(D) formats a number of dollars
# with D decimals ($0.000625, never 6.25e-04), pct a fraction in percent.
# shellcheck disable=SC2016 # jq's variables, not the shell's
jqdefs='
    def usd($d): pow(10; $d) as $s | (. * $s | round) as $u
        | "$" + (($u / $s | floor) | tostring) + "."
          + (($s + ($u % $s)) | tostring | .[1:]);
    def pct: . * 100 | round | tostring + "%";'

# summary RUN: tasks, valid on the first answered try, valid in the end,
# escalations, cost, provider errors, tasks with an answer (tab-separated).
summary() {
    jq -rs '[length,
        (map(select(([.steps[] | select(.outcome != "provider_error")][0]
                     .outcome) == "valid")) | length),
        (map(select(.valid)) | length),
        (map(.escalations) | add),
        (map(.cost_usd) | add),
        ([.[].steps[] | select(.outcome == "provider_error")] | length),
        (map(select(.error == null)) | length)] | @tsv' "$work/$1.jsonl"
}

# usd X: dollars, with as many decimals as a small figure needs.
usd() {
    awk -v x="$1" 'BEGIN {
        if (x >= 0.01 || x == 0) printf "$%.4f", x
        else if (x >= 0.000001) printf "$%.6f", x
        else printf "$%.2e", x }'
}

# pct A B: A / B in percent.
pct() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", (b > 0 ? 100 * a / b : 0) }'
}

# ratio A B: A / B in whole percent.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", (b > 0 ? 100 * a / b : 0) }'
}

# shares RUN...: for each bucket and model, the share of each run's
# requests whose first decision chose the model (TSV: bucket, model, one
# share per run, in the order given).
shares() {
    local files=() r
    for r in "$@"; do
        files+=("$work/$r.jsonl")
    done
    jq -rn --arg files "$(printf '%s\n' "${files[@]}")" '
        ($files | rtrimstr("\n") | split("\n")) as $files
        | [inputs | {run: (input_filename as $f | $files | index($f)),
                     bucket, model: .steps[0].model}]
        | . as $all
        | (map(.bucket) | unique)[] as $b
        | ($all | map(select(.bucket == $b))) as $in
        | ($in | map(.model) | unique)[] as $m
        | [$b, $m] + [range($files | length) as $r
            | ($in | map(select(.run == $r))) as $run
            | ($run | map(select(.model == $m)) | length)
              / ([$run | length, 1] | max)]
        | @tsv' "${files[@]}"
}

# truth SCENARIO CONFIG: what the simulation knows and bursar does not:
# each model's price per call and true success rate in each bucket that
# allows it.
truth() {
    jq -rn --slurpfile s "$1" --slurpfile c "$2" "$jqdefs"'
        $s[0].models as $sm | $c[0] as $cfg
        | ($cfg.buckets | keys_unsorted) as $bs
        | (["model", "cost/call"] + $bs | @tsv),
          ($sm | to_entries[] | .key as $m | .value as $v
           | $cfg.models[$m] as $p
           | [$m, ((($v.tokens_in // 500) * $p.price_in_per_mtok
                   + ($v.tokens_out // 300) * $p.price_out_per_mtok) / 1e6
                  | usd(4))]
             + [$bs[] as $b
                | if ($cfg.buckets[$b].models | index($m)) == null then "-"
                  else ((($v.success_by_bucket // {})[$b] // $v.success // 0.5)
                        * 100 | round | tostring) + "%" end]
           | @tsv)' | table -14 9 11
}

# table WIDTH...: TSV in, aligned columns out, each column printed with
# printf's %WIDTHs (negative: left-aligned); the last width serves the
# columns beyond the list.
table() {
    awk -F'\t' -v widths="$*" '
        BEGIN { nw = split(widths, w, " ") }
        {
            line = " "
            for (i = 1; i <= NF; i++)
                line = line " " sprintf("%" w[i <= nw ? i : nw] "s", $i)
            sub(/ +$/, "", line)
            print line
        }'
}

# --- 1. the same traffic, served two ways ---------------------------------

traffic=$here/agents/scenarios/demo-traffic.json
limit1=4.00
limit2=1.60
expected=1000

chapter1() {
    progress "chapter 1: always the strongest model, then bursar ..."
    local cfg
    cfg=$(ctl_config strongest strongest 0 "$expected")
    ctl_start strongest "$cfg" --test-clock="$midnight"
    agent strongest strongest --concurrency 16 --simulate "$traffic"
    ctl_stop strongest
    cfg=$(ctl_config bursar ts-budget "$limit1" "$expected")
    ctl_start bursar "$cfg" --test-clock="$midnight"
    agent bursar bursar --concurrency 16 --simulate "$traffic"
    ctl bursar stats --json >"$work/bursar-stats.json"
    ctl_stop bursar

    local n fs vs es cs fb vb eb cb _
    read -r n fs vs es cs _ _ < <(summary strongest)
    read -r _ fb vb eb cb _ _ < <(summary bursar)
    cat <<TEXT
== 1. The same traffic, served two ways ==

$n simulated requests of four kinds ("buckets": code, extraction,
summarize, chat), from agents/scenarios/demo-traffic.json. Each model has
a true success rate per bucket, which the simulation knows and bursar
does not: it learns them from the answers it sees.

$(truth "$traffic" "$cfg")

Each answer is checked; a failed one is escalated: a new decision, another
model, up to twice. Served first by a controller that always picks the
strongest (most expensive) model of each bucket, then by bursar with a
budget of \$$limit1 for the day. The pacer expects about $expected requests a day
(budget.$expect_key in its configuration), and both controllers run
on a clock held at midnight UTC (bursard --test-clock=START), so that the
whole day's budget lies ahead whatever the hour you run this.

TEXT
    printf '  %-28s %22s %22s\n' "" "always the strongest" \
        "bursar, \$$limit1/day"
    printf '  %-28s %22s %22s\n' "valid on the first try" \
        "$(pct "$fs" "$n")" "$(pct "$fb" "$n")"
    printf '  %-28s %22s %22s\n' "valid after escalation" \
        "$(pct "$vs" "$n")" "$(pct "$vb" "$n")"
    printf '  %-28s %22s %22s\n' "escalations" "$es" "$eb"
    printf '  %-28s %22s %22s\n' "cost" "\$$(printf %.4f "$cs")" \
        "\$$(printf %.4f "$cb")"
    printf '  %-28s %22s %22s\n' "cost per request" \
        "\$$(printf %.6f "$(awk -v c="$cs" -v n="$n" 'BEGIN{print c/n}')")" \
        "\$$(printf %.6f "$(awk -v c="$cb" -v n="$n" 'BEGIN{print c/n}')")"
    echo
    echo "bursar: $(ratio "$fb" "$fs") of the strongest's first-try quality" \
        "($(ratio "$vb" "$vs") after escalation) for $(ratio "$cb" "$cs") of" \
        "its cost."
    echo
}

# --- 2. a budget that binds ------------------------------------------------

# price_line STATS BUCKET STRONG CHEAP: the decision rule at the price
# STATS shows, for two models of BUCKET (TSV: mu, target, then model, mean,
# cost, score for each).
price_line() {
    jq -r --arg b "$2" --arg strong "$3" --arg cheap "$4" '
        .policy.mu as $mu | .budget.target_usd as $t
        | (.buckets[] | select(.name == $b) | .arms) as $arms
        | [$arms[] | select(.model == $strong or .model == $cheap)]
        | [$mu, $t] + (sort_by(- .cost_mean_usd) | map([.model, .mean, .cost_mean_usd,
               (if $t > 0 then .mean - $mu * .cost_mean_usd / $t
                else 0 end)]) | add)
        | @tsv' "$1"
}

# explain_mu STATS: the decision rule in one sentence, with the price and
# a code request's strong and cheap model as STATS show them.
explain_mu() {
    local m t bm bq bc bs cm cq cc cs
    read -r m t bm bq bc bs cm cq cc cs < <(price_line "$1" code gpt-4o \
        gpt-4o-mini)
    if ! awk -v t="$t" 'BEGIN { exit !(t > 0) }'; then
        cat <<TEXT
The budget is used up (target \$0): until the window ends every request
goes to its bucket's cheapest model, flagged over_budget in the decision
log (budget.when_exhausted, where bursard has it, can refuse them instead).
TEXT
        return
    fi
    cat <<TEXT
mu = $(printf %.2f "$m"): bursar now counts every target's worth of dollars
($(usd "$t")) as $(printf %.2f "$m") of a success, so it picks a cheaper model unless
the stronger one is clearly better. Each request goes to the model with the
best score = chance of success - mu x cost / target; for a code request:
  $(printf '%-12s %.2f - %.2f x %s / %s = %.2f' "$bm" "$bq" "$m" "$(usd "$bc")" "$(usd "$t")" "$bs")
  $(printf '%-12s %.2f - %.2f x %s / %s = %.2f' "$cm" "$cq" "$m" "$(usd "$cc")" "$(usd "$t")" "$cs")
(the chances are drawn from what bursar has learnt, so a model that is not
the best on average still gets a request now and then). When spending
runs ahead of the target, mu rises; when it lags, mu falls back to 0.
TEXT
}

chapter2() {
    progress "chapter 2: bursar on a tighter budget ..."
    local cfg
    cfg=$(ctl_config tight ts-budget "$limit2" "$expected")
    ctl_start tight "$cfg" --test-clock="$midnight"
    agent tight tight --concurrency 16 --simulate "$traffic"
    ctl tight stats --json >"$work/tight-stats.json"
    ctl tight export >"$work/tight-export.jsonl"

    local limit spent reserved target mu mu1 target1 over
    read -r limit spent reserved target mu < <(jq -r '[.budget.limit_usd,
        .budget.spent_usd, .budget.reserved_usd, .budget.target_usd,
        .policy.mu] | @tsv' "$work/tight-stats.json")
    read -r mu1 target1 < <(jq -r '[.policy.mu, .budget.target_usd] | @tsv' \
        "$work/bursar-stats.json")
    over=$(jq -s 'map(select(.over_budget)) | length' \
        "$work/tight-export.jsonl")
    cat <<TEXT
== 2. A budget that binds ==

The same traffic again, the budget cut to \$$limit2 for the day:
  "budget": $(jq -c .budget "$cfg")

  spent         \$$(printf %.4f "$spent") of the \$$(printf %.2f "$limit") limit ($(pct "$spent" "$limit")), \$$(printf %.4f "$reserved") reserved for answers not yet reported
  over budget   $over decisions (made when nothing else was affordable)
  target        $(usd "$target") per request: what is left of the budget, spread over
                the requests still expected today (with \$$limit1: $(usd "$target1"))
  mu            $(printf %.2f "$mu"), the shadow price of money (with \$$limit1: $(printf %.2f "$mu1"))

$(explain_mu "$work/tight-stats.json")

Which model got each bucket's requests first, as the budget tightens:

TEXT
    {
        printf 'bucket\tmodel\tstrongest\tbursar $%s\tbursar $%s\n' \
            "$limit1" "$limit2"
        shares strongest bursar tight | awk -F'\t' -v OFS='\t' '{
            b = ($1 == last) ? "" : $1; last = $1
            printf "%s\t%s", b, $2
            for (i = 3; i <= NF; i++) printf "\t%.0f%%", 100 * $i
            printf "\n" }'
    } | table -11 -14 10 14
    echo
}

# --- 3. a cascade with a validator ----------------------------------------

cascade=$here/agents/scenarios/demo-cascade.json

# Chapter 3's tasks (one per person of demo-cascade.json, each with its
# validator) and the mock's script: gpt-4o-mini answers in the order of the
# tasks, wrongly where the file says so; gpt-4o, asked only after a wrong
# answer, answers those rightly. The mock requires a key.
cascade_files() {
    jq -c '.schema as $schema | .people | to_entries[]
        | {id: "extract-\(.key + 1)", bucket: "extraction",
           prompt: ("Name and year of birth of \(.value.name) as JSON "
                    + "{\"name\": string, \"born\": integer}."),
           validate: {type: "json_schema", schema: $schema}}' \
        "$cascade" >"$work/cascade-tasks.jsonl"
    jq 'def right: {name, born} | tojson;
        def answers: map({content: ., usage: {in: 150, out: 25}});
        {require_key: "demo-key",
         models: {"gpt-4o-mini": {sequence: (.people
                                              | map(.mini // right)
                                              | answers)},
                  "gpt-4o": {sequence: (.people | map(select(.mini) | right)
                                        | answers)}}}' \
        "$cascade" >"$work/cascade-mock.json"
}

cascade_models() {
    local port=$1
    "$bin/bursard" --print-default-config | jq --arg url \
        "http://127.0.0.1:$port/v1" '{models: (.models
            | {"gpt-4o-mini", "gpt-4o"}
            | map_values({provider, price_in_per_mtok, price_out_per_mtok,
                          base_url: $url,
                          api_key_env: "BURSAR_DEMO_MOCK_KEY"}))}' \
        >"$work/cascade-models.json"
}

mock_start() {
    local port
    "$bin/bursar-mock-provider" --script "$1" >"$work/mock.port" \
        2>"$work/mock.log" &
    pids[mock]=$!
    for _ in $(seq 100); do
        port=$(head -1 "$work/mock.port" 2>/dev/null || true)
        [[ -n $port ]] && return 0
        kill -0 "${pids[mock]}" 2>/dev/null || break
        sleep 0.05
    done
    cat "$work/mock.log" >&2
    die "bursar-mock-provider did not start"
}

chapter3() {
    progress "chapter 3: a cascade, against the mock provider ..."
    cascade_files
    mock_start "$work/cascade-mock.json"
    cascade_models "$(head -1 "$work/mock.port")"
    local cfg
    cfg=$(ctl_config cascade cheapest 0 "$expected" '
        .models |= {"gpt-4o-mini", "gpt-4o"}
        | .buckets = {extraction: (.buckets.extraction
                                   | .models = ["gpt-4o-mini", "gpt-4o"])}')
    ctl_start cascade "$cfg" --test-clock="$midnight"
    BURSAR_DEMO_MOCK_KEY=demo-key agent cascade cascade --concurrency 1 \
        --models "$work/cascade-models.json" "$work/cascade-tasks.jsonl"
    ctl cascade export >"$work/cascade-export.jsonl"
    ctl_stop cascade
    ctl_stop mock

    local n valid cost
    read -r n _ valid _ cost _ _ < <(summary cascade)
    local one
    one=$(jq -c 'select(.escalations > 0)' "$work/cascade.jsonl" | head -1)
    [[ -n $one ]] || die "chapter 3: no task was escalated"
    cat <<TEXT
== 3. A cascade with a validator ==

Real HTTP calls this time, to a local mock provider (bursar-mock-provider)
playing gpt-4o-mini and gpt-4o (agents/scenarios/demo-cascade.json says
what each answers). $n extraction requests each ask for
{"name": string, "born": integer}, and carry a JSON Schema validator that
bursar-agent applies to every answer:
  $(head -1 "$work/cascade-tasks.jsonl" | jq -c .validate)
gpt-4o-mini gets some of them wrong; gpt-4o gets them right. To make the
cascade easy to follow, this controller tries the cheapest model first
(policy "cheapest"); under ts-budget the first pick is bursar's own, and
escalations work the same way.

Request $(jq -r .id <<<"$one"), step by step (bursar-agent's result line):
TEXT
    jq -r "$jqdefs"'.steps | to_entries[] | .key as $i | .value
        | [($i + 1 | tostring) + ".", .model, .outcome,
           (if .outcome == "valid" then "" else .why // .error end),
           (.cost_usd | usd(6))] | @tsv' \
        <<<"$one" | table -2 -12 -8 -44 10
    jq -r '"  answer: " + .output' <<<"$one"
    echo
    echo "The same request in the controller's decision log (bursar export):"
    jq -r '.steps[].decision_id' <<<"$one" | sort -u |
        jq -R . | jq -s . >"$work/cascade-ids.json"
    jq -r --slurpfile ids "$work/cascade-ids.json" "$jqdefs"'
        select(.decision_id as $d | $ids[0] | index($d))
        | ["decision " + .seq,
           "step " + (.step | tostring),
           (if .escalates_seq then "escalates " + .escalates_seq
            else "first try" end),
           .model, "reward " + (.reward | tostring),
           (.cost_usd | usd(6))] | @tsv' \
        "$work/cascade-export.jsonl" | table -25 -7 -28 -12 -9 10
    local answered_big big_cost
    answered_big=$(jq -s 'map(select(.model == "gpt-4o")) | length' \
        "$work/cascade.jsonl")
    big_cost=$(jq -s --slurpfile c "$cfg" '
        $c[0].models["gpt-4o"] as $p
        | length * (150 * $p.price_in_per_mtok + 25 * $p.price_out_per_mtok)
          / 1e6' "$work/cascade.jsonl")
    cat <<TEXT

All $n requests: $((n - answered_big)) answered by gpt-4o-mini, $answered_big escalated to gpt-4o after the
validator refused gpt-4o-mini's answer; $valid of $n valid in the end, for
\$$(printf %.6f "$cost") against \$$(printf %.6f "$big_cost") had gpt-4o answered every request.

TEXT
}

# --- 4. a model outage -----------------------------------------------------

outage=$here/agents/scenarios/demo-outage.json
cooldown=1

# health NAME BUCKET MODEL: the model's breaker state in controller NAME.
health() {
    ctl "$1" stats --json | jq -r --arg b "$2" --arg m "$3" '
        .buckets[] | select(.name == $b) | .arms[] | select(.model == $m)
        | .health'
}

# stretch RUN LABEL BREAKER: one row of chapter 4's table (TSV).
stretch() {
    local valid perr answered
    read -r _ _ valid _ _ perr answered < <(summary "$1")
    jq -rs --arg name "$2" --arg breaker "$3" --argjson perr "$perr" \
        --argjson answered "$answered" --argjson valid "$valid" "$jqdefs"'
        def share($m): (map(select(.steps[0].model == $m)) | length)
                       / length | pct;
        [$name, length, share("claude-sonnet"), share("gpt-4o"), $perr,
         "\($answered)/\(length)", ($valid / length | pct), $breaker]
        | @tsv' \
        "$work/$1.jsonl"
}

chapter4() {
    progress "chapter 4: a model outage ($cooldown s of cooldown included) ..."
    local cfg
    cfg=$(ctl_config outage ts-budget 0 "$expected" "
        .health = {failures: 3, cooldown_s: $cooldown,
                   max_cooldown_s: $cooldown, min_clients: 1}")
    jq '.seed += 1 | .tasks.count = 150
        | .models["claude-sonnet"].outages = [{from: 0, to: 150}]' \
        "$outage" >"$work/outage-during.json"
    jq '.seed += 2' "$outage" >"$work/outage-after.json"
    ctl_start outage "$cfg"
    local h1 h2 h3
    agent outage outage-before --concurrency 8 --simulate "$outage"
    h1=$(health outage code claude-sonnet)
    agent outage outage-during --concurrency 8 \
        --simulate "$work/outage-during.json"
    h2=$(health outage code claude-sonnet)
    sleep "$cooldown.2"
    agent outage outage-after --concurrency 8 \
        --simulate "$work/outage-after.json"
    h3=$(health outage code claude-sonnet)
    ctl_stop outage

    cat <<TEXT
== 4. A model outage ==

Code requests only (agents/scenarios/demo-outage.json), no budget:
claude-sonnet is the best model there (95% against gpt-4o's 85%), so bursar
soon sends it most of the traffic. Then its provider fails every call
(HTTP 503) for 150 requests, and then it is back. This controller opens a
model's circuit breaker after 3 provider errors in a row and lets one
request try it again after $cooldown s (health.cooldown_s; 30 s by default).

TEXT
    {
        printf 'stretch\trequests\tto claude-sonnet\tto gpt-4o\tprovider errors\tanswered\tvalid\tbreaker\n'
        stretch outage-before "before" "$h1"
        stretch outage-during "outage" "$h2"
        stretch outage-after "after" "$h3"
    } | table -8 9 17 10 16 9 6 -9
    cat <<TEXT
(to claude-sonnet, to gpt-4o: the stretch's requests whose first decision
chose it; breaker: claude-sonnet's circuit breaker at the stretch's end)

During the outage each failed call was retried at once on the decision's
fallback (the next model it offers), so no request went unanswered. After
the third error in a row the breaker opened ("$h2"): claude-sonnet was no
longer chosen or offered, and the code requests went to the other models.
$cooldown s later one request probed claude-sonnet, got an answer, and the
breaker closed ("$h3"): the traffic came back. Provider errors are not
evidence about quality: they never touch what bursar has learnt.

TEXT
}

# --- 5. the stats table -----------------------------------------------------

legend() {
    cat <<'TEXT'
Reading it, column by column:
  bucket B: N pulls   a kind of request, and the decisions made for it
                      (escalations included)
  model               a model allowed in the bucket (an "arm")
  mean                what bursar believes of its success rate in this
                      bucket: valid answers over tries, starting from a
                      prior of one success and one failure, old evidence
                      fading with the bucket's half-life (7 days here)
  95% interval        where the true success rate lies with 95%
                      probability; narrow when well known, wide when the
                      model has had few tries
  pulls               how many decisions chose it
  share               its part of the bucket's pulls
  prob                the chance that the next request of the bucket goes
                      to it, at today's mu and target
  cost/req            its mean cost per request, learnt from the reported
                      costs (before any: its price for the bucket's
                      expected tokens)
  health              its circuit breaker: ok; cooldown (not chosen after
                      provider errors); half_open or probing (one request
                      tries it again)
  policy P, mu M,     the routing rule; mu, the shadow price of money:
  N decisions         how many successes a target's worth of dollars
                      counts for (0 while the budget does not bind); the
                      decisions made in all
  budget: ...         spent today, reserved for answers not yet reported,
                      the limit and its window (UTC), what remains, and the
                      target: what each request may spend on average for
                      the rest of the window
TEXT
}

chapter5() {
    cat <<TEXT
== 5. What the controller holds: bursar stats ==

The operator's view of chapter 2's controller (the \$$limit2 budget), as
\`bursar stats\` prints it:

TEXT
    ctl tight stats
    echo
    legend
    ctl_stop tight
}

# --- the real providers ---------------------------------------------------

real_run() {
    local cfg
    cfg=$work/real.json
    "$bin/bursard" --print-default-config >"$cfg"
    ctl_start real "$cfg"
    # Where each model's calls and keys go is the agent's own business
    # (docs/agents.md): a model it does not describe goes to its
    # provider's public API with OPENAI_API_KEY or ANTHROPIC_API_KEY, so
    # only llama-70b, served by Together, needs an entry: the table in
    # agents/examples/real-models.json (docs/agents.md "Run it" uses it).
    cat <<TEXT
bursar: budget-aware routing of LLM requests, with the real providers.

bursard runs on its built-in configuration (five models, four buckets, a
\$50/day budget); bursar-agent sends it the tasks of $tasks, calls the
model it chooses for each, checks the answer and reports back.

TEXT
    progress "calling the real providers ..."
    if ! "$bin/bursar-agent" --controller "$(endpoint real)" \
        --spool "$scratch/real.spool" --models "$here/agents/examples/real-models.json" \
        --quiet --report "$tasks" >"$work/real.jsonl" \
        2>"$work/agent-real.log"; then
        cat "$work/agent-real.log" >&2
        die "bursar-agent failed"
    fi
    cat "$work/agent-real.log"
    echo
    ctl real stats
    echo
    legend
    ctl_stop real
}

# --- the story ----------------------------------------------------------------

t0=$SECONDS
if [[ $mode == real ]]; then
    real_run
else
    cat <<TEXT
bursar: budget-aware routing of LLM requests.

A controller (bursard) keeps, for each kind of request (a "bucket"), what
it has learnt about each model: how often its answers pass, what it costs.
Workers (bursar-agent) ask it which model to use, call that model, check
the answer and report back. Under a budget, bursar spends where money buys
quality and saves where a cheap model is nearly as good.

Here the providers are simulated (chapters 1, 2, 4) or played by a local
mock (chapter 3): nothing is called over the network, no API key is needed.

TEXT
    chapter1
    chapter2
    chapter3
    chapter4
    chapter5
fi
progress "done in $((SECONDS - t0)) s${BURSAR_DEMO_DIR:+; files in $work}"
