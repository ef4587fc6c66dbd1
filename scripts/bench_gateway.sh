#!/usr/bin/env bash
# scripts/bench_gateway.sh - issue 11's gateway benchmark, in one run on one
# mock provider: the time bursar-gateway adds over calling the mock
# directly, beside the same for Portkey's open-source gateway
# (@portkey-ai/gateway, pinned in bench/portkey) in front of the same mock.
#
#   scripts/bench_gateway.sh [--rounds N] [--duration S] [--warmup S]
#                            [--clients "1 64"] [--modes "plain stream"]
#                            [--targets "direct bursar portkey"] [--keep DIR]
#                            [--ctl-state DIR]
#
# Builds Release in build-bench (BURSAR_BENCH_BUILD_DIR), starts
# bursar-mock-provider (answers at once: no latency of its own), bursard
# (one bucket "general" whose models are served by the mock),
# bursar-gateway (with an application key) and Portkey (node, --headless),
# checks that a request through each target reaches the mock (its
# GET /stats), warms each up, then measures with bench_http
# (bench/bench_http.c: our own load generator; its header says why not
# wrk): for each of --clients x --modes, each target in turn, the turn's
# order rotating every round so that load changes weigh on all alike;
# every figure is the median over the rounds. A target's RSS is sampled
# (VmRSS) in the middle of each of its runs; the peaks (VmHWM) are printed
# at the end.
#
# Prints a Markdown table: p50/p99 of the complete response and of the
# first body byte (for streams: the first SSE event), the time each
# gateway adds over direct (p50 and p99 of the target minus those of
# direct), requests per second, errors, RSS; then bursar's added p50 over
# Portkey's (the aim: at most 1/5) and bursar's requests/s at the most
# clients (the aim: at least 5,000).
#
# bursard keeps its state on disk with its default durability (a commit
# fsyncs) as deployed; --ctl-state DIR puts it elsewhere (/dev/shm: what
# the gateway adds without the controller's fsyncs). --keep DIR keeps the
# run's files (configurations, logs, every run's JSON line).
#
# A missing build/bin/bursar-gateway (or node, or a mock that does not
# stream) skips those rows, saying so. Exit 1 when a target fails its
# check or a run had errors.
#
# Environment: BURSAR_BENCH_BUILD_DIR (default build-bench),
# BURSAR_BENCH_GATEWAY (a bursar-gateway to run instead of the build's),
# BURSAR_BENCH_PORTKEY_PORT (default: the first free port from 18787).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BURSAR_BENCH_BUILD_DIR:-$here/build-bench}
rounds=3 duration=5 warmup=1 clients="1 64" modes="plain stream"
targets="direct bursar portkey" keep='' ctl_state=
while [[ $# -gt 0 ]]; do
    case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --targets) targets=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    --ctl-state) ctl_state=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_gateway.sh: unknown option $1 (--help)" >&2; exit 2 ;;
    esac
done
command -v jq >/dev/null || { echo "bench_gateway.sh: jq is needed (scripts/deps.sh)" >&2; exit 2; }

say() { echo "bench_gateway: $*" >&2; }

# ------------------------------------------------------------------ build
say "building Release in $build"
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
make -C "$build" -j2 --no-print-directory bursar-mock-provider bursard bursar \
    bench_http >/dev/null
bin=$build/bin
gateway_bin=${BURSAR_BENCH_GATEWAY:-$bin/bursar-gateway}
have_gateway=0
if [[ -n ${BURSAR_BENCH_GATEWAY:-} ]]; then
    [[ -x $gateway_bin ]] && have_gateway=1
elif make -C "$build" --no-print-directory help | grep ' bursar-gateway$' >/dev/null; then
    if make -C "$build" -j2 --no-print-directory bursar-gateway >/dev/null 2>&1; then
        have_gateway=1
    else
        say "bursar-gateway does not build (make -C $build bursar-gateway says why)"
    fi
fi

portkey_dir=$here/bench/portkey
portkey_js=$portkey_dir/node_modules/@portkey-ai/gateway/build/start-server.js
have_portkey=0
if command -v node >/dev/null && command -v npm >/dev/null; then
    if [[ ! -f $portkey_js ]]; then
        # --ignore-scripts: its postinstall runs patch-package, a tool of its
        # own repository that the package does not bring (npm 10 would fail)
        say "installing Portkey's gateway (npm ci in bench/portkey)"
        (cd "$portkey_dir" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null)
    fi
    [[ -f $portkey_js ]] && have_portkey=1
fi
portkey_version=$(jq -r .version \
    "$portkey_dir/node_modules/@portkey-ai/gateway/package.json" 2>/dev/null || echo "?")

# -------------------------------------------------------------- processes
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bursar-bench-gw.XXXXXX")
cleanup_state=''
pids=()
# shellcheck disable=SC2317 # run by the trap
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [[ -n $keep ]]; then
        mkdir -p "$keep" && cp -r "$tmp"/. "$keep"/
    fi
    rm -rf "$tmp" ${cleanup_state:+"$cleanup_state"}
}
trap cleanup EXIT

# wait_line FILE WHAT PID: the first line of FILE once written, else fail.
wait_line() {
    for _ in $(seq 100); do
        if [[ -s $1 ]]; then
            head -1 "$1"
            return
        fi
        kill -0 "$3" 2>/dev/null || break
        sleep 0.05
    done
    say "$2 did not start; its log:"
    cat "$tmp/$2.log" >&2
    exit 1
}

# http_get PORT PATH: the body of a GET (bash's /dev/tcp; no curl needed).
http_get() {
    exec 9<>"/dev/tcp/127.0.0.1/$1"
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&9
    sed '1,/^\r$/d' <&9
    exec 9<&-
}

free_port() {
    local p=$1
    while (exec 9<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do
        p=$((p + 1))
    done
    echo "$p"
}

key=sk-bench-mock
content="The quick brown fox jumps over the lazy dog, twice over."
cat >"$tmp/mock.json" <<JSON
{"require_key":"$key",
 "default":{"content":"$content","usage":{"in":24,"out":14},"chunks":4}}
JSON
"$bin/bursar-mock-provider" --port 0 --script "$tmp/mock.json" \
    >"$tmp/mock.port" 2>"$tmp/mock.log" &
mock_pid=$!
pids+=("$mock_pid")
mock_port=$(wait_line "$tmp/mock.port" mock "$mock_pid")
say "mock provider on 127.0.0.1:$mock_port"

ctl=ipc://$tmp/ctl.sock
cat >"$tmp/bursard.json" <<JSON
{"listen":["$ctl"],
 "models":{"mock-gw":{"provider":"openai","price_in_per_mtok":0.15,"price_out_per_mtok":0.6}},
 "buckets":{"general":{"models":["mock-gw"]}},
 "limits":{"client_rate_per_s":0}}
JSON
if [[ -n $ctl_state ]]; then
    ctl_state=$(mktemp -d "$ctl_state/bursar-bench-state.XXXXXX")
    cleanup_state=$ctl_state
else
    ctl_state=$tmp/state
fi
"$bin/bursard" --config "$tmp/bursard.json" --state-dir "$ctl_state" --quiet \
    2>"$tmp/bursard.log" &
bursard_pid=$!
pids+=("$bursard_pid")
for i in $(seq 50); do
    "$bin/bursar" --controller "$ctl" --timeout 200 ping >/dev/null 2>&1 && break
    [[ $i -lt 50 ]] || { say "bursard did not start:"; cat "$tmp/bursard.log" >&2; exit 1; }
    sleep 0.1
done

gw_pid='' gw_port=''
if [[ $have_gateway == 1 && " $targets " == *" bursar "* ]]; then
    "$gateway_bin" --new-key bench >"$tmp/key.txt"
    app_key=$(sed -n 1p "$tmp/key.txt")
    cat >"$tmp/gateway.json" <<JSON
{"listen":"127.0.0.1:0",
 "controller":"$ctl",
 "spool":"$tmp/gateway.spool",
 "models":{"mock-gw":{"provider":"openai","model":"mock-gw",
                      "base_url":"http://127.0.0.1:$mock_port/v1",
                      "api_key_env":"BURSAR_BENCH_MOCK_KEY",
                      "price_in_per_mtok":0.15,"price_out_per_mtok":0.6}},
 "routing":{"default":"general"},
 "keys":[$(sed -n 2p "$tmp/key.txt")],
 "limits":{"max_connections":1024}}
JSON
    "$gateway_bin" --config "$tmp/gateway.json" --check-config >&2 ||
        { say "the gateway's configuration above was refused"; exit 1; }
    BURSAR_BENCH_MOCK_KEY=$key "$gateway_bin" --config "$tmp/gateway.json" \
        --listen 127.0.0.1:0 --quiet >"$tmp/gateway.port" 2>"$tmp/gateway.log" &
    gw_pid=$!
    pids+=("$gw_pid")
    gw_port=$(wait_line "$tmp/gateway.port" gateway "$gw_pid")
    say "bursar-gateway on 127.0.0.1:$gw_port"
elif [[ " $targets " == *" bursar "* ]]; then
    say "SKIPPED bursar-gateway rows: no $gateway_bin (built)"
fi

pk_pid='' pk_port=''
if [[ $have_portkey == 1 && " $targets " == *" portkey "* ]]; then
    pk_port=${BURSAR_BENCH_PORTKEY_PORT:-$(free_port 18787)}
    # As Portkey's README runs it (npx @portkey-ai/gateway), without the
    # log viewer UI. It logs every request internally all the same.
    (cd "$portkey_dir" && exec node "$portkey_js" --port="$pk_port" --headless) \
        >"$tmp/portkey.log" 2>&1 &
    pk_pid=$!
    pids+=("$pk_pid")
    for i in $(seq 100); do
        [[ $(http_get "$pk_port" / 2>/dev/null) == *"AI Gateway says hey"* ]] && break
        if ! kill -0 "$pk_pid" 2>/dev/null || [[ $i -eq 100 ]]; then
            say "Portkey did not start:"
            cat "$tmp/portkey.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    say "Portkey $portkey_version on 127.0.0.1:$pk_port (pid $pk_pid)"
elif [[ " $targets " == *" portkey "* ]]; then
    say "SKIPPED Portkey rows: node/npm or bench/portkey's install is missing"
fi

# ------------------------------------------------------------ the targets
# Per target: URL, upstream model name (the mock counts requests by it),
# headers. The same body otherwise.
declare -A url model hdrs pid_of
url[direct]=http://127.0.0.1:$mock_port/v1/chat/completions
model[direct]=mock-direct
hdrs[direct]="Authorization: Bearer $key"
pid_of[direct]=$mock_pid
if [[ -n $gw_pid ]]; then
    url[bursar]=http://127.0.0.1:$gw_port/v1/chat/completions
    model[bursar]=bursar/general
    hdrs[bursar]="Authorization: Bearer $app_key"
    pid_of[bursar]=$gw_pid
fi
if [[ -n $pk_pid ]]; then
    url[portkey]=http://127.0.0.1:$pk_port/v1/chat/completions
    model[portkey]=mock-portkey
    hdrs[portkey]="Authorization: Bearer $key
x-portkey-provider: openai
x-portkey-custom-host: http://127.0.0.1:$mock_port/v1"
    pid_of[portkey]=$pk_pid
fi
# the model name the mock sees for each target
declare -A seen=([direct]=mock-direct [bursar]=mock-gw [portkey]=mock-portkey)

body() { # TARGET MODE
    local extra=
    [[ $2 == stream ]] && extra=',"stream":true,"stream_options":{"include_usage":true}'
    printf '{"model":"%s","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32,"temperature":0%s}\n' \
        "${model[$1]}" "$extra" >"$tmp/body-$1-$2.json"
    echo "$tmp/body-$1-$2.json"
}

# bench TARGET MODE CLIENTS DURATION WARMUP [bench_http option...]
bench() {
    local t=$1 m=$2 c=$3 d=$4 w=$5
    shift 5
    local args=(--url "${url[$t]}" --body "$(body "$t" "$m")" -c "$c"
        -w "$w" --label "$t/$m/$c")
    while IFS= read -r h; do
        [[ -n $h ]] && args+=(-H "$h")
    done <<<"${hdrs[$t]}"
    if [[ $m == stream ]]; then
        args+=(--expect "[DONE]")
    else
        args+=(--expect '"choices"')
    fi
    "$bin/bench_http" "${args[@]}" -d "$d" "$@"
}

mock_count() { # MODEL: requests the mock has served for it
    http_get "$mock_port" /stats | jq --arg m "$1" '.models[$m].requests // 0'
}

active=()
for t in $targets; do
    [[ -n ${url[$t]:-} ]] && active+=("$t")
done
mode_list=()
for m in $modes; do
    if [[ $m == stream ]]; then
        # does the mock stream yet? (branch mockstream)
        if ! bench direct stream 1 0.05 0 >/dev/null 2>"$tmp/stream-check.log"; then
            say "SKIPPED streamed rows: the mock provider does not stream \"stream\":true" \
                "as SSE ending in [DONE] yet: $(head -c 300 "$tmp/stream-check.log")"
            continue
        fi
    fi
    mode_list+=("$m")
done

# Every target must reach the mock: one request each, counted there.
fail=0
for t in "${active[@]}"; do
    for m in "${mode_list[@]}"; do
        before=$(mock_count "${seen[$t]}")
        if ! bench "$t" "$m" 1 10 0 -n 1 >"$tmp/check.json" 2>"$tmp/check.log"; then
            say "$t ($m) FAILED its check: $(cat "$tmp/check.log")"
            fail=1
            continue
        fi
        after=$(mock_count "${seen[$t]}")
        if [[ $after -le $before ]]; then
            say "$t ($m): the request did not reach the mock (model ${seen[$t]}: $before then $after)"
            fail=1
        fi
    done
done
[[ $fail == 0 ]] || exit 1

say "warming up (${#active[@]} targets x ${#mode_list[@]} modes, 2 s each at 64 clients)"
for t in "${active[@]}"; do
    for m in "${mode_list[@]}"; do
        bench "$t" "$m" 64 2 0 >/dev/null 2>&1 || true
    done
done

# ------------------------------------------------------------------ runs
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

results=$tmp/results.jsonl
: >"$results"
mid=$(awk -v w="$warmup" -v d="$duration" 'BEGIN {print w + d / 2}')
n=${#active[@]}
runs=$((rounds * $(wc -w <<<"$clients") * ${#mode_list[@]} * n))
say "measuring: $runs runs of ${warmup}+${duration} s (about $(awk -v n="$runs" \
    -v w="$warmup" -v d="$duration" 'BEGIN {printf "%.0f", n * (w + d)}') s)"
errors=0
for r in $(seq "$rounds"); do
    for c in $clients; do
        for m in "${mode_list[@]}"; do
            for i in $(seq 0 $((n - 1))); do
                t=${active[$(((i + r) % n))]}
                bench "$t" "$m" "$c" "$duration" "$warmup" >"$tmp/run.json" \
                    2>>"$tmp/errors.log" &
                bp=$!
                sleep "$mid"
                rss=$(rss_kb "${pid_of[$t]}")
                wait "$bp" || errors=1
                jq -c --arg t "$t" --arg m "$m" --argjson c "$c" --argjson r "$r" \
                    --argjson rss "$rss" \
                    '. + {target:$t, mode:$m, clients:$c, round:$r, rss_kb:$rss}' \
                    "$tmp/run.json" >>"$results"
            done
        done
    done
    say "round $r of $rounds done"
done

# Every measured request reached the mock (none answered from a cache).
for t in "${active[@]}"; do
    measured=$(jq -s --arg t "$t" '[.[] | select(.target == $t) | .requests] | add' "$results")
    served=$(mock_count "${seen[$t]}")
    if [[ $served -lt $measured ]]; then
        say "$t: $measured responses but the mock served only $served for ${seen[$t]}"
        errors=1
    fi
done

# ------------------------------------------------------------------ table
# medians over the rounds, per target x mode x clients
jq -s -r '
  def med: sort | if length % 2 == 1 then .[length / 2 | floor]
                  else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def order: {direct: 0, bursar: 1, portkey: 2}[.] // 3;
  group_by([.mode, .clients, (.target | order)]) | .[] |
  [.[0].mode, .[0].clients, .[0].target,
   ([.[].total_p50_us] | med), ([.[].total_p99_us] | med),
   ([.[].first_data_p50_us] | med), ([.[].first_data_p99_us] | med),
   ([.[].rps] | med), ([.[].errors] | add), ([.[].rss_kb] | med), length,
   ([.[].ttfb_p50_us] | med)]
  | @tsv' "$results" >"$tmp/medians.tsv"

echo
echo "Gateway benchmark: $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ); mock provider answering at once;"
echo "$rounds rounds of ${duration} s (after ${warmup} s of warm-up) per row, medians; latencies in µs."
echo "bursard's state in $(df -P "$ctl_state" | awk 'NR == 2 {print $1 " (" $6 ")"}'), store.sync full."
echo "Portkey: @portkey-ai/gateway $portkey_version on Node $(node --version 2>/dev/null || echo '-'), one process, --headless."
echo "First byte: the first byte of the body (streamed: the first SSE event); headers: the status line."
echo "Added: the target's quantile minus direct's (same clients, same mode)."
echo "RSS: the target's process in the middle of its runs (direct: the mock; bursar: the gateway alone, bursard's below)."
echo
awk -F'\t' '
  { key = $1 "/" $2; row[NR] = $0
    if ($3 == "direct") { d50[key] = $4; d99[key] = $5; f50[key] = $6; f99[key] = $7 } }
  END {
    print "| mode | clients | target | p50 | p99 | first byte p50 | first byte p99 | headers p50 | added p50 | added p99 | added first byte p50 | req/s | errors | RSS MiB |"
    print "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= NR; i++) {
        split(row[i], v, "\t"); key = v[1] "/" v[2]
        if (v[3] == "direct") { a = "-"; b = "-"; f = "-" }
        else { a = sprintf("%.0f", v[4] - d50[key]); b = sprintf("%.0f", v[5] - d99[key])
               f = sprintf("%.0f", v[6] - f50[key]) }
        printf "| %s | %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %s | %s | %s | %.0f | %d | %.1f |\n",
            v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[12], a, b, f, v[8], v[9], v[10] / 1024
    }
  }' "$tmp/medians.tsv"
echo
awk -F'\t' -v top="$(tr ' ' '\n' <<<"$clients" | sort -n | tail -1)" '
  { key = $1 "/" $2; p50[key "/" $3] = ($1 == "stream" ? $6 : $4); rps[key "/" $3] = $8 }
  END {
    for (k in p50) {
        split(k, v, "/"); key = v[1] "/" v[2]
        if (v[3] != "bursar" || !((key "/portkey") in p50)) continue
        b = p50[k] - p50[key "/direct"]; p = p50[key "/portkey"] - p50[key "/direct"]
        printf "- %s, %s clients: bursar adds %.0f µs (p50%s), Portkey %.0f µs: ratio %.3f (aim <= 0.2: %s)\n",
            v[1], v[2], b, (v[1] == "stream" ? ", first byte" : ""), p,
            (p > 0 ? b / p : 0), ((p > 0 && b / p <= 0.2) ? "met" : "NOT met")
    }
    for (k in rps) {
        split(k, v, "/")
        if (v[3] == "bursar" && v[2] == top)
            printf "- bursar-gateway, %s, %s clients: %.0f requests/s (aim >= 5000: %s)\n",
                v[1], v[2], rps[k], (rps[k] >= 5000 ? "met" : "NOT met")
    }
  }' "$tmp/medians.tsv" | sort
echo
for t in "${active[@]}"; do
    if ! kill -0 "${pid_of[$t]}" 2>/dev/null; then
        say "$t: its process (${pid_of[$t]}) has exited"
        errors=1
    fi
done
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
peaks="mock $(mib "$(hwm_kb "$mock_pid")") MiB, bursard $(mib "$(hwm_kb "$bursard_pid")") MiB"
[[ -n $gw_pid ]] && peaks+=", bursar-gateway $(mib "$(hwm_kb "$gw_pid")") MiB"
[[ -n $pk_pid ]] && peaks+=", Portkey (node) $(mib "$(hwm_kb "$pk_pid")") MiB"
echo "- peak RSS (VmHWM): $peaks"
if [[ -s $tmp/errors.log ]]; then
    echo
    echo "Errors (first lines):"
    head -20 "$tmp/errors.log"
fi
exit "$errors"
