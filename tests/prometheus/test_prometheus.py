#!/usr/bin/python3
"""test_prometheus.py - a real Prometheus server scraping bursard and
bursar-gateway on loopback (issue 12).

Starts, in a temporary directory: bursar-mock-provider (the stand-in for
the LLM providers), bursard (--metrics 127.0.0.1:0, a bearer token from
metrics.token_env), bursar-gateway (--metrics 127.0.0.1:PORT) in front of
both, and Prometheus (Debian's `prometheus`) scraping both every second,
bursard with `authorization: {credentials_file: ...}` as docs/controller.md
shows. Checks both expositions with `promtool check metrics`, runs traffic
(the `bursar` CLI: choose and feedback; chat completions through the
gateway), then asks Prometheus' HTTP API (/api/v1/query) and compares with
`bursar stats --json`: the decision counter (in all and per arm: exact),
the spend and the shadow price (to 1e-9, relative), and the gateway's
request counter (exact).

Environment: BURSAR_BIN_DIR (the programs), BURSAR_SOURCE_DIR (the
repository). Python's standard library only. Fails, never skips, when
prometheus or promtool is missing (apt-get install prometheus). Every
process it started is stopped on the way out, failure or not.
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

SEED = 12  # the traffic's choices of bucket and outcome
N_CHOOSE = 30  # decisions made with the bursar CLI
N_CHAT = 6  # chat completions through the gateway
REL = 1e-9  # floats: relative tolerance

procs = []  # (name, Popen)
tmp = None


def fail(msg):
    sys.stderr.write("test_prometheus: FAIL: %s\n" % msg)
    sys.exit(1)


def cleanup():
    for name, p in reversed(procs):
        if p.poll() is None:
            p.terminate()
    deadline = time.time() + 10
    for name, p in reversed(procs):
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    procs.clear()
    if tmp and os.environ.get("BURSAR_KEEP_TMP") is None:
        shutil.rmtree(tmp, ignore_errors=True)


def on_signal(sig, frame):
    cleanup()
    sys.exit(128 + sig)


def need(path_or_cmd, pkg):
    p = shutil.which(path_or_cmd)
    if not p:
        fail("%s is missing: apt-get install %s (scripts/deps.sh installs it)"
             % (path_or_cmd, pkg))
    return p


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def log_tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


def spawn(name, argv, stdout=None, env=None):
    """Starts a program; its stderr in tmp/NAME.log."""
    err = open(os.path.join(tmp, name + ".log"), "w")
    out = open(stdout, "w") if stdout else subprocess.DEVNULL
    p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                         env=env)
    procs.append((name, p))
    return p


def wait_for(what, fn, timeout, proc=None, log=None):
    """Polls fn() until it returns a true value; fails after timeout s."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            fail("%s: the process exited (%d) while waiting for %s:\n%s"
                 % (proc.args[0], proc.returncode, what,
                    log_tail(log) if log else ""))
        try:
            v = fn()
            if v:
                return v
            last = v
        except (OSError, ValueError, urllib.error.URLError) as e:
            last = e
        time.sleep(0.2)
    fail("no %s after %d s (last: %r)%s"
         % (what, timeout, last, "\n" + log_tail(log) if log else ""))


def first_line(path):
    with open(path) as f:
        line = f.readline()
    return line if line.endswith("\n") else None


def http(url, data=None, headers=None, timeout=10):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read().decode()


# ------------------------------------------------------------ the programs

def start_mock(bin_dir, src):
    out = os.path.join(tmp, "mock.port")
    p = spawn("mock", [os.path.join(bin_dir, "bursar-mock-provider"),
                       "--script",
                       os.path.join(src, "agents/examples/gateway-mock.json")],
              stdout=out)
    line = wait_for("port line of bursar-mock-provider",
                    lambda: first_line(out), 20, p,
                    os.path.join(tmp, "mock.log"))
    return int(line)


def start_bursard(bin_dir, endpoint, token_env):
    """bursard on its built-in configuration plus metrics.token_env."""
    cfg = json.loads(subprocess.run(
        [os.path.join(bin_dir, "bursard"), "--print-default-config"],
        check=True, capture_output=True, text=True).stdout)
    cfg["metrics"] = {"token_env": "BURSAR_METRICS_TOKEN"}
    path = os.path.join(tmp, "bursard.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    env = dict(os.environ, BURSAR_METRICS_TOKEN=token_env)
    log = os.path.join(tmp, "bursard.log")
    p = spawn("bursard", [os.path.join(bin_dir, "bursard"), "--config", path,
                          "--state-dir", os.path.join(tmp, "state"),
                          "--listen", endpoint,
                          "--metrics", "127.0.0.1:0"], env=env)

    def port():
        m = re.search(r"metrics and status page on \S+, port (\d+)",
                      log_tail(log))
        return int(m.group(1)) if m else None
    return wait_for("metrics port line of bursard", port, 20, p, log)


def start_gateway(bin_dir, src, endpoint, mock_port, metrics_port):
    """bursar-gateway on agents/examples/gateway.json, every model on the
    mock; returns (its port, its application key)."""
    key_out = subprocess.run(
        [os.path.join(bin_dir, "bursar-gateway"), "--new-key", "promtest"],
        check=True, capture_output=True, text=True).stdout.splitlines()
    key, entry = key_out[0], json.loads(key_out[1])
    with open(os.path.join(src, "agents/examples/gateway.json")) as f:
        cfg = json.load(f)
    cfg["keys"] = [entry]
    cfg["controller"] = endpoint
    cfg["spool"] = os.path.join(tmp, "gateway.spool")
    for m in cfg["models"].values():
        m["base_url"] = "http://127.0.0.1:%d/v1" % mock_port
        m.pop("api_key_env", None)
    path = os.path.join(tmp, "gateway.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    out = os.path.join(tmp, "gateway.port")
    log = os.path.join(tmp, "gateway.log")
    p = spawn("gateway", [os.path.join(bin_dir, "bursar-gateway"),
                          "--config", path, "--listen", "127.0.0.1:0",
                          "--metrics", "127.0.0.1:%d" % metrics_port],
              stdout=out)
    line = wait_for("port line of bursar-gateway (started with --metrics "
                    "127.0.0.1:%d)" % metrics_port,
                    lambda: first_line(out), 20, p, log)
    wait_for("the gateway's /metrics",
             lambda: http("http://127.0.0.1:%d/metrics" % metrics_port)[0]
             == 200, 20, p, log)
    return int(line), key


def start_prometheus(prom, ctl_metrics, gw_metrics, token_file):
    port = free_port()
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("""global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: bursard
    authorization:
      credentials_file: %s
    static_configs:
      - targets: ['127.0.0.1:%d']
  - job_name: bursar-gateway
    static_configs:
      - targets: ['127.0.0.1:%d']
""" % (token_file, ctl_metrics, gw_metrics))
    log = os.path.join(tmp, "prometheus.log")
    p = spawn("prometheus", [prom, "--config.file=" + cfg,
                             "--storage.tsdb.path=" + os.path.join(tmp, "tsdb"),
                             "--web.listen-address=127.0.0.1:%d" % port])
    base = "http://127.0.0.1:%d" % port
    wait_for("Prometheus ready (%s/-/ready)" % base,
             lambda: http(base + "/-/ready")[0] == 200, 60, p, log)
    return base


# ----------------------------------------------------------------- checks

def promtool_check(promtool, name, text):
    r = subprocess.run([promtool, "check", "metrics"], input=text,
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("promtool check metrics on %s's exposition:\n%s%s"
             % (name, r.stdout, r.stderr))
    print("promtool check metrics: %s ok (%d lines)"
          % (name, text.count("\n")))


def query(base, q):
    """An instant query: the result vector."""
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
    st, body = http(url)
    r = json.loads(body)
    if r.get("status") != "success":
        fail("query %s: %s" % (q, body))
    return r["data"]["result"]


def scalar(base, q):
    v = query(base, q)
    return float(v[0]["value"][1]) if v else None


def close(a, b):
    return a == b or abs(a - b) <= REL * max(abs(a), abs(b))


def bursar(bin_dir, endpoint, *args):
    r = subprocess.run([os.path.join(bin_dir, "bursar"), "--controller",
                        endpoint] + list(args), capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        fail("bursar %s: exit %d: %s%s" % (" ".join(args), r.returncode,
                                           r.stdout, r.stderr))
    return r.stdout


def traffic_cli(bin_dir, endpoint):
    """Decisions in every bucket and feedback of every kind; returns how
    many feedback events were sent."""
    rng = random.Random(SEED)
    buckets = ["code", "extraction", "summarize", "chat"]
    ids = []
    for _ in range(N_CHOOSE):
        out = json.loads(bursar(bin_dir, endpoint, "choose",
                                rng.choice(buckets), "--json"))
        ids.append(out["decision_id"])
    for i, d in enumerate(ids):
        if i % 5 == 4:
            bursar(bin_dir, endpoint, "feedback", d, "--provider-error", "503")
            continue
        args = ["--success"] if rng.random() < 0.7 else ["--failure"]
        bursar(bin_dir, endpoint, "feedback", d, *args, "--cost",
               "%.6f" % rng.uniform(0.001, 0.05))
    bursar(bin_dir, endpoint, "feedback", ids[0], "--success")  # duplicate
    bursar(bin_dir, endpoint, "feedback", ids[1], "--correction")


def traffic_gateway(gw_port, key):
    prompts = ["Extract the name as JSON: Ada was born in 1815.",
               "Summarize: the cat sat on the mat.",
               "def add(a, b): return a + b  # review this",
               "Say hello."]
    for i in range(N_CHAT):
        body = json.dumps({"model": "bursar/auto", "messages": [
            {"role": "user", "content": prompts[i % len(prompts)]}]})
        st, _ = http("http://127.0.0.1:%d/v1/chat/completions" % gw_port,
                     body.encode(), {"Authorization": "Bearer " + key,
                                     "Content-Type": "application/json"})
        if st != 200:
            fail("the gateway answered %d" % st)


def stats(bin_dir, endpoint):
    return json.loads(bursar(bin_dir, endpoint, "stats", "--json"))


def compare(base, s):
    """Prometheus' latest samples against a stats reply: a list of what
    differs (empty: all equal)."""
    diff = []
    total = scalar(base, "sum(bursar_decisions_total)")
    if total != s["decisions"]:
        diff.append("sum(bursar_decisions_total) = %r, stats decisions = %r"
                    % (total, s["decisions"]))
    per_arm = {(r["metric"]["bucket"], r["metric"]["model"]):
               float(r["value"][1])
               for r in query(base, "bursar_decisions_total")}
    for b in s["buckets"]:
        for a in b["arms"]:
            got = per_arm.get((b["name"], a["model"]))
            if got != a["pulls"]:
                diff.append("bursar_decisions_total{bucket=%s,model=%s} = %r,"
                            " stats pulls = %r" % (b["name"], a["model"], got,
                                                   a["pulls"]))
    for q, want in (("bursar_budget_spent_usd", s["budget"]["spent_usd"]),
                    ("bursar_budget_reserved_usd",
                     s["budget"]["reserved_usd"]),
                    ("bursar_shadow_price", s["policy"]["mu"])):
        got = scalar(base, q)
        if got is None or not close(got, want):
            diff.append("%s = %r, stats says %r" % (q, got, want))
    return diff


def settle(bin_dir, endpoint, base, timeout=30):
    """Waits until a scrape taken after the last change of bursard's state
    (the gateway reports outcomes in the background) matches stats."""
    deadline = time.time() + timeout
    diff = ["nothing compared"]
    while time.time() < deadline:
        s = stats(bin_dir, endpoint)
        t = time.time()
        # a sample of bursard scraped after that stats reply
        wait_for("a scrape of bursard after %.3f" % t,
                 lambda: (scalar(base, "timestamp(bursar_shadow_price)") or 0)
                 > t, 15)
        diff = compare(base, s)
        if not diff:
            return s
        time.sleep(0.5)
    fail("Prometheus and bursar stats still differ after %d s:\n  %s"
         % (timeout, "\n  ".join(diff)))


def main():
    global tmp
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    prom = need("prometheus", "prometheus")
    promtool = need("promtool", "prometheus")
    bin_dir = os.environ.get("BURSAR_BIN_DIR")
    src = os.environ.get("BURSAR_SOURCE_DIR")
    if not bin_dir or not src:
        fail("BURSAR_BIN_DIR and BURSAR_SOURCE_DIR must be set (ctest sets "
             "them)")
    for prog in ("bursard", "bursar", "bursar-gateway",
                 "bursar-mock-provider"):
        if not os.access(os.path.join(bin_dir, prog), os.X_OK):
            fail("%s is missing from %s" % (prog, bin_dir))
    tmp = tempfile.mkdtemp(prefix="bursar-prom-")
    endpoint = "ipc://" + os.path.join(tmp, "ctl.sock")
    token = "prom-%016x" % random.Random(SEED).getrandbits(64)
    token_file = os.path.join(tmp, "token")
    with open(token_file, "w") as f:
        f.write(token)
    os.chmod(token_file, 0o600)

    mock_port = start_mock(bin_dir, src)
    ctl_metrics = start_bursard(bin_dir, endpoint, token)
    gw_metrics = free_port()
    gw_port, key = start_gateway(bin_dir, src, endpoint, mock_port,
                                 gw_metrics)
    base = start_prometheus(prom, ctl_metrics, gw_metrics, token_file)
    print("bursard metrics :%d, gateway metrics :%d, prometheus %s"
          % (ctl_metrics, gw_metrics, base))

    for job in ("bursard", "bursar-gateway"):
        wait_for("up{job=\"%s\"} == 1" % job,
                 lambda: scalar(base, 'up{job="%s"}' % job) == 1, 30)

    traffic_cli(bin_dir, endpoint)
    traffic_gateway(gw_port, key)

    # the expositions, as Prometheus reads them
    st, ctl_text = http("http://127.0.0.1:%d/metrics" % ctl_metrics,
                        headers={"Authorization": "Bearer " + token})
    promtool_check(promtool, "bursard", ctl_text)
    st, gw_text = http("http://127.0.0.1:%d/metrics" % gw_metrics)
    promtool_check(promtool, "bursar-gateway", gw_text)
    try:
        http("http://127.0.0.1:%d/metrics" % ctl_metrics)
        fail("bursard's /metrics answered without the bearer token")
    except urllib.error.HTTPError as e:
        if e.code != 401:
            fail("bursard's /metrics without the token: %d, want 401" % e.code)

    s = settle(bin_dir, endpoint, base)
    print("decisions %d, spent %.9g USD, mu %.9g: Prometheus and bursar "
          "stats agree" % (s["decisions"], s["budget"]["spent_usd"],
                           s["policy"]["mu"]))
    gw = wait_for("sum(bursar_gateway_requests_total) == %d" % N_CHAT,
                  lambda: scalar(base, "sum(bursar_gateway_requests_total)")
                  == N_CHAT, 15)
    print("bursar_gateway_requests_total: %d requests" % N_CHAT)
    print("test_prometheus: ok")


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
