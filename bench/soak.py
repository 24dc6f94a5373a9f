#!/usr/bin/env python3
"""Soak test (issue 11): Aside under a steady mixed load for 10 minutes.

    python3 bench/soak.py --aside target/release/aside [--seconds 600]   (or `make soak`)

Stdlib only, 127.0.0.1 only, ports handed out by the kernel, every process it starts
is stopped on exit. What it does:

1. starts the origin (bench/origin.py, path /soak: bodies that are a pure function of
   their key and size, with `X-Checksum: <sha256>`) and Aside (a config rendered from
   CONFIG_TEMPLATE or --config-template, a temp data dir, ASIDE_ADMIN_TOKEN);
2. warms a set of hot keys (sizes 0 B to 1 MiB, every 4th one chunked at the origin);
3. measures the peak: every load connection sends its mix back to back for
   --peak-seconds (closed loop);
4. soaks for --seconds at --load-fraction (0.8) of the peak measured per connection
   class (proxy / admin), open loop (a schedule per connection), while slowloris
   clients, slow request bodies and a few hundred idle connections sit on both the
   proxy port and the admin port;
5. samples Aside's RSS and open files every --rss-interval seconds, runs a post-check
   (a hit and /healthz answer while the idle clients are still connected), stops Aside
   and writes a markdown report.

The mix, per request: proxy lanes send hits (the warm keys, max-age 1 h), misses
(never-seen keys, max-age 2-30 s, a third chunked at the origin) and re-requests of
recent misses (hit, or expired and fetched again); admin lanes send KV PUTs
(`{"value": ...}`, some with ttlSeconds) and KV GETs of keys only that connection
writes, so the value read back must equal the last acknowledged write.

Every proxied body is checked: status 200, framing (Content-Length or complete chunked
encoding, nothing left over), `X-Soak-Key` = the key asked for, length = the size asked
for, the body starts with "<key>|<size>|", and sha256(body) = `X-Checksum`.

Exit code: 0 when errors = 0, corrupted = 0, RSS flat and Aside alive without a panic;
1 otherwise; 2 when the harness itself cannot run.
"""
import argparse
import asyncio
import collections
import datetime
import hashlib
import http.client
import json
import math
import multiprocessing
import os
import queue
import random
import re
import resource
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
sys.dont_write_bytecode = True  # no bench/__pycache__ from importing bench.py
import bench  # noqa: E402  (process helpers shared with the benchmark harness)
from bench import HarnessError, free_port, spawn, stop, stop_all, tail, wait_port  # noqa: E402

PY = sys.executable or "python3"

# Aside under soak. Production-like apart from the sizes: both worker threads, the
# origin's Cache-Control decides (hits live 1 h, misses 2-30 s, so entries expire and
# are collected all the time), a small hot tier so that it is full early and some
# hits come from the disk tier, no access log (10 minutes of it would be ~GBs).
CONFIG_TEMPLATE = """\
[server]
listen = ["127.0.0.1:@PORT@"]
threads = @THREADS@
grace-period = "1s"
access-log = false

[admin]
listen = "127.0.0.1:@ADMIN_PORT@"
token-env = "ASIDE_ADMIN_TOKEN"

[store]
path = "@DATA@/aside.redb"
hot-capacity = "@HOT@"
cold-capacity = "@COLD@"

[[upstream]]
name = "origin"
url = "http://127.0.0.1:@ORIGIN_PORT@"
read-timeout = "10s"

[[route]]
upstream = "origin"
mode = "respect-origin"
"""

# Body sizes (bytes, weight): mean ~49 KiB (the weighted mean of this table), from empty to 1 MiB.
SIZES = [(0, 1), (1, 2), (100, 8), (1024, 25), (4096, 22), (16384, 20), (65536, 14),
         (262144, 6), (1048576, 2)]
MISS_MAX_AGES = (2, 5, 10, 30)
KV_PAD_SIZES = [(0, 1), (10, 4), (100, 6), (1000, 6), (4000, 3), (20000, 1)]
KV_KEYS_PER_LANE = 64
REQUEST_TIMEOUT = 10.0  # seconds for one whole request/response
SLOW_INTERVAL = 1.5  # one byte every 1.5 s (slowloris and slow bodies)


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def weighted(rng, table):
    total = sum(w for _, w in table)
    x = rng.random() * total
    for v, w in table:
        x -= w
        if x < 0:
            return v
    return table[-1][0]


def hot_object(i):
    """The i-th hot key: (key, size, chunked). Sizes vary a little around the table's."""
    rng = random.Random(i)
    base = weighted(rng, SIZES)
    size = base + (rng.randrange(base // 8 + 1) if base > 1 else 0)
    return f"h{i}", size, i % 4 == 0


def served_as(cache_status):
    """'hit', 'fwd=miss', 'fwd=stale (detail=...)' from an RFC 9211 Cache-Status value."""
    if "; hit" in cache_status:
        return "hit"
    fwd = re.findall(r"fwd=([a-z-]+)", cache_status)
    detail = re.findall(r"detail=([^;]+)", cache_status)
    return ("fwd=" + fwd[0] if fwd else cache_status[:40] or "no Cache-Status") + (
        f" ({detail[0].strip()})" if detail else "")


def soak_target(key, size, max_age, chunked):
    return f"/soak?k={key}&size={size}&max-age={max_age}" + ("&chunked=1" if chunked else "")


# ------------------------------------------------------------------ HTTP client

class Closed(Exception):
    """The server closed (or reset) the connection before any byte of the response."""


class Truncated(Exception):
    """The response stopped short of its framing (Content-Length or chunked)."""


class Framing(Exception):
    """The response's framing is invalid (bad chunk size, missing CRLF, conflicting lengths)."""


class Conn:
    def __init__(self, port):
        self.port = port
        self.reader = self.writer = None
        self.requests = 0  # on this TCP connection

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20)
        self.requests = 0

    def close(self):
        if self.writer is not None:
            self.writer.transport.abort()
        self.reader = self.writer = None

    async def request(self, method, target, headers=(), body=b""):
        """One request on the keep-alive connection; returns (status, headers, body, framing).
        headers: dict of lower-case names to values (duplicates joined with ", ")."""
        if self.writer is None:
            await self.open()
        head = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        head += [f"{k}: {v}" for k, v in headers]
        if body or method in ("PUT", "POST"):
            head.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        self.requests += 1
        try:
            self.writer.write(data)
            await self.writer.drain()
            return await read_response(self.reader, method)
        except (ConnectionError, BrokenPipeError) as e:
            raise Closed(f"{type(e).__name__}") from None


async def read_response(reader, method):
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            if e.partial:
                raise Truncated(f"headers cut after {len(e.partial)} bytes") from None
            raise Closed("EOF before the response") from None
        except asyncio.LimitOverrunError:
            raise Framing("response headers over 1 MiB") from None
        lines = head[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise Framing(f"bad status line {lines[0][:80]!r}")
        status = int(parts[1])
        headers, cls = {}, []
        for line in lines[1:]:
            k, sep, v = line.partition(":")
            if not sep:
                raise Framing(f"bad header line {line[:80]!r}")
            k, v = k.strip().lower(), v.strip()
            if k == "content-length":
                cls.append(v)
            headers[k] = headers[k] + ", " + v if k in headers else v
        if 100 <= status < 200:
            continue  # 100 Continue and friends
        break
    if method == "HEAD" or status in (204, 304):
        return status, headers, b"", "none"
    te = headers.get("transfer-encoding", "").lower()
    try:
        if te:
            if te.split(",")[-1].strip() != "chunked":
                raise Framing(f"transfer-encoding {te!r}")
            if cls:
                raise Framing("both Transfer-Encoding and Content-Length")
            chunks = []
            while True:
                line = await reader.readuntil(b"\r\n")
                try:
                    n = int(line[:-2].split(b";")[0].strip(), 16)
                except ValueError:
                    raise Framing(f"bad chunk size line {line[:40]!r}") from None
                if n == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass  # trailers
                    return status, headers, b"".join(chunks), "chunked"
                chunks.append(await reader.readexactly(n))
                if await reader.readexactly(2) != b"\r\n":
                    raise Framing("chunk not followed by CRLF")
        if cls:
            if len(set(cls)) != 1 or not cls[0].isdigit():
                raise Framing(f"content-length {cls}")
            return status, headers, await reader.readexactly(int(cls[0])), "length"
        return status, headers, await reader.read(), "close"
    except asyncio.IncompleteReadError as e:
        raise Truncated(f"body cut ({te or 'content-length ' + ','.join(cls)}, "
                        f"{len(e.partial)} bytes of the last read)") from None
    except ConnectionError as e:
        raise Truncated(f"{type(e).__name__} in the body") from None


# ------------------------------------------------------------------ load worker

class Stats:
    """Counters of one worker process for one phase (picklable plain dicts)."""

    RESERVOIR = 20000

    def __init__(self, seed):
        self.ok = collections.Counter()  # op -> count
        self.errors = collections.Counter()  # "op: kind" -> count
        self.corrupted = collections.Counter()  # "op: kind" -> count
        self.served = collections.Counter()  # "op: hit|miss|..." (Cache-Status)
        self.bytes = 0
        self.lat = collections.defaultdict(list)  # op -> reservoir of seconds
        self.lat_n = collections.Counter()
        self.lat_max = collections.Counter()
        self.examples = []
        self.rng = random.Random(seed)
        self.tcp_opened = collections.Counter()  # proxy|admin -> connections opened

    def latency(self, op, s):
        n = self.lat_n[op] = self.lat_n[op] + 1
        res = self.lat[op]
        if len(res) < self.RESERVOIR:
            res.append(s)
        else:
            j = self.rng.randrange(n)
            if j < self.RESERVOIR:
                res[j] = s
        if s > self.lat_max[op]:
            self.lat_max[op] = s

    def example(self, text):
        if len(self.examples) < 20:
            self.examples.append(f"{time.strftime('%H:%M:%S')} {text}")

    def error(self, op, kind, detail=""):
        self.errors[f"{op}: {kind}"] += 1
        self.example(f"error {op} {kind} {detail}")

    def corrupt(self, op, kind, detail=""):
        self.corrupted[f"{op}: {kind}"] += 1
        self.example(f"CORRUPTED {op} {kind} {detail}")

    def total(self):
        return sum(self.ok.values()) + sum(self.errors.values()) + sum(self.corrupted.values())

    def plain(self):
        return {"ok": dict(self.ok), "errors": dict(self.errors), "corrupted": dict(self.corrupted),
                "served": dict(self.served), "bytes": self.bytes, "lat": dict(self.lat),
                "lat_n": dict(self.lat_n), "lat_max": dict(self.lat_max),
                "examples": self.examples, "tcp_opened": dict(self.tcp_opened)}


class Lane:
    """One keep-alive connection and what it owns (recent miss keys, its KV keys)."""

    def __init__(self, w, idx, kind, port, cfg, nonce):
        self.w, self.idx, self.kind, self.cfg = w, idx, kind, cfg
        self.conn = Conn(port)
        self.rng = random.Random(f"{nonce}/{w}/{idx}")
        self.nonce = nonce
        self.seq = 0
        self.recent = collections.deque(maxlen=200)  # (key, size, chunked)
        self.kv = {}  # i -> value last acknowledged, or UNKNOWN after a failed PUT
        self.kv_prefix = f"soak/{nonce}/w{w}/c{idx}"

    def pick(self):
        r = self.rng.random()
        if self.kind == "proxy":
            if r < 0.80:
                return "hit"
            return "miss" if r < 0.933 or not self.recent else "recent"
        return "kv_put" if r < 0.6 else "kv_get"

    async def send(self, st, method, target, headers=(), body=b""):
        if self.conn.writer is None:
            await self.conn.open()
            st.tcp_opened[self.kind] += 1
        status, h, data, framing = await self.conn.request(method, target, headers, body)
        st.bytes += len(data)
        if framing == "close" or "close" in h.get("connection", "").lower():
            self.conn.close()
        return status, h, data, framing

    async def get_object(self, st, op, key, size, max_age, chunked):
        status, h, body, framing = await self.send(st, "GET", soak_target(key, size, max_age, chunked))
        if status != 200:
            st.error(op, f"status {status}", f"{key}: {body[:80]!r}")
            return
        if framing == "close":
            st.error(op, "unframed", f"{key}: a 200 without Content-Length or chunked")
            return
        st.served[f"{op}: {served_as(h.get('cache-status', ''))}"] += 1
        want = h.get("x-checksum")
        if not want:
            st.corrupt(op, "no X-Checksum", key)
        elif h.get("x-soak-key") != key:
            st.corrupt(op, "wrong X-Soak-Key", f"asked {key}, got {h.get('x-soak-key')}")
        elif len(body) != size:
            st.corrupt(op, "wrong length", f"{key}: {len(body)} bytes, want {size} ({framing})")
        elif not body.startswith(f"{key}|{size}|".encode()[:size]):
            st.corrupt(op, "wrong body", f"{key}: starts {body[:40]!r}")
        elif hashlib.sha256(body).hexdigest() != want:
            st.corrupt(op, "checksum mismatch", f"{key} ({size} bytes, {framing})")
        else:
            st.ok[op] += 1

    async def hit(self, st):
        key, size, chunked = hot_object(self.rng.randrange(self.cfg["hot_keys"]))
        await self.get_object(st, "hit", key, size, 3600, chunked)

    async def miss(self, st):
        self.seq += 1
        key = f"m{self.nonce}-{self.w}-{self.idx}-{self.seq}"
        size = weighted(self.rng, SIZES)
        size += self.rng.randrange(size // 8 + 1) if size > 1 else 0
        chunked = self.rng.random() < 1 / 3
        max_age = self.rng.choice(MISS_MAX_AGES)
        self.recent.append((key, size, chunked, max_age))
        await self.get_object(st, "miss", key, size, max_age, chunked)

    async def recent_again(self, st):
        key, size, chunked, max_age = self.rng.choice(self.recent)
        await self.get_object(st, "recent", key, size, max_age, chunked)

    def kv_headers(self):
        return [("Authorization", f"Bearer {self.cfg['token']}"), ("Content-Type", "application/json")]

    async def kv_put(self, st):
        i = self.rng.randrange(KV_KEYS_PER_LANE)
        self.seq += 1
        pad = "".join(self.rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=weighted(self.rng, KV_PAD_SIZES)))
        shape = self.rng.random()
        if shape < 0.7:
            value = {"seq": self.seq, "lane": self.kv_prefix, "pad": pad,
                     "sha": hashlib.sha256(pad.encode()).hexdigest()[:16], "nested": {"list": [1, 2.5, None, True]}}
        elif shape < 0.85:
            value = [self.seq, pad]
        elif shape < 0.95:
            value = f"{self.seq}:{pad}"
        else:
            value = self.seq
        doc = {"value": value}
        if self.rng.random() < 0.25:
            doc["ttlSeconds"] = 3600
        key = f"{self.kv_prefix}/{i}"
        self.kv[i] = UNKNOWN  # until acknowledged
        status, h, body, _ = await self.send(st, "PUT", f"/kv/items/{key}", self.kv_headers(),
                                             json.dumps(doc).encode())
        if not 200 <= status < 300:
            st.error("kv_put", f"status {status}", f"{key}: {body[:80]!r}")
            return
        try:
            data = json.loads(body)["data"]
        except (ValueError, KeyError, TypeError):
            st.corrupt("kv_put", "bad JSON answer", repr(body[:80]))
            return
        if isinstance(data, dict) and data.get("key", key) != key:
            st.corrupt("kv_put", "answer names another key", f"{key}: {body[:80]!r}")
            return
        self.kv[i] = value
        st.ok["kv_put"] += 1

    async def kv_get(self, st):
        i = self.rng.randrange(KV_KEYS_PER_LANE)
        key = f"{self.kv_prefix}/{i}"
        status, h, body, _ = await self.send(st, "GET", f"/kv/items/{key}", self.kv_headers()[:1])
        want = self.kv.get(i, ABSENT)
        if status == 404:
            if want is ABSENT or want is UNKNOWN:
                st.ok["kv_get"] += 1
            else:
                st.corrupt("kv_get", "acknowledged write lost (404)", key)
            return
        if status != 200:
            st.error("kv_get", f"status {status}", f"{key}: {body[:80]!r}")
            return
        try:
            data = json.loads(body)["data"]
            got_key, got = data["key"], data["value"]
        except (ValueError, KeyError, TypeError):
            st.corrupt("kv_get", "bad JSON answer", repr(body[:80]))
            return
        if got_key != key:
            st.corrupt("kv_get", "answer names another key", f"asked {key}, got {got_key}")
        elif want is ABSENT:
            st.corrupt("kv_get", "value for a key never written", key)
        elif want is not UNKNOWN and got != want:
            st.corrupt("kv_get", "value differs from the last acknowledged write",
                       f"{key}: got {json.dumps(got)[:120]}")
        else:
            st.ok["kv_get"] += 1


UNKNOWN = object()  # a PUT failed: the key may hold the old or the new value
ABSENT = object()  # never written by this lane


async def worker_main(w, cfg, phases, out):
    """Runs the given phases one after another on the same lanes, reporting to `out`."""
    # Keys (misses, KV) are unique to this run and this set of phases: a new process must
    # not meet the keys an earlier one wrote.
    nonce = f"{cfg['nonce']}{phases[-1]['name'][0]}"
    lanes = ([Lane(w, i, "proxy", cfg["port"], cfg, nonce) for i in range(cfg["proxy_lanes"])]
             + [Lane(w, 100 + i, "admin", cfg["admin_port"], cfg, nonce) for i in range(cfg["admin_lanes"])])
    for phase in phases:
        st = Stats(f"{nonce}/{w}/{phase['name']}")
        tick = {"n": 0, "err": 0, "bad": 0}
        stop_at = time.monotonic() + phase["seconds"]

        async def ticker():
            # progress every tick_s: deltas of requests / errors / corrupted
            while True:
                await asyncio.sleep(cfg["tick_s"])
                n, e, b = st.total(), sum(st.errors.values()), sum(st.corrupted.values())
                out.put(("tick", w, phase["name"], time.time(), n - tick["n"], e - tick["err"], b - tick["bad"]))
                tick.update(n=n, err=e, bad=b)

        async def lane_loop(lane):
            rate = phase["rates"].get(lane.kind)  # requests/s for this lane, None = flat out
            interval = 1.0 / rate if rate else 0.0
            nxt = time.monotonic() + (lane.rng.random() * interval)
            limit = phase.get("max_requests", 10 ** 9)
            done = 0
            while done < limit:
                now = time.monotonic()
                if now >= stop_at:
                    break
                if interval:
                    if nxt > now:
                        await asyncio.sleep(min(nxt - now, stop_at - now))
                        if time.monotonic() >= stop_at:
                            break
                    nxt += interval
                    if nxt < time.monotonic() - 1.0:
                        nxt = time.monotonic()  # fell behind: no catch-up burst
                op = lane.pick()
                await run_named(lane, op, st)
                done += 1

        t0 = time.time()
        cpu0 = time.process_time()
        out.put(("start", w, phase["name"], t0))
        tk = asyncio.ensure_future(ticker())
        if phase["name"] == "warm":
            await warm_hot(w, cfg, lanes, st)
        else:
            await asyncio.gather(*(lane_loop(l) for l in lanes))
        tk.cancel()
        out.put(("tick", w, phase["name"], time.time(), st.total() - tick["n"],
                 sum(st.errors.values()) - tick["err"], sum(st.corrupted.values()) - tick["bad"]))
        plain = st.plain()
        plain["client_cpu"] = time.process_time() - cpu0
        out.put(("done", w, phase["name"], time.time() - t0, plain))
    for lane in lanes:
        lane.conn.close()


async def run_named(lane, op, st):
    t0 = time.monotonic()
    method = {"hit": lane.hit, "miss": lane.miss, "recent": lane.recent_again,
              "kv_put": lane.kv_put, "kv_get": lane.kv_get}[op]
    try:
        await asyncio.wait_for(method(st), REQUEST_TIMEOUT)
    except asyncio.TimeoutError:
        st.error(op, "timeout", f"no complete answer within {REQUEST_TIMEOUT:.0f} s")
        lane.conn.close()
    except Closed as e:
        st.error(op, "closed before answering", f"{e} (request {lane.conn.requests} on its connection)")
        lane.conn.close()
    except Truncated as e:
        st.error(op, "truncated", str(e))
        lane.conn.close()
    except Framing as e:
        st.error(op, "framing", str(e))
        lane.conn.close()
    except OSError as e:
        st.error(op, "socket", repr(e))
        lane.conn.close()
    st.latency(op, time.monotonic() - t0)


async def warm_hot(w, cfg, lanes, st):
    """Fetch this worker's share of the hot keys once (they become hits)."""
    proxy = [l for l in lanes if l.kind == "proxy"]
    mine = list(range(w, cfg["hot_keys"], cfg["workers"]))

    async def fetch(lane, idxs):
        for i in idxs:
            key, size, chunked = hot_object(i)
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(lane.get_object(st, "warm", key, size, 3600, chunked), REQUEST_TIMEOUT)
            except (asyncio.TimeoutError, Closed, Truncated, Framing, OSError) as e:
                st.error("warm", type(e).__name__, str(e))
                lane.conn.close()
            st.latency("warm", time.monotonic() - t0)

    await asyncio.gather(*(fetch(l, mine[j::len(proxy)]) for j, l in enumerate(proxy)))


def worker_entry(w, cfg, phases, out):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:
        asyncio.run(worker_main(w, cfg, phases, out))
    except Exception as e:  # reported, never silent
        out.put(("crash", w, repr(e)))
        raise


# ------------------------------------------------------------ slow and idle clients

class Holder:
    """Per (port, kind) slots that open a connection, hold it, and note when the server
    closes it; a closed slot reconnects after a pause, so the pressure stays."""

    def __init__(self, port_name, port, kind, slots):
        self.port_name, self.port, self.kind, self.slots = port_name, port, kind, slots
        self.opened = 0
        self.connect_failed = 0
        self.lifetimes = []  # seconds from open (or from the last answer) to the server's close
        self.answers = collections.Counter()  # status lines the server sent before closing
        self.open_now = {}  # slot -> time opened
        self.completed = 0  # slow bodies that were fully sent and answered

    def summary(self, now):
        still = [now - t for t in self.open_now.values()]
        lt = sorted(self.lifetimes)
        return {"port": self.port_name, "kind": self.kind, "slots": self.slots, "opened": self.opened,
                "connect_failed": self.connect_failed, "closed_by_server": len(lt),
                "lifetime_min": lt[0] if lt else None, "lifetime_median": statistics.median(lt) if lt else None,
                "lifetime_max": lt[-1] if lt else None, "answers": dict(self.answers),
                "open_at_end": len(still), "longest_open": max(still) if still else None,
                "completed": self.completed}


async def watch_close(reader, h, wait):
    """Reads until EOF/reset for up to `wait` seconds; records a status line if one comes.
    True when the server closed the connection."""
    got = b""
    try:
        while True:
            data = await asyncio.wait_for(reader.read(65536), wait)
            if not data:
                break
            if not got:
                m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
                h.answers[m.group(1).decode() if m else "non-HTTP bytes"] += 1
            got += data[:1]
        return True
    except asyncio.TimeoutError:
        return False
    except ConnectionError:
        return True


async def hold_slot(h, slot, deadline, prepare, token):
    """One slot of a Holder: connect, `prepare` (send something or nothing), hold until the
    server closes or the run ends. prepare(reader, writer) -> an optional trickle coroutine."""
    while time.monotonic() < deadline - 1:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", h.port), 5)
        except (OSError, asyncio.TimeoutError):
            h.connect_failed += 1
            await asyncio.sleep(1)
            continue
        h.opened += 1
        t0 = time.monotonic()
        h.open_now[slot] = t0
        closed = False
        trickle = None
        try:
            t = await prepare(reader, writer, h)
            if t == "closed":
                closed = True
            elif isinstance(t, float):
                t0 = h.open_now[slot] = t  # idle after an answer: counted from the answer
            elif t is not None:
                trickle = asyncio.ensure_future(t)
            if not closed:
                closed = await watch_close(reader, h, max(0.1, deadline - time.monotonic()))
        except (ConnectionError, OSError, asyncio.IncompleteReadError, Closed, Truncated):
            closed = True
        except (asyncio.TimeoutError, Framing) as e:
            h.answers[f"client gave up: {type(e).__name__}"] += 1
            closed = False
            h.open_now.pop(slot, None)
            writer.transport.abort()
            await asyncio.sleep(1)
            continue
        finally:
            if trickle is not None:
                trickle.cancel()
                try:
                    await trickle
                except (asyncio.CancelledError, ConnectionError, OSError):
                    pass
                except Exception:
                    pass
                if trickle.done() and not trickle.cancelled() and trickle.exception() is None \
                        and trickle.result() == "sent":
                    h.completed += 1
            writer.transport.abort()
        if closed:
            h.lifetimes.append(time.monotonic() - t0)
            del h.open_now[slot]
            await asyncio.sleep(1)  # then the slot opens a new connection
        else:
            return  # the run is over: counted in open_now


def make_prepare(kind, admin, token, seq):
    async def idle(reader, writer, h):
        return None

    async def kept(reader, writer, h):
        # One complete request, then silence: the keep-alive / idle timeout's business.
        target = "/healthz" if admin else soak_target("h1", hot_object(1)[1], 3600, hot_object(1)[2])
        auth = f"Authorization: Bearer {token}\r\n" if admin else ""
        writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode())
        await writer.drain()
        status, _, _, framing = await asyncio.wait_for(read_response(reader, "GET"), REQUEST_TIMEOUT)
        if framing == "close":
            return "closed"
        return time.monotonic()

    async def loris(reader, writer, h):
        async def trickle():
            seq[0] += 1
            head = (f"GET /soak?k=loris{seq[0]}&size=10 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"User-Agent: soak-slowloris\r\n").encode()
            n = 0
            while True:  # never the blank line that ends the header
                chunk = head if n == 0 else b"X-%d: %s\r\n" % (n, b"a" * 20)
                for i in range(len(chunk)):
                    writer.write(chunk[i:i + 1])
                    await writer.drain()
                    await asyncio.sleep(SLOW_INTERVAL)
                n += 1
        return trickle()

    async def slow_body(reader, writer, h):
        async def trickle():
            seq[0] += 1
            payload = json.dumps({"value": "s" * 4000}).encode()
            if admin:
                head = (f"PUT /kv/items/soak-slow/{seq[0]} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n")
            else:
                head = f"POST /soak?k=slowpost{seq[0]}&size=10 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            writer.write((head + f"Content-Length: {len(payload)}\r\n\r\n").encode())
            await writer.drain()
            for i in range(len(payload)):
                await asyncio.sleep(SLOW_INTERVAL)
                writer.write(payload[i:i + 1])
                await writer.drain()
            return "sent"
        return trickle()

    return {"idle": idle, "idle-after-request": kept, "slowloris": loris, "slow-body": slow_body}[kind]


async def run_holders(holders, deadline, token):
    seq = [0]
    tasks = []
    for h in holders:
        prep = make_prepare(h.kind, h.port_name == "admin", token, seq)
        for s in range(h.slots):
            tasks.append(asyncio.ensure_future(hold_slot(h, s, deadline, prep, token)))
            if len(tasks) % 50 == 0:
                await asyncio.sleep(0.05)  # no SYN flood at start
    return tasks


# ------------------------------------------------------------------ Aside, RSS

def render_config(template_text, out, **values):
    text = template_text
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise HarnessError(f"config template: unreplaced placeholders {sorted(set(left))}")
    with open(out, "w") as f:
        f.write(text)
    return text


def proc_status(pid):
    """(VmRSS KiB, open fds, threads) or None when the process is gone."""
    try:
        rss = threads = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return rss, fds, threads
    except (OSError, ValueError):
        return None


def disk_usage(data_dir, admin_port, token):
    """The disk tier's footprint at the end of the soak (issue 18): apparent size and
    allocated blocks of the redb file and of the body segment files, against the bytes of
    the entries the store says it holds (`aside_store_bytes{tier="cold"}`)."""
    out = {"redb_size": 0, "redb_blocks": 0, "seg_size": 0, "seg_blocks": 0, "segments": 0}
    for root, _, files in os.walk(data_dir):
        for name in files:
            st = os.stat(os.path.join(root, name))
            kind = "seg" if name.endswith(".seg") else "redb"
            out[f"{kind}_size"] += st.st_size
            out[f"{kind}_blocks"] += st.st_blocks * 512
            out["segments"] += kind == "seg"
    try:
        conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=10)
        conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
        text = conn.getresponse().read().decode()
        conn.close()
        for name, key in (('aside_store_bytes{tier="cold"}', "cold_bytes"),
                          ('aside_store_entries{tier="cold"}', "cold_entries"),
                          ("aside_store_expired_collected_total", "collected")):
            m = re.search("^" + re.escape(name) + r" (\d+)$", text, re.M)
            if m:
                out[key] = int(m.group(1))
    except (OSError, http.client.HTTPException) as e:
        out["error"] = str(e)
    return out


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        fields = s[s.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def rss_verdict(samples, t_start, t_end, pct, mib):
    """A robust line (Theil-Sen) through the samples after the first third of the soak; flat
    when its growth over that window is within max(pct % of their median, mib MiB)."""
    cut = t_start + (t_end - t_start) / 3
    win = [(t, r) for t, r, *_ in samples if cut <= t <= t_end]
    if len(win) < 3:
        return {"flat": None, "reason": f"only {len(win)} samples after warm-up"}
    ts = [t for t, _ in win]
    rs = [r / 1024 for _, r in win]
    # Theil-Sen: the median of the slopes between every pair of samples. RSS saws up and
    # down with the bodies in flight; a least-squares line would follow one late spike.
    step = max(1, len(win) // 400)
    pts = list(zip(ts, rs))[::step]
    slopes = [(r2 - r1) / (t2 - t1) for i, (t1, r1) in enumerate(pts) for t2, r2 in pts[i + 1:] if t2 > t1]
    slope = statistics.median(slopes) if slopes else 0.0  # MiB/s
    span = ts[-1] - ts[0]
    growth = slope * span
    med = statistics.median(rs)
    allowed = max(med * pct / 100, mib)
    third = (t_end - t_start) / 3
    thirds = [[r / 1024 for t, r, *_ in samples if t_start + k * third <= t < t_start + (k + 1) * third]
              for k in range(3)]
    return {"flat": growth <= allowed, "slope_mib_per_min": slope * 60, "growth_mib": growth,
            "thirds_median_mib": [statistics.median(x) if x else None for x in thirds],
            "window_s": span, "allowed_mib": allowed, "median_mib": med,
            "window_first_mib": rs[0], "window_last_mib": rs[-1], "window_peak_mib": max(rs),
            "samples": len(win)}


# ------------------------------------------------------------------ the run

def merge(results):
    """Sum the workers' Stats.plain() dicts."""
    out = {"ok": collections.Counter(), "errors": collections.Counter(), "corrupted": collections.Counter(),
           "served": collections.Counter(), "bytes": 0, "lat": collections.defaultdict(list),
           "lat_n": collections.Counter(), "lat_max": {}, "examples": [], "tcp_opened": collections.Counter()}
    for r in results:
        for k in ("ok", "errors", "corrupted", "served", "lat_n", "tcp_opened"):
            out[k].update(r[k])
        out["bytes"] += r["bytes"]
        for op, xs in r["lat"].items():
            out["lat"][op].extend(xs)
        for op, m in r["lat_max"].items():
            out["lat_max"][op] = max(out["lat_max"].get(op, 0), m)
        out["examples"].extend(r["examples"])
        out["client_cpu"] = out.get("client_cpu", 0) + r.get("client_cpu", 0)
    return out


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(math.ceil(p / 100 * len(xs))) - 1)]


class Run:
    def __init__(self, opts):
        self.o = opts
        self.work = tempfile.mkdtemp(prefix="aside-soak-")
        self.token = secrets.token_hex(16)
        self.nonce = secrets.token_hex(3)
        self.samples = []  # (time, rss KiB, fds, threads)
        self.timeline = collections.defaultdict(lambda: [0, 0, 0])  # bucket -> [req, err, bad]
        self.phase_results = {}
        self.notes = []
        self.crashes = []
        self.cpu_marks = {}  # phase -> {"start"|"end": (time, aside cpu s, machine busy/total jiffies)}

    def cpu_snapshot(self):
        machine = None
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            idle = v[3] + (v[4] if len(v) > 4 else 0)
            machine = (sum(v) - idle, sum(v))
        except (OSError, ValueError, IndexError):
            pass
        return time.time(), cpu_seconds(self.aside.pid), machine

    def cpu_use(self, phase, client_cpu=None):
        """{'aside': cores, 'client': cores, 'machine': busy fraction} over a phase."""
        m = self.cpu_marks.get(phase, {})
        if "start" not in m or "end" not in m:
            return {}
        (t0, a0, m0), (t1, a1, m1) = m["start"], m["end"]
        el = max(t1 - t0, 1e-6)
        out = {}
        if a0 is not None and a1 is not None:
            out["aside"] = (a1 - a0) / el
        if m0 and m1 and m1[1] > m0[1]:
            out["machine"] = (m1[0] - m0[0]) / (m1[1] - m0[1])
        if client_cpu is not None:
            out["client"] = client_cpu / el
        return out

    # -- processes

    def start_origin(self):
        d = os.path.join(self.work, "origin")
        os.makedirs(d)
        self.origin_log = os.path.join(d, "origin.log")
        portfile = os.path.join(d, "port")
        self.origin = spawn([PY, os.path.join(BENCH_DIR, "origin.py"), "--listen", "127.0.0.1:0",
                             "--port-file", portfile], self.origin_log)
        deadline = time.time() + 15
        while not os.path.exists(portfile):
            if self.origin.poll() is not None or time.time() > deadline:
                raise HarnessError(f"origin did not start; log:\n{tail(self.origin_log)}")
            time.sleep(0.05)
        with open(portfile) as f:
            self.origin_port = int(f.read())

    def start_aside(self):
        d = os.path.join(self.work, "aside")
        data = os.path.join(d, "data")
        self.data_dir = data
        os.makedirs(data)
        self.port, self.admin_port = free_port(), free_port()
        template = CONFIG_TEMPLATE
        if self.o.config_template:
            with open(self.o.config_template) as f:
                template = f.read()
        self.config_text = render_config(template, os.path.join(d, "aside.toml"), PORT=self.port,
                                         ADMIN_PORT=self.admin_port, DATA=data, ORIGIN_PORT=self.origin_port,
                                         HOT=self.o.hot, COLD=self.o.cold, THREADS=self.o.threads)
        env = dict(os.environ)
        env["ASIDE_ADMIN_TOKEN"] = self.token
        env.setdefault("RUST_LOG", "warn")
        self.aside_log = os.path.join(d, "aside.log")
        self.aside = spawn([self.o.aside, "--config", os.path.join(d, "aside.toml")], self.aside_log,
                           env=env, cwd=d)
        wait_port(self.port, self.aside, self.aside_log, "aside", timeout=60)
        wait_port(self.admin_port, self.aside, self.aside_log, "aside (admin)", timeout=30)

    # -- load phases in worker processes

    def run_phases(self, phases, on_tick=None, extra=None, after_start=None):
        """Runs `phases` in --workers processes; returns {phase: (elapsed_s, merged stats)}."""
        o = self.o
        cfg = {"port": self.port, "admin_port": self.admin_port, "token": self.token, "nonce": self.nonce,
               "hot_keys": o.hot_keys, "workers": o.workers, "tick_s": o.tick,
               "proxy_lanes": max(1, round(o.conns * 0.75 / o.workers)),
               "admin_lanes": max(1, round(o.conns * 0.25 / o.workers))}
        self.lanes = (cfg["proxy_lanes"] * o.workers, cfg["admin_lanes"] * o.workers)
        ctx = multiprocessing.get_context("fork")
        q = ctx.Queue()
        procs = [ctx.Process(target=worker_entry, args=(w, cfg, phases, q), daemon=True)
                 for w in range(o.workers)]
        for p in procs:
            p.start()
        if after_start:
            after_start()
        done = collections.defaultdict(list)
        budget = sum(p["seconds"] for p in phases) + 120 + (300 if phases[0]["name"] == "warm" else 0)
        deadline = time.monotonic() + budget
        want = len(phases) * o.workers
        got = 0
        try:
            while got < want:
                if extra:
                    extra()
                if time.monotonic() > deadline:
                    raise HarnessError(f"load workers did not finish within {budget} s")
                try:
                    msg = q.get(timeout=0.2)
                except queue.Empty:
                    if not any(p.is_alive() for p in procs):
                        raise HarnessError("every load worker exited early: " + "; ".join(self.crashes))
                    continue
                if msg[0] == "tick" and on_tick:
                    on_tick(*msg[2:])
                elif msg[0] == "start":
                    # CPU counters when the first worker starts a phase and when the first ends it
                    self.cpu_marks.setdefault(msg[2], {}).setdefault("start", self.cpu_snapshot())
                elif msg[0] == "done":
                    _, w, name, elapsed, st = msg
                    done[name].append((elapsed, st))
                    self.cpu_marks.setdefault(name, {}).setdefault("end", self.cpu_snapshot())
                    got += 1
                elif msg[0] == "crash":
                    self.crashes.append(f"worker {msg[1]}: {msg[2]}")
                    raise HarnessError(f"load worker {msg[1]} crashed: {msg[2]}")
        finally:
            for p in procs:
                p.join(5)
                if p.is_alive():
                    p.terminate()
        return {name: (max(e for e, _ in v), merge([s for _, s in v])) for name, v in done.items()}

    # -- main

    def sample(self):
        s = proc_status(self.aside.pid)
        if s:
            self.samples.append((time.time(), *s))
        return s

    def main(self):
        o = self.o
        self.started = datetime.datetime.now()
        log(f"scratch dir {self.work}")
        self.start_origin()
        self.start_aside()
        log(f"origin :{self.origin_port}, aside proxy :{self.port} admin :{self.admin_port} "
            f"(pid {self.aside.pid}), {o.workers} load worker(s) x {o.conns // o.workers} connections")
        self.sample()

        # 1. warm the hot keys, 2. peak, closed loop
        log(f"warming {o.hot_keys} hot keys, then {o.peak_seconds} s at full rate")
        res = self.run_phases([{"name": "warm", "seconds": 0, "rates": {}},
                               {"name": "peak", "seconds": o.peak_seconds, "rates": {}}])
        self.phase_results.update(res)
        warm_el, warm = res["warm"]
        peak_el, peak = res["peak"]
        log(f"warm: {sum(warm['ok'].values())} ok in {warm_el:.1f} s, "
            f"{sum(warm['errors'].values())} errors, {sum(warm['corrupted'].values())} corrupted")
        proxy_ops = ("hit", "miss", "recent")
        n_proxy = sum(v for k, v in peak["lat_n"].items() if k in proxy_ops)
        n_admin = sum(v for k, v in peak["lat_n"].items() if k.startswith("kv_"))
        self.peak = {"seconds": peak_el, "proxy_rps": n_proxy / peak_el, "admin_rps": n_admin / peak_el}
        self.peak["total_rps"] = self.peak["proxy_rps"] + self.peak["admin_rps"]
        # Aside's CPU during warm + peak (mostly peak): near `threads` cores = the server is
        # the bottleneck; well below = the client (Python) is.
        self.peak["cpu"] = self.cpu_use("peak", peak.get("client_cpu"))
        log(f"peak: {self.peak['total_rps']:.0f} req/s (proxy {self.peak['proxy_rps']:.0f}, "
            f"KV {self.peak['admin_rps']:.0f}); {cpu_text(self.peak['cpu'])}")
        if o.rate:
            scale = o.rate / self.peak["total_rps"]
        else:
            scale = o.load_fraction
        self.target = {"proxy_rps": self.peak["proxy_rps"] * scale, "admin_rps": self.peak["admin_rps"] * scale}
        self.target["total_rps"] = self.target["proxy_rps"] + self.target["admin_rps"]
        rates = {"proxy": self.target["proxy_rps"] / self.lanes[0],
                 "admin": self.target["admin_rps"] / self.lanes[1]}

        # 3. the soak, with slow and idle clients and RSS samples
        log(f"soak: {o.seconds} s at {self.target['total_rps']:.0f} req/s "
            f"(proxy {self.target['proxy_rps']:.0f}, KV {self.target['admin_rps']:.0f}), "
            f"{o.idle} idle + {o.slow} slowloris + {o.slow_body} slow-body connections per port")
        self.holders = []
        for name, port in (("proxy", self.port), ("admin", self.admin_port)):
            self.holders += [Holder(name, port, "idle", o.idle - o.idle // 2),
                             Holder(name, port, "idle-after-request", o.idle // 2),
                             Holder(name, port, "slowloris", o.slow),
                             Holder(name, port, "slow-body", o.slow_body)]
        self.soak_t0 = time.time()
        self.died_at = None
        holder_deadline = time.monotonic() + o.seconds + 20
        # The slow and idle clients run on an event loop of their own in a thread, started
        # once the load workers are forked (a fork copies only the forking thread).
        hold_loop = asyncio.new_event_loop()
        hold_thread = threading.Thread(target=hold_loop.run_forever, name="holders", daemon=True)
        tasks = []

        def start_holders():
            hold_thread.start()
            tasks.extend(asyncio.run_coroutine_threadsafe(
                run_holders(self.holders, holder_deadline, self.token), hold_loop).result(60))

        last_sample = [0.0]
        last_log = [time.time()]

        def between_polls():
            # Samples RSS every --rss-interval seconds and logs progress every 30 s.
            now = time.time()
            if now - last_sample[0] >= o.rss_interval:
                last_sample[0] = now
                self.sample()
                if self.died_at is None and self.aside.poll() is not None:
                    self.died_at = now - self.soak_t0
                    log(f"ASIDE EXITED with {self.aside.returncode} at {self.died_at:.0f} s; log:\n"
                        f"{tail(self.aside_log)}")
            if now - last_log[0] >= 30:
                last_log[0] = now
                s = self.samples[-1] if self.samples else None
                el = now - self.soak_t0
                reqs = sum(r[0] for r in self.timeline.values())
                errs = sum(r[1] for r in self.timeline.values())
                bad = sum(r[2] for r in self.timeline.values())
                log(f"  {el:5.0f} s: {reqs / max(el, 1):.0f} req/s, errors {errs}, corrupted {bad}, "
                    f"RSS {s[1] / 1024 if s else 0:.1f} MiB, open files {s[2] if s else '?'}")

        def on_tick(phase, t, n, e, b):
            # the last ticks land just after the end: they belong to the last full row
            last = max(0, math.ceil(o.seconds / o.report_every) - 1)
            # a tick counts the o.tick seconds before t: filed by the middle of that interval
            mid = t - o.tick / 2 - self.soak_t0
            row = self.timeline[min(last, max(0, int(mid // o.report_every)))]
            row[0] += n
            row[1] += e
            row[2] += b

        async def summarize():
            now = time.monotonic()
            return [h.summary(now) for h in self.holders]

        async def shutdown():
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            res = self.run_phases([{"name": "soak", "seconds": o.seconds, "rates": rates}],
                                  on_tick=on_tick, extra=between_polls, after_start=start_holders)
            self.phase_results.update(res)
            self.soak_t1 = time.time()
            self.sample()
            # 4. post-check while the idle and slow clients are still there
            self.post = asyncio.run_coroutine_threadsafe(self.post_check(), hold_loop).result(60)
            self.holder_summary = asyncio.run_coroutine_threadsafe(summarize(), hold_loop).result(10)
        finally:
            if hold_thread.is_alive():
                try:
                    asyncio.run_coroutine_threadsafe(shutdown(), hold_loop).result(30)
                finally:
                    hold_loop.call_soon_threadsafe(hold_loop.stop)
                    hold_thread.join(10)
            hold_loop.close()
        self.alive = self.aside.poll() is None
        self.disk = disk_usage(self.data_dir, self.admin_port, self.token) if self.alive else None
        stop(self.aside, sig=signal.SIGINT)
        self.exit_code = self.aside.returncode
        with open(self.aside_log, "rb") as f:
            text = f.read().decode(errors="replace")
        self.panics = [l for l in text.splitlines() if "panicked" in l][:5]
        self.log_tail = tail(self.aside_log, 20)
        stop(self.origin)

    async def post_check(self):
        out = {}
        hot = hot_object(3)
        for name, port, method, target, hdrs in (
                ("proxy hit", self.port, "GET", soak_target(hot[0], hot[1], 3600, hot[2]), []),
                ("admin /healthz", self.admin_port, "GET", "/healthz", [("Authorization", f"Bearer {self.token}")])):
            c = Conn(port)
            t0 = time.monotonic()
            try:
                status, h, body, _ = await asyncio.wait_for(c.request(method, target, hdrs), 5)
                ok = status == 200 and (name != "proxy hit" or
                                        hashlib.sha256(body).hexdigest() == h.get("x-checksum"))
                out[name] = (ok, f"{status} in {(time.monotonic() - t0) * 1000:.1f} ms")
            except (asyncio.TimeoutError, Closed, Truncated, Framing, OSError) as e:
                out[name] = (False, f"{type(e).__name__} {e} after {time.monotonic() - t0:.1f} s")
            finally:
                c.close()
        return out


# ------------------------------------------------------------------ report

def cpu_text(c):
    parts = []
    if "aside" in c:
        parts.append(f"Aside {c['aside']:.2f} cores")
    if "client" in c:
        parts.append(f"load client {c['client']:.2f}")
    if "machine" in c:
        parts.append(f"machine {c['machine'] * 100:.0f}% busy ({os.cpu_count()} CPUs)")
    return "CPU: " + ", ".join(parts) if parts else "CPU: ?"


def fmt_s(x):
    return "–" if x is None else (f"{x:.1f} s" if x < 600 else f"{x / 60:.1f} min")


def ms(x):
    return "–" if x is None else f"{x * 1000:.1f}"


def report(run):
    o = run.o
    soak_el, soak = run.phase_results["soak"]
    peak = run.phase_results["peak"][1]
    warm = run.phase_results["warm"][1]
    errors = sum(soak["errors"].values()) + sum(peak["errors"].values()) + sum(warm["errors"].values())
    corrupted = (sum(soak["corrupted"].values()) + sum(peak["corrupted"].values())
                 + sum(warm["corrupted"].values()))
    rss = rss_verdict(run.samples, run.soak_t0, run.soak_t1, o.rss_max_growth_pct, o.rss_max_growth_mib)
    post_ok = all(ok for ok, _ in run.post.values())
    reasons = []
    if errors:
        reasons.append(f"{errors} errors")
    if corrupted:
        reasons.append(f"{corrupted} corrupted")
    if rss["flat"] is False:
        reasons.append(f"RSS grew {rss['growth_mib']:.1f} MiB after warm-up (allowed {rss['allowed_mib']:.1f})")
    if rss["flat"] is None:
        reasons.append(f"RSS flatness unknown ({rss['reason']})")
    if not run.alive:
        reasons.append("Aside exited during the run" +
                       (f" (at {run.died_at:.0f} s of the soak)" if run.died_at is not None else ""))
    if run.panics:
        reasons.append("Aside logged a panic")
    if not post_ok:
        reasons.append("the post-check failed")
    passed = not reasons
    m = bench.machine()
    n_soak = sum(soak["lat_n"].values())
    achieved = n_soak / soak_el if soak_el else 0
    cpu = run.cpu_use("soak", soak.get("client_cpu"))
    L = []
    L.append(f"# Soak: {o.seconds} s, {run.started:%Y-%m-%d %H:%M}, {m['cores']} cores {m['cpu_model']}")
    L.append("")
    L.append(f"**{'PASS' if passed else 'FAIL'}**" + ("" if passed else ": " + "; ".join(reasons)) + ".")
    L.append("")
    L.append("`bench/soak.py` (issue 11). Errors = non-2xx answers, connections closed or reset before "
             "an answer, truncated or badly framed bodies, timeouts "
             f"({REQUEST_TIMEOUT:.0f} s per request). Corrupted = a 200 whose body is not the object asked "
             "for (X-Checksum sha256, X-Soak-Key, length, key prefix) or a KV read that is not the last "
             "acknowledged write.")
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    L.append(f"| Aside | `{o.aside}` ({o.aside_build}), commit `{bench.git_commit()}`, {o.threads} worker threads, "
             f"hot tier {o.hot}, disk tier {o.cold} |")
    if o.note:
        L.append(f"| note | {o.note} |")
    L.append(f"| load | {o.workers} Python worker process(es), {run.lanes[0]} proxy + {run.lanes[1]} KV keep-alive "
             f"connections; proxy mix 80% hits over {o.hot_keys} keys / 13% misses (new keys, max-age "
             f"{'-'.join(map(str, (MISS_MAX_AGES[0], MISS_MAX_AGES[-1])))} s) / 7% recent misses again; KV mix 60% PUT / 40% GET |")
    L.append(f"| peak ({run.peak['seconds']:.1f} s, closed loop) | **{run.peak['total_rps']:,.0f} req/s** "
             f"(proxy {run.peak['proxy_rps']:,.0f}, KV {run.peak['admin_rps']:,.0f}); {cpu_text(run.peak['cpu'])}. "
             f"Aside well under its {o.threads} threads with the machine busy = the peak is the machine's "
             f"(client and server share it), not Aside's alone |")
    L.append(f"| target | {run.target['total_rps']:,.0f} req/s ({run.target['total_rps'] / run.peak['total_rps'] * 100:.0f}% "
             f"of peak) |")
    L.append(f"| achieved | **{achieved:,.0f} req/s** over {soak_el:.0f} s ({n_soak:,} requests, "
             f"{soak['bytes'] / 2**20:,.0f} MiB of bodies); {cpu_text(cpu)} |")
    if achieved < 0.95 * run.target["total_rps"]:
        L.append(f"| note | the load reached {achieved / run.target['total_rps'] * 100:.0f}% of the target: the "
                 f"requests were slower than their schedule (see the timeline; a busy machine or a slow server) |")
    L.append(f"| slow and idle | per port (proxy and admin): {o.idle} idle ({o.idle - o.idle // 2} never send a byte, "
             f"{o.idle // 2} idle after one request), {o.slow} slowloris (a header byte every {SLOW_INTERVAL} s), "
             f"{o.slow_body} slow bodies (a body byte every {SLOW_INTERVAL} s) |")
    L.append(f"| totals | **{errors} errors, {corrupted} corrupted** (warm-up + peak + soak) |")
    L.append("")

    L.append("## Requests")
    L.append("")
    L.append("| phase | op | ok | errors | corrupted | p50 ms | p99 ms | max ms | served as (Cache-Status) |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for pname in ("warm", "peak", "soak"):
        st = run.phase_results[pname][1]
        for op in ("warm", "hit", "miss", "recent", "kv_put", "kv_get"):
            if op not in st["lat_n"]:
                continue
            e = sum(v for k, v in st["errors"].items() if k.startswith(op + ":"))
            c = sum(v for k, v in st["corrupted"].items() if k.startswith(op + ":"))
            served = ", ".join(f"{k.split(': ')[1]} {v:,}" for k, v in sorted(st["served"].items())
                               if k.startswith(op + ":"))
            L.append(f"| {pname} | {op} | {st['ok'].get(op, 0):,} | {e} | {c} | {ms(pct(st['lat'][op], 50))} | "
                     f"{ms(pct(st['lat'][op], 99))} | {ms(st['lat_max'].get(op))} | {served} |")
    L.append("")
    allerr = collections.Counter()
    allbad = collections.Counter()
    examples = []
    for pname in ("warm", "peak", "soak"):
        st = run.phase_results[pname][1]
        allerr.update({f"{pname} {k}": v for k, v in st["errors"].items()})
        allbad.update({f"{pname} {k}": v for k, v in st["corrupted"].items()})
        examples += [f"{pname}: {x}" for x in st["examples"]]
    if allerr or allbad:
        L.append("| what | count |")
        L.append("|---|---:|")
        for k, v in sorted(allbad.items()):
            L.append(f"| CORRUPTED {k} | {v} |")
        for k, v in sorted(allerr.items()):
            L.append(f"| error {k} | {v} |")
        L.append("")
        L.append("First examples:")
        L.append("")
        L.append("```")
        L += examples[:20]
        L.append("```")
        L.append("")
    L.append("`hit` asks for the warmed keys (max-age 1 h): those served `fwd=miss` were no longer in the "
             "store (evicted from both tiers by the misses' churn) and were fetched again; `recent` asks again "
             "for a recent miss key (max-age 2-30 s): `fwd=stale` = expired and refetched.")
    L.append("")
    L.append(f"New TCP connections opened by the load client during the soak: proxy "
             f"{soak['tcp_opened'].get('proxy', 0)}, admin {soak['tcp_opened'].get('admin', 0)} "
             f"(the first {run.lanes[0]} + {run.lanes[1]} are the lanes themselves; more = the server closed some).")
    L.append("")

    L.append("## Disk tier")
    L.append("")
    d = getattr(run, "disk", None)
    if d and "cold_bytes" in d:
        blocks = d["redb_blocks"] + d["seg_blocks"]
        ratio = blocks / d["cold_bytes"] if d["cold_bytes"] else float("nan")
        L.append(f"At the end of the soak the store held {d.get('cold_entries', 0):,} entries / "
                 f"{d['cold_bytes'] / 2**20:.1f} MiB (`aside_store_bytes{{tier=\"cold\"}}`: keys, records and "
                 f"bodies, live or within their stale windows), and had collected {d.get('collected', 0):,} expired "
                 f"entries. On disk: redb file {d['redb_size'] / 2**20:.1f} MiB ({d['redb_blocks'] / 2**20:.1f} MiB "
                 f"of blocks), {d['segments']} body segment files {d['seg_size'] / 2**20:.1f} MiB "
                 f"({d['seg_blocks'] / 2**20:.1f} MiB of blocks). Blocks / held bytes: **{ratio:.2f}** "
                 f"(issue 18's target: at most 1.5).")
    else:
        L.append(f"Not measured ({d and d.get('error') or 'Aside was not running at the end'}).")
    L.append("")
    L.append("## Memory")
    L.append("")
    soak_samples = [s for s in run.samples if run.soak_t0 <= s[0] <= run.soak_t1]
    if soak_samples:
        rs = [s[1] / 1024 for s in soak_samples]
        fds = [s[2] for s in soak_samples]
        L.append(f"VmRSS of the Aside process every {o.rss_interval:g} s ({len(soak_samples)} samples during the soak): "
                 f"first **{rs[0]:.1f} MiB**, peak **{max(rs):.1f} MiB**, last **{rs[-1]:.1f} MiB**. "
                 f"Open files: first {fds[0]}, peak {max(fds)}, last {fds[-1]}.")
        L.append("")
    if rss["flat"] is not None:
        L.append(f"After the first third (warm-up), a Theil-Sen line through {rss['samples']} samples / "
                 f"{rss['window_s']:.0f} s: slope **{rss['slope_mib_per_min']:+.3f} MiB/min**, fitted growth "
                 f"**{rss['growth_mib']:+.2f} MiB** (allowed: max({o.rss_max_growth_pct:g}% of the median "
                 f"{rss['median_mib']:.1f} MiB, {o.rss_max_growth_mib:g} MiB) = {rss['allowed_mib']:.1f} MiB): "
                 f"**{'flat' if rss['flat'] else 'NOT flat'}**. Window first / peak / last: "
                 f"{rss['window_first_mib']:.1f} / {rss['window_peak_mib']:.1f} / {rss['window_last_mib']:.1f} MiB. "
                 "Median of each third of the soak: " +
                 " / ".join("–" if x is None else f"{x:.1f}" for x in rss["thirds_median_mib"]) + " MiB.")
    else:
        L.append(f"Flatness not judged: {rss['reason']}.")
    if o.seconds < 300:
        L.append("")
        L.append(f"A {o.seconds} s run is short: the tiers are usually still filling after its first third, "
                 "so growth here says little; the 600 s run is the one that judges memory.")
    L.append("")
    L.append(f"| t (s) | req/s | errors | corrupted | RSS MiB | open files |")
    L.append("|---:|---:|---:|---:|---:|---:|")
    buckets = sorted(run.timeline)
    for b in buckets:
        req, e, c = run.timeline[b]
        t_lo, t_hi = run.soak_t0 + b * o.report_every, run.soak_t0 + (b + 1) * o.report_every
        ss = [s for s in run.samples if t_lo <= s[0] < t_hi]
        rss_s = f"{ss[-1][1] / 1024:.1f}" if ss else "–"
        fd_s = f"{ss[-1][2]}" if ss else "–"
        L.append(f"| {int(b * o.report_every)} | {req / o.report_every:,.0f} | {e} | {c} | {rss_s} | {fd_s} |")
    L.append("")

    L.append("## Slow and idle clients")
    L.append("")
    L.append("Each slot holds one connection; when the server closes it, the slot reconnects a second later, "
             "so the pressure lasts the whole soak. Lifetime = open (or, idle after a request, the answer) to "
             "the server's close. Not judged here (the socket tests of issue 11 judge the timeouts); shown so that "
             "a run says what the binary does.")
    L.append("")
    L.append("| port | kind | slots | connections | closed by server | lifetime min / median / max | "
             "answers before close | open at end (longest) | connect failures |")
    L.append("|---|---|---:|---:|---:|---|---|---|---:|")
    for h in run.holder_summary:
        ans = ", ".join(f"{k} x{v}" for k, v in sorted(h["answers"].items())) or "none"
        if h["kind"] == "slow-body" and h["completed"]:
            ans += f"; {h['completed']} bodies completed"
        L.append(f"| {h['port']} | {h['kind']} | {h['slots']} | {h['opened']} | {h['closed_by_server']} | "
                 f"{fmt_s(h['lifetime_min'])} / {fmt_s(h['lifetime_median'])} / {fmt_s(h['lifetime_max'])} | {ans} | "
                 f"{h['open_at_end']} ({fmt_s(h['longest_open'])}) | {h['connect_failed']} |")
    L.append("")
    L.append("Post-check (after the soak, the slow and idle clients still connected): " +
             "; ".join(f"{k}: {'ok' if ok else 'FAILED'} ({d})" for k, (ok, d) in run.post.items()) + ".")
    L.append("")
    L.append(f"Aside: {'alive at the end' if run.alive else 'EXITED during the run'}, "
             f"exit code {run.exit_code} after SIGINT, "
             f"{'no panic in its log' if not run.panics else 'PANIC in its log: ' + '; '.join(run.panics)}.")
    L.append("")
    L.append("## Config")
    L.append("")
    L.append("```toml")
    L.append(run.config_text.rstrip())
    L.append("```")
    L.append("")
    L.append(f"Reproduce: `make soak` (release build, 600 s) or `python3 bench/soak.py --aside <binary> "
             f"--seconds {o.seconds}`.")
    return "\n".join(L) + "\n", passed


def report_path(o, started):
    m = bench.machine()
    d = o.out_dir
    os.makedirs(d, exist_ok=True)
    base = os.path.join(d, f"soak-{started:%Y-%m-%d}-{m['cores']}c-{m['slug']}-{o.seconds}s")
    name, n = base + ".md", 2
    while os.path.exists(name):
        name = f"{base}-{n}.md"
        n += 1
    return name


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--aside", required=True, help="the aside binary")
    ap.add_argument("--aside-build", default=None, help="label in the report (default: from the path)")
    ap.add_argument("--seconds", type=int, default=600, help="soak duration (default 600)")
    ap.add_argument("--peak-seconds", type=int, default=5, help="closed-loop peak measurement (default 5)")
    ap.add_argument("--load-fraction", type=float, default=0.8, help="of the measured peak (default 0.8)")
    ap.add_argument("--rate", type=float, help="fixed total req/s instead of a fraction of the peak")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="load processes")
    ap.add_argument("--conns", type=int, default=32, help="load connections in all (3/4 proxy, 1/4 KV)")
    ap.add_argument("--hot-keys", type=int, default=2000, help="objects served as hits (~49 KiB average)")
    ap.add_argument("--idle", type=int, default=200, help="idle connections per port")
    ap.add_argument("--slow", type=int, default=4, help="slowloris connections per port")
    ap.add_argument("--slow-body", type=int, default=2, help="slow request bodies per port")
    ap.add_argument("--threads", type=int, default=2, help="Aside worker threads")
    ap.add_argument("--hot", default="32MiB", help="Aside hot-tier capacity")
    ap.add_argument("--cold", default="256MiB", help="Aside disk-tier capacity")
    ap.add_argument("--config-template", help="Aside config template instead of the built-in one "
                    "(@PORT@ @ADMIN_PORT@ @DATA@ @ORIGIN_PORT@ @HOT@ @COLD@ @THREADS@)")
    ap.add_argument("--rss-interval", type=float, default=2.0, help="seconds between RSS samples")
    ap.add_argument("--rss-max-growth-pct", type=float, default=5.0)
    ap.add_argument("--rss-max-growth-mib", type=float, default=8.0)
    ap.add_argument("--tick", type=float, default=5.0, help="progress messages from the workers (s)")
    ap.add_argument("--report-every", type=int, default=None, help="timeline rows (s; default seconds/20)")
    ap.add_argument("--out-dir", default=os.path.join(BENCH_DIR, "results"))
    ap.add_argument("--note", default=os.environ.get("BENCH_NOTE", ""), help="quoted in the report")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (logs, data)")
    o = ap.parse_args()
    if not os.access(o.aside, os.X_OK):
        raise HarnessError(f"aside binary not found: {o.aside}")
    o.aside = os.path.abspath(o.aside)
    if o.aside_build is None:
        o.aside_build = "release" if "/release/" in o.aside else "debug" if "/debug/" in o.aside else "custom"
    if o.report_every is None:
        o.report_every = max(5, o.seconds // 20)
    o.report_every = max(1, round(o.report_every / o.tick)) * o.tick  # whole ticks per row
    o.workers = max(1, o.workers)
    o.conns = max(2 * o.workers, o.conns)
    # Hundreds of held connections on top of the load: raise our file limit (Aside inherits it).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 4 * (o.idle + o.slow + o.slow_body) + o.conns + 256
    if soft != resource.RLIM_INFINITY and soft < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, 65536)) if hard != resource.RLIM_INFINITY
                                                        else max(need, 65536), hard))
        except (ValueError, OSError):
            log(f"warning: file limit {soft} < {need} and cannot be raised")

    run = Run(o)
    try:
        run.main()
    finally:
        stop_all()
        if not o.keep:
            import shutil
            shutil.rmtree(run.work, ignore_errors=True)
        else:
            log(f"kept {run.work}")
    text, passed = report(run)
    path = report_path(o, run.started)
    with open(path, "w") as f:
        f.write(text)
    with open(path[:-3] + ".json", "w") as f:  # the raw series, for a closer look at memory
        json.dump({"rss_samples": [{"t": round(t - run.soak_t0, 2), "rss_kib": r, "fds": fd, "threads": th}
                                   for t, r, fd, th in run.samples],
                   "timeline": {str(int(b * o.report_every)): v for b, v in sorted(run.timeline.items())},
                   "peak": run.peak, "target": run.target, "holders": run.holder_summary,
                   "post_check": run.post}, f, indent=1)
    print(text)
    log(f"report: {path}")
    log("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    def on_signal(signum, frame):
        stop_all()
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        sys.exit(main())
    except HarnessError as e:
        stop_all()
        log(f"HARNESS ERROR: {e}")
        sys.exit(2)
