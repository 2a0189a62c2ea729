"""Edge cases of the reference's Go stack (net/http, url.ParseQuery, encoding/json,
golang-jwt), URI template selectors end to end, and Quicksilver's own limits."""

import socket

import pytest

import qs
from qs import T


# ----------------------------------------------------------------- URI templates end to end
# (selector, topic, matches) rows from tests/unit/uritemplate_vectors.h, which were computed
# with the reference's library (yosida95/uritemplate v3.0.2).
TEMPLATE_VECTORS = [
    ("https://example.com/books/{id}", "https://example.com/books/a%2Fb", True),
    ("https://example.com/books/{id}", "https://example.com/books/a,b", True),
    ("https://example.com/books/{id}", "https://example.com/books/a=b", False),
    ("https://example.com/books/{id}", "https://example.com/books/a b", False),
    ("https://example.com/books/{id}", "https://example.com/books/\u00e9", False),
    ("https://example.com/books/{id}", "https://example.com/books/{id}", True),
    ("https://example.com/books/{id}", "https://example.com/books/1?x=1", False),
    ("https://example.com/books/{id}", "HTTPS://example.com/books/1", False),
    ("{+path}/here", "foo/bar:baz@x!$&'()*+,;=?#[]/here", True),
    ("https://x/{+path}", "https://x/a/b/c?d=e#f", True),
    ("{#frag}", "#a/b?c", True),
    ("{/a,b}", "/1/2", True),
    ("{/a,b}", "/1/2/3", False),
    ("{?x,y}", "?x=1&y=2", True),
    ("{?x,y}", "?x=1&y=2&z=3", False),
    ("/s{?x*}", "/s?x=1&y=2&z=3", True),
    ("{;x,y}", ";x=1;y=2", True),
    ("file{.ext}", "file.tar.gz", True),
    ("{&k}", "&k=v&j=w", False),
    ("{/list*}", "/a/b/c/d/e", True),
    ("{var:3}", "a/b", False),
    ("https://e.com/subscriptions{/topic}{/subscriber}",
     "https://e.com/subscriptions/https%3A%2F%2Fexample.com%2Ffoo/urn%3Auuid%3Aabc", True),
    ("https://e.com/subscriptions{/topic}{/subscriber}",
     "https://e.com/subscriptions/https://example.com/foo/urn:uuid:abc", False),
    ("a{b}c{d}e", "axxcyye", True),
]


def test_uri_template_vectors_end_to_end(hub):
    """One stream per selector; every topic is published; each stream must receive its
    own row's topic exactly when the reference matches it."""
    streams = []
    try:
        for i, (sel, topic, _) in enumerate(TEMPLATE_VECTORS):
            streams.append((i, qs.open_stream(hub, [sel, "urn:sentinel"])))
        with hub.conn() as c:
            for i, (sel, topic, _) in enumerate(TEMPLATE_VECTORS):
                qs.publish_ok(hub, [topic], "x", id="v%d" % i, conn=c)
            qs.publish_ok(hub, ["urn:sentinel"], "x", id="sentinel", conn=c)
        for i, s in streams:
            sel, topic, matches = TEMPLATE_VECTORS[i]
            got = [e.id for e in s.events_until("sentinel")]
            # A stream may also match other rows' topics: only its own row is checked.
            assert ("v%d" % i in got) == matches, (sel, topic, matches, got)
    finally:
        for _, s in streams:
            s.close()


@pytest.mark.parametrize("sel,topic,matches", TEMPLATE_VECTORS[:8])
def test_uri_template_vectors_in_subscribe_claim(hub, sel, topic, matches):
    """The same matching authorizes private updates through the token's claim."""
    with qs.open_stream(hub, ["*"], token=qs.sub_token([sel])) as s:
        qs.publish_ok(hub, [topic], "x", id="priv", private=True)
        qs.publish_ok(hub, ["urn:sentinel"], "x", id="sentinel")
        got = [e.id for e in s.events_until("sentinel")]
        assert ("priv" in got) == matches, got


# ----------------------------------------------------------------- Go net/http behaviour

def test_http11_without_host_400(hub):
    with hub.conn() as c:
        c.send(b"GET /healthz HTTP/1.1\r\n\r\n")
        assert c.read_response().status == 400


def test_http10_without_host_ok(hub):
    with hub.conn() as c:
        c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert c.read_response().status == 200


def test_duplicate_host_400(hub):
    with hub.conn() as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        assert c.read_response().status == 400


def test_absolute_form_target_routes_by_path(hub):
    raw = b"GET http://127.0.0.1/.well-known/mercure?topic=urn%3Aabs HTTP/1.1\r\nHost: x\r\n\r\n"
    with qs.open_stream(hub, raw_request=raw) as s:
        qs.publish_ok(hub, ["urn:abs"], "x", id="abs")
        assert s.next_event().id == "abs"


def test_header_names_case_insensitive(hub):
    tok = qs.pub_token()
    for name in ("authorization", "AUTHORIZATION", "AuThOrIzAtIoN"):
        r = qs.publish(hub, ["urn:x"], "x", token=None, headers=[(name, "Bearer " + tok)])
        assert r.status == 200, name
    body = qs.form_body([("topic", "urn:x")])
    raw = qs.build_request("POST", qs.HUB_PATH, [("authorization", "Bearer " + tok),
                                                 ("content-type",
                                                  "APPLICATION/X-WWW-FORM-URLENCODED"),
                                                 ("content-length", str(len(body)))], body)
    with hub.conn() as c:
        c.send(raw)
        assert c.read_response().status == 200


def test_transfer_encoding_chunked_case_insensitive(hub):
    body = b"topic=urn%3Ax&data=y"
    raw = (b"POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\n"
           b"Authorization: Bearer " + qs.pub_token().encode() + b"\r\n"
           b"Content-Type: application/x-www-form-urlencoded\r\n"
           b"Transfer-Encoding: Chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    with hub.conn() as c:
        c.send(raw)
        assert c.read_response().status == 200


def test_semicolon_in_subscribe_query_drops_the_pair(hub):
    """Go's url.ParseQuery rejects (drops) every pair containing ';'."""
    r = hub.request("GET", qs.HUB_PATH + "?topic=urn:a;b")
    assert r.status == 400 and r.body == b'Missing "topic" parameter.\n'
    raw = qs.build_request("GET", qs.HUB_PATH + "?topic=urn:a;b&topic=urn%3Aok")
    with qs.open_stream(hub, raw_request=raw) as s:
        qs.publish_ok(hub, ["urn:a;b"], "x", id="semi")
        qs.publish_ok(hub, ["urn:ok"], "x", id="ok")
        assert [e.id for e in s.events_until("ok")] == ["ok"]


def test_semicolon_in_publish_body_400(hub):
    """ParseForm fails on a raw ';' in the body: 400."""
    assert qs.publish(hub, body=b"topic=urn%3Ax&data=a;b").status == 400
    assert qs.publish(hub, body=b"topic=urn%3Ax&data=a%3Bb").status == 200


def test_publish_token_in_query(hub):
    raw = qs.build_request("POST", qs.HUB_PATH + "?authorization=" + qs.pub_token(),
                           [("Content-Type", "application/x-www-form-urlencoded")],
                           b"topic=urn%3Ax&data=y")
    with hub.conn() as c:
        c.send(raw)
        assert c.read_response().status == 200


def test_invalid_utf8_data_passes_through(hub):
    with qs.open_stream(hub, ["urn:x"]) as s:
        assert qs.publish(hub, body=b"topic=urn%3Ax&data=%FF%FE%C3&id=u").status == 200
        assert s.next_event().raw == b"id: u\ndata: \xff\xfe\xc3\n\n"


def test_data_up_to_the_default_body_limit(hub):
    data = "d" * (1024 * 1024 - 200)
    with qs.open_stream(hub, ["urn:x"]) as s:
        qs.publish_ok(hub, ["urn:x"], data, id="near-limit")
        ev = s.next_event(T(10))
        assert ev.id == "near-limit" and len(ev.data) == len(data)
    assert qs.publish(hub, ["urn:x"], "d" * (1024 * 1024 + 10)).status == 413


# ----------------------------------------------------------------- JWT claim decoding

@pytest.mark.parametrize("claims", [
    {"mercure": {"publish": "*"}},          # not an array
    {"mercure": "x"},                      # not an object
    {"mercure": {"publish": ["*", 1]}},    # not strings
    {"mercure": {"publish": ["*"]}, "exp": "9999999999"},  # NumericDate must be a number
    {"mercure": {"publish": ["*"]}, "nbf": "0"},
])
def test_badly_typed_claims_401(hub, claims):
    assert qs.publish(hub, ["urn:x"], "x", token=qs.make_jwt(claims)).status == 401


@pytest.mark.parametrize("claims", [
    {"mercure": {"publish": ["*"]}, "exp": 9999999999.5},
    {"mercure": {"publish": ["*"]}, "nbf": None},
    {"mercure": {"publish": ["*"], "subscribe": None, "payload": {"a": [1, {"b": None}]}}},
])
def test_well_typed_claims_accepted(hub, claims):
    assert qs.publish(hub, ["urn:x"], "x", token=qs.make_jwt(claims)).status == 200


@pytest.mark.parametrize("raw_payload", [b'{"mercure":{"publish":["*"]}', b"[1]", b"null",
                                         b"", b"\xff"])
def test_malformed_payload_json_401(hub, raw_payload):
    tok = qs.make_jwt(None, raw_payload=raw_payload)
    assert qs.publish(hub, ["urn:x"], "x", token=tok).status == 401


def test_token_encoding_variants_401(hub):
    h, p, sig = qs.pub_token().split(".")
    for tok in (h + "." + p + "." + sig + "=",
                h + "." + p + "." + sig.replace("-", "+").replace("_", "/") + "+/",
                h + "." + p + ".",
                h + "." + p,
                h + ".." + sig):
        assert qs.publish(hub, ["urn:x"], "x", token=tok).status == 401, tok


def test_extra_header_fields_ignored(hub):
    tok = qs.make_jwt(qs.mercure_claims(publish=["*"]), header={"typ": "weird", "kid": "k1"})
    assert qs.publish(hub, ["urn:x"], "x", token=tok).status == 200


def test_subscriber_token_with_null_mercure_claim(hub):
    tok = qs.make_jwt({"mercure": None}, qs.SUB_KEY)
    with qs.open_stream(hub, ["urn:x"], token=tok) as s:
        qs.publish_ok(hub, ["urn:x"], "x", id="p", private=True)
        qs.publish_ok(hub, ["urn:x"], "x", id="pub")
        assert [e.id for e in s.events_until("pub")] == ["pub"]


# ----------------------------------------------------------------- Quicksilver's limits

def _served(hub, n):
    conns, served = [], 0
    try:
        for _ in range(n):
            c = hub.conn(timeout=T(3))
            conns.append(c)
            try:
                if c.request("GET", "/robots.txt").status == 200:
                    served += 1
            except (OSError, qs.ConnectionClosed, socket.timeout):
                pass
    finally:
        for c in conns:
            c.close()
    return served


def test_max_connections_single_worker(start_hub):
    hub = start_hub(extra=["max_connections 20", "workers 1"])
    assert _served(hub, 25) == 20
    assert hub.metric("mercure_connections_rejected_total") == 5
    qs.wait_until(lambda: hub.metric("mercure_connections_open") <= 1, T(5))
    assert _served(hub, 20) == 20


def test_max_connections_is_a_global_limit(start_hub):
    hub = start_hub(extra=["max_connections 40", "workers 8"])
    assert _served(hub, 40) == 40


def test_a_full_hub_still_answers_health_checks_and_metrics(start_hub):
    """Beyond max_connections a small reserve of connections answers /healthz and
    /metrics alone (the rest gets 503 and the connection closes), and the limit is logged
    once."""
    hub = start_hub(extra=["max_connections 5", "workers 1"])
    conns = [hub.conn(timeout=T(3)) for _ in range(5)]
    try:
        for c in conns:
            assert c.request("GET", "/robots.txt").status == 200
        for _ in range(3):
            assert hub.request("GET", "/healthz").status == 200
            r = hub.request("GET", "/metrics")
            assert r.status == 200 and b"mercure_connections_rejected_total" in r.body
            r = hub.request("GET", "/robots.txt")
            assert r.status == 503 and r.body == b"too many connections\n"
            assert r.header("Connection") == "close"
    finally:
        for c in conns:
            c.close()
    assert hub.stderr().count("max_connections (5) reached") == 1


def test_update_bigger_than_queue_bytes_reaches_idle_subscriber(start_hub):
    hub = start_hub(extra=["subscriber_queue_bytes 1KiB"])
    with qs.open_stream(hub, ["urn:x"]) as s:
        qs.publish_ok(hub, ["urn:x"], "x" * 4000, id="big")
        assert s.next_event().id == "big"


def test_queue_bytes_bounds_a_slow_subscriber(start_hub):
    hub = start_hub(extra=["subscriber_queue_bytes 64KiB", "subscriber_queue_size 100000"])
    slow = qs.open_stream(hub, ["urn:x"], rcvbuf=4096)
    try:
        with hub.conn() as c:
            for _ in range(200):
                qs.publish_ok(hub, ["urn:x"], "q" * 16000, conn=c)
        qs.wait_until(lambda: hub.metric("mercure_subscribers_dropped_total",
                                         {"reason": "queue_full"}) == 1, T(10))
    finally:
        slow.close()


# ----------------------------------------------------------------- odds and ends

def test_get_with_a_body_still_subscribes(hub):
    raw = qs.build_request("GET", qs.subscribe_target(["urn:x"]), [("Content-Length", "5")],
                           b"hello")
    with qs.open_stream(hub, raw_request=raw) as s:
        qs.publish_ok(hub, ["urn:x"], "x", id="a")
        assert s.next_event().id == "a"


def test_empty_topic_string(hub):
    """`topic=` is one (empty) topic, for publishers and subscribers alike."""
    raw = qs.build_request("GET", qs.HUB_PATH + "?topic=")
    with qs.open_stream(hub, raw_request=raw) as s:
        assert qs.publish(hub, [""], "x", id="e").status == 200
        qs.publish_ok(hub, ["urn:y"], "x", id="y")
        qs.publish_ok(hub, [""], "x", id="e2")
        assert [e.id for e in s.events_until("e2")] == ["e", "e2"]


def test_hub_without_subscriber_key_ignores_subscriber_tokens(start_hub):
    """With `anonymous` and no subscriber key, subscribers are never authenticated: any
    token is ignored (no 401) and private updates reach nobody."""
    hub = start_hub(subscriber_key=None)
    with qs.open_stream(hub, ["urn:x"], token="garbage" * 10) as s:
        qs.publish_ok(hub, ["urn:x"], "x", id="p", private=True)
        qs.publish_ok(hub, ["urn:x"], "x", id="q")
        assert [e.id for e in s.events_until("q")] == ["q"]
    with qs.open_stream(hub, ["urn:x"], token=qs.sub_token(["*"])) as s:
        qs.publish_ok(hub, ["urn:x"], "x", id="p2", private=True)
        qs.publish_ok(hub, ["urn:x"], "x", id="q2")
        assert [e.id for e in s.events_until("q2")] == ["q2"]


def test_same_key_for_publishers_and_subscribers(start_hub):
    hub = start_hub(subscriber_key=qs.PUB_KEY)
    tok = qs.make_jwt(qs.mercure_claims(publish=["*"], subscribe=["*"]), qs.PUB_KEY)
    with qs.open_stream(hub, ["urn:x"], token=tok) as s:
        qs.publish_ok(hub, ["urn:x"], "x", id="p", private=True, token=tok)
        assert s.next_event().id == "p"


@pytest.mark.parametrize("path", ["/.well-known/mercure/x", "/.well-known/mercure/",
                                  "/.well-known/mercurefoo"])
def test_every_path_starting_with_the_hubs_belongs_to_the_hub(hub, path):
    """The reference serves every path starting with /.well-known/mercure itself: an
    unknown one is gorilla/mux's 404, with the hub's security headers."""
    r = hub.request("GET", path)
    assert r.status == 404
    assert r.body == b"404 page not found\n"
    assert r.header("X-Frame-Options") == "DENY"


def test_other_paths_are_not_found(hub):
    r = hub.request("GET", "/nothing-here")
    assert r.status == 404
    assert r.body == b"Not Found\n"
    assert not r.has_header("X-Frame-Options")
