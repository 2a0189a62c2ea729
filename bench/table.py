#!/usr/bin/env python3
"""Prints the bench/run.sh results as a Markdown table with ratios to the raw write floor,
to nchan and, when it ran, to a baseline build of Quicksilver, measured in the same run."""
import json
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
by = {r["label"]: r for r in rows}
scenarios = []
for r in rows:
    s = r["label"].split("/")[0] if "/" in r["label"] else r["label"]
    s = r["label"].rsplit("/", 1)[0]
    if s not in scenarios:
        scenarios.append(s)


def get(s, t, k):
    r = by.get("%s/%s" % (s, t))
    return r.get(k) if r else None


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        return ("%.1f" % v if v < 100 else "%.0f" % v) + unit
    return str(v) + unit


def ratio(a, b):
    return "%.2f" % (a / b) if a and b else "-"


print("| scenario | target | mem/sub | deliveries/s | CPU/delivery | deliveries per CPU-s | "
      "p50 | p99 | max | losses | publishes/s | publish p99 |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for s in scenarios:
    for t in ("quicksilver", "baseline", "nchan", "floor"):
        r = by.get("%s/%s" % (s, t))
        if not r:
            continue
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            s, t, fmt(r.get("mem_per_sub_bytes"), " B"), fmt(r.get("deliveries_per_s")),
            fmt(r.get("cpu_per_delivery_us"), " us"), fmt(r.get("deliveries_per_cpu_s")),
            fmt(r.get("lat_p50_us"), " us"), fmt(r.get("lat_p99_us"), " us"),
            fmt(r.get("lat_max_us"), " us"), fmt(r.get("losses")),
            fmt(r.get("publishes_per_s")), fmt(r.get("publish_p99_us"), " us")))
print()
print("| scenario | Quicksilver / floor (deliveries per CPU-s) | Quicksilver / nchan (deliveries "
      "per CPU-s) | memory/sub: nchan / Quicksilver | Quicksilver / baseline (deliveries per "
      "CPU-s) | memory/sub: Quicksilver / baseline |")
print("|---|---|---|---|---|---|")
for s in scenarios:
    q = get(s, "quicksilver", "deliveries_per_cpu_s")
    qm = get(s, "quicksilver", "mem_per_sub_bytes")
    print("| %s | %s | %s | %s | %s | %s |" % (
        s, ratio(q, get(s, "floor", "deliveries_per_cpu_s")),
        ratio(q, get(s, "nchan", "deliveries_per_cpu_s")),
        ratio(get(s, "nchan", "mem_per_sub_bytes"), qm),
        ratio(q, get(s, "baseline", "deliveries_per_cpu_s")),
        ratio(qm, get(s, "baseline", "mem_per_sub_bytes"))))
