"""Both generations on one hub (`protocol 0.x 1.0`, and the reference's
protocol_version_compatibility mapped onto it): each request answered in the generation it
speaks (topic= is 0.x, match*= is 1.0, a publisher's token decides), each token read by its
shape, and one stream of updates, one history and one presence shared by both kinds of
clients."""

import json
import urllib.parse

import pytest

import qs
import qs1
from qs import T

WATCH_0X = "/.well-known/mercure/subscriptions{/topic}{/subscriber}"
# 0.x subscriptions appear to 1.0 clients as the reference's compatibility mode writes them,
# /subscriptions/{topic}/{subscriber}: a 1.0 watcher of every subscriber watches the whole
# namespace.
WATCH_1 = "/.well-known/mercure/subscriptions/*"


@pytest.fixture
def hub(start_hub):
    return qs1.start(start_hub, protocol="0.x 1.0", extra=["subscriptions"])


def legacy(publish=None, subscribe=None, **kw):
    """A 0.x token (the mercure claim), signed with the same development key."""
    return qs.make_jwt(qs.mercure_claims(publish=publish, subscribe=subscribe, **kw), qs1.KEY)


def open_0x(hub, topics, token=None, **kw):
    hdrs = [("Host", hub.host)] + list(kw.pop("headers", []))
    return qs.open_stream(hub, topics, token=token, headers=hdrs, **kw)


def sub_id_0x(topic, subscriber):
    q = urllib.parse.quote_plus
    return "/.well-known/mercure/subscriptions/%s/%s" % (q(topic, safe=""), q(subscriber, safe=""))


def doc_0x(topic, subscriber, active, payload=None, context=True):
    d = {}
    if context:
        d["@context"] = "https://mercure.rocks/"
    d.update({"id": sub_id_0x(topic, subscriber), "type": "Subscription",
              "subscriber": subscriber, "topic": topic, "active": active})
    if payload is not None:
        d["payload"] = payload
    return d


# --------------------------------------------------------------------------- each generation

def test_each_request_is_answered_in_its_generation(hub):
    target0 = qs.subscribe_target(["a"])
    target1 = qs1.matcher_target([("match", "a")])
    # No token: 0.x's plain 401, 1.0's bare challenge.
    r = qs1.request(hub, "GET", target0)
    assert (r.status, r.body) == (401, b"Unauthorized\n")
    assert not r.has_header("WWW-Authenticate")
    r = qs1.request(hub, "GET", target1)
    assert r.status == 401 and r.header("WWW-Authenticate") == qs1.challenge(hub)
    # A bad token: 0.x's 401, 1.0's invalid_token.
    bad = qs1.access_token(hub.aud, [qs1.detail(["subscribe"], ["*"])], key="other")
    r = qs1.request(hub, "GET", target0, token=bad)
    assert r.status == 401 and not r.has_header("WWW-Authenticate")
    r = qs1.request(hub, "GET", target1, token=bad)
    assert r.header("WWW-Authenticate") == qs1.challenge(hub, "invalid_token")
    # Parameter errors: each its own.
    r = qs1.request(hub, "GET", qs.HUB_PATH, token=legacy(subscribe=["*"]))
    assert (r.status, r.body) == (400, b'Missing "topic" parameter.\n')
    r = qs1.request(hub, "GET", qs1.matcher_target([("Match", "a")]), token=qs1.all_token(hub))
    assert (r.status, r.body) == (400, b'unknown topic matcher query parameter: "Match"\n')
    # Publishers: the token decides.
    r = qs1.publish(hub, "a", "x", token=legacy(publish=["b"]))
    assert (r.status, r.body) == (401, b"Unauthorized\n") and not r.has_header("WWW-Authenticate")
    r = qs1.publish(hub, "a", "x", token=qs1.access_token(hub.aud, [qs1.detail(["publish"], ["b"])]))
    assert r.status == 403
    assert r.header("WWW-Authenticate") == qs1.challenge(hub, "insufficient_scope")
    r = qs1.publish(hub, "/.well-known/mercure/x", "x", token=legacy(publish=["*"]))
    assert r.status == 403  # 0.x's reserved-topic answer
    r = qs1.publish(hub, "/.well-known/mercure/x", "x", token=qs1.all_token(hub))
    assert r.status == 400  # 1.0's
    # Without a token the challenge helps 1.0 clients; 0.x clients read the same 401.
    r = qs1.publish(hub, "a", "x")
    assert (r.status, r.body) == (401, b"Unauthorized\n")
    assert r.header("WWW-Authenticate") == qs1.challenge(hub)
    # The hub's event type is reserved for every publisher once 1.0 clients listen.
    r = qs1.publish(hub, "a", "x", token=legacy(publish=["*"]), type="mercure")
    assert (r.status, r.body) == (400, b'"type" field uses the reserved value "mercure"\n')
    r = qs1.request(hub, "PATCH", qs.HUB_PATH)
    assert r.header("Allow") == "GET, HEAD, POST, QUERY"
    meta = json.loads(qs1.request(hub, "GET", qs1.METADATA_PATH).body)
    assert meta["mercure_cookie"] == "__Secure-mercure_access_token"


def test_reconnection_in_each_generation(hub):
    tall = qs1.all_token(hub)
    ids = [qs1.publish_ok(hub, "https://example.com/h", "h%d" % i, token=tall) for i in range(3)]
    with open_0x(hub, ["https://example.com/h"], legacy(subscribe=["*"]),
                 extra_query=[("lastEventID", ids[0])]) as s0:
        assert s0.response.header("Last-Event-Id") == ids[0]
        assert not s0.response.has_header("Mercure-Last-Event-Id")
        assert [e.id for e in s0.events_until(ids[2])] == ids[1:]
    with qs1.open_matchers(hub, [("match", "https://example.com/h"), ("last_event_id", ids[0])],
                           tall) as s1:
        assert s1.response.header("Mercure-Last-Event-Id") == ids[0]
        assert not s1.response.has_header("Last-Event-Id")
        assert [e.id for e in s1.events_until(ids[2])] == ids[1:]
    # Each reads only its own generation's parameter.
    with qs1.open_matchers(hub, [("match", "https://example.com/h"), ("lastEventID", ids[0])],
                           tall) as s1:
        assert not s1.response.has_header("Mercure-Last-Event-Id")


def test_token_transports_in_each_generation(hub):
    t0 = legacy(subscribe=["*"])
    t1 = qs1.all_token(hub)
    # The 0.x cookie and query parameter for 0.x requests...
    with open_0x(hub, ["a"], cookie="mercureAuthorization=" + t0):
        pass
    with open_0x(hub, ["a"], token_query=t0):
        pass
    # ...and the access-token cookie serves both kinds of requests.
    with open_0x(hub, ["a"], cookie="__Secure-mercure_access_token=" + t1):
        pass
    with qs1.open_matchers(hub, [("match", "a")], cookie="__Secure-mercure_access_token=" + t1):
        pass
    # A cookie on a POST without an allowed origin: each token's generation answers.
    r = qs1.publish(hub, "a", "x", headers=[("Cookie", "__Secure-mercure_access_token=" + t1)])
    assert r.status == 400
    assert r.header("WWW-Authenticate") == qs1.challenge(hub, "invalid_request")
    r = qs1.publish(hub, "a", "x", headers=[("Cookie", "mercureAuthorization=" +
                                               legacy(publish=["*"]))])
    assert (r.status, r.body) == (401, b"Unauthorized\n")
    # 1.0 requests never read a token from the URL.
    r = qs1.request(hub, "GET", qs1.matcher_target([("match", "a"), ("authorization", t0)]))
    assert r.status == 401 and r.header("WWW-Authenticate") == qs1.challenge(hub)


# --------------------------------------------------------------------------- mixed traffic

def test_0x_publisher_to_1_0_subscriber_and_back(hub):
    t0 = legacy(publish=["*"], subscribe=["*"])
    t1 = qs1.all_token(hub)
    with qs1.open_matchers(hub, [("match_urlpattern", "https://example.com/books/:id")], t1) as s1, \
            open_0x(hub, ["https://example.com/books/{id}"], t0) as s0:
        qs1.publish_ok(hub, "https://example.com/books/1", "from 0.x", token=t0, id="a")
        qs1.publish_ok(hub, "https://example.com/books/2", "from 1.0", token=t1, id="b",
                       type="book")
        want = b"id: a\ndata: from 0.x\n\nevent: book\nid: b\ndata: from 1.0\n\n"
        for s in (s1, s0):
            s.events_until("b")
            assert s.raw.endswith(want), s.raw


def test_private_updates_read_each_token_by_its_shape(hub):
    t0 = legacy(publish=["*"])
    # A 0.x request with an access token: its grants decide.
    grant = qs1.access_token(hub.aud, [qs1.detail(
        ["subscribe"], [qs1.topic("https://example.com/p/:id", "urlpattern")])])
    # A 1.0 request with a 0.x token: its mercure.subscribe selectors decide.
    claim = legacy(subscribe=["https://example.com/q/{id}"])
    with open_0x(hub, ["*"], grant) as s0, qs1.open_matchers(hub, [("match", "*")], claim) as s1:
        for i, t in enumerate(["https://example.com/p/1", "https://example.com/q/1",
                               "https://example.com/r/1"]):
            qs1.publish_ok(hub, t, t, token=t0, id="p%d" % i, private=True)
        qs1.publish_ok(hub, "https://example.com/end", "end", token=t0, id="end")
        assert [e.id for e in s0.events_until("end")] == ["p0", "end"]
        assert [e.id for e in s1.events_until("end") if e.type != "mercure"] == ["p1", "end"]


def test_history_is_shared(hub):
    t0 = legacy(publish=["*"], subscribe=["*"])
    t1 = qs1.all_token(hub)
    a = qs1.publish_ok(hub, "https://example.com/h", "0.x", token=t0)
    b = qs1.publish_ok(hub, "https://example.com/h", "1.0", token=t1)
    with qs1.open_matchers(hub, [("match", "https://example.com/h"),
                                 ("last_event_id", "earliest")], t1) as s1:
        assert [e.data for e in s1.events_until(b)] == ["0.x", "1.0"]
    with open_0x(hub, ["https://example.com/h"], t0, extra_query=[("lastEventID", a)]) as s0:
        assert [e.data for e in s0.events_until(b)] == ["1.0"]


def test_presence_is_shared_each_watcher_in_its_format(hub):
    w0_token = legacy(subscribe=[WATCH_0X], payload={"w": 0})
    w1_token = qs1.access_token(hub.aud, [qs1.detail(
        ["subscribe"], [qs1.topic(WATCH_1, "urlpattern")], payload={"w": 1})])
    with qs1.open_matchers(hub, [("match_urlpattern", WATCH_1)], w1_token) as w1:
        # The 1.0 watcher sees its own arrival, in 1.0's format.
        own = w1.next_event()
        w1_id = json.loads(own.data)["subscriber"]
        assert own.type == "mercure"
        assert own.data == qs1.go_json(qs1.subscription_doc("urlpattern", WATCH_1, w1_id, True,
                                                            {"w": 1}))
        w0 = open_0x(hub, [WATCH_0X], w0_token)
        # The 0.x watcher's arrival, in 1.0's format (the reference's compatibility shape);
        # the 0.x watcher never sees its own.
        ev = w1.next_event()
        w0_id = json.loads(ev.data)["subscriber"]
        assert ev.data == qs1.go_json(qs1.subscription_doc(None, WATCH_0X, w0_id, True,
                                                           {"w": 0}))

        # A 0.x subscriber arrives: both watchers see it, each in its format.
        p0 = legacy(subscribe=["https://example.com/x"], payload={"who": "zero"})
        s0 = open_0x(hub, ["https://example.com/x"], p0)
        e0 = w0.next_event()
        sid = json.loads(e0.data)["subscriber"]
        assert e0.data == json.dumps(doc_0x("https://example.com/x", sid, True,
                                            {"who": "zero"}), indent=2)
        e1 = w1.next_event()
        assert e1.type == "mercure"
        assert e1.data == qs1.go_json(qs1.subscription_doc(None, "https://example.com/x", sid,
                                                           True, {"who": "zero"}))
        # A 1.0 subscriber arrives and leaves.
        p1 = qs1.access_token(hub.aud, [qs1.detail(["subscribe"], ["*"], payload={"who": "one"})])
        s1 = qs1.open_matchers(hub, [("match", "https://example.com/y")], p1)
        e0 = w0.next_event()
        sid1 = json.loads(e0.data)["subscriber"]
        assert e0.data == json.dumps(doc_0x("https://example.com/y", sid1, True,
                                            {"who": "one"}), indent=2)
        e1 = w1.next_event()
        assert e1.data == qs1.go_json(qs1.subscription_doc("exact", "https://example.com/y",
                                                           sid1, True, {"who": "one"}))
        s1.close()
        assert json.loads(w0.next_event().data)["active"] is False
        assert json.loads(w1.next_event().data)["active"] is False
        s0.close()
        assert json.loads(w0.next_event().data)["active"] is False
        assert json.loads(w1.next_event().data)["active"] is False
        # Nothing else: no watcher got the other format, nor the 0.x watcher its own.
        w0.collect(0.3)
        w1.collect(0.1)
        assert len(w0.events) == 4 and all(e.type is None for e in w0.events)
        assert len(w1.events) == 6 and all(e.type == "mercure" for e in w1.events)
        w0.close()


def test_subscription_api_in_each_generation(hub):
    t0 = legacy(subscribe=["*"])
    t1 = qs1.all_token(hub)
    with open_0x(hub, ["https://example.com/zero"], t0), \
            qs1.open_matchers(hub, [("match_urlpattern", "https://example.com/one/:id")], t1):
        r0 = qs1.request(hub, "GET", qs1.SUBSCRIPTIONS, token=t0)
        assert r0.header("Content-Type") == "application/ld+json"
        d0 = json.loads(r0.body)
        assert d0["type"] == "Subscriptions" and "lastEventID" in d0
        topics = sorted(x["topic"] for x in d0["subscriptions"])
        assert topics == ["https://example.com/one/:id", "https://example.com/zero"]
        r1 = qs1.request(hub, "GET", qs1.SUBSCRIPTIONS, token=t1)
        assert r1.header("Content-Type") == "application/json"
        assert r1.header("Link").startswith('</.well-known/mercure>; rel="mercure"')
        d1 = json.loads(r1.body)
        assert d1["type"] == "subscriptions"
        by_kind = {x.get("match_type", "topic"): x for x in d1["subscriptions"]}
        assert by_kind["topic"]["topic"] == "https://example.com/zero"
        assert by_kind["urlpattern"]["match"] == "https://example.com/one/:id"
        zero_id = by_kind["topic"]["subscriber"]
        # Two segments: a matcher type makes them 1.0's filter, anything else 0.x's document.
        r = qs1.request(hub, "GET", "%s/urlpattern/%s" % (
            qs1.SUBSCRIPTIONS, qs1.escape_segment("https://example.com/one/:id")), token=t1)
        assert [x["match"] for x in json.loads(r.body)["subscriptions"]] == \
            ["https://example.com/one/:id"]
        r = qs1.request(hub, "GET", sub_id_0x("https://example.com/zero", zero_id), token=t0)
        assert r.status == 200
        assert json.loads(r.body) == dict(doc_0x("https://example.com/zero", zero_id, True),
                                          lastEventID=json.loads(r.body)["lastEventID"])


# --------------------------------------------------------------------------- compatibility

def test_protocol_version_compatibility_8_serves_both(start_hub):
    hub = start_hub(extra=["protocol_version_compatibility 8"], anonymous=False,
                    publisher_key=qs1.KEY, subscriber_key=qs1.KEY)
    hub.host = "127.0.0.1:%d" % hub.port
    hub.aud = "http://%s/.well-known/mercure" % hub.host
    # The legacy keys are the implicit issuer: alone, it takes access tokens of any iss.
    tok = qs1.access_token(hub.aud, [qs1.detail(["publish"], ["*"]),
                                     qs1.detail(["subscribe"], ["*"])], iss="https://anyone")
    with qs1.open_matchers(hub, [("match", "a")], tok) as s1, open_0x(hub, ["a"], legacy(
            subscribe=["*"])) as s0:
        qs1.publish_ok(hub, "a", "x", token=legacy(publish=["*"]), id="one")
        qs1.publish_ok(hub, "a", "y", token=tok, id="two")
        assert [e.id for e in s1.events_until("two")] == ["one", "two"]
        assert [e.id for e in s0.events_until("two")] == ["one", "two"]
    # Public updates to topics not granted are still refused (that is 7's relaxation).
    r = qs1.publish(hub, "b", "x", token=legacy(publish=["a"]))
    assert r.status == 401


def test_protocol_version_compatibility_7(start_hub):
    hub = start_hub(extra=["protocol_version_compatibility 7"], anonymous=True,
                    publisher_key=qs1.KEY, subscriber_key=qs1.KEY)
    hub.host = "127.0.0.1:%d" % hub.port
    hub.aud = "http://%s/.well-known/mercure" % hub.host
    narrow = qs1.access_token(hub.aud, [qs1.detail(["publish"], ["a"])])
    assert qs1.publish(hub, "b", "x", token=narrow).status == 200
    assert qs1.publish(hub, "b", "x", token=narrow, private=True).status == 403
    assert qs1.publish(hub, "b", "x", token=legacy(publish=["a"])).status == 200
    # The Last-Event-ID query parameter, for both generations.
    with qs1.open_matchers(hub, [("match", "b"), ("Last-Event-ID", "earliest")]) as s:
        assert s.response.header("Mercure-Last-Event-Id") == "earliest"
        s.wait_for(lambda: len(s.events) >= 2, T(5), "the two public updates")
        assert [e.data for e in s.events] == ["x", "x"]


def test_subscribe_methods_and_reserved_topics_side_by_side(hub):
    t0 = legacy(publish=["*"], subscribe=["*"])
    t1 = qs1.all_token(hub)
    # HEAD in both generations; QUERY speaks 1.0 (its matchers in the body).
    r = qs1.request(hub, "HEAD", qs.subscribe_target(["a"]), token=t0)
    assert r.status == 200 and r.header("Content-Type") == "text/event-stream"
    r = qs1.request(hub, "HEAD", qs1.matcher_target([("match", "a")]), token=t1)
    assert r.status == 200 and r.header("Content-Type") == "text/event-stream"
    with qs1.open_matchers(hub, [], t1, method="QUERY", body=b"match=q",
                           headers=[("Content-Type", "application/x-www-form-urlencoded")]) as s:
        qs1.publish_ok(hub, "q", "via QUERY", token=t0, id="qq")
        assert s.next_event().id == "qq"
    # Reserved topics: 0.x refuses any topic containing the hub's path (403), 1.0 those whose
    # path is under it (400) and "*".
    r = qs1.publish(hub, "https://e.com/x/.well-known/mercure/y", "x", token=t0)
    assert r.status == 403
    assert qs1.publish(hub, "https://e.com/x/.well-known/mercure/y", "x", token=t1).status == 200
    assert qs1.publish(hub, "*", "x", token=t1).status == 400
    assert qs1.publish(hub, "*", "x", token=t0).status == 200  # 0.x had no such rule
