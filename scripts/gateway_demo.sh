#!/usr/bin/env bash
# scripts/gateway_demo.sh - bursar-gateway in one command, no API key.
#
#   scripts/gateway_demo.sh           runs the examples of docs/gateway.md
#   scripts/gateway_demo.sh --serve   then keeps serving until Ctrl-C, for
#                                     your own client (it prints the base
#                                     URL and the key to use)
#
# Starts, in a temporary directory: bursar-mock-provider (a local stand-in
# that speaks the OpenAI and Anthropic wire formats, scripted by
# agents/examples/gateway-mock.json), bursard on its built-in
# configuration, and bursar-gateway on agents/examples/gateway.json with
# every model's base_url pointed at the mock and a new application key.
# Then: a completion, a stream and a correction with curl, and the same
# with the official OpenAI Node SDK when it is installed (the gateway's
# tests install it: build/tests/gateway/node/node_modules).
#
# Environment: BURSAR_BUILD_DIR (default ./build, built if needed),
# BURSAR_DEMO_PORT (the controller's port, default 7878),
# BURSAR_GATEWAY_PORT (default 8080).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BURSAR_BUILD_DIR:-$here/build}
cport=${BURSAR_DEMO_PORT:-7878}
gport=${BURSAR_GATEWAY_PORT:-8080}
serve=0
case ${1:-} in
--serve) serve=1 ;;
"") ;;
-h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
*) echo "usage: scripts/gateway_demo.sh [--serve]" >&2; exit 2 ;;
esac

if [[ ! -x $build/bin/bursard || ! -x $build/bin/bursar-gateway ||
    ! -x $build/bin/bursar-mock-provider ]]; then
    "$here/scripts/deps.sh"
    echo "Building bursar in $build (first run only) ..." >&2
    cmake -S "$here" -B "$build" >/dev/null
    cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" \
        --target bursard bursar bursar-gateway bursar-mock-provider >/dev/null
fi
command -v jq >/dev/null || "$here/scripts/deps.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bursar-gateway-demo.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# The first line a program prints (its port), or fail with its log.
first_line() {
    local out=$1 log=$2 pid=$3
    for _ in $(seq 50); do
        [[ -s $out ]] && { head -1 "$out"; return; }
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "gateway_demo: did not start:" >&2
    cat "$log" >&2
    exit 1
}

bin=$build/bin
"$bin/bursar-mock-provider" --script "$here/agents/examples/gateway-mock.json" \
    >"$tmp/mock.port" 2>"$tmp/mock.log" &
pids+=($!)
mport=$(first_line "$tmp/mock.port" "$tmp/mock.log" "$!")
"$bin/bursard" --state-dir "$tmp/state" --listen "tcp://127.0.0.1:$cport" \
    --quiet 2>"$tmp/bursard.log" &
pids+=($!)
sleep 0.3
if ! kill -0 "$!" 2>/dev/null; then
    echo "gateway_demo: bursard did not start:" >&2
    cat "$tmp/bursard.log" >&2
    echo "(another process on port $cport? set BURSAR_DEMO_PORT)" >&2
    exit 1
fi

"$bin/bursar-gateway" --new-key demo >"$tmp/key"
key=$(sed -n 1p "$tmp/key")
jq --argjson k "$(sed -n 2p "$tmp/key")" \
    --arg url "http://127.0.0.1:$mport/v1" \
    --arg ctl "tcp://127.0.0.1:$cport" --arg spool "$tmp/gateway.spool" \
    '.keys = [$k] | .controller = $ctl | .spool = $spool
     | .models |= map_values(.base_url = $url | del(.api_key_env))' \
    "$here/agents/examples/gateway.json" >"$tmp/gateway.json"
"$bin/bursar-gateway" --config "$tmp/gateway.json" \
    --listen "127.0.0.1:$gport" >"$tmp/gateway.port" 2>"$tmp/gateway.log" &
pids+=($!)
if ! first_line "$tmp/gateway.port" "$tmp/gateway.log" "$!" >/dev/null; then
    echo "(another process on port $gport? set BURSAR_GATEWAY_PORT)" >&2
    exit 1
fi
base=http://127.0.0.1:$gport/v1

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
say "curl $base/chat/completions  (model bursar/auto)"
curl -sS -D "$tmp/headers" "$base/chat/completions" \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d '{"model":"bursar/auto","messages":[{"role":"user","content":"Extract the name as JSON: Ada was born in 1815."}]}'
echo
grep -i '^x-bursar' "$tmp/headers"
id=$(awk 'tolower($1)=="x-bursar-decision-id:" {print $2}' "$tmp/headers" | tr -d '\r')

say "curl ... \"stream\": true  (model bursar/chat)"
curl -sS -N "$base/chat/completions" -H "Authorization: Bearer $key" \
    -d '{"model":"bursar/chat","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hello as JSON."}]}'

say "curl $base/feedback  (the user corrected the first answer)"
curl -sS "$base/feedback" -H "Authorization: Bearer $key" \
    -d "{\"decision_id\":\"$id\",\"correction\":true}"
echo

sdk=$build/tests/gateway/node
if command -v node >/dev/null && [[ -d $sdk/node_modules/openai ]]; then
    say "node agents/examples/gateway_sdk.mjs  (the official OpenAI SDK)"
    cp "$here/agents/examples/gateway_sdk.mjs" "$sdk/gateway_sdk.mjs"
    OPENAI_BASE_URL=$base OPENAI_API_KEY=$key node "$sdk/gateway_sdk.mjs"
else
    echo
    echo "(the OpenAI Node SDK is not installed in $sdk: scripts/test.sh"
    echo " installs it; then run this script again for the SDK example)"
fi

say "bursar export | the controller's log of these requests"
"$bin/bursar" --controller "tcp://127.0.0.1:$cport" export | tail -3 |
    jq -c '{bucket, model, tenant, step, reward, cost_usd}'

if [[ $serve -eq 1 ]]; then
    echo
    echo "Serving until Ctrl-C:"
    echo "  export OPENAI_BASE_URL=$base"
    echo "  export OPENAI_API_KEY=$key"
    wait
fi
