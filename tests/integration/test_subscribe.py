"""Subscribing: response headers, SSE bytes, topic selectors, limits, HEAD."""

import pytest

import qs
from qs import T

TOPIC = "https://example.com/books/1"

EXPECTED_STREAM_HEADERS = {
    "content-type": "text/event-stream",
    "cache-control": "private, no-cache, no-store, must-revalidate, max-age=0",
    "pragma": "no-cache",
    "expire": "0",
    "x-accel-buffering": "no",
    "connection": "keep-alive",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "x-xss-protection": "1; mode=block",
    "content-security-policy": "default-src 'self'",
}
# Headers a stream may carry besides the ones above (Go/Caddy add Date and Server; the
# body is chunked on HTTP/1.1).
ALLOWED_EXTRA = {"date", "server", "transfer-encoding"}


@pytest.mark.h1_only("the Connection field and chunked framing (test_http2.py checks the "
                     "fields over HTTP/2)")
def test_stream_response_headers_are_exactly_the_references(hub):
    with qs.open_stream(hub, [TOPIC]) as s:
        r = s.response
        assert r.version == "HTTP/1.1"
        assert r.status == 200
        for name, value in EXPECTED_STREAM_HEADERS.items():
            assert r.header_all(name) == [value], (name, r.headers)
        unexpected = set(r.header_names()) - set(EXPECTED_STREAM_HEADERS) - ALLOWED_EXTRA
        assert not unexpected, r.headers
        assert r.header("Transfer-Encoding").lower() == "chunked"
        assert not r.has_header("Last-Event-Id")
        assert not r.has_header("Content-Length")
        # The first bytes of the stream are the comment that flushes the headers.
        assert s.raw == b":\n"
        # ...sent as its own chunk right after the head.
        assert s.conn.buf == b""


def test_golden_vector(hub):
    """The reference's own test vector (0.x:subscribe_test.go)."""
    with qs.open_stream(hub, [TOPIC]) as s:
        qs.publish_ok(hub, [TOPIC], "Hello World", type="test", id="b")
        qs.publish_ok(hub, [TOPIC], "Great", retry=1, id="c")
        expected = b":\nevent: test\nid: b\ndata: Hello World\n\nretry: 1\nid: c\ndata: Great\n\n"
        s.wait_raw(len(expected))
        assert s.raw == expected


@pytest.mark.parametrize("data,expected", [
    ("a\nb", b"data: a\ndata: b\n"),
    ("a\r\nb", b"data: a\ndata: b\n"),
    ("a\rb", b"data: a\ndata: b\n"),
    ("a\r\n\r\nb", b"data: a\ndata: \ndata: b\n"),
    ("a\n\rb", b"data: a\ndata: \ndata: b\n"),
    ("a\r\rb", b"data: a\ndata: \ndata: b\n"),
    ("x\n", b"data: x\ndata: \n"),
    ("\n", b"data: \ndata: \n"),
    ("", b"data: \n"),
    ("data for\n\n        raw string", b"data: data for\ndata: \ndata:         raw string\n"),
    ("id: fake\nevent: fake", b"data: id: fake\ndata: event: fake\n"),
    ("caf\u00e9 \u2603 \U0001F600", "data: caf\u00e9 \u2603 \U0001F600\n".encode()),
    ("  spaces  ", b"data:   spaces  \n"),
])
def test_data_lines_split_on_cr_lf_crlf(hub, data, expected):
    with qs.open_stream(hub, [TOPIC]) as s:
        qs.publish_ok(hub, [TOPIC], data, id="ev1")
        ev = s.next_event()
        assert ev.raw == b"id: ev1\n" + expected + b"\n"


def test_missing_data_gives_empty_data_line(hub):
    with qs.open_stream(hub, [TOPIC]) as s:
        qs.publish_ok(hub, [TOPIC], None, id="nodata")
        assert s.next_event().raw == b"id: nodata\ndata: \n\n"


def test_event_fields_order_and_omissions(hub):
    with qs.open_stream(hub, [TOPIC]) as s:
        qs.publish_ok(hub, [TOPIC], "d", id="i1", type="t", retry=42)
        qs.publish_ok(hub, [TOPIC], "d", id="i2", type="", retry=0)
        assert s.next_event().raw == b"event: t\nretry: 42\nid: i1\ndata: d\n\n"
        # Empty type and retry 0 produce no line.
        assert s.next_event().raw == b"id: i2\ndata: d\n\n"


def test_generated_id_is_sent(hub):
    with qs.open_stream(hub, [TOPIC]) as s:
        body = qs.publish_ok(hub, [TOPIC], "x")
        ev = s.next_event()
        assert ev.id == body
        assert ev.raw == ("id: %s\ndata: x\n\n" % body).encode()


def _assert_only(stream, expected_ids, sentinel_id):
    got = [e.id for e in stream.events_until(sentinel_id)]
    assert got == list(expected_ids) + [sentinel_id]


def test_exact_topic_matching(hub):
    with qs.open_stream(hub, ["https://example.com/a"]) as s:
        qs.publish_ok(hub, ["https://example.com/a/"], "x", id="slash")
        qs.publish_ok(hub, ["https://example.com/A"], "x", id="case")
        qs.publish_ok(hub, ["https://example.com/a?x"], "x", id="query")
        qs.publish_ok(hub, ["https://example.com/a"], "x", id="exact")
        qs.publish_ok(hub, ["https://example.com/a"], "x", id="sentinel")
        _assert_only(s, ["exact"], "sentinel")


def test_star_matches_every_topic(hub):
    with qs.open_stream(hub, ["*"]) as s:
        qs.publish_ok(hub, ["https://example.com/1"], "x", id="1")
        qs.publish_ok(hub, ["urn:foo"], "x", id="2")
        qs.publish_ok(hub, ["plain string"], "x", id="3")
        _assert_only(s, ["1", "2"], "3")


def test_uri_template_selector(hub):
    with qs.open_stream(hub, ["https://example.com/books/{id}"]) as s:
        qs.publish_ok(hub, ["https://example.com/books/1/2"], "x", id="deep")
        qs.publish_ok(hub, ["https://example.com/authors/1"], "x", id="other")
        qs.publish_ok(hub, ["https://example.com/books/1"], "x", id="one")
        qs.publish_ok(hub, ["https://example.com/books/abc-DEF_~.9"], "x", id="unreserved")
        qs.publish_ok(hub, ["https://example.com/books/"], "x", id="empty")
        qs.publish_ok(hub, ["https://example.com/books/1"], "x", id="sentinel")
        _assert_only(s, ["one", "unreserved", "empty"], "sentinel")


def test_uri_template_reserved_expansion_matches_slashes(hub):
    with qs.open_stream(hub, ["https://example.com/{+path}"]) as s:
        qs.publish_ok(hub, ["https://example.com/a/b/c"], "x", id="deep")
        qs.publish_ok(hub, ["https://other.example.com/a"], "x", id="other")
        qs.publish_ok(hub, ["https://example.com/x"], "x", id="sentinel")
        _assert_only(s, ["deep"], "sentinel")


def test_invalid_template_is_an_exact_string(hub):
    with qs.open_stream(hub, ["https://example.com/{id"]) as s:
        qs.publish_ok(hub, ["https://example.com/1"], "x", id="no")
        qs.publish_ok(hub, ["https://example.com/{id"], "x", id="yes")
        _assert_only(s, [], "yes")


def test_several_topic_params(hub):
    with qs.open_stream(hub, ["https://example.com/a", "https://example.com/b/{x}",
                              "urn:c"]) as s:
        qs.publish_ok(hub, ["https://example.com/a"], "x", id="a")
        qs.publish_ok(hub, ["https://example.com/z"], "x", id="z")
        qs.publish_ok(hub, ["https://example.com/b/1"], "x", id="b")
        qs.publish_ok(hub, ["urn:c"], "x", id="c")
        _assert_only(s, ["a", "b"], "c")


def test_duplicate_selectors_deliver_once(hub):
    with qs.open_stream(hub, [TOPIC, TOPIC, "*"]) as s:
        qs.publish_ok(hub, [TOPIC], "x", id="once")
        qs.publish_ok(hub, [TOPIC], "x", id="sentinel")
        _assert_only(s, ["once"], "sentinel")


def test_alternate_topic_reaches_subscriber(hub):
    a, b = "https://example.com/canonical", "https://example.com/alternate"
    with qs.open_stream(hub, [b]) as sb, qs.open_stream(hub, [a, b]) as sab:
        qs.publish_ok(hub, [a, b], "x", id="both")
        qs.publish_ok(hub, [b], "x", id="sentinel")
        _assert_only(sb, ["both"], "sentinel")
        # Matching both topics (and with two selectors) still delivers it once.
        _assert_only(sab, ["both"], "sentinel")


def test_update_not_matching_is_not_delivered_but_stream_stays(hub):
    with qs.open_stream(hub, ["urn:one"]) as s:
        for i in range(5):
            qs.publish_ok(hub, ["urn:two"], "x", id="n%d" % i)
        qs.publish_ok(hub, ["urn:one"], "x", id="yes")
        _assert_only(s, [], "yes")


def test_topics_are_percent_decoded_and_plus_is_space(hub):
    # The query is decoded as form data: %2F is '/', '+' is a space.
    raw = qs.build_request("GET", qs.HUB_PATH + "?topic=urn%3Aa%2Fb+c", [])
    with qs.open_stream(hub, raw_request=raw) as s:
        qs.publish_ok(hub, ["urn:a/b+c"], "x", id="plus")
        qs.publish_ok(hub, ["urn:a/b c"], "x", id="space")
        _assert_only(s, [], "space")


def test_1000_topics_accepted(hub):
    topics = ["t%d" % i for i in range(1000)]
    with qs.open_stream(hub, topics) as s:
        qs.publish_ok(hub, ["t999"], "x", id="last")
        assert s.next_event().id == "last"


def test_1001_topics_rejected(hub):
    target = qs.subscribe_target(["t%d" % i for i in range(1001)])
    r = hub.request("GET", target)
    assert r.status == 400
    assert r.body == b'Too many "topic" parameters.\n'
    assert r.header("Content-Type") == "text/plain; charset=utf-8"


@pytest.mark.parametrize("target", [
    qs.HUB_PATH,
    qs.HUB_PATH + "?",
    qs.HUB_PATH + "?foo=bar",
    qs.HUB_PATH + "?Topic=x",
    qs.HUB_PATH + "?topics=x",
])
def test_missing_topic(hub, target):
    r = hub.request("GET", target)
    assert r.status == 400
    assert r.body == b'Missing "topic" parameter.\n'
    assert r.header("Content-Type") == "text/plain; charset=utf-8"
    assert r.header("X-Content-Type-Options") == "nosniff"


def test_empty_topic_selector_is_accepted(hub):
    # url.ParseQuery("topic") == {"topic": [""]}: one (empty) selector.
    raw = qs.build_request("GET", qs.HUB_PATH + "?topic", [])
    with qs.open_stream(hub, raw_request=raw) as s:
        qs.publish_ok(hub, ["urn:x"], "x", id="x")
        assert s.collect(T(0.3)) == b""


def test_invalid_percent_encoding_in_topic_is_dropped(hub):
    """Go's URL.Query() drops pairs it cannot decode: `topic=%zz` leaves no topic."""
    r = hub.request("GET", qs.HUB_PATH + "?topic=%zz")
    assert r.status == 400
    assert r.body == b'Missing "topic" parameter.\n'


def test_invalid_pair_does_not_drop_valid_ones(hub):
    raw = qs.build_request("GET", qs.HUB_PATH + "?topic=%zz&topic=urn%3Aok", [])
    with qs.open_stream(hub, raw_request=raw) as s:
        qs.publish_ok(hub, ["urn:ok"], "x", id="ok")
        assert s.next_event().id == "ok"


def test_head_subscribe(hub):
    with hub.conn() as c:
        c.send(qs.build_request("HEAD", qs.subscribe_target([TOPIC])))
        r = c.read_head()
        assert r.status == 200
        assert r.header("Content-Type") == "text/event-stream"
        # The same head as a stream's (the reference runs the same handler for both).
        for name, value in EXPECTED_STREAM_HEADERS.items():
            if name != "connection":
                assert r.header(name) == value, (name, r.headers)
        # No body bytes follow the head of a HEAD response (give the hub a moment).
        c.sock.settimeout(T(0.3))
        try:
            extra = c.sock.recv(100)
        except OSError:
            extra = b""
        assert not extra.startswith(b":") and b"data:" not in extra, extra


def test_head_without_topic_is_400(hub):
    with hub.conn() as c:
        c.send(qs.build_request("HEAD", qs.HUB_PATH))
        r = c.read_head()
        assert r.status == 400


@pytest.mark.h1_only("HTTP/1.0")
def test_http10_subscriber_gets_an_unchunked_stream(hub):
    raw = qs.build_request("GET", qs.subscribe_target([TOPIC]), version="HTTP/1.0")
    with qs.open_stream(hub, raw_request=raw) as s:
        assert s.response.version == "HTTP/1.0"
        assert not s.response.has_header("Transfer-Encoding")
        qs.publish_ok(hub, [TOPIC], "x", id="e1")
        s.wait_raw(b"data: x\n\n")
        assert s.raw == b":\nid: e1\ndata: x\n\n"


def test_many_subscribers_same_topic(hub):
    streams = [qs.open_stream(hub, [TOPIC]) for _ in range(30)]
    try:
        qs.publish_ok(hub, [TOPIC], "fanout", id="f")
        for s in streams:
            ev = s.next_event()
            assert (ev.id, ev.data) == ("f", "fanout")
    finally:
        for s in streams:
            s.close()


def test_large_update_delivered_intact(hub):
    data = "".join(chr(65 + i % 26) for i in range(200_000))
    with qs.open_stream(hub, [TOPIC]) as s:
        qs.publish_ok(hub, [TOPIC], data, id="big")
        ev = s.next_event(T(10))
        assert ev.data == data


def test_subscribe_query_with_unrelated_params(hub):
    target = qs.subscribe_target([TOPIC], extra_query=[("foo", "bar"), ("lastEventIDx", "1")])
    with qs.open_stream(hub, raw_request=qs.build_request("GET", target)) as s:
        assert not s.response.has_header("Last-Event-Id")
        qs.publish_ok(hub, [TOPIC], "x", id="ok")
        assert s.next_event().id == "ok"


def test_topic_with_unicode_and_spaces(hub):
    topic = "urn:caf\u00e9 \u2603"
    with qs.open_stream(hub, [topic]) as s:
        qs.publish_ok(hub, [topic], "x", id="u")
        assert s.next_event().id == "u"


def test_subscribe_path_variants_are_not_the_hub(hub):
    # Only the exact path is the hub; anything under it is a 404 from the hub router.
    r = hub.request("GET", qs.HUB_PATH + "/?topic=x")
    assert r.status == 404
    r = hub.request("GET", qs.HUB_PATH + "/subscriptions")
    assert r.status == 404
