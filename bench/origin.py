#!/usr/bin/env python3
"""The benchmark origin: a tiny HTTP/1.1 keep-alive server (stdlib asyncio only).

Why not `aside demo-origin`: the harness must not depend on the proxy under test
for its reference point, and it needs per-URL request counts to prove that a
cache coalesced a miss storm into one origin request.

    GET /bytes?size=1024&ms=0&max-age=3600[&anything]   `size` bytes of 'a' after `ms`
    GET /__count?target=<url-encoded request target>    how many times that target was fetched
    GET /__total                                        all requests served (minus /__ calls)
    GET /soak?k=<key>&size=<n>&max-age=<s>[&chunked=1][&ms=]
                                                        the soak's objects (bench/soak.py): a body
        that is a pure function of (k, size): "<k>|<size>|" then pseudo-random bytes, with
        `X-Checksum: <sha256 hex of the body>` and `X-Soak-Key: <k>`; `chunked=1` sends it
        with Transfer-Encoding: chunked in pieces of varied sizes. Any method (a request
        body with Content-Length is read and discarded).

Every /bytes response carries `X-Origin-Hits: N` (the total counter) and
`Cache-Control: public, max-age=<max-age>`.
"""
import argparse
import asyncio
import collections
import hashlib
import random
import re
import sys
import urllib.parse

MAX_SIZE = 16 << 20
BODIES = {}
COUNTS = collections.Counter()
TOTAL = 0
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]{1,12})", re.IGNORECASE)


def body_of(size):
    b = BODIES.get(size)
    if b is None:
        b = b"a" * size
        if len(BODIES) < 64:
            BODIES[size] = b
    return b


def soak_object(key, size):
    """The soak's body for (key, size): the same bytes on every fetch, so a body
    served from the cache can be checked against the checksum the origin sent."""
    prefix = f"{key}|{size}|".encode()
    rng = random.Random(f"{key}/{size}")
    body = (prefix + rng.randbytes(max(0, size - len(prefix))))[:size]
    return body, hashlib.sha256(body).hexdigest().encode(), rng


def soak_response(key, size, max_age, chunked):
    body, digest, rng = soak_object(key, size)
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Cache-Control: public, max-age=%d\r\nX-Checksum: %s\r\nX-Soak-Key: %s\r\n"
            % (max_age, digest, key.encode("latin-1")))
    if not chunked:
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    out = [head, b"Transfer-Encoding: chunked\r\n\r\n"]
    pos = 0
    while pos < len(body):
        n = min(len(body) - pos, rng.choice((1, 7, 100, 1000, 4096, 16384, 65536)))
        out.append(b"%x\r\n" % n + body[pos:pos + n] + b"\r\n")
        pos += n
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def response(status, body, extra=b""):
    reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}.get(status, b"X")
    head = (b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n%s\r\n"
            % (status, reason, len(body), extra))
    return head + body


class Origin(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""
        self.queue = []  # pipelined requests are answered in order
        self.busy = False
        self.skip = 0  # request body bytes still to discard
        self.pending = None  # the request whose body is being discarded

    def data_received(self, data):
        self.buf += data
        while True:
            if self.skip:
                n = min(self.skip, len(self.buf))
                self.buf = self.buf[n:]
                self.skip -= n
                if self.skip:
                    return
            if self.pending:  # answered once its whole body has arrived
                self.enqueue(*self.pending)
                self.pending = None
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self.transport.close()
                return
            head = self.buf[:end]
            self.buf = self.buf[end + 4:]
            # A request body with Content-Length is discarded (soak's slow POSTs); the
            # benchmarks send GETs only.
            m = CONTENT_LENGTH.search(head)
            self.skip = int(m.group(1)) if m else 0
            line = head.split(b"\r\n", 1)[0]
            parts = line.split(b" ")
            if len(parts) != 3:
                self.transport.write(response(400, b"bad request\n", b"Connection: close\r\n"))
                self.transport.close()
                return
            close = b"\r\nconnection: close" in head.lower()
            if self.skip:
                self.pending = (parts[1].decode("latin-1"), close)
            else:
                self.enqueue(parts[1].decode("latin-1"), close)

    def enqueue(self, target, close):
        self.queue.append((target, close))
        if not self.busy:
            self.busy = True
            asyncio.ensure_future(self.serve())

    async def serve(self):
        global TOTAL
        while self.queue:
            target, close = self.queue.pop(0)
            path, _, query = target.partition("?")
            q = dict(urllib.parse.parse_qsl(query))
            if path == "/__count":
                data = b"%d\n" % COUNTS[q.get("target", "")]
                self.transport.write(response(200, data, b"Cache-Control: no-store\r\n"))
            elif path == "/__total":
                self.transport.write(response(200, b"%d\n" % TOTAL, b"Cache-Control: no-store\r\n"))
            elif path == "/bytes":
                TOTAL += 1
                COUNTS[target] += 1
                try:
                    size = min(int(q.get("size", "1024")), MAX_SIZE)
                    ms = min(int(q.get("ms", "0")), 10_000)
                    max_age = int(q.get("max-age", "3600"))
                except ValueError:
                    self.transport.write(response(400, b"bad number\n"))
                    continue
                if ms > 0:
                    await asyncio.sleep(ms / 1000)
                extra = (b"Content-Type: application/octet-stream\r\n"
                         b"Cache-Control: public, max-age=%d\r\nX-Origin-Hits: %d\r\n"
                         % (max_age, TOTAL))
                if self.transport.is_closing():
                    return
                self.transport.write(response(200, body_of(size), extra))
            elif path == "/soak":
                TOTAL += 1
                try:
                    size = min(int(q.get("size", "1024")), MAX_SIZE)
                    ms = min(int(q.get("ms", "0")), 10_000)
                    max_age = int(q.get("max-age", "3600"))
                except ValueError:
                    self.transport.write(response(400, b"bad number\n"))
                    continue
                if ms > 0:
                    await asyncio.sleep(ms / 1000)
                if self.transport.is_closing():
                    return
                self.transport.write(soak_response(q.get("k", ""), size, max_age,
                                                   q.get("chunked") == "1"))
            else:
                self.transport.write(response(404, b"not found\n"))
            if close:
                self.transport.close()
                return
        self.busy = False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--port-file", help="write the bound port here once listening")
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(":")

    async def run():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Origin, host, int(port), backlog=4096)
        bound = server.sockets[0].getsockname()[1]
        if args.port_file:
            with open(args.port_file + ".tmp", "w") as f:
                f.write(str(bound))
            import os
            os.replace(args.port_file + ".tmp", args.port_file)
        print(f"origin listening on {host}:{bound}", file=sys.stderr, flush=True)
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
