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

from conftest import BASE_CONFIG, PY_DIR, Daemon, bin_path, free_port, spawn, stop

import bursar  # noqa: E402 (conftest puts agents/python on sys.path)

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


# --models: each model called where the table says, with the key its
# api_key_env names; what the example cannot call never chosen. The
# controller knows four models; the cheapest two it must not call: llama,
# served somewhere the table does not say (sent to another model's host it
# would fail there, a provider error that is the example's own), and
# claude (Anthropic's wire format). mini and big sit on two hosts, each
# with its own key.
TABLE_CONFIG = {
    "models": {
        "llama": {"provider": "openai", "model": "meta-llama/Llama-3.3-70B",
                  "price_in_per_mtok": 0.1, "price_out_per_mtok": 0.1},
        "claude": {"provider": "anthropic", "model": "claude-x",
                   "price_in_per_mtok": 0.2, "price_out_per_mtok": 0.2},
        "mini": {"provider": "openai", "model": "mini-2025",
                 "price_in_per_mtok": 1, "price_out_per_mtok": 2},
        "big": {"provider": "openai", "model": "big-2025",
                "price_in_per_mtok": 10, "price_out_per_mtok": 30},
    },
    "buckets": {"code": {"models": ["llama", "claude", "mini", "big"],
                         "expected_tokens_in": 1000, "expected_tokens_out": 500}},
    "policy": {"name": "cheapest"},
    "explore_floor": 0,
    "budget": {"limit_usd": 100, "window_s": 86400},
    "health": {"failures": 3, "min_clients": 1},
    "unknown_bucket": {"action": "error"},
}


def start_mock(tmp_path, name, script):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(script))
    p = spawn([bin_path("bursar-mock-provider"), "--script", str(path)],
              stdout=subprocess.PIPE)
    line = p.stdout.readline()
    if not line.strip().isdigit():
        stop(p)
        pytest.fail(f"bursar-mock-provider printed no port: {line!r}")
    return p, f"http://127.0.0.1:{int(line)}"


def mock_stats(url):
    with urllib.request.urlopen(url + "/stats") as resp:
        return json.loads(resp.read())["models"]


@pytest.fixture
def two_hosts(tmp_path):
    """bursard with TABLE_CONFIG; host A (key ka) answers mini with text
    that fails validation, host B (key kb) answers big with the JSON; the
    models table: mini on A with $KEY_A, big on B with $KEY_B, claude."""
    d = Daemon(tmp_path, json.loads(json.dumps(TABLE_CONFIG))).start()
    a, url_a = start_mock(tmp_path, "a", {"require_key": "ka", "models": {
        "mini-2025": {"default": {"content": "42", "usage": {"in": 100, "out": 20}}}}})
    b, url_b = start_mock(tmp_path, "b", {"require_key": "kb", "models": {
        "big-2025": {"default": {"content": "{\"answer\": 42}",
                                 "usage": {"in": 100, "out": 30}}}}})
    table = {"models": {
        "mini": {"provider": "openai", "model": "mini-2025", "base_url": url_a + "/v1",
                 "api_key_env": "KEY_A", "price_in_per_mtok": 1, "price_out_per_mtok": 2},
        "big": {"provider": "openai", "model": "big-2025", "base_url": url_b + "/v1",
                "api_key_env": "KEY_B", "price_in_per_mtok": 10, "price_out_per_mtok": 30},
        "claude": {"provider": "anthropic", "model": "claude-x", "base_url": url_a,
                   "api_key_env": "KEY_A", "price_in_per_mtok": 0.2,
                   "price_out_per_mtok": 0.2}}}
    path = tmp_path / "models.json"
    path.write_text(json.dumps(table))
    yield d, path, url_a, url_b
    stop(a)
    stop(b)
    d.stop()


def run_with_table(daemon, table, **keys):
    env = {k: v for k, v in os.environ.items() if k not in ("KEY_A", "KEY_B")}
    env.update(keys, PYTHONPATH=str(PY_DIR))
    return subprocess.run(
        [sys.executable, str(PY_DIR / "examples" / "route_openai.py"),
         "--controller", daemon.endpoint, "--bucket", "code", "--models", str(table),
         'Give {"answer": N} for 6 x 7'],
        capture_output=True, text=True, timeout=60, env=env)


def test_route_openai_models_table(two_hosts):
    daemon, table, url_a, url_b = two_hosts
    r = run_with_table(daemon, table, KEY_A="ka", KEY_B="kb")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"answer": 42}
    assert "skip: llama: not in " + str(table) in r.stderr
    assert 'skip: claude: provider "anthropic"' in r.stderr
    with bursar.Client(daemon.endpoint, timeout=5.0) as c:
        rows = list(c.export())
    # never offered what it cannot call; mini (invalid) escalated to big
    assert [(r["model"], r["step"], r["outcome"]) for r in rows] == [
        ("mini", 0, 0), ("big", 1, 1)], rows
    assert not any(r["provider_error"] for r in rows)
    assert all(set(r["offered"]) <= {"mini", "big"} for r in rows), rows
    # each host saw its own model only, with its own key (require_key)
    assert list(mock_stats(url_a)) == ["mini-2025"]
    assert mock_stats(url_a)["mini-2025"]["status"] == {"200": 1}
    assert list(mock_stats(url_b)) == ["big-2025"]
    assert mock_stats(url_b)["big-2025"]["status"] == {"200": 1}


def test_route_openai_models_table_key_unset(two_hosts):
    # $KEY_B unset: big is not called (nor reported), only mini is left
    daemon, table, url_a, url_b = two_hosts
    r = run_with_table(daemon, table, KEY_A="ka")
    assert r.returncode == 1 and r.stdout == ""
    assert "skip: big: $KEY_B is not set" in r.stderr
    assert "no model left" in r.stderr and "no valid answer" in r.stderr
    with bursar.Client(daemon.endpoint, timeout=5.0) as c:
        rows = list(c.export())
    assert [(r["model"], r["outcome"], r["provider_error"]) for r in rows] == [
        ("mini", 0, None)], rows
    assert mock_stats(url_b) == {}


def run_bare(*args, env=None):
    return subprocess.run(
        [sys.executable, str(PY_DIR / "examples" / "route_openai.py"), *args, "prompt"],
        capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHONPATH=str(PY_DIR), **(env or {})))


def test_route_openai_controller_down():
    # nothing listening: one line naming bursard's endpoint, no traceback
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    r = run_bare("--controller", endpoint, "--base-url", "http://127.0.0.1:9/v1",
                 env={"BURSAR_API_KEY": "k"})
    assert r.returncode == 1
    assert r.stderr.startswith(f"route_openai.py: bursard at {endpoint}: timeout"), r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


@pytest.mark.parametrize("model,said", [
    ({"base_ur1": "https://x.example/v1"}, 'field "models.m.base_ur1" is not a model field'),
    ({"base_url": "http://x.example/v1"},
     'field "models.m.base_url": http is allowed only to a loopback address'),
    ({"price_in_per_mtok": "1"}, 'field "models.m.price_in_per_mtok" must be a number'),
    ({"provider": "azure"}, 'field "models.m.provider" must be "openai" or "anthropic"'),
])
def test_route_openai_bad_table(tmp_path, model, said):
    m = {"provider": "openai", "price_in_per_mtok": 1, "price_out_per_mtok": 2}
    m.update(model)
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": {"m": m}}))
    r = run_bare("--models", str(path))
    assert r.returncode == 2 and f"{path}: {said}" in r.stderr, r.stderr


def test_route_openai_usage_errors():
    r = run_bare()
    assert r.returncode == 2 and "give --models FILE" in r.stderr, r.stderr
    r = run_bare("--base-url", "http://example.com/v1", env={"BURSAR_API_KEY": "k"})
    assert r.returncode == 2, r.stderr
    assert "--base-url: http is allowed only to a loopback address" in r.stderr
