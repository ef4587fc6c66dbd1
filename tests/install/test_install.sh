#!/usr/bin/env bash
# test_install.sh - `cmake --install` of the build into a temporary prefix,
# used as a user and a packager would use it (tests/install/CMakeLists.txt
# registers it as test_install).
#
#   test_install.sh --build DIR --src DIR --cmake CMAKE --cc CC --version V
#                   --bindir D --libdir D --includedir D --mandir D
#                   --datadir D --unitdir D --sysusersdir D [--cflags FLAGS]
#
# The directories are CMake's (GNUInstallDirs, BURSAR_SYSTEMD_UNITDIR,
# BURSAR_SYSUSERSDIR), relative to the prefix. FLAGS are added to each
# compile of hello.c (the sanitizer build's -fsanitize=..., which its
# libbursar needs); the normal build passes none, so hello.c is built with
# `cc hello.c $(pkg-config --cflags --libs bursar)` alone.
#
# Checks, each failure named:
#  1. the install: every program (answering --version on stdout, exit 0),
#     the headers, libbursar.so.0.1.0 with its links and SONAME
#     libbursar.so.0, exporting bursar_* and proto_* only, libbursar.a,
#     bursar.pc, the units, sysusers.d, examples (not gateway-mock.json,
#     a script of the mock provider, which is not installed); a man page
#     per program, with a SYNOPSIS, an OPTIONS section, every option its
#     --help lists (and those a user looks up first: bursard's --config,
#     --state-dir, --listen, --metrics, --quiet...) an entry of its own,
#     bursar's commands one entry each, and no groff warning; the docs in
#     share/doc/bursar/docs/, where every relative link of the installed
#     README.md and docs/*.md resolves to an installed file;
#  2. hello.c built against the installed library with pkg-config only
#     (shared), and against libbursar.a (static), each run against a real
#     bursard of the prefix on 127.0.0.1 (the installed example
#     configuration, a fresh state directory): choose and feedback; then
#     the installed `bursar stats --json` shows both decisions, their
#     rewards and their spend;
#  3. `systemd-analyze verify` of the installed units (with MANPATH at the
#     prefix, so that Documentation=man:... must resolve): no error, no
#     warning; a copy with a missing ExecStart program must fail it; and
#     `systemd-analyze security --offline` keeps each unit's exposure at
#     2.0 or below.
# A missing tool fails the test naming its Debian package.
set -uo pipefail

build='' src='' cmake='' cc='' version='' cflags=''
declare -A dir
while [[ $# -gt 0 ]]; do
    case $1 in
    --build) build=$2 ;;
    --src) src=$2 ;;
    --cmake) cmake=$2 ;;
    --cc) cc=$2 ;;
    --version) version=$2 ;;
    --cflags) cflags=$2 ;;
    --bindir | --libdir | --includedir | --mandir | --datadir | --unitdir | \
        --sysusersdir)
        dir[${1#--}]=$2
        ;;
    *)
        echo "test_install.sh: unknown argument $1" >&2
        exit 2
        ;;
    esac
    shift 2 || {
        echo "test_install.sh: $1 needs a value" >&2
        exit 2
    }
done
for v in build src cmake cc version; do
    [[ -n ${!v} ]] || {
        echo "test_install.sh: --$v is required" >&2
        exit 2
    }
done

fails=0
passes=0
ok() {
    passes=$((passes + 1))
    echo "ok: $*"
}
fail() {
    fails=$((fails + 1))
    echo "FAIL: $*"
}
finish() {
    echo "$passes passed, $fails failed"
    [[ $fails -eq 0 ]]
    exit
}

for k in bindir libdir includedir mandir datadir unitdir sysusersdir; do
    d=${dir[$k]:-}
    if [[ -z $d || $d == /* ]]; then
        fail "--$k '$d': must be a directory relative to the prefix" \
            "(configure without an absolute CMAKE_INSTALL_*/BURSAR_*DIR)"
        finish
    fi
done

# tool package
need=("pkg-config pkg-config" "readelf binutils" "nm binutils" "jq jq"
    "systemd-analyze systemd" "man man-db" "help2man help2man")
for t in "${need[@]}"; do
    read -r tool pkg <<<"$t"
    command -v "$tool" >/dev/null ||
        fail "$tool not found: install the Debian package $pkg (scripts/deps.sh)"
done
[[ $fails -eq 0 ]] || finish

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bursar-install.XXXXXX") || exit 2
pid=
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
P=$tmp/prefix
bin=$P/${dir[bindir]}
lib=$P/${dir[libdir]}
inc=$P/${dir[includedir]}
man=$P/${dir[mandir]}
doc=$P/${dir[datadir]}/doc/bursar
units=$P/${dir[unitdir]}

# The first word of each entry (.TP) of a man page, as help2man writes a
# "  --option ARG   description" line of --help: "--config", "stats",
# "-h" (of "-h, --help"), "--test-clock" (of "--test-clock[=START]").
man_tags() {
    awk 'prev == ".TP" { print } { prev = $0 }' "$1" |
        sed -e 's/\\f[BIRP]//g; s/\\[,/]//g; s/\\-/-/g' |
        awk '{ w = $1; sub(/,$/, "", w); sub(/\[.*/, "", w); print w }'
}

# The man pages read as man pages: every option of --help an entry.
check_man_pages() {
    local -A want=(
        [bursard]="--config --state-dir --listen --metrics --test-clock
            --quiet --check-config --print-default-config --config-reference
            -h --version"
        [bursar]="stats export feedback choose models ping keygen
            --controller --timeout --key --server-key --success --failure
            --reward --correction --provider-error --cost --model -h --version"
        [bursar-agent]="--controller --config --simulate --spool --models
            --concurrency --report --quiet -h --version"
        [bursar-gateway]="--config --listen --metrics --check-config
            --new-key --quiet -h --version"
        [bursar-sim]="--data --scenario --policy --seed --json -h --version")
    local p page tags opts t missing warn n=$fails
    for p in "${progs[@]}"; do
        page=$man/man1/$p.1
        [[ -s $page ]] || continue
        grep -q '^\.SH OPTIONS' "$page" || fail "$p.1 has no OPTIONS section"
        tags=" $(man_tags "$page" | tr '\n' ' ') "
        # the options --help lists, one a line: "  --name ..."
        opts=$("$bin/$p" --help 2>/dev/null |
            sed -n 's/^  \(--[a-z][a-z0-9-]*\).*/\1/p')
        [[ -n $opts ]] || fail "$p --help lists no option as '  --name ...'"
        missing=
        for t in ${want[$p]} $opts; do
            [[ $tags == *" $t "* ]] || missing+=" $t"
        done
        [[ -z $missing ]] ||
            fail "$p.1: no entry of its own for$missing (entries:$tags)"
        warn=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
        [[ -z $warn ]] || fail "$p.1: groff warns: $warn"
    done
    [[ $fails -eq $n ]] &&
        ok "man pages: OPTIONS, every option and bursar's commands an entry each"
}

# share/doc/bursar as the source tree has it: README.md beside docs/, so
# that every relative link of the installed Markdown resolves.
check_docs() {
    local f t links=0 n=$fails
    [[ -e $doc/examples/gateway-mock.json ]] &&
        fail "examples/gateway-mock.json installed (the mock provider's script)"
    [[ -e $doc/controller.md ]] &&
        fail "docs installed flat in $doc (want $doc/docs/)"
    for f in "$doc/README.md" "$doc"/docs/*.md; do
        [[ -f $f ]] || continue
        while IFS= read -r t; do
            links=$((links + 1))
            [[ -e $(dirname "$f")/$t ]] ||
                fail "${f#"$doc"/} links $t: not installed"
        done < <(grep -oE '\]\([^)#[:space:]]+' "$f" | sed 's/^](//' |
            grep -vE '^[a-z]+:')
    done
    # README.md alone links a dozen docs: none found is a broken check
    [[ $links -ge 10 ]] || fail "only $links relative links in the installed docs"
    [[ $fails -eq $n ]] &&
        ok "installed docs: $links relative links resolve; no gateway-mock.json"
}

# ------------------------------------------------------------ 1. the files
if "$cmake" --install "$build" --prefix "$P" >"$tmp/install.log" 2>&1; then
    ok "cmake --install $build --prefix $P"
else
    cat "$tmp/install.log"
    fail "cmake --install failed"
    finish
fi

progs=(bursard bursar bursar-agent bursar-gateway bursar-sim)
for p in "${progs[@]}"; do
    if [[ ! -x $bin/$p ]]; then
        fail "program $bin/$p not installed"
        continue
    fi
    out=$("$bin/$p" --version 2>/dev/null)
    rc=$?
    if [[ $rc -eq 0 && $out == "$p $version" ]]; then
        ok "$p --version: $out"
    else
        fail "$p --version: exit $rc, stdout '$out' (want '$p $version', exit 0)"
    fi
done
for p in bursar-mock-provider test_symbols bench_policy; do
    [[ -e $bin/$p ]] && fail "$bin/$p installed: a test program"
done

files=("$inc/bursar/bursar.h" "$inc/bursar/agents/bursar.h"
    "$inc/bursar/agents/proto.h" "$inc/bursar/agents/keys.h"
    "$inc/bursar/policies/base.h" "$lib/libbursar.so.$version"
    "$lib/libbursar.a" "$lib/pkgconfig/bursar.pc"
    "$units/bursard.service" "$units/bursar-gateway.service"
    "$P/${dir[sysusersdir]}/bursar.conf"
    "$doc/examples/bursard.json" "$doc/examples/gateway.json"
    "$doc/examples/tasks.jsonl" "$doc/README.md" "$doc/LICENSE"
    "$doc/docs/controller.md" "$doc/docs/install.md"
    "$doc/agents/python/examples/route_openai.py")
for p in "${progs[@]}"; do
    files+=("$man/man1/$p.1")
done
for f in "${files[@]}"; do
    if [[ -s $f ]]; then ok "installed ${f#"$P"/}"; else fail "missing or empty: $f"; fi
done
for l in libbursar.so.0 libbursar.so; do
    t=$(readlink "$lib/$l")
    [[ $t == libbursar.so.$version || $t == libbursar.so.0 ]] &&
        ok "$l -> $t" || fail "$lib/$l: not a link to the library ('$t')"
done

soname=$(readelf -d "$lib/libbursar.so.$version" 2>&1 |
    sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $soname == libbursar.so.0 ]] && ok "SONAME $soname" ||
    fail "SONAME of libbursar.so.$version: '$soname' (want libbursar.so.0)"
nm -D --defined-only "$lib/libbursar.so.$version" | awk '{ print $3 }' \
    >"$tmp/exports"
other=$(grep -Ev '^(bursar_|proto_)' "$tmp/exports" | tr '\n' ' ')
[[ -z $other ]] && ok "libbursar.so exports bursar_* and proto_* only" ||
    fail "libbursar.so exports $other"
nm -g --defined-only "$lib/libbursar.a" 2>/dev/null |
    awk '$2 == "T" { print $3 }' >"$tmp/archive"
n=$fails
for s in bursar_new bursar_choose bursar_feedback bursar_strerror \
    proto_tenant_valid; do
    grep -qx "$s" "$tmp/exports" || fail "libbursar.so does not export $s"
    grep -qx "$s" "$tmp/archive" || fail "libbursar.a does not define $s"
done
[[ $fails -eq $n ]] &&
    ok "libbursar.so and libbursar.a: the client, the codec and base"
for p in "${progs[@]}"; do
    grep -q "^\.TH \"*${p^^}\"* \"*1\"*" "$man/man1/$p.1" 2>/dev/null &&
        grep -q "$version" "$man/man1/$p.1" || fail "$p.1: not a man page of $p $version"
done
for p in bursard bursar-gateway; do
    grep -q '^\.SH SYNOPSIS' "$man/man1/$p.1" 2>/dev/null ||
        fail "$p.1 has no SYNOPSIS (help2man-filter.sh)"
done
check_man_pages
check_docs
if "$bin/bursard" --check-config "$doc/examples/bursard.json" >"$tmp/chk" 2>&1; then
    ok "the example bursard.json passes bursard --check-config"
else
    fail "bursard --check-config $doc/examples/bursard.json: $(cat "$tmp/chk")"
fi

# ------------------------------------------- 2. a program of a user
export PKG_CONFIG_PATH=$lib/pkgconfig
hello=$src/tests/install/hello.c
# shellcheck disable=SC2086,SC2046
if $cc $cflags -o "$tmp/hello" "$hello" $(pkg-config --cflags --libs bursar) \
    >"$tmp/cc.log" 2>&1; then
    ok "cc hello.c \$(pkg-config --cflags --libs bursar)"
else
    cat "$tmp/cc.log"
    fail "hello.c does not build with pkg-config --cflags --libs bursar"
fi
readelf -d "$tmp/hello" 2>/dev/null | grep -q 'NEEDED.*\[libbursar\.so\.0\]' ||
    fail "hello does not link libbursar.so.0"

# Static: libbursar.a with what bursar.pc says it needs (Requires.private,
# Libs.private). Debian's libzmq and cJSON are linked shared: libzmq.pc's
# own private libraries (Kerberos, libprotokit.a) are not all installed
# as archives, so a fully static program is not the test.
static=$(pkg-config --static --libs bursar)
for l in -lzmq -lcjson -lm; do
    [[ " $static " == *" $l "* ]] ||
        fail "pkg-config --static --libs bursar lacks $l: '$static'"
done
reqs=$(pkg-config --print-requires-private bursar | awk '{ print $1 }')
private=$(sed -n 's/^Libs.private: *//p' "$lib/pkgconfig/bursar.pc")
# shellcheck disable=SC2086,SC2046
if $cc $cflags -o "$tmp/hello-static" "$hello" $(pkg-config --cflags bursar) \
    "$lib/libbursar.a" $(pkg-config --libs $reqs) $private \
    >"$tmp/cc.log" 2>&1; then
    ok "cc hello.c libbursar.a (Requires.private: $(echo $reqs))"
else
    cat "$tmp/cc.log"
    fail "hello.c does not link with libbursar.a"
fi
readelf -d "$tmp/hello-static" 2>/dev/null | grep -q 'NEEDED.*libbursar' &&
    fail "hello-static needs libbursar.so"

# bursard of the prefix on a free loopback port (a few tries).
bursar_cli() {
    "$bin/bursar" --controller "$ep" --timeout 500 "$@"
}
mkdir -p "$tmp/state"
started=0
for try in 1 2 3 4 5 6 7 8; do
    port=$((20000 + (RANDOM * 7 + try) % 40000))
    ep=tcp://127.0.0.1:$port
    "$bin/bursard" --config "$doc/examples/bursard.json" \
        --state-dir "$tmp/state" --listen "$ep" --quiet 2>"$tmp/bursard.log" &
    pid=$!
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        bursar_cli ping >/dev/null 2>&1 && started=1 && break
        sleep 0.1
    done
    [[ $started -eq 1 ]] && break
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=
done
if [[ $started -eq 1 ]]; then
    ok "bursard of the prefix answers on $ep"
else
    cat "$tmp/bursard.log"
    fail "bursard of the prefix did not start"
    finish
fi

models=()
for run in "hello 0.0042" "hello-static 0.0013"; do
    read -r prog cost <<<"$run"
    [[ -x $tmp/$prog ]] || continue
    if out=$(LD_LIBRARY_PATH=$lib "$tmp/$prog" "$ep" "$cost" 2>&1) &&
        [[ $out == "model "* ]]; then
        models+=("${out#model }")
        ok "$prog: $out, a success at $cost USD"
    else
        fail "$prog against bursard: $out"
    fi
done
if [[ ${#models[@]} -eq 2 ]]; then
    stats=$(bursar_cli stats --json 2>&1)
    got=$(jq -c '[.decisions, (.budget.spent_usd * 1e6 | round),
        ([.buckets[] | select(.name == "code") | .arms[] | .pulls] | add),
        ([.buckets[] | select(.name == "code") | .arms[] | .rewards] | add)]' \
        <<<"$stats" 2>&1)
    [[ $got == "[2,5500,2,2]" ]] &&
        ok "bursar stats --json: 2 decisions, 0.0055 USD spent, 2 pulls, 2 rewards in code" ||
        fail "bursar stats --json: [decisions, spent micro-USD, pulls, rewards] $got, want [2,5500,2,2]"
    for m in "${models[@]}"; do
        n=$(jq --arg m "$m" '[.buckets[] | select(.name == "code") | .arms[] |
            select(.model == $m) | .pulls] | add' <<<"$stats")
        [[ $n -ge 1 ]] 2>/dev/null && ok "stats: $m pulled $n" ||
            fail "stats: $m, which hello was given, has pulls '$n'"
    done
fi
kill "$pid"
wait "$pid"
rc=$?
pid=
[[ $rc -eq 0 ]] && ok "bursard stopped on SIGTERM, exit 0" ||
    fail "bursard exited $rc on SIGTERM: $(cat "$tmp/bursard.log")"

# ------------------------------------------------------ 3. the units
export MANPATH=$man
for u in bursard bursar-gateway; do
    if out=$(systemd-analyze verify "$units/$u.service" 2>&1) && [[ -z $out ]]; then
        ok "systemd-analyze verify $u.service"
    else
        fail "systemd-analyze verify $u.service: ${out:-exit status}"
    fi
    if out=$(systemd-analyze security --offline=yes --threshold=20 \
        "$units/$u.service" 2>&1); then
        ok "$u.service: $(grep -o 'exposure level.*' <<<"$out")"
    else
        fail "$u.service: exposure above 2.0: $(grep '✗' <<<"$out")"
    fi
done
sed "s|^ExecStart=[^ ]*|ExecStart=$tmp/nowhere/bursard|" \
    "$units/bursard.service" >"$tmp/bursard.service"
if systemd-analyze verify "$tmp/bursard.service" >/dev/null 2>&1; then
    fail "systemd-analyze verify passes a unit whose program is missing"
else
    ok "systemd-analyze verify fails a unit whose program is missing"
fi
finish
