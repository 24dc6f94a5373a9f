#!/usr/bin/env python3
"""Turn bench.py's raw JSON into the markdown report (one table per scenario,
ratios against nginx, Varnish and the constant-response limit, the issue 7
targets marked met / NOT met).

    python3 bench/report.py RAW.json [--out FILE.md]
"""
import argparse
import json
import statistics
import sys

ORDER = ["aside", "nginx", "varnish", "limit"]
HIT_SCENARIOS = ("hot-1k", "hot-64k", "cold-16k")
STORM_BUDGET_MS = 20  # issue 7: p99 within origin latency + 20 ms
RSS_SLACK_MIB = 64    # issues 7 and 18: peak RSS within hot capacity + 64 MiB
# Throughput targets per scenario: (peer, minimum Aside/peer ratio). Issue 17
# (hot hits) and issue 18 (disk tier) replaced issue 7's.
RATIO_TARGETS = {
    "hot-1k": [("nginx", 1.3), ("varnish", 1.3)],
    "hot-64k": [("nginx", 1.2)],
    "cold-16k": [("nginx", 1.1)],
    "cold-1k": [("nginx", 1.0)],
    "cold-1m": [("nginx", 1.0)],
    "zipf": [("varnish", 1.0)],
}
PEER_NAMES = {"nginx": "nginx", "varnish": "Varnish"}


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def mib(kib):
    return kib / 1024 if kib else None


def parse_size_mib(s):
    units = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}
    for u, f in units.items():
        if s.endswith(u):
            return float(s[: -len(u)]) * f
    return None


def fmt(v, digits=2):
    if v is None:
        return "–"
    if isinstance(v, float) and v >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def ratio(a, b):
    return a / b if a and b else None


def summarize(sc):
    out = {}
    for name, s in sc["servers"].items():
        runs = s["runs"]
        if sc["id"] == "storm":
            out[name] = {
                "label": s["label"],
                "origin": [r["origin_requests"] for r in runs],
                "p50": med([r["p50_ms"] for r in runs]),
                "p99": med([r["p99_ms"] for r in runs]),
                "max": med([r["max_ms"] for r in runs]),
                "ok": sum(r["ok"] for r in runs), "n": sum(r["n"] for r in runs),
                "rss": mib(s.get("peak_rss_kib")),
            }
        else:
            out[name] = {
                "label": s["label"],
                "rps": med([r["rps"] for r in runs]),
                "rps_runs": [r["rps"] for r in runs],
                "p50": med([r["p50_us"] / 1000 for r in runs]),
                "p99": med([r["p99_us"] / 1000 for r in runs]),
                "errors": sum(r["errors"] for r in runs),
                "origin": med([r.get("origin_requests", 0) for r in runs]),
                "rss": mib(s.get("peak_rss_kib")),
                "cache_header": s.get("cache_header", ""),
            }
    return out


def verdict(ok):
    return "met" if ok else "**NOT met**"


def render(raw):
    m = raw["machine"]
    lines = []
    title = "Aside benchmark" + (" (SMOKE RUN: numbers are not meaningful)" if raw["smoke"] else "")
    if raw.get("servers"):
        title += f" (PARTIAL RUN: only {', '.join(raw['servers'])}; ratios against missing servers are meaningless)"
    lines += [f"# {title}: {raw['date']}, {m['cores']} cores, {m['cpu_model']}", ""]
    lines += [
        f"- Command: `make bench` (`bench/run.sh`), Aside build: {raw['aside_build']} (`{raw['aside_binary']}`)"
        + (f", commit `{raw['git_commit']}`" if raw.get("git_commit") else ""),
        f"- {raw['rounds']} interleaved round(s) (limit, nginx, Varnish, Aside, limit, ...), "
        f"{raw['duration_s']} s measured per run after {raw['warmup_s']} s unmeasured warm-up; medians over rounds",
        f"- Servers pinned to CPU 0, wrk (1 thread), the storm client and the origin to CPU 1"
        + ("" if raw["pinned"] else " (NOT pinned: fewer than 2 CPUs or no taskset)"),
        f"- Aside 1 worker thread; nginx `worker_processes 1`; Varnish 1 thread pool; "
        f"all keep-alive to the origin; TTL 1h everywhere; nginx `proxy_cache_lock on`; "
        f"no access logs (nginx `access_log off`, Aside `access-log = false`, no `varnishncsa`)",
        f"- Load average at start {' '.join(raw.get('loadavg_start', []))}, at end "
        f"{' '.join(raw.get('loadavg_end', []))}; elapsed {raw.get('elapsed_s', '?')} s",
        f"- {raw['tools'].get('nginx')}; {raw['tools'].get('varnish')}; {raw['tools'].get('wrk')}; "
        f"kernel {m.get('kernel')}",
        "- The limit is nginx `return 200` with a constant body (≤ 2 KiB; nginx config tokens are "
        "capped at 4 KiB) or a static file from the page cache with `open_file_cache` + `sendfile` (larger bodies).",
        "- Peak RSS = VmHWM summed over the server's processes (nginx master + worker, varnishd manager + child).",
        "",
    ]
    if raw.get("note"):
        lines += [f"> {raw['note']}", ""]

    targets = []
    for sc in raw["scenarios"]:
        sm = summarize(sc)
        a, n, v, lim = (sm.get(k) for k in ("aside", "nginx", "varnish", "limit"))
        lines += [f"## {sc['title']}", ""]
        if sc["id"] == "storm":
            lines += ["| server | origin requests (per run) | p50 ms | p99 ms | max ms | ok / sent | peak RSS MiB |",
                      "|---|---|---:|---:|---:|---:|---:|"]
            for k in ORDER:
                if k in sm:
                    s = sm[k]
                    origin = ", ".join(map(str, s["origin"])) if k != "limit" else "– (no origin)"
                    lines.append(f"| {s['label']} | {origin} | {fmt(s['p50'])} | {fmt(s['p99'])} | "
                                 f"{fmt(s['max'])} | {s['ok']} / {s['n']} | {fmt(s['rss'], 1)} |")
            lines += ["", f"p99 ratios (lower is better): Aside/nginx {fmt(ratio(a and a['p99'], n and n['p99']))}, "
                          f"Aside/Varnish {fmt(ratio(a and a['p99'], v and v['p99']))}. The limit row is the same "
                          "burst against the constant response (client + one-CPU server floor, no origin wait).", ""]
            if a:
                origin_ms = 200
                targets.append(("miss storm: exactly 1 origin request per storm",
                                f"Aside: {', '.join(map(str, a['origin']))}",
                                all(o == 1 for o in a["origin"])))
                targets.append((f"miss storm: p99 ≤ origin {origin_ms} ms + {STORM_BUDGET_MS} ms",
                                f"Aside p99 {fmt(a['p99'])} ms", a["p99"] is not None
                                and a["p99"] <= origin_ms + STORM_BUDGET_MS))
        else:
            lines += ["| server | req/s (median) | p50 ms | p99 ms | peak RSS MiB | errors | origin req/run | req/s per round |",
                      "|---|---:|---:|---:|---:|---:|---:|---|"]
            for k in ORDER:
                if k in sm:
                    s = sm[k]
                    runs = ", ".join(f"{x:,.0f}" for x in s["rps_runs"])
                    lines.append(f"| {s['label']} | {fmt(s['rps'])} | {fmt(s['p50'])} | {fmt(s['p99'])} | "
                                 f"{fmt(s['rss'], 1)} | {s['errors']} | {fmt(s['origin'], 0)} | {runs} |")
            r_n = ratio(a and a["rps"], n and n["rps"])
            r_v = ratio(a and a["rps"], v and v["rps"])
            r_l = ratio(a and a["rps"], lim and lim["rps"])
            lines += ["", f"**Ratios (req/s): Aside/nginx {fmt(r_n)}, Aside/Varnish {fmt(r_v)}, "
                          f"Aside/limit {fmt(r_l)}**; nginx/limit {fmt(ratio(n and n['rps'], lim and lim['rps']))}, "
                          f"Varnish/limit {fmt(ratio(v and v['rps'], lim and lim['rps']))}", ""]
            for peer, minimum in RATIO_TARGETS.get(sc["id"], []) if a else []:
                r = {"nginx": r_n, "varnish": r_v}[peer]
                targets.append((f"{sc['id']}: Aside ≥ {minimum} × {PEER_NAMES[peer]}", fmt(r),
                                r is not None and r >= minimum))
            if a and sc["id"] in HIT_SCENARIOS:
                peers = [p["p99"] for p in (n, v) if p and p["p99"] is not None]
                ok = a["p99"] is not None and bool(peers) and a["p99"] <= min(peers)
                targets.append((f"{sc['id']}: Aside p99 ≤ both peers",
                                f"Aside {fmt(a['p99'])} ms vs nginx {fmt(n and n['p99'])} / "
                                f"Varnish {fmt(v and v['p99'])} ms", ok))
        hot = sc.get("hot")
        if a and a.get("rss") is not None and hot and parse_size_mib(hot) is not None:
            cap = parse_size_mib(hot) + RSS_SLACK_MIB
            targets.append((f"{sc['id']}: Aside peak RSS ≤ hot {hot} + {RSS_SLACK_MIB} MiB",
                            f"{fmt(a['rss'], 1)} MiB ≤ {cap:.0f}", a["rss"] <= cap))
        for note in sc.get("notes", []):
            lines.append(f"- note: {note}")
        if sc.get("notes"):
            lines.append("")

    if not raw["smoke"]:
        lines += ["## Targets (issues 7, 17 and 18)", "", "| target | measured | |", "|---|---|---|"]
        for name, measured, ok in targets:
            lines.append(f"| {name} | {measured} | {verdict(ok)} |")
        lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--out")
    ap.add_argument("--note", help="a paragraph quoted under the header (e.g. machine noise)")
    args = ap.parse_args()
    with open(args.raw) as f:
        raw = json.load(f)
    if args.note:
        raw["note"] = args.note
    md = render(raw)
    if args.out:
        with open(args.out, "w") as f:
            f.write(md + "\n")
    sys.stdout.write(md + "\n")


if __name__ == "__main__":
    main()
