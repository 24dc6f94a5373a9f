#!/usr/bin/env python3
"""Shared cache tier benchmark (issue 15): one origin request per key across the
cluster, a fresh node joining a warm fleet, and the tier's cost on the hit path.

    python3 bench/shared.py --aside target/release/aside [--out] [--smoke] [--keep] [--note ...]

Starts one redis-server (`--save "" --appendonly no`), `bench/origin.py` and
Aside nodes whose config has `[cluster] redis = ..., shared-cache = true`, each
with its own data dir and ports, all on 127.0.0.1 and ports the kernel hands
out. Every request carries `Host: api.bench`, so every node has the same cache
key for a URL. The origin answers `/bytes?size=1024&ms=200&max-age=300&k=...`
after 200 ms with `Cache-Control: public, max-age=300` and counts requests per
URL (`/__count`) and in all (`/__total`).

1. Cross-node storm: nodes 1-3 (`threads = 2`) get `--storm` (1,000) requests
   each for one cold key, all in flight at once: one process opens every
   connection first (not timed), then writes one request on each, round-robin
   over the nodes, and times each from its write to its last body byte
   (bench/stormer, a compiled one-thread client; `--stormer` names a
   binary). Repeated for `--storm-keys` (3) keys.
   Targets per key: exactly 1 origin request; client p99 <= origin delay +
   50 ms (250 ms). Each storm is then repeated on its key, now held by every
   node: that storm of hits is reported as the floor the client and machine
   put under the cold storm's latency (not a target).
2. A fresh node joining a warm fleet: `--keys` (500) keys are filled through
   node 1 (32 clients), until node 1's `aside_cluster_shared_cache_total
   {event="write"}` has grown by that many; then node 4 starts with an empty
   data dir and, from the moment it listens, gets `--rate` (300) requests/s for
   `--join-seconds` (10) over those keys (uniform random, seed 15, open loop, 8
   threads on keep-alive `http.client` connections). Hit = `X-Cache: HIT` or a
   `Cache-Status` with `; hit`. Target: hit ratio >= 90 %; origin requests in
   that phase are reported.
3. Cost on the hit path: two more nodes, `threads = 1`, pinned to CPU 0 like
   bench.py (wrk on CPU 1), identical configs except `shared-cache = true` vs
   `shared-cache = false` (both keep the `[cluster]` section, so both talk to
   Redis for heartbeats and purges: the difference is the shared tier alone).
   One 1 KiB key, warmed; `wrk -t1 -c64 -d5s` (1 s unmeasured first),
   `--rounds` (3) alternated rounds each; medians compared. Target on/off >= 0.95.

Prints a markdown report (written to bench/results/shared-<date>.md with
`--out`). Exit 1 when a target is missed, 2 when the harness cannot run.
`--smoke`: 100 requests per node, 1 key, 100 keys for 3 s, 1 round of 2 s
(same targets, ~20 s).
"""
import argparse
import collections
import http.client
import itertools
import json
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the harness helpers: free_port, spawn, wait_port, stop_all, machine)
from storm import pct  # noqa: E402

TOKEN = "bench-shared-token-0123456789"
HOST = "api.bench"
ORIGIN_MS = 200
MAX_AGE = 300
SIZE = 1024

NODE_CONFIG = """[server]
listen = "127.0.0.1:{proxy}"
threads = {threads}
grace-period = "1s"
access-log = false

[admin]
listen = "127.0.0.1:{admin}"
token-env = "ASIDE_ADMIN_TOKEN"

[store]
path = "{data}/aside.redb"
hot-capacity = "64MiB"

[cluster]
redis = "redis://127.0.0.1:{redis}/0"
node-id = "{name}"
key-prefix = "bench:"
shared-cache = {shared}

[[upstream]]
name = "origin"
url = "http://127.0.0.1:{origin}"

[[route]]
upstream = "origin"
mode = "respect-origin"
"""


def path_of(key):
    return f"/bytes?size={SIZE}&ms={ORIGIN_MS}&max-age={MAX_AGE}&k={key}"


# ---------------------------------------------------------------- processes

def start_node(name, opts, redis_port, origin_port, work, threads=2, shared=True, cpu=None):
    node = {"name": name, "proxy": bench.free_port(), "admin": bench.free_port()}
    d = os.path.join(work, name)
    os.makedirs(d)
    node["config"] = NODE_CONFIG.format(proxy=node["proxy"], admin=node["admin"], data=d,
                                        redis=redis_port, origin=origin_port, name=name,
                                        threads=threads, shared="true" if shared else "false")
    conf = os.path.join(d, "aside.toml")
    with open(conf, "w") as f:
        f.write(node["config"])
    env = dict(os.environ, ASIDE_ADMIN_TOKEN=TOKEN, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    node["log"] = os.path.join(d, "aside.log")
    prefix = bench.pin(cpu) if cpu is not None else []
    node["proc"] = bench.spawn(prefix + [opts.aside, "--config", conf], node["log"], env=env, cwd=d)
    bench.wait_port(node["admin"], node["proc"], node["log"], f"aside {name}")
    bench.wait_port(node["proxy"], node["proc"], node["log"], f"aside {name}")
    return node


def metrics(node):
    req = urllib.request.Request(f"http://127.0.0.1:{node['admin']}/metrics",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            text = r.read().decode()
    except (OSError, urllib.error.URLError) as e:
        raise bench.HarnessError(f"{node['name']} /metrics: {e}; log:\n{bench.tail(node['log'])}")
    out = {}
    for m in re.finditer(r'^aside_cluster_shared_cache_total\{event="([a-z_]+)"\} (\d+)', text, re.M):
        out[m.group(1)] = int(m.group(2))
    if not out:
        raise bench.HarnessError(f"{node['name']}: no aside_cluster_shared_cache_total in /metrics "
                                 "(a binary without the shared tier?)")
    return out


def delta(after, before):
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}


def origin_get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return int(r.read())


def origin_count(port, target):
    return origin_get(port, "/__count?target=" + urllib.parse.quote(target, safe=""))


def log_lines(node):
    try:
        with open(node["log"], "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    # pingora's "no header compression dictionary" WARN at every start is left out.
    return [ln for ln in text.splitlines()
            if (" WARN " in ln or " ERROR " in ln or "panick" in ln)
            and "no header compression dictionary" not in ln]


# -------------------------------------------------------------- 1. storm

def storm(nodes, path, per_node, stormer, timeout=30.0):
    """per_node pre-opened connections on each node; one request written on each,
    round-robin over the nodes; per-request latency from its write (bench/stormer,
    a compiled client: the Python epoll loop spent ~20 us per answer, most of a
    3,000-answer storm's latency above the origin's delay on 2 CPUs)."""
    cmd = [stormer, "--per-target", str(per_node), "--path", path, "--host", HOST,
           "--user-agent", "aside-bench-shared", "--settle-ms", "300", "--timeout", str(timeout)]
    for n in nodes:
        cmd += ["--target", f"127.0.0.1:{n['proxy']}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 120)
    if out.returncode != 0:
        raise bench.HarnessError(f"stormer failed: {out.stderr.strip()}")
    res = json.loads(out.stdout)
    lat_all, lat_node = [], collections.defaultdict(list)
    statuses, failed, xcache = collections.Counter(), 0, collections.Counter()
    for i, status, xc, ms, _err, _sent in res["results"]:
        if ms is None:
            failed += 1
            continue
        statuses[status] += 1
        xcache[xc or "-"] += 1
        lat_all.append(ms)
        lat_node[i].append(ms)
    lat_all.sort()
    return {
        "n": res["n"], "failed": failed, "statuses": dict(statuses), "xcache": dict(xcache),
        "p50": pct(lat_all, 50), "p99": pct(lat_all, 99), "max": lat_all[-1] if lat_all else float("nan"),
        "spread": res["spread_ms"],
        "per_node": {nodes[i]["name"]: (pct(sorted(v), 50), pct(sorted(v), 99), max(v))
                     for i, v in sorted(lat_node.items())},
    }


def find_stormer(path):
    """The storm client binary: `path`, or target/release/stormer, built when absent."""
    if path:
        if not os.access(path, os.X_OK):
            raise bench.HarnessError(f"stormer binary not found: {path}")
        return os.path.abspath(path)
    root = os.path.dirname(bench.BENCH_DIR)
    built = os.path.join(root, "target", "release", "stormer")
    if not os.access(built, os.X_OK):
        bench.log("building the storm client (cargo build --release -p aside-stormer)")
        r = subprocess.run(["cargo", "build", "-q", "--release", "-p", "aside-stormer"], cwd=root)
        if r.returncode != 0 or not os.access(built, os.X_OK):
            raise bench.HarnessError("cannot build bench/stormer")
    return built


# ----------------------------------------------------------- 2. joining

class Client:
    """One keep-alive connection; reconnects after an error."""

    def __init__(self, port):
        self.port, self.conn = port, None

    def get(self, path):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            try:
                self.conn.request("GET", path, headers={"Host": HOST})
                r = self.conn.getresponse()
                r.read()
                return r.status, r.getheader("X-Cache") or "", r.getheader("Cache-Status") or ""
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                self.conn.close()
                self.conn = None
                if attempt:
                    return 0, "", f"(no answer: {type(e).__name__})"
            except (OSError, http.client.HTTPException) as e:
                self.conn.close()
                self.conn = None
                return 0, "", f"(no answer: {type(e).__name__}: {e})"
        return 0, "", "(no answer)"

    def close(self):
        if self.conn:
            self.conn.close()


def fill(node, keys, workers=32):
    counter, bad = itertools.count(), []

    def worker():
        c = Client(node["proxy"])
        while True:
            k = next(counter)
            if k >= len(keys):
                break
            st, _, cs = c.get(path_of(keys[k]))
            if st != 200:
                bad.append((keys[k], st, cs))
        c.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return bad


def is_hit(status, xc, cs):
    return status == 200 and (xc.upper() == "HIT" or "; hit" in cs)


def shape(cs):
    s = re.sub(r"ttl=-?\d+", "ttl=N", cs or "(none)")
    return s


def open_loop(port, keys, rate, seconds, workers=8):
    n = int(rate * seconds)
    rng = random.Random(15)
    picks = [keys[rng.randrange(len(keys))] for _ in range(n)]
    records = [None] * n
    counter = itertools.count()
    t0 = time.monotonic() + 0.05

    def worker():
        c = Client(port)
        try:
            while True:
                i = next(counter)
                if i >= n:
                    return
                due = t0 + i / rate
                d = due - time.monotonic()
                if d > 0:
                    time.sleep(d)
                sent = time.monotonic()
                st, xc, cs = c.get(path_of(picks[i]))
                records[i] = (sent - t0, (time.monotonic() - sent) * 1000, st, xc, cs, picks[i])
        finally:
            c.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    return [r for r in records if r is not None], n


# ---------------------------------------------------------- 3. hit path

def run_wrk(node, seconds, conns):
    env = dict(os.environ, BENCH_WRK_DIR=os.path.join(bench.BENCH_DIR, "wrk"))
    cmd = bench.pin(bench.CLIENT_CPU) + [
        "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s", "-H", f"Host: {HOST}",
        "-s", os.path.join(bench.BENCH_DIR, "wrk", "fixed.lua"),
        f"http://127.0.0.1:{node['proxy']}{path_of('hot')}"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            r = json.loads(line[len("BENCH_JSON "):])
            r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
            r["errors"] = sum(r[k] for k in r if k.startswith("err_"))
            return r
    raise bench.HarnessError(f"wrk produced no summary against {node['name']}:\n{out.stdout}\n{out.stderr}")


# ------------------------------------------------------------------ main

def git(*args):
    try:
        return subprocess.run(["git", "-C", bench.BENCH_DIR, *args], capture_output=True,
                              text=True, timeout=10).stdout.rstrip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aside", required=True, help="the Aside binary (built with the shared tier)")
    ap.add_argument("--out", action="store_true", help="write bench/results/shared-<date>.md")
    ap.add_argument("--smoke", action="store_true", help="a short run (~20 s), same targets")
    ap.add_argument("--storm", type=int, default=1000, help="concurrent requests per node")
    ap.add_argument("--storm-keys", type=int, default=3)
    ap.add_argument("--keys", type=int, default=500, help="keys the joining node is asked for")
    ap.add_argument("--rate", type=float, default=300, help="requests/s to the joining node")
    ap.add_argument("--join-seconds", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="hit-path rounds per config")
    ap.add_argument("--duration", type=int, default=5, help="seconds per hit-path wrk run")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--keep", action="store_true", help="keep the work dir (configs, logs)")
    ap.add_argument("--note", default="")
    ap.add_argument("--stormer", help="the storm client (default: target/release/stormer, built if missing)")
    opts = ap.parse_args()
    if opts.smoke:
        opts.storm, opts.storm_keys, opts.keys, opts.join_seconds = 100, 1, 100, 3
        opts.rounds, opts.duration = 1, 2
    opts.aside = os.path.abspath(opts.aside)
    work = None
    try:
        if not os.access(opts.aside, os.X_OK):
            raise bench.HarnessError(f"aside binary not found: {opts.aside}")
        opts.stormer = find_stormer(opts.stormer)
        for tool in ("redis-server", "wrk"):
            if not shutil.which(tool):
                raise bench.HarnessError(f"{tool} not found: scripts/prereqs.sh redis-server wrk")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = 3 * opts.storm + 256
        want = need if hard == resource.RLIM_INFINITY else min(hard, max(soft, need))
        if want > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        if want < need:
            raise bench.HarnessError(f"open-file limit {hard} < {need} needed for the storm")
        work = tempfile.mkdtemp(prefix="aside-shared-bench-")
        return run(opts, work)
    except bench.HarnessError as e:
        bench.log(f"HARNESS ERROR: {e}")
        opts.keep = True
        return 2
    finally:
        bench.stop_all()
        if work:
            if opts.keep:
                bench.log(f"kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)


def run(opts, work):
    redis_port = bench.free_port()
    rlog = os.path.join(work, "redis.log")
    rproc = bench.spawn(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                         "--save", "", "--appendonly", "no", "--dir", work], rlog)
    bench.wait_port(redis_port, rproc, rlog, "redis-server")
    origin_port = bench.free_port()
    olog = os.path.join(work, "origin.log")
    oproc = bench.spawn([sys.executable, os.path.join(bench.BENCH_DIR, "origin.py"),
                         "--listen", f"127.0.0.1:{origin_port}"], olog)
    bench.wait_port(origin_port, oproc, olog, "origin")
    nonce = f"{int(time.time())}"
    nodes = [start_node(f"node{i}", opts, redis_port, origin_port, work) for i in (1, 2, 3)]
    time.sleep(1.0)  # heartbeats, purge readers

    # ---- 1. cross-node storm
    storms = []
    for s in range(opts.storm_keys):
        key = f"storm-{nonce}-{s}"
        path = path_of(key)
        bench.log(f"storm {s + 1}/{opts.storm_keys}: 3 nodes x {opts.storm} requests for {key}")
        before = [metrics(n) for n in nodes]
        r = storm(nodes, path, opts.storm, opts.stormer)
        time.sleep(0.5)  # a late origin fetch (a node that gave up waiting) still counts
        r["origin"] = origin_count(origin_port, path)
        r["metrics"] = {n["name"]: delta(metrics(n), b) for n, b in zip(nodes, before)}
        r["key"] = key
        # The same storm again, now that every node holds the key: what serving
        # 3 x --storm hits costs this client and machine (not a target; the part
        # of the cold storm's latency that no fill path can remove).
        r["floor"] = storm(nodes, path, opts.storm, opts.stormer)
        storms.append(r)
        bench.log(f"  origin {r['origin']}  p50 {r['p50']:.1f} ms  p99 {r['p99']:.1f} ms  "
                  f"max {r['max']:.1f} ms  failed {r['failed']}  statuses {r['statuses']}  "
                  f"per node (p50, p99, max) {r['per_node']}")

    # ---- 2. fresh node joining a warm fleet
    keys = [f"join-{nonce}-{k}" for k in range(opts.keys)]
    bench.log(f"join: filling {len(keys)} keys through node1")
    w0 = metrics(nodes[0]).get("write", 0)
    t_fill = time.monotonic()
    fill_bad = fill(nodes[0], keys)
    deadline = time.monotonic() + 30
    writes = 0
    while time.monotonic() < deadline:
        writes = metrics(nodes[0]).get("write", 0) - w0
        if writes >= len(keys):
            break
        time.sleep(0.1)
    fill_s = time.monotonic() - t_fill
    if writes < len(keys):
        raise bench.HarnessError(f"node1 wrote {writes} of {len(keys)} filled keys to the shared tier "
                                 f"within 30 s; log:\n{bench.tail(nodes[0]['log'])}")
    o_before = origin_get(origin_port, "/__total")
    bench.log(f"join: starting node4, then {opts.rate:g} req/s for {opts.join_seconds:g} s")
    t_start = time.monotonic()
    node4 = start_node("node4", opts, redis_port, origin_port, work)
    start_s = time.monotonic() - t_start
    m4_before = metrics(node4)
    records, planned = open_loop(node4["proxy"], keys, opts.rate, opts.join_seconds)
    time.sleep(0.3)
    join_origin = origin_get(origin_port, "/__total") - o_before
    m4 = delta(metrics(node4), m4_before)
    hits = sum(1 for r in records if is_hit(r[2], r[3], r[4]))
    answered = len(records)
    hit_ratio = hits / planned if planned else 0.0
    join_errors = sum(1 for r in records if r[2] != 200) + planned - answered
    join_lat = sorted(r[1] for r in records)
    shapes = collections.Counter((r[3] or "-", shape(r[4])) for r in records)
    per_second = collections.defaultdict(lambda: [0, 0])
    first_seen, first_hits = set(), 0
    for t, _, st, xc, cs, k in sorted(records):
        b = per_second[int(t)]
        b[1] += 1
        if is_hit(st, xc, cs):
            b[0] += 1
        if k not in first_seen:
            first_seen.add(k)
            first_hits += is_hit(st, xc, cs)

    # ---- 3. cost on the hit path
    bench.log("hit path: shared-cache on / off nodes, threads = 1, pinned to CPU "
              f"{bench.SERVER_CPU} (wrk on {bench.CLIENT_CPU})")
    on = start_node("hit-on", opts, redis_port, origin_port, work, threads=1, shared=True,
                    cpu=bench.SERVER_CPU)
    off = start_node("hit-off", opts, redis_port, origin_port, work, threads=1, shared=False,
                     cpu=bench.SERVER_CPU)
    warm_info = {}
    for n in (on, off):
        c = Client(n["proxy"])
        first = c.get(path_of("hot"))
        second = c.get(path_of("hot"))
        c.close()
        if second[0] != 200 or not is_hit(*second):
            raise bench.HarnessError(f"{n['name']}: the hot key is not a hit after warming: {first} {second}")
        warm_info[n["name"]] = (first, second)
    runs = {"hit-on": [], "hit-off": []}
    o_hot = origin_get(origin_port, "/__total")
    for rnd in range(opts.rounds):
        for n in (on, off):
            run_wrk(n, 1, opts.conns)  # unmeasured
            r = run_wrk(n, opts.duration, opts.conns)
            runs[n["name"]].append(r)
            bench.log(f"  round {rnd + 1}/{opts.rounds} {n['name']:8s} {r['rps']:10.0f} req/s  "
                      f"p99 {r['p99_us'] / 1000:.2f} ms  errors {r['errors']}")
    hot_origin = origin_get(origin_port, "/__total") - o_hot
    med = {k: statistics.median(x["rps"] for x in v) for k, v in runs.items()}
    ratio = med["hit-on"] / med["hit-off"] if med["hit-off"] else 0.0
    hot_errors = sum(x["errors"] for v in runs.values() for x in v)

    all_nodes = nodes + [node4, on, off]
    alive = {n["name"]: n["proc"].poll() is None for n in all_nodes}
    warns = {n["name"]: log_lines(n) for n in all_nodes}

    # ---- report
    target_p99 = ORIGIN_MS + 50
    storm_ok = all(s["origin"] == 1 and s["p99"] <= target_p99 and s["failed"] == 0
                   and s["statuses"] == {200: s["n"]} for s in storms)
    join_ok = hit_ratio >= 0.90
    hot_ok = ratio >= 0.95 and hot_errors == 0
    verdict = storm_ok and join_ok and hot_ok and all(alive.values())
    met = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    m = bench.machine()
    commit = git("rev-parse", "--short", "HEAD") or "?"
    dirty = [ln for ln in git("-C", "..", "status", "--porcelain").splitlines()
             if ln and not ln[3:].startswith("bench/")]
    lines = [
        f"# Shared cache tier benchmark, {time.strftime('%Y-%m-%d %H:%M')}" + (" (smoke)" if opts.smoke else ""),
        "",
        f"Machine: {m['cores']} cores, {m['cpu_model']}, Linux {m['kernel']}; load average at the end "
        f"{' '.join(bench.loadavg())}. Aside `{opts.aside}`, commit `{commit}`"
        + (f" (working tree changes outside bench/: {', '.join(ln[3:] for ln in dirty)})" if dirty else "")
        + f". {opts.note}".rstrip(),
        "",
        "## Settings",
        "",
        f"- one `redis-server` (`--save \"\" --appendonly no`), `bench/origin.py` answering "
        f"`/bytes?size={SIZE}&ms={ORIGIN_MS}&max-age={MAX_AGE}&k=<key>` after **{ORIGIN_MS} ms** with "
        f"`Cache-Control: public, max-age={MAX_AGE}` and counting requests per URL; every client "
        f"request carries `Host: {HOST}` (one cache key per URL on every node)",
        "- nodes: the config below (`threads = 2` for nodes 1-4; `lease-wait`, `shared-timeout` "
        "and everything else at their defaults: 10 s, 10 ms), each with its own data dir and ports, "
        "`RUST_LOG=" + os.environ.get("RUST_LOG", "warn") + "`; client, nodes, Redis and origin share the machine",
        f"- storm: {opts.storm} connections per node opened first (not timed), then one request written "
        "on each, round-robin over nodes 1-3, from one compiled client thread (bench/stormer); latency from each request's write to "
        "its last body byte; then the same storm again once every node holds the key (all hits: "
        "what serving that many answers costs this client and machine, a floor under the cold storm's "
        "latency above the origin's delay)",
        f"- join: {opts.keys} keys filled through node 1 ({fill_s:.1f} s, until its shared-tier `write` "
        f"counter grew by {writes})"
        + (f", {len(fill_bad)} fills not 200" if fill_bad else "")
        + f"; node 4 took {start_s * 1000:.0f} ms from spawn to listening; then {opts.rate:g} req/s "
        f"open-loop for {opts.join_seconds:g} s, uniform random over those keys (seed 15), 8 threads "
        "with keep-alive `http.client`",
        f"- hit path: two nodes identical but for `shared-cache = true` / `false` (both with the "
        f"`[cluster]` section), `threads = 1`, pinned to CPU {bench.SERVER_CPU}; `wrk -t1 -c{opts.conns} "
        f"-d{opts.duration}s` pinned to CPU {bench.CLIENT_CPU} on one warmed {SIZE} B key after 1 s "
        f"unmeasured, {opts.rounds} alternated round(s) each, medians",
        "",
        "```toml",
        re.sub(r'(listen|url|path|redis) = "[^"]*"', r'\1 = "…"', nodes[0]["config"]).rstrip(),
        "```",
        "",
        "## Results",
        "",
        "| measure | result | target | |",
        "|---|---|---|---|",
    ]
    for i, s in enumerate(storms, 1):
        bad = s["failed"] + sum(v for k, v in s["statuses"].items() if k != 200)
        lines.append(f"| storm {i} (`{s['key']}`), 3 x {opts.storm}: origin requests | {s['origin']} | 1 | "
                     f"{met(s['origin'] == 1)} |")
        lines.append(f"| storm {i}: client latency p50 / p99 / max | {s['p50']:.1f} / {s['p99']:.1f} / "
                     f"{s['max']:.1f} ms | p99 <= {target_p99} ms | {met(s['p99'] <= target_p99)} |")
        lines.append(f"| storm {i}: answers not 200 or missing | {bad} of {s['n']} | 0 | {met(bad == 0)} |")
        f = s["floor"]
        lines.append(f"| storm {i} again, every node holding the key (all hits): p50 / p99 / max | "
                     f"{f['p50']:.1f} / {f['p99']:.1f} / {f['max']:.1f} ms | | |")
    lines += [
        f"| join: node 4 hit ratio, first {opts.join_seconds:g} s | {100 * hit_ratio:.1f} % "
        f"({hits:,} of {planned:,}) | >= 90 % | {met(join_ok)} |",
        f"| join: origin requests during that phase | {join_origin} | | |",
        f"| join: first request for each key a hit | {first_hits} of {len(first_seen)} | | |",
        f"| join: errors (not 200, or no answer) | {join_errors} | | |",
        f"| join: latency p50 / p99 / max | {pct(join_lat, 50):.2f} / {pct(join_lat, 99):.2f} / "
        f"{join_lat[-1] if join_lat else float('nan'):.1f} ms | | |",
        f"| hit path, shared-cache on (median of {opts.rounds}) | {med['hit-on']:,.0f} req/s "
        "(rounds " + ", ".join(f"{x['rps']:,.0f}" for x in runs["hit-on"]) + ") | | |",
        f"| hit path, shared-cache off (median of {opts.rounds}) | {med['hit-off']:,.0f} req/s "
        "(rounds " + ", ".join(f"{x['rps']:,.0f}" for x in runs["hit-off"]) + ") | | |",
        f"| hit path, on / off | {ratio:.3f} | >= 0.95 | {met(ratio >= 0.95)} |",
        f"| hit path: wrk errors / origin requests during the runs | {hot_errors} / {hot_origin} | 0 / 0 | "
        f"{met(hot_errors == 0)} |",
        f"| nodes alive at the end | {sum(alive.values())} of {len(alive)} | all | {met(all(alive.values()))} |",
        "",
        "## Details",
        "",
        "Storms, per node (p50 / p99 / max ms) and shared-tier counters (`aside_cluster_shared_cache_total`, "
        "the storm's increase):",
        "",
        "| storm | node | p50 / p99 / max | counters |",
        "|---|---|---|---|",
    ]
    for i, s in enumerate(storms, 1):
        for name, (a, b, c) in s["per_node"].items():
            cnt = ", ".join(f"{k} {v}" for k, v in sorted(s["metrics"].get(name, {}).items())) or "-"
            lines.append(f"| {i} | {name} | {a:.1f} / {b:.1f} / {c:.1f} | {cnt} |")
    lines += ["", "Storm send spread (first to last request written): "
              + ", ".join(f"{s['spread']:.1f} ms" for s in storms)
              + "; `X-Cache` of the answers: " + "; ".join(
                  ", ".join(f"{k} {v}" for k, v in sorted(s["xcache"].items())) for s in storms), ""]
    lines += [f"Join, node 4's shared-tier counters over the phase: "
              + (", ".join(f"{k} {v}" for k, v in sorted(m4.items())) or "none"), "",
              "Join, per second from node 4 listening (hits / requests): "
              + " ".join(f"{h}/{t}" for _, (h, t) in sorted(per_second.items())), "",
              "| X-Cache | Cache-Status (numbers folded) | answers |", "|---|---|---|"]
    for (xc, cs), cnt in shapes.most_common(10):
        lines.append(f"| {xc} | `{cs}` | {cnt:,} |")
    lines += ["", "Hit path warm-up answers (first, then the checked second): "
              + "; ".join(f"{k}: {a[1] or '-'} `{a[2]}` then {b[1] or '-'} `{b[2]}`"
                          for k, (a, b) in warm_info.items()), ""]
    lines += ["Node logs (WARN / ERROR lines, besides pingora's \"no header compression dictionary\" at start): "
              + ", ".join(f"{k} {len(v)}" for k, v in warns.items())]
    shown = [(k, ln) for k, v in warns.items() for ln in v[:5]]
    if shown:
        lines += ["", "```"] + [f"{k}: {ln[:300]}" for k, ln in shown[:20]] + ["```"]
    lines += ["", f"**Verdict: {'all targets met' if verdict else 'a target was missed'}.**"]
    report = "\n".join(lines) + "\n"
    print(report)
    if opts.out:
        os.makedirs(os.path.join(bench.BENCH_DIR, "results"), exist_ok=True)
        name = f"shared-{time.strftime('%Y-%m-%d')}" + ("-smoke" if opts.smoke else "")
        path = os.path.join(bench.BENCH_DIR, "results", name + ".md")
        k = 2
        while os.path.exists(path):
            path = os.path.join(bench.BENCH_DIR, "results", f"{name}-{k}.md")
            k += 1
        with open(path, "w") as f:
            f.write(report)
        bench.log(f"report: {path}")
    if not verdict:
        opts.keep = True
    return 0 if verdict else 1


if __name__ == "__main__":
    def on_signal(signum, frame):
        bench.stop_all()
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    sys.exit(main())
