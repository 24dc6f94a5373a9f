#!/usr/bin/env python3
"""A/B two (or more) Aside builds in one run: the same scenario of `bench.py`, the
builds started side by side in front of one origin, warmed alike, then measured in
interleaved rounds, so that a noisy machine moves both alike. Prints req/s, p99,
context switches of the whole Aside process per request and peak RSS per round.

    python3 bench/ab.py --scenario cold-16k --rounds 3 target/release/aside /tmp/aside-before

Each build is pinned to the server CPU like in `bench.py`; wrk and the origin to the
other one.
"""
import argparse
import os
import secrets
import sys
import tempfile
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402


def context_switches(pid):
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binaries", nargs="+", help="Aside binaries to compare")
    ap.add_argument("--scenario", default="cold-16k", help="a load scenario of bench.py")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="measured seconds per round")
    args = ap.parse_args()
    sc = B.scenario_defs(False).get(args.scenario)
    if not sc or "script" not in sc:
        sys.exit(f"no load scenario {args.scenario!r}")
    work = tempfile.mkdtemp(prefix="aside-ab-")
    origin = B.Origin(work)
    servers = []
    try:
        for i, binary in enumerate(args.binaries):
            s = B.Aside(os.path.join(work, f"build{i}"), binary, sc["hot"])
            s.label = f"{i}:{os.path.basename(binary)}"
            s.start(origin.port)
            servers.append(s)
        if sc["keys"] > 1:
            paths = [B.key_path(sc["size"], k) for k in range(1, sc["keys"] + 1)]
            env, url = {"BENCH_KEYS": sc["keys"], "BENCH_SIZE": sc["size"]}, "/"
        else:
            paths = [B.fixed_path(sc["size"])]
            env, url = {}, paths[0]
        for s in servers:
            if B.warm(s, paths):
                sys.exit(f"{s.label}: warm-up requests failed")
        opts = types.SimpleNamespace()
        rps = {s.label: [] for s in servers}
        for r in range(args.rounds):
            for s in servers:
                B.run_wrk(s, opts, sc["script"], dict(env, BENCH_NONCE=f"w{r}{secrets.token_hex(3)}"),
                          1, sc["conns"], url)
                before = context_switches(s.proc.pid)
                x = B.run_wrk(s, opts, sc["script"], dict(env, BENCH_NONCE=f"r{r}{secrets.token_hex(3)}"),
                              args.duration, sc["conns"], url)
                switches = context_switches(s.proc.pid) - before
                rps[s.label].append(x["rps"])
                print(f"{args.scenario} round {r + 1} {s.label:24s} {x['rps']:9.0f} req/s  "
                      f"p99 {x['p99_us'] / 1000:.2f} ms  errors {x['errors']}  "
                      f"ctxsw/req {switches / max(1, x['requests']):.2f}  "
                      f"peak RSS {s.peak_rss_kib() / 1024:.1f} MiB", flush=True)
        for label, values in rps.items():
            values = sorted(values)
            print(f"{args.scenario} {label} median {values[len(values) // 2]:.0f} req/s")
    finally:
        for s in servers:
            s.stop()
        B.stop(origin.proc)


if __name__ == "__main__":
    main()
