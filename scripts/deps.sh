#!/usr/bin/env bash
# scripts/deps.sh - installs what bursar's build, tests and scripts use,
# when any of it is missing. Debian 12 (bookworm) or later; needs root or
# sudo.
#
# Libraries are checked by package (dpkg-query), programs by `command -v`.
# The programs: the build (cmake, make, a C compiler, pkg-config); the
# tests (nm for the symbol test; timeout and awk, from Debian's essential
# set, by the store and symbol tests); the scripts (jq for ope_check.sh and
# ope_obd.sh, git for funclen.sh); node and npm for the gateway's tests
# with the OpenAI Node SDK (tests/gateway: Debian's Node.js, 18 on
# bookworm; npm ci installs the SDK into the build tree); Debian's python3
# with pyzmq, pytest, pip, setuptools and wheel for the Python client's tests
# (tests/python: the suite, and an offline `pip install agents/python`);
# help2man for the man pages the build makes, systemd (systemd-analyze)
# and man-db for the install test (tests/install: verifies the installed
# units and their man: links; readelf checks the library's SONAME);
# prometheus (and its promtool) for tests/prometheus and the gateway's
# metrics test; chromium for the status page's test (tests/status, driven
# by playwright-core, which npm ci installs into the build tree); curl and
# python3-venv for the docs' commands (tests/docs: the gateway's examples,
# docs/python.md's virtual environment). The
# sanitizer build (test.sh --sanitize) needs nothing more: gcc's libasan
# and libubsan come with it.
set -euo pipefail

pkgs=(pkg-config libzmq3-dev liblmdb-dev libcjson-dev libgsl-dev
      libcurl4-openssl-dev libcmocka-dev libsodium-dev libmicrohttpd-dev
      python3 python3-zmq python3-pytest python3-pip python3-setuptools
      python3-wheel python3-venv)
# command package
cmds=(
    "cmake cmake"
    "make make"
    "cc gcc"
    "pkg-config pkg-config"
    "nm binutils"
    "jq jq"
    "git git"
    "timeout coreutils"
    "awk mawk"
    "node nodejs"
    "npm npm"
    "help2man help2man"
    "systemd-analyze systemd"
    "man man-db"
    "readelf binutils"
    "promtool prometheus"
    "chromium chromium"
    "curl curl"
)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing+=("$p")
done
for c in "${cmds[@]}"; do
    read -r cmd pkg <<<"$c"
    command -v "$cmd" >/dev/null || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
# one package may provide two missing commands
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

echo "Installing Debian packages: ${missing[*]}" >&2
sudo=
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then
        sudo=sudo
    else
        echo "error: not root and no sudo; run as root:" >&2
        echo "  apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for c in "${cmds[@]}"; do
    read -r cmd pkg <<<"$c"
    command -v "$cmd" >/dev/null || {
        echo "error: $cmd is still missing after installing $pkg" >&2
        exit 1
    }
done
