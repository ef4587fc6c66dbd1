#!/usr/bin/env bash
# tests/python/run.sh PYTHON [PYTEST ARGS...] - runs the Python client's
# pytest suite (tests/python) with Debian's python3, after checking that
# what it needs is there: a missing module fails, naming its package.
set -uo pipefail
py=$1
shift
if [[ ! -x $py ]]; then
    echo "error: $py is missing: apt-get install python3" >&2
    exit 1
fi
missing=()
"$py" -c 'import zmq' 2>/dev/null || missing+=(python3-zmq)
"$py" -c 'import pytest' 2>/dev/null || missing+=(python3-pytest)
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "error: $py lacks modules the Python client's tests need:" \
        "apt-get install ${missing[*]} (scripts/deps.sh)" >&2
    exit 1
fi
here=$(cd "$(dirname "$0")" && pwd)
cd "$here" || exit 1
# nothing written into the source tree: no bytecode, no pytest cache
export PYTHONDONTWRITEBYTECODE=1
exec "$py" -m pytest -q -p no:cacheprovider "$@"
