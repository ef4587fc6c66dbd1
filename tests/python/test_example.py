"""docs/python.md's example, agents/python/examples/route_openai.py, run
as a program against the real bursard and bursar-mock-provider (OpenAI's
wire format): the cheap model's provider fails once (503: a provider
error, the fallback serves) and then answers text that fails validation
(an escalation to the other model), the policy being "cheapest"; every run ends with the valid
answer, and the controller's log holds what happened, with the cost
priced from the tokens the mock reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from conftest import BASE_CONFIG, PY_DIR, Daemon, bin_path, spawn, stop

SCRIPT = {
    "require_key": "sk-test",
    "models": {
        "mini-2025": {"sequence": [{"status": 503}],
                      "default": {"content": "Sure! The answer is 42.",
                                  "usage": {"in": 100, "out": 20}}},
        "big-2025": {"default": {"content": "{\"answer\": 42}",
                                 "usage": {"in": 100, "out": 30}}},
    },
}
RUNS = 3


@pytest.fixture
def daemon(tmp_path):
    """bursard whose policy always chooses the cheapest model it may (mini
    first, big once mini is excluded), so that every run takes the same
    path: the first run mini's 503, then mini's invalid answers."""
    cfg = json.loads(json.dumps(BASE_CONFIG))
    cfg["policy"] = {"name": "cheapest"}
    cfg["explore_floor"] = 0
    d = Daemon(tmp_path, cfg).start()
    yield d
    d.stop()


@pytest.fixture
def mock(tmp_path):
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    p = spawn([bin_path("bursar-mock-provider"), "--script", str(script)],
              stdout=subprocess.PIPE)
    line = p.stdout.readline()
    if not line.strip().isdigit():
        stop(p)
        pytest.fail(f"bursar-mock-provider printed no port: {line!r}")
    yield f"http://127.0.0.1:{int(line)}"
    stop(p)


def run_example(daemon, base_url, api_key="sk-test"):
    env = dict(os.environ, PYTHONPATH=str(PY_DIR), EXAMPLE_KEY=api_key)
    return subprocess.run(
        [sys.executable, str(PY_DIR / "examples" / "route_openai.py"),
         "--controller", daemon.endpoint, "--bucket", "code",
         "--base-url", base_url + "/v1", "--api-key-env", "EXAMPLE_KEY",
         'Give {"answer": N} for 6 x 7'],
        capture_output=True, text=True, timeout=60, env=env)


def test_route_openai_example(daemon, client, mock):
    for i in range(RUNS):
        r = run_example(daemon, mock)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == {"answer": 42}, r.stdout
        assert "bursar chose" in r.stderr

    cat = client.models()
    mini, big = cat.model("mini"), cat.model("big")
    rows = list(client.export())
    by_id = {r["decision_id"]: r for r in rows}
    assert all(r["status"] == "done" for r in rows), rows
    firsts = [r for r in rows if r["step"] == 0]
    assert len(firsts) == RUNS

    # the one 503: a provider error on mini, big served the step
    errs = [r for r in rows if r["provider_error"]]
    assert len(errs) == 1
    assert errs[0]["model"] == "mini" and errs[0]["provider_error"] == "HTTP 503"
    assert errs[0]["served_model"] == "big" and errs[0]["outcome"] == 1
    assert errs[0]["cost_usd"] == pytest.approx(big.cost_usd(100, 30))

    # mini's other answers failed validation, each escalated to big
    failed = [r for r in rows if r["model"] == "mini" and not r["provider_error"]]
    assert len(failed) == RUNS - 1
    for r in failed:
        assert r["outcome"] == 0 and r["served_model"] is None
        assert r["cost_usd"] == pytest.approx(mini.cost_usd(100, 20))
        assert r["cost_source"] == "reported"
        up = [e for e in rows if e["escalates"] == r["decision_id"]]
        assert len(up) == 1 and up[0]["step"] == 1
        assert up[0]["model"] == "big" and up[0]["outcome"] == 1
    assert len(rows) == RUNS + len(failed)
    assert all(by_id[r["escalates"]]["model"] == "mini" for r in rows if r["step"] == 1)

    # the provider saw exactly these calls, and the ledger their cost
    with urllib.request.urlopen(mock + "/stats") as resp:
        seen = json.loads(resp.read())["models"]
    assert seen["mini-2025"]["status"] == {"503": 1, "200": len(failed)}
    assert seen["big-2025"]["requests"] == RUNS
    spent = client.stats()["budget"]["spent_usd"]
    assert spent == pytest.approx(sum(r["cost_usd"] for r in rows))


def test_route_openai_example_without_a_valid_answer(daemon, client, mock):
    # a wrong API key: every call fails (401), each reported, nothing valid
    r = run_example(daemon, mock, api_key="sk-wrong")
    assert r.returncode == 1 and r.stdout == ""
    assert "no valid answer" in r.stderr and "HTTP 401" in r.stderr
    rows = list(client.export())
    assert rows and all(r["provider_error"] == "HTTP 401" for r in rows)
