"""CURVE (docs/security.md): bursard with a secret key and an allow-list,
keys made by `bursar keygen`; the client given key files or Z85 text.
Listed keys are served within their roles; an unlisted key, a wrong server
key or no key get no answer (a timeout)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

import bursar
from bursar import keys
from conftest import BASE_CONFIG, Daemon, bin_path

NAMES = ("server", "agent1", "agent2", "fbk", "ops", "stranger")


@pytest.fixture(scope="module")
def keydir(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    for name in NAMES:
        subprocess.run([bin_path("bursar"), "keygen", str(d / name)], check=True,
                       capture_output=True)
    pub = {n: keys.load_key(d / f"{n}.pub") for n in NAMES}
    (d / "clients").write_text(
        "# test allow-list\n"
        f"{pub['agent1']} agent1 agent\n{pub['agent2']} agent2 agent\n"
        f"{pub['fbk']} fbk feedback\n{pub['ops']} ops operator\n")
    return d


@pytest.fixture
def secure(tmp_path, keydir):
    cfg = json.loads(json.dumps(BASE_CONFIG))
    cfg["curve"] = {"secret_key_file": str(keydir / "server.key"),
                    "clients_file": str(keydir / "clients")}
    ops = keys.load_key(keydir / "ops.key", secret=True)
    server = keys.load_key(keydir / "server.pub")
    d = Daemon(tmp_path, cfg, ping_curve=(server, keys.public_key(ops), ops)).start()
    yield d
    d.stop()


def client_of(d, keydir, name, **kw):
    return bursar.Client(d.endpoint, server_key=keydir / "server.pub",
                         secret_key=keydir / f"{name}.key", timeout=kw.pop("timeout", 5),
                         **kw)


def test_key_files_as_keygen_writes_them(keydir):
    text = (keydir / "agent1.key").read_text()
    assert text.startswith("#")  # comments before the key
    sec = keys.load_key(keydir / "agent1.key", secret=True)
    assert len(sec) == 40 and keys.load_key(sec) == sec
    assert keys.public_key(sec) == keys.load_key(str(keydir / "agent1.pub"))
    assert oct(os.stat(keydir / "agent1.key").st_mode & 0o777) == "0o600"


def test_right_keys_are_served_within_their_roles(secure, keydir):
    with client_of(secure, keydir, "agent1") as agent:
        agent.ping()
        d = agent.choose("code")
        assert agent.outcome(d, success=True, cost_usd=0.003).duplicate is False
        with pytest.raises(bursar.ForbiddenError) as ei:
            agent.stats()
        assert ei.value.code == "forbidden"
        with pytest.raises(bursar.ForbiddenError):
            list(agent.export())
        assert [m.name for m in agent.models().models] == ["mini", "big"]
    # Z85 text works as well as files
    sec = keys.load_key(keydir / "ops.key", secret=True)
    srv = keys.load_key(keydir / "server.pub")
    with bursar.Client(secure.endpoint, server_key=srv, secret_key=sec,
                       public_key=keys.public_key(sec), timeout=5) as ops:
        st = ops.stats()
        assert st["budget"]["spent_usd"] == pytest.approx(0.003)
        rows = list(ops.export())
        assert [r["client"] for r in rows] == ["agent1"]
        with pytest.raises(bursar.ForbiddenError) as ei:
            ops.choose("code")
        assert "operator" in ei.value.message


def test_another_clients_decision(secure, keydir):
    with client_of(secure, keydir, "agent1") as a1, \
            client_of(secure, keydir, "agent2") as a2, \
            client_of(secure, keydir, "fbk") as fbk:
        d = a1.choose("code")
        with pytest.raises(bursar.ForbiddenError):
            a2.outcome(d, success=True)
        with pytest.raises(bursar.ForbiddenError):
            a2.escalate(d)
        with pytest.raises(bursar.ForbiddenError):
            fbk.choose("code")
        # the feedback role reports on any decision
        assert fbk.correction(d).duplicate is False
        assert a1.correction(d).duplicate is True


@pytest.mark.parametrize("who", ["stranger", "wrong server key", "no keys"])
def test_wrong_keys_get_no_answer(secure, keydir, who):
    kw = {"timeout": 0.3, "retries": 1}
    if who == "stranger":
        c = client_of(secure, keydir, "stranger", **kw)
    elif who == "wrong server key":
        c = bursar.Client(secure.endpoint, server_key=keydir / "stranger.pub",
                          secret_key=keydir / "agent1.key", **kw)
    else:
        c = bursar.Client(secure.endpoint, **kw)
    with c, pytest.raises(bursar.BursarTimeoutError):
        c.choose("code")
    assert c.counters.timeouts == 2


def test_bad_key_specs(keydir, tmp_path):
    srv = keydir / "server.pub"
    with pytest.raises(ValueError, match="only secret_key was given"):
        bursar.Client("tcp://127.0.0.1:1", secret_key=keydir / "agent1.key")
    with pytest.raises(ValueError, match="only server_key was given"):
        bursar.Client("tcp://127.0.0.1:1", server_key=srv)
    loose = tmp_path / "loose.key"
    loose.write_text((keydir / "agent1.key").read_text())
    loose.chmod(0o644)
    with pytest.raises(ValueError, match=r"loose.key: a secret key file must not be "
                                         r"readable by others \(mode 644; chmod 600"):
        bursar.Client("tcp://127.0.0.1:1", server_key=srv, secret_key=loose)
    bad = tmp_path / "bad.pub"
    bad.write_text("# a comment\n\nnot-a-key\n")
    with pytest.raises(ValueError, match=r"bad.pub:3: not a key \(40 Z85 characters "
                                         r"expected, got 9 characters\)"):
        bursar.Client("tcp://127.0.0.1:1", server_key=bad,
                      secret_key=keydir / "agent1.key")
    empty = tmp_path / "empty.pub"
    empty.write_text("# nothing\n")
    with pytest.raises(ValueError, match="empty.pub: no key in the file"):
        keys.load_key(empty)
    with pytest.raises(ValueError, match="No such file or directory"):
        keys.load_key(tmp_path / "missing.key")
    with pytest.raises(ValueError, match="public_key is not the public key"):
        bursar.Client("tcp://127.0.0.1:1", server_key=srv,
                      secret_key=keydir / "agent1.key",
                      public_key=keydir / "agent2.pub")


def test_write_pair_reads_back(tmp_path):
    pub = keys.write_pair(tmp_path / "me")
    assert keys.load_key(tmp_path / "me.pub") == pub
    assert keys.public_key(keys.load_key(tmp_path / "me.key", secret=True)) == pub
    with pytest.raises(FileExistsError):
        keys.write_pair(tmp_path / "me")
