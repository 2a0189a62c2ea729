"""HTTPS: certificates (files, `tls internal`, bad ones at start, reload on SIGHUP), site
addresses (several, plain beside TLS), TLS versions, ALPN, h2c, and the hub's features over
HTTP/1.1 and HTTP/2 on TLS, mixed on one hub. Certificates are made by the tests
(qs.TLSFiles)."""

import datetime
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import warnings
from pathlib import Path

import pytest

import h2client
import qs
from qs import T

TOPIC = "https://example.com/books/1"


@pytest.fixture
def tls_hub(start_hub, tls_files):
    return start_hub(tls=tls_files, extra=["cors_origins https://app.example.com",
                                           "publish_origins https://app.example.com"])


def https_conn(hub, alpn=("http/1.1",), **kw):
    return qs.HTTPConn(hub.port, tls=hub.tls.context(alpn), **kw)


def h2(hub, **kw):
    return h2client.H2Client(hub.port, tls=hub.tls.context(("h2", "http/1.1")), **kw)


# --------------------------------------------------------------------- the hub over TLS

def test_publish_and_subscribe_mixed_across_protocols(tls_hub):
    """Subscribers over HTTP/1.1 and HTTP/2 (several streams on one connection) receive
    the updates published over either protocol, with the same bytes."""
    hub = tls_hub
    with qs.open_stream(hub, [TOPIC]) as s1, h2(hub) as c:
        s2 = c.open_stream([TOPIC])
        s3 = c.open_stream(["https://example.com/books/{id}"])
        assert s1.response.version == "HTTP/1.1"
        r = c.publish([TOPIC], "over h2", id="from-h2")
        assert r.status == 200 and r.text == "from-h2", r
        qs.publish_ok(hub, [TOPIC], "over h1", id="from-h1")
        for s in (s1, s2, s3):
            assert [e.id for e in s.events_until("from-h1")] == ["from-h2", "from-h1"]
        assert bytes(s1.raw) == bytes(s2.raw) == bytes(s3.raw) == (
            b":\nid: from-h2\ndata: over h2\n\nid: from-h1\ndata: over h1\n\n")


def test_private_updates_over_https(tls_hub):
    hub = tls_hub
    tok = qs.sub_token([TOPIC])
    with qs.open_stream(hub, [TOPIC], token=tok) as h1_auth, \
            qs.open_stream(hub, [TOPIC]) as h1_anon, h2(hub) as c:
        h2_auth = c.open_stream([TOPIC], token=tok)
        h2_anon = c.open_stream([TOPIC])
        assert c.publish([TOPIC], "secret", id="private", private=True).status == 200
        qs.publish_ok(hub, [TOPIC], "public", id="public")
        for s in (h1_auth, h2_auth):
            assert [e.id for e in s.events_until("public")] == ["private", "public"]
        for s in (h1_anon, h2_anon):
            assert [e.id for e in s.events_until("public")] == ["public"]


def test_cookie_authorization_over_https(tls_hub):
    """The mercureAuthorization cookie authorizes a subscriber over both protocols, and a
    publisher from an allowed origin over HTTP/2."""
    hub = tls_hub
    cookie = "mercureAuthorization=" + qs.sub_token([TOPIC])
    with qs.open_stream(hub, [TOPIC], cookie=cookie) as s1, h2(hub) as c:
        s2 = c.open_stream([TOPIC], headers=[("cookie", cookie)])
        pub_cookie = "mercureAuthorization=" + qs.pub_token()
        body = qs.form_body(qs.publish_pairs([TOPIC], data="x", id="by-cookie", private=True))
        sid = c.request("POST", qs.HUB_PATH, [
            ("content-type", "application/x-www-form-urlencoded"), ("cookie", pub_cookie),
            ("origin", "https://app.example.com")], body)
        r = c.response(sid)
        assert r.status == 200 and r.text == "by-cookie", r
        # From another origin, the cookie does not authorize a publish.
        sid = c.request("POST", qs.HUB_PATH, [
            ("content-type", "application/x-www-form-urlencoded"), ("cookie", pub_cookie),
            ("origin", "https://evil.example.com")], body)
        assert c.response(sid).status in (401, 403)
        for s in (s1, s2):
            assert s.next_event().id == "by-cookie"


def test_cors_over_https(tls_hub):
    hub = tls_hub
    pre = [("origin", "https://app.example.com"), ("access-control-request-method", "GET"),
           ("access-control-request-headers", "authorization")]
    with h2(hub) as c:
        r2 = c.response(c.request("OPTIONS", qs.HUB_PATH, pre))
    with https_conn(hub) as conn:
        r1 = conn.request("OPTIONS", qs.HUB_PATH, pre)
    for r in (r1, r2):
        assert r.status in (200, 204), r
        assert r.header("access-control-allow-origin") == "https://app.example.com", r
        assert r.header("access-control-allow-credentials") == "true", r
        assert "authorization" in (r.header("access-control-allow-headers") or "").lower(), r
    with h2(hub) as c:
        s = c.open_stream([TOPIC], headers=[("origin", "https://app.example.com")])
        assert dict(s.response.headers)["access-control-allow-origin"] == \
            "https://app.example.com"


def test_server_name_https_and_tls_from_caddy_server_extra_directives(start_hub, tls_files):
    """SERVER_NAME=https://… with `tls CERT KEY` in CADDY_SERVER_EXTRA_DIRECTIVES: a client
    that verifies the certificate (against the test CA, for 127.0.0.1) is served."""
    hub = start_hub(tls=tls_files)
    assert hub.listeners() == [("https", hub.port, "https://127.0.0.1:0")]
    with qs.HTTPConn(hub.port, tls=tls_files.context(verify=True)) as c:
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        r = c.request("GET", "/healthz")
        assert r.status == 200
        assert qs.peer_certificate_serial(c.sock) == tls_files.serial()


def test_plain_and_tls_addresses_serve_the_same_hub(start_hub, tls_files):
    hub = start_hub(server_name="http://127.0.0.1:0, https://127.0.0.1:0", tls=tls_files)
    lst = hub.listeners(2)
    assert [x[0] for x in lst] == ["http", "https"], lst
    plain_port, tls_port = lst[0][1], lst[1][1]
    assert plain_port != tls_port
    with qs.HTTPConn(plain_port) as pc, qs.HTTPConn(tls_port, tls=tls_files.context()) as tc, \
            h2client.H2Client(tls_port, tls=tls_files.context(("h2",))) as c:
        for conn in (pc, tc):
            conn.send(qs.subscribe_request([TOPIC]))
        streams = [qs.SSEStream(conn, conn.read_head()) for conn in (pc, tc)]
        streams.append(c.open_stream([TOPIC]))
        with qs.HTTPConn(plain_port) as pub:
            qs.publish_ok(hub, [TOPIC], "a", id="via-plain", conn=pub)
        assert c.publish([TOPIC], "b", id="via-tls").status == 200
        for s in streams:
            assert [e.id for e in s.events_until("via-tls")] == ["via-plain", "via-tls"]


def test_plain_http_on_the_tls_port_is_refused_never_served(start_hub, tls_files):
    hub = start_hub(tls=tls_files)
    with h2(hub) as c:
        s = c.open_stream(["*"])
        with qs.HTTPConn(hub.port) as raw:  # no TLS
            raw.send(qs.publish_request(["urn:plain"], data="x", id="plain"))
            r = raw.read_response("POST", T(5))
            assert r.status == 400, r
            assert b"HTTP request to an HTTPS server" in r.body
            assert raw.wait_closed(T(5))
        assert c.publish(["urn:tls"], "y", id="tls").status == 200
        assert [e.id for e in s.events_until("tls")] == ["tls"]


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_tls_1_2_and_1_3_are_served(start_hub, tls_files, version):
    hub = start_hub(tls=tls_files)
    v = getattr(ssl.TLSVersion, version)
    for alpn in (("http/1.1",), ("h2",)):
        ctx = tls_files.context(alpn, minimum=v, maximum=v)
        if alpn == ("h2",):
            with h2client.H2Client(hub.port, tls=ctx) as c:
                assert c.sock.version() == version.replace("_", ".")
                assert c.get("/healthz").status == 200
        else:
            with qs.HTTPConn(hub.port, tls=ctx) as c:
                assert c.sock.version() == version.replace("_", ".")
                assert c.request("GET", "/healthz").status == 200


def test_tls_1_1_is_refused(start_hub, tls_files):
    hub = start_hub(tls=tls_files)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = qs.client_context(None, None, ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    with pytest.raises(ssl.SSLError) as e:
        qs.HTTPConn(hub.port, tls=ctx)
    assert "PROTOCOL_VERSION" in str(e.value).upper() or "VERSION" in str(e.value).upper(), e
    with qs.HTTPConn(hub.port, tls=tls_files.context()) as c:
        assert c.request("GET", "/healthz").status == 200


class MemoryTLS:
    """A TLS client whose records the test sends itself over a raw socket (ssl.MemoryBIO),
    so that they can be cut up or changed."""

    def __init__(self, hub, ctx):
        self.raw = socket.create_connection((qs.HOST, hub.port), timeout=T(5))
        self.raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=qs.HOST)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.raw.sendall(self.outgoing.read())
                self.receive()
        self.raw.sendall(self.outgoing.read())  # the client's Finished

    def receive(self):
        data = self.raw.recv(65536)
        if not data:
            self.incoming.write_eof()
        self.incoming.write(data)
        return data

    def records(self, plaintext):
        """The records of plaintext, as bytes to send."""
        self.tls.write(plaintext)
        return self.outgoing.read()

    def read_all(self):
        """Everything the hub sends until it closes (an SSLError if it sent an alert)."""
        out = b""
        while True:
            try:
                chunk = self.tls.read(65536)
                if not chunk:
                    return out
                out += chunk
            except ssl.SSLWantReadError:
                if not self.receive():
                    return out
            except ssl.SSLZeroReturnError:
                return out


def test_tls_records_arriving_a_byte_at_a_time_and_changed_records(start_hub, tls_files):
    """After a TLS 1.3 handshake the hub opens records itself: a request whose records
    arrive one byte per read is served; a record with a changed byte ends the connection
    with an alert, and the hub goes on serving others."""
    hub = start_hub(tls=tls_files)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    c = MemoryTLS(hub, tls_files.context())
    assert c.tls.version() == "TLSv1.3"
    for byte in c.records(request):
        c.raw.send(bytes([byte]))
        time.sleep(0.002)  # one read each, most of the time
    assert c.read_all().startswith(b"HTTP/1.1 200 ")
    c.raw.close()

    c = MemoryTLS(hub, tls_files.context())
    data = bytearray(c.records(request))
    data[len(data) // 2] ^= 0x01
    c.raw.sendall(bytes(data))
    with pytest.raises(ssl.SSLError) as e:
        c.read_all()
    assert "BAD_RECORD_MAC" in str(e.value).upper(), e
    c.raw.close()
    with qs.HTTPConn(hub.port, tls=tls_files.context()) as ok:
        assert ok.request("GET", "/healthz").status == 200


@pytest.mark.parametrize("offer,protocols,chosen", [
    (("h2", "http/1.1"), None, "h2"),
    (("http/1.1", "h2"), None, "h2"),
    (("http/1.1",), None, "http/1.1"),
    (None, None, None),
    (("h2", "http/1.1"), "h1", "http/1.1"),
    (("h2",), "h2", "h2"),
])
def test_alpn(start_hub, tls_files, offer, protocols, chosen):
    env = {"GLOBAL_OPTIONS": "protocols " + protocols} if protocols else None
    hub = start_hub(tls=tls_files, env=env)
    with socket.create_connection((qs.HOST, hub.port), timeout=T(5)) as raw:
        with tls_files.context(offer).wrap_socket(raw, server_hostname=qs.HOST) as s:
            assert s.selected_alpn_protocol() == chosen
    if chosen == "h2":
        with h2client.H2Client(hub.port, tls=tls_files.context(offer)) as c:
            assert c.get("/healthz").status == 200
    else:
        with qs.HTTPConn(hub.port, tls=tls_files.context(offer)) as c:
            assert c.request("GET", "/healthz").status == 200


def test_alpn_without_a_common_protocol_is_refused(start_hub, tls_files):
    """With `protocols h2` only, a client offering only http/1.1 gets the
    no_application_protocol alert."""
    hub = start_hub(tls=tls_files, env={"GLOBAL_OPTIONS": "protocols h2"})
    with pytest.raises(ssl.SSLError) as e:
        qs.HTTPConn(hub.port, tls=tls_files.context(("http/1.1",)))
    assert "NO APPLICATION PROTOCOL" in str(e.value).upper().replace("_", " "), e


def test_h2c_with_prior_knowledge_when_enabled(start_hub):
    hub = start_hub(env={"GLOBAL_OPTIONS": "protocols h1 h2c"})
    with h2client.H2Client(hub.port) as c:
        s = c.open_stream([TOPIC])
        with qs.open_stream(hub, [TOPIC]) as s1:  # HTTP/1.1 on the same port
            assert s1.response.version == "HTTP/1.1"
            r = c.publish([TOPIC], "x", id="h2c")
            assert r.status == 200
            assert s.next_event().id == "h2c"
            assert s1.next_event().id == "h2c"


def test_h2c_is_refused_unless_enabled(start_hub):
    """On a plain listener without h2c, the preface is not HTTP/2's to answer: no SETTINGS
    comes back, and the connection ends (after an HTTP/1.1 error at most)."""
    hub = start_hub()
    with h2client.RawH2(hub.port) as raw:
        raw.send(raw.request_frame(1, "/healthz"))
        assert raw.wait_closed(T(5))
        assert raw.buf == b"" or re.match(rb"HTTP/1\.1 [45]\d\d ", raw.buf), raw.buf[:100]
        assert not raw.frames_of(h2client.hf.SettingsFrame)


def test_h2c_only_listener_refuses_http1(start_hub):
    hub = start_hub(env={"GLOBAL_OPTIONS": "protocols h2c"})
    with qs.HTTPConn(hub.port) as c:
        c.send(qs.build_request("GET", "/healthz"))
        assert c.wait_closed(T(5))
        assert c.buf == b""
    with h2client.H2Client(hub.port) as c:
        assert c.get("/healthz").status == 200


# --------------------------------------------------------------------- tls internal

def test_tls_internal_makes_a_local_ca_that_clients_can_trust(start_hub, tmp_path):
    """`tls internal`: the hub makes a CA under $XDG_DATA_HOME/quicksilver/pki and logs its
    root; a client trusting that root connects with verification on (127.0.0.1 and
    localhost). A second start reuses the same CA."""
    data = tmp_path / "shared-data"
    env = {"XDG_DATA_HOME": str(data), "CADDY_SERVER_EXTRA_DIRECTIVES": "tls internal"}
    hub = start_hub(server_name="https://127.0.0.1:0", env=env)
    m = re.search(r"trust (\S+root\.crt)", hub.stderr())
    assert m, hub.stderr()
    root = m.group(1)
    assert root == str(data / "quicksilver" / "pki" / "root.crt")
    assert (os.stat(data / "quicksilver" / "pki" / "root.key").st_mode & 0o077) == 0
    for name in ("127.0.0.1", "localhost"):
        ctx = qs.client_context(root, ("h2",))
        with h2client.H2Client(hub.port, tls=ctx) as c:
            pass
        raw = socket.create_connection((qs.HOST, hub.port), timeout=T(5))
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            assert s.selected_alpn_protocol() == "h2"
    # Without trusting the root, verification fails.
    with pytest.raises(ssl.SSLCertVerificationError):
        qs.HTTPConn(hub.port, tls=_default_verifying_context())
    before = open(root, "rb").read()
    hub.stop()
    hub2 = start_hub(server_name="https://127.0.0.1:0", env=env)
    assert open(root, "rb").read() == before
    assert "made a local CA" not in hub2.stderr()
    with qs.HTTPConn(hub2.port, tls=qs.client_context(root)) as c:
        assert c.request("GET", "/healthz").status == 200


def _default_verifying_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


# --------------------------------------------------------------------- bad certificates

def _start_fails(tmp_path, name, cert, key, as_nobody=False):
    """Runs the hub with `tls cert key`; returns its stderr (it must exit 1 at once)."""
    work = tmp_path / name
    work.mkdir()
    if as_nobody:
        os.chmod(work, 0o777)
    env = qs.clean_env({"SERVER_NAME": "https://127.0.0.1:0", "XDG_DATA_HOME": str(work),
                        "MERCURE_TRANSPORT_URL": "local://",
                        "MERCURE_PUBLISHER_JWT_KEY": qs.PUB_KEY,
                        "MERCURE_SUBSCRIBER_JWT_KEY": qs.SUB_KEY,
                        "CADDY_SERVER_EXTRA_DIRECTIVES": "tls %s %s" % (cert, key)})
    argv = [qs.BINARY, "run"]
    if as_nobody:
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + argv
    p = subprocess.run(argv, cwd=str(work), env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=T(15))
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert not qs.sanitizer_lines(p.stderr), p.stderr
    assert "listening on" not in p.stderr
    return p.stderr


def test_missing_certificate_or_key_stops_the_hub(tmp_path, tls_files):
    missing = str(tmp_path / "nope.pem")
    err = _start_fails(tmp_path, "a", missing, tls_files.key)
    assert "cannot read the certificate %s" % missing in err, err
    err = _start_fails(tmp_path, "b", tls_files.cert, missing)
    assert "cannot read the key %s" % missing in err, err


def test_unreadable_key_stops_the_hub(tmp_path):
    """A key the hub's user may not read. The tests usually run as root, which reads
    anything: the hub then runs as nobody, with its files in a directory nobody can reach
    (pytest's own is private to root)."""
    as_nobody = os.geteuid() == 0
    base = Path(qs.tempdir("qs-tls-")) if as_nobody else tmp_path
    try:
        os.chmod(base, 0o755)
        files = qs.TLSFiles(base / "tls")
        os.chmod(base / "tls", 0o755)
        os.chmod(files.cert, 0o644)
        os.chmod(files.key, 0o000)
        err = _start_fails(base, "run", files.cert, files.key, as_nobody=as_nobody)
        assert "cannot read the key %s: Permission denied" % files.key in err, err
    finally:
        if as_nobody:
            shutil.rmtree(base, ignore_errors=True)


def test_mismatched_key_stops_the_hub(tmp_path):
    a = qs.TLSFiles(tmp_path / "a")
    b = qs.TLSFiles(tmp_path / "b")
    err = _start_fails(tmp_path, "run", a.cert, b.key)
    assert "the key %s does not match the certificate %s" % (b.key, a.cert) in err, err


def test_expired_certificate_stops_the_hub(tmp_path):
    now = datetime.datetime.now(datetime.timezone.utc)
    old = qs.TLSFiles(tmp_path / "old", not_before=now - datetime.timedelta(days=10),
                      not_after=now - datetime.timedelta(days=1))
    err = _start_fails(tmp_path, "run", old.cert, old.key)
    assert "the certificate %s expired on" % old.cert in err, err
    future = qs.TLSFiles(tmp_path / "future", not_before=now + datetime.timedelta(days=1),
                         not_after=now + datetime.timedelta(days=10))
    err = _start_fails(tmp_path, "run2", future.cert, future.key)
    assert "the certificate %s is not valid before" % future.cert in err, err


def test_not_pem_stops_the_hub(tmp_path, tls_files):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    err = _start_fails(tmp_path, "a", str(junk), tls_files.key)
    assert "%s is not a PEM certificate chain" % junk in err, err
    err = _start_fails(tmp_path, "b", tls_files.cert, str(junk))
    assert "%s is not a PEM private key" % junk in err, err


# --------------------------------------------------------------------- reload on SIGHUP

def _serial_now(port, ca):
    with qs.HTTPConn(port, tls=qs.client_context(ca)) as c:
        return qs.peer_certificate_serial(c.sock)


def test_sighup_reloads_the_certificate_and_streams_stay_up(start_hub, tmp_path):
    first = qs.TLSFiles(tmp_path / "first")
    live = tmp_path / "live"
    live.mkdir()
    cert, key = live / "cert.pem", live / "key.pem"
    cert.write_bytes(open(first.cert, "rb").read())
    key.write_bytes(open(first.key, "rb").read())
    hub = start_hub(server_name="https://127.0.0.1:0",
                    env={"CADDY_SERVER_EXTRA_DIRECTIVES": "tls %s %s" % (cert, key)})
    hub.tls = first
    assert _serial_now(hub.port, first.ca) == first.serial()
    with qs.open_stream(hub, [TOPIC]) as s1, h2(hub) as c:
        s2 = c.open_stream([TOPIC])
        second = qs.TLSFiles(tmp_path / "second")
        cert.write_bytes(open(second.cert, "rb").read())
        key.write_bytes(open(second.key, "rb").read())
        hub.signal(signal.SIGHUP)
        qs.wait_until(lambda: "certificates reloaded" in hub.stderr(), T(5),
                      what="the reload log line")
        # New connections get the new certificate; the streams opened before go on.
        assert _serial_now(hub.port, second.ca) == second.serial()
        hub.tls = second
        assert c.publish([TOPIC], "after reload", id="after").status == 200
        for s in (s1, s2):
            assert s.next_event().id == "after"

        # A broken certificate on the next reload: the hub says so and keeps the last one.
        cert.write_text("garbage\n")
        hub.signal(signal.SIGHUP)
        qs.wait_until(lambda: "certificates not reloaded" in hub.stderr(), T(5),
                      what="the failed reload log line")
        assert str(cert) in hub.stderr()
        assert _serial_now(hub.port, second.ca) == second.serial()
        qs.publish_ok(hub, [TOPIC], "still", id="still")
        for s in (s1, s2):
            assert s.next_event().id == "still"
