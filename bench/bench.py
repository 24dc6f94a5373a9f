#!/usr/bin/env python3
"""Aside vs nginx proxy_cache vs Varnish, same machine, same run (issue 7).

Started by bench/run.sh (which installs nginx/varnish/wrk and builds Aside).
Stdlib only. For every scenario it starts fresh servers (so peak RSS is per
scenario), warms the caches, checks the responses, then runs wrk interleaved
(limit, nginx, varnish, aside, limit, nginx, ...) for N rounds and keeps medians.

Servers are pinned to CPU 0, wrk / the storm client / the origin to CPU 1.
Raw results go to a JSON file; bench/report.py turns them into markdown.
"""
import argparse
import concurrent.futures
import datetime
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable or "python3"

# ---------------------------------------------------------------- processes

STARTED = []  # every Popen this script started, stopped on exit


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class HarnessError(Exception):
    """The harness cannot do its job (a server does not start or answers wrongly)."""


def cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def pin(cpu):
    """taskset prefix; no pinning on a single-CPU machine."""
    if cpu_count() < 2 or not shutil.which("taskset"):
        return []
    return ["taskset", "-c", str(cpu)]


SERVER_CPU, CLIENT_CPU = 0, 1


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def spawn(cmd, logfile, env=None, cwd=None):
    out = open(logfile, "ab")
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                         start_new_session=True)
    out.close()
    STARTED.append(p)
    return p


def stop(p, grace=5.0, sig=signal.SIGTERM):
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        return
    try:
        p.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def stop_all():
    for p in reversed(STARTED):
        stop(p, 2.0)


def tail(path, n=15):
    try:
        with open(path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
    except OSError:
        return "(no log)"


def wait_port(port, proc, logfile, what, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise HarnessError(f"{what} exited with {proc.returncode} before listening; log:\n{tail(logfile)}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise HarnessError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s; log:\n{tail(logfile)}")


def process_tree(pid):
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(d))
        except (OSError, ValueError, IndexError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def peak_rss_kib(pid):
    """Sum of VmHWM over the process and its descendants (nginx master+worker, varnish mgt+child)."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


# ------------------------------------------------------------------ servers

def render(template, out, **values):
    with open(os.path.join(BENCH_DIR, template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise HarnessError(f"{template}: unreplaced placeholders {sorted(set(left))}")
    with open(out, "w") as f:
        f.write(text)
    return out


class Server:
    name = "?"
    label = "?"

    def __init__(self, work):
        self.dir = os.path.join(work, self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.log = os.path.join(self.dir, "server.log")
        self.port = free_port()
        self.proc = None

    stop_signal = signal.SIGTERM

    def stop(self):
        if self.proc:
            stop(self.proc, sig=self.stop_signal)

    def peak_rss_kib(self):
        return peak_rss_kib(self.proc.pid) if self.proc and self.proc.poll() is None else 0

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class NginxLimit(Server):
    name, label = "limit", "limit (nginx return 200)"

    def __init__(self, work, size):
        super().__init__(work)
        self.size = size

    def start(self, origin_port):
        for d in ("client_body", "proxy_temp", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        if self.size <= 2048:
            body = 'return 200 "%s";' % ("a" * self.size)
        else:
            with open(os.path.join(self.dir, "body"), "wb") as f:
                f.write(b"a" * self.size)
            body = f"root {self.dir}; rewrite ^ /body break;"
        conf = render("nginx-limit.conf", os.path.join(self.dir, "nginx.conf"),
                      PREFIX=self.dir, PORT=self.port, BODY=body)
        self.proc = spawn(pin(SERVER_CPU) + [nginx_bin(), "-c", conf, "-p", self.dir], self.log)
        wait_port(self.port, self.proc, self.log, "nginx (limit)")


class NginxCache(Server):
    name, label = "nginx", "nginx proxy_cache"

    def start(self, origin_port):
        for d in ("client_body", "proxy_temp", "fastcgi", "uwsgi", "scgi", "cache"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        conf = render("nginx-cache.conf", os.path.join(self.dir, "nginx.conf"),
                      PREFIX=self.dir, PORT=self.port, ORIGIN_PORT=origin_port)
        self.proc = spawn(pin(SERVER_CPU) + [nginx_bin(), "-c", conf, "-p", self.dir], self.log)
        wait_port(self.port, self.proc, self.log, "nginx (cache)")


class Varnish(Server):
    name, label = "varnish", "Varnish"

    def start(self, origin_port):
        vcl = render("varnish.vcl", os.path.join(self.dir, "bench.vcl"), ORIGIN_PORT=origin_port)
        cmd = pin(SERVER_CPU) + [
            varnish_bin(), "-F", "-j", "none", "-n", os.path.join(self.dir, "n"),
            "-a", f"127.0.0.1:{self.port}", "-T", "none", "-f", vcl, "-s", "malloc,2G",
            # One thread pool on one CPU; enough threads for 32 connections and the
            # 1,000-request storm (Varnish parks waiting-list requests without a thread).
            "-p", "thread_pools=1", "-p", "thread_pool_min=100", "-p", "thread_pool_max=2000",
            "-p", "thread_queue_limit=2000", "-p", "listen_depth=4096",
        ]
        self.proc = spawn(cmd, self.log)
        wait_port(self.port, self.proc, self.log, "varnishd", timeout=60)


class Aside(Server):
    name, label = "aside", "Aside"
    stop_signal = signal.SIGINT  # pingora: SIGINT = fast shutdown, SIGTERM = graceful (waits)

    def __init__(self, work, binary, hot):
        super().__init__(work)
        self.binary, self.hot = binary, hot
        self.admin_port = free_port()

    def start(self, origin_port):
        data = os.path.join(self.dir, "data")
        os.makedirs(data, exist_ok=True)
        conf = render("aside-bench.toml", os.path.join(self.dir, "aside.toml"),
                      PORT=self.port, ADMIN_PORT=self.admin_port, DATA=data,
                      ORIGIN_PORT=origin_port, HOT=self.hot, COLD="2GiB")
        env = dict(os.environ)
        env["ASIDE_ADMIN_TOKEN"] = secrets.token_hex(16)
        self.proc = spawn(pin(SERVER_CPU) + [self.binary, "--config", conf], self.log,
                          env=env, cwd=self.dir)
        wait_port(self.port, self.proc, self.log, "aside", timeout=60)


def nginx_bin():
    return shutil.which("nginx") or "/usr/sbin/nginx"


def varnish_bin():
    return shutil.which("varnishd") or "/usr/sbin/varnishd"


class Origin:
    def __init__(self, work):
        self.dir = os.path.join(work, "origin")
        os.makedirs(self.dir, exist_ok=True)
        self.log = os.path.join(self.dir, "origin.log")
        portfile = os.path.join(self.dir, "port")
        self.proc = spawn(pin(CLIENT_CPU) + [PY, os.path.join(BENCH_DIR, "origin.py"),
                                             "--listen", "127.0.0.1:0", "--port-file", portfile],
                          self.log)
        deadline = time.time() + 15
        while not os.path.exists(portfile):
            if self.proc.poll() is not None or time.time() > deadline:
                raise HarnessError(f"origin did not start; log:\n{tail(self.log)}")
            time.sleep(0.05)
        with open(portfile) as f:
            self.port = int(f.read())

    def total(self):
        status, body, _ = http_get(self.port, "/__total")
        return int(body)


# --------------------------------------------------------------------- HTTP

def http_get(port, path, conn=None):
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        return r.status, body, dict((k.lower(), v) for k, v in r.getheaders())
    finally:
        if own:
            conn.close()


def warm(server, paths, workers=8):
    """Fetch every path once (keep-alive, a few parallel connections)."""
    chunks = [paths[i::workers] for i in range(workers)]

    def run(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        bad = 0
        for p in chunk:
            try:
                st, body, _ = http_get(server.port, p, conn)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                bad += 1
                continue
            if st != 200:
                bad += 1
        conn.close()
        return bad

    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        return sum(ex.map(run, [c for c in chunks if c]))


def check_response(server, path, size):
    st, body, headers = http_get(server.port, path)
    if st != 200 or len(body) != size:
        raise HarnessError(f"{server.label} answered {path} with status {st}, {len(body)} bytes "
                           f"(want 200, {size}); log:\n{tail(server.log)}")
    return headers


# ---------------------------------------------------------------------- wrk

def run_wrk(server, args, script, env_extra, duration, conns, url_path):
    env = dict(os.environ)
    env["BENCH_WRK_DIR"] = os.path.join(BENCH_DIR, "wrk")
    env.update({k: str(v) for k, v in env_extra.items()})
    cmd = pin(CLIENT_CPU) + ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--timeout", "5s",
                             "-s", os.path.join(BENCH_DIR, "wrk", script),
                             f"http://127.0.0.1:{server.port}{url_path}"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 60)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            r = json.loads(line[len("BENCH_JSON "):])
            r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
            r["errors"] = sum(r[k] for k in r if k.startswith("err_"))
            return r
    raise HarnessError(f"wrk produced no summary against {server.label}:\n{out.stdout}\n{out.stderr}")


# ---------------------------------------------------------------- scenarios

def scenario_defs(smoke):
    s = {
        "hot-1k": dict(title="Hot hit, 1 KiB body, 32 connections", size=1024, keys=1,
                       script="fixed.lua", hot="64MiB", conns=32),
        "hot-64k": dict(title="Hot hit, 64 KiB body, 32 connections", size=65536, keys=1,
                        script="fixed.lua", hot="64MiB", conns=32),
        "cold-16k": dict(title="Cold-tier hit: 4,000 keys x 16 KiB (62.5 MiB) over an 8 MiB hot tier, "
                               "uniform random keys, 32 connections",
                         size=16384, keys=4000, script="keys.lua", hot="8MiB", conns=32),
        "cold-1k": dict(title="Cold-tier hit: 200,000 keys x 1 KiB over an 8 MiB hot tier, "
                              "uniform random keys, 32 connections",
                        size=1024, keys=200000, script="keys.lua", hot="8MiB", conns=32),
        "cold-1m": dict(title="Large objects: 200 keys x 1 MiB over a 64 MiB hot tier, "
                              "uniform random keys, 32 connections",
                        size=1 << 20, keys=200, script="keys.lua", hot="64MiB", conns=32),
        "storm": dict(title="Miss storm: 1,000 concurrent requests for one cold key, origin takes 200 ms",
                      size=1024, n=1000, ms=200, hot="64MiB"),
        "zipf": dict(title="Mixed: Zipf(s=1.0) over 10,000 keys x 1 KiB, 90% hits (10% never-seen keys), "
                           "32 connections",
                     size=1024, keys=10000, script="zipf.lua", hot="64MiB", conns=32, miss=0.1),
    }
    if smoke:
        s["cold-16k"].update(keys=400, hot="1MiB",
                             title="Cold-tier hit (smoke: 400 keys x 16 KiB over a 1 MiB hot tier)")
        s["cold-1k"].update(keys=2000, hot="1MiB",
                            title="Cold-tier hit (smoke: 2,000 keys x 1 KiB over a 1 MiB hot tier)")
        s["cold-1m"].update(keys=20, hot="8MiB",
                            title="Large objects (smoke: 20 keys x 1 MiB over an 8 MiB hot tier)")
        s["storm"].update(n=100, title="Miss storm (smoke: 100 concurrent requests, origin 200 ms)")
        s["zipf"].update(keys=500, title="Mixed Zipf, 90% hits (smoke: 500 keys)")
    return s


def key_path(size, k):
    return f"/bytes?size={size}&k={k}"


def fixed_path(size):
    return f"/bytes?size={size}&k=hot"


def run_scenario(sid, sc, opts, work, origin, aside_bin):
    log(f"scenario {sid}: {sc['title']}")
    sdir = os.path.join(work, sid)
    servers = [NginxLimit(sdir, sc["size"]), NginxCache(sdir), Varnish(sdir),
               Aside(sdir, aside_bin, sc["hot"])]
    if opts.servers:
        servers = [s for s in servers if s.name in opts.servers.split(",")]
    result = {"id": sid, "title": sc["title"], "hot": sc["hot"], "size": sc["size"],
              "servers": {}, "notes": []}
    try:
        for s in servers:
            s.start(origin.port)
            result["servers"][s.name] = {"label": s.label, "runs": []}
        if sid == "storm":
            run_storm(sc, opts, servers, origin, result)
        else:
            run_load(sid, sc, opts, servers, origin, result)
        for s in servers:
            if not s.alive():
                raise HarnessError(f"{s.label} died during {sid}; log:\n{tail(s.log)}")
            result["servers"][s.name]["peak_rss_kib"] = s.peak_rss_kib()
    finally:
        t0 = time.time()
        for s in servers:
            s.stop()
        log(f"  stopped servers in {time.time() - t0:.1f}s")
    return result


def run_load(sid, sc, opts, servers, origin, result):
    size = sc["size"]
    if sc["keys"] == 1:
        paths = [fixed_path(size)]
        url_path, env = paths[0], {}
    else:
        paths = [key_path(size, k) for k in range(1, sc["keys"] + 1)]
        url_path, env = "/", {"BENCH_KEYS": sc["keys"], "BENCH_SIZE": size}
        if "miss" in sc:
            env["BENCH_MISS"] = sc["miss"]

    # Warm every cache, then prove the second pass never reaches the origin.
    for s in servers:
        check_response(s, paths[0], size)
        if s.name == "limit":
            continue
        t0 = time.time()
        bad = warm(s, paths)
        if bad:
            raise HarnessError(f"{s.label}: {bad} of {len(paths)} warm-up requests failed")
        before = origin.total()
        sample = paths if len(paths) <= 500 else paths[:: max(1, len(paths) // 500)]
        warm(s, sample)
        leaked = origin.total() - before
        result["servers"][s.name]["warm_s"] = round(time.time() - t0, 2)
        result["servers"][s.name]["rewarm_origin_requests"] = leaked
        if leaked:
            result["notes"].append(f"{s.label}: {leaked} of {len(sample)} re-requested warm keys went to "
                                   f"the origin (evicted or not cached)")
        hdrs = check_response(s, paths[0], size)
        result["servers"][s.name]["cache_header"] = (
            hdrs.get("cache-status") or hdrs.get("x-cache-status") or hdrs.get("x-cache") or "")

    for rnd in range(opts.rounds):
        for s in servers:
            if opts.warmup:
                e = dict(env, BENCH_NONCE=f"w{rnd}{s.name}{secrets.token_hex(3)}")
                run_wrk(s, opts, sc["script"], e, opts.warmup, sc["conns"], url_path)
            e = dict(env, BENCH_NONCE=f"r{rnd}{s.name}{secrets.token_hex(3)}")
            before = origin.total()
            r = run_wrk(s, opts, sc["script"], e, opts.duration, sc["conns"], url_path)
            r["origin_requests"] = origin.total() - before if s.name != "limit" else 0
            r["round"] = rnd
            result["servers"][s.name]["runs"].append(r)
            log(f"  {sid} round {rnd + 1}/{opts.rounds} {s.name:8s} {r['rps']:10.0f} req/s  "
                f"p50 {r['p50_us'] / 1000:.2f} ms  p99 {r['p99_us'] / 1000:.2f} ms  "
                f"errors {r['errors']}  origin {r['origin_requests']}")


def run_storm(sc, opts, servers, origin, result):
    for rnd in range(opts.rounds):
        for s in servers:
            key = f"storm-{s.name}-{rnd}-{secrets.token_hex(4)}"
            path = f"/bytes?size={sc['size']}&ms={sc['ms']}&k={key}"
            if s.name == "limit":
                path = "/bytes?k=" + key
            before = origin.total()
            cmd = pin(CLIENT_CPU) + [PY, os.path.join(BENCH_DIR, "storm.py"), "--port", str(s.port),
                                     "--path", path, "-n", str(sc["n"])]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            line = (out.stdout.strip().splitlines() or [""])[-1]
            try:
                r = json.loads(line)
            except ValueError:
                raise HarnessError(f"storm client failed against {s.label}:\n{out.stdout}\n{out.stderr}")
            time.sleep(0.3)  # late origin fetches (a cache that gave up waiting) still count
            r["origin_requests"] = origin.total() - before
            r["round"] = rnd
            r["errors"] = r["failed"] + (r["n"] - r["ok"] - r["failed"])
            result["servers"][s.name]["runs"].append(r)
            log(f"  storm round {rnd + 1}/{opts.rounds} {s.name:8s} origin requests {r['origin_requests']}  "
                f"p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms  ok {r['ok']}/{r['n']}")


# ------------------------------------------------------------------- machine

def machine():
    model = "unknown-cpu"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = os.cpu_count() or 1
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    slug = re.sub(r"-(processor|cpu)\b", "", slug)[:40].strip("-")
    return {"cores": cores, "cpu_model": model, "slug": slug, "kernel": platform.release()}


def tool_versions():
    def first(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (out.stdout + out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    return {"nginx": first([nginx_bin(), "-v"]), "varnish": first([varnish_bin(), "-V"]),
            "wrk": first(["wrk", "-v"])}


def git_commit():
    try:
        out = subprocess.run(["git", "-C", BENCH_DIR, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[:3]
    except OSError:
        return []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aside", required=True, help="the aside binary")
    ap.add_argument("--aside-build", default="release")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--duration", type=int, help="seconds per measured wrk run")
    ap.add_argument("--warmup", type=int, help="seconds of unmeasured wrk before each run")
    ap.add_argument("--only", help="comma-separated scenario ids")
    ap.add_argument("--out", help="raw JSON output file")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (logs)")
    ap.add_argument("--servers", help="comma-separated subset of limit,nginx,varnish,aside "
                    "(quick iteration; the report marks such a run PARTIAL)")
    opts = ap.parse_args()
    if opts.rounds is None:
        opts.rounds = 1 if opts.smoke else 5
    if opts.duration is None:
        opts.duration = 1 if opts.smoke else 5
    if opts.warmup is None:
        opts.warmup = 0 if opts.smoke else 1

    if not os.access(opts.aside, os.X_OK):
        raise HarnessError(f"aside binary not found: {opts.aside}")
    for tool in ("wrk",):
        if not shutil.which(tool):
            raise HarnessError(f"{tool} not installed (run scripts/prereqs.sh nginx varnish wrk)")
    if not os.path.exists(nginx_bin()) or not os.path.exists(varnish_bin()):
        raise HarnessError("nginx or varnishd not installed (run scripts/prereqs.sh nginx varnish wrk)")

    known = {"limit", "nginx", "varnish", "aside"}
    if opts.servers and not set(opts.servers.split(",")) <= known:
        raise HarnessError(f"--servers: expected some of {','.join(sorted(known))}, got {opts.servers}")
    scenarios = scenario_defs(opts.smoke)
    ids = opts.only.split(",") if opts.only else list(scenarios)
    work = tempfile.mkdtemp(prefix="aside-bench-")
    log(f"scratch dir {work}; {opts.rounds} round(s) x {opts.duration}s per server per scenario")
    started = datetime.datetime.now()
    raw = {
        "date": started.strftime("%Y-%m-%d"), "started": started.isoformat(timespec="seconds"),
        "smoke": opts.smoke, "rounds": opts.rounds, "duration_s": opts.duration,
        "warmup_s": opts.warmup, "machine": machine(), "tools": tool_versions(),
        "aside_binary": opts.aside, "aside_build": opts.aside_build, "git_commit": git_commit(),
        "note": os.environ.get("BENCH_NOTE", ""), "servers": opts.servers.split(",") if opts.servers else None, "pinned": bool(pin(0)), "loadavg_start": loadavg(), "scenarios": [],
    }
    out = opts.out or os.path.join(work + ".json")
    try:
        origin = Origin(work)
        for sid in ids:
            raw["scenarios"].append(run_scenario(sid, scenarios[sid], opts, work, origin, opts.aside))
            # Written after every scenario: a run killed half-way keeps what it measured.
            with open(out, "w") as f:
                json.dump(raw, f, indent=1)
    finally:
        stop_all()
        if not opts.keep:
            # This disk discards on unlink (tens of thousands of cache files take minutes):
            # remove the scratch dir in the background, detached from this run.
            subprocess.Popen(["rm", "-rf", work], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    raw["loadavg_end"] = loadavg()
    raw["elapsed_s"] = round((datetime.datetime.now() - started).total_seconds(), 1)
    with open(out, "w") as f:
        json.dump(raw, f, indent=1)
    log(f"raw results: {out}")
    print(out)


if __name__ == "__main__":
    def on_signal(signum, frame):
        stop_all()
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        main()
    except HarnessError as e:
        stop_all()
        log(f"HARNESS ERROR: {e}")
        sys.exit(2)
