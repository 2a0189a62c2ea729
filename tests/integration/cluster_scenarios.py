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

import qs
from qs import T

WATCH = "/.well-known/mercure/subscriptions{/topic}{/subscriber}"


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
