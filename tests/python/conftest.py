"""Fixtures of the Python client's tests: the real bursard (and the mock
provider, the bursar CLI) from $BURSAR_BIN_DIR, set by ctest, on loopback
TCP with its state in the test's temporary directory.

A program that is missing fails the test naming the path it was expected
at; nothing is skipped. Every program started here dies with the test
process (PR_SET_PDEATHSIG) and is stopped at the end of its test.
"""

from __future__ import annotations

import ctypes
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import pytest

try:
    import zmq
except ImportError:  # pragma: no cover - run.sh checks first
    pytest.exit("tests/python need pyzmq: apt-get install python3-zmq", returncode=1)

SOURCE_DIR = pathlib.Path(
    os.environ.get("BURSAR_SOURCE_DIR") or pathlib.Path(__file__).resolve().parents[2]
)
PY_DIR = SOURCE_DIR / "agents" / "python"
sys.path.insert(0, str(PY_DIR))

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def bin_path(name: str) -> str:
    """The path of a bursar program in $BURSAR_BIN_DIR; fails the test
    when the variable is unset or the program is not there."""
    d = os.environ.get("BURSAR_BIN_DIR")
    if not d:
        pytest.fail("BURSAR_BIN_DIR is not set (ctest sets it: the build's bin/)")
    p = os.path.join(d, name)
    if not os.access(p, os.X_OK):
        pytest.fail(f"{name} is missing: expected an executable at {p}")
    return p


def spawn(argv: List[str], stdout: Any = subprocess.DEVNULL, stderr: Any = None,
          env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    """A child that is killed with this process."""
    return subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env,
                            preexec_fn=_die_with_parent)


def stop(p: Optional[subprocess.Popen]) -> Optional[int]:
    """SIGTERM, then SIGKILL after 5 s; the exit status."""
    if p is None or p.poll() is not None:
        return None if p is None else p.returncode
    p.terminate()
    try:
        return p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_ping(endpoint: str, timeout_ms: int = 100,
             curve: Optional[tuple] = None) -> bool:
    """One ping on a socket of its own, without the client under test."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    if curve:
        server, pub, sec = curve
        s.curve_serverkey, s.curve_publickey, s.curve_secretkey = (
            server.encode(), pub.encode(), sec.encode())
    try:
        s.connect(endpoint)
        s.send(b'{"op":"ping"}')
        return bool(s.poll(timeout_ms, zmq.POLLIN)) and b'"ok":true' in s.recv()
    finally:
        s.close(0)


# Two models, one bucket; a fixed seed so that draws repeat run to run.
BASE_CONFIG: Dict[str, Any] = {
    "models": {
        "mini": {"provider": "openai", "model": "mini-2025",
                 "price_in_per_mtok": 1, "price_out_per_mtok": 2},
        "big": {"provider": "openai", "model": "big-2025",
                "price_in_per_mtok": 10, "price_out_per_mtok": 30},
    },
    "buckets": {"code": {"models": ["mini", "big"], "expected_tokens_in": 1000,
                         "expected_tokens_out": 500}},
    "explore_floor": 0.2,
    "policy": {"seed": 7},
    "budget": {"limit_usd": 100, "window_s": 86400},
    "health": {"failures": 3, "min_clients": 1},
    "unknown_bucket": {"action": "error"},
}


class Daemon:
    """bursard on tcp://127.0.0.1:PORT with its files in dir."""

    def __init__(self, dir: pathlib.Path, config: Dict[str, Any],
                 ping_curve: Optional[tuple] = None) -> None:
        self.dir = dir
        self.config = config
        self.ping_curve = ping_curve
        self.proc: Optional[subprocess.Popen] = None
        self.endpoint = ""
        self.log = dir / "bursard.log"

    def start(self) -> "Daemon":
        cfg = self.dir / "bursard.json"
        cfg.write_text(json.dumps(self.config))
        for _ in range(3):  # a port taken between free_port and the bind
            self.endpoint = f"tcp://127.0.0.1:{free_port()}"
            with open(self.log, "ab") as log:
                self.proc = spawn([bin_path("bursard"), "--config", str(cfg),
                                   "--state-dir", str(self.dir / "state"),
                                   "--listen", self.endpoint, "--test-clock"],
                                  stderr=log)
            until = time.monotonic() + 20
            while self.proc.poll() is None and time.monotonic() < until:
                if raw_ping(self.endpoint, 100, self.ping_curve):
                    return self
            if self.proc.poll() is None:
                stop(self.proc)
                pytest.fail(f"bursard did not answer ping; see {self.log}")
        pytest.fail(f"bursard exited at start; see {self.log}:\n{self.log.read_text()}")

    def stop(self) -> Optional[int]:
        return stop(self.proc)

    def cli(self, *args: str, env: Optional[Dict[str, str]] = None) -> str:
        """Runs the bursar CLI against this daemon; its stdout (exit 0)."""
        r = subprocess.run([bin_path("bursar"), "--controller", self.endpoint, *args],
                           capture_output=True, text=True, timeout=30, env=env)
        assert r.returncode == 0, f"bursar {' '.join(args)}: {r.returncode} {r.stderr}"
        return r.stdout


@pytest.fixture
def daemon(tmp_path: pathlib.Path):
    d = Daemon(tmp_path, json.loads(json.dumps(BASE_CONFIG))).start()
    yield d
    d.stop()


@pytest.fixture
def client(daemon: Daemon):
    import bursar

    with bursar.Client(daemon.endpoint, timeout=5.0) as c:
        yield c
