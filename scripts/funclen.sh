#!/usr/bin/env bash
# scripts/funclen.sh - lists the longest function definitions of the C
# sources outside tests/, longest first: "LINES file:line name".
#
#   scripts/funclen.sh [N]        the N longest (default 10)
#   scripts/funclen.sh --max L    exits 1 and lists those longer than L
#
# Relies on the house format (.clang-format): a definition's name starts
# its line ("name(" in column 0) and its body ends with "}" in column 0.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
n=10 max=
if [[ ${1:-} == --max ]]; then max=$2; elif [[ -n ${1:-} ]]; then n=$1; fi
list=$(git ls-files '*.c' 2>/dev/null | grep -v '^tests/' || true)
[[ -n $list ]] || list=$(find controller agents policies sim bench -name '*.c')
# shellcheck disable=SC2086
out=$(awk '
    FNR == 1 { name = "" }
    /^[A-Za-z_][A-Za-z0-9_]*\(/ && !/;[ \t]*$/ {
        name = $0; sub(/\(.*/, "", name); start = FNR; file = FILENAME; next
    }
    /^}/ && name != "" {
        printf "%d %s:%d %s\n", FNR - start + 1, file, start, name; name = ""
    }' $list | sort -k1,1nr)
if [[ -n $max ]]; then
    long=$(awk -v m="$max" '$1 > m' <<<"$out")
    if [[ -n $long ]]; then
        echo "functions longer than $max lines:"; echo "$long"; exit 1
    fi
    exit 0
fi
head -n "$n" <<<"$out"
