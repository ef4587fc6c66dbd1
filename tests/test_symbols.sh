#!/bin/sh
# test_symbols.sh - the project's libraries and headers keep apart.
#
#   test_symbols.sh --nm NM --src DIR --client-closure "T1,T2,..."
#                   [--client NAME]... --lib NAME=ARCHIVE...
#
# Fails (exit 1, naming every offence) when
#   1. a global symbol (nm types T D B R C G S) is defined in two of the
#      archives given with --lib;
#   2. a client archive (--client: the client library, its codec and
#      base) defines a global symbol not prefixed bursar_ or proto_, or
#      needs (nm -u) a curl_* or pthread_* symbol, or a symbol that only a
#      non-client archive defines (the client would need the worker);
#   3. the client's link closure (every target and library the client
#      target links, transitively, computed by CMake: --client-closure)
#      names libcurl or threads (glibc has pthread in libc, so the
#      closure, not ldd, is what tells);
#   4. two headers under DIR (build directories and .git left out) share
#      an include guard.
# The archive paths come from CMake ($<TARGET_FILE:...>): nothing guessed.
set -u

nm_tool=nm
src=
closure=
clients=
libs=
while [ $# -gt 0 ]; do
    case $1 in
    --nm) nm_tool=$2; shift 2 ;;
    --src) src=$2; shift 2 ;;
    --client-closure) closure=$2; shift 2 ;;
    --client) clients="$clients $2"; shift 2 ;;
    --lib) libs="$libs $2"; shift 2 ;;
    *) echo "test_symbols.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ -z "$src" ] || [ -z "$libs" ]; then
    echo "test_symbols.sh: --src and --lib are required" >&2
    exit 2
fi

die() {
    echo "test_symbols.sh: $*" >&2
    exit 2
}

tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
fail=0

is_client() {
    for c in $clients; do
        [ "$c" = "$1" ] && return 0
    done
    return 1
}

# One line "symbol library" per global definition; undefined references
# of the client archives apart.
: >"$tmp/defs"
: >"$tmp/client_undef"
n_libs=0
for spec in $libs; do
    name=${spec%%=*}
    path=${spec#*=}
    if [ ! -f "$path" ]; then
        echo "FAIL: library $name: no archive at $path" >&2
        fail=1
        continue
    fi
    n_libs=$((n_libs + 1))
    "$nm_tool" -g --defined-only "$path" 2>/dev/null |
        awk -v lib="$name" 'NF == 3 && $2 ~ /^[TDBRCGS]$/ { print $3, lib }' \
            >>"$tmp/defs"
    if is_client "$name"; then
        "$nm_tool" -g --defined-only "$path" 2>/dev/null |
            awk -v lib="$name" 'NF == 3 && $2 ~ /^[TDBRCGS]$/ &&
                $3 !~ /^(bursar_|proto_)/ {
                    print "FAIL: client library " lib " exports " $3 \
                          " (not bursar_* or proto_*)"
                }' >>"$tmp/report"
        "$nm_tool" -u "$path" 2>/dev/null |
            awk -v lib="$name" '$1 == "U" { print $2, lib }' \
                >>"$tmp/client_undef"
    fi
done
echo "checked $n_libs libraries:$(for s in $libs; do printf ' %s' "${s%%=*}"; done)"

# 1. one definition per global symbol across the libraries
sort -u "$tmp/defs" >"$tmp/defs_u"
awk '{ n[$1]++; owners[$1] = owners[$1] " " $2 }
     END { for (s in n) if (n[s] > 1)
               print "FAIL: " s " is defined in" owners[s] }' \
    "$tmp/defs_u" >"$tmp/dups" || die "awk failed on the definitions"
sort "$tmp/dups" >>"$tmp/report"

# 2. what the client archives need: no libcurl, no threads, nothing that
#    only the worker (or any non-client library) defines
awk '$1 ~ /^(curl_|pthread_)/ {
        print "FAIL: client library " $2 " needs " $1 }' \
    "$tmp/client_undef" | sort -u >>"$tmp/report"
awk 'NR == FNR { def[$1] = def[$1] " " $2; next }
     ($1 in def) { print $1, $2, def[$1] }' "$tmp/defs" "$tmp/client_undef" |
    while read -r sym lib owners; do
        ok=0
        for o in $owners; do
            is_client "$o" && ok=1
        done
        [ $ok = 1 ] ||
            echo "FAIL: client library $lib needs $sym, defined only in$(printf ' %s' $owners)"
    done | sort -u >>"$tmp/report"

# 3. the client's link closure
echo "client link closure: $closure"
echo "$closure" | tr ',' '\n' | grep -Ei 'curl|thread' |
    sed 's/^/FAIL: the client library links /' >>"$tmp/report"

# 4. include guards: the first #ifndef of a header, when the next line
#    defines the same name
find "$src" \( -name .git -o -name 'build*' \) -prune -o -name '*.h' -print |
    sort | while read -r h; do
        awk -v f="${h#"$src"/}" '
            /^#ifndef[ \t]+[A-Za-z_0-9]+/ && !g { g = $2; next }
            g { if ($1 == "#define" && $2 == g) print g, f; exit }' "$h"
    done >"$tmp/guards"
awk '{ n[$1]++; files[$1] = files[$1] " " $2 }
     END { for (g in n) if (n[g] > 1)
               print "FAIL: include guard " g " is shared by" files[g] }' \
    "$tmp/guards" >"$tmp/shared" || die "awk failed on the include guards"
sort "$tmp/shared" >>"$tmp/report"
[ -s "$tmp/guards" ] || die "no include guard found under $src"
[ -s "$tmp/defs" ] || die "no symbol found: is $nm_tool working?"
echo "checked $(wc -l <"$tmp/guards") include guards under $src"

if [ -s "$tmp/report" ]; then
    cat "$tmp/report"
    fail=1
fi
[ $fail = 0 ] && echo "ok: no symbol defined twice, a client without libcurl" \
    "or threads, every include guard unique"
exit $fail
