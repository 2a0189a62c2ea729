"""HTTP/1.x robustness: malformed requests, limits, timeouts, keep-alive, pipelining,
connection churn. After each test the hub must still be alive (checked by the fixtures)."""

import socket
import time

import pytest

import qs
from qs import T


def _expect_status_then_close(hub, raw, status, timeout=None):
    with hub.conn() as c:
        c.send(raw)
        r = c.read_response(timeout=timeout)
        assert r.status == status, r
        assert c.wait_closed(T(3)), "connection not closed after %d" % status
        return r


def _healthy(hub):
    assert hub.request("GET", "/healthz").status == 200


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /healthz\r\n\r\n",
    b"GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n",
    b"GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTX/1.1\r\nHost: x\r\n\r\n",
    b"\x00\x01\x02\x03 / HTTP/1.1\r\n\r\n",
    b"GET /health\x00z HTTP/1.1\r\nHost: x\r\n\r\n",
    b"G(T /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_malformed_request_line_400_then_close(hub, raw):
    _expect_status_then_close(hub, raw, 400)
    _healthy(hub)


@pytest.mark.parametrize("header", [
    b"NoColon\r\n",
    b"Bad Name: x\r\n",
    b": empty-name\r\n",
    b"X-Nul: a\x00b\r\n",
    b" Folded: continuation\r\n",
])
def test_malformed_header_400(hub, header):
    raw = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n"
    _expect_status_then_close(hub, raw, 400)


def test_unsupported_http_version(hub):
    with hub.conn() as c:
        c.send(b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status in (400, 505), r


def test_header_over_max_header_size_431(start_hub):
    hub = start_hub(extra=["max_header_size 2KiB"])
    raw = qs.build_request("GET", "/healthz", [("X-Big", "a" * 3000)])
    _expect_status_then_close(hub, raw, 431)
    # Just under the limit is fine.
    assert hub.request("GET", "/healthz", [("X-Big", "a" * 1500)]).status == 200


def test_huge_header_block_default_limit(hub):
    """64 KiB default: a 100 KiB head is refused, sent in pieces."""
    with hub.conn() as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        try:
            for i in range(100):
                c.send(b"X-H%d: %s\r\n" % (i, b"a" * 1000))
        except OSError:
            pass  # the hub may close while we are still sending
        r = c.read_response()
        assert r.status == 431
    _healthy(hub)


def test_long_url_431(start_hub):
    hub = start_hub(extra=["max_header_size 4KiB"])
    raw = qs.build_request("GET", qs.HUB_PATH + "?topic=" + "a" * 8000)
    with hub.conn() as c:
        c.send(raw)
        r = c.read_response()
        assert r.status in (414, 431), r


def test_transfer_encoding_gzip_501(hub):
    raw = (b"POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\n"
           b"Transfer-Encoding: gzip\r\nContent-Type: application/x-www-form-urlencoded\r\n"
           b"Authorization: Bearer " + qs.pub_token().encode() + b"\r\n\r\n")
    _expect_status_then_close(hub, raw, 501)


def test_content_length_and_transfer_encoding_400(hub):
    body = qs.form_body([("topic", "urn:x"), ("data", "x")])
    raw = qs.build_request("POST", qs.HUB_PATH, [
        ("Authorization", "Bearer " + qs.pub_token()),
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Content-Length", str(len(body))),
        ("Transfer-Encoding", "chunked")], b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    _expect_status_then_close(hub, raw, 400)


@pytest.mark.parametrize("cl", ["abc", "-1", "1 2", "0x10", "+5", "99999999999999999999999"])
def test_bad_content_length_400(hub, cl):
    raw = b"POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\nContent-Length: " + \
        cl.encode() + b"\r\n\r\n"
    with hub.conn() as c:
        c.send(raw)
        r = c.read_response()
        assert r.status in (400, 413), r


def test_conflicting_content_lengths_400(hub):
    raw = (b"POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
           b"Content-Length: 4\r\n\r\nabcd")
    _expect_status_then_close(hub, raw, 400)


def _chunked_publish(chunks_bytes):
    return (b"POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + qs.pub_token().encode() + b"\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunks_bytes)


def test_valid_chunked_publish_body(hub):
    with qs.open_stream(hub, ["urn:chunked"]) as s:
        body = b"topic=urn%3Achunked&id=ch&data=hello+chunked+world"
        parts = [body[:5], body[5:20], body[20:]]
        chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts)
        with hub.conn() as c:
            c.send(_chunked_publish(chunks + b"0\r\nX-Trailer: y\r\n\r\n"))
            r = c.read_response()
            assert r.status == 200 and r.text == "ch", r
            # The connection is still usable.
            assert c.request("GET", "/healthz").status == 200
        ev = s.next_event()
        assert (ev.id, ev.data) == ("ch", "hello chunked world")


def test_chunked_publish_sent_byte_by_byte(hub):
    body = b"topic=urn%3Ax&data=slow"
    raw = _chunked_publish(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    with hub.conn() as c:
        for i in range(len(raw)):
            c.send(raw[i:i + 1])
        assert c.read_response().status == 200


@pytest.mark.parametrize("chunks", [
    b"zz\r\nabc\r\n0\r\n\r\n",                  # bad size
    b"3\r\nabcdef\r\n0\r\n\r\n",                # chunk longer than its size
    b"3\r\nabc0\r\n\r\n",                       # missing CRLF after data
    b"-1\r\nabc\r\n0\r\n\r\n",                  # negative size
    b"ffffffffffffffffffff\r\nabc\r\n",        # overflowing size
])
def test_broken_chunked_body_400(hub, chunks):
    with hub.conn() as c:
        c.send(_chunked_publish(chunks))
        r = c.read_response()
        assert r.status in (400, 413), r
        assert c.wait_closed(T(3))
    _healthy(hub)


def test_chunked_body_over_limit_413(start_hub):
    hub = start_hub(extra=["max_request_body_size 1KiB"])
    chunk = b"a" * 600
    raw = _chunked_publish(b"%x\r\n%s\r\n" % (len(chunk), chunk) * 3 + b"0\r\n\r\n")
    with hub.conn() as c:
        try:
            c.send(raw)
        except OSError:
            pass
        assert c.read_response().status == 413


def test_expect_100_continue(hub):
    body = qs.form_body([("topic", "urn:x"), ("data", "x"), ("id", "cont")])
    head = qs.build_request("POST", qs.HUB_PATH, [
        ("Authorization", "Bearer " + qs.pub_token()),
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Content-Length", str(len(body))), ("Expect", "100-continue")])
    with hub.conn() as c:
        c.send(head)
        interim = c.read_head()
        assert interim.status == 100
        c.send(body)
        r = c.read_response()
        assert r.status == 200 and r.text == "cont"


def test_half_sent_request_closed_after_request_timeout(start_hub):
    hub = start_hub(extra=["request_timeout 1s"])
    with hub.conn() as c:
        t0 = time.monotonic()
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Partial: ")
        assert c.wait_closed(T(6)), "half-sent request never timed out"
        elapsed = time.monotonic() - t0
        assert 0.8 <= elapsed <= 1.0 + T(2), elapsed
        # If the hub answered before closing, it is a 408.
        if c.buf:
            assert c.buf.startswith(b"HTTP/1.1 408"), c.buf[:100]


def test_half_sent_body_closed_after_request_timeout(start_hub):
    hub = start_hub(extra=["request_timeout 1s"])
    with hub.conn() as c:
        c.send(qs.build_request("POST", qs.HUB_PATH, [("Content-Length", "100")]) + b"topic=")
        assert c.wait_closed(T(6))


def test_request_timeout_does_not_affect_streams(start_hub):
    hub = start_hub(extra=["request_timeout 500ms"])
    with qs.open_stream(hub, ["urn:x"]) as s:
        time.sleep(1.2)
        qs.publish_ok(hub, ["urn:x"], "x", id="late")
        assert s.next_event().id == "late"


def test_idle_keepalive_connection_closed_after_idle_timeout(start_hub):
    hub = start_hub(extra=["idle_timeout 1s"])
    with hub.conn() as c:
        assert c.request("GET", "/healthz").status == 200
        t0 = time.monotonic()
        assert c.wait_closed(T(6))
        assert time.monotonic() - t0 >= 0.8


def test_keep_alive_two_publishes_one_connection(hub):
    with qs.open_stream(hub, ["urn:ka"]) as s, hub.conn() as c:
        a = qs.publish_ok(hub, ["urn:ka"], "one", conn=c, id="one")
        b = qs.publish_ok(hub, ["urn:ka"], "two", conn=c, id="two")
        assert (a, b) == ("one", "two")
        assert [e.id for e in s.events_until("two")] == ["one", "two"]


def test_pipelined_requests_answered_in_order(hub):
    reqs = [qs.publish_request(["urn:p"], data="d%d" % i, id="p%d" % i) for i in range(5)]
    reqs.insert(2, qs.build_request("GET", "/healthz"))
    reqs.insert(4, qs.build_request("GET", qs.HUB_PATH))  # 400: no topic
    with hub.conn() as c:
        c.send(b"".join(reqs))
        statuses, bodies = [], []
        for raw in reqs:
            method = raw.split(b" ", 1)[0].decode()
            r = c.read_response(method)
            statuses.append(r.status)
            bodies.append(r.body)
        assert statuses == [200, 200, 200, 200, 400, 200, 200]
        assert [b for b, st in zip(bodies, statuses) if st == 200 and b.startswith(b"p")] == \
            [b"p0", b"p1", b"p2", b"p3", b"p4"]


def test_pipelined_publish_then_subscribe(hub):
    with hub.conn() as c:
        c.send(qs.publish_request(["urn:x"], data="x", id="first") +
               qs.subscribe_request(["urn:pipe"]))
        r = c.read_response("POST")
        assert r.status == 200 and r.text == "first"
        head = c.read_head()
        assert head.status == 200
        s = qs.SSEStream(c, head)
        s.wait_raw(2)
        qs.publish_ok(hub, ["urn:pipe"], "y", id="second")
        assert s.next_event().id == "second"


def test_connection_close_honoured(hub):
    with hub.conn() as c:
        r = c.request("GET", "/healthz", [("Connection", "close")])
        assert r.status == 200
        assert c.wait_closed(T(3))


def test_http10_publish_closes(hub):
    body = qs.form_body([("topic", "urn:x"), ("data", "x")])
    raw = qs.build_request("POST", qs.HUB_PATH, [
        ("Authorization", "Bearer " + qs.pub_token()),
        ("Content-Type", "application/x-www-form-urlencoded")], body, version="HTTP/1.0")
    with hub.conn() as c:
        c.send(raw)
        r = c.read_response("POST")
        assert r.status == 200 and r.version == "HTTP/1.0"
        assert c.wait_closed(T(3))


@pytest.mark.parametrize("body", [b"topic=%zz&data=x", b"topic=urn%3Ax&data=%", b"topic=urn%3Ax&data=%4",
                                  b"topic=urn%3Ax&data=%G0"])
def test_invalid_percent_encoding_in_publish_body_400(hub, body):
    r = qs.publish(hub, body=body)
    assert r.status == 400, r
    assert r.body == b"Bad Request\n"


def test_invalid_percent_encoding_in_publish_query_400(hub):
    """Go's ParseForm also parses (and fails on) the query string of a POST."""
    raw = qs.build_request("POST", qs.HUB_PATH + "?x=%zz", [
        ("Authorization", "Bearer " + qs.pub_token()),
        ("Content-Type", "application/x-www-form-urlencoded")], b"topic=urn%3Ax&data=x")
    with hub.conn() as c:
        c.send(raw)
        assert c.read_response().status == 400


def test_subscribe_invalid_percent_encoding_400(hub):
    r = hub.request("GET", qs.HUB_PATH + "?topic=%zz")
    assert r.status == 400
    assert r.body == b'Missing "topic" parameter.\n'


@pytest.mark.parametrize("token", ["", "x", "a.b", "a.b.c.d", "....", "%%%",
                                   "eyJhbGciOiJIUzI1NiJ9." * 5, "\u00e9" * 30])
def test_garbage_authorization_values(hub, token):
    with hub.conn() as c:
        c.send(qs.build_request("GET", qs.subscribe_target(["urn:x"]),
                                [("Authorization", ("Bearer " + token + "x" * 48))]))
        assert c.read_response().status == 401
    r = qs.publish(hub, ["urn:x"], "x", token=token + "y" * 48)
    assert r.status == 401


def test_500_connections_opened_and_closed(hub):
    for i in range(500):
        s = socket.create_connection((qs.HOST, hub.port), timeout=T(5))
        if i % 3 == 1:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        elif i % 3 == 2:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.sendall(qs.subscribe_request(["urn:x"]))
        s.close()
    _healthy(hub)
    qs.wait_until(lambda: hub.metric("mercure_subscribers_connected") == 0, T(10))
    qs.wait_until(lambda: hub.metric("mercure_connections_open") <= 1, T(10),
                  what="connections to be released")


def test_many_concurrent_open_connections(hub):
    conns = [hub.conn() for _ in range(200)]
    try:
        for c in conns[::10]:
            assert c.request("GET", "/healthz").status == 200
    finally:
        for c in conns:
            c.close()
    _healthy(hub)


def test_client_disconnecting_mid_stream(hub):
    big = "z" * 300_000
    for abort in (False, True):
        s = qs.open_stream(hub, ["urn:x"], rcvbuf=4096)
        qs.publish_ok(hub, ["urn:x"], big)
        qs.publish_ok(hub, ["urn:x"], big)
        if abort:
            s.conn.abort()
        else:
            s.close()
        for _ in range(3):
            qs.publish_ok(hub, ["urn:x"], big)
    with qs.open_stream(hub, ["urn:x"]) as s:
        qs.publish_ok(hub, ["urn:x"], "x", id="alive")
        assert s.next_event().id == "alive"
    qs.wait_until(lambda: hub.metric("mercure_subscribers_connected") == 0, T(10))


def test_subscriber_sending_data_is_ignored(hub):
    with qs.open_stream(hub, ["urn:x"]) as s:
        s.conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\ngarbage\r\n\r\n")
        qs.publish_ok(hub, ["urn:x"], "x", id="still")
        assert s.next_event().id == "still"
        assert b"HTTP/1.1" not in s.raw


def test_client_half_close_after_request(hub):
    with hub.conn() as c:
        c.send(qs.build_request("GET", "/healthz"))
        c.sock.shutdown(socket.SHUT_WR)
        r = c.read_response()
        assert r.status == 200


def test_absolute_form_and_asterisk_targets(hub):
    with hub.conn() as c:
        c.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert 400 <= r.status < 500
    _healthy(hub)


def test_random_garbage_streams(hub):
    import random
    rnd = random.Random(1234)
    for _ in range(50):
        data = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 400)))
        with hub.conn(timeout=T(3)) as c:
            try:
                c.send(data + b"\r\n\r\n")
                c.read_response(timeout=T(3))
            except (OSError, qs.ConnectionClosed, AssertionError):
                pass
    _healthy(hub)


def test_hub_survives_everything(hub):
    """A final smoke test on one hub: abuse, then normal traffic."""
    for raw in [b"GARBAGE\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab",
                b"GET /.well-known/mercure?topic=%zz HTTP/1.1\r\n\r\n"]:
        with hub.conn(timeout=T(2)) as c:
            c.send(raw)
    with qs.open_stream(hub, ["urn:final"]) as s:
        qs.publish_ok(hub, ["urn:final"], "ok", id="final")
        assert s.next_event().id == "final"
    _healthy(hub)
