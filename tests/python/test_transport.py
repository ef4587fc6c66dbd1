"""Timeouts and retries (the lazy pirate: a fresh socket per attempt), with
the real bursard stopped (SIGSTOP) and with nothing listening; and the
strict reading of replies, with a stand-in ROUTER socket that answers
what the test scripts (the only way to get malformed replies)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Callable, List

import pytest
import zmq

import bursar
from conftest import free_port


def test_nothing_listening_times_out_after_every_attempt():
    with bursar.Client(f"tcp://127.0.0.1:{free_port()}", timeout=0.2, retries=2) as c:
        t0 = time.monotonic()
        with pytest.raises(bursar.BursarTimeoutError) as ei:
            c.ping()
        took = time.monotonic() - t0
    assert 0.55 <= took < 2.5, took
    e = ei.value
    assert isinstance(e, TimeoutError) and isinstance(e, bursar.BursarError)
    assert e.code == "timeout" and e.retryable
    assert "3 attempt(s)" in e.message and "ping" in e.message
    assert c.counters.timeouts == 3 and c.counters.requests == 0


def test_no_retries():
    with bursar.Client(f"tcp://127.0.0.1:{free_port()}", timeout=0.1, retries=0) as c:
        with pytest.raises(bursar.BursarTimeoutError):
            c.choose("code")
        assert c.counters.timeouts == 1


def _resume_after(pid: int, seconds: float) -> threading.Timer:
    t = threading.Timer(seconds, os.kill, (pid, signal.SIGCONT))
    t.start()
    return t


def test_feedback_retried_is_applied_once(daemon, client):
    d = client.choose("code")
    slow = bursar.Client(daemon.endpoint, timeout=0.3, retries=5)
    slow.ping()  # connected: the first attempt reaches the stopped daemon
    os.kill(daemon.proc.pid, signal.SIGSTOP)
    t = _resume_after(daemon.proc.pid, 0.45)
    try:
        with slow:
            ack = slow.outcome(d, success=True, cost_usd=0.0042)
            timeouts = slow.counters.timeouts
    finally:
        t.join()
        os.kill(daemon.proc.pid, signal.SIGCONT)
    # the first attempt reached the daemon and was applied when it woke;
    # the retry on a fresh socket was the duplicate, and its answer is the
    # one the client read
    assert timeouts >= 1
    assert ack.duplicate is True
    st = client.stats()
    assert st["budget"]["spent_usd"] == pytest.approx(0.0042)
    assert sum(a["rewards"] for a in st["buckets"][0]["arms"]) == 1


def test_choose_retried_may_orphan_a_decision(daemon, client):
    slow = bursar.Client(daemon.endpoint, timeout=0.3, retries=5)
    slow.ping()
    os.kill(daemon.proc.pid, signal.SIGSTOP)
    t = _resume_after(daemon.proc.pid, 0.45)
    try:
        with slow:
            d = slow.choose("code")
    finally:
        t.join()
        os.kill(daemon.proc.pid, signal.SIGCONT)
    client.outcome(d, success=True)
    deadline = time.monotonic() + 5
    while True:
        rows = list(client.export())
        if len(rows) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    # two decisions: the one answered, and the first attempt's, pending
    # until decision_ttl_s
    assert sorted(r["status"] for r in rows) == ["done", "pending"]
    assert [r["decision_id"] for r in rows if r["status"] == "done"] == [d.id]


# ---------------------------------------------------------- a stand-in


class StandIn:
    """A ROUTER socket on loopback answering each request with
    respond(n, request) (n from 1): bytes, a list of frames, or None
    (no answer)."""

    def __init__(self, respond: Callable[[int, dict], object]) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("tcp://127.0.0.1:*")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.respond = respond
        self.requests: List[dict] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            if not self.sock.poll(50):
                continue
            ident, empty, body = self.sock.recv_multipart()
            self.requests.append(json.loads(body))
            out = self.respond(len(self.requests), self.requests[-1])
            if out is None:
                continue
            frames = out if isinstance(out, list) else [out]
            self.sock.send_multipart([ident, empty, *frames])

    def close(self) -> None:
        self.done.set()
        self.thread.join()
        self.sock.close(0)
        self.ctx.term()


@pytest.fixture
def standin():
    made: List[StandIn] = []

    def make(respond):
        s = StandIn(respond)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def test_a_late_reply_is_never_taken_for_another(standin):
    def respond(n, req):
        if n == 1:
            time.sleep(0.35)  # the client gave up on this attempt
        return json.dumps({"ok": True, "n": n}).encode()

    s = standin(respond)
    with bursar.Client(s.endpoint, timeout=0.2, retries=3) as c:
        assert c.request({"op": "ping"})["n"] == 2
        assert c.request({"op": "ping"})["n"] == 3
        assert c.counters.timeouts == 1
    assert [r["op"] for r in s.requests] == ["ping"] * 3


GOOD_CHOICE = {"ok": True, "decision_id": "AgAAtoken", "model": "m",
               "propensity": 0.5, "fallbacks": ["n"], "expected_cost_usd": 0.01}


def _choice(**change):
    o = dict(GOOD_CHOICE)
    for k, v in change.items():
        if v is _DROP:
            o.pop(k)
        else:
            o[k] = v
    return json.dumps(o).encode()


_DROP = object()

BAD_CHOICES = [
    (_choice(propensity=_DROP), 'reply field "propensity" missing'),
    (_choice(propensity="0.5"), 'reply field "propensity" must be a number, got a string'),
    (_choice(propensity=True), 'reply field "propensity" must be a number, got a boolean'),
    (_choice(propensity=0), 'reply field "propensity" must be in (0, 1]'),
    (_choice(propensity=1.5), 'reply field "propensity" must be in (0, 1]'),
    (_choice(model=_DROP), 'reply field "model" missing'),
    (_choice(model=""), 'reply field "model" must have 1 to 63 bytes'),
    (_choice(model="m" * 64), 'reply field "model" must have 1 to 63 bytes'),
    (_choice(decision_id=_DROP), 'reply field "decision_id" missing'),
    (_choice(decision_id="no spaces"), 'reply field "decision_id" must be a decision token'),
    (_choice(fallbacks=_DROP), 'reply field "fallbacks" missing'),
    (_choice(fallbacks="n"), 'reply field "fallbacks" must be an array'),
    (_choice(fallbacks=["n", 3]), 'reply field "fallbacks[1]" must be a string, got a number'),
    (_choice(fallbacks=["x"] * 65), 'reply field "fallbacks" holds more than 64 names'),
    (_choice(expected_cost_usd=_DROP), 'reply field "expected_cost_usd" missing'),
    (_choice(expected_cost_usd=-1), 'reply field "expected_cost_usd" must be >= 0'),
    (_choice(over_budget="yes"), 'reply field "over_budget" must be a boolean'),
    (b'{"ok":true,"decision_id":"AgAA","model":"m","propensity":NaN,'
     b'"fallbacks":[],"expected_cost_usd":null}', "reply is not valid JSON"),
    (b"not json", "reply is not valid JSON"),
    (b"[1,2]", "reply must be a JSON object, got an array"),
    (b'{"decision_id":"x"}', 'reply field "ok" missing'),
    (b'{"ok":"true"}', 'reply field "ok" must be a boolean, got a string'),
    (b'{"ok":false}', 'reply field "error" missing'),
    (b'{"ok":false,"error":{"code":"unknown_bucket"}}', 'reply field "error.message" missing'),
    (b'{"ok":false,"error":{"code":7,"message":"m"}}', 'reply field "error.code" must be a string'),
    ([b'{"ok":true}', b"{}"], "a reply is one frame, got 2 frames"),
]


@pytest.mark.parametrize("reply,message", BAD_CHOICES)
def test_malformed_choose_replies_name_the_field(standin, reply, message):
    s = standin(lambda n, req: reply)
    with bursar.Client(s.endpoint, timeout=2) as c:
        with pytest.raises(bursar.ProtocolError) as ei:
            c.choose("code")
    assert ei.value.code == "bad_reply"
    assert message in ei.value.message, ei.value.message


def test_good_choose_reply_and_unknown_fields(standin):
    s = standin(lambda n, req: _choice(expected_cost_usd=None, newer_field=[1],
                                       explored=True))
    with bursar.Client(s.endpoint, timeout=2, tenant="t1") as c:
        d = c.choose("code", exclude=["x"])
    assert d == bursar.Decision(id="AgAAtoken", bucket="code", model="m",
                                propensity=0.5, fallbacks=("n",),
                                expected_cost_usd=None, explored=True,
                                tenant="t1", excluded=("x",))
    assert s.requests == [{"op": "choose", "bucket": "code", "exclude": ["x"],
                           "tenant": "t1"}]


def test_an_unknown_error_code_reads_as_internal_error(standin):
    s = standin(lambda n, req: b'{"ok":false,"error":{"code":"newfangled",'
                               b'"message":"a newer daemon"}}')
    with bursar.Client(s.endpoint, timeout=2) as c:
        with pytest.raises(bursar.UnavailableError) as ei:
            c.outcome("AgAAtoken", success=True)
    assert ei.value.code == "internal_error"
    assert ei.value.message == "newfangled: a newer daemon"


MODELS = {"ok": True,
          "models": [{"name": "a", "provider": "openai", "model": "a-1",
                      "price_in_per_mtok": 1, "price_out_per_mtok": 2},
                     {"name": "b", "provider": "anthropic", "model": "b-1",
                      "price_in_per_mtok": 3, "price_out_per_mtok": 4}],
          "buckets": [{"name": "code", "models": ["a", "b"],
                       "expected_tokens_in": 10, "expected_tokens_out": 5}]}


def _models(path: str, value: object) -> bytes:
    o = json.loads(json.dumps(MODELS))
    *keys, last = path.split(".")
    at = o
    for k in keys:
        at = at[int(k)] if k.isdigit() else at[k]
    if value is _DROP:
        del at[last if not last.isdigit() else int(last)]
    else:
        at[last if not last.isdigit() else int(last)] = value
    return json.dumps(o).encode()


@pytest.mark.parametrize("reply,message", [
    (_models("models.0.price_in_per_mtok", _DROP), 'reply field "models[0].price_in_per_mtok" missing'),
    (_models("models.1.provider", "cohere"), 'reply field "models[1].provider" must be "openai" or "anthropic"'),
    (_models("models.1.name", "a"), 'reply field "models[1].name": "a" named twice'),
    (_models("buckets.0.models.1", "zzz"), 'reply field "buckets[0].models[1]": no model "zzz"'),
    (_models("buckets.0.models.1", "a"), 'reply field "buckets[0].models[1]": model "a" named twice'),
    (_models("buckets.0.expected_tokens_out", _DROP), 'reply field "buckets[0].expected_tokens_out" missing'),
    (_models("models", {}), 'reply field "models" must be an array, got an object'),
])
def test_malformed_models_replies_name_the_field(standin, reply, message):
    s = standin(lambda n, req: reply)
    with bursar.Client(s.endpoint, timeout=2) as c:
        with pytest.raises(bursar.ProtocolError) as ei:
            c.models()
    assert message in ei.value.message, ei.value.message


def test_models_of_an_older_controller(standin):
    s = standin(lambda n, req: _models("buckets", _DROP))
    with bursar.Client(s.endpoint, timeout=2) as c:
        cat = c.models()
    assert cat.buckets is None and [m.name for m in cat.models] == ["a", "b"]
    assert cat.model("b").health is None


def test_malformed_stats_and_feedback_replies(standin):
    replies = [b'{"ok":true,"duplicate":1}', b'{"ok":true,"time":1}']
    s = standin(lambda n, req: replies[n - 1])
    with bursar.Client(s.endpoint, timeout=2) as c:
        with pytest.raises(bursar.ProtocolError, match='"duplicate" must be a boolean'):
            c.correction("AgAAtoken")
        with pytest.raises(bursar.ProtocolError, match='reply field "decisions" missing'):
            c.stats()


def test_arguments():
    with pytest.raises(ValueError, match="timeout"):
        bursar.Client("tcp://127.0.0.1:1", timeout=0)
    with pytest.raises(ValueError, match="retries"):
        bursar.Client("tcp://127.0.0.1:1", retries=-1)
    with pytest.raises(ValueError, match="endpoint"):
        bursar.Client("")
    c = bursar.Client("nonsense://x", timeout=0.1)
    with pytest.raises(ValueError, match="endpoint 'nonsense://x'"):
        c.ping()
    c.close()
    c.close()
    with pytest.raises(RuntimeError, match="closed"):
        c.ping()
