#!/usr/bin/env python3
"""Cluster benchmark (issue 14): purge propagation across nodes, and the KV API
over Redis against Redis itself.

    python3 bench/cluster.py --aside target/release/aside [--purges 1000] [--seconds 5]

Starts a real redis-server, one origin (bench/origin.py) and 3 Aside nodes with
a `[cluster]` section, all on 127.0.0.1 and ports the kernel hands out, then:

1. purge propagation: for each of `--purges` URLs, every node caches it (same
   Host header, so the same cache key everywhere), node 1 purges it
   (`POST /cache/purge`), and the other nodes' admin APIs are polled
   (`GET /cache/entry?url=`) until the entry is gone on every node. The time
   from the purge call to "gone everywhere" gives p50 / p99 / max. Target: p99
   <= 100 ms. Purges lost = entries never gone within 5 s.
2. KV throughput: wrk with 64 connections against node 1's KV API (half PUT,
   half GET over 1,000 keys), then redis-benchmark GET/SET at 64 connections
   against the same redis-server. Target: Aside >= 50 % of Redis.

Prints a markdown report (and writes it to bench/results/cluster-<date>.md with
--out). Traffic stays on loopback; every loop is bounded.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the harness helpers: free_port, spawn, wait_port, stop_all)

TOKEN = "bench-cluster-token-0123456789"
HOST = "api.bench"


def http(method, url, body=None, headers=None, timeout=5.0):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def admin(node, method, path, body=None):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    return http(method, f"http://127.0.0.1:{node['admin']}{path}", data, headers)


def start_node(i, aside_bin, redis_port, origin_port, work):
    node = {"i": i, "proxy": bench.free_port(), "admin": bench.free_port()}
    d = os.path.join(work, f"node{i}")
    os.makedirs(d)
    conf = os.path.join(d, "aside.toml")
    with open(conf, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:{node['proxy']}"
threads = 2
grace-period = "1s"
access-log = false

[admin]
listen = "127.0.0.1:{node['admin']}"
token-env = "ASIDE_ADMIN_TOKEN"

[store]
path = "{d}/aside.redb"
hot-capacity = "64MiB"

[cluster]
redis = "redis://127.0.0.1:{redis_port}/0"
node-id = "node{i}"
key-prefix = "bench:"

[[upstream]]
name = "origin"
url = "http://127.0.0.1:{origin_port}"

[[route]]
upstream = "origin"
mode = "respect-origin"
""")
    env = dict(os.environ, ASIDE_ADMIN_TOKEN=TOKEN, RUST_LOG="warn")
    log = os.path.join(d, "aside.log")
    node["proc"] = bench.spawn([aside_bin, "--config", conf], log, env=env)
    node["log"] = log
    bench.wait_port(node["admin"], node["proc"], log, f"aside node{i}")
    bench.wait_port(node["proxy"], node["proc"], log, f"aside node{i}")
    return node


def fetch(node, path):
    return http("GET", f"http://127.0.0.1:{node['proxy']}{path}", headers={"Host": HOST})


def gone(node, url):
    status, _ = admin(node, "GET", "/cache/entry?url=" + urllib.parse.quote(url, safe=""))
    return status == 404


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return values[k]


def purge_propagation(nodes, purges):
    times, lost = [], 0
    for i in range(purges):
        path = f"/bytes?size=64&max-age=3600&k=purge{i}"
        url = f"http://{HOST}{path}"
        for n in nodes:
            status, _ = fetch(n, path)
            if status != 200:
                raise bench.HarnessError(f"node{n['i']} answered {status} for {path}")
        t0 = time.perf_counter()
        status, body = admin(nodes[0], "POST", "/cache/purge", {"urls": [url]})
        if status != 200:
            raise bench.HarnessError(f"purge answered {status}: {body[:200]!r}")
        pending = list(nodes[1:])
        deadline = t0 + 5.0
        while pending and time.perf_counter() < deadline:
            pending = [n for n in pending if not gone(n, url)]
        if pending:
            lost += 1
        else:
            times.append((time.perf_counter() - t0) * 1000.0)
    return times, lost


def kv_wrk(node, seconds, conns):
    for k in range(1000):
        admin(node, "PUT", f"/kv/items/bench/{k}", {"value": {"n": k, "s": "bench"}})
    env = dict(os.environ, KV_TOKEN=TOKEN, KV_KEYS="1000",
               BENCH_WRK_DIR=os.path.join(bench.BENCH_DIR, "wrk"))
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s",
           "-s", os.path.join(bench.BENCH_DIR, "wrk", "kv.lua"),
           f"http://127.0.0.1:{node['admin']}/"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 30)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            s = json.loads(line[len("BENCH_JSON "):])
            s["rps"] = s["requests"] / (s["duration_us"] / 1e6)
            s["errors"] = s["err_connect"] + s["err_read"] + s["err_write"] + s["err_status"] + s["err_timeout"]
            return s
    raise bench.HarnessError(f"wrk produced no summary:\n{out.stdout}\n{out.stderr}")


def redis_benchmark(port, conns, requests):
    cmd = ["redis-benchmark", "-p", str(port), "-c", str(conns), "-n", str(requests),
           "-t", "get,set", "--csv"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    rps = {}
    for line in out.stdout.splitlines():
        parts = [p.strip('"') for p in line.split(",")]
        if len(parts) >= 2 and parts[0] in ("GET", "SET"):
            rps[parts[0]] = float(parts[1])
    if len(rps) != 2:
        raise bench.HarnessError(f"redis-benchmark output not understood:\n{out.stdout}\n{out.stderr}")
    return rps


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aside", required=True)
    ap.add_argument("--purges", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=5, help="KV load duration")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3,
                    help="KV and redis-benchmark runs, alternated; the medians are compared")
    ap.add_argument("--out", action="store_true", help="write bench/results/cluster-<date>.md")
    ap.add_argument("--note", default="")
    opts = ap.parse_args()
    for tool in ("redis-server", "redis-benchmark", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: scripts/prereqs.sh redis-server wrk (redis-tools)")
    work = tempfile.mkdtemp(prefix="aside-cluster-bench-")
    try:
        redis_port = bench.free_port()
        rlog = os.path.join(work, "redis.log")
        rproc = bench.spawn(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
                             "--dir", work], rlog)
        bench.wait_port(redis_port, rproc, rlog, "redis-server")
        origin_port = bench.free_port()
        olog = os.path.join(work, "origin.log")
        oproc = bench.spawn([sys.executable, os.path.join(bench.BENCH_DIR, "origin.py"),
                             "--listen", f"127.0.0.1:{origin_port}"], olog)
        bench.wait_port(origin_port, oproc, olog, "origin")
        nodes = [start_node(i, opts.aside, redis_port, origin_port, work) for i in (1, 2, 3)]
        # Let every node's purge reader start at the stream's end.
        time.sleep(1.0)

        bench.log(f"purge propagation: {opts.purges} purges on 3 nodes")
        times, lost = purge_propagation(nodes, opts.purges)
        # Alternate the two loads so that drift of a shared machine hits both;
        # compare the medians.
        kvs, rbs = [], []
        for r in range(opts.rounds):
            bench.log(f"KV round {r + 1}: wrk {opts.conns} connections {opts.seconds}s on node 1")
            kvs.append(kv_wrk(nodes[0], opts.seconds, opts.conns))
            bench.log(f"redis-benchmark GET/SET round {r + 1}")
            rbs.append(redis_benchmark(redis_port, opts.conns, 200_000))
        kv = sorted(kvs, key=lambda k: k["rps"])[len(kvs) // 2]
        rb_all = [(x["GET"] + x["SET"]) / 2.0 for x in rbs]
        rb = sorted(rbs, key=lambda x: x["GET"] + x["SET"])[len(rbs) // 2]
        redis_rps = (rb["GET"] + rb["SET"]) / 2.0
        ratio = kv["rps"] / redis_rps
        kv_rounds = ", ".join(f"{k['rps']:,.0f}" for k in kvs)
        rb_rounds = ", ".join(f"{x:,.0f}" for x in rb_all)

        p50, p99, mx = pct(times, 50), pct(times, 99), max(times) if times else float("nan")
        lines = [
            f"# Cluster benchmark, {time.strftime('%Y-%m-%d %H:%M')}, "
            f"{bench.machine()['cores']} cores {bench.machine()['cpu_model']}",
            "",
            f"Aside `{opts.aside}`, 3 nodes (`threads = 2`: 2 proxy workers, and the admin API the default half of them, 1), one redis-server "
            f"(appendfsync everysec), all on this machine. {opts.note}",
            "",
            "| measure | result | target | |",
            "|---|---|---|---|",
            f"| purge propagation, p50 | {p50:.1f} ms | | |",
            f"| purge propagation, p99 | {p99:.1f} ms (max {mx:.1f}) | <= 100 ms | {'met' if p99 <= 100 else '**not met**'} |",
            f"| purges lost ({opts.purges} purges) | {lost} | 0 | {'met' if lost == 0 else '**not met**'} |",
            f"| KV GET/PUT through Aside, {opts.conns} connections (median of {opts.rounds}) | {kv['rps']:,.0f} req/s (p99 {kv['p99_us']/1000:.1f} ms, {kv['errors']} errors; rounds: {kv_rounds}) | | |",
            f"| redis-benchmark GET / SET, {opts.conns} connections (median of {opts.rounds}) | {rb['GET']:,.0f} / {rb['SET']:,.0f} req/s (rounds, mean of GET and SET: {rb_rounds}) | | |",
            f"| Aside / Redis | {ratio:.2f} | >= 0.50 | {'met' if ratio >= 0.5 else '**not met**'} |",
            "",
            "Propagation = from the `POST /cache/purge` call on node 1 to the entry being gone "
            "(`GET /cache/entry` 404) on nodes 2 and 3, polled back to back over HTTP.",
            "",
            "KV load: `wrk -t2` with `bench/wrk/kv.lua` (half GET, half PUT of a small JSON "
            "object over 1,000 keys, requests built once per thread as redis-benchmark builds "
            "its commands once); redis-benchmark `-c 64 -n 200000 -t get,set` (no pipelining).",
        ]
        report = "\n".join(lines) + "\n"
        print(report)
        if opts.out:
            os.makedirs(os.path.join(bench.BENCH_DIR, "results"), exist_ok=True)
            path = os.path.join(bench.BENCH_DIR, "results", f"cluster-{time.strftime('%Y-%m-%d')}.md")
            with open(path, "w") as f:
                f.write(report)
            bench.log(f"report: {path}")
        return 0 if (p99 <= 100 and lost == 0 and ratio >= 0.5) else 1
    finally:
        bench.stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
