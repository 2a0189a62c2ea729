"""The scenarios every cluster transport's tests run (test_redis.py, test_postgres.py,
test_kafka.py, test_pulsar.py), written once, and the helpers those files share.

A scenario takes what really differs between transports: `cluster`, the test file's fixture
(cluster(n, extra=..., query=...) -> [hubs] sharing one stream, table or topic), or hubs
the test started itself; the name of the presence TTL option; callables that kill, restart,
freeze or thaw the broker; timeouts; and callables that make the transport's own checks
(against its table, stream or topic) at the point of the scenario where they belong. The
test functions stay in their files, under their names, and call these."""

import json
import socket
import subprocess
import threading
import time
import urllib.parse

import qs
import qs1
from qs import T

WATCH = "/.well-known/mercure/subscriptions{/topic}{/subscriber}"

BASE_ENV = {"SERVER_NAME": "127.0.0.1:0", "MERCURE_PUBLISHER_JWT_KEY": qs.PUB_KEY,
            "MERCURE_SUBSCRIBER_JWT_KEY": qs.SUB_KEY}


# --------------------------------------------------------------------------- helpers

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthz(hub):
    return hub.request("GET", "/healthz", timeout=T(5))


def publish_id(hub, topic, data, **kw):
    return qs.publish_ok(hub, [topic], data, **kw)


def drain(stream, n, timeout=None):
    stream.wait_for(lambda: len(stream.events) >= n, timeout or T(10), "%d events" % n)
    return stream.events[:n]


def api(hub, path="/.well-known/mercure/subscriptions"):
    r = hub.request("GET", path, headers=[("Authorization", "Bearer " + qs.sub_token(["*"]))])
    assert r.status == 200, r
    return json.loads(r.body)["subscriptions"]


def refused(tmp_path, url=None, extra=None, env=None, timeout=None):
    """Runs a hub that must refuse to start (url: MERCURE_TRANSPORT_URL, extra:
    MERCURE_EXTRA_DIRECTIVES, env: more variables; timeout: for the hub to give up, T(60)
    unless given); returns its stderr."""
    env = dict(BASE_ENV, **(env or {}))
    if url:
        env["MERCURE_TRANSPORT_URL"] = url
    if extra:
        env["MERCURE_EXTRA_DIRECTIVES"] = extra
    p = qs.run_mercure(["run"], tmp_path, env=env, timeout=timeout or T(60))
    assert p.returncode > 0, (p.returncode, p.stderr)  # refused, not killed by a signal
    return p.stderr


def openssl(d, *args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=str(d))


def make_certs(d):
    """In folder d: a test CA, a certificate it signed for 127.0.0.1 and localhost, and
    another CA, that did not sign it. Returns the files: cert, key, ca, other."""
    d.mkdir(parents=True, exist_ok=True)
    openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=qs test CA", "-keyout", "ca.key", "-out", "ca.pem")
    openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout",
            "server.key", "-out", "server.csr")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem")
    openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=other CA", "-keyout", "other.key", "-out", "other.pem")
    return {k: str(d / v) for k, v in (("cert", "server.pem"), ("key", "server.key"),
                                       ("ca", "ca.pem"), ("other", "other.pem"))}


# --------------------------------------------------------------------------- delivery

def one_order_with_the_same_ids(cluster, transport, query="", check=None):
    """Three nodes publish 25 updates each at once: every node delivers the 75 in one order,
    with the acknowledged ids, each publisher's in its order. check(ids), when given, then
    checks the delivered ids against what the transport itself recorded."""
    hubs = cluster(3, query=query)
    assert all(h.transport == transport for h in hubs)
    subs = [qs.open_stream(h, ["urn:order"]) for h in hubs]
    acked = [[] for _ in hubs]

    def publisher(i):
        with hubs[i].conn() as c:
            for k in range(25):
                acked[i].append(qs.publish_ok(hubs[i], ["urn:order"], "n%d-%d" % (i, k),
                                              conn=c))

    threads = [threading.Thread(target=publisher, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(T(30))
    orders = []
    for s in subs:
        events = drain(s, 75)
        orders.append([(e.id, e.data) for e in events])
        s.close()
    assert orders[0] == orders[1] == orders[2], "nodes disagree on the order"
    ids = [i for i, _ in orders[0]]
    assert sorted(ids) == sorted(sum(acked, [])), "delivered ids differ from acknowledged ids"
    for i in range(3):  # each publisher's updates keep their order
        pos = [ids.index(x) for x in acked[i]]
        assert pos == sorted(pos)
        assert all(qs.UUID_V7_RE.match(x) for x in acked[i])
    if check:
        check(ids)


def last_event_id_on_another_node(cluster):
    """Last-Event-ID (generated and custom ids, `earliest`, an unknown id) on a node other
    than the one that published: exactly what was missed is replayed."""
    n1, n2, n3 = cluster(3)
    # A stream opened on node 3 receives what node 3's bus delivers after it opened: the
    # probe shows node 3 has delivered `first` before `s` opens.
    with qs.open_stream(n3, ["urn:h"]) as probe:
        first = [publish_id(n1, "urn:h", "before-%d" % i) for i in range(3)]
        drain(probe, 3)
    with qs.open_stream(n3, ["urn:h"]) as s:
        seen = [publish_id(n3, "urn:h", "seen-%d" % i) for i in range(3)]
        assert [e.id for e in drain(s, 3)] == seen
    # Missed while disconnected: generated and custom ids, published on node 1 (and an
    # update of another topic in between). The probe shows node 2 has delivered them.
    with qs.open_stream(n2, ["urn:h"]) as probe:
        missed = [publish_id(n1, "urn:h", "m0"), publish_id(n1, "urn:h", "m1", id="custom-1"),
                  publish_id(n1, "urn:h", "m2")]
        publish_id(n1, "urn:other", "not mine")
        missed.append(publish_id(n1, "urn:h", "m3", id="custom-2"))
        drain(probe, 4)
    with qs.open_stream(n2, ["urn:h"], headers=[("Last-Event-ID", seen[-1])]) as s:
        assert s.response.header("Last-Event-ID") == seen[-1]
        live = publish_id(n3, "urn:h", "live")
        got = [e.id for e in s.events_until(live, T(10))]
        assert got == missed + [live]
    # A custom id works as a cursor on every node.
    with qs.open_stream(n3, ["urn:h"], extra_query=[("lastEventID", "custom-1")]) as s:
        marker = publish_id(n1, "urn:h", "marker")
        assert [e.id for e in s.events_until(marker, T(10))] == [missed[2], missed[3], live,
                                                                marker]
    # `earliest` gives the whole history, on any node.
    # (Node 2 delivers `end` before the next stream opens there.)
    with qs.open_stream(n2, ["urn:h"], extra_query=[("lastEventID", "earliest")]) as s:
        end = publish_id(n1, "urn:h", "end")
        assert [e.id for e in s.events_until(end, T(10))] == (first + seen + missed +
                                                              [live, marker, end])
    # An unknown id replays nothing and says so.
    with qs.open_stream(n2, ["urn:h"], headers=[("Last-Event-ID", "nope")]) as s:
        assert s.response.header("Last-Event-ID") == "earliest"
        nxt = publish_id(n1, "urn:h", "next")
        assert [e.id for e in s.events_until(nxt, T(10))] == [nxt]


def duplicated_custom_id(cluster):
    """A custom id published twice, on two nodes: as a cursor, its first occurrence."""
    n1, n2 = cluster(2)
    a = publish_id(n1, "urn:d", "a", id="dup")
    publish_id(n2, "urn:d", "b")
    c = publish_id(n2, "urn:d", "c", id="dup")
    assert a == c == "dup"
    with qs.open_stream(n2, ["urn:d"], headers=[("Last-Event-ID", "dup")]) as s:
        end = publish_id(n1, "urn:d", "end")
        assert [e.data for e in s.events_until(end, T(10))] == ["b", "c", "end"]


def private_updates_across_nodes(cluster):
    """A private update reaches only the subscribers allowed its topic, on every node, live
    and in the history."""
    n1, n2, n3 = cluster(3)
    anon = qs.open_stream(n2, ["urn:p"])
    allowed = qs.open_stream(n3, ["urn:p"], token=qs.sub_token(["urn:p"]))
    other = qs.open_stream(n3, ["urn:p"], token=qs.sub_token(["urn:elsewhere"]))
    secret = publish_id(n1, "urn:p", "secret", private=True)
    public = publish_id(n1, "urn:p", "public")
    assert [e.id for e in allowed.events_until(public, T(10))] == [secret, public]
    assert [e.id for e in anon.events_until(public, T(10))] == [public]
    assert [e.id for e in other.events_until(public, T(10))] == [public]
    for s in (anon, allowed, other):
        s.close()
    # History on another node is authorized the same way.
    with qs.open_stream(n3, ["urn:p"], extra_query=[("lastEventID", "earliest")]) as s:
        end = publish_id(n2, "urn:p", "end")
        assert [e.id for e in s.events_until(end, T(10))] == [public, end]
    tok = qs.sub_token(["urn:p"])
    with qs.open_stream(n2, ["urn:p"], token=tok,
                        extra_query=[("lastEventID", "earliest")]) as s:
        end2 = publish_id(n1, "urn:p", "end2")
        assert [e.id for e in s.events_until(end2, T(10))] == [secret, public, end, end2]


def foreign_message_is_skipped(cluster, produce):
    """produce() puts a message that is not an update in the cluster's topic: live and in
    replays, the nodes skip it and say so."""
    n1, n2 = cluster(2)
    with qs.open_stream(n2, ["urn:f"]) as s:
        a = publish_id(n1, "urn:f", "a")
        produce()
        b = publish_id(n1, "urn:f", "b")
        assert [e.id for e in s.events_until(b, T(10))] == [a, b]
    with qs.open_stream(n1, ["urn:f"], headers=[("Last-Event-ID", a)]) as s:
        c = publish_id(n2, "urn:f", "c")
        assert [e.id for e in s.events_until(c, T(10))] == [b, c]
    assert "not a Quicksilver update" in n2.stderr()


def long_history_in_batches(cluster, timeout):
    """2 500 updates published on one node, replayed on another from the 100th; timeout:
    for the replay and the live update after it."""
    n1, n2 = cluster(2)
    ids = []
    with n1.conn() as c:
        for i in range(2500):
            ids.append(qs.publish_ok(n1, ["urn:long"], "x" * 50 + str(i), conn=c))
    with qs.open_stream(n2, ["urn:long"], headers=[("Last-Event-ID", ids[99])]) as s:
        live = publish_id(n1, "urn:long", "live")
        got = [e.id for e in s.events_until(live, timeout)]
        assert got == ids[100:] + [live]


def late_node_knows_old_ids(cluster, tput, url, count, tput_timeout, start_bound):
    """A node started after `count` more updates (written by tput, build/transport_tput, to
    url, the cluster's topic, with no HTTP) indexes them all within start_bound and
    replays from the oldest."""
    (n1,) = cluster(1)
    old = [publish_id(n1, "urn:old", "old-%d" % i) for i in range(3)]
    p = subprocess.run([tput, url, str(count), "256"], capture_output=True, text=True,
                       timeout=tput_timeout)
    assert p.returncode == 0, p.stderr
    t0 = time.monotonic()
    (late,) = cluster(1)
    started = time.monotonic() - t0
    assert "%d ids indexed" % (count + 3) in late.stderr(), late.stderr()
    assert started < start_bound
    with qs.open_stream(late, ["urn:old"], headers=[("Last-Event-ID", old[0])]) as s:
        assert s.response.header("Last-Event-ID") == old[0]
        live = publish_id(n1, "urn:old", "live")
        assert [e.id for e in s.events_until(live, T(30))] == old[1:] + [live]


def history_after_retention(hub, ids, kept):
    """ids: the updates published to urn:ret, of which retention kept the last `kept`: a
    trimmed id is unknown; a retained one replays exactly what follows it; `earliest`
    replays what was kept."""
    with qs.open_stream(hub, ["urn:ret"], headers=[("Last-Event-ID", ids[0])]) as s:
        assert s.response.header("Last-Event-ID") == "earliest"
    with qs.open_stream(hub, ["urn:ret"], headers=[("Last-Event-ID", ids[-5])]) as s:
        assert [e.id for e in drain(s, 4)] == ids[-4:]
    with qs.open_stream(hub, ["urn:ret"], extra_query=[("lastEventID", "earliest")]) as s:
        assert [e.id for e in drain(s, kept)] == ids[-kept:]


# --------------------------------------------------------------------------- outages

def publishes_through_an_outage(hubs, subs, kill, restart, transport, refusal_text, *,
                                publish_timeout, pause, before, unhealthy, healthy, after,
                                join, publish_bound=None, kill_bound=None, refusal_bound=None):
    """Three publishers, one per hub, publish to urn:k (ids k-<publisher>-<n>) while kill()
    takes the broker down and restart() brings it back on the same data. During the
    outage every hub says `<transport> unavailable` (/healthz, the metric), a publish is
    refused with 503 (its text holding refusal_text), and the subscribers `subs` stay
    connected; after it, the hubs are healthy again and publish. Returns the acknowledged
    ids, in the order of their acknowledgements.

    The waits, in seconds (T(...)): publish_timeout, each publish's; pause, after a
    refusal; before, for 60 publishes before the outage; unhealthy and healthy, for each
    hub's /healthz to say so; after, for 60 publishes after the restart; join, for each
    publisher to end. Bounds, when given: publish_bound, on the refused publish during the
    outage; kill_bound, from the kill to that refusal; refusal_bound, on every refused
    publish."""
    acked, refusals = [], []
    stop = threading.Event()
    lock = threading.Lock()

    def publisher(i):
        k = 0
        while not stop.is_set():
            uid = "k-%d-%d" % (i, k)
            k += 1
            try:
                t0 = time.monotonic()
                r = qs.publish(hubs[i], ["urn:k"], uid, id=uid, timeout=publish_timeout)
                took = time.monotonic() - t0
            except OSError:
                continue
            with lock:
                (acked if r.status == 200 else refusals).append((uid, r.status, r.text, took))
            if r.status != 200:
                time.sleep(pause)

    threads = [threading.Thread(target=publisher, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        qs.wait_until(lambda: len(acked) > 60, before, what="publishes before the outage")
        kill()
        t_kill = time.monotonic()
        for h in hubs:
            r = qs.wait_until(lambda: (lambda x: x if x.status == 503 else None)(healthz(h)),
                              unhealthy, what="/healthz 503")
            assert "%s unavailable" % transport in r.text, r.text
            assert h.metric("mercure_transport_healthy", {"transport": transport}) == 0
        t0 = time.monotonic()
        r = qs.publish(hubs[0], ["urn:k"], "during the outage", timeout=T(10))
        assert r.status == 503 and refusal_text in r.text, r
        if publish_bound is not None:
            assert time.monotonic() - t0 < publish_bound
        if kill_bound is not None:
            assert time.monotonic() - t_kill < kill_bound
        for s in subs:
            s.collect(0.2)
            assert not s.eof, "a subscriber was disconnected during the outage"
        with lock:
            during = len(acked)
        restart()
        for h in hubs:
            qs.wait_until(lambda: healthz(h).status == 200, healthy, what="/healthz 200 again")
            assert h.metric("mercure_transport_healthy", {"transport": transport}) == 1
        qs.wait_until(lambda: len(acked) > during + 60, after, what="publishes after restart")
    finally:
        stop.set()
        for t in threads:
            t.join(join)
    assert any(st == 503 for _, st, _, _ in refusals), "no publish was refused during the outage"
    assert all(transport in text for _, _, text, _ in refusals), refusals[:3]
    if refusal_bound is not None:
        assert max(took for _, _, _, took in refusals) < refusal_bound, \
            sorted(refusals, key=lambda x: x[3])[-3:]
    return [uid for uid, _, _, _ in acked]


def delivered_once_in_one_order(hubs, subs, acked, timeout):
    """After publishes_through_an_outage: up to a marker (waited for `timeout`), every
    subscriber got each acknowledged update once, all in one order, each publisher's in
    its order. Closes the subscribers; returns that order."""
    marker = publish_id(hubs[1], "urn:k", "marker", id="marker")
    orders = []
    for s in subs:
        got = [e.id for e in s.events_until(marker, timeout)]
        assert len(got) == len(set(got)), "an update was delivered twice"
        missing = set(acked) - set(got)
        assert not missing, "acknowledged but never delivered: %r" % sorted(missing)[:5]
        orders.append(got)
        s.close()
    assert orders[0] == orders[1] == orders[2]
    for i in range(3):  # each publisher's acknowledged updates arrive in their order
        mine = [x for x in orders[0] if x.startswith("k-%d-" % i)]
        assert mine == sorted(mine, key=lambda x: int(x.split("-")[2]))
    return orders[0]


def clean_exit_while_down(hubs, kill):
    """Hubs (with `subscriptions`) whose server kill() took down stop at once, exit 0."""
    s = qs.open_stream(hubs[0], ["urn:x"])
    kill()
    qs.wait_until(lambda: healthz(hubs[0]).status == 503, T(5), what="unhealthy")
    t0 = time.monotonic()
    for h in hubs:
        assert h.stop() == 0, h.stderr()
    assert time.monotonic() - t0 < T(8)
    s.close()


def replay_that_cannot_be_served(hub, kill):
    """A reconnection whose history cannot be read (kill() took the server down) is refused
    as the reference refuses a subscriber it cannot add: 503, before any stream byte."""
    first = publish_id(hub, "urn:r503", "x")
    kill()
    qs.wait_until(lambda: healthz(hub).status == 503, T(5), what="unhealthy")
    r = hub.request("GET", qs.subscribe_target(["urn:r503"]),
                    headers=[("Last-Event-ID", first)], timeout=T(15))
    assert r.status == 503, r
    assert r.body == b"Service Unavailable\n"
    assert r.header("Connection") == "close"


def hung_server(hub, freeze, thaw, transport, bound):
    """freeze() stops the server's processes (SIGSTOP), thaw() resumes them: a publish is
    refused within bound (the hub's timeout is 500 ms), the hub is unhealthy, and once the
    server is back it delivers again."""
    with qs.open_stream(hub, ["urn:hung"]) as s:
        freeze()
        try:
            t0 = time.monotonic()
            r = qs.publish(hub, ["urn:hung"], "x", timeout=T(10))
            assert r.status == 503 and "%s unavailable" % transport in r.text, r
            assert time.monotonic() - t0 < bound
            qs.wait_until(lambda: healthz(hub).status == 503, T(5), what="unhealthy")
        finally:
            thaw()
        qs.wait_until(lambda: healthz(hub).status == 200, T(10), what="healthy again")
        uid = publish_id(hub, "urn:hung", "after")
        got = [e.id for e in s.events_until(uid, T(10))]
        assert got[-1] == uid and len(got) <= 2  # the timed-out publish may have been stored


# --------------------------------------------------------------------------- presence
# ttl: the name of the transport's presence TTL option (presence_ttl, mercure_presence_ttl).

def presence_across_nodes(cluster, ttl, check_registry=None):
    """Subscriptions on nodes 1 and 3 are listed on every node and announced to a watcher
    on node 2; node 3, killed, leaves no goodbye: its entries expire and one surviving node
    publishes their departures, once. check_registry(), when given, checks the
    transport's registry while both subscriptions are listed."""
    extra = ["subscriptions", "heartbeat 500ms"]
    n1, n2, n3 = cluster(3, extra=extra, query=ttl + "=2s")
    with qs.open_stream(n2, [WATCH], token=qs.sub_token([WATCH])) as w:
        a = qs.open_stream(n1, ["urn:on-1"])
        b = qs.open_stream(n3, ["urn:on-3"], token=qs.sub_token(["urn:x"], payload={"u": 3}))
        w.wait_for(lambda: len(w.events) >= 2, T(10), "the arrivals on nodes 1 and 3")
        arrivals = {json.loads(e.data)["topic"]: json.loads(e.data) for e in w.events[:2]}
        assert set(arrivals) == {"urn:on-1", "urn:on-3"}
        assert all(d["active"] for d in arrivals.values())

        def topics_on(hub):  # the watcher on node 2 is a subscriber too
            return sorted(s["topic"] for s in api(hub) if s["topic"] != WATCH)

        for h in (n1, n2, n3):
            qs.wait_until(lambda: topics_on(h) == ["urn:on-1", "urn:on-3"], T(5),
                          what="both subscriptions listed on every node")
        listed = {s["topic"]: s for s in api(n2)}
        assert listed["urn:on-3"]["payload"] == {"u": 3}
        assert listed["urn:on-3"]["subscriber"] == arrivals["urn:on-3"]["subscriber"]
        if check_registry:
            check_registry()
        sid = urllib.parse.quote(arrivals["urn:on-1"]["subscriber"], safe="")
        r = n3.request("GET", "/.well-known/mercure/subscriptions/urn%3Aon-1/" + sid,
                       headers=[("Authorization", "Bearer " + qs.sub_token(["*"]))])
        assert r.status == 200 and json.loads(r.body)["topic"] == "urn:on-1"

        # A node killed with SIGKILL leaves no goodbye: its entries expire (presence_ttl).
        t0 = time.monotonic()
        n3.kill()
        b.close()
        qs.wait_until(lambda: topics_on(n2) == ["urn:on-1"], T(10), interval=0.1,
                      what="the killed node's subscription to expire")
        assert time.monotonic() - t0 < T(2 + 2), "not expired within presence_ttl"
        assert topics_on(n1) == ["urn:on-1"]

        # ...and one surviving node publishes its subscribers' departures, once, within
        # presence_ttl, a refresh period (a third of it) and a claim's round trip.
        def departures(topic):
            return [json.loads(e.data) for e in w.events
                    if not json.loads(e.data)["active"] and json.loads(e.data)["topic"] == topic]
        w.wait_for(lambda: departures("urn:on-3"), T(10), "the killed node's departure")
        assert time.monotonic() - t0 < T(2 + 2 / 3 + 2), "departure not published in time"
        gone = departures("urn:on-3")[0]
        assert gone["subscriber"] == arrivals["urn:on-3"]["subscriber"]
        assert gone["payload"] == {"u": 3}
        assert gone["id"] == arrivals["urn:on-3"]["id"]

        # A subscriber leaving a live node is forgotten at once, everywhere, with an event.
        a.close()
        w.wait_for(lambda: departures("urn:on-1"), T(5), "the departure from node 1")
        time.sleep(1)  # a second publication of the dead node's departures would be here
        assert len(departures("urn:on-3")) == 1, "a dead node's departures published twice"
        qs.wait_until(lambda: topics_on(n2) == [], T(5), what="the departure in node 2's API")


def departures_of_a_dead_cluster(cluster, ttl, stored=None, outlive_lease=False,
                                 check_left=None):
    """The only node is killed with a subscriber; a node started afterwards publishes that
    subscriber's departure, once.

    stored(): true once the node's entry is where the other nodes read it (a node lists its
    own subscribers from memory, and a node killed before writing its entry leaves nothing
    for the others to take); without it, half a second is given. outlive_lease: the new
    node starts only once the dead node's lease has expired. check_left(), when given,
    checks what the registry keeps at the end."""
    extra = ["subscriptions"]
    (n1,) = cluster(1, extra=extra, query=ttl + "=1s")
    s = qs.open_stream(n1, ["urn:orphan"], token=qs.sub_token(["urn:x"], payload={"o": 1}))
    listed = lambda h: [x["topic"] for x in api(h) if x["topic"] != WATCH]  # noqa: E731
    qs.wait_until(lambda: listed(n1) == ["urn:orphan"], T(5), what="listed")
    if stored:
        qs.wait_until(stored, T(5), what="the entry written where the other nodes read it")
    else:
        time.sleep(0.5)  # listed at once on its node; in the topic a moment later
    n1.kill()
    s.close()
    if outlive_lease:
        time.sleep(1.2)  # the lease expires: nobody is left to publish the departure
    (n2,) = cluster(1, extra=extra, query=ttl + "=1s")
    # The new node may reap at its first lease refresh, before this stream is open: read the
    # history from the start (the departure is an update like any other) instead of racing it.
    with qs.open_stream(n2, [WATCH], token=qs.sub_token([WATCH]),
                        extra_query=[("lastEventID", "earliest")]) as w:
        def gone():
            return [d for d in (json.loads(e.data) for e in w.events)
                    if d["topic"] == "urn:orphan" and d["active"] is False]
        w.wait_for(gone, T(10), "the departure published by the new node")
        time.sleep(1)  # a second publication of the same departure would arrive by now
        assert len(gone()) == 1 and gone()[0]["payload"] == {"o": 1}
        assert listed(n2) == []
        if check_left:
            check_left()


def a_cleanly_stopped_node_leaves(cluster, ttl, before_stop=None, after_stop=None):
    """A node stopped with SIGTERM removes its entries at once (not after the TTL) and
    publishes its subscribers' departures before it leaves. before_stop() and after_stop(),
    when given, check the transport's registry before the stop and once the entry is gone
    from node 2's list."""
    n1, n2 = cluster(2, extra=["subscriptions"], query=ttl + "=30s")
    w = qs.open_stream(n2, [WATCH], token=qs.sub_token([WATCH]))
    s = qs.open_stream(n1, ["urn:bye"])
    listed = lambda: [x["topic"] for x in api(n2) if x["topic"] != WATCH]  # noqa: E731
    qs.wait_until(lambda: listed() == ["urn:bye"], T(5), what="listed")
    if before_stop:
        before_stop()
    assert n1.stop() == 0
    qs.wait_until(lambda: listed() == [], T(3), what="removed without waiting for the TTL")
    if after_stop:
        after_stop()
    # The departure caused by the shutdown was published before node 1 left.
    w.wait_for(lambda: [json.loads(e.data)["active"] for e in w.events] == [True, False],
               T(5), "the arrival and the departure")
    s.close()
    w.close()


def presence_of_1_0_subscribers(cluster, ttl):
    # Each selector's syntax and payload travel through the registry (qs1.py says how).
    n1, n2 = cluster(2, extra=["protocol 0.x 1.0", "subscriptions", "heartbeat 500ms"],
                     query=ttl + "=2s")
    qs1.check_presence_across_nodes(n1, n2, qs.SUB_KEY)
