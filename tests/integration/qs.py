"""Helpers for the black-box integration tests of the Quicksilver Mercure hub.

Everything here talks to the real `mercure` binary over raw TCP sockets on 127.0.0.1:
  * Hub            - start/stop a hub process (env vars or a Caddyfile), parse its port,
                     check it did not crash and that sanitizers reported nothing.
  * make_jwt       - mint JWS tokens (HS*, RS*, PS*, ES*, EdDSA, "none").
  * HTTPConn       - send exact bytes, read HTTP/1.x responses (Content-Length, chunked,
                     close-delimited), keep-alive and pipelining.
  * SSEStream      - read an event stream: de-chunks, keeps the exact SSE bytes, parses
                     events and comments, notices the final chunk and EOF.
  * TLSFiles       - certificates made by the test (a CA, a leaf for 127.0.0.1 and
                     localhost, expired and mismatched variants) and client contexts.
Every socket operation has a timeout; timeouts scale with SLOW for sanitizer builds.
Only the standard library and `cryptography` are used here; HTTP/2 (Debian's python3-h2)
is in h2client.py.

A hub started with tls=TLSFiles serves HTTPS; hub.protocol chooses what hub.conn() and the
helpers built on it speak: "h1" (HTTP/1.1, over TLS when the hub has it) or "h2" (HTTP/2
over TLS through h2client.H2HTTPConn, which presents the same HTTP/1.1 byte interface, so
the same tests run over either).
"""

import base64
import hashlib
import hmac
import json
import os
import re
import select
import ssl
import signal as _signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BINARY = os.environ.get("QS_BINARY") or str(REPO / "build" / "mercure")


def _binary_is_sanitized(path):
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


SANITIZED = bool(os.environ.get("QS_SANITIZED")) or _binary_is_sanitized(BINARY)
# Sanitizer builds are 2-3x slower: every timeout is multiplied by SLOW.
SLOW = 3.0 if SANITIZED else 1.0


# How the suite talks to hubs it starts without saying: "h1" (plain HTTP/1.1), "https"
# (HTTP/1.1 over TLS) or "h2" (HTTP/2 over TLS). Tests marked h1_only are skipped unless h1.
PROTOCOL = os.environ.get("QS_PROTOCOL", "h1")


def T(seconds):
    """A timeout, scaled for slow (sanitizer) builds."""
    return seconds * SLOW


HOST = "127.0.0.1"
HUB_PATH = "/.well-known/mercure"

# Default HMAC keys: publisher and subscriber keys differ so that key separation is tested.
PUB_KEY = "publisher-secret-key-for-quicksilver-tests-0123456789"
SUB_KEY = "subscriber-secret-key-for-quicksilver-tests-9876543210"

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                     "ThreadSanitizer", "runtime error")

# Environment variables of the reference hub that must not leak from the caller's env.
_HUB_ENV_PREFIXES = ("MERCURE_",)
_HUB_ENV_NAMES = ("SERVER_NAME", "GLOBAL_OPTIONS", "CADDY_EXTRA_CONFIG",
                  "CADDY_SERVER_EXTRA_DIRECTIVES")


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_HUB_ENV_PREFIXES) and k not in _HUB_ENV_NAMES}
    if SANITIZED:
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def sanitizer_lines(text):
    return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKERS)]


# --------------------------------------------------------------------------- the hub process

class HubStartError(Exception):
    pass


class Hub:
    """A running hub. Use Hub.start(); the conftest fixtures stop it and check it."""

    LISTEN_RE = re.compile(r"listening on (\S+):(\d+) \((\d+) workers?, transport (\S+)\)")

    def __init__(self, proc, workdir, stderr_path, stdout_path):
        self.proc = proc
        self.workdir = Path(workdir)
        self.stderr_path = stderr_path
        self.stdout_path = stdout_path
        self.port = None
        self.workers = None
        self.transport = None
        self.stopped = False  # set when a test (or the fixture) stopped it on purpose
        self.returncode = None
        self.tls = None        # TLSFiles when the hub's first address is served over TLS
        self.protocol = "h1"   # what conn() speaks: "h1" or "h2" (needs tls, or h2c)

    # -- lifecycle
    @classmethod
    def start(cls, workdir, env=None, args=("run",), extra=None, anonymous=True,
              publisher_key=PUB_KEY, subscriber_key=SUB_KEY, server_name="127.0.0.1:0",
              caddyfile=None, wait=True, tls=None, protocol="h1"):
        """Starts `mercure run` with the reference hub's environment variables.

        extra: directives (a list of lines or a string) for MERCURE_EXTRA_DIRECTIVES;
        `anonymous` is prepended unless anonymous=False. env overrides everything
        (a None value removes the variable). caddyfile: text written to ./Caddyfile-test
        and passed with --config. tls: a TLSFiles; the site is then served over HTTPS with
        its certificate (`tls CERT KEY` through CADDY_SERVER_EXTRA_DIRECTIVES, and an
        https:// address unless server_name says otherwise). protocol: see the module doc.
        """
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        lines = []
        if anonymous:
            lines.append("anonymous")
        if isinstance(extra, str):
            lines.extend(extra.split("\n"))
        elif extra:
            lines.extend(extra)
        # A private data directory: the default (lmdb) transport keeps its store in
        # $XDG_DATA_HOME/quicksilver, which must not be shared between hubs or runs.
        hub_env = {"SERVER_NAME": server_name, "XDG_DATA_HOME": str(workdir / "data")}
        if publisher_key is not None:
            hub_env["MERCURE_PUBLISHER_JWT_KEY"] = publisher_key
        if subscriber_key is not None:
            hub_env["MERCURE_SUBSCRIBER_JWT_KEY"] = subscriber_key
        if lines:
            hub_env["MERCURE_EXTRA_DIRECTIVES"] = "\n".join(lines)
        if tls is not None and caddyfile is None:
            if server_name == "127.0.0.1:0":
                hub_env["SERVER_NAME"] = "https://127.0.0.1:0"
            hub_env["CADDY_SERVER_EXTRA_DIRECTIVES"] = "tls %s %s" % (tls.cert, tls.key)
        hub_env.update(env or {})
        argv = [BINARY] + list(args)
        if caddyfile is not None:
            cf = workdir / "Caddyfile-test"
            cf.write_text(caddyfile)
            argv += ["--config", str(cf)]
        stderr_path = workdir / "hub.stderr"
        stdout_path = workdir / "hub.stdout"
        with open(stderr_path, "wb") as err, open(stdout_path, "wb") as out:
            proc = subprocess.Popen(argv, cwd=str(workdir), env=clean_env(hub_env),
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        hub = cls(proc, workdir, stderr_path, stdout_path)
        hub.tls = tls
        hub.protocol = protocol
        if wait:
            hub.wait_listening()
        return hub

    def wait_listening(self, timeout=None):
        deadline = time.monotonic() + (timeout or T(10))
        while time.monotonic() < deadline:
            m = self.LISTEN_RE.search(self.stderr())
            if m:
                self.port = int(m.group(2))
                self.workers = int(m.group(3))
                self.transport = m.group(4)
                return self.port
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                self.stopped = True
                raise HubStartError("hub exited with %r before listening:\n%s"
                                    % (self.proc.returncode, self.stderr()))
            time.sleep(0.01)
        raise HubStartError("hub did not report its port in time:\n" + self.stderr())

    SERVING_RE = re.compile(r"serving (https?) on (\S+):(\d+) \(site address (\S+)\)")

    def listeners(self, count=1, timeout=None):
        """[(scheme, port, site address)] of every listener, in configuration order (waits
        until at least `count` are logged)."""
        deadline = time.monotonic() + (timeout or T(5))
        while True:
            found = [(m.group(1), int(m.group(3)), m.group(4))
                     for m in self.SERVING_RE.finditer(self.stderr())]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.01)

    def stderr(self):
        try:
            return Path(self.stderr_path).read_text(errors="replace")
        except OSError:
            return ""

    def stdout(self):
        try:
            return Path(self.stdout_path).read_text(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=_signal.SIGTERM, timeout=None):
        """Sends sig and waits; returns the exit code (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout=None):
        """Waits for the process to exit by itself (after a signal the test sent); returns
        the exit code, or None (and kills it) when it did not exit in time."""
        self.stopped = True
        try:
            self.proc.wait(timeout or T(10))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(T(10))
            self.returncode = None
            return None
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self):
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(T(10))

    def crash_report(self):
        return "hub exited with code %r; stderr:\n%s" % (self.proc.returncode,
                                                         self.stderr()[-6000:])

    def sanitizer_report(self):
        return sanitizer_lines(self.stderr())

    # -- convenience
    def conn(self, timeout=None, rcvbuf=None, port=None, protocol=None):
        """A client connection speaking hub.protocol (or `protocol`), over TLS when the hub
        has it (then port must be a TLS one)."""
        protocol = protocol or self.protocol
        port = port or self.port
        if protocol == "h2":
            import h2client
            return h2client.H2HTTPConn(port, timeout=timeout, rcvbuf=rcvbuf,
                                       tls=self.tls.context(("h2",)) if self.tls else None)
        return HTTPConn(port, timeout=timeout, rcvbuf=rcvbuf,
                        tls=self.tls.context(("http/1.1",)) if self.tls else None)

    def request(self, method, target, headers=(), body=b"", timeout=None, version="HTTP/1.1"):
        with self.conn(timeout) as c:
            return c.request(method, target, headers=headers, body=body, version=version)

    def metrics(self):
        r = self.request("GET", "/metrics")
        assert r.status == 200, r
        return parse_metrics(r.body.decode())

    def metric(self, name, labels=None):
        return metric_value(self.metrics(), name, labels)


def run_mercure(args, workdir, env=None, timeout=None):
    """Runs a short-lived `mercure` command; returns CompletedProcess (text)."""
    Path(workdir).mkdir(parents=True, exist_ok=True)
    env = dict({"XDG_DATA_HOME": str(Path(workdir) / "data")}, **(env or {}))
    p = subprocess.run([BINARY] + list(args), cwd=str(workdir), env=clean_env(env),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout or T(15))
    assert not sanitizer_lines(p.stderr), "sanitizer report from %r:\n%s" % (args, p.stderr)
    return p


# --------------------------------------------------------------------------- JWT

def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def _sign(alg, key, signing_input):
    if alg == "none":
        return b""
    if alg.startswith("HS"):
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        if isinstance(key, str):
            key = key.encode()
        return hmac.new(key, signing_input, digest).digest()
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    if alg == "EdDSA":
        return key.sign(signing_input)
    bits = int(alg[2:])
    h = {256: hashes.SHA256, 384: hashes.SHA384, 512: hashes.SHA512}[bits]()
    if alg.startswith("RS"):
        return key.sign(signing_input, padding.PKCS1v15(), h)
    if alg.startswith("PS"):
        return key.sign(signing_input, padding.PSS(mgf=padding.MGF1(h),
                                                   salt_length=h.digest_size), h)
    if alg.startswith("ES"):
        der = key.sign(signing_input, ec.ECDSA(h))
        r, s = decode_dss_signature(der)
        n = {256: 32, 384: 48, 512: 66}[bits]
        return r.to_bytes(n, "big") + s.to_bytes(n, "big")
    raise ValueError("unknown alg " + alg)


def make_jwt(payload, key=PUB_KEY, alg="HS256", header=None, raw_payload=None):
    """A compact JWS. header entries override {"alg": alg, "typ": "JWT"}."""
    hdr = {"alg": alg, "typ": "JWT"}
    hdr.update(header or {})
    body = raw_payload if raw_payload is not None else _json(payload)
    signing_input = (b64url(_json(hdr)) + "." + b64url(body)).encode()
    return signing_input.decode() + "." + b64url(_sign(alg, key, signing_input))


def mercure_claims(publish=None, subscribe=None, payload=None, exp=None, nbf=None,
                   namespaced=False, **extra):
    m = {}
    if publish is not None:
        m["publish"] = publish
    if subscribe is not None:
        m["subscribe"] = subscribe
    if payload is not None:
        m["payload"] = payload
    claims = {("https://mercure.rocks/" if namespaced else "mercure"): m}
    if exp is not None:
        claims["exp"] = exp
    if nbf is not None:
        claims["nbf"] = nbf
    claims.update(extra)
    return claims


def pub_token(publish=("*",), key=PUB_KEY, alg="HS256", **kw):
    return make_jwt(mercure_claims(publish=list(publish), **kw), key, alg)


def sub_token(subscribe=("*",), key=SUB_KEY, alg="HS256", **kw):
    return make_jwt(mercure_claims(subscribe=list(subscribe), **kw), key, alg)


# --------------------------------------------------------------------------- HTTP

class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # [(name, value)] in order received
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def has_header(self, name):
        return bool(self.header_all(name))

    def header_names(self):
        return [k.lower() for k, _ in self.headers]

    @property
    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def __repr__(self):
        return "<Response %s %s headers=%r body=%r>" % (self.status, self.reason, self.headers,
                                                        self.body[:300])


class ConnectionClosed(Exception):
    pass


def build_request(method, target, headers=(), body=b"", version="HTTP/1.1", host=True,
                  content_length=True):
    """Request bytes. headers: list of (name, value) or dict. Adds Host and Content-Length
    unless present (or disabled)."""
    if isinstance(headers, dict):
        headers = list(headers.items())
    headers = list(headers)
    names = {k.lower() for k, _ in headers}
    if isinstance(body, str):
        body = body.encode()
    if host and "host" not in names:
        headers.insert(0, ("Host", "127.0.0.1"))
    if content_length and body and "content-length" not in names and \
            "transfer-encoding" not in names:
        headers.append(("Content-Length", str(len(body))))
    out = "%s %s %s\r\n" % (method, target, version)
    for k, v in headers:
        out += "%s: %s\r\n" % (k, v)
    out += "\r\n"
    return out.encode("latin-1") + body


class HTTPConn:
    """A raw HTTP/1.x client connection with a receive buffer."""

    def __init__(self, port, timeout=None, rcvbuf=None, tls=None, server_hostname=None):
        """tls: an ssl.SSLContext to speak TLS with (see TLSFiles.context)."""
        self.timeout = timeout or T(10)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(self.timeout)
        self.sock.connect((HOST, port))
        if tls is not None:
            raw = self.sock
            try:
                self.sock = tls.wrap_socket(raw, server_hostname=server_hostname or HOST)
            except BaseException:
                raw.close()
                raise
        self.buf = b""
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Closes with a TCP RST."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _recv(self, timeout):
        """Reads once into buf. Returns False on EOF. Raises socket.timeout."""
        if self.eof:
            return False
        self.sock.settimeout(max(timeout, 0.001))
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _need(self, deadline, what):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out waiting for " + what)
        if not self._recv(remaining):
            raise ConnectionClosed("connection closed while waiting for %s (got %r)"
                                   % (what, self.buf[:200]))

    def read_until(self, marker, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while marker not in self.buf:
            self._need(deadline, repr(marker))
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            self._need(deadline, "%d bytes" % n)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_eof(self, timeout=None, limit=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("timed out waiting for EOF")
            self._recv(remaining)
            if limit and len(self.buf) > limit:
                self.buf = self.buf[-limit:]
        out, self.buf = self.buf, b""
        return out

    def read_head(self, timeout=None):
        raw = self.read_until(b"\r\n\r\n", timeout)
        lines = raw[:-4].decode("latin-1").split("\r\n")
        m = re.match(r"(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
        if not m:
            raise AssertionError("bad status line %r" % lines[0])
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k, v.strip(" \t")))
        return Response(m.group(1), int(m.group(2)), m.group(3) or "", headers, b"", raw)

    def read_chunked(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        body = b""
        while True:
            line = self.read_until(b"\r\n", max(deadline - time.monotonic(), 0.001))
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:  # trailers
                    t = self.read_until(b"\r\n", max(deadline - time.monotonic(), 0.001))
                    if t == b"\r\n":
                        return body
            body += self.read_exact(size, max(deadline - time.monotonic(), 0.001))
            assert self.read_exact(2, max(deadline - time.monotonic(), 0.001)) == b"\r\n"

    def read_response(self, method="GET", timeout=None):
        """Reads one full response (1xx interim responses are returned too)."""
        timeout = timeout or self.timeout
        r = self.read_head(timeout)
        if method == "HEAD" or r.status in (204, 304) or 100 <= r.status < 200:
            return r
        te = (r.header("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            r.body = self.read_chunked(timeout)
        elif r.header("Content-Length") is not None:
            r.body = self.read_exact(int(r.header("Content-Length")), timeout)
        else:
            r.body = self.read_to_eof(timeout)
        return r

    def request(self, method, target, headers=(), body=b"", version="HTTP/1.1", timeout=None):
        self.send(build_request(method, target, headers, body, version))
        r = self.read_response(method, timeout)
        while 100 <= r.status < 200:
            r = self.read_response(method, timeout)
        return r

    def wait_closed(self, timeout=None):
        """True if the peer closes (EOF/RST) within timeout; data received is kept."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                self._recv(remaining)
            except socket.timeout:
                return False
        return True

    def is_open_for(self, seconds):
        """True if nothing closes the connection for `seconds` (data may arrive)."""
        return not self.wait_closed(seconds)


# --------------------------------------------------------------------------- publishing

def form_body(pairs):
    return urllib.parse.urlencode(pairs).encode()


def publish_pairs(topics, data=None, private=False, id=None, type=None, retry=None, extra=()):
    if isinstance(topics, str):
        topics = [topics]
    pairs = [("topic", t) for t in topics]
    if data is not None:
        pairs.append(("data", data))
    if private:
        pairs.append(("private", "on"))
    if id is not None:
        pairs.append(("id", id))
    if type is not None:
        pairs.append(("type", type))
    if retry is not None:
        pairs.append(("retry", str(retry)))
    pairs.extend(extra)
    return pairs


def publish_request(topics=None, token="default", body=None, headers=(), **kw):
    if token == "default":
        token = pub_token()
    if body is None:
        body = form_body(publish_pairs(topics, **kw))
    hdrs = [("Content-Type", "application/x-www-form-urlencoded")]
    if token:
        hdrs.append(("Authorization", "Bearer " + token))
    hdrs.extend(headers)
    return build_request("POST", HUB_PATH, hdrs, body)


def publish(hub, topics=None, data=None, token="default", conn=None, headers=(), body=None,
            timeout=None, **kw):
    """POSTs an update; returns the Response. Uses conn (keep-alive) when given."""
    raw = publish_request(topics, token=token, body=body, headers=headers, data=data, **kw)
    if conn is not None:
        conn.send(raw)
        return conn.read_response("POST", timeout)
    with hub.conn(timeout) as c:
        c.send(raw)
        return c.read_response("POST", timeout)


def publish_ok(hub, topics, data=None, conn=None, **kw):
    r = publish(hub, topics, data, conn=conn, **kw)
    assert r.status == 200, r
    return r.text


# --------------------------------------------------------------------------- SSE

class Event:
    def __init__(self):
        self.id = None
        self.type = None
        self.retry = None
        self.data_lines = []
        self.fields = []
        self.raw = b""

    @property
    def data(self):
        return "\n".join(self.data_lines)

    def __repr__(self):
        return "<Event id=%r type=%r retry=%r data=%r>" % (self.id, self.type, self.retry,
                                                          self.data[:200])


class SSEStream:
    """An open event stream (the response head has been read)."""

    def __init__(self, conn, response):
        self.conn = conn
        self.response = response
        self.chunked = "chunked" in (response.header("Transfer-Encoding") or "").lower()
        self.raw = bytearray()  # the de-chunked stream, exact bytes
        self._chunk_left = 0   # bytes left in the current chunk (+2 for CRLF handled apart)
        self._need_crlf = False
        self.ended = False     # the final chunk 0\r\n\r\n was received
        self.eof = False
        self._parse_pos = 0
        self._pending = Event()
        self._pending_start = 0
        self.events = []       # parsed events, in order
        self.comments = 0      # comment lines seen (preamble + heartbeats)
        self._consumed = 0     # events returned by next_event()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.conn.close()

    # -- reading
    def _dechunk(self):
        c = self.conn
        if not self.chunked:
            self.raw += c.buf
            c.buf = b""
            return
        while c.buf and not self.ended:
            if self._need_crlf:
                if len(c.buf) < 2:
                    return
                if c.buf[:2] != b"\r\n":
                    raise AssertionError("bad chunk terminator %r" % c.buf[:10])
                c.buf = c.buf[2:]
                self._need_crlf = False
                continue
            if self._chunk_left:
                take = c.buf[:self._chunk_left]
                self.raw += take
                c.buf = c.buf[len(take):]
                self._chunk_left -= len(take)
                if not self._chunk_left:
                    self._need_crlf = True
                continue
            i = c.buf.find(b"\r\n")
            if i < 0:
                return
            size = int(c.buf[:i].split(b";")[0].strip(), 16)
            if size == 0:
                if c.buf[i + 2:i + 4] != b"\r\n":
                    if len(c.buf) < i + 4:
                        return
                    raise AssertionError("trailers after final chunk: %r" % c.buf[:50])
                self.ended = True
                self.final_rest = c.buf[i + 4:]
                c.buf = c.buf[i + 4:]
                return
            c.buf = c.buf[i + 2:]
            self._chunk_left = size

    def pump(self, timeout):
        """Reads whatever arrives within timeout. Returns False on EOF."""
        before = len(self.raw)
        self._dechunk()
        self._parse()
        if self.eof:
            return False
        if len(self.raw) > before:
            return True
        try:
            ok = self.conn._recv(timeout)
        except socket.timeout:
            return True
        except OSError:
            ok = False
        if not ok:
            self.eof = True
        self._dechunk()
        self._parse()
        return ok

    def _parse(self):
        while True:
            nl = self.raw.find(b"\n", self._parse_pos)
            if nl < 0:
                return
            line = self.raw[self._parse_pos:nl].decode("utf-8", errors="replace")
            start = self._parse_pos
            self._parse_pos = nl + 1
            if line == "":
                ev = self._pending
                if ev.fields:
                    ev.raw = bytes(self.raw[self._pending_start:self._parse_pos])
                    self.events.append(ev)
                self._pending = Event()
                self._pending_start = self._parse_pos
                continue
            if line.startswith(":"):
                self.comments += 1
                if not self._pending.fields:
                    self._pending_start = self._parse_pos
                continue
            if not self._pending.fields:
                self._pending_start = start
            name, sep, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            ev = self._pending
            ev.fields.append((name, value))
            if name == "data":
                ev.data_lines.append(value)
            elif name == "id":
                ev.id = value
            elif name == "event":
                ev.type = value
            elif name == "retry":
                ev.retry = value

    def wait_for(self, predicate, timeout=None, what="condition"):
        deadline = time.monotonic() + (timeout or T(5))
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("timed out waiting for %s; stream so far: %r"
                                     % (what, self.raw[-2000:]))
            if not self.pump(min(remaining, 0.5)) and not predicate():
                raise AssertionError("stream closed while waiting for %s; stream: %r"
                                     % (what, self.raw[-2000:]))
        return True

    def wait_raw(self, nbytes_or_marker, timeout=None):
        if isinstance(nbytes_or_marker, int):
            return self.wait_for(lambda: len(self.raw) >= nbytes_or_marker, timeout,
                                 "%d bytes" % nbytes_or_marker)
        return self.wait_for(lambda: nbytes_or_marker in self.raw, timeout,
                             repr(nbytes_or_marker))

    def next_event(self, timeout=None):
        self.wait_for(lambda: len(self.events) > self._consumed, timeout, "an event")
        ev = self.events[self._consumed]
        self._consumed += 1
        return ev

    def events_until(self, event_id, timeout=None):
        """Returns the events received up to (and including) the one with id event_id."""
        out = []
        while True:
            ev = self.next_event(timeout)
            out.append(ev)
            if ev.id == event_id:
                return out

    def collect(self, seconds):
        """Reads for `seconds` (stops early on EOF); returns the new raw bytes."""
        before = len(self.raw)
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if not self.pump(min(remaining, 0.2)):
                break
        return bytes(self.raw[before:])

    def wait_end(self, timeout=None):
        """Waits for EOF; returns the time (monotonic) it happened."""
        deadline = time.monotonic() + (timeout or T(10))
        while not self.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("stream still open; got %r" % self.raw[-500:])
            self.pump(min(remaining, 0.2))
        return time.monotonic()



def wait_ends(streams, timeout=None):
    """Waits until every stream has ended (EOF), watching them all at once; returns the time
    (monotonic) each one was seen ending, in order. Waiting for them one after the other
    would date each end at the latest of the ends before it."""
    deadline = time.monotonic() + (timeout or T(10))
    ends = [None] * len(streams)
    while True:
        now = time.monotonic()
        left = [i for i, s in enumerate(streams) if ends[i] is None]
        for i in left:
            if streams[i].eof:
                ends[i] = now
        left = [i for i in left if ends[i] is None]
        if not left:
            return ends
        remaining = deadline - now
        if remaining <= 0:
            raise AssertionError("%d streams still open; the first got %r"
                                 % (len(left), streams[left[0]].raw[-500:]))
        socks = {streams[i].conn.sock: i for i in left}
        # A TLS socket may hold decrypted bytes that select() does not see.
        ready = [i for s, i in socks.items() if getattr(s, "pending", lambda: 0)()]
        if not ready:
            readable, _, _ = select.select(list(socks), [], [], min(remaining, 0.5))
            ready = [socks[s] for s in readable]
        for i in ready:
            streams[i].pump(min(remaining, 0.5))  # bytes are waiting: returns at once


def subscribe_target(topics=(), token_query=None, extra_query=(), path=HUB_PATH):
    if isinstance(topics, str):
        topics = [topics]
    pairs = [("topic", t) for t in topics]
    if token_query:
        pairs.append(("authorization", token_query))
    pairs.extend(extra_query)
    q = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)
    return path + ("?" + q if q else "")


def subscribe_request(topics=(), token=None, headers=(), extra_query=(), token_query=None,
                      cookie=None, version="HTTP/1.1", method="GET"):
    hdrs = []
    if token:
        hdrs.append(("Authorization", "Bearer " + token))
    if cookie:
        hdrs.append(("Cookie", cookie))
    hdrs.extend(headers)
    return build_request(method, subscribe_target(topics, token_query, extra_query), hdrs,
                         version=version)


def open_stream(hub, topics=(), token=None, headers=(), extra_query=(), token_query=None,
                cookie=None, version="HTTP/1.1", rcvbuf=None, timeout=None, raw_request=None,
                wait_preamble=True):
    """Opens a subscription; asserts 200 and waits for the `:\\n` preamble."""
    conn = hub.conn(timeout=timeout, rcvbuf=rcvbuf)
    try:
        conn.send(raw_request or subscribe_request(topics, token, headers, extra_query,
                                                   token_query, cookie, version))
        resp = conn.read_head(timeout or T(10))
        if resp.status != 200:
            try:
                resp.body = conn.read_exact(int(resp.header("Content-Length", "0")), T(2))
            except Exception:
                pass
            raise AssertionError("subscribe failed: %r" % resp)
        s = SSEStream(conn, resp)
        if wait_preamble:
            s.wait_for(lambda: len(s.raw) >= 2, timeout, "the stream preamble")
            assert s.raw.startswith(b":\n"), s.raw[:100]
        return s
    except BaseException:
        conn.close()
        raise


# --------------------------------------------------------------------------- metrics

_METRIC_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


def parse_metrics(text):
    """{(name, frozenset(labels.items())): float}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC_RE.match(line)
        if not m:
            continue
        labels = {}
        if m.group(2):
            for lm in re.finditer(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2)):
                labels[lm.group(1)] = lm.group(2)
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(3))
    return out


def metric_value(metrics, name, labels=None):
    key = (name, frozenset((labels or {}).items()))
    if key not in metrics:
        raise KeyError("metric %s%r not exposed; have %r"
                       % (name, labels, sorted({k[0] for k in metrics})))
    return metrics[key]


def wait_until(predicate, timeout=None, interval=0.02, what="condition"):
    deadline = time.monotonic() + (timeout or T(5))
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


UUID_V7_RE = re.compile(r"^urn:uuid:([0-9a-f]{8})-([0-9a-f]{4})-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                        r"[0-9a-f]{12}$")


def sock_wait_readable(sock, timeout):
    r, _, _ = select.select([sock], [], [], timeout)
    return bool(r)


def tempdir(prefix="qs-"):
    return tempfile.mkdtemp(prefix=prefix)


# --------------------------------------------------------------------------- TLS

class TLSFiles:
    """A test CA and a certificate it signed, written as PEM files into `directory`:
    ca.pem (the root), cert.pem (the leaf), key.pem (the leaf's key). The leaf is for
    `names` (IP addresses or DNS names) and valid from `not_before` to `not_after`
    (datetimes; default: an hour ago to a day from now)."""

    def __init__(self, directory, names=("127.0.0.1", "localhost"), not_before=None,
                 not_after=None, prefix=""):
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc)
        not_before = not_before or now - datetime.timedelta(hours=1)
        not_after = not_after or now + datetime.timedelta(days=1)

        def name(cn):
            return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Quicksilver tests"),
                              x509.NameAttribute(NameOID.COMMON_NAME, cn)])

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (x509.CertificateBuilder().subject_name(name("Quicksilver test CA"))
              .issuer_name(name("Quicksilver test CA")).public_key(ca_key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(days=1))
              .not_valid_after(now + datetime.timedelta(days=30))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .sign(ca_key, hashes.SHA256()))
        self.key_obj = ec.generate_private_key(ec.SECP256R1())
        alt = []
        for n in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                alt.append(x509.DNSName(n))
        leaf = (x509.CertificateBuilder().subject_name(name(names[0]))
                .issuer_name(ca.subject).public_key(self.key_obj.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(not_before).not_valid_after(not_after)
                .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        self.ca = str(directory / (prefix + "ca.pem"))
        self.cert = str(directory / (prefix + "cert.pem"))
        self.key = str(directory / (prefix + "key.pem"))
        self.leaf = leaf
        Path(self.ca).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        Path(self.cert).write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        Path(self.key).write_bytes(self.key_obj.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        os.chmod(self.key, 0o600)

    def serial(self):
        return self.leaf.serial_number

    def context(self, alpn=("http/1.1",), verify=True, minimum=None, maximum=None):
        """A client context trusting this CA (or nothing checked with verify=False),
        offering the ALPN protocols given (None: no ALPN)."""
        return client_context(self.ca if verify else None, alpn, minimum, maximum)


def client_context(cafile=None, alpn=("http/1.1",), minimum=None, maximum=None):
    """A TLS client context: verification against cafile (None: none), ALPN offers,
    protocol version bounds (ssl.TLSVersion)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    return ctx


def peer_certificate_serial(sock):
    """The serial number of the certificate the server presented on an SSL socket."""
    from cryptography import x509
    return x509.load_der_x509_certificate(sock.getpeercert(binary_form=True)).serial_number


def process_rss_kib(pid):
    """Resident memory of a process (KiB), from /proc."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def process_cpu_seconds(pid):
    """User + system CPU time a process has used (seconds), from /proc."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
