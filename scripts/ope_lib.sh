# ope_lib.sh - sourced by scripts/ope_check.sh and scripts/ope_cascade.sh:
# one logged run of the real bursard and bursar-agent on the scenario the
# two share (2 buckets x 3 models, known success rates and fixed costs).
#
# ope_run_seed NAME BIN DIR SEED TASKS [AGENT OPTION...]
#   writes DIR/bursar.json and DIR/scenario.json, starts bursard (plain
#   Thompson sampling, exploration floor 0.1, policy seed SEED) on a fresh
#   state directory, runs `bursar-agent --simulate` with the extra agent
#   options, exports the decision log to DIR/log.jsonl and stops bursard.
#   The caller's cleanup kills $dpid if the run is interrupted.
ope_run_seed() {
    name=$1 bin=$2 d=$3 seed=$4 tasks=$5
    shift 5
    mkdir -p "$d"
    sock=ipc://$d/ctl.sock
    cat > "$d/bursar.json" <<CFG
{"listen":["$sock"],
 "models":{"big":{"provider":"openai","price_in_per_mtok":5,"price_out_per_mtok":15},
           "mid":{"provider":"openai","price_in_per_mtok":1,"price_out_per_mtok":3},
           "small":{"provider":"openai","price_in_per_mtok":0.2,"price_out_per_mtok":0.6}},
 "buckets":{"code":{"models":["big","mid","small"]},
            "chat":{"models":["big","mid","small"]}},
 "explore_floor":0.1,
 "policy":{"name":"ts","seed":$seed}}
CFG
    cat > "$d/scenario.json" <<SCN
{"seed": $((1000 + seed)), "tasks": {"count": $tasks, "buckets": {"code": 1, "chat": 1}},
 "models": {
  "big":   {"success": 0.90, "success_by_bucket": {"chat": 0.85}, "cost_usd": 0.0100},
  "mid":   {"success": 0.70, "success_by_bucket": {"chat": 0.80}, "cost_usd": 0.0020},
  "small": {"success": 0.40, "success_by_bucket": {"chat": 0.70}, "cost_usd": 0.0004}}}
SCN
    "$bin/bursard" --config "$d/bursar.json" --state-dir "$d/state" --quiet \
        2> "$d/bursard.log" &
    dpid=$!
    i=0
    until "$bin/bursar" --controller "$sock" --timeout 200 ping >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -lt 50 ] || { echo "$name: bursard did not start" >&2; exit 1; }
        sleep 0.1
    done
    "$bin/bursar-agent" --controller "$sock" --simulate "$d/scenario.json" \
        --spool "$d/spool" "$@" > "$d/results.jsonl" 2> "$d/agent.log"
    "$bin/bursar" --controller "$sock" export > "$d/log.jsonl"
    kill "$dpid"
    wait "$dpid" 2>/dev/null || true
    dpid=
}
