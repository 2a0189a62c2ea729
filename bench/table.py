#!/usr/bin/env python3
"""Prints the bench/run.sh results as a Markdown table with ratios to the raw write floor,
to nchan and, when it ran, to a baseline build of Quicksilver, measured in the same run.
For the TLS scenarios (targets such as quicksilver+tls, nchan+h2): Quicksilver against
nchan over the same protocol, TLS against plain HTTP, and the cost of an HTTP/2 stream."""
import json
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
by = {r["label"]: r for r in rows}
scenarios, targets = [], []
for r in rows:
    s, t = r["label"].rsplit("/", 1)
    if s not in scenarios:
        scenarios.append(s)
    if t not in targets:
        targets.append(t)
# Quicksilver first, then its baseline, nchan, the floor; each server plain, then +tls, +h2.
order = {"quicksilver": 0, "baseline": 1, "nchan": 2, "floor": 3}
targets.sort(key=lambda t: (order.get(t.split("+")[0], 9), t.count("+"), t))


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
    for t in targets:
        r = by.get("%s/%s" % (s, t))
        if not r:
            continue
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            s, t, fmt(r.get("mem_per_sub_bytes"), " B"), fmt(r.get("deliveries_per_s")),
            fmt(r.get("cpu_per_delivery_us"), " us"), fmt(r.get("deliveries_per_cpu_s")),
            fmt(r.get("lat_p50_us"), " us"), fmt(r.get("lat_p99_us"), " us"),
            fmt(r.get("lat_max_us"), " us"), fmt(r.get("losses")),
            fmt(r.get("publishes_per_s")), fmt(r.get("publish_p99_us"), " us")))

plain = [s for s in scenarios
         if get(s, "quicksilver", "label") and any(get(s, t, "label") for t in ("nchan", "floor",
                                                                              "baseline"))]
if plain:
    print()
    print("| scenario | Quicksilver / floor (deliveries per CPU-s) | Quicksilver / nchan "
          "(deliveries per CPU-s) | memory/sub: nchan / Quicksilver | Quicksilver / baseline "
          "(deliveries per CPU-s) | memory/sub: Quicksilver / baseline |")
    print("|---|---|---|---|---|---|")
    for s in plain:
        q = get(s, "quicksilver", "deliveries_per_cpu_s")
        qm = get(s, "quicksilver", "mem_per_sub_bytes")
        print("| %s | %s | %s | %s | %s | %s |" % (
            s, ratio(q, get(s, "floor", "deliveries_per_cpu_s")),
            ratio(q, get(s, "nchan", "deliveries_per_cpu_s")),
            ratio(get(s, "nchan", "mem_per_sub_bytes"), qm),
            ratio(q, get(s, "baseline", "deliveries_per_cpu_s")),
            ratio(qm, get(s, "baseline", "mem_per_sub_bytes"))))

# TLS and HTTP/2: Quicksilver beside nchan over the same protocol, and beside itself over
# plain HTTP/1.1.
protos = sorted({t.split("+", 1)[1] for t in targets if "+" in t})
tls_scenarios = [s for s in scenarios if any(get(s, "quicksilver+" + p, "label") for p in protos)]
if tls_scenarios:
    print()
    print("| scenario | protocol | Quicksilver / nchan (deliveries per CPU-s) | CPU per delivery: "
          "Quicksilver / nchan | memory/sub: Quicksilver / nchan | Quicksilver over it / over "
          "plain HTTP (deliveries per CPU-s) | memory/sub: Quicksilver over it − over plain HTTP |")
    print("|---|---|---|---|---|---|---|")
    for s in tls_scenarios:
        for p in protos:
            q = "quicksilver+" + p
            if not get(s, q, "label"):
                continue
            qm, pm = get(s, q, "mem_per_sub_bytes"), get(s, "quicksilver", "mem_per_sub_bytes")
            print("| %s | %s | %s | %s | %s | %s | %s |" % (
                s, p, ratio(get(s, q, "deliveries_per_cpu_s"),
                            get(s, "nchan+" + p, "deliveries_per_cpu_s")),
                ratio(get(s, q, "cpu_per_delivery_us"),
                      get(s, "nchan+" + p, "cpu_per_delivery_us")),
                ratio(qm, get(s, "nchan+" + p, "mem_per_sub_bytes")),
                ratio(get(s, q, "deliveries_per_cpu_s"),
                      get(s, "quicksilver", "deliveries_per_cpu_s")),
                fmt(qm - pm, " B") if qm is not None and pm is not None else "-"))

# HTTP/2 streams: C connections with 1 stream each, then with N: the memory of a connection
# (with its stream) and of each further stream.
pairs = {}
for s in scenarios:
    if s.startswith("T2-h2-") and "x" in s:
        conns, n = s[len("T2-h2-"):].split("x")
        pairs.setdefault(conns, {})[int(n)] = s
for conns, ns in pairs.items():
    if 1 not in ns or len(ns) < 2:
        continue
    print()
    print("| server | connections | streams | hub RSS growth | per connection (1 stream) "
          "| per further stream |")
    print("|---|---|---|---|---|---|")
    many = max(ns)
    for server in ("quicksilver", "baseline", "nchan"):
        one = by.get("%s/%s+h2x1" % (ns[1], server))
        more = by.get("%s/%s+h2x%d" % (ns[many], server, many))
        if not one or not more:
            continue
        g1 = (one["hub_rss_subs_kb"] - one["hub_rss_before_kb"]) * 1024
        gn = (more["hub_rss_subs_kb"] - more["hub_rss_before_kb"]) * 1024
        c = int(conns)
        extra = more["subscribers"] - one["subscribers"]
        print("| %s | %d | 1 | %s | %s | |" % (server, c, fmt(g1, " B"), fmt(g1 / c, " B")))
        print("| %s | %d | %d | %s | | %s |" % (server, c, many, fmt(gn, " B"),
                                                 fmt((gn - g1) / extra, " B") if extra else "-"))
