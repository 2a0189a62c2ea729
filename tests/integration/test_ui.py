"""The debugging UI (`ui`) and the demo endpoint (`demo`) under /.well-known/mercure/ui/:
files embedded in the binary, their headers and caching, CSP compatibility of the page,
and the demo's body, content types, Link headers and cookie as the reference sends them."""

import html.parser
import socket
import ssl
import urllib.parse

import pytest

import qs

UI = qs.HUB_PATH + "/ui/"
DEMO = UI + "demo/"
CSP = "default-src 'self'"


def get(hub, target, headers=(), method="GET"):
    return hub.request(method, target, headers=headers)


# --------------------------------------------------------------------------- the UI

def test_without_ui_the_path_is_the_hubs(hub):
    for target in (UI, UI + "app.js", DEMO + "x.json"):
        r = get(hub, target)
        assert r.status == 404 and r.body == b"404 page not found\n", r
        assert r.header("Content-Security-Policy") == CSP


@pytest.mark.parametrize("directive", ["ui", "demo"])
def test_ui_files(start_hub, directive):
    hub = start_hub(extra=[directive])
    page = get(hub, UI)
    assert page.status == 200, page
    assert page.header("Content-Type") == "text/html; charset=utf-8"
    assert page.header("Content-Security-Policy") == CSP
    assert page.header("X-Frame-Options") == "DENY"
    assert page.header("Cache-Control") == "no-cache"
    etag = page.header("ETag")
    assert etag and etag.startswith('"') and etag.endswith('"')
    assert b"Mercure debugger" in page.body
    for name, ctype in (("app.js", "text/javascript; charset=utf-8"),
                        ("app.css", "text/css; charset=utf-8"), ("icon.svg", "image/svg+xml")):
        r = get(hub, UI + name)
        assert r.status == 200 and r.header("Content-Type") == ctype, (name, r)
        assert len(r.body) == int(r.header("Content-Length")) > 100
    # Revalidation: the same ETag answers 304 without a body.
    r = get(hub, UI, headers=[("If-None-Match", etag)])
    assert r.status == 304 and r.body == b"" and r.header("ETag") == etag
    r = get(hub, UI, headers=[("If-None-Match", '"other"')])
    assert r.status == 200
    # HEAD: the headers without the body.
    with hub.conn() as c:
        c.send(qs.build_request("HEAD", UI + "app.js"))
        r = c.read_response("HEAD")
        assert r.status == 200 and r.body == b"" and int(r.header("Content-Length")) > 100


def test_ui_paths(start_hub):
    hub = start_hub(extra=["ui"])
    r = get(hub, qs.HUB_PATH + "/ui")
    assert r.status == 301 and r.header("Location") == UI
    r = get(hub, UI + "index.html")
    assert r.status == 301 and r.header("Location") == "./"
    for missing in ("nope.js", "demo/x.json", "app.js/x", "../ui/app.js"):
        r = get(hub, UI + missing)
        assert r.status == 404 and r.body == b"404 page not found\n", (missing, r)
    r = get(hub, UI, method="POST")
    assert r.status == 405 and r.header("Allow") == "GET, HEAD"
    # Paths that only start like the UI's are the hub's 404.
    assert get(hub, qs.HUB_PATH + "/uix").status == 404


class _Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.problems, self.resources = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in attrs:
            if name == "style" or name.startswith("on"):
                self.problems.append("%s has an inline %s attribute" % (tag, name))
        if tag == "style":
            self.problems.append("an inline <style> element")
        if tag == "script" and not attrs.get("src"):
            self.problems.append("an inline <script>")
        for name in ("src", "href"):
            if name in attrs and tag in ("script", "link", "img"):
                self.resources.append(attrs[name])


def test_page_is_csp_compatible_and_self_contained(start_hub):
    hub = start_hub(extra=["ui"])
    p = _Page()
    p.feed(get(hub, UI).text)
    assert p.problems == []
    assert sorted(p.resources) == ["app.css", "app.js", "icon.svg", "icon.svg"]
    for name in ("app.js", "app.css"):
        body = get(hub, UI + name).text
        # No resource from elsewhere: no absolute URL is fetched or imported.
        assert "@import" not in body and "url(http" not in body
        assert "cdn" not in body.lower()
        assert "eval(" not in body and "new Function" not in body


# --------------------------------------------------------------------------- the demo

def demo(hub, path, **query):
    target = DEMO + path + ("?" + urllib.parse.urlencode(query) if query else "")
    return target, get(hub, target)


def test_demo_body_type_links_and_cookie(start_hub):
    hub = start_hub(extra=["demo"])
    body = '{"@id": "/books/1", "title": "Dune"}'
    target, r = demo(hub, "books/1.jsonld", body=body, jwt="a.b.c")
    assert r.status == 200, r
    assert r.body == body.encode()
    assert r.header("Content-Type") == "application/ld+json"
    assert r.header_all("Link") == ['</.well-known/mercure>; rel="mercure"',
                                    '<%s>; rel="self"' % target]
    assert r.header_all("Set-Cookie") == [
        "mercureAuthorization=a.b.c; Path=/.well-known/mercure; SameSite=Strict"]
    assert r.header("Content-Security-Policy") == CSP
    # Without jwt the cookie is removed (a previous one must not linger).
    _, r = demo(hub, "x.json", body="{}")
    assert r.header("Set-Cookie") == ("mercureAuthorization=; Path=/.well-known/mercure; "
                                      "Expires=Thu, 01 Jan 1970 00:00:00 GMT; SameSite=Strict")
    # The demo serves the UI too.
    assert get(hub, UI).status == 200


@pytest.mark.parametrize("path,body,ctype", [
    ("a.json", "{}", "application/json"),
    ("a.JSON", "{}", "application/json"),
    ("a.html", "x", "text/html; charset=utf-8"),
    ("a.txt", "x", "text/plain; charset=utf-8"),
    ("a.xml", "<a/>", "text/xml; charset=utf-8"),
    ("a.svg", "<svg/>", "image/svg+xml"),
    ("dir.d/noext", "  <!DOCTYPE html><p>x", "text/html; charset=utf-8"),
    ("noext", "<?xml version='1.0'?><a/>", "text/xml; charset=utf-8"),
    ("noext", '{"a": 1}', "text/plain; charset=utf-8"),
    ("a.unknown", "\x01\x02", "application/octet-stream"),
    ("noext", "", None),
])
def test_demo_content_types(start_hub, path, body, ctype):
    hub = start_hub(extra=["demo"])
    _, r = demo(hub, path, body=body)
    assert r.status == 200 and r.body == body.encode()
    assert r.header("Content-Type") == ctype, r


def test_demo_cookie_name_and_sanitizing(start_hub):
    hub = start_hub(extra=["demo", "cookie_name myCookie"])
    target, r = demo(hub, "x", jwt='a b;c"d')
    assert r.header_all("Link")[0] == '</.well-known/mercure>; rel="mercure"; cookie-name="myCookie"'
    # As Go writes it: invalid bytes dropped, quoted because of the space.
    assert r.header("Set-Cookie") == 'myCookie="a bcd"; Path=/.well-known/mercure; SameSite=Strict'
    assert r.body == b"" and r.header("Content-Type") is None


def test_demo_methods_and_switch(start_hub):
    hub = start_hub(extra=["demo"])
    r = get(hub, DEMO + "x.json", method="POST")
    assert r.status == 405 and r.header("Allow") == "GET, HEAD"
    with hub.conn() as c:
        c.send(qs.build_request("HEAD", DEMO + "x.json?body=abc"))
        r = c.read_response("HEAD")
        assert r.status == 200 and r.header("Content-Length") == "3" and r.body == b""
    ui_only = start_hub(extra=["ui"])
    assert get(ui_only, DEMO + "x.json?body=1").status == 404


def test_demo_cookie_is_httponly_over_tls(start_hub):
    hub = start_hub(extra=["demo"], server_name="https://127.0.0.1:0",
                    env={"CADDY_SERVER_EXTRA_DIRECTIVES": "tls internal"})
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    with socket.create_connection((qs.HOST, hub.port), timeout=qs.T(10)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(qs.build_request("GET", DEMO + "x?jwt=a.b.c", headers=[("Connection",
                                                                                 "close")]))
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    assert ("Set-Cookie: mercureAuthorization=a.b.c; Path=/.well-known/mercure; HttpOnly; "
            "SameSite=Strict") in head, head
