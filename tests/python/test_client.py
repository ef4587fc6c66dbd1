"""The Python client against the real bursard: choose and feedback seen in
stats and in the export (read by the bursar CLI too), corrections,
provider errors, duplicates, escalations, tenants, and the protocol's
error codes."""

from __future__ import annotations

import json
import time

import pytest

import bursar
from bursar import Decision


def arm(stats, bucket, model):
    for b in stats["buckets"]:
        if b["name"] == bucket:
            for a in b["arms"]:
                if a["model"] == model:
                    return a
    raise AssertionError(f"no arm {bucket}/{model} in stats")


def export_all(client, n):
    """The log by token once it holds n decisions: a choose is answered
    before its record is committed (docs/protocol.md, choose)."""
    deadline = time.monotonic() + 5
    while True:
        rows = {r["decision_id"]: r for r in client.export()}
        if len(rows) >= n or time.monotonic() > deadline:
            assert len(rows) == n
            return rows
        time.sleep(0.02)


def cli_export(daemon):
    """The decision log as the bursar CLI prints it (JSONL), by token."""
    rows = [json.loads(line) for line in daemon.cli("export").splitlines() if line]
    return {r["decision_id"]: r for r in rows}


def test_ping_and_models(client):
    client.ping()
    cat = client.models()
    assert [m.name for m in cat.models] == ["mini", "big"]
    mini = cat.model("mini")
    assert (mini.provider, mini.model) == ("openai", "mini-2025")
    assert (mini.price_in_per_mtok, mini.price_out_per_mtok) == (1, 2)
    assert mini.health == "ok"
    assert mini.cost_usd(1000, 500) == pytest.approx(0.002)
    code = cat.bucket("code")
    assert code.models == ("mini", "big")
    assert (code.expected_tokens_in, code.expected_tokens_out) == (1000, 500)
    with pytest.raises(KeyError):
        cat.bucket("nope")


def test_choose_outcome_roundtrip(client, daemon):
    d = client.choose("code")
    assert isinstance(d, Decision)
    assert d.bucket == "code" and d.model in ("mini", "big")
    assert set(d.candidates) == {"mini", "big"}
    assert 0 < d.propensity <= 1
    assert d.expected_cost_usd == pytest.approx(
        client.models().model(d.model).cost_usd(1000, 500))
    before = client.stats("code")
    assert before["budget"]["reserved_usd"] == pytest.approx(d.expected_cost_usd)

    ack = client.outcome(d, success=True, cost_usd=0.0123, tokens_in=1200,
                         tokens_out=340, latency_ms=812.5)
    assert ack.duplicate is False

    st = client.stats()
    assert st["decisions"] == 1
    assert st["budget"]["spent_usd"] == pytest.approx(0.0123)
    assert st["budget"]["reserved_usd"] == pytest.approx(0)
    a = arm(st, "code", d.model)
    assert (a["pulls"], a["rewards"], a["alpha"], a["beta"]) == (1, 1, 2, 1)

    # the log, read by the client and by the bursar CLI
    rows = list(client.export())
    assert len(rows) == 1
    row = cli_export(daemon)[d.id]
    assert row == rows[0]
    assert row["status"] == "done" and row["outcome"] == 1 and row["reward"] == 1
    assert row["model"] == d.model and row["propensity"] == pytest.approx(d.propensity)
    assert row["cost_usd"] == pytest.approx(0.0123) and row["cost_source"] == "reported"
    assert row["latency_ms"] == pytest.approx(812.5)
    assert row["step"] == 0 and row["escalates"] is None
    assert client.counters.requests >= 5 and client.counters.timeouts == 0


def test_outcome_priced_from_tokens_and_reward(client):
    d = client.choose("code")
    client.outcome(d.id, reward=0.25, tokens_in=2000, tokens_out=1000)  # a token
    price = client.models().model(d.model)
    st = client.stats()
    assert st["budget"]["spent_usd"] == pytest.approx(price.cost_usd(2000, 1000))
    a = arm(st, "code", d.model)
    assert (a["alpha"], a["beta"]) == (pytest.approx(1.25), pytest.approx(1.75))


def test_duplicate_feedback_changes_nothing(client):
    d = client.choose("code")
    assert client.outcome(d, success=True, cost_usd=0.01).duplicate is False
    st = client.stats()
    again = client.outcome(d, success=False, cost_usd=0.5)
    assert again.duplicate is True
    assert client.counters.duplicates == 1
    st2 = client.stats()
    assert st2["budget"]["spent_usd"] == pytest.approx(st["budget"]["spent_usd"])
    assert arm(st2, "code", d.model) == arm(st, "code", d.model)
    assert client.correction(d).duplicate is False
    assert client.correction(d).duplicate is True


def test_correction_after_and_before_outcome(client):
    d = client.choose("code")
    client.outcome(d, success=True)
    a0 = arm(client.stats(), "code", d.model)
    assert client.correction(d).duplicate is False
    a1 = arm(client.stats(), "code", d.model)
    assert (a1["alpha"], a1["beta"]) == (a0["alpha"] - 1, a0["beta"] + 1)
    row = {r["decision_id"]: r for r in client.export()}[d.id]
    assert row["corrected"] is True and row["reward"] == 0 and row["outcome"] == 1

    e = client.choose("code")
    client.correction(e)  # before the outcome: the outcome counts as a failure
    client.outcome(e, success=True)
    row = {r["decision_id"]: r for r in client.export()}[e.id]
    assert row["corrected"] is True and row["reward"] == 0


def test_provider_error_then_fallback_served(client):
    d = client.choose("code")
    fb = d.fallbacks[0]
    assert client.provider_error(d, "HTTP 503").duplicate is False
    st = client.stats()
    h = {x["model"]: x for x in st["health"]}
    assert h[d.model]["errors_total"] == 1
    assert h[d.model]["consecutive_failures"] == 1
    assert client.provider_error(d, "HTTP 503").duplicate is True
    client.outcome(d, success=True, model=fb, cost_usd=0.02)
    row = {r["decision_id"]: r for r in client.export()}[d.id]
    assert row["provider_error"] == "HTTP 503"
    assert row["served_model"] == fb and row["status"] == "done"
    a = arm(client.stats(), "code", fb)
    assert a["rewards"] == 1


def test_escalate_links_the_cascade(client):
    d = client.choose("code")
    client.outcome(d, success=False, cost_usd=0.001)
    e = client.escalate(d)
    assert e.escalates == d.id and e.excluded == (d.model,)
    assert e.model != d.model and e.fallbacks == ()
    assert e.propensity == 1
    client.outcome(e, success=True)
    rows = {r["decision_id"]: r for r in client.export()}
    assert rows[e.id]["step"] == 1
    assert rows[e.id]["escalates"] == d.id
    assert rows[e.id]["escalates_seq"] == rows[d.id]["seq"]
    # every model tried: nothing left
    with pytest.raises(bursar.UnavailableError) as ei:
        client.escalate(e)
    assert ei.value.code == "no_model_available"


def test_tenant_recorded(client):
    client.tenant = "acme"
    d = client.choose("code")
    e = client.choose("code", tenant="other.app")
    client.tenant = None
    f = client.choose("code")
    assert (d.tenant, e.tenant, f.tenant) == ("acme", "other.app", None)
    rows = export_all(client, 3)
    assert rows[d.id]["tenant"] == "acme"
    assert rows[e.id]["tenant"] == "other.app"
    assert "tenant" not in rows[f.id]
    with pytest.raises(ValueError, match="tenant"):
        client.tenant = "not a tenant!"
    with pytest.raises(ValueError, match="tenant"):
        client.choose("code", tenant="x" * 32)


def test_unknown_bucket(client):
    with pytest.raises(bursar.NotFoundError) as ei:
        client.choose("cod")
    assert ei.value.code == "unknown_bucket"
    assert '"cod"' in ei.value.message and "bucket" in ei.value.message
    assert isinstance(ei.value, bursar.BursarError) and not ei.value.retryable
    with pytest.raises(bursar.NotFoundError) as ei:
        client.stats("cod")
    assert ei.value.code == "unknown_bucket"


def test_forged_and_unknown_decisions(client):
    d = client.choose("code")
    # one character of the token changed: the MAC no longer holds
    i = len(d.id) // 2
    forged = d.id[:i] + ("A" if d.id[i] != "A" else "B") + d.id[i + 1:]
    for token in (forged, d.id[:-4], "AgAAAQAAAAAAAAB"):
        with pytest.raises(bursar.NotFoundError) as ei:
            client.outcome(token, success=True)
        assert ei.value.code == "unknown_decision", token
        assert "decision_id" in ei.value.message
    fake = Decision(id=forged, bucket="code", model="mini", propensity=1,
                    fallbacks=(), expected_cost_usd=None)
    with pytest.raises(bursar.NotFoundError) as ei:
        client.escalate(fake)
    assert ei.value.code == "unknown_decision" and "escalates" in ei.value.message
    # nothing of it reached the books
    assert client.stats()["budget"]["spent_usd"] == 0
    # not a token at all: refused before it is sent
    with pytest.raises(ValueError, match="decision_id"):
        client.outcome("not a token!", success=True)


def test_controller_refusals_name_the_field(client):
    d = client.choose("code")
    with pytest.raises(bursar.NotFoundError) as ei:
        client.outcome(d, success=True, model="gpt-9")
    assert ei.value.code == "unknown_model"
    with pytest.raises(bursar.InvalidRequestError) as ei:
        client.outcome(d, success=True, tokens_in=10**9)
    assert ei.value.code == "invalid_value" and "tokens_in" in ei.value.message
    r = client.request({"op": "feedback", "decision_id": d.id, "kind": "outcome"})
    assert r["ok"] is False and r["error"]["code"] == "missing_field"
    with pytest.raises(bursar.InvalidRequestError) as ei:
        client.feedback(d, "outcome", success=True, reward=0.5)
    assert ei.value.code == "invalid_value"
    r = client.request({"op": "frobnicate"})
    assert r["error"]["code"] == "unknown_op"


def test_bad_arguments_refused_before_sending(client):
    d = client.choose("code")
    n = client.counters.requests
    with pytest.raises(ValueError, match="exactly one of success and reward"):
        client.outcome(d)
    with pytest.raises(ValueError, match="exactly one of success and reward"):
        client.outcome(d, success=True, reward=1.0)
    with pytest.raises(ValueError, match="reward"):
        client.outcome(d, reward=1.5)
    with pytest.raises(ValueError, match="cost_usd"):
        client.outcome(d, success=True, cost_usd=-1)
    with pytest.raises(ValueError, match="tokens_out"):
        client.outcome(d, success=True, tokens_out=1.5)
    with pytest.raises(TypeError, match="success"):
        client.outcome(d, success=1)
    with pytest.raises(ValueError, match="bucket"):
        client.choose("")
    with pytest.raises(ValueError, match="bucket"):
        client.choose("b" * 64)
    with pytest.raises(TypeError, match="exclude"):
        client.choose("code", exclude="mini")
    with pytest.raises(ValueError, match="kind"):
        client.feedback(d, "praise")
    assert client.counters.requests == n


def test_export_pages(client):
    ids = [client.choose("code").id for _ in range(5)]
    assert list(export_all(client, 5)) == ids
    assert [r["decision_id"] for r in client.export(limit=2)] == ids
    assert [r["decision_id"] for r in client.export(since=0, limit=10000)] == ids
