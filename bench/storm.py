#!/usr/bin/env python3
"""Miss-storm client (stdlib asyncio): N requests for ONE cold URL, all in flight at once.

wrk cannot send N one-shot requests at the same instant, so this opens N keep-alive
connections first (not timed), then writes one request on each as fast as the loop
can and times each request from its own write to its last body byte.
Prints one JSON line: {"n", "ok", "failed", "statuses", "p50_ms", "p99_ms", "max_ms", "spread_ms"}.
"""
import argparse
import asyncio
import json
import sys
import time


class Client(asyncio.Protocol):
    def __init__(self, done):
        self.done = done  # future resolved with (status, t_end) or an exception
        self.buf = bytearray()
        self.need = None
        self.status = 0

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        if self.need is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            try:
                self.status = int(head[0].split(" ")[1])
            except (IndexError, ValueError):
                self.status = -1
            length = None
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
                elif name.strip().lower() == "transfer-encoding" and "chunked" in value.lower():
                    length = -1
            self.need = (end + 4, length)
        start, length = self.need
        if length is None or length < 0:
            # chunked or unknown: done at the terminating chunk
            if self.buf.endswith(b"0\r\n\r\n") and not self.done.done():
                self.done.set_result((self.status, time.perf_counter()))
        elif len(self.buf) - start >= length and not self.done.done():
            self.done.set_result((self.status, time.perf_counter()))

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_exception(ConnectionError(str(exc or "closed before the response ended")))


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    i = min(len(sorted_vals) - 1, max(0, int(round(p / 100 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


async def storm(host, port, path, n, timeout):
    loop = asyncio.get_running_loop()
    conns = []
    sem = asyncio.Semaphore(100)

    async def connect():
        async with sem:
            fut = loop.create_future()
            tr, _ = await loop.create_connection(lambda: Client(fut), host, port)
            return tr, fut

    conns = await asyncio.gather(*(connect() for _ in range(n)))
    await asyncio.sleep(0.2)  # let the server settle its accepts
    req = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: aside-bench-storm\r\n\r\n").encode()
    starts = []
    for tr, _ in conns:
        starts.append(time.perf_counter())
        tr.write(req)
    spread = (starts[-1] - starts[0]) * 1000
    lat, statuses, failed = [], {}, 0
    futs = [f for _, f in conns]
    await asyncio.wait(futs, timeout=timeout)
    results = []
    for f in futs:
        if not f.done():
            results.append(TimeoutError("no response within the timeout"))
        elif f.exception() is not None:
            results.append(f.exception())
        else:
            results.append(f.result())
    for t0, r in zip(starts, results):
        if isinstance(r, BaseException):
            failed += 1
            continue
        status, t1 = r
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        lat.append((t1 - t0) * 1000)
    for tr, _ in conns:
        tr.close()
    lat.sort()
    return {
        "n": n,
        "ok": statuses.get("200", 0),
        "failed": failed,
        "statuses": statuses,
        "p50_ms": round(pct(lat, 50), 2),
        "p99_ms": round(pct(lat, 99), 2),
        "max_ms": round(lat[-1], 2) if lat else 0.0,
        "spread_ms": round(spread, 2),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    res = asyncio.run(storm(args.host, args.port, args.path, args.n, args.timeout))
    print(json.dumps(res))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
