#!/usr/bin/env python3
"""Client of bench/hostile.sh: opens COUNT hostile subscribers of one kind, one normal
subscriber (a URI template), then publishes UPDATES updates, each to a topic never seen
before (so that no (selector, topic) answer is cached), one at a time, GAP_MS apart, and
measures for each the time from sending the publish to the normal subscriber receiving the
event, and the time of a GET /healthz on a fresh connection. Prints one JSON line.

Hostile kinds (each subscriber's selectors are distinct from every other's, so nothing is
shared between them):
  none    no hostile subscriber
  attack  the selector of issue 11: "{+a}" ten thousand times (its last variable named
          after the subscriber), "+" percent-encoded so that it fits in a 64 KiB head
  wide    at the default limits, the largest automatons: 4 templates of 1024 states each,
          a leading "{+h}" (so that no literal prefix rules a topic out and the automaton
          never dies) then 31 "{/a,b,...}" expressions of 32 variables
  many    at the default limits, the most templates: 64 tiny ones, "{+h}I-K{+t}"
  pwide   protocol 1.0 URL patterns, at the default limits the largest automatons: 4
          patterns of about 1 020 states, "*://*/*:x(.{0,500}zIkK)" (no fixed text outside
          the regexp group, so that no topic is ruled out without running them)
  pmany   protocol 1.0, the most URL patterns: 64 tiny ones, "*://*/*:x(-I-K)"
With the p kinds the normal subscriber is a URL pattern too, https://bench.example/t/:id (the
hub must serve protocol 1.0).

Standard library only."""
import argparse
import base64
import hashlib
import hmac
import json
import select
import socket
import statistics
import time
import urllib.parse

HOST = "127.0.0.1"
PATH = "/.well-known/mercure"


def jwt(key, claims):
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(key.encode(), (head + "." + body).encode(), hashlib.sha256).digest()
    return head + "." + body + "." + b64(sig)


def hostile_query(kind, i):
    if kind in ("pwide", "pmany"):
        if kind == "pwide":
            pats = ["*://*/*:x(.{0,500}z%dk%d)" % (i, k) for k in range(4)]
        else:
            pats = ["*://*/*:x(-%d-%d)" % (i, k) for k in range(64)]
        return "&".join("match_urlpattern=" + urllib.parse.quote(p, safe="") for p in pats)
    if kind == "attack":
        return "topic=" + "{%2Ba}" * 9999 + "{%2Bv" + str(i) + "}"
    if kind == "wide":
        body = "{/%s}" % ",".join("a" * 32) * 31
        sels = ["{+h%d_%d}" % (i, k) + body for k in range(4)]
    elif kind == "many":
        sels = ["{+h}%d-%d{+t}" % (i, k) for k in range(64)]
    else:
        raise ValueError(kind)
    return "&".join("topic=" + urllib.parse.quote(s, safe="") for s in sels)


def read_head(sock, timeout=30):
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, rest


def open_subscriber(port, query):
    s = socket.create_connection((HOST, port))
    s.sendall(("GET %s?%s HTTP/1.1\r\nHost: bench\r\n\r\n" % (PATH, query)).encode())
    status, _, rest = read_head(s)
    return s, status, rest


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--hostile", default="none",
                    choices=["none", "attack", "wide", "many", "pnone", "pwide", "pmany"])
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--updates", type=int, default=200)
    ap.add_argument("--gap-ms", type=float, default=20)
    ap.add_argument("--label", default="")
    a = ap.parse_args()

    hostile, statuses = [], {}
    if a.hostile not in ("none", "pnone"):
        for i in range(a.count):
            s, status, _ = open_subscriber(a.port, hostile_query(a.hostile, i))
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                s.setblocking(False)
                hostile.append(s)
            else:
                s.close()

    if a.hostile.startswith("p"):
        normal_query = "match_urlpattern=" + urllib.parse.quote("https://bench.example/t/:id",
                                                                safe="")
    else:
        normal_query = "topic=" + urllib.parse.quote("https://bench.example/t/{id}", safe="")
    normal, status, buf = open_subscriber(a.port, normal_query)
    assert status == 200, status
    normal.setblocking(False)
    pub = socket.create_connection((HOST, a.port))
    pub.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    token = jwt(a.key, {"mercure": {"publish": ["*"]}})
    run = int(time.time() * 1000) % 1000000

    latencies, healthz = [], []
    for n in range(a.updates):
        topic = "https://bench.example/t/%d%06d" % (run, n)
        body = urllib.parse.urlencode({"topic": topic, "data": "seq-%d" % n}).encode()
        req = ("POST %s HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n"
               % (PATH, token, len(body))).encode() + body
        want = b"data: seq-%d\n" % n
        t0 = time.perf_counter()
        pub.sendall(req)
        answered, delivered = False, None
        pbuf = b""
        while not (answered and delivered is not None):
            readable, _, _ = select.select([pub, normal] + hostile, [], [], 60)
            if not readable:
                raise TimeoutError("no delivery of update %d in 60 s" % n)
            for s in readable:
                if s is pub:
                    pbuf += pub.recv(65536)
                    if b"\r\n\r\n" in pbuf:
                        head, _, rest = pbuf.partition(b"\r\n\r\n")
                        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                        if len(rest) >= length:
                            assert head.split(b" ", 2)[1] == b"200", head
                            answered = True
                elif s is normal:
                    buf += normal.recv(65536)
                    if delivered is None and want in buf:
                        delivered = time.perf_counter()
                        buf = buf[buf.index(want) + len(want):]
                else:
                    try:
                        s.recv(1 << 20)  # what hostile subscribers match, discarded
                    except BlockingIOError:
                        pass
        latencies.append((delivered - t0) * 1000)
        h0 = time.perf_counter()
        hc = socket.create_connection((HOST, a.port))
        hc.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        hstatus, _, _ = read_head(hc)
        healthz.append((time.perf_counter() - h0) * 1000)
        hc.close()
        assert hstatus == 200, hstatus
        time.sleep(a.gap_ms / 1000)

    print(json.dumps({
        "label": a.label, "hostile": a.hostile, "accepted": len(hostile),
        "statuses": statuses,
        "p50_ms": round(statistics.median(latencies), 3),
        "p90_ms": round(percentile(latencies, 90), 3),
        "p99_ms": round(percentile(latencies, 99), 3),
        "max_ms": round(max(latencies), 3),
        "healthz_p50_ms": round(statistics.median(healthz), 3),
        "healthz_max_ms": round(max(healthz), 3),
    }, separators=(",", ":")))


if __name__ == "__main__":
    main()
