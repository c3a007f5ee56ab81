#!/usr/bin/env python3
"""Summarises a compare.sh output directory as Markdown: one table per scenario, every
configuration measured in the same run, with ratios to `memory`, `redis`, and to `baseline` (or
`redis-batch1`) and the Redis commands each request cost (from INFO commandstats)."""

import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])
CONFIG_ORDER = ["redis", "redis-batch1", "baseline", "redlock", "redlock-nofsync", "redlock-2down",
                "memory"]


def commandstats(path):
    """{command: calls} from an `INFO commandstats` dump."""
    calls = {}
    if not path.exists():
        return calls
    for line in path.read_text().splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_"):].split(":", 1)
            fields = dict(kv.split("=") for kv in rest.split(","))
            calls[name] = int(fields["calls"])
    return calls


def commands_per_request(calls, requests):
    """Commands per purchase request, ignoring the loadgen's own set-up and read-back."""
    ignore = {"config", "info", "hgetall", "zrevrange", "hmget", "hget", "zrange", "incr",
              "get", "ping", "exists", "psubscribe", "subscribe", "unsubscribe",
              "client", "hello", "select", "script"}
    counted = {name: n for name, n in calls.items()
               if name not in ignore and not name.startswith("config")}
    total = sum(counted.values())
    detail = ", ".join(f"{name} {n / requests:.2f}" for name, n in sorted(counted.items()))
    return total / requests, detail


scenarios = sorted({p.name.split(".")[0] for p in out.glob("*.json")},
                   key=lambda s: ["bf-w1000", "bf-w0", "sus-c1", "sus-c64", "sus-c256",
                                  "multi-8", "sus-64p"].index(s) if s in
                   ["bf-w1000", "bf-w0", "sus-c1", "sus-c64", "sus-c256", "multi-8",
                    "sus-64p"] else 99)
print((out / "commands.txt").read_text().split("==")[0].strip().replace("\n", "  \n"))
for scenario in scenarios:
    reports = {}
    for config in CONFIG_ORDER:
        path = out / f"{scenario}.{config}.json"
        if path.exists():
            reports[config] = json.loads(path.read_text())
    if not reports:
        continue
    print(f"\n### {scenario}\n")
    print("| config | requests | 201 | 409 | other | purchases/s | × memory | × redis | × batch1 "
          "| × baseline | p50 ms | p99 ms | max ms | first K served | oversell | lost "
          "| /health req/s | Redis cmds / request |")
    print("|" + "---|" * 18)
    for config, r in reports.items():
        pps = r["purchases_per_sec"]

        def ratio(other):
            o = reports.get(other)
            if o is None or other == config or not o["purchases_per_sec"]:
                return ""
            return f"{pps / o['purchases_per_sec']:.2f}"

        lat = r["latency_ms"]
        fair = r["fairness"]
        calls = commandstats(out / f"{scenario}.{config}.commandstats")
        cmds = ""
        if calls and r["requests"]:
            per, detail = commands_per_request(calls, r["requests"])
            cmds = f"{per:.2f} ({detail})"
        health = r.get("health_requests_per_sec")
        print(f"| {config} | {r['requests']} | {r['accepted']} | {r['refused_sold_out']} "
              f"| {r['other_errors']} | {pps:,.0f} | {ratio('memory')} | {ratio('redis')} "
              f"| {ratio('redis-batch1')} "
              f"| {ratio('baseline')} | {lat['p50']:.2f} | {lat['p99']:.2f} | {lat['max']:.1f} "
              f"| {fair['first_k_accepted']}/{fair['first_k']} | {r['oversell']} | {r['lost']} "
              f"| {f'{health:,.0f}' if health else ''} | {cmds} |")
