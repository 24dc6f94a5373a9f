#!/usr/bin/env python3
"""The benchmark origin: a tiny HTTP/1.1 keep-alive server (stdlib asyncio only).

Why not `aside demo-origin`: the harness must not depend on the proxy under test
for its reference point, and it needs per-URL request counts to prove that a
cache coalesced a miss storm into one origin request.

    GET /bytes?size=1024&ms=0&max-age=3600[&anything]   `size` bytes of 'a' after `ms`
    GET /__count?target=<url-encoded request target>    how many times that target was fetched
    GET /__total                                        all requests served (minus /__ calls)

Every response carries `X-Origin-Hits: N` (the total counter) and
`Cache-Control: public, max-age=<max-age>`.
"""
import argparse
import asyncio
import collections
import sys
import urllib.parse

MAX_SIZE = 16 << 20
BODIES = {}
COUNTS = collections.Counter()
TOTAL = 0


def body_of(size):
    b = BODIES.get(size)
    if b is None:
        b = b"a" * size
        if len(BODIES) < 64:
            BODIES[size] = b
    return b


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

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self.transport.close()
                return
            head = self.buf[:end]
            self.buf = self.buf[end + 4:]  # GET only: no request bodies
            line = head.split(b"\r\n", 1)[0]
            parts = line.split(b" ")
            if len(parts) != 3:
                self.transport.write(response(400, b"bad request\n", b"Connection: close\r\n"))
                self.transport.close()
                return
            close = b"\r\nconnection: close" in head.lower()
            self.queue.append((parts[1].decode("latin-1"), close))
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
