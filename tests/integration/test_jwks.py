"""Keys from JWK Sets (publisher_jwks_url, subscriber_jwks_url): a JWKS served by the test
itself over HTTP and HTTPS (a CA made here), and from a local file. Rotation without restart,
unknown kids (fetched again, rate-limited), malformed documents, a server that goes down,
and the verified-token cache across a rotation."""

import datetime
import http.server
import ipaddress
import json
import signal
import ssl
import threading
import time
import uuid

import pytest

import qs


# --------------------------------------------------------------------------- keys and sets

def _int_b64(n, length=None):
    length = length or (n.bit_length() + 7) // 8
    return qs.b64url(n.to_bytes(length, "big"))


class Key:
    """A private key, its algorithm and kid, and its public JWK."""

    def __init__(self, alg, kid, private=None, jwk_alg=True):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
        self.alg, self.kid = alg, kid
        if alg.startswith(("RS", "PS")):
            self.private = private or rsa.generate_private_key(public_exponent=65537,
                                                               key_size=2048)
            pub = self.private.public_key().public_numbers()
            self.jwk = {"kty": "RSA", "n": _int_b64(pub.n), "e": _int_b64(pub.e)}
        elif alg.startswith("ES"):
            curve, crv, size = {"ES256": (ec.SECP256R1, "P-256", 32),
                                "ES384": (ec.SECP384R1, "P-384", 48),
                                "ES512": (ec.SECP521R1, "P-521", 66)}[alg]
            self.private = private or ec.generate_private_key(curve())
            pub = self.private.public_key().public_numbers()
            self.jwk = {"kty": "EC", "crv": crv, "x": _int_b64(pub.x, size),
                        "y": _int_b64(pub.y, size)}
        elif alg == "EdDSA":
            self.private = private or ed25519.Ed25519PrivateKey.generate()
            raw = self.private.public_key().public_bytes(serialization.Encoding.Raw,
                                                         serialization.PublicFormat.Raw)
            self.jwk = {"kty": "OKP", "crv": "Ed25519", "x": qs.b64url(raw)}
        else:  # HS*
            self.private = private or uuid.uuid4().hex.encode()
            self.jwk = {"kty": "oct", "k": qs.b64url(self.private)}
        if kid is not None:
            self.jwk["kid"] = kid
        if jwk_alg:
            self.jwk["alg"] = alg
        self.jwk["use"] = "sig"

    def token(self, claims, kid=None, alg=None):
        header = {}
        if self.kid is not None or kid is not None:
            header["kid"] = kid if kid is not None else self.kid
        return qs.make_jwt(claims, self.private, alg or self.alg, header=header)

    def pub(self, topics=("*",), **kw):
        return self.token(qs.mercure_claims(publish=list(topics), **kw))

    def sub(self, topics=("*",), **kw):
        return self.token(qs.mercure_claims(subscribe=list(topics), **kw))


def jwks(*keys):
    return json.dumps({"keys": [k.jwk for k in keys]})


# --------------------------------------------------------------------------- the JWKS server

class JWKSServer:
    """Serves `document` at any path over HTTP (or HTTPS with a certificate made by a test
    CA). `status` other than 200 is answered with an error body; `down()` closes the port
    and `up()` opens it again on the same port. Counts the requests it answered."""

    def __init__(self, document, tls=None):
        self.document = document
        self.status = 200
        self.fetches = 0
        self.lock = threading.Lock()
        self.tls = tls
        self.port = 0
        self._start()

    def _start(self):
        state = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with state.lock:
                    state.fetches += 1
                    status, body = state.status, state.document
                if isinstance(body, str):
                    body = body.encode()
                if status != 200:
                    body = b"nope"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.tls["cert"], self.tls["key"])
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "%s://127.0.0.1:%d/.well-known/jwks.json" % ("https" if self.tls else "http",
                                                           self.port)

    def count(self):
        with self.lock:
            return self.fetches

    def set(self, document=None, status=200):
        with self.lock:
            if document is not None:
                self.document = document
            self.status = status

    def down(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def up(self):
        self._start()

    def close(self):
        try:
            self.down()
        except Exception:
            pass


@pytest.fixture
def jwks_server():
    servers = []

    def make(document, tls=None):
        s = JWKSServer(document, tls)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory):
    """A CA and a certificate it issued for 127.0.0.1 and localhost; another for a name the
    test server does not have."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d = tmp_path_factory.mktemp("ca")
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("Quicksilver test CA"))
          .issuer_name(name("Quicksilver test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def leaf(names, ips, stem):
        key = ec.generate_private_key(ec.SECP256R1())
        sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i))
                                                    for i in ips]
        cert = (x509.CertificateBuilder().subject_name(name(stem))
                .issuer_name(ca.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .sign(ca_key, hashes.SHA256()))
        cert_path, key_path = d / (stem + ".crt"), d / (stem + ".key")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return {"cert": str(cert_path), "key": str(key_path)}

    ca_path = d / "ca.crt"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return {"ca": str(ca_path), "good": leaf(["localhost"], ["127.0.0.1"], "server"),
            "wrong_name": leaf(["jwks.example.com"], [], "wrong")}


def jwks_hub(start_hub, pub_url=None, sub_url=None, extra=(), anonymous=True, **kw):
    lines = list(extra)
    if pub_url:
        lines.append("publisher_jwks_url " + pub_url)
    if sub_url:
        lines.append("subscriber_jwks_url " + sub_url)
    return start_hub(extra=lines, anonymous=anonymous,
                     publisher_key=None if pub_url else qs.PUB_KEY,
                     subscriber_key=None if sub_url else qs.SUB_KEY, **kw)


def start_failure(tmp_path, lines):
    """Runs `mercure run` expecting it to refuse to start; returns its stderr."""
    env = {"SERVER_NAME": "127.0.0.1:0", "MERCURE_EXTRA_DIRECTIVES": "\n".join(["anonymous"] + lines)}
    p = qs.run_mercure(["run"], tmp_path, env=env, timeout=qs.T(30))
    assert p.returncode != 0, p.stderr
    return p.stderr


def publish_status(hub, token, topic="urn:jwks"):
    return qs.publish(hub, [topic], "x", token=token).status


def wait_status(hub, token, want, timeout=None, topic="urn:jwks"):
    qs.wait_until(lambda: publish_status(hub, token, topic) == want, timeout or qs.T(8),
                  interval=0.1, what="publish answered %d" % want)


# --------------------------------------------------------------------------- tests

@pytest.fixture(scope="module")
def family():
    """One key of each family, each with a kid."""
    return {alg: Key(alg, "kid-" + alg) for alg in
            ("RS256", "PS384", "ES256", "ES384", "ES512", "EdDSA", "HS256", "HS512")}


def test_every_algorithm_by_kid_over_http(start_hub, jwks_server, family):
    server = jwks_server(jwks(*family.values()))
    hub = jwks_hub(start_hub, pub_url=server.url)
    for alg, key in family.items():
        assert publish_status(hub, key.pub()) == 200, alg
        # The right kid with another key's signature, and a token signed by a stranger.
        stranger = Key(alg, key.kid)
        assert publish_status(hub, stranger.pub()) == 401, alg
    # A key pinned to ES256 does not serve another algorithm under its kid.
    es = family["ES256"]
    other = Key("ES384", es.kid)
    assert publish_status(hub, other.pub()) == 401
    # Without a publish claim nothing is published; subscribers are not concerned.
    assert publish_status(hub, family["ES256"].sub()) == 401
    assert "publisher_jwks_url: 8 keys from " + server.url in hub.stderr()


def test_subscribers_from_the_same_set(start_hub, jwks_server, family):
    key = family["ES256"]
    server = jwks_server(jwks(key))
    hub = jwks_hub(start_hub, pub_url=server.url, sub_url=server.url, anonymous=False)
    # One source for both roles: one fetch at start.
    assert server.count() == 1
    with qs.open_stream(hub, ["urn:p"], token=key.sub(["urn:p"])) as s:
        qs.publish_ok(hub, ["urn:p"], "secret", id="p1", private=True, token=key.pub())
        assert s.next_event().id == "p1"
    with hub.conn() as c:
        c.send(qs.subscribe_request(["urn:p"], token=Key("ES256", key.kid).sub(["urn:p"])))
        assert c.read_head().status == 401


def test_https_with_a_test_ca(start_hub, jwks_server, family, test_ca):
    key = family["RS256"]
    server = jwks_server(jwks(key), tls=test_ca["good"])
    hub = jwks_hub(start_hub, pub_url=server.url, extra=["jwks_ca_file " + test_ca["ca"]])
    assert publish_status(hub, key.pub()) == 200


def test_https_refuses_an_unverified_certificate(tmp_path, jwks_server, family, test_ca):
    key = family["RS256"]
    server = jwks_server(jwks(key), tls=test_ca["good"])
    # The system's CAs do not know the test CA.
    err = start_failure(tmp_path / "a", ["publisher_jwks_url " + server.url])
    assert "publisher_jwks_url: the JWK Set at %s cannot be used" % server.url in err
    assert "certificate" in err.lower()
    # A certificate for another name, even from the trusted CA.
    wrong = jwks_server(jwks(key), tls=test_ca["wrong_name"])
    err = start_failure(tmp_path / "b", ["publisher_jwks_url " + wrong.url,
                                         "jwks_ca_file " + test_ca["ca"]])
    assert "cannot be used" in err and ("certificate" in err.lower() or "match" in err)
    assert wrong.count() == 0  # the handshake failed: no request was sent


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_rotation_without_restart(start_hub, jwks_server, test_ca, scheme):
    old, new = Key("ES256", "old"), Key("ES256", "new")
    tls = test_ca["good"] if scheme == "https" else None
    server = jwks_server(jwks(old), tls=tls)
    hub = jwks_hub(start_hub, pub_url=server.url,
                   extra=["jwks_refresh_interval 1s", "workers 1",
                          "jwks_ca_file " + test_ca["ca"]])
    token = old.pub()
    for _ in range(5):  # verified once, then served by the worker's token cache
        assert publish_status(hub, token) == 200
    # The issuer publishes the new key, then retires the old one.
    server.set(jwks(old, new))
    wait_status(hub, new.pub(), 200)
    assert publish_status(hub, token) == 200
    server.set(jwks(new))
    wait_status(hub, token, 401)  # the cached token is refused once its kid is gone
    assert publish_status(hub, new.pub()) == 200
    assert "the key set changed: 1 key from" in hub.stderr()


def test_same_kid_with_new_material(start_hub, jwks_server):
    """A kid reused for another key: the old key's tokens, cached or not, are refused."""
    first, second = Key("HS256", "k"), Key("HS256", "k")
    server = jwks_server(jwks(first))
    hub = jwks_hub(start_hub, pub_url=server.url, extra=["jwks_refresh_interval 1s",
                                                          "workers 1"])
    token = first.pub()
    for _ in range(3):
        assert publish_status(hub, token) == 200
    server.set(jwks(second))
    wait_status(hub, token, 401)
    assert publish_status(hub, second.pub()) == 200


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_unknown_kid_fetches_the_set_again(start_hub, jwks_server, test_ca, scheme):
    a, b = Key("EdDSA", "a"), Key("EdDSA", "b")
    server = jwks_server(jwks(a), tls=test_ca["good"] if scheme == "https" else None)
    hub = jwks_hub(start_hub, pub_url=server.url,
                   extra=["jwks_refresh_interval 1h", "jwks_min_refresh_interval 1s",
                          "jwks_ca_file " + test_ca["ca"]])
    assert server.count() == 1
    server.set(jwks(a, b))
    # Refused while the set is fetched again in the background, then accepted.
    assert publish_status(hub, b.pub()) == 401
    wait_status(hub, b.pub(), 200)
    assert server.count() == 2
    assert publish_status(hub, a.pub()) == 200


def test_random_kids_do_not_make_a_fetch_loop(start_hub, jwks_server):
    a = Key("ES256", "a")
    server = jwks_server(jwks(a))
    hub = jwks_hub(start_hub, pub_url=server.url,
                   extra=["jwks_refresh_interval 1h", "jwks_min_refresh_interval 2s"])
    started = time.monotonic()
    with hub.conn() as c:
        for i in range(200):
            tok = a.token(qs.mercure_claims(publish=["*"]), kid=uuid.uuid4().hex)
            r = c.request("POST", qs.HUB_PATH,
                          headers=[("Authorization", "Bearer " + tok),
                                   ("Content-Type", "application/x-www-form-urlencoded")],
                          body="topic=urn:x&data=x")
            assert r.status == 401
    elapsed = time.monotonic() - started
    time.sleep(0.5)
    # One fetch at start, then at most one per 2 s while the random kids came.
    assert server.count() <= 2 + int(elapsed / 2), (server.count(), elapsed)
    assert publish_status(hub, a.pub()) == 200


def test_server_down_keeps_the_last_good_set(start_hub, jwks_server):
    a, b = Key("RS256", "a"), Key("RS256", "b")
    server = jwks_server(jwks(a))
    hub = jwks_hub(start_hub, pub_url=server.url,
                   extra=["jwks_refresh_interval 1s", "jwks_min_refresh_interval 1s"])
    server.down()
    time.sleep(qs.T(2.5))  # refreshes fail meanwhile
    assert publish_status(hub, a.pub()) == 200
    assert publish_status(hub, b.pub()) == 401
    err = hub.stderr()
    assert "cannot be used" in err and "the keys fetched before stay in use" in err
    # Said once per outage.
    assert err.count("the keys fetched before stay in use") == 1
    # Errors and garbage are failures too: the set in use stays.
    server.up()
    server.set(status=500)
    time.sleep(qs.T(1.5))
    assert publish_status(hub, a.pub()) == 200
    server.set("{not json", status=200)
    time.sleep(qs.T(1.5))
    assert publish_status(hub, a.pub()) == 200
    server.set(json.dumps({"keys": []}))
    time.sleep(qs.T(1.5))
    assert publish_status(hub, a.pub()) == 200
    # Back with a rotated set.
    server.set(jwks(b))
    wait_status(hub, b.pub(), 200)
    assert publish_status(hub, a.pub()) == 401
    assert "can be fetched again" in hub.stderr()


@pytest.mark.parametrize("case", ["not_json", "no_keys", "empty", "unusable", "status_404",
                                  "too_large", "refused"])
def test_unusable_set_at_start_is_a_startup_error(tmp_path, jwks_server, case):
    documents = {
        "not_json": "<html>hello</html>",
        "no_keys": json.dumps({"kty": "nothing"}).replace("kty", "ktx"),
        "empty": json.dumps({"keys": []}),
        "unusable": json.dumps({"keys": [{"kty": "EC", "crv": "P-192", "x": "AA", "y": "AA"}]}),
        "status_404": jwks(Key("ES256", "a")),
        "too_large": json.dumps({"keys": [], "pad": "x" * (1024 * 1024)}),
        "refused": jwks(Key("ES256", "a")),
    }
    expected = {
        "not_json": "the JWK Set is not valid JSON",
        "no_keys": "the JWK Set has no \"keys\" array",
        "empty": "the JWK Set is empty",
        "unusable": "the JWK Set has no usable signature verification key",
        "status_404": "HTTP status 404",
        "too_large": "the document is larger than 1048576 bytes",
        "refused": "Couldn't connect to server",
    }
    server = jwks_server(documents[case])
    url = server.url
    if case == "status_404":
        server.set(status=404)
    if case == "refused":
        server.down()
    err = start_failure(tmp_path, ["publisher_jwks_url " + url])
    assert "mercure: publisher_jwks_url: the JWK Set at %s cannot be used: " % url in err, err
    assert expected[case] in err, err
    if case == "unusable":
        assert "key 0 skipped: unsupported or missing EC curve" in err


def test_validate_fetches_the_set(tmp_path, jwks_server):
    server = jwks_server(jwks(Key("ES256", "a")))
    env = {"SERVER_NAME": "127.0.0.1:0",
           "MERCURE_EXTRA_DIRECTIVES": "anonymous\npublisher_jwks_url " + server.url}
    p = qs.run_mercure(["validate"], tmp_path, env=env)
    assert p.returncode == 0 and "Valid configuration" in p.stdout, p.stderr
    server.set("[]")
    p = qs.run_mercure(["validate"], tmp_path, env=env)
    assert p.returncode == 1 and "the JWK Set has no \"keys\" array" in p.stderr


def test_local_file_rotation(start_hub, tmp_path):
    a, b = Key("ES384", "a"), Key("ES384", "b")
    path = tmp_path / "keys.json"
    path.write_text(jwks(a))
    hub = jwks_hub(start_hub, pub_url="file://" + str(path),
                   extra=["jwks_refresh_interval 1s"])
    assert publish_status(hub, a.pub()) == 200
    path.write_text(jwks(b))
    wait_status(hub, b.pub(), 200)
    assert publish_status(hub, a.pub()) == 401


def test_local_file_is_read_again_on_sighup(start_hub, tmp_path):
    a, b = Key("ES384", "a"), Key("ES384", "b")
    path = tmp_path / "keys.json"
    path.write_text(jwks(a))
    hub = jwks_hub(start_hub, pub_url="file://" + str(path),
                   extra=["jwks_refresh_interval 1h", "jwks_min_refresh_interval 1h"])
    assert publish_status(hub, a.pub()) == 200
    path.write_text(jwks(b))
    assert publish_status(hub, b.pub()) == 401  # not read again before the signal
    hub.signal(signal.SIGHUP)
    wait_status(hub, b.pub(), 200)
    assert publish_status(hub, a.pub()) == 401


def test_sighup_fetches_the_set_at_once(start_hub, jwks_server):
    a, b = Key("ES256", "a"), Key("ES256", "b")
    server = jwks_server(jwks(a))
    hub = jwks_hub(start_hub, pub_url=server.url,
                   extra=["jwks_refresh_interval 1h", "jwks_min_refresh_interval 1h"])
    server.set(jwks(b))
    hub.signal(signal.SIGHUP)
    wait_status(hub, b.pub(), 200)
    assert publish_status(hub, a.pub()) == 401
    assert "received SIGHUP: fetching the JWK Sets again" in hub.stderr()


def test_static_key_is_ignored_with_a_set(start_hub, jwks_server):
    a = Key("ES256", "a")
    server = jwks_server(jwks(a))
    hub = start_hub(extra=["publisher_jwks_url " + server.url])  # MERCURE_PUBLISHER_JWT_KEY set
    assert publish_status(hub, a.pub()) == 200
    assert publish_status(hub, qs.pub_token()) == 401
    assert "publisher_jwt is ignored: publisher_jwks_url gives the keys" in hub.stderr()


def test_token_without_kid_and_a_single_key(start_hub, jwks_server):
    a = Key("ES256", None)
    b = Key("ES256", "b")
    server = jwks_server(jwks(a))
    hub = jwks_hub(start_hub, pub_url=server.url, extra=["jwks_refresh_interval 1s"])
    assert publish_status(hub, a.pub()) == 200
    assert publish_status(hub, a.token(qs.mercure_claims(publish=["*"]), kid="x")) == 401
    server.set(jwks(a, b))
    wait_status(hub, b.pub(), 200)
    # a's key has no kid: a token without kid still finds it.
    assert publish_status(hub, a.pub()) == 200


# --------------------------------------------------------------------------- protocol 1.0 issuers

JWKS_ISSUER = "https://jwks.example"


def issuer_block(identifier, publisher=None, subscriber=None):
    """An `issuer` block whose roles take `jwks_uri …` lines (None: no such role)."""
    lines = ["issuer %s {" % identifier]
    for role, value in (("publisher", publisher), ("subscriber", subscriber)):
        if value:
            lines += ["%s {" % role, "jwks_uri " + value, "}"]
    return lines + ["}"]


def hub1(start_hub, lines, protocol="1.0"):
    """A 1.0 hub with the reference's default issuer and the given extra lines."""
    import qs1
    return qs1.start(start_hub, protocol=protocol, extra=lines, anonymous=True)


def access(hub, key, iss=JWKS_ISSUER, kid=None, actions=("publish", "subscribe")):
    """A 1.0 access token granting `actions` on every topic, signed with a set's key."""
    import qs1
    claims = {"aud": hub.aud, "iss": iss, "exp": int(time.time()) + 3600,
              "authorization_details": [qs1.detail([a], ["*"]) for a in actions]}
    header = {"typ": "at+jwt"}
    if key.kid is not None or kid is not None:
        header["kid"] = kid if kid is not None else key.kid
    return qs.make_jwt(claims, key.private, key.alg, header=header)


def publish1(hub, token):
    import qs1
    return qs1.publish(hub, "https://example.com/books/1", "x", token=token).status


def wait_publish1(hub, token, want):
    qs.wait_until(lambda: publish1(hub, token) == want, qs.T(8), interval=0.1,
                  what="publish answered %d" % want)


def test_issuer_jwks_uri_by_kid_and_listed_algorithms(start_hub, jwks_server):
    import qs1
    es, rs = Key("ES256", "es"), Key("RS256", "rs")
    server = jwks_server(jwks(es, rs))
    # Both roles name one URL: one source, one fetch. Subscribers accept ES256 only.
    hub = hub1(start_hub, issuer_block(JWKS_ISSUER, publisher=server.url,
                                       subscriber=server.url + " ES256"))
    assert server.count() == 1
    assert publish1(hub, access(hub, es)) == 200
    assert publish1(hub, access(hub, rs)) == 200
    # The token's iss chooses the issuer: the same key under another iss is refused.
    assert publish1(hub, access(hub, es, iss=qs1.ISSUER)) == 401
    assert publish1(hub, access(hub, es, iss="https://unknown.example")) == 401
    # A kid the set lacks, or a kid of another algorithm, is refused.
    assert publish1(hub, access(hub, es, kid="nope")) == 401
    assert publish1(hub, access(hub, es, kid="rs")) == 401
    with qs1.open_matchers(hub, [("match", "https://example.com/books/1")],
                           access(hub, es)) as s:
        assert s.response.status == 200
        qs1.publish_ok(hub, "https://example.com/books/1", "to es", token=access(hub, rs),
                       id="urn:jwks:1")
        assert [e.data for e in s.events_until("urn:jwks:1")] == ["to es"]
    # RS256 is not listed for subscribers.
    r = qs1.request(hub, "GET", qs1.matcher_target([("match", "https://example.com/books/1")]),
                    [("Accept", "text/event-stream")], token=access(hub, rs))
    assert r.status == 401
    # The default issuer's static key still works beside the set.
    assert qs1.publish(hub, "https://example.com/books/1", "x",
                       token=qs1.all_token(hub)).status == 200
    assert "issuer \"%s\": publisher: jwks_uri: 2 keys from %s" % (JWKS_ISSUER, server.url) \
        in hub.stderr()


def test_issuer_set_rotation_and_unknown_kid(start_hub, jwks_server):
    a, b = Key("EdDSA", "a"), Key("EdDSA", "b")
    server = jwks_server(jwks(a))
    hub = hub1(start_hub, issuer_block(JWKS_ISSUER, publisher=server.url) +
               ["jwks_refresh_interval 1h", "jwks_min_refresh_interval 1s", "workers 1"])
    token = access(hub, a)
    for _ in range(3):  # verified once, then served by the worker's cache
        assert publish1(hub, token) == 200
    server.set(jwks(a, b))
    # b's kid is unknown: refused while the set is fetched again, then accepted.
    assert publish1(hub, access(hub, b)) == 401
    wait_publish1(hub, access(hub, b), 200)
    assert server.count() == 2
    # a retired: its cached token is refused once the new set is in use.
    server.set(jwks(b))
    hub.signal(signal.SIGHUP)
    wait_publish1(hub, token, 401)
    assert publish1(hub, access(hub, b)) == 200
    assert "received SIGHUP: fetching the JWK Sets again" in hub.stderr()


def test_issuer_set_unusable_at_start(tmp_path, jwks_server):
    server = jwks_server("[]")
    env = {"SERVER_NAME": "127.0.0.1:0",
           "MERCURE_PUBLISHER_JWT_KEY": "k", "MERCURE_SUBSCRIBER_JWT_KEY": "k",
           "MERCURE_EXTRA_DIRECTIVES": "\n".join(
               ["protocol 1.0"] + issuer_block(JWKS_ISSUER, subscriber=server.url))}
    want = "issuer \"%s\": subscriber: jwks_uri: the JWK Set at %s cannot be used" % (
        JWKS_ISSUER, server.url)
    for cmd in (["run"], ["validate"]):
        p = qs.run_mercure(cmd, tmp_path, env=env, timeout=qs.T(30))
        assert p.returncode != 0 and want in p.stderr, p.stderr
    server.set(jwks(Key("ES256", "a")))
    p = qs.run_mercure(["validate"], tmp_path, env=env)
    assert p.returncode == 0 and "Valid configuration" in p.stdout, p.stderr


def test_compatibility_implicit_issuer_uses_the_legacy_set(start_hub, jwks_server):
    """Under protocol_version_compatibility, 0.x's JWK Set is the implicit issuer's: access
    tokens of any iss and 0.x tokens are verified with the same keys."""
    a = Key("ES256", "a")
    server = jwks_server(jwks(a))
    hub = start_hub(extra=["protocol_version_compatibility 8",
                           "publisher_jwks_url " + server.url], anonymous=True,
                    publisher_key=None)
    hub.host = "127.0.0.1:%d" % hub.port
    hub.aud = "http://%s/.well-known/mercure" % hub.host
    assert publish1(hub, access(hub, a, iss="https://anyone.example")) == 200
    assert publish1(hub, access(hub, a, kid="b")) == 401
    assert publish_status(hub, a.pub()) == 200
    assert server.count() == 1
