"""CORS (`cors_origins`), as rs/cors configured by the reference hub (docs/protocol.md §10)."""

import pytest

import qs

ORIGIN = "https://app.example.com"


@pytest.fixture
def cors_hub(start_hub):
    return start_hub(extra=["cors_origins %s https://*.example.net" % ORIGIN])


def _preflight(hub, origin, method="GET", req_headers=None):
    headers = [("Origin", origin), ("Access-Control-Request-Method", method)]
    if req_headers is not None:
        headers.append(("Access-Control-Request-Headers", req_headers))
    return hub.request("OPTIONS", qs.HUB_PATH, headers)


@pytest.mark.parametrize("method", ["GET", "POST", "HEAD"])
def test_preflight_allowed_origin(cors_hub, method):
    r = _preflight(cors_hub, ORIGIN, method)
    assert r.status == 204, r
    assert r.body == b""
    assert r.header("Access-Control-Allow-Origin") == ORIGIN
    assert r.header("Access-Control-Allow-Credentials") == "true"
    assert r.header("Access-Control-Allow-Methods") == method
    assert not r.has_header("Access-Control-Allow-Headers")
    vary = ", ".join(r.header_all("Vary"))
    for v in ("Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"):
        assert v in vary, r.headers


def test_preflight_lowercase_method_is_upper_cased(cors_hub):
    r = _preflight(cors_hub, ORIGIN, "post")
    assert r.status == 204
    assert r.header("Access-Control-Allow-Methods") == "POST"


@pytest.mark.parametrize("req_headers", ["authorization", "Authorization, Cache-Control",
                                         "last-event-id,authorization,cache-control"])
def test_preflight_allowed_headers_are_echoed(cors_hub, req_headers):
    r = _preflight(cors_hub, ORIGIN, "GET", req_headers)
    assert r.status == 204
    assert r.header("Access-Control-Allow-Origin") == ORIGIN
    echoed = [h.strip().lower() for h in r.header("Access-Control-Allow-Headers").split(",")]
    assert echoed == [h.strip().lower() for h in req_headers.split(",")]


def test_preflight_disallowed_header(cors_hub):
    r = _preflight(cors_hub, ORIGIN, "GET", "authorization, x-custom")
    assert r.status == 204
    assert not r.has_header("Access-Control-Allow-Origin")
    assert not r.has_header("Access-Control-Allow-Headers")


def test_preflight_wildcard_origin_pattern(cors_hub):
    r = _preflight(cors_hub, "https://a.example.net")
    assert r.header("Access-Control-Allow-Origin") == "https://a.example.net"


@pytest.mark.parametrize("origin", ["https://evil.example.com", "http://app.example.com",
                                    "https://example.net", ""])
def test_preflight_disallowed_origin(cors_hub, origin):
    r = _preflight(cors_hub, origin)
    assert r.status == 204
    for h in ("Access-Control-Allow-Origin", "Access-Control-Allow-Credentials",
              "Access-Control-Allow-Methods", "Access-Control-Allow-Headers"):
        assert not r.has_header(h), r.headers


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_preflight_disallowed_method(cors_hub, method):
    r = _preflight(cors_hub, ORIGIN, method)
    assert not r.has_header("Access-Control-Allow-Origin")
    assert not r.has_header("Access-Control-Allow-Methods")


def test_preflight_origin_case_insensitive(cors_hub):
    r = _preflight(cors_hub, "https://APP.example.com")
    assert r.header("Access-Control-Allow-Origin") == "https://APP.example.com"


def test_cors_star(start_hub):
    hub = start_hub(extra=["cors_origins *"])
    r = _preflight(hub, "https://anything.test", "GET", "authorization")
    assert r.status == 204
    assert r.header("Access-Control-Allow-Origin") == "*"
    assert r.header("Access-Control-Allow-Credentials") == "true"
    assert r.header("Access-Control-Allow-Methods") == "GET"
    with qs.open_stream(hub, ["urn:x"], headers=[("Origin", "https://anything.test")]) as s:
        assert s.response.header("Access-Control-Allow-Origin") == "*"
        assert s.response.header("Access-Control-Allow-Credentials") == "true"
        assert "Origin" in s.response.header_all("Vary")


def test_options_without_cors_is_405(hub):
    r = _preflight(hub, ORIGIN)
    assert r.status == 405
    assert not r.has_header("Access-Control-Allow-Origin")


@pytest.mark.parametrize("path", ["/.well-known/mercure/subscriptions",
                                  "/.well-known/mercure/subscriptions/urn%3Ax",
                                  "/.well-known/mercure/anything"])
def test_preflight_is_answered_on_every_hub_path(cors_hub, path):
    """CORS wraps the whole hub, as rs/cors wraps the reference's router: a browser calling
    the subscriptions API with an Authorization header gets its preflight."""
    r = cors_hub.request("OPTIONS", path, [("Origin", ORIGIN),
                                           ("Access-Control-Request-Method", "GET"),
                                           ("Access-Control-Request-Headers", "authorization")])
    assert r.status == 204, r
    assert r.header("Access-Control-Allow-Origin") == ORIGIN
    assert r.header("Access-Control-Allow-Headers") == "authorization"


def test_options_without_request_method_is_not_a_preflight(cors_hub):
    r = cors_hub.request("OPTIONS", qs.HUB_PATH, [("Origin", ORIGIN)])
    assert r.status == 405


def test_actual_subscribe_request_gets_cors_headers(cors_hub):
    with qs.open_stream(cors_hub, ["urn:x"], headers=[("Origin", ORIGIN)]) as s:
        r = s.response
        assert r.header("Access-Control-Allow-Origin") == ORIGIN
        assert r.header("Access-Control-Allow-Credentials") == "true"
        assert "Origin" in r.header_all("Vary")
        # The stream's own headers are still there.
        assert r.header("Content-Type") == "text/event-stream"


def test_actual_publish_request_gets_cors_headers(cors_hub):
    r = qs.publish(cors_hub, ["urn:x"], "x", headers=[("Origin", ORIGIN)])
    assert r.status == 200
    assert r.header("Access-Control-Allow-Origin") == ORIGIN
    assert r.header("Access-Control-Allow-Credentials") == "true"
    assert "Origin" in r.header_all("Vary")


def test_error_responses_get_cors_headers(cors_hub):
    r = cors_hub.request("GET", qs.HUB_PATH, [("Origin", ORIGIN)])
    assert r.status == 400
    assert r.header("Access-Control-Allow-Origin") == ORIGIN


def test_actual_request_disallowed_origin(cors_hub):
    with qs.open_stream(cors_hub, ["urn:x"], headers=[("Origin", "https://evil.test")]) as s:
        assert "Origin" in s.response.header_all("Vary")
        assert not s.response.has_header("Access-Control-Allow-Origin")
        assert not s.response.has_header("Access-Control-Allow-Credentials")


def test_actual_request_without_origin(cors_hub):
    with qs.open_stream(cors_hub, ["urn:x"]) as s:
        assert "Origin" in s.response.header_all("Vary")
        assert not s.response.has_header("Access-Control-Allow-Origin")


def test_no_cors_headers_without_cors_origins(hub):
    with qs.open_stream(hub, ["urn:x"], headers=[("Origin", ORIGIN)]) as s:
        assert not s.response.has_header("Access-Control-Allow-Origin")
        assert not s.response.has_header("Vary")
