#!/usr/bin/env bash
# scripts/demo.sh - bursar in one command.
#
#   scripts/demo.sh                 simulated models, no API key needed
#   scripts/demo.sh --real [TASKS]  real provider calls (keys in the
#                                   environment: OPENAI_API_KEY,
#                                   ANTHROPIC_API_KEY, TOGETHER_API_KEY)
#
# Starts the controller bursard on its built-in configuration (five
# well-known models, four buckets, a 50 USD/day budget) with its state in
# a temporary directory, runs the worker bursar-agent through it, prints a
# summary of what the routing learned, and stops the daemon.
#
# Environment: BURSAR_BUILD_DIR (default ./build, built if needed),
# BURSAR_DEMO_PORT (default 7878), BURSAR_DEMO_OUT (keep the results
# JSONL there).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BURSAR_BUILD_DIR:-$here/build}
port=${BURSAR_DEMO_PORT:-7878}
endpoint=tcp://127.0.0.1:$port
mode=simulate
scenario=$here/agents/scenarios/demo.json
tasks=$here/agents/examples/tasks.jsonl
if [[ ${1:-} == --real ]]; then
    mode=real
    tasks=${2:-$tasks}
elif [[ -n ${1:-} ]]; then
    scenario=$1
fi

if [[ ! -x $build/bin/bursard || ! -x $build/bin/bursar-agent ||
    ! -x $build/bin/bursar ]]; then
    "$here/scripts/deps.sh"
    echo "Building bursar in $build (first run only) ..." >&2
    cmake -S "$here" -B "$build" >/dev/null
    cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" \
        --target bursard bursar bursar-agent >/dev/null
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bursar-demo.XXXXXX")
pid=
cleanup() {
    if [[ -n $pid ]]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

"$build/bin/bursard" --state-dir "$tmp/state" --listen "$endpoint" \
    --quiet 2>"$tmp/bursard.log" &
pid=$!
sleep 0.3
if ! kill -0 "$pid" 2>/dev/null; then
    echo "bursard did not start:" >&2
    cat "$tmp/bursard.log" >&2
    echo "(another process on port $port? set BURSAR_DEMO_PORT)" >&2
    pid=
    exit 1
fi

cat <<TEXT
bursar: budget-aware routing of LLM requests.

The controller (bursard, now listening on $endpoint) keeps, for each kind
of request (a "bucket": code, extraction, summarize, chat), a Thompson
sampling bandit over the models allowed there, under a spending budget.
Workers (bursar-agent) ask it which model to use, call that model,
check the answer and report back: valid or not, what it cost, how long
it took. The controller learns from every report.

TEXT
if [[ $mode == simulate ]]; then
    cat <<TEXT
This run replaces the real providers by a simulation ($(basename "$scenario")):
each model has a true success rate per bucket, a latency and a token
count; claude-sonnet has an outage for part of the run. Nothing is
called over the network and no API key is needed.

TEXT
    args=(--simulate "$scenario")
else
    echo "This run calls the real providers with the tasks in $tasks."
    echo
    # Where each model's calls and keys go is the agent's own business
    # (docs/agents.md): a model it does not describe goes to its
    # provider's public API with OPENAI_API_KEY or ANTHROPIC_API_KEY, so
    # only llama-70b, served by Together, needs an entry.
    cat >"$tmp/models.json" <<'JSON'
{"models":{"llama-70b":{"provider":"openai",
  "model":"meta-llama/Llama-3.3-70B-Instruct-Turbo",
  "base_url":"https://api.together.xyz/v1","api_key_env":"TOGETHER_API_KEY",
  "price_in_per_mtok":0.88,"price_out_per_mtok":0.88}}}
JSON
    args=(--models "$tmp/models.json" "$tasks")
fi

out=${BURSAR_DEMO_OUT:-$tmp/results.jsonl}
"$build/bin/bursar-agent" --controller "$endpoint" --spool "$tmp/spool" \
    --report "${args[@]}" >"$out"

if [[ -x $build/bin/bursar ]]; then
    echo
    echo "What the controller holds now (bursar stats):"
    "$build/bin/bursar" --controller "$endpoint" stats || true
fi
if [[ -n ${BURSAR_DEMO_OUT:-} ]]; then
    echo
    echo "One result per task (JSON lines) is in $out."
fi
