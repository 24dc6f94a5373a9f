#!/usr/bin/env python3
"""Miss-storm client (stdlib): N requests for ONE cold URL, all in flight at once.

wrk cannot send N one-shot requests at the same instant, so this opens N keep-alive
connections first (not timed), then writes one request on each as fast as it can
and times each request from its own write to its last body byte.

A bare epoll loop rather than asyncio: per-response client overhead is what limits
how precisely a 1,000-response burst can be timed on one CPU (asyncio costs ~3x more
per event). The report's "limit" row runs the same burst against a constant response,
which shows the remaining client + server floor.

Prints one JSON line: {"n", "ok", "failed", "statuses", "p50_ms", "p99_ms", "max_ms", "spread_ms"}.
"""
import argparse
import json
import select
import socket
import time


class Conn:
    __slots__ = ("sock", "buf", "need", "status", "t0", "t1", "failed")

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.need = None  # total bytes (head + body) once the head is parsed; -1 = chunked
        self.status = 0
        self.t0 = self.t1 = None
        self.failed = None

    def feed(self, data):
        """True when the response is complete."""
        self.buf += data
        if self.need is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = self.buf[:end].decode("latin-1").split("\r\n")
            try:
                self.status = int(head[0].split(" ")[1])
            except (IndexError, ValueError):
                self.status = -1
            self.need = -1
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    self.need = end + 4 + int(value.strip())
        if self.need >= 0:
            return len(self.buf) >= self.need
        return self.buf.endswith(b"0\r\n\r\n")


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    i = min(len(sorted_vals) - 1, max(0, int(round(p / 100 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def read_responses(ep, by_fd, pending, timeout):
    """Reads until `pending` connections of `by_fd` (fd -> Conn) have a whole
    response (stamping `t1`) or failed, or `timeout` passes; closes `ep`."""
    clock = time.perf_counter
    deadline = clock() + timeout
    while pending and clock() < deadline:
        for fd, _ in ep.poll(0.5):
            c = by_fd[fd]
            try:
                data = c.sock.recv(262144)
            except BlockingIOError:
                continue
            except OSError as e:
                data, c.failed = b"", str(e)
            if not data:
                c.failed = c.failed or "closed before the response ended"
            elif not c.feed(data):
                continue
            else:
                c.t1 = clock()
            ep.unregister(fd)
            pending -= 1
    ep.close()


def storm(host, port, path, n, timeout):
    conns = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        conns.append(Conn(s))
    time.sleep(0.2)  # let the server finish its accepts
    ep = select.epoll(n + 1)
    by_fd = {}
    for c in conns:
        by_fd[c.sock.fileno()] = c
        ep.register(c.sock.fileno(), select.EPOLLIN)
    req = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: aside-bench-storm\r\n\r\n").encode()
    clock = time.perf_counter
    for c in conns:
        c.t0 = clock()
        c.sock.send(req)
    spread = (conns[-1].t0 - conns[0].t0) * 1000
    read_responses(ep, by_fd, n, timeout)
    lat, statuses, failed = [], {}, 0
    for c in conns:
        c.sock.close()
        if c.t1 is None:
            failed += 1
            continue
        statuses[str(c.status)] = statuses.get(str(c.status), 0) + 1
        lat.append((c.t1 - c.t0) * 1000)
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
    print(json.dumps(storm(args.host, args.port, args.path, args.n, args.timeout)), flush=True)


if __name__ == "__main__":
    main()
