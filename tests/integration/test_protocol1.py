"""Protocol 1.0 (`protocol 1.0`): the exchanges recorded with the reference hub's 1.0 line,
byte for byte where the reference's bytes are known (status, error bodies, challenges, SSE
bytes, documents), and every row of the side-by-side summary of the two generations as 1.0
answers it (docs/protocol-1.0.md)."""

import json
import time

import pytest

import qs
import qs1
from qs import T


@pytest.fixture
def hub(start_hub):
    """The reference's recorded hub: no anonymous subscribers, subscriptions on."""
    return qs1.start(start_hub, extra=["subscriptions"])


# --------------------------------------------------------------------------- the exchanges

def test_01_protected_resource_metadata(hub):
    r = qs1.request(hub, "GET", qs1.METADATA_PATH)
    assert r.status == 200
    assert r.header("Content-Type") == "application/json"
    assert r.body == (
        b'{"resource":"%s","bearer_methods_supported":["header"],'
        b'"authorization_details_types_supported":["https://mercure.rocks/authorization-detail"],'
        b'"mercure_cookie":"__Secure-mercure_access_token","mercure_subscriptions":true}\n'
        % hub.aud.encode())


def test_02_subscribe_without_token_gets_the_bare_challenge(hub):
    r = qs1.request(hub, "GET", qs1.matcher_target([("match", "https://example.com/books/1")]),
                    [("Accept", "text/event-stream")])
    assert r.status == 401
    assert r.header("Content-Type") == "text/plain; charset=utf-8"
    assert r.header("WWW-Authenticate") == qs1.challenge(hub)
    assert r.body == b"Unauthorized\n"


def test_03_exact_match_receives_the_update(hub):
    tall = qs1.all_token(hub)
    with qs1.open_matchers(hub, [("match", "https://example.com/books/1")], tall) as s:
        assert s.response.header("Content-Type") == "text/event-stream"
        assert s.response.header("Cache-Control") == \
            "private, no-cache, no-store, must-revalidate, max-age=0"
        assert s.response.header("X-Accel-Buffering") == "no"
        assert not s.response.has_header("Mercure-Last-Event-Id")
        qs1.publish_ok(hub, "https://example.com/books/1", '{"status":"checked out"}',
                       token=tall, id="urn:ex:3")
        s.wait_raw(b"\n\n", T(5))
        assert s.raw == b':\nid: urn:ex:3\ndata: {"status":"checked out"}\n\n'


def test_04_urlpattern_with_a_scoped_token_receives_a_private_update(hub):
    tbooks = qs1.books_token(hub)
    with qs1.open_matchers(hub, [("match_urlpattern", "https://example.com/books/:id")],
                           tbooks) as s:
        qs1.publish_ok(hub, "https://example.com/books/2", "private book 2", token=tbooks,
                       id="urn:ex:4", private=True)
        s.wait_raw(b"\n\n", T(5))
        assert s.raw == b":\nid: urn:ex:4\ndata: private book 2\n\n"


@pytest.mark.parametrize("pairs,body", [
    ([("match_regex", ".*")], 'unknown topic matcher query parameter: "match_regex"'),
    ([("Match", "foo")], 'unknown topic matcher query parameter: "Match"'),
    ([("topic", "foo")], 'unknown topic matcher query parameter: "topic" (use "match" or '
                         '"match_urlpattern")'),
    ([("match_urlpattern", "https://example.com/(")], "invalid topic matcher pattern"),
])
def test_05_to_08_matcher_errors(hub, pairs, body):
    r = qs1.request(hub, "GET", qs1.matcher_target(pairs), token=qs1.all_token(hub))
    assert r.status == 400
    assert r.header("Content-Type") == "text/plain; charset=utf-8"
    assert not r.has_header("WWW-Authenticate")
    assert r.body == body.encode() + b"\n"


def test_09_query_method_with_a_form_body(hub):
    tall = qs1.all_token(hub)
    body = b"match=https%3A%2F%2Fexample.com%2Fbooks%2F1&match_urlpattern=" \
           b"https%3A%2F%2Fexample.com%2Fusers%2F%3Aid"
    with qs1.open_matchers(hub, [], tall, method="QUERY", body=body,
                           headers=[("Content-Type", "application/x-www-form-urlencoded")]) as s:
        qs1.publish_ok(hub, "https://example.com/users/7", "user 7", token=tall,
                       id="urn:ex:query")
        s.wait_raw(b"\n\n", T(5))
        assert s.raw == b":\nid: urn:ex:query\ndata: user 7\n\n"


def test_10_query_with_a_body_that_names_no_matcher(hub):
    r = qs1.request(hub, "QUERY", qs.HUB_PATH, [("Content-Type", "application/json")],
                    b'{"match":"foo"}', token=qs1.all_token(hub))
    assert r.status == 400
    assert r.body == b'missing "match" subscription parameter\n'


def test_11_publish_without_token(hub):
    r = qs1.publish(hub, "https://example.com/books/1", "x")
    assert r.status == 401
    assert r.header("WWW-Authenticate") == qs1.challenge(hub)
    assert r.body == b"Unauthorized\n"


def test_12_publish_with_a_valid_access_token(hub):
    r = qs1.publish(hub, "https://example.com/books/1", "hello", token=qs1.books_token(hub))
    assert r.status == 200
    assert r.header("Content-Type") == "text/plain; charset=utf-8"
    assert qs.UUID_V7_RE.match(r.text), r.text


@pytest.mark.parametrize("topics", [
    ["https://example.com/authors/1"],
    ["https://example.com/books/1", "https://example.com/users/42/books/1"],
])
def test_13_14_publish_without_a_grant_for_every_topic(hub, topics):
    r = qs1.publish(hub, topics, "x", token=qs1.books_token(hub))
    assert r.status == 403
    assert r.header("WWW-Authenticate") == qs1.challenge(hub, "insufficient_scope")
    assert r.body == b"Forbidden\n"


def test_15_to_17_invalid_tokens(hub):
    bad_aud = qs1.access_token("https://other.example/.well-known/mercure",
                               [qs1.detail(["publish"], ["*"])])
    legacy = qs1.sign({"mercure": {"publish": ["*"], "subscribe": ["*"]}}, typ=None)
    not_at = qs1.sign({"iss": qs1.ISSUER, "aud": hub.aud, "exp": int(time.time()) + 3600,
                       "authorization_details": [qs1.detail(["publish"], ["*"])]}, typ="JWT")
    for tok in (bad_aud, legacy, not_at):
        r = qs1.publish(hub, "foo", "x", token=tok)
        assert r.status == 401, r
        assert r.header("WWW-Authenticate") == qs1.challenge(hub, "invalid_token")
        assert r.body == b"Unauthorized\n"


def test_18_reserved_event_type(hub):
    r = qs1.publish(hub, "foo", "x", token=qs1.all_token(hub), type="mercure")
    assert r.status == 400
    assert r.body == b'"type" field uses the reserved value "mercure"\n'


def test_19_a_header_without_a_bearer_token(hub):
    r = qs1.publish(hub, "foo", "x", headers=[("Authorization", "Basic Zm9vOmJhcg==")])
    assert r.status == 400
    assert r.header("WWW-Authenticate") == qs1.challenge(hub, "invalid_request")
    assert r.body == b"Bad Request\n"


def _history(hub, tall):
    return [qs1.publish_ok(hub, "https://example.com/history", "h%d" % i, token=tall)
            for i in range(3)]


def test_20_resume_with_the_last_event_id_header(hub):
    tall = qs1.all_token(hub)
    ids = _history(hub, tall)
    with qs1.open_matchers(hub, [("match", "https://example.com/history")], tall,
                           headers=[("Last-Event-ID", ids[0])]) as s:
        assert s.response.header("Mercure-Last-Event-Id") == ids[0]
        assert not s.response.has_header("Last-Event-Id")  # 0.x's header
        s.wait_for(lambda: len(s.events) >= 2, T(5), "two replayed events")
        assert s.raw == (":\nid: %s\ndata: h1\n\nid: %s\ndata: h2\n\n"
                         % (ids[1], ids[2])).encode()


def test_21_resume_from_earliest(hub):
    tall = qs1.all_token(hub)
    ids = _history(hub, tall)
    with qs1.open_matchers(hub, [("match", "https://example.com/history"),
                                 ("last_event_id", "earliest")], tall) as s:
        assert s.response.header("Mercure-Last-Event-Id") == "earliest"
        s.wait_for(lambda: len(s.events) >= 3, T(5), "three replayed events")
        assert [e.id for e in s.events] == ids
        assert [e.data for e in s.events] == ["h0", "h1", "h2"]


def test_22_resume_from_an_unknown_id(hub):
    tall = qs1.all_token(hub)
    _history(hub, tall)
    with qs1.open_matchers(hub, [("match", "https://example.com/history")], tall,
                           headers=[("Last-Event-ID",
                                     "urn:uuid:00000000-0000-0000-0000-000000000000")]) as s:
        assert s.response.header("Mercure-Last-Event-Id") == "earliest"
        assert s.collect(0.5) == b""
        assert s.raw == b":\n"


def _subscriber_id(hub, tall, n=1):
    r = qs1.request(hub, "GET", qs1.SUBSCRIPTIONS, token=tall)
    assert r.status == 200, r
    return [x["subscriber"] for x in json.loads(r.body)["subscriptions"]]


def test_23_subscription_api_collection(hub):
    tall = qs1.all_token(hub)
    with qs1.open_matchers(hub, [("match_urlpattern", "https://example.com/books/:id")],
                           qs1.books_token(hub)):
        last = qs1.publish_ok(hub, "https://example.com/x", "x", token=tall)
        r = qs1.request(hub, "GET", qs1.SUBSCRIPTIONS, token=tall)
        assert r.status == 200
        assert r.header("Content-Type") == "application/json"
        assert r.header("Link") == ('</.well-known/mercure>; rel="mercure"; last-event-id="%s"; '
                                    'type="mercure"; content-type="application/json"' % last)
        assert r.header("ETag") == '"%s"' % last
        doc = json.loads(r.body)
        sub = doc["subscriptions"][0]["subscriber"]
        assert r.text == qs1.go_json({
            "id": qs1.SUBSCRIPTIONS, "type": "subscriptions",
            "subscriptions": [qs1.subscription_doc("urlpattern", "https://example.com/books/:id",
                                                   sub, True)]})
        # The same ETag again: 304.
        r2 = qs1.request(hub, "GET", qs1.SUBSCRIPTIONS, [("If-None-Match", '"%s"' % last)],
                         token=tall)
        assert r2.status == 304
        assert r2.header("ETag") == '"%s"' % last


WATCH = "/.well-known/mercure/subscriptions/:match_type/:match/:subscriber"


def test_24_subscription_events(hub):
    tall = qs1.all_token(hub)
    with qs1.open_matchers(hub, [("match_urlpattern", WATCH)], tall) as w:
        first = w.next_event()
        own = json.loads(first.data)["subscriber"]
        # A 1.0 subscriber sees its own arrival (the reference announces after registering).
        assert first.type == "mercure"
        assert first.data == qs1.go_json(qs1.subscription_doc("urlpattern", WATCH, own, True))
        assert first.raw.startswith(b"event: mercure\nid: urn:uuid:")
        other = qs1.open_matchers(hub, [("match", "https://example.com/books/9")], tall)
        arrived = w.next_event()
        sub = json.loads(arrived.data)["subscriber"]
        assert sub != own
        assert arrived.data == qs1.go_json(
            qs1.subscription_doc("exact", "https://example.com/books/9", sub, True))
        other.close()
        left = w.next_event()
        assert left.type == "mercure"
        assert left.data == qs1.go_json(
            qs1.subscription_doc("exact", "https://example.com/books/9", sub, False))
        assert left.id != arrived.id


def test_25_anonymous_subscriber(start_hub):
    hub = qs1.start(start_hub, extra=["cors_origins *"], anonymous=True)
    with qs1.open_matchers(hub, [("match", "foo")]) as s:
        assert s.raw == b":\n"


def test_26_challenge_with_a_pinned_resource_identifier(start_hub):
    hub = qs1.start(start_hub, extra=["resource_identifier https://localhost/.well-known/mercure"],
                    anonymous=True)
    r = qs1.publish(hub, "foo", "x")
    assert r.status == 401
    assert r.header("WWW-Authenticate") == qs1.challenge(
        hub, metadata_url="https://localhost" + qs1.METADATA_PATH)
    # Tokens name the pinned identifier, whatever the Host.
    tok = qs1.access_token("https://localhost/.well-known/mercure",
                           [qs1.detail(["publish"], ["*"])])
    assert qs1.publish(hub, "foo", "x", token=tok).status == 200
    r = qs1.request(hub, "GET", qs1.METADATA_PATH)
    assert json.loads(r.body)["resource"] == "https://localhost/.well-known/mercure"


def test_27_subscription_api_without_a_covering_grant(hub):
    r = qs1.request(hub, "GET", qs1.SUBSCRIPTIONS, token=qs1.books_token(hub))
    assert r.status == 403
    assert r.header("WWW-Authenticate") == qs1.challenge(hub, "insufficient_scope")
    assert r.body == b"Forbidden\n"


# --------------------------------------------------------------------------- the summary rows

def test_subscribe_methods_get_head_query(hub):
    tall = qs1.all_token(hub)
    target = qs1.matcher_target([("match", "a")])
    r = qs1.request(hub, "HEAD", target, token=tall)
    assert r.status == 200 and r.header("Content-Type") == "text/event-stream"
    assert r.body == b""
    r = qs1.request(hub, "PUT", qs.HUB_PATH, token=tall)
    assert r.status == 405
    assert r.header("Allow") == "GET, HEAD, POST, QUERY"


def test_match_exact_and_wildcards(hub):
    tall = qs1.all_token(hub)
    with qs1.open_matchers(hub, [("match_exact", "https://example.com/{id}")], tall) as ex, \
            qs1.open_matchers(hub, [("match_urlpattern", "*")], tall) as star, \
            qs1.open_matchers(hub, [("match", "*")], tall) as star2:
        qs1.publish_ok(hub, "https://example.com/1", "one", token=tall, id="one")
        qs1.publish_ok(hub, "https://example.com/{id}", "tpl", token=tall, id="tpl")
        # ("*" also gets the hub's subscription events, typed mercure.)
        assert [e.id for e in star.events_until("tpl") if e.type != "mercure"] == ["one", "tpl"]
        assert [e.id for e in star2.events_until("tpl") if e.type != "mercure"] == ["one", "tpl"]
        # An exact matcher is bytes: "{id}" is no template in 1.0.
        assert [e.id for e in ex.events_until("tpl")] == ["tpl"]


def test_urlpattern_matching(hub):
    tall = qs1.all_token(hub)
    with qs1.open_matchers(hub, [("match_urlpattern", "https://example.com/books/:id(\\d+)")],
                           tall) as s:
        for i, t in enumerate(["https://example.com/books/abc", "https://EXAMPLE.com/books/12",
                               "https://example.com/books/1/2", "https://example.com:443/books/7",
                               "not a url"]):
            qs1.publish_ok(hub, t, t, token=tall, id="u%d" % i)
        qs1.publish_ok(hub, "https://example.com/books/99", "end", token=tall, id="end")
        assert [e.id for e in s.events_until("end")] == ["u1", "u3", "end"]


def test_matcher_limits(hub):
    tall = qs1.all_token(hub)
    many = [("match", "t%d" % i) for i in range(101)]
    r = qs1.request(hub, "GET", qs1.matcher_target(many), token=tall)
    assert (r.status, r.body) == (400, b"too many matchers (max 100)\n")
    r = qs1.request(hub, "GET", qs1.matcher_target([("match", "x" * 4097)]), token=tall)
    assert (r.status, r.body) == (400, b"pattern too long (max 4096 bytes)\n")
    r = qs1.request(hub, "GET", qs1.matcher_target([("match", "a\u200bb")]), token=tall)
    assert r.status == 400
    assert r.body == b"topic matcher values must be valid UTF-8 without control characters\n"
    # A hostile pattern is refused before anything is built for it (our own bound).
    hostile = "https://e.com/" + "(a|b)?" * 300 + ":x(\\d{1,1000})"
    r = qs1.request(hub, "GET", qs1.matcher_target([("match_urlpattern", hostile)]), token=tall)
    assert r.status == 400
    assert b"too complex" in r.body, r


def test_token_transport(hub):
    tall = qs1.all_token(hub)
    target = qs1.matcher_target([("match", "a")])
    # The 1.0 cookie works; the 0.x one does not, nor the query parameter.
    cookie = "__Secure-mercure_access_token=" + tall
    with qs1.open_matchers(hub, [("match", "a")], cookie=cookie):
        pass
    r = qs1.request(hub, "GET", target, [("Cookie", "mercureAuthorization=" + tall)])
    assert r.status == 401 and r.header("WWW-Authenticate") == qs1.challenge(hub)
    r = qs1.request(hub, "GET", target + "&authorization=" + tall)
    assert r.status == 401 and r.header("WWW-Authenticate") == qs1.challenge(hub)
    # The scheme in any case.
    with qs1.open_matchers(hub, [("match", "a")], headers=[("Authorization", "bearer " + tall)]):
        pass
    # A cookie on a POST needs an allowed Origin.
    r = qs1.publish(hub, "a", "x", headers=[("Cookie", cookie)])
    assert r.status == 400
    assert r.header("WWW-Authenticate") == qs1.challenge(hub, "invalid_request")


def test_token_rules(hub):
    pub = [qs1.detail(["publish"], ["*"])]
    cases = [
        qs1.access_token(hub.aud, pub, exp=-10),                    # expired
        qs1.access_token(hub.aud, pub, exp=None),                   # no exp
        qs1.access_token(hub.aud, pub, iss="https://evil.example"),  # untrusted issuer
        qs1.access_token(hub.aud, pub, key="another key"),          # signature
        qs1.access_token(hub.aud, [qs1.detail(["publish"], [])]),   # a detail without topics
        qs1.access_token(hub.aud, [qs1.detail(["publish"],
                                              [qs1.topic("(", "urlpattern")])]),
    ]
    for tok in cases:
        r = qs1.publish(hub, "a", "x", token=tok)
        assert r.status == 401, (tok, r)
        assert r.header("WWW-Authenticate") == qs1.challenge(hub, "invalid_token")
    # aud as an array, typ application/at+jwt, details of other types ignored.
    tok = qs1.access_token([hub.aud, "https://x"], pub + [{"type": "other", "actions": []}],
                           typ="application/AT+JWT")
    assert qs1.publish(hub, "a", "x", token=tok).status == 200


def test_publish_validation(hub):
    tall = qs1.all_token(hub)
    cases = [
        (dict(topics="*"), '"*": topic value "*" is reserved for the wildcard matcher and '
                           'cannot be published'),
        (dict(topics="/.well-known/mercure/subscriptions/x"),
         '"/.well-known/mercure/subscriptions/x": topic value resolves into the reserved '
         '"/.well-known/mercure" namespace'),
        (dict(topics="https://other.example/./.well-known/mercur%65"),
         '"https://other.example/./.well-known/mercur%65": topic value resolves into the '
         'reserved "/.well-known/mercure" namespace'),
        (dict(topics="a", id="#frag"), '"id" field contains a forbidden control character or '
                                       'invalid UTF-8, starts with "#", or is the reserved value '
                                       '"earliest"'),
        (dict(topics="a", id="earliest"), '"id" field contains a forbidden control character '
                                          'or invalid UTF-8, starts with "#", or is the reserved '
                                          'value "earliest"'),
        (dict(topics="a", type="x\u200e"), '"type" field contains a forbidden control '
                                           'character or invalid UTF-8'),
        (dict(topics="a\tb"), '"a\\tb": topic contains a forbidden control character or '
                              'invalid UTF-8'),
        (dict(topics="a", retry="-1"), 'Invalid "retry" parameter'),
    ]
    for kw, body in cases:
        topics = kw.pop("topics")
        r = qs1.publish(hub, topics, "x", token=tall, **kw)
        assert (r.status, r.text) == (400, body + "\n"), (topics, kw)
    r = qs1.request(hub, "POST", qs.HUB_PATH, [("Content-Type", "application/x-www-form-urlencoded")],
                    b"data=x", token=tall)
    assert (r.status, r.text) == (400, 'Missing "topic" parameter\n')
    # A topic under another path is not reserved (1.0 resolves; 0.x looked for the substring).
    assert qs1.publish(hub, "https://e.com/x/.well-known/mercure", "x", token=tall).status == 200


def test_reconnect_parameters(hub):
    tall = qs1.all_token(hub)
    ids = _history(hub, tall)
    # lastEventID is 0.x's: not read in 1.0.
    with qs1.open_matchers(hub, [("match", "https://example.com/history"),
                                 ("lastEventID", ids[0])], tall) as s:
        assert not s.response.has_header("Mercure-Last-Event-Id")
        assert s.collect(0.3) == b""
    # An empty cursor is answered (earliest), and replays nothing.
    with qs1.open_matchers(hub, [("match", "https://example.com/history"),
                                 ("last_event_id", "")], tall) as s:
        assert s.response.header("Mercure-Last-Event-Id") == "earliest"
        assert s.collect(0.3) == b""


def test_subscription_api_routes(hub):
    tall = qs1.all_token(hub)
    with qs1.open_matchers(hub, [("match", "a b"), ("match_urlpattern", "/books/:id")], tall):
        subs = _subscriber_id(hub, tall)
        sub = subs[0]
        # The 1.0 ids and the filters: one collection per matcher, one document per subscriber.
        path = qs1.subscription_id("exact", "a b", sub)
        assert path == "%s/exact/a%%20b/%s" % (qs1.SUBSCRIPTIONS, qs1.escape_segment(sub))
        r = qs1.request(hub, "GET", path, token=tall)
        assert r.status == 200
        assert r.text == qs1.go_json(qs1.subscription_doc("exact", "a b", sub, True))
        r = qs1.request(hub, "GET", "%s/urlpattern/%s" % (qs1.SUBSCRIPTIONS,
                                                           qs1.escape_segment("/books/:id")),
                        token=tall)
        assert [x["match"] for x in json.loads(r.body)["subscriptions"]] == ["/books/:id"]
        # Matchers come in sorted parameter order: match before match_urlpattern.
        r = qs1.request(hub, "GET", qs1.SUBSCRIPTIONS, token=tall)
        mine = [x for x in json.loads(r.body)["subscriptions"] if x["subscriber"] == sub]
        assert [x["match_type"] for x in mine] == ["exact", "urlpattern"]
    for target, status, body in [
        (qs1.SUBSCRIPTIONS + "/regex/x", 400, "unsupported topic matcher type"),
        (qs1.SUBSCRIPTIONS + "/exact/%zz", 400, 'invalid match segment: invalid URL escape "%zz"'),
        (qs1.SUBSCRIPTIONS + "/exact/a/%z", 400,
         'invalid subscriber segment: invalid URL escape "%z"'),
        (qs1.SUBSCRIPTIONS + "/exact/a/urn%3Auuid%3Anobody", 404, "404 page not found"),
        (qs1.SUBSCRIPTIONS + "/a", 404, "404 page not found"),
    ]:
        r = qs1.request(hub, "GET", target, token=tall)
        assert (r.status, r.text) == (status, body + "\n"), target


def test_cors_for_1_0(start_hub):
    hub = qs1.start(start_hub, extra=["cors_origins https://app.example"], anonymous=True)
    r = qs1.request(hub, "OPTIONS", qs.HUB_PATH, [("Origin", "https://app.example"),
                                                  ("Access-Control-Request-Method", "QUERY")])
    assert r.header("Access-Control-Allow-Methods") == "QUERY"
    assert r.header("Access-Control-Allow-Credentials") == "true"
    r = qs1.request(hub, "GET", qs1.METADATA_PATH, [("Origin", "https://app.example")])
    assert r.header("Access-Control-Expose-Headers") == "Link"
    hub2 = qs1.start(start_hub, extra=["cors_origins *"], anonymous=True)
    r = qs1.request(hub2, "GET", qs1.METADATA_PATH, [("Origin", "https://app.example")])
    assert r.header("Access-Control-Allow-Origin") == "*"
    assert not r.has_header("Access-Control-Allow-Credentials")


def test_the_stream_ends_before_the_token_expires(start_hub):
    hub = qs1.start(start_hub, extra=["dispatch_timeout 0s"])
    tok = qs1.access_token(hub.aud, [qs1.detail(["subscribe"], ["*"])], exp=2)
    with qs1.open_matchers(hub, [("match", "a")], tok) as s:
        t0 = time.monotonic()
        s.wait_end(T(5))
        assert time.monotonic() - t0 < 2.5


def test_0x_directives_are_refused_with_1_0_alone(tmp_path):
    p = qs.run_mercure(["validate"], tmp_path, env={
        "MERCURE_PUBLISHER_JWT_KEY": qs1.KEY, "MERCURE_SUBSCRIBER_JWT_KEY": qs1.KEY,
        "MERCURE_EXTRA_DIRECTIVES": "protocol 1.0\npublisher_jwt other"})
    assert p.returncode != 0
    assert "publisher_jwt: works only when protocol 0.x is served" in p.stderr


def test_a_token_expiring_within_dispatch_timeout_keeps_its_time(start_hub):
    # 1.0's reference falls back to the token's own deadline (0.x's ends the stream at once).
    hub = qs1.start(start_hub, extra=["dispatch_timeout 5s"])
    tok = qs1.access_token(hub.aud, [qs1.detail(["subscribe"], ["*"])], exp=3)
    with qs1.open_matchers(hub, [("match", "a")], tok) as s:
        t0 = time.monotonic()
        s.wait_end(T(6))
        assert 1.0 < time.monotonic() - t0 < 3.5


def test_validate_checks_the_issuers_keys(tmp_path):
    bad = ('protocol 1.0\nissuer https://x {\npublisher {\njwt "-----BEGIN PUBLIC KEY-----\\n'
           'AAAA\\n-----END PUBLIC KEY-----" RS256\n}\n}')
    p = qs.run_mercure(["validate"], tmp_path, env={
        "MERCURE_PUBLISHER_JWT_KEY": qs1.KEY, "MERCURE_SUBSCRIBER_JWT_KEY": qs1.KEY,
        "MERCURE_EXTRA_DIRECTIVES": bad})
    assert p.returncode != 0
    assert 'issuer "https://x": publisher: the RS256 key cannot be used' in p.stderr
    p = qs.run_mercure(["validate"], tmp_path, env={
        "MERCURE_PUBLISHER_JWT_KEY": qs1.KEY, "MERCURE_SUBSCRIBER_JWT_KEY": qs1.KEY,
        "MERCURE_EXTRA_DIRECTIVES": "protocol 1.0"})
    assert p.returncode == 0, p.stderr


def test_patterns_found_by_the_end_of_their_path(hub):
    # Patterns whose path has a fixed end are looked up by it; the others are tried one by
    # one: both kinds, and an update whose two topics match the same pattern (one delivery).
    tall = qs1.all_token(hub)
    want = {
        "https://example.com/:kind/7": ["two"],
        "https://example.com/:kind/17": ["17"],
        "https://example.com/a/b": ["ab"],
        "/rel/:x/end": ["rel"],
        "https://example.com/:kind/:n(\\d+)": ["two", "17"],
    }
    streams = {p: qs1.open_matchers(hub, [("match_urlpattern", p)], tall) for p in want}
    try:
        qs1.publish_ok(hub, ["https://example.com/x/7", "https://example.com/y/7"], "two",
                       token=tall, id="two")
        qs1.publish_ok(hub, "https://example.com/x/17", "17", token=tall, id="17")
        qs1.publish_ok(hub, "https://EXAMPLE.com/a/./b", "ab", token=tall, id="ab")
        qs1.publish_ok(hub, "/rel/1/end", "rel", token=tall, id="rel")
        qs1.publish_ok(hub, "https://example.com/z/end", "end", token=tall, id="end")
        for p, ids in want.items():
            s = streams[p]
            s.wait_for(lambda: any(e.id == ids[-1] for e in s.events), T(5), ids[-1])
            s.collect(0.2)
            assert [e.id for e in s.events if e.type != "mercure"] == ids, p
    finally:
        for s in streams.values():
            s.close()
