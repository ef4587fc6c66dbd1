#!/usr/bin/env bash
# tests/gateway/node.sh - the Node side of the gateway's tests (ctest runs
# it; tests/gateway/CMakeLists.txt).
#
#   node.sh install SRC DIR   npm ci of SRC's package.json and
#                             package-lock.json into DIR (the build tree;
#                             node_modules never goes into the sources).
#                             Nothing is fetched when DIR already holds
#                             that lockfile's packages, so a second run
#                             works offline.
#   node.sh run SRC DIR FILE  copies SRC's *.mjs into DIR/NAME (beside
#                             DIR/node_modules, where their imports are
#                             found) and runs `node --test` on FILE there.
#
# A missing node or npm, or packages not installed, fails (status 1) with
# a message saying what to do: a test that cannot run must not pass.
set -euo pipefail

fail() {
    echo "node.sh: $*" >&2
    exit 1
}

need() {
    command -v "$1" >/dev/null ||
        fail "$1 is missing: install Debian's $2 (scripts/deps.sh does)"
}

[[ $# -ge 3 ]] || fail "usage: node.sh install SRC DIR | run SRC DIR FILE"
mode=$1 src=$2 dir=$3
need node nodejs

case $mode in
install)
    need npm npm
    mkdir -p "$dir"
    if cmp -s "$src/package.json" "$dir/package.json" &&
        cmp -s "$src/package-lock.json" "$dir/package-lock.json" &&
        [[ -f $dir/node_modules/.package-lock.json ]]; then
        echo "node.sh: $dir/node_modules is up to date with the lockfile"
        exit 0
    fi
    cp "$src/package.json" "$src/package-lock.json" "$dir/"
    rm -rf "$dir/node_modules"
    echo "node.sh: npm ci into $dir (node $(node --version), npm $(npm --version))"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error ||
        fail "npm ci failed in $dir (the npm registry must be reachable once)"
    ;;
run)
    [[ $# -eq 4 ]] || fail "usage: node.sh run SRC DIR FILE"
    file=$4
    [[ -f $dir/node_modules/.package-lock.json ]] ||
        fail "no packages in $dir/node_modules: run the test test_gateway_npm_ci first (ctest -R test_gateway)"
    name=$(basename "$file" .test.mjs)
    mkdir -p "$dir/$name"
    cp "$src"/*.mjs "$dir/$name/"
    cd "$dir/$name"
    exec node --test "$(basename "$file")"
    ;;
*)
    fail "unknown mode $mode"
    ;;
esac
