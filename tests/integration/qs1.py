"""Helpers for the protocol 1.0 integration tests (access tokens, requests that name the hub
the way a browser or curl does, matcher subscriptions).

Protocol 1.0's tokens are RFC 9068 access tokens: header typ at+jwt, iss one of the hub's
trusted issuers, aud the hub's resource identifier (derived from the request's scheme and
Host unless resource_identifier pins it), exp, and RFC 9396 authorization_details of type
https://mercure.rocks/authorization-detail. The default hub below is the reference's own
start: the built-in Caddyfile with both keys set to the well-known development secret and
the trusted issuer https://localhost.
"""

import json
import time
import urllib.parse

import qs
from qs import T

KEY = "!ChangeThisMercureHubJWTSecretKey!"
ISSUER = "https://localhost"
DETAIL = "https://mercure.rocks/authorization-detail"
METADATA_PATH = "/.well-known/oauth-protected-resource/.well-known/mercure"
SUBSCRIPTIONS = "/.well-known/mercure/subscriptions"


def start(start_hub, protocol="1.0", extra=(), anonymous=False, **kw):
    """A hub serving `protocol` ("1.0" or "0.x 1.0") with the reference's default keys."""
    lines = ["protocol " + protocol] + list(extra)
    hub = start_hub(extra=lines, anonymous=anonymous, publisher_key=KEY, subscriber_key=KEY,
                    **kw)
    hub.host = "127.0.0.1:%d" % hub.port
    hub.origin = "http://" + hub.host
    hub.aud = hub.origin + "/.well-known/mercure"
    hub.metadata_url = hub.origin + METADATA_PATH
    return hub


def topic(match, match_type=None):
    t = {"match": match}
    if match_type:
        t["match_type"] = match_type
    return t


def detail(actions, topics, payload=None, type=DETAIL):
    d = {"type": type, "actions": list(actions),
         "topics": [t if isinstance(t, dict) else topic(t) for t in topics]}
    if payload is not None:
        d["payload"] = payload
    return d


def access_token(aud, details=(), iss=ISSUER, exp=3600, key=KEY, alg="HS256", typ="at+jwt",
                 **claims):
    """An access token; exp: seconds from now (None: no exp)."""
    c = {"aud": aud, "iss": iss, "authorization_details": list(details)}
    if exp is not None:
        c["exp"] = int(time.time()) + exp
    c.update(claims)
    return sign(c, key, alg, typ)


def sign(claims, key=KEY, alg="HS256", typ="at+jwt"):
    """A compact JWS with the header {"alg": alg[, "typ": typ]}."""
    header = {"alg": alg}
    if typ:
        header["typ"] = typ
    signing_input = (qs.b64url(qs._json(header)) + "." + qs.b64url(qs._json(claims))).encode()
    return signing_input.decode() + "." + qs.b64url(qs._sign(alg, key, signing_input))


def all_token(hub, **kw):
    """Publish and subscribe on every topic, as the reference's examples' $TALL."""
    return access_token(hub.aud, [detail(["publish"], ["*"]), detail(["subscribe"], ["*"])],
                        **kw)


def books_token(hub, **kw):
    """Publish and subscribe on https://example.com/books/:id, as $TBOOKS."""
    pat = topic("https://example.com/books/:id", "urlpattern")
    return access_token(hub.aud, [detail(["publish"], [pat]), detail(["subscribe"], [pat])],
                        **kw)


def request(hub, method, target, headers=(), body=b"", token=None, host=True):
    hdrs = []
    if host:
        hdrs.append(("Host", hub.host))
    if token:
        hdrs.append(("Authorization", "Bearer " + token))
    hdrs.extend(headers)
    with hub.conn() as c:
        return c.request(method, target, headers=hdrs, body=body)


def matcher_target(pairs):
    q = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)
    return qs.HUB_PATH + ("?" + q if q else "")


def open_matchers(hub, pairs, token=None, headers=(), method="GET", body=b"", cookie=None):
    """Opens a 1.0 subscription (pairs: [("match", …), ("match_urlpattern", …)…])."""
    hdrs = [("Host", hub.host)]
    if token:
        hdrs.append(("Authorization", "Bearer " + token))
    if cookie:
        hdrs.append(("Cookie", cookie))
    hdrs.extend(headers)
    target = matcher_target(pairs) if method != "QUERY" or pairs else qs.HUB_PATH
    raw = qs.build_request(method, target, hdrs, body=body)
    return qs.open_stream(hub, raw_request=raw)


def publish(hub, topics, data=None, token=None, headers=(), **kw):
    body = qs.form_body(qs.publish_pairs(topics, data, **kw))
    hdrs = [("Content-Type", "application/x-www-form-urlencoded")] + list(headers)
    return request(hub, "POST", qs.HUB_PATH, hdrs, body, token=token)


def publish_ok(hub, topics, data=None, token=None, **kw):
    r = publish(hub, topics, data, token=token, **kw)
    assert r.status == 200, r
    return r.text


def go_json(obj):
    """json.MarshalIndent(v, "", "  ") for simple values."""
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    for a, b in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(a, b)
    return text


def escape_segment(s):
    """Go's url.QueryEscape with %20 for spaces, as the 1.0 reference escapes segments."""
    return urllib.parse.quote_plus(s, safe="").replace("+", "%20")


def subscription_id(match_type, match, subscriber):
    if match_type is None:  # a 0.x selector, as the reference's compatibility mode writes it
        return "%s/%s/%s" % (SUBSCRIPTIONS, escape_segment(match), escape_segment(subscriber))
    return "%s/%s/%s/%s" % (SUBSCRIPTIONS, match_type, escape_segment(match),
                            escape_segment(subscriber))


def subscription_doc(match_type, match, subscriber, active, payload=None):
    d = {"id": subscription_id(match_type, match, subscriber), "type": "subscription",
         "subscriber": subscriber}
    if match_type is None:
        d["topic"] = match
    else:
        d["match"] = match
        d["match_type"] = match_type
    d["active"] = active
    if payload is not None:
        d["payload"] = payload
    return d


def challenge(hub, error=None, metadata_url=None):
    url = metadata_url or hub.metadata_url
    if error:
        return 'Bearer error="%s", resource_metadata="%s"' % (error, url)
    return 'Bearer resource_metadata="%s"' % url


def wait_events(stream, n, what="events"):
    stream.wait_for(lambda: len(stream.events) >= n, T(5), what)
    return stream.events


# --------------------------------------------------------------------------- clusters

CLUSTER_WATCH = "/.well-known/mercure/subscriptions/:match_type/:match/:subscriber"


def cluster_node(hub):
    """Names a hub started by a transport's cluster fixture as start() names its hub."""
    hub.host = "127.0.0.1:%d" % hub.port
    hub.origin = "http://" + hub.host
    hub.aud = hub.origin + "/.well-known/mercure"
    hub.metadata_url = hub.origin + METADATA_PATH
    return hub


def by_id(docs):
    return sorted(docs, key=lambda d: d["id"])


def check_presence_across_nodes(n1, n2, key):
    """A 1.0 subscriber on n1 with selectors of both syntaxes, each with its grant's payload:
    n2 lists it from the cluster's registry exactly as n1 lists it (match_type and payload
    per selector), and once n1 is killed, a 1.0 watcher on n2 gets its departures in 1.0's
    format, made from the entries the registry kept. The hubs serve 1.0 with `subscriptions`
    and a short presence TTL; key: the subscriber key of the default issuer."""
    cluster_node(n1)
    cluster_node(n2)
    books = topic("https://example.com/books/:id", "urlpattern")
    token = access_token(n1.aud, [detail(["subscribe"], [books], payload={"p": 1}),
                                  detail(["subscribe"], ["https://example.com/authors/1"],
                                         payload={"p": 2})], key=key)
    w_token = all_token(n2, key=key)
    with open_matchers(n2, [("match_urlpattern", CLUSTER_WATCH)], w_token) as w:
        watcher = json.loads(w.next_event().data)["subscriber"]
        s = open_matchers(n1, [("match_urlpattern", "https://example.com/books/:id"),
                               ("match", "https://example.com/authors/1")], token)
        arrivals = [json.loads(w.next_event().data) for _ in range(2)]
        sid = arrivals[0]["subscriber"]
        want = [subscription_doc("urlpattern", "https://example.com/books/:id", sid, True,
                                 {"p": 1}),
                subscription_doc("exact", "https://example.com/authors/1", sid, True,
                                 {"p": 2})]
        assert by_id(arrivals) == by_id(want)

        def listed(hub):
            r = request(hub, "GET", SUBSCRIPTIONS, token=all_token(hub, key=key))
            assert r.status == 200, r
            return [x for x in json.loads(r.body)["subscriptions"] if x["subscriber"] == sid]

        mine = listed(n1)  # n1's own entry, from its memory
        assert by_id(mine) == by_id(want)
        qs.wait_until(lambda: listed(n2) == mine, T(10), interval=0.1,
                      what="n1's 1.0 subscriber listed by n2 as n1 lists it")

        # Killed without a goodbye: n2 reads n1's entries back to announce the departures.
        n1.kill()
        s.close()
        events = [w.next_event(T(15)) for _ in range(2)]
        assert all(e.type == "mercure" for e in events)
        gone = [json.loads(e.data) for e in events]
        assert by_id(gone) == by_id([dict(d, active=False) for d in want])
        assert watcher != sid
