#!/usr/bin/python3
"""tests/status/measure.py - what fetching /status.json costs bursard's loop
(not a ctest: a measurement, docs/controller.md "The status page").

    /usr/bin/python3 tests/status/measure.py [--full] BUILD/bin/bursard \
        [BUCKETS] [SAMPLES]

Starts bursard with unknown_bucket.action create (5 models per bucket),
creates BUCKETS buckets (default 1020) by choose, lets the history fill
SAMPLES samples (default 160, metrics.sample_s 0.2), then for 10 s runs
chooses back to back while another thread fetches /status.json every
0.5 s (the full history, then ?since=N as the page does; --full: the full
history every time) and a third /healthz every 50 ms; prints each
fetch's size and time, the chooses' latency (max, p99) during the fetches
and /healthz's. Needs python3-zmq (Debian's /usr/bin/python3).
"""
import json, multiprocessing, os, shutil, subprocess, sys, tempfile, time
import urllib.request
import zmq

full_only = "--full" in sys.argv
args = [a for a in sys.argv[1:] if a != "--full"]
bursard = args[0]
nb = int(args[1]) if len(args) > 1 else 1020
ns = int(args[2]) if len(args) > 2 else 160
models = ["m%d" % i for i in range(5)]
cfg = {
    "models": {m: {"provider": "openai", "price_in_per_mtok": 1,
                   "price_out_per_mtok": 2} for m in models},
    "buckets": {"b0": {"models": models}},
    "unknown_bucket": {"action": "create", "template": {"models": models},
                       "max_buckets": nb + 10},
    "store": {"sync": "nometasync"},
    "metrics": {"listen": "127.0.0.1:0", "sample_s": 0.2, "samples": ns},
}
d = tempfile.mkdtemp(prefix="bursar-measure-")
with open(os.path.join(d, "c.json"), "w") as f:
    json.dump(cfg, f)
ep = "ipc://" + os.path.join(d, "s")
log = open(os.path.join(d, "log"), "w+")
p = subprocess.Popen([bursard, "--config", os.path.join(d, "c.json"),
                      "--state-dir", os.path.join(d, "st"), "--listen", ep],
                     stderr=log)
try:
    port = None
    for _ in range(100):
        time.sleep(0.1)
        log.seek(0)
        t = log.read()
        if ", port " in t:
            port = int(t.split(", port ")[1].split()[0])
            break
    assert port, "no metrics port in the log: " + t
    ctx = zmq.Context()

    def client():
        s = ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(ep)
        return s

    def choose(s, b):
        s.send(json.dumps({"op": "choose", "bucket": b}).encode())
        r = json.loads(s.recv())
        assert r.get("ok"), r
        return r

    c = client()
    t0 = time.time()
    for i in range(nb):
        choose(c, "b%d" % i)
    print("created %d buckets in %.1f s" % (nb, time.time() - t0))
    time.sleep(ns * 0.2 + 2)

    def get(path):
        t = time.perf_counter()
        body = urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                      timeout=30).read()
        return body, time.perf_counter() - t

    # alone: no other load
    for q in ["", "?since=%d"]:
        ts, size = [], 0
        for _ in range(5):
            path = "/status.json"
            if q:
                j = json.loads(get(path)[0])
                path += q % j["history"]["taken"] if "from" in j["history"] else ""
                time.sleep(0.5)
            body, dt = get(path)
            ts.append(dt)
            size = len(body)
        print("idle %s fetch: %d bytes, min %.1f ms, max %.1f ms" % (
            "incremental" if q else "full", size, 1000 * min(ts), 1000 * max(ts)))

    stop = multiprocessing.Event()
    mgr = multiprocessing.Manager()
    fetches, health = mgr.list(), mgr.list()

    def fetcher():
        since = None
        while not stop.is_set():
            path = "/status.json" + ("" if since is None else "?since=%d" % since)
            body, dt = get(path)
            j = json.loads(body)
            fetches.append((path.split("?")[1] if "?" in path else "full",
                            len(body), dt, len(j["history"]["samples"])))
            if "from" in j["history"] and not full_only:  # new: ?since=
                since = j["history"]["taken"]
            time.sleep(0.5)

    def healthz():
        while not stop.is_set():
            health.append(get("/healthz")[1])
            time.sleep(0.05)

    # processes, not threads: the GIL would add one's JSON parsing to the
    # others' latencies
    th = [multiprocessing.Process(target=fetcher),
          multiprocessing.Process(target=healthz)]
    for t in th:
        t.start()
    lat = []
    s = client()
    t_end = time.time() + 10
    i = 0
    while time.time() < t_end:
        t = time.perf_counter()
        choose(s, "b%d" % (i % nb))
        lat.append(time.perf_counter() - t)
        i += 1
    stop.set()
    for t in th:
        t.join()
    lat.sort()
    fetches, health = list(fetches), sorted(health)
    for f in fetches[:4] + (["..."] if len(fetches) > 6 else []) + fetches[-2:]:
        print("  fetch", f if f == "..." else
              "%s: %d bytes, %d samples, %.1f ms" % (f[0], f[1], f[3], 1000 * f[2]))
    full = [f[2] for f in fetches if f[0] == "full"]
    inc = [f[2] for f in fetches if f[0] != "full"]
    print("fetches: %d full (mean %.1f ms, max %.1f ms), %d incremental "
          "(mean %.1f ms, max %.1f ms)" % (
              len(full), 1000 * sum(full) / max(1, len(full)), 1000 * max(full or [0]),
              len(inc), 1000 * sum(inc) / max(1, len(inc)), 1000 * max(inc or [0])))
    print("choose during fetches: %d, p50 %.2f ms, p99 %.2f ms, max %.1f ms" % (
        len(lat), 1000 * lat[len(lat) // 2], 1000 * lat[int(len(lat) * .99)],
        1000 * lat[-1]))
    print("/healthz: %d, p50 %.2f ms, max %.1f ms" % (
        len(health), 1000 * health[len(health) // 2], 1000 * health[-1]))
    print("bursard RSS: %s" % [l for l in open("/proc/%d/status" % p.pid)
                               if l.startswith("VmRSS")][0].split(":")[1].strip())
finally:
    p.terminate()
    p.wait()
    shutil.rmtree(d, ignore_errors=True)
