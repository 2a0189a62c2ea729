"""Helpers of the deployment tests: the podman command, and a small Mercure client (tokens,
publish, event streams, health checks) over the published loopback ports. Standard library
only."""

import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import time
import urllib.parse

HOST = "127.0.0.1"
PUB_KEY = "deploy-test-publisher-key-0123456789abcdef"
SUB_KEY = "deploy-test-subscriber-key-fedcba9876543210"

IMAGE = os.environ.get("QS_DEPLOY_IMAGE", "localhost/quicksilver:deploy-test")
HELPER_IMAGE = os.environ.get("QS_DEPLOY_HELPER_IMAGE", "localhost/quicksilver-deploy-helper:test")
NETWORK = "qs-deploy-net"


# ---------------------------------------------------------------- podman

def podman(*args, check=True, timeout=300, capture=True):
    p = subprocess.run(["podman", *args], capture_output=capture, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("podman %s failed (%d):\n%s\n%s"
                             % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


def remove(*names):
    """Removes containers by name, whatever their state, with their anonymous volumes;
    never raises."""
    for name in names:
        subprocess.run(["podman", "rm", "-f", "-v", "-t", "0", name], capture_output=True)


def exit_code(name):
    return int(podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip())


def logs(name):
    p = podman("logs", name, check=False)
    return p.stdout + p.stderr


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# Every container of the image runs this way: read-only root, no capabilities, no privilege
# gain, as an unprivileged user (the image's), allowed to bind port 80 as a runtime like
# Docker's allows by default. The health check runs on demand (`podman healthcheck run`):
# podman's timers need systemd (without it, podman logs an error at start and goes on).
HARDENED = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--sysctl", "net.ipv4.ip_unprivileged_port_start=0"]


def run_hub(name, port, env=None, volume=None, network=None, extra=(), image=None):
    env = dict({"MERCURE_PUBLISHER_JWT_KEY": PUB_KEY, "MERCURE_SUBSCRIBER_JWT_KEY": SUB_KEY},
               **(env or {}))
    args = ["run", "-d", "--pull=never", "--name", name, *HARDENED,
            "-p", "%s:%d:80" % (HOST, port)]
    if volume:
        args += ["-v", "%s:/data" % volume]
    if network:
        args += ["--network", network]
    for k, v in env.items():
        args += ["-e", "%s=%s" % (k, v)]
    args += [*extra, image or IMAGE]
    podman(*args)


# ---------------------------------------------------------------- tokens

def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims, key):
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    sig = hmac.new(key.encode(), ("%s.%s" % (head, body)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (head, body, _b64(sig))


def pub_token(key=PUB_KEY):
    return jwt({"mercure": {"publish": ["*"]}}, key)


def sub_token(key=SUB_KEY):
    return jwt({"mercure": {"subscribe": ["*"]}}, key)


# ---------------------------------------------------------------- HTTP

def request(port, method, path, headers=None, body=b"", timeout=5.0):
    """One HTTP/1.1 request on its own connection: (status, body). Raises OSError when
    nothing answers."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        head = ["%s %s HTTP/1.1" % (method, path), "Host: localhost", "Connection: close"]
        for k, v in (headers or {}).items():
            head.append("%s: %s" % (k, v))
        if body or method == "POST":
            head.append("Content-Length: %d" % len(body))
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data:
        raise ConnectionResetError("no answer")
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        rest = _dechunk(rest)
    return status, rest


def _dechunk(data):
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        n = int(size_line.split(b";")[0], 16)
        if n == 0:
            break
        out += data[:n]
        data = data[n + 2:]
    return out


def health(port, which="ready"):
    """The status of /mercure/health/<which>, or None when nothing answers."""
    try:
        return request(port, "GET", "/mercure/health/" + which, timeout=2)[0]
    except OSError:
        return None


def wait_ready(port, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if health(port) == 200:
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError("the hub on port %d was not ready within %.0f s" % (port, timeout))


def publish(port, topic, data, token=None, timeout=5.0, id=None):
    """Publishes; returns the update's id. Raises OSError when the hub cannot be reached."""
    fields = [("topic", topic), ("data", data)]
    if id:
        fields.append(("id", id))
    body = urllib.parse.urlencode(fields).encode()
    status, resp = request(port, "POST", "/.well-known/mercure", {
        "Authorization": "Bearer " + (token or pub_token()),
        "Content-Type": "application/x-www-form-urlencoded"}, body, timeout)
    if status != 200:
        raise AssertionError("publish answered %d: %r" % (status, resp))
    return resp.decode()


class Stream:
    """A subscriber's event stream (HTTP/1.1, chunked) read event by event."""

    def __init__(self, port, topic, last_event_id=None, token=None, timeout=10.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b""
        self.ended = False
        self.retry = None
        headers = ["GET /.well-known/mercure?topic=%s HTTP/1.1" % urllib.parse.quote(topic, ""),
                   "Host: localhost", "Authorization: Bearer " + (token or sub_token())]
        if last_event_id:
            headers.append("Last-Event-ID: " + last_event_id)
        self.sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        head = self._until(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])
        if self.status != 200:
            raise AssertionError("subscribe answered %d: %r" % (self.status, head))
        self.headers = head.decode(errors="replace")
        self.body = b""  # de-chunked bytes not yet parsed into events

    def _recv(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def _until(self, marker):
        while marker not in self.buf:
            self._recv()
        i = self.buf.index(marker)
        out, self.buf = self.buf[:i], self.buf[i + len(marker):]
        return out

    def _fill(self):
        """Moves one chunk from the wire into self.body; sets ended at the final chunk."""
        size_line = self._until(b"\r\n")
        n = int(size_line.split(b";")[0], 16)
        if n == 0:
            self.ended = True
            return
        while len(self.buf) < n + 2:
            self._recv()
        self.body += self.buf[:n]
        self.buf = self.buf[n + 2:]

    def next_event(self, timeout=10.0):
        """The next event as a dict (id, data, type, retry), or None when the stream ended
        (final chunk or connection closed). Comments (heartbeats) are skipped."""
        self.sock.settimeout(timeout)
        while True:
            while b"\n\n" not in self.body:
                if self.ended:
                    return None
                try:
                    self._fill()
                except (EOFError, ConnectionResetError):
                    self.ended = True
                    return None
            raw, self.body = self.body.split(b"\n\n", 1)
            ev = {}
            for line in raw.decode().split("\n"):
                if line.startswith(":"):
                    continue
                k, _, v = line.partition(":")
                v = v[1:] if v.startswith(" ") else v
                if k == "data":
                    ev["data"] = ev["data"] + "\n" + v if "data" in ev else v
                elif k in ("id", "event", "retry"):
                    ev[k] = v
            if "retry" in ev:
                self.retry = int(ev["retry"])
            if "data" in ev or "id" in ev:
                return ev

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
