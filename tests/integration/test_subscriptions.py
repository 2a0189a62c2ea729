"""Presence (the `subscriptions` directive): subscription events byte for byte, the
active subscriptions API documents, 304, 404, authorization, and subscribers that vanish
without closing their connection (docs/protocol.md §9)."""

import json
import shutil
import socket
import subprocess
import time
import urllib.parse

import pytest

import qs
from qs import T

WATCH = "/.well-known/mercure/subscriptions{/topic}{/subscriber}"


def go_json(obj):
    """json.MarshalIndent(v, "", "  ") of Go's encoding/json for simple values."""
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    for a, b in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                 ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(a, b)
    return text


def sub_id(topic, subscriber):
    q = urllib.parse.quote_plus
    return "/.well-known/mercure/subscriptions/%s/%s" % (q(topic, safe=""), q(subscriber, safe=""))


def doc(topic, subscriber, active, payload=None, context=True, last=None):
    d = {}
    if context:
        d["@context"] = "https://mercure.rocks/"
    d.update({"id": sub_id(topic, subscriber), "type": "Subscription",
              "subscriber": subscriber, "topic": topic, "active": active})
    if last is not None:
        d["lastEventID"] = last
    if payload is not None:
        d["payload"] = payload
    return d


@pytest.fixture
def presence_hub(start_hub):
    return start_hub(extra=["subscriptions", "heartbeat 200ms", "dispatch_timeout 600ms"])


def watcher(hub, token=None):
    return qs.open_stream(hub, [WATCH], token=token or qs.sub_token([WATCH]))


def get(hub, path, token="watch", headers=()):
    hdrs = list(headers)
    if token == "watch":
        token = qs.sub_token(["*"])
    if token:
        hdrs.append(("Authorization", "Bearer " + token))
    return hub.request("GET", path, headers=hdrs)


def test_events_are_byte_exact_and_private(presence_hub):
    hub = presence_hub
    payload = {"user": "https://example.com/users/dunglas", "remoteAddr": "127.0.0.1",
               "a<b": "x&y"}
    with watcher(hub) as w:
        tok = qs.sub_token(["https://example.com/books/{id}"], payload=payload)
        s = qs.open_stream(hub, ["https://example.com/books/{id}", "urn:plain"], token=tok)
        w.wait_for(lambda: len(w.events) >= 2, T(5), "two active events")
        events = w.events[:2]
        subscriber = json.loads(events[0].data)["subscriber"]
        sorted_payload = {k: payload[k] for k in sorted(payload)}
        for e, topic in zip(events, ["https://example.com/books/{id}", "urn:plain"]):
            assert e.data == go_json(doc(topic, subscriber, True, sorted_payload))
            assert e.type is None
            assert e.id.startswith("urn:uuid:")
        s.close()
        w.wait_for(lambda: len(w.events) >= 4, T(5), "two inactive events")
        for e, topic in zip(w.events[2:4], ["https://example.com/books/{id}", "urn:plain"]):
            assert e.data == go_json(doc(topic, subscriber, False, sorted_payload))
    # Events are private: an anonymous subscriber of the same selector sees none.
    with qs.open_stream(hub, [WATCH]) as anon:
        qs.open_stream(hub, ["urn:q"]).close()
        anon.collect(0.5)
        assert anon.events == []


def test_a_subscriber_does_not_see_its_own_arrival(presence_hub):
    hub = presence_hub
    with watcher(hub) as w:
        w.collect(0.5)
        assert w.events == []


def test_api_collection_filter_single_304_404(presence_hub):
    hub = presence_hub
    payload = {"user": "u1"}
    a = qs.open_stream(hub, ["urn:a", "urn:b"], token=qs.sub_token(["urn:a"], payload=payload))
    b = qs.open_stream(hub, ["urn:b"])
    try:
        # The events of the two subscribers are committed asynchronously: wait for the
        # last event id to settle (three events) before comparing documents.
        def settled():
            ids = [get(hub, "/.well-known/mercure/subscriptions").header("ETag")
                   for _ in range(2)]
            return ids[0] == ids[1] and ids[0] != "earliest"
        qs.wait_until(settled, what="the subscription events to be committed")
        time.sleep(0.2)
        r = get(hub, "/.well-known/mercure/subscriptions")
        assert r.status == 200, r
        assert r.header("Content-Type") == "application/ld+json"
        body = json.loads(r.body)
        last = body["lastEventID"]
        assert r.header("ETag") == last
        subs = body["subscriptions"]
        ids = {s["subscriber"] for s in subs}
        assert len(ids) == 2
        sa = next(s["subscriber"] for s in subs if s["topic"] == "urn:a")
        sb = next(s["subscriber"] for s in subs if s["subscriber"] != sa)
        expected = {"@context": "https://mercure.rocks/",
                    "id": "/.well-known/mercure/subscriptions", "type": "Subscriptions",
                    "lastEventID": last,
                    "subscriptions": [doc("urn:a", sa, True, payload, context=False),
                                      doc("urn:b", sa, True, payload, context=False),
                                      doc("urn:b", sb, True, context=False)]}
        assert r.body.decode() == go_json(expected)

        r = get(hub, "/.well-known/mercure/subscriptions/urn%3Ab")
        assert r.status == 200
        body = json.loads(r.body)
        assert body["id"] == "/.well-known/mercure/subscriptions/urn%3Ab"
        assert sorted(s["subscriber"] for s in body["subscriptions"]) == sorted([sa, sb])
        assert all(s["topic"] == "urn:b" for s in body["subscriptions"])

        path = "/.well-known/mercure/subscriptions/urn%3Aa/" + urllib.parse.quote(sa, safe="")
        r = get(hub, path)
        assert r.status == 200
        assert r.body.decode() == go_json(doc("urn:a", sa, True, payload, last=last))

        r = get(hub, path, headers=[("If-None-Match", last)])
        assert r.status == 304 and r.body == b""
        r = get(hub, path, headers=[("If-None-Match", "something else")])
        assert r.status == 200

        for missing in ["/.well-known/mercure/subscriptions/urn%3Ab/" + urllib.parse.quote(sa, safe="") + "x",
                        "/.well-known/mercure/subscriptions/urn%3Ac/" + urllib.parse.quote(sa, safe=""),
                        "/.well-known/mercure/subscriptions/a/b/c",
                        "/.well-known/mercure/subscriptions/"]:
            r = get(hub, missing)
            assert r.status == 404, (missing, r)
        b.close()
        qs.wait_until(lambda: len(json.loads(get(hub, "/.well-known/mercure/subscriptions")
                                             .body)["subscriptions"]) == 2,
                      what="the closed subscriber to leave the registry")
    finally:
        a.close()
        b.close()


def test_api_authorization(presence_hub):
    hub = presence_hub
    path = "/.well-known/mercure/subscriptions"
    assert get(hub, path, token=None).status == 401
    assert get(hub, path, token="garbage.token.here").status == 401
    assert get(hub, path, token=qs.sub_token(["urn:other"])).status == 401
    assert get(hub, path, token=qs.pub_token(["*"], key=qs.SUB_KEY)).status == 401
    # The claim must match the request URI, query string included (as the reference).
    assert get(hub, path, token=qs.sub_token([path])).status == 200
    assert get(hub, path + "?x=1", token=qs.sub_token([path])).status == 401
    assert get(hub, path, token=qs.sub_token(["/.well-known/mercure/subscriptions{/topic}"])).status == 200
    assert hub.request("POST", path).status == 405


def test_api_is_404_when_subscriptions_are_off(hub):
    r = get(hub, "/.well-known/mercure/subscriptions")
    assert r.status == 404


def test_api_answers_get_alone(presence_hub):
    """The reference routes GET alone to the API: HEAD and POST are 405."""
    for method in ("HEAD", "POST"):
        r = presence_hub.request(method, "/.well-known/mercure/subscriptions")
        assert r.status == 405, (method, r)
        assert r.header("Allow") == "GET"


def test_api_is_open_without_a_subscriber_key(start_hub):
    hub = start_hub(subscriber_key=None, extra=["subscriptions"])
    with qs.open_stream(hub, ["urn:x"]):
        r = hub.request("GET", "/.well-known/mercure/subscriptions")
        assert r.status == 200
        assert json.loads(r.body)["subscriptions"][0]["topic"] == "urn:x"


def test_events_are_stored_in_history(start_hub, tmp_path):
    hub = start_hub(extra=["subscriptions"], env={"XDG_DATA_HOME": str(tmp_path / "d")})
    qs.open_stream(hub, ["urn:h"]).close()
    time.sleep(0.3)
    tok = qs.sub_token(["*"])
    with qs.open_stream(hub, [WATCH], token=tok, extra_query=[("lastEventID", "earliest")]) as s:
        qs.publish_ok(hub, ["urn:end"], "x", id="end", private=True)
        s.wait_for(lambda: len(s.events) >= 2, T(5), "the stored events")
        actives = [json.loads(e.data)["active"] for e in s.events[:2]]
        assert actives == [True, False]


def test_restarted_hub_reports_no_ghosts(start_hub, tmp_path):
    env = {"XDG_DATA_HOME": str(tmp_path / "d")}
    hub = start_hub(extra=["subscriptions"], env=env)
    s = qs.open_stream(hub, ["urn:ghost"])
    hub.kill()
    s.close()
    hub2 = start_hub(extra=["subscriptions"], env=env)
    body = json.loads(get(hub2, "/.well-known/mercure/subscriptions").body)
    assert body["subscriptions"] == []


def nft(*args):
    return subprocess.run(["nft"] + list(args), capture_output=True, text=True, timeout=10)


@pytest.fixture
def packet_filter():
    if not shutil.which("nft") or nft("list", "tables").returncode != 0:
        pytest.skip("nftables is not usable here (scripts/bootstrap installs it; needs CAP_NET_ADMIN)")
    table = "qs_test_%d" % int(time.time() * 1000)
    assert nft("add", "table", "inet", table).returncode == 0
    assert nft("add", "chain", "inet", table, "in",
               "{ type filter hook input priority 0; }").returncode == 0
    yield table
    nft("delete", "table", "inet", table)


@pytest.mark.h1_only("a raw HTTP/1.1 socket from its own address")
def test_a_vanished_subscriber_is_reported_inactive(presence_hub, packet_filter):
    hub = presence_hub
    # A subscriber on its own loopback address, whose network then vanishes: every packet
    # from and to it is dropped, so the hub gets neither a FIN nor a reset.
    sock = socket.create_connection(("127.0.0.1", hub.port), timeout=T(5),
                                    source_address=("127.0.0.77", 0))
    sock.sendall(qs.subscribe_request(["urn:vanish"]))
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    with watcher(hub) as w:
        listed = json.loads(get(hub, "/.well-known/mercure/subscriptions/urn%3Avanish")
                            .body)["subscriptions"]
        assert [s["topic"] for s in listed] == ["urn:vanish"]
        gone_id = listed[0]["subscriber"]
        for rule in ("ip saddr 127.0.0.77 drop", "ip daddr 127.0.0.77 drop"):
            assert nft("add", "rule", "inet", packet_filter, "in", *rule.split()).returncode == 0
        t0 = time.monotonic()
        # Heartbeat (200 ms) + dispatch_timeout (600 ms) bound the detection; allow margin.
        w.wait_for(lambda: any(json.loads(e.data)["subscriber"] == gone_id
                               and not json.loads(e.data)["active"] for e in w.events),
                   T(10), "the inactive event of the vanished subscriber")
        assert time.monotonic() - t0 < T(5)
        listed = json.loads(get(hub, "/.well-known/mercure/subscriptions/urn%3Avanish")
                            .body)["subscriptions"]
        assert listed == []
    sock.close()
