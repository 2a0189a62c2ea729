"""Publishing: form fields, generated ids, every [0.x] error status (docs/protocol.md §5, §12)."""

import time

import pytest

import qs
from qs import T

TOPIC = "https://example.com/books/1"


def _check_error(r, status, body=None):
    assert r.status == status, r
    if body is not None:
        assert r.body == body, r
    assert r.header("Content-Type") == "text/plain; charset=utf-8", r
    assert r.header("X-Content-Type-Options") == "nosniff", r


# ----------------------------------------------------------------- success

def test_publish_response(hub):
    r = qs.publish(hub, [TOPIC], "hello")
    assert r.status == 200
    assert r.header("Content-Type") == "text/plain; charset=utf-8"
    assert qs.UUID_V7_RE.match(r.text), r.text
    assert r.header("Content-Length") == str(len(r.body))
    # Security headers of the reference's middleware are on every hub response.
    assert r.header("X-Frame-Options") == "DENY"
    assert r.header("X-Content-Type-Options") == "nosniff"
    assert r.header("X-Xss-Protection") == "1; mode=block"
    assert r.header("Content-Security-Policy") == "default-src 'self'"


def test_generated_id_is_uuidv7_with_current_timestamp(hub):
    before = int(time.time() * 1000)
    ids = [qs.publish_ok(hub, [TOPIC], "x") for _ in range(20)]
    after = int(time.time() * 1000)
    assert len(set(ids)) == 20
    for i in ids:
        m = qs.UUID_V7_RE.match(i)
        assert m, i
        hexts = i[len("urn:uuid:"):].replace("-", "")[:12]
        ms = int(hexts, 16)
        assert before - 2000 <= ms <= after + 2000, (i, before, after)
    # Version nibble is 7, variant is RFC 4122.
    u = ids[0][len("urn:uuid:"):]
    assert u[14] == "7" and u[19] in "89ab"


def test_custom_id_is_used_verbatim(hub):
    with qs.open_stream(hub, [TOPIC]) as s:
        r = qs.publish(hub, [TOPIC], "x", id="my id/ with spaces:é")
        assert r.status == 200 and r.text == "my id/ with spaces:é"
        assert s.next_event().id == "my id/ with spaces:é"
        # No uniqueness check: the same id again is accepted.
        assert qs.publish_ok(hub, [TOPIC], "y", id="my id/ with spaces:é") == \
            "my id/ with spaces:é"


def test_empty_id_generates_one(hub):
    assert qs.UUID_V7_RE.match(qs.publish_ok(hub, [TOPIC], "x", id=""))


def test_all_fields_delivered(hub):
    with qs.open_stream(hub, [TOPIC]) as s:
        qs.publish_ok(hub, [TOPIC, "urn:alt"], "line1\nline2", id="full", type="mytype",
                      retry=1500)
        ev = s.next_event()
        assert ev.raw == b"event: mytype\nretry: 1500\nid: full\ndata: line1\ndata: line2\n\n"


def test_first_value_of_repeated_fields_wins(hub):
    with qs.open_stream(hub, [TOPIC]) as s:
        body = qs.form_body([("topic", TOPIC), ("data", "first"), ("data", "second"),
                             ("id", "id1"), ("id", "id2"), ("type", "t1"), ("type", "t2")])
        r = qs.publish(hub, body=body)
        assert r.status == 200 and r.text == "id1"
        assert s.next_event().raw == b"event: t1\nid: id1\ndata: first\n\n"


def test_unknown_fields_ignored(hub):
    r = qs.publish(hub, [TOPIC], "x", extra=[("foo", "bar"), ("topics", "y")])
    assert r.status == 200


def test_form_content_type_with_charset(hub):
    body = qs.form_body([("topic", TOPIC), ("data", "x")])
    raw = qs.build_request("POST", qs.HUB_PATH, [
        ("Authorization", "Bearer " + qs.pub_token()),
        ("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")], body)
    with hub.conn() as c:
        c.send(raw)
        assert c.read_response().status == 200


def test_body_not_form_encoded_is_ignored(hub):
    body = qs.form_body([("topic", TOPIC), ("data", "x")])
    raw = qs.build_request("POST", qs.HUB_PATH, [
        ("Authorization", "Bearer " + qs.pub_token()),
        ("Content-Type", "text/plain")], body)
    with hub.conn() as c:
        c.send(raw)
        r = c.read_response()
        _check_error(r, 400, b'Missing "topic" parameter\n')


def test_topic_in_query_string_is_not_a_form_field(hub):
    """The reference reads r.PostForm: query parameters are not update fields."""
    raw = qs.build_request("POST", qs.HUB_PATH + "?topic=urn%3Aq", [
        ("Authorization", "Bearer " + qs.pub_token()),
        ("Content-Type", "application/x-www-form-urlencoded")], b"data=x")
    with hub.conn() as c:
        c.send(raw)
        _check_error(c.read_response(), 400, b'Missing "topic" parameter\n')


@pytest.mark.parametrize("value", ["on", "", "false", "0", "off"])
def test_private_field_presence_makes_update_private(hub, value):
    """`private` present => private, whatever its value."""
    with qs.open_stream(hub, [TOPIC]) as anon:
        qs.publish_ok(hub, [TOPIC], "x", id="priv", extra=[("private", value)])
        qs.publish_ok(hub, [TOPIC], "x", id="pub")
        assert [e.id for e in anon.events_until("pub")] == ["pub"]


def test_plus_and_percent_decoding_in_body(hub):
    with qs.open_stream(hub, ["urn:a b"]) as s:
        body = b"topic=urn%3Aa+b&data=1%2B1+%3D+2%26%C3%A9&id=x%20y"
        r = qs.publish(hub, body=body)
        assert r.status == 200 and r.text == "x y"
        assert s.next_event().data == "1+1 = 2&\u00e9"


def test_max_topics_1000_accepted(hub):
    topics = ["urn:t%d" % i for i in range(1000)]
    with qs.open_stream(hub, ["urn:t999"]) as s:
        qs.publish_ok(hub, topics, "x", id="k")
        assert s.next_event().id == "k"


# ----------------------------------------------------------------- errors

def test_no_token_401(hub):
    _check_error(qs.publish(hub, [TOPIC], "x", token=None), 401, b"Unauthorized\n")


def test_invalid_token_401(hub):
    _check_error(qs.publish(hub, [TOPIC], "x", token="not.a.jwt" + "x" * 50), 401,
                 b"Unauthorized\n")


def test_token_signed_with_subscriber_key_401(hub):
    tok = qs.pub_token(key=qs.SUB_KEY)
    _check_error(qs.publish(hub, [TOPIC], "x", token=tok), 401, b"Unauthorized\n")


@pytest.mark.parametrize("claims", [
    {"mercure": {"subscribe": ["*"]}},
    {"mercure": {}},
    {"foo": "bar"},
    {"mercure": {"publish": None}},
])
def test_token_without_publish_claim_401(hub, claims):
    tok = qs.make_jwt(claims, qs.PUB_KEY)
    _check_error(qs.publish(hub, [TOPIC], "x", token=tok), 401, b"Unauthorized\n")


def test_empty_publish_claim_cannot_publish(hub):
    tok = qs.make_jwt({"mercure": {"publish": []}}, qs.PUB_KEY)
    _check_error(qs.publish(hub, [TOPIC], "x", token=tok), 401)


def test_missing_topic_400(hub):
    _check_error(qs.publish(hub, [], "x"), 400, b'Missing "topic" parameter\n')


def test_1001_topics_400(hub):
    r = qs.publish(hub, ["urn:t%d" % i for i in range(1001)], "x")
    _check_error(r, 400)


@pytest.mark.parametrize("retry", ["abc", "-1", "1.5", "1e3", " 1", "0x10",
                                   "18446744073709551616"])
def test_bad_retry_400(hub, retry):
    r = qs.publish(hub, [TOPIC], "x", retry=retry)
    _check_error(r, 400, b'Invalid "retry" parameter\n')


@pytest.mark.parametrize("retry", ["0", "18446744073709551615", "007"])
def test_good_retry(hub, retry):
    with qs.open_stream(hub, [TOPIC]) as s:
        qs.publish_ok(hub, [TOPIC], "x", retry=retry, id="r")
        ev = s.next_event()
        expected = None if int(retry) == 0 else str(int(retry))
        assert ev.retry == expected


def test_private_topic_not_authorized_401(hub):
    tok = qs.pub_token(["https://example.com/allowed/{id}"])
    r = qs.publish(hub, ["https://example.com/other"], "x", private=True, token=tok)
    _check_error(r, 401, b"Unauthorized\n")


def test_public_topic_not_authorized_401(hub):
    tok = qs.pub_token(["https://example.com/allowed/{id}"])
    _check_error(qs.publish(hub, ["https://example.com/other"], "x", token=tok), 401,
                 b"Unauthorized\n")


def test_every_topic_must_be_authorized(hub):
    tok = qs.pub_token(["https://example.com/allowed/{id}"])
    assert qs.publish(hub, ["https://example.com/allowed/1"], "x", token=tok).status == 200
    r = qs.publish(hub, ["https://example.com/allowed/1", "urn:other"], "x", token=tok)
    _check_error(r, 401)
    assert qs.publish(hub, ["https://example.com/allowed/1", "https://example.com/allowed/2"],
                      "x", token=tok, private=True).status == 200


def test_publish_claim_exact_and_template(hub):
    tok = qs.pub_token(["urn:exact", "https://example.com/b/{id}"])
    assert qs.publish(hub, ["urn:exact"], "x", token=tok).status == 200
    assert qs.publish(hub, ["https://example.com/b/7"], "x", token=tok).status == 200
    assert qs.publish(hub, ["https://example.com/b/7/8"], "x", token=tok).status == 401
    assert qs.publish(hub, ["urn:exact2"], "x", token=tok).status == 401


def test_protocol_7_accepts_unauthorized_public_topic(start_hub):
    hub = start_hub(extra=["protocol_version_compatibility 7"])
    tok = qs.pub_token(["urn:allowed"])
    with qs.open_stream(hub, ["urn:other"]) as s:
        r = qs.publish(hub, ["urn:other"], "x", token=tok, id="compat")
        assert r.status == 200 and r.text == "compat"
        assert s.next_event().id == "compat"
    # Private updates still need the claim.
    _check_error(qs.publish(hub, ["urn:other"], "x", token=tok, private=True), 401)


@pytest.mark.parametrize("topic", [
    "/.well-known/mercure",
    "https://example.com/.well-known/mercure/subscriptions/x/y",
    "urn:/.well-known/mercure",
    "/.well-known/mercure/",
])
def test_reserved_topic_403(hub, topic):
    r = qs.publish(hub, [topic], "x")
    assert r.status == 403, r
    assert r.header("Content-Type") == "text/plain; charset=utf-8"
    # As an alternate topic too.
    assert qs.publish(hub, ["urn:ok", topic], "x").status == 403


def test_reserved_like_topics_allowed(hub):
    for topic in ["/.well-known/mercur", "/.well-known/Mercure", "/.well-known%2Fmercure",
                  "/.well-known/ mercure"]:
        assert qs.publish(hub, [topic], "x").status == 200, topic


@pytest.mark.parametrize("field", ["id", "type"])
@pytest.mark.parametrize("enc", ["%0A", "%0D", "%00", "a%0Ab", "a%0D%0Aretry: 1"])
def test_id_and_type_control_chars_400(hub, field, enc):
    body = ("topic=urn%3Ax&data=x&" + field + "=" + enc).encode()
    r = qs.publish(hub, body=body)
    _check_error(r, 400)


def test_data_may_contain_control_chars(hub):
    with qs.open_stream(hub, ["urn:x"]) as s:
        r = qs.publish(hub, body=b"topic=urn%3Ax&id=c&data=a%00b%09c")
        assert r.status == 200
        assert s.next_event().raw == b"id: c\ndata: a\x00b\tc\n\n"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_wrong_method_405(hub, method):
    r = hub.request(method, qs.HUB_PATH, [("Authorization", "Bearer " + qs.pub_token())])
    assert r.status == 405, r


def test_body_over_max_request_body_size_413(start_hub):
    hub = start_hub(extra=["max_request_body_size 1KiB"])
    assert qs.publish(hub, ["urn:x"], "a" * 900).status == 200
    r = qs.publish(hub, ["urn:x"], "a" * 2000)
    assert r.status == 413, r
    assert hub.metric("mercure_http_bad_requests_total") >= 1
    # The hub is fine afterwards.
    assert qs.publish(hub, ["urn:x"], "a" * 900).status == 200


def test_publish_413_counted_in_publish_errors_metric(start_hub):
    hub = start_hub(extra=["max_request_body_size 1KiB"])
    assert qs.publish(hub, ["urn:x"], "a" * 2000).status == 413
    assert hub.metric("mercure_publish_errors_total", {"reason": "too_large"}) == 1


def test_publish_error_does_not_reach_subscribers(hub):
    with qs.open_stream(hub, ["*"]) as s:
        qs.publish(hub, ["/.well-known/mercure"], "x", id="reserved")
        qs.publish(hub, ["urn:x"], "x", id="bad\n")
        qs.publish(hub, ["urn:x"], "x", id="noauth", token=None)
        qs.publish_ok(hub, ["urn:x"], "x", id="ok")
        assert [e.id for e in s.events_until("ok")] == ["ok"]


def test_error_order_auth_before_topic(hub):
    # Without a token, a request lacking a topic is still a 401 (authorization first).
    _check_error(qs.publish(hub, [], "x", token=None), 401)
    # Missing topic is checked before retry.
    _check_error(qs.publish(hub, [], "x", retry="abc"), 400, b'Missing "topic" parameter\n')


def test_publish_latency_is_low(hub):
    with hub.conn() as c:
        t0 = time.monotonic()
        for i in range(50):
            qs.publish_ok(hub, ["urn:x"], "x", conn=c)
        assert time.monotonic() - t0 < T(5)
