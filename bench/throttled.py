#!/usr/bin/env python3
"""Throttled-origin benchmark (issue 16): Aside in front of an API that allows
20 requests/s, under 200 client requests/s over 50 keys with a 5 s TTL.

    python3 bench/throttled.py --aside target/release/aside [--seconds 60] [--rate 200]
        [--keys 50] [--origin-limit 20] [--ttl 5] [--aside-rate 20] [--burst 1]
        [--refresh-ahead 20%] [--stale-if-unreachable 1m] [--warm concurrent|sequential]
        [--out bench/results/throttled-<date>.md] [--smoke] [--keep]

Starts, all on 127.0.0.1 and ports the kernel hands out:

- the origin (this file with `--serve-origin`, its own process): a sliding
  1-second window of the requests it accepted; a request that would make it
  more than `--origin-limit` gets `429` with `Retry-After: 1`, any other one
  `200` with `Cache-Control: max-age=<ttl>` and a small JSON body. It notes the
  arrival time and answer of every request it receives (`GET /__stats`);
- Aside (temp data dir) with one upstream, `rate-limit = "<aside-rate>/s"`,
  `burst` (1), and a route in `respect-origin` mode with `refresh-ahead` and
  `stale-if-unreachable` (the config is quoted in the report).

Then it warms every key once through Aside's proxy listener, `--warm-concurrency`
(8) clients at once so they queue on the budget (the binary this was written
against predates `POST /cache/warm`), and sends
`--rate` requests/s for `--seconds`: open-loop (each request has its scheduled
time; a late one is measured from that time), uniform random keys (fixed seed),
`--workers` threads each on one keep-alive connection (http.client).

Every answer is classified from its status and Aside's `Cache-Status`:
error (not 200, or no answer), refreshed ahead (`detail=refresh-ahead`), stale
served (`detail=origin-...`, `X-Cache: STALE` or a hit with `ttl` < 0), fresh
hit (`hit`, `ttl` >= 0), miss (anything forwarded: `fwd=miss`, or `fwd=stale`
= the stored copy had expired and was fetched again while the client waited).

Targets: 0 client errors after the warm-up; the origin never receives more
than `--origin-limit` requests in any 1-second window (sliding, over every
request it received, warm-up included) and sends 0 `429`. Exit 1 when one is
missed, 2 when the harness cannot run. `--smoke`: the same with 8 s of load
(~12 s in all). Warm-up answers that are not 200 are reported, not judged.
"""
import argparse
import collections
import http.client
import http.server
import itertools
import json
import os
import random
import re
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the harness helpers: free_port, spawn, wait_port, stop_all, machine)

TOKEN = "bench-throttled-token-0123456789"
HOST = "api.bench"
CLASSES = ("fresh", "stale", "refresh-ahead", "miss", "error")

# ---------------------------------------------------------------- the origin


class ThrottledOrigin(http.server.BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1; the limit and log live on the server object."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        if self.path == "/__stats":
            with srv.lock:
                body = json.dumps({"limit": srv.limit, "window": srv.window,
                                   "log": srv.log}).encode()
            return self.answer(200, body, {"Cache-Control": "no-store"})
        now = time.monotonic()
        with srv.lock:
            acc = srv.accepted
            while acc and acc[0] <= now - srv.window:
                acc.popleft()
            ok = len(acc) < srv.limit
            if ok:
                acc.append(now)
            srv.served += 1
            n = srv.served
            srv.log.append((now, 200 if ok else 429, self.path))
        if not ok:
            return self.answer(429, b'{"error":"rate limited"}\n', {"Retry-After": "1"})
        key = self.path.rpartition("=")[2]
        body = json.dumps({"city": key, "tempC": 12 + n % 7, "n": n}).encode() + b"\n"
        self.answer(200, body, {"Cache-Control": f"max-age={srv.ttl}"})

    def answer(self, status, body, headers):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


def serve_origin(opts):
    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 1024

    srv = Server(("127.0.0.1", 0), ThrottledOrigin)
    srv.limit, srv.window, srv.ttl = opts.origin_limit, 1.0, opts.ttl
    srv.lock = threading.Lock()
    srv.accepted = collections.deque()
    srv.log = []  # (monotonic arrival, status, path): CLOCK_MONOTONIC is system-wide
    srv.served = 0
    print(f"PORT {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


# ---------------------------------------------------------------- Aside

CONFIG = """[server]
listen = "127.0.0.1:{proxy}"
threads = 2
grace-period = "1s"
access-log = true

[admin]
listen = "127.0.0.1:{admin}"
token-env = "ASIDE_ADMIN_TOKEN"

[store]
path = "{work}/aside.redb"
hot-capacity = "16MiB"
cold-capacity = "64MiB"

[[upstream]]
name = "api"
url = "http://127.0.0.1:{origin}"
rate-limit = "{aside_rate}/s"   # the origin allows {origin_limit}/s
burst = {burst}                     # 1: evenly spaced, never more than the rate in any 1 s window
queue-timeout = "2s"

[[route]]
name = "api"
upstream = "api"
mode = "respect-origin"         # the origin's max-age={ttl} decides
refresh-ahead = "{refresh_ahead}"          # hits in the last part of the freshness refresh in the background
stale-if-unreachable = "{stale}"    # stale answers while the origin is kept back (budget, 429 pause)
"""


def classify(status, cache_status, x_cache):
    if status != 200:
        return "error"
    cs = cache_status or ""
    if "detail=refresh-ahead" in cs:
        return "refresh-ahead"
    m = re.search(r"ttl=(-?\d+)", cs)
    if "detail=origin-" in cs or (x_cache or "").upper() == "STALE" or (
            "; hit" in cs and m and int(m.group(1)) < 0):
        return "stale"
    if "; hit" in cs:
        return "fresh"
    return "miss"


def shape(cache_status):
    """Cache-Status with its numbers folded, for the table of shapes seen."""
    s = re.sub(r"ttl=-\d+", "ttl=-N", cache_status or "(none)")
    return re.sub(r"ttl=\d+", "ttl=N", s)


class Client:
    """One keep-alive connection; reconnects after an error."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def get(self, path):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self.conn.request("GET", path, headers={"Host": HOST})
                r = self.conn.getresponse()
                body = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, r.getheader("Cache-Status"), r.getheader("X-Cache"), body
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                # A keep-alive connection the server closed while idle: once more, fresh.
                self.conn.close()
                self.conn = None
                if attempt:
                    return 0, f"(no answer: {type(e).__name__})", None, b""
            except OSError as e:
                self.conn.close()
                self.conn = None
                return 0, f"(no answer: {type(e).__name__}: {e})", None, b""
        return 0, "(no answer)", None, b""

    def close(self):
        if self.conn:
            self.conn.close()


def key_path(k):
    return f"/v1/weather?city=city-{k:03d}"


def run_load(port, opts, t0):
    """Open loop: request i is due at t0 + i / rate. Returns one record per request."""
    n = int(opts.seconds * opts.rate)
    rng = random.Random(16)
    keys = [rng.randrange(opts.keys) for _ in range(n)]
    records = [None] * n
    counter = itertools.count()

    def worker():
        c = Client(port)
        try:
            while True:
                i = next(counter)
                if i >= n:
                    return
                due = t0 + i / opts.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                sent = time.monotonic()
                status, cs, xc, _ = c.get(key_path(keys[i]))
                done = time.monotonic()
                records[i] = (due, sent, done, status, cs, xc)
        finally:
            c.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(opts.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(opts.seconds + 60)
    return [r for r in records if r is not None], n


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return values[k]


def max_in_window(times, window=1.0):
    """Most arrivals in any half-open window [t, t + window)."""
    times = sorted(times)
    best, j = 0, 0
    for i in range(len(times)):
        while times[i] - times[j] >= window:
            j += 1
        best = max(best, i - j + 1)
    return best


def tightest_span(times, n):
    """Shortest time covered by n consecutive arrivals (s); with n = limit + 1, a
    value >= the window means the limit was never exceeded."""
    times = sorted(times)
    if len(times) < n:
        return float("inf")
    return min(times[i + n - 1] - times[i] for i in range(len(times) - n + 1))


def scrape_metrics(admin_port):
    req = urllib.request.Request(f"http://127.0.0.1:{admin_port}/metrics",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        text = r.read().decode()
    keep = ("aside_origin_protection_total", "aside_upstream_requests_total",
            "aside_upstream_errors_total", "aside_cache_lock_waits_total")
    return [ln for ln in text.splitlines() if ln.startswith(keep)]


def warm_sequential(proxy, opts):
    """Every key once, in order, through the proxy listener: one at a time."""
    c = Client(proxy)
    bad, lat = [], []
    for k in range(opts.keys):
        t = time.monotonic()
        status, cs, _, body = c.get(key_path(k))
        lat.append((time.monotonic() - t) * 1000)
        if status != 200:
            bad.append((k, status, cs, body[:120]))
    c.close()
    return bad, lat


def warm_concurrent(proxy, opts):
    """Every key once through the proxy listener, `--warm-concurrency` at once: they
    queue on the budget, the tightest test of the limiter's spacing."""
    bad, lat, counter = [], [], itertools.count()

    def worker():
        c = Client(proxy)
        while True:
            k = next(counter)
            if k >= opts.keys:
                break
            t = time.monotonic()
            status, cs, _, body = c.get(key_path(k))
            lat.append((time.monotonic() - t) * 1000)
            if status != 200:
                bad.append((k, status, cs, body[:120]))
        c.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(opts.warm_concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return bad, lat


def start_origin(opts, work):
    olog = os.path.join(work, "origin.log")
    err = open(olog, "ab")
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve-origin",
                          "--origin-limit", str(opts.origin_limit), "--ttl", str(opts.ttl)],
                         stdout=subprocess.PIPE, stderr=err, start_new_session=True)
    err.close()
    bench.STARTED.append(p)
    line = p.stdout.readline().decode()
    if not line.startswith("PORT "):
        raise bench.HarnessError(f"origin did not start: {line!r}\n{bench.tail(olog)}")
    return p, int(line.split()[1])


def origin_stats(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/__stats", timeout=10) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aside", help="the Aside binary (required unless --serve-origin)")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rate", type=float, default=200, help="client requests per second")
    ap.add_argument("--keys", type=int, default=50)
    ap.add_argument("--origin-limit", type=int, default=20, help="the origin's requests per second")
    ap.add_argument("--aside-rate", type=int, help="Aside's rate-limit per second (default: --origin-limit)")
    ap.add_argument("--burst", type=int, default=1,
                    help="Aside's burst; any 1 s window may then see rate + burst - 1 requests")
    ap.add_argument("--ttl", type=int, default=5, help="the origin's max-age, seconds")
    ap.add_argument("--refresh-ahead", default="20%")
    ap.add_argument("--stale-if-unreachable", default="1m")
    ap.add_argument("--warm", choices=("concurrent", "sequential"), default="concurrent",
                    help="concurrent: --warm-concurrency clients at once, queueing on the budget")
    ap.add_argument("--warm-concurrency", type=int, default=8)
    ap.add_argument("--workers", type=int, default=8, help="client threads, one keep-alive connection each")
    ap.add_argument("--out", help="write the markdown report to this file")
    ap.add_argument("--smoke", action="store_true", help="8 s of load, ~12 s in all (same targets)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (config, logs)")
    ap.add_argument("--note", default="")
    ap.add_argument("--serve-origin", action="store_true", help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts.serve_origin:
        return serve_origin(opts)
    if not opts.aside:
        ap.error("--aside is required")
    if opts.smoke:
        opts.seconds = 8
    opts.aside_rate = opts.aside_rate or opts.origin_limit
    aside_bin = os.path.abspath(opts.aside)
    work = tempfile.mkdtemp(prefix="aside-throttled-bench-")
    try:
        return run(opts, aside_bin, work)
    except bench.HarnessError as e:
        print(f"harness error: {e}", file=sys.stderr)
        opts.keep = True
        return 2
    finally:
        bench.stop_all()
        if opts.keep:
            bench.log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(opts, aside_bin, work):
    oproc, origin_port = start_origin(opts, work)
    proxy, admin = bench.free_port(), bench.free_port()
    config = CONFIG.format(proxy=proxy, admin=admin, work=work, origin=origin_port,
                           aside_rate=opts.aside_rate, origin_limit=opts.origin_limit, burst=opts.burst,
                           ttl=opts.ttl, refresh_ahead=opts.refresh_ahead,
                           stale=opts.stale_if_unreachable)
    conf = os.path.join(work, "aside.toml")
    with open(conf, "w") as f:
        f.write(config)
    chk = subprocess.run([aside_bin, "--check-config", conf], capture_output=True, text=True)
    if chk.returncode != 0:
        raise bench.HarnessError(f"config refused:\n{chk.stdout}{chk.stderr}")
    alog = os.path.join(work, "aside.log")
    env = dict(os.environ, ASIDE_ADMIN_TOKEN=TOKEN, RUST_LOG=os.environ.get("RUST_LOG", "info"))
    aproc = bench.spawn([aside_bin, "--config", conf, "--data", work], alog, env=env)
    bench.wait_port(admin, aproc, alog, "aside")
    bench.wait_port(proxy, aproc, alog, "aside")

    bench.log(f"warm-up: {opts.keys} keys ({opts.warm})")
    warm_t0 = time.monotonic()
    if opts.warm == "concurrent":
        warm_bad, warm_lat = warm_concurrent(proxy, opts)
    else:
        warm_bad, warm_lat = warm_sequential(proxy, opts)
    warm_s = time.monotonic() - warm_t0
    if warm_bad:
        bench.log(f"warm-up: {len(warm_bad)} keys not 200, first: {warm_bad[0]}")

    bench.log(f"load: {opts.rate:g} req/s over {opts.keys} keys for {opts.seconds:g} s")
    t0 = time.monotonic() + 0.2
    records, planned = run_load(proxy, opts, t0)
    t_end = time.monotonic()
    metrics = scrape_metrics(admin)
    ostats = origin_stats(origin_port)
    alive = aproc.poll() is None
    with open(alog, "rb") as f:
        log_text = f.read().decode(errors="replace")
    log_warn = [ln for ln in log_text.splitlines()
                if (" WARN " in ln or " ERROR " in ln or "panick" in ln)]
    # A background refresh that finds no budget gives up (the entry answers meanwhile):
    # one WARN each; counted apart from anything else.
    refresh_gave_up = [ln for ln in log_warn if "budget of this origin is spent" in ln
                       and "(subrequest)" in ln]
    other_warn = [ln for ln in log_warn if ln not in refresh_gave_up
                  and "no header compression dictionary" not in ln]

    # ---- client side
    counts = collections.Counter()
    shapes = collections.Counter()
    by_class_shape = {}
    errors = collections.Counter()
    lat_sent, lat_due, late = [], [], 0
    timeline = collections.defaultdict(collections.Counter)
    bucket = 5.0 if opts.seconds >= 20 else 1.0
    for due, sent, done, status, cs, xc in records:
        cls = classify(status, cs, xc)
        counts[cls] += 1
        sh = shape(cs)
        shapes[sh] += 1
        by_class_shape[sh] = cls
        if cls == "error":
            errors[f"{status} {cs}"] += 1
        lat_sent.append((done - sent) * 1000)
        lat_due.append((done - due) * 1000)
        if sent - due > 0.010:
            late += 1
        timeline[int((due - t0) // bucket)][cls] += 1
    missing = planned - len(records)
    total = len(records)

    # ---- origin side
    log = ostats["log"]
    all_times = [t for t, _, _ in log]
    run_log = [(t, s) for t, s, _ in log if t >= t0]
    o_max_all = max_in_window(all_times)
    o_max_run = max_in_window([t for t, _ in run_log])
    o_span = tightest_span(all_times, opts.origin_limit + 1)
    o_429 = sum(1 for _, s, _ in log if s == 429)
    o_total = len(log)
    o_warm = sum(1 for t, _, _ in log if t < t0)
    o_per_s = collections.Counter(int(t - t0) for t, _ in run_log if t < t_end)
    otimeline = collections.defaultdict(collections.Counter)
    for t, s in run_log:
        otimeline[int((t - t0) // bucket)][s] += 1
    o_200_run = sum(1 for _, s in run_log if s == 200)

    errors_ok = counts["error"] == 0 and missing == 0
    limit_ok = o_max_all <= opts.origin_limit
    no429 = o_429 == 0
    verdict = errors_ok and limit_ok and no429 and alive

    # ---- report
    m = bench.machine()
    frac = (lambda k: f"{counts[k]:,} | {100.0 * counts[k] / total:.2f} %" if total else "0 | -")
    met = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    lines = [
        f"# Throttled origin benchmark, {time.strftime('%Y-%m-%d %H:%M')}"
        + (" (smoke)" if opts.smoke else ""),
        "",
        f"Machine: {m['cores']} cores, {m['cpu_model']}, Linux {m['kernel']}. "
        f"Aside `{opts.aside}`. {opts.note}".rstrip(),
        "",
        "## Settings",
        "",
        f"- origin (`bench/throttled.py --serve-origin`, Python threads): accepts at most "
        f"**{opts.origin_limit} requests in any sliding 1 s window**, above it `429` with "
        f"`Retry-After: 1`; else `200`, `Cache-Control: max-age={opts.ttl}`, ~50 B of JSON, no validators",
        f"- clients: **{opts.rate:g} requests/s** open-loop for **{opts.seconds:g} s**, uniform random "
        f"over **{opts.keys} keys** (seed 16), {opts.workers} threads with one keep-alive connection "
        f"each (`http.client`); latency of a late request counts from its scheduled time",
        (f"- warm-up: every key once through the proxy listener, {opts.warm_concurrency} clients at once "
         f"(so they queue on the budget), {warm_s:.2f} s" if opts.warm == "concurrent" else
         f"- warm-up: each key once, in order, through the proxy listener ({warm_s:.2f} s")
        + (f"; {len(warm_bad)} keys not 200" if warm_bad else ", all 200") + ")",
        f"- Aside: `rate-limit = \"{opts.aside_rate}/s\"`"
        + (" (the origin's limit)" if opts.aside_rate == opts.origin_limit else
           f" (under the origin's {opts.origin_limit}/s)")
        + f", `burst = {opts.burst}`, `refresh-ahead = \"{opts.refresh_ahead}\"`, `stale-if-unreachable = "
        f"\"{opts.stale_if_unreachable}\"`; the config:",
        "",
        "```toml",
        re.sub(r"(listen|url|path) = \"[^\"]*\"", r'\1 = "…"', config).rstrip(),
        "```",
        "",
        "## Results",
        "",
        "| measure | result | share / target | |",
        "|---|---|---|---|",
        f"| client requests answered (after warm-up) | {total:,} of {planned:,} planned | | |",
        f"| fresh hits | {frac('fresh')} | |",
        f"| stale served | {frac('stale')} | |",
        f"| refreshed ahead (answered from cache, refresh started) | {frac('refresh-ahead')} | |",
        f"| misses (forwarded while the client waited) | {frac('miss')} | |",
        f"| client errors (not 200 or no answer) | {counts['error'] + missing:,} | 0 | {met(errors_ok)} |",
        f"| origin: most requests in any 1 s window (whole run, warm-up included) | {o_max_all} | <= {opts.origin_limit} | {met(limit_ok)} |",
        f"| origin: most requests in any 1 s window (load phase) | {o_max_run} | | |",
        f"| origin: shortest time spanned by {opts.origin_limit + 1} consecutive requests | "
        f"{o_span * 1000:.1f} ms | >= 1000 ms = within the limit | |",
        f"| origin: `429`s sent | {o_429} | 0 | {met(no429)} |",
        f"| origin: requests received (warm-up / load phase) | {o_total:,} ({o_warm} / {len(run_log):,}, "
        f"{len(run_log) / max(1e-9, t_end - t0):.1f}/s in the load phase) | | |",
        f"| client latency p50 / p99 / max (from send) | {pct(lat_sent, 50):.2f} / {pct(lat_sent, 99):.2f} / "
        f"{max(lat_sent) if lat_sent else float('nan'):.1f} ms | | |",
        f"| client latency p50 / p99 (from scheduled time); requests sent > 10 ms late | "
        f"{pct(lat_due, 50):.2f} / {pct(lat_due, 99):.2f} ms; {late} | | |",
        f"| warm-up: answers not 200 (before \"once warm\", not judged) | {len(warm_bad)} | | |",
        f"| warm-up: longest answer (a FIFO budget queue of {opts.warm_concurrency if opts.warm == 'concurrent' else 1} "
        f"would keep it <= {1000.0 * (opts.warm_concurrency if opts.warm == 'concurrent' else 1) / opts.aside_rate:.0f} ms) | "
        f"{max(warm_lat):.0f} ms | | |",
        f"| Aside alive at the end | {'yes' if alive else '**no**'} | | |",
        f"| Aside log: background refreshes given up for lack of budget (WARN `... budget ... spent ... (subrequest)`) | "
        f"{len(refresh_gave_up)} | | |",
        f"| Aside log: other WARN/ERROR lines | {len(other_warn)} | | |",
        "",
        "Classes, from `Cache-Status`: *fresh* `hit` with `ttl` >= 0; *refreshed ahead* "
        "`detail=refresh-ahead` (a fresh hit in the refresh-ahead window, answered from the cache "
        "while one background refresh is tried); *stale* a hit with `ttl` < 0 (`detail=stale`: "
        "pingora's stale-while-revalidate, which refresh-ahead gives every entry for at least 1 s; "
        "`detail=origin-...`: the origin was kept back); *miss* forwarded while the client waited "
        "(`fwd=miss`, or `fwd=stale`: the copy had expired past those windows and was fetched "
        "again); *error* anything not 200.",
        "",
        f"Origin requests per second of the load phase: {' '.join(str(o_per_s.get(s, 0)) for s in range(int(opts.seconds)))}",
        "",
        f"## Timeline ({bucket:g} s buckets)",
        "",
        "| from s | fresh | stale | refresh-ahead | miss | error | origin 200 | origin 429 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for b in sorted(set(timeline) | set(otimeline)):
        tc, oc = timeline[b], otimeline[b]
        lines.append(f"| {b * bucket:g} | {tc['fresh']} | {tc['stale']} | {tc['refresh-ahead']} | "
                     f"{tc['miss']} | {tc['error']} | {oc[200]} | {oc[429]} |")
    lines += ["", "## `Cache-Status` shapes seen (numbers folded)", "",
              "| Cache-Status | class | count |", "|---|---|---|"]
    for sh, cnt in shapes.most_common(20):
        lines.append(f"| `{sh}` | {by_class_shape[sh]} | {cnt:,} |")
    if errors:
        lines += ["", "Client errors:", ""]
        lines += [f"- {cnt} x `{e}`" for e, cnt in errors.most_common(10)]
    lines += ["", "## Aside's metrics at the end (`/metrics`, protection and upstream)", "", "```"]
    lines += metrics or ["(none)"]
    lines += ["```"]
    if warm_bad:
        lines += ["", "Warm-up answers not 200:", ""]
        lines += [f"- key {k}: {st} `{cs}`" for k, st, cs, _ in warm_bad[:10]]
    shown = other_warn[:10] or refresh_gave_up[:3]
    if shown:
        lines += ["", "Aside WARN/ERROR lines (first few):", "", "```"]
        lines += [ln[:300] for ln in shown] + ["```"]
    lines += ["", f"**Verdict: {'all targets met' if verdict else 'a target was missed'}.**"]
    report = "\n".join(lines) + "\n"
    print(report)
    if opts.out:
        os.makedirs(os.path.dirname(os.path.abspath(opts.out)), exist_ok=True)
        with open(opts.out, "w") as f:
            f.write(report)
        bench.log(f"report: {opts.out}")
    if not verdict:
        opts.keep = True
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
