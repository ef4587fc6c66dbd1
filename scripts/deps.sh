#!/usr/bin/env bash
# scripts/deps.sh - installs the Debian packages bursar builds with, when
# any is missing. Debian 12 (bookworm) or later; needs root or sudo.
set -euo pipefail

pkgs=(pkg-config libzmq3-dev liblmdb-dev libcjson-dev libgsl-dev
      libcurl4-openssl-dev libcmocka-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing+=("$p")
done
command -v cmake >/dev/null || missing+=(cmake)
command -v cc >/dev/null || missing+=(gcc)
command -v make >/dev/null || missing+=(make)
[[ ${#missing[@]} -eq 0 ]] && exit 0

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
