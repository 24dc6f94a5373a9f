#!/usr/bin/env python3
"""Profile Aside's hit path (issue 7), or nginx proxy_cache's the same way (`--server nginx`,
one process with `master_process off`): one hot key, keep-alive load, then either

  --tool callgrind   instructions per request, reproducible on a noisy machine
                     (collection starts after the warm-up, so startup is excluded)
  --tool perf        sampled CPU profile (if the kernel allows perf)

    python3 bench/profile.py --aside target/release/aside [--tool callgrind] [--size 1024]

Writes the annotated output to a scratch dir and prints the top functions.
"""
import argparse
import os
import shutil
import subprocess
import urllib.request
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


class ProfiledAside(bench.Aside):
    def __init__(self, work, binary, hot, wrapper):
        super().__init__(work, binary, hot)
        self.wrapper = wrapper

    def start(self, origin_port):
        data = os.path.join(self.dir, "data")
        os.makedirs(data, exist_ok=True)
        conf = bench.render("aside-bench.toml", os.path.join(self.dir, "aside.toml"),
                            PORT=self.port, ADMIN_PORT=self.admin_port, DATA=data,
                            ORIGIN_PORT=origin_port, HOT=self.hot, COLD="1GiB")
        env = dict(os.environ)
        env["ASIDE_ADMIN_TOKEN"] = "profile"
        self.proc = bench.spawn(bench.pin(bench.SERVER_CPU) + self.wrapper + [self.binary, "--config", conf],
                                self.log, env=env, cwd=self.dir)
        bench.wait_port(self.port, self.proc, self.log, "aside", timeout=120)


class ProfiledNginx(bench.NginxCache):
    """nginx proxy_cache as the bench runs it, in one process (`master_process
    off`: the worker's work happens in the process valgrind watches)."""

    def __init__(self, work, wrapper):
        super().__init__(work)
        self.wrapper = wrapper

    def start(self, origin_port):
        for d in ("client_body", "proxy_temp", "fastcgi", "uwsgi", "scgi", "cache"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        conf = bench.render("nginx-cache.conf", os.path.join(self.dir, "nginx.conf"),
                            PREFIX=self.dir, PORT=self.port, ORIGIN_PORT=origin_port)
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write("master_process off;\n" + text)
        self.proc = bench.spawn(bench.pin(bench.SERVER_CPU) + self.wrapper
                                + [bench.nginx_bin(), "-c", conf, "-p", self.dir], self.log)
        bench.wait_port(self.port, self.proc, self.log, "nginx (cache)", timeout=120)


def ir_total(path):
    with open(path) as fh:
        for line in fh:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    return 0


def store_reads(server):
    """The store's cold-read counters from Aside's /metrics (where its disk-tier
    lookups were read: on the proxy thread or on the reader threads)."""
    req = urllib.request.Request(f"http://127.0.0.1:{server.admin_port}/metrics",
                                 headers={"Authorization": "Bearer profile"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        text = resp.read().decode()
    return "\n".join(line for line in text.splitlines()
                     if line.startswith(("aside_store_cold_reads", "aside_store_inline_read_pauses")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aside", help="the Aside binary (required unless --server nginx)")
    ap.add_argument("--server", choices=["aside", "nginx"], default="aside",
                    help="what to profile: Aside, or nginx proxy_cache measured the same way")
    ap.add_argument("--tool", choices=["callgrind", "perf"], default="callgrind")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--keys", type=int, default=1,
                    help="> 1: uniform random keys over this many (cold-tier path with --hot 8MiB)")
    ap.add_argument("--hot", default="64MiB", help="Aside's hot-tier capacity")
    ap.add_argument("--miss", type=float, default=0.0,
                    help="> 0: the zipf scenario's shape, Zipf keys over --keys warmed keys plus this "
                         "fraction of never-seen keys (1.0: misses only)")
    opts = ap.parse_args()
    if opts.server == "aside":
        if not opts.aside:
            ap.error("--aside is required to profile Aside")
        opts.aside = os.path.abspath(opts.aside)

    work = tempfile.mkdtemp(prefix="aside-profile-")
    out = os.path.join(work, "callgrind.out")
    wrapper = []
    if opts.tool == "callgrind":
        wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    try:
        origin = bench.Origin(work)
        if opts.server == "nginx":
            server = ProfiledNginx(work, wrapper)
        else:
            server = ProfiledAside(work, opts.aside, opts.hot, wrapper)
        server.start(origin.port)
        if opts.miss > 0:
            paths = [bench.key_path(opts.size, k) for k in range(1, opts.keys + 1)]
            bench.warm(server, paths)
            script, path = "zipf.lua", "/"
            env = {"BENCH_KEYS": opts.keys, "BENCH_SIZE": opts.size, "BENCH_MISS": opts.miss,
                   "BENCH_NONCE": f"p{os.getpid()}"}
        elif opts.keys > 1:
            paths = [bench.key_path(opts.size, k) for k in range(1, opts.keys + 1)]
            bench.warm(server, paths)
            bench.warm(server, paths)
            script, env, path = "keys.lua", {"BENCH_KEYS": opts.keys, "BENCH_SIZE": opts.size}, "/"
        else:
            path = bench.fixed_path(opts.size)
            for _ in range(20):
                bench.check_response(server, path, opts.size)
            script, env = "fixed.lua", {}
        before = origin.total()
        target_pid = server.proc.pid
        if opts.tool == "callgrind":
            subprocess.run(["callgrind_control", "-i", "on", str(target_pid)], check=True,
                           capture_output=True)
            perf = None
        else:
            perf = subprocess.Popen(["perf", "record", "-F", "2999", "-g", "--call-graph", "dwarf,16384",
                                     "-o", os.path.join(work, "perf.data"), "-p", str(target_pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        r = bench.run_wrk(server, None, script, env, opts.seconds, opts.conns, path)
        leaked = origin.total() - before
        if opts.tool == "callgrind":
            subprocess.run(["callgrind_control", "-d", str(target_pid)], check=True, capture_output=True)
            time.sleep(1)
            server.stop()
            dumps = sorted(f for f in os.listdir(work) if f.startswith("callgrind.out"))
            files = [os.path.join(work, f) for f in dumps]
            total_ir = sum(ir_total(f) for f in files)
            print(f"requests {r['requests']} (origin requests during the run: {leaked}), "
                  f"{r['errors']} errors; Ir total {total_ir:,}; "
                  f"Ir per request ~{total_ir // max(1, r['requests']):,}")
            best = max(files, key=lambda f: ir_total(f))
            for incl in ("no", "yes"):
                ann = subprocess.run(["callgrind_annotate", f"--inclusive={incl}", "--threshold=100", best],
                                     capture_output=True, text=True)
                with open(os.path.join(work, f"annotate-inclusive-{incl}.txt"), "w") as fh:
                    fh.write(ann.stdout)
                print(f"\n===== callgrind_annotate --inclusive={incl} (top {opts.top}) =====")
                print("\n".join(ann.stdout.splitlines()[:opts.top + 25]))
        else:
            perf.send_signal(2)
            perf.wait()
            if opts.server == "aside":
                print(store_reads(server))
            server.stop()
            rep = subprocess.run(["perf", "report", "-i", os.path.join(work, "perf.data"), "--no-children",
                                  "--stdio", "--percent-limit", "0.7", "-g", "none"],
                                 capture_output=True, text=True)
            print(f"requests {r['requests']}, {r['rps']:.0f} req/s under perf")
            print(rep.stdout[:20000])
        print(f"\nfiles in {work}")
    finally:
        bench.stop_all()


if __name__ == "__main__":
    main()
