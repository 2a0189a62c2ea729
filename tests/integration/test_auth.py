"""Authorization: token sources and their precedence, malformed headers, token
validation (exp, nbf, alg pinning, alg none), cookies and the CSRF origin rule."""

import time

import pytest

import qs

PRIV = "https://example.com/private/1"


def _receives_private(hub, **stream_kw):
    """Opens a stream on PRIV and tells whether a private update on PRIV is delivered."""
    with qs.open_stream(hub, [PRIV, "urn:sentinel"], **stream_kw) as s:
        qs.publish_ok(hub, [PRIV], "x", id="p", private=True)
        qs.publish_ok(hub, ["urn:sentinel"], "x", id="sentinel")
        return [e.id for e in s.events_until("sentinel")] == ["p", "sentinel"]


def _sub_status(hub, **kw):
    with hub.conn() as c:
        c.send(qs.subscribe_request(["urn:x"], **kw))
        return c.read_head().status


def good():
    return qs.sub_token([PRIV])


def other():
    return qs.sub_token(["urn:nothing"])


# ----------------------------------------------------------------- precedence

def test_header_token_is_used(hub):
    assert _receives_private(hub, token=good())


def test_query_token_is_used(hub):
    assert _receives_private(hub, token_query=good())


def test_cookie_token_is_used(hub):
    assert _receives_private(hub, cookie="mercureAuthorization=" + good())


def test_header_wins_over_query_and_cookie(hub):
    assert _receives_private(hub, token=good(), token_query=other(),
                             cookie="mercureAuthorization=" + other())
    assert not _receives_private(hub, token=other(), token_query=good(),
                                 cookie="mercureAuthorization=" + good())


def test_query_wins_over_cookie(hub):
    assert _receives_private(hub, token_query=good(), cookie="mercureAuthorization=" + other())
    assert not _receives_private(hub, token_query=other(),
                                 cookie="mercureAuthorization=" + good())


def test_invalid_header_is_an_error_even_with_a_valid_query_token(hub):
    assert _sub_status(hub, token="garbage" * 10, token_query=good()) == 401


def test_invalid_query_is_an_error_even_with_a_valid_cookie(hub):
    assert _sub_status(hub, token_query="garbage" * 10,
                       cookie="mercureAuthorization=" + good()) == 401


def test_cookie_among_others(hub):
    cookie = "a=b; mercureAuthorization=%s; c=d" % good()
    assert _receives_private(hub, cookie=cookie)


def test_cookie_name_directive(start_hub):
    hub = start_hub(extra=["cookie_name myAuth"])
    assert _receives_private(hub, cookie="myAuth=" + good())
    # The default name is no longer read: the subscriber is anonymous.
    assert not _receives_private(hub, cookie="mercureAuthorization=" + good())


# ----------------------------------------------------------------- malformed headers

@pytest.mark.parametrize("value", [
    "bearer {tok}",          # scheme is case-sensitive
    "Basic {tok}",
    "Bearer  {tok}",         # two spaces: the token starts with a space
    "Bearer",
    "Bearer abc",            # shorter than 48 bytes
    "Bearer " + "a" * 40,    # 47 bytes
    "{tok}",
])
def test_malformed_authorization_header_401(hub, value):
    value = value.replace("{tok}", good())
    with hub.conn() as c:
        c.send(qs.build_request("GET", qs.subscribe_target(["urn:x"]),
                                [("Authorization", value)]))
        r = c.read_response()
        assert r.status == 401, (value, r)
        assert r.body == b"Unauthorized\n"


def test_two_authorization_headers_401(hub):
    tok = good()
    with hub.conn() as c:
        c.send(qs.build_request("GET", qs.subscribe_target(["urn:x"]),
                                [("Authorization", "Bearer " + tok),
                                 ("Authorization", "Bearer " + tok)]))
        assert c.read_response().status == 401


def test_two_authorization_query_params_401(hub):
    tok = good()
    target = qs.subscribe_target(["urn:x"], extra_query=[("authorization", tok),
                                                         ("authorization", tok)])
    assert hub.request("GET", target).status == 401


def test_short_query_token_401(hub):
    assert hub.request("GET", qs.subscribe_target(["urn:x"], token_query="a" * 40)).status == 401


def test_publish_malformed_header_401(hub):
    r = qs.publish(hub, ["urn:x"], "x", token=None,
                   headers=[("Authorization", "bearer " + qs.pub_token())])
    assert r.status == 401


# ----------------------------------------------------------------- token validation

@pytest.mark.parametrize("token", [
    "garbage-garbage-garbage-garbage-garbage-garbage",
    "a.b.c" + "x" * 50,
    "eyJhbGciOiJIUzI1NiJ9.eyJtZXJjdXJlIjp7fX0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
])
def test_garbage_token_401_even_with_anonymous(hub, token):
    assert _sub_status(hub, token=token) == 401
    assert _sub_status(hub, token_query=token) == 401
    assert _sub_status(hub, cookie="mercureAuthorization=" + token) == 401


def test_no_token_without_anonymous_401(start_hub):
    hub = start_hub(anonymous=False)
    with hub.conn() as c:
        c.send(qs.subscribe_request(["urn:x"]))
        r = c.read_response()
        assert r.status == 401 and r.body == b"Unauthorized\n"
    # A valid token is fine, even one without a mercure claim.
    with qs.open_stream(hub, ["urn:x"], token=qs.make_jwt({"sub": "me"}, qs.SUB_KEY)):
        pass
    assert _receives_private(hub, token=good())


def test_subscriber_token_signed_with_publisher_key_401(hub):
    assert _sub_status(hub, token=qs.sub_token([PRIV], key=qs.PUB_KEY)) == 401


def test_expired_token_401(hub):
    tok = qs.sub_token(["*"], exp=int(time.time()) - 10)
    assert _sub_status(hub, token=tok) == 401
    ptok = qs.pub_token(exp=int(time.time()) - 10)
    assert qs.publish(hub, ["urn:x"], "x", token=ptok).status == 401


def test_not_yet_valid_token_401(hub):
    tok = qs.sub_token(["*"], nbf=int(time.time()) + 60)
    assert _sub_status(hub, token=tok) == 401
    ptok = qs.pub_token(nbf=int(time.time()) + 60)
    assert qs.publish(hub, ["urn:x"], "x", token=ptok).status == 401


def test_valid_exp_and_nbf_accepted(hub):
    now = int(time.time())
    tok = qs.sub_token([PRIV], exp=now + 600, nbf=now - 10)
    assert _receives_private(hub, token=tok)
    assert qs.publish(hub, ["urn:x"], "x", token=qs.pub_token(exp=now + 600,
                                                              nbf=now - 10)).status == 200


def test_unknown_claims_ignored(hub):
    tok = qs.make_jwt(qs.mercure_claims(publish=["*"], iss="x", aud="y", sub="z",
                                        iat=int(time.time()), jti="j"), qs.PUB_KEY)
    assert qs.publish(hub, ["urn:x"], "x", token=tok).status == 200


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_hmac_alg_must_match_configuration(hub, alg):
    """The key is configured HS256 (default): HS384/HS512 tokens are refused."""
    tok = qs.make_jwt(qs.mercure_claims(publish=["*"]), qs.PUB_KEY, alg)
    assert qs.publish(hub, ["urn:x"], "x", token=tok).status == 401


def test_alg_none_401(hub):
    for alg in ("none", "None", "NONE"):
        tok = qs.make_jwt(qs.mercure_claims(publish=["*"], subscribe=["*"]), alg="none",
                          header={"alg": alg})
        assert qs.publish(hub, ["urn:x"], "x", token=tok).status == 401
        assert _sub_status(hub, token=tok) == 401


def test_tampered_payload_401(hub):
    tok = qs.pub_token(["urn:only"])
    h, p, sig = tok.split(".")
    forged = qs.b64url(b'{"mercure":{"publish":["*"]}}')
    assert qs.publish(hub, ["urn:x"], "x", token="%s.%s.%s" % (h, forged, sig)).status == 401


def test_namespaced_claim_publish(hub):
    tok = qs.make_jwt(qs.mercure_claims(publish=["*"], namespaced=True), qs.PUB_KEY)
    assert qs.publish(hub, ["urn:x"], "x", token=tok).status == 200


def test_claim_with_over_1000_selectors_is_invalid(hub):
    tok = qs.pub_token(["urn:s%d" % i for i in range(1001)] + ["*"])
    assert qs.publish(hub, ["urn:x"], "x", token=tok).status == 401
    tok = qs.pub_token(["urn:s%d" % i for i in range(999)] + ["*"])
    assert qs.publish(hub, ["urn:x"], "x", token=tok).status == 200


# ----------------------------------------------------------------- cookie + CSRF

def _cookie_publish(hub, headers, cookie_name="mercureAuthorization"):
    return qs.publish(hub, ["urn:x"], "x", token=None,
                      headers=[("Cookie", "%s=%s" % (cookie_name, qs.pub_token()))] + headers)


@pytest.fixture
def origin_hub(start_hub):
    return start_hub(extra=["publish_origins https://app.example.com https://*.example.org"])


def test_cookie_publish_without_origin_or_referer_401(origin_hub):
    assert _cookie_publish(origin_hub, []).status == 401


def test_cookie_publish_from_disallowed_origin_401(origin_hub):
    assert _cookie_publish(origin_hub, [("Origin", "https://evil.example.com")]).status == 401
    assert _cookie_publish(origin_hub, [("Origin", "http://app.example.com")]).status == 401
    assert _cookie_publish(origin_hub, [("Origin", "https://example.org")]).status == 401


def test_cookie_publish_from_allowed_origin(origin_hub):
    assert _cookie_publish(origin_hub, [("Origin", "https://app.example.com")]).status == 200


def test_cookie_publish_wildcard_origin_pattern(origin_hub):
    assert _cookie_publish(origin_hub, [("Origin", "https://a.example.org")]).status == 200
    assert _cookie_publish(origin_hub, [("Origin", "https://a-1_b.example.org")]).status == 200


@pytest.mark.parametrize("origin", [
    "https://a.b.example.org",          # "*" is one host label, not several
    "https://.example.org",             # ...and not an empty one
    "https://evil.com/.example.org",    # another host, with the rest as a path
    "https://evil.com:443/.example.org",
    "https://evil:1.example.org",       # a port
    "https://evil.com@a.example.org",   # userinfo (never in an Origin)
    "https://evil.com?.example.org",    # a query
    "https://evil.com#.example.org",    # a fragment
    "https://evil%2f.example.org",
    "https://a.example.org:8443",       # the suffix still ends the origin
    "https://*.example.org",            # the pattern itself
])
def test_cookie_publish_wildcard_matches_one_host_label_only(origin_hub, origin):
    assert _cookie_publish(origin_hub, [("Origin", origin)]).status == 401
    if "@" not in origin:  # a Referer's userinfo is dropped: its host is a.example.org
        assert _cookie_publish(origin_hub, [("Referer", origin + "/page")]).status == 401


def test_cookie_publish_referer_fallback(origin_hub):
    r = _cookie_publish(origin_hub, [("Referer", "https://app.example.com/some/page?q=1#f")])
    assert r.status == 200
    r = _cookie_publish(origin_hub, [("Referer", "https://evil.example.com/app.example.com")])
    assert r.status == 401


def test_origin_wins_over_referer(origin_hub):
    r = _cookie_publish(origin_hub, [("Origin", "https://evil.example.com"),
                                     ("Referer", "https://app.example.com/")])
    assert r.status == 401


def test_cookie_publish_any_origin(start_hub):
    hub = start_hub(extra=["publish_origins *"])
    assert _cookie_publish(hub, [("Origin", "https://whatever.test")]).status == 200
    assert _cookie_publish(hub, [("Origin", "null")]).status == 200
    assert _cookie_publish(hub, []).status == 401


def test_cookie_publish_without_publish_origins_401(hub):
    assert _cookie_publish(hub, [("Origin", "https://app.example.com")]).status == 401


def test_header_token_skips_origin_check(origin_hub):
    r = qs.publish(origin_hub, ["urn:x"], "x", headers=[("Origin", "https://evil.example.com")])
    assert r.status == 200


def test_cookie_name_directive_for_publish(start_hub):
    hub = start_hub(extra=["cookie_name myAuth", "publish_origins *"])
    origin = [("Origin", "https://x.test")]
    assert _cookie_publish(hub, origin, cookie_name="myAuth").status == 200
    assert _cookie_publish(hub, origin).status == 401


def test_cookie_subscribe_needs_no_origin(origin_hub):
    assert _receives_private(origin_hub, cookie="mercureAuthorization=" + good())
