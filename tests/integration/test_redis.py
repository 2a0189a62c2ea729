"""Cluster mode over Redis (transport redis): several hub processes sharing one real
`redis-server` behave as one hub. Delivery across nodes in one order with the same ids,
Last-Event-ID (generated and custom ids, `earliest`) on any node, private updates, Redis
killed and restarted mid-stream, presence across nodes and a SIGKILLed node, TLS, AUTH,
retention, and configuration errors.

Each test starts its own redis-server (a free port, AOF with appendfsync always, a
temporary directory) and kills it in the fixture's finalizer, after the hubs are stopped."""

import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid

import pytest

import cluster_scenarios as scenario
import qs
from cluster_scenarios import free_port, healthz, make_certs, publish_id, refused
from qs import T

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")


# --------------------------------------------------------------------------- redis-server

def _encode(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class RespConn:
    """A minimal RESP client, enough for checks and chores in the tests."""

    def __init__(self, port, tls_ctx=None, timeout=5.0):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = tls_ctx.wrap_socket(sock, server_hostname="127.0.0.1") if tls_ctx else sock
        self.buf = b""

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ValueError("bad RESP line %r" % line)

    def call(self, *args):
        self.sock.sendall(_encode(args))
        return self._reply()


class Redis:
    """A redis-server process on a fixed port and data directory (so it can be restarted
    with its AOF)."""

    def __init__(self, workdir, port=None, args=(), tls=None):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.args = list(args)
        self.tls = tls  # (cert, key, ca) for a TLS-only server
        self.proc = None
        self.client_args = {}

    def start(self):
        argv = [REDIS_SERVER, "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
                "--appendfsync", "always", "--dir", str(self.dir), "--logfile",
                str(self.dir / "redis.log")]
        if self.tls:
            cert, key, ca = self.tls
            argv += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", cert,
                     "--tls-key-file", key, "--tls-ca-cert-file", ca, "--tls-auth-clients", "no"]
        else:
            argv += ["--port", str(self.port)]
        argv += self.args
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + T(10)
        while True:
            try:
                c = self.client()
                try:
                    r = c.call("PING")
                finally:
                    c.close()
                if r == "PONG" or isinstance(r, RuntimeError):  # NOAUTH: up, wants AUTH
                    return self
            except (OSError, ConnectionError, ssl.SSLError):
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited: " +
                                   (self.dir / "redis.log").read_text(errors="replace")[-2000:])
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer PING")
            time.sleep(0.02)

    def client(self):
        ctx = None
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.tls[2])
        return RespConn(self.port, ctx)

    def call(self, *args, auth=None):
        c = self.client()
        try:
            if auth:
                assert c.call("AUTH", *auth) == "OK"
            return c.call(*args)
        finally:
            c.close()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(T(10))


@pytest.fixture
def redis_factory(tmp_path):
    servers = []

    def make(**kw):
        r = Redis(tmp_path / ("redis%d" % len(servers)), **kw)
        servers.append(r)
        return r.start()

    yield make
    for r in servers:
        r.kill()


@pytest.fixture
def redis(redis_factory):
    return redis_factory()


@pytest.fixture
def cluster(redis, start_hub):
    """cluster(n, extra=..., query=...) -> [hubs] sharing one stream of `redis`. Requested
    after `redis`, so the hubs are stopped before redis-server is killed."""
    stream = "qs-test-" + uuid.uuid4().hex[:8]

    def start(n=3, extra=(), query="", stream_name=None):
        url = "redis://127.0.0.1:%d/%s%s" % (redis.port, stream_name or stream,
                                             ("?" + query) if query else "")
        return [start_hub(env={"MERCURE_TRANSPORT_URL": url}, extra=list(extra))
                for _ in range(n)]

    start.redis = redis
    start.stream = stream
    return start


# --------------------------------------------------------------------------- delivery

def test_three_nodes_deliver_every_update_in_one_order_with_the_same_ids(cluster):
    scenario.one_order_with_the_same_ids(cluster, "redis")


def test_last_event_id_on_another_node_replays_exactly_what_was_missed(cluster):
    scenario.last_event_id_on_another_node(cluster)


def test_a_duplicated_custom_id_resolves_to_its_earliest_occurrence(cluster):
    scenario.duplicated_custom_id(cluster)


def test_private_updates_stay_private_across_nodes(cluster):
    scenario.private_updates_across_nodes(cluster)


# --------------------------------------------------------------------------- outages

def test_redis_killed_and_restarted_mid_stream(cluster):
    hubs = cluster(3)
    redis = cluster.redis
    subs = [qs.open_stream(h, ["urn:k"]) for h in hubs]
    acked = scenario.publishes_through_an_outage(
        hubs, subs, redis.kill, redis.start,  # same port, same AOF
        "redis", "redis unavailable", publish_timeout=T(10), pause=0.02, before=T(10),
        unhealthy=T(5), healthy=T(10), after=T(10), join=T(15))
    scenario.delivered_once_in_one_order(hubs, subs, acked, T(20))


def test_a_hub_started_without_redis_waits_for_it(redis_factory, start_hub, tmp_path):
    port = free_port()
    hub = start_hub(env={"MERCURE_TRANSPORT_URL": "redis://127.0.0.1:%d/late" % port})
    r = healthz(hub)
    assert r.status == 503 and "connection refused" in r.text, r
    r = qs.publish(hub, ["urn:late"], "x")
    assert r.status == 503 and "redis unavailable" in r.text
    with qs.open_stream(hub, ["urn:late"]) as s:
        redis_factory(port=port)
        qs.wait_until(lambda: healthz(hub).status == 200, T(10), what="/healthz 200")
        uid = publish_id(hub, "urn:late", "finally")
        assert s.next_event(T(10)).id == uid
    assert "not available at start" in hub.stderr()


def test_nosript_and_a_lost_counter_are_recovered(cluster):
    n1, n2 = cluster(2)
    redis = cluster.redis
    with qs.open_stream(n2, ["urn:r"]) as s:
        a = publish_id(n1, "urn:r", "a")
        assert redis.call("SCRIPT", "FLUSH") == "OK"
        b = publish_id(n1, "urn:r", "b")  # EVALSHA fails with NOSCRIPT: EVAL takes over
        assert redis.call("DEL", cluster.stream + ":seq") == 1
        c = publish_id(n2, "urn:r", "c")  # the counter restarts above the stream's end
        d = publish_id(n1, "urn:r", "d")
        assert [e.id for e in s.events_until(d, T(10))] == [a, b, c, d]
    ids = [e[0] for e in redis.call("XRANGE", cluster.stream, "-", "+")]
    assert ids == [b"1-0", b"2-0", b"3-0", b"4-0"]


def test_retention_follows_max_len_approx_and_trims_the_index(cluster):
    (hub,) = cluster(1, query="max_len_approx=50")
    redis = cluster.redis
    ids = []
    with hub.conn() as c:
        for i in range(600):
            ids.append(qs.publish_ok(hub, ["urn:ret"], "u%d" % i, conn=c))
    length = redis.call("XLEN", cluster.stream)
    assert 50 <= length < 200, length
    assert redis.call("ZCARD", cluster.stream + ":ids") < length + 300
    scenario.history_after_retention(hub, ids, length)


def test_long_history_is_replayed_in_batches_across_nodes(cluster):
    scenario.long_history_in_batches(cluster, T(20))


# --------------------------------------------------------------------------- presence

def test_presence_is_shared_and_a_killed_node_expires(cluster):
    scenario.presence_across_nodes(cluster, "presence_ttl")


def test_a_node_started_after_every_node_died_publishes_their_departures(cluster):
    redis = cluster.redis

    def written():  # the entry is in Redis
        keys = redis.call("KEYS", cluster.stream + ":presence:*") or []
        return any(b"urn:orphan" in v for k in keys for v in redis.call("HVALS", k))

    def only_the_new_node_left():
        # The dead node's hash is gone; only the new node's (its watcher) is left.
        assert len(redis.call("KEYS", cluster.stream + ":presence:*")) == 1

    scenario.departures_of_a_dead_cluster(cluster, "presence_ttl", stored=written,
                                          outlive_lease=True, check_left=only_the_new_node_left)


def test_a_cleanly_stopped_node_removes_its_entries(cluster):
    def only_node_2_left():
        keys = cluster.redis.call("KEYS", cluster.stream + ":presence:*")
        assert len(keys) == 1  # node 2's, for its watcher

    scenario.a_cleanly_stopped_node_leaves(cluster, "presence_ttl", after_stop=only_node_2_left)


# --------------------------------------------------------------------------- TLS and AUTH

def test_tls(redis_factory, start_hub, tmp_path):
    certs = make_certs(tmp_path / "certs")
    redis = redis_factory(tls=(certs["cert"], certs["key"], certs["ca"]))
    base = "127.0.0.1:%d/tls-stream" % redis.port
    n1 = start_hub(env={"MERCURE_TRANSPORT_URL": "rediss://%s?tls_ca=%s" % (base, certs["ca"])})
    n2 = start_hub(env={"MERCURE_TRANSPORT_URL": "redis://localhost:%d/tls-stream?tls=1&"
                        "tls_ca=%s" % (redis.port, certs["ca"])})
    n3 = start_hub(extra=["transport redis {", "address 127.0.0.1:%d" % redis.port,
                          "stream tls-stream", "tls", "tls_insecure", "}"])
    for h in (n1, n2, n3):
        assert healthz(h).status == 200, h.stderr()
    with qs.open_stream(n2, ["urn:tls"]) as s2, qs.open_stream(n3, ["urn:tls"]) as s3:
        uid = publish_id(n1, "urn:tls", "over TLS")
        assert s2.next_event(T(5)).id == uid
        assert s3.next_event(T(5)).id == uid
    with qs.open_stream(n3, ["urn:tls"], extra_query=[("lastEventID", "earliest")]) as s:
        end = publish_id(n2, "urn:tls", "end")
        assert [e.id for e in s.events_until(end, T(5))] == [uid, end]
    # The server's certificate is verified: another CA, or none (system CAs), is refused.
    for query in ("tls_ca=%s" % certs["other"], "tls=1"):
        bad = start_hub(env={"MERCURE_TRANSPORT_URL": "rediss://%s?%s" % (base, query)})
        r = healthz(bad)
        assert r.status == 503 and "redis TLS handshake failed" in r.text, r
        r = qs.publish(bad, ["urn:tls"], "x")
        assert r.status == 503 and "TLS" in r.text
    # Plain text to a TLS port does not get through either.
    plain = start_hub(env={"MERCURE_TRANSPORT_URL": "redis://%s" % base})
    assert healthz(plain).status == 503


def test_auth_with_user_and_password(redis_factory, start_hub):
    redis = redis_factory(args=["--user", "alice", "on", ">s3cret", "~*", "&*", "+@all",
                                "--user", "default", "off"])
    url = "redis://alice:s3cret@127.0.0.1:%d/auth-stream" % redis.port
    good = start_hub(env={"MERCURE_TRANSPORT_URL": url})
    block = start_hub(extra=["transport redis {", "address 127.0.0.1:%d" % redis.port,
                             "stream auth-stream", "username alice", "password s3cret", "}"])
    assert healthz(good).status == 200 and healthz(block).status == 200
    with qs.open_stream(block, ["urn:auth"]) as s:
        uid = publish_id(good, "urn:auth", "authenticated")
        assert s.next_event(T(5)).id == uid
    # Wrong password: the hub starts, says why it is unhealthy, refuses publishes.
    wrong = start_hub(env={"MERCURE_TRANSPORT_URL": url.replace("s3cret", "wrong")})
    r = healthz(wrong)
    assert r.status == 503 and "redis AUTH failed: WRONGPASS" in r.text, r
    r = qs.publish(wrong, ["urn:auth"], "x")
    assert r.status == 503 and "AUTH failed" in r.text
    assert "AUTH failed" in wrong.stderr()
    # No credentials at all.
    none = start_hub(env={"MERCURE_TRANSPORT_URL": "redis://127.0.0.1:%d/auth-stream"
                          % redis.port})
    r = healthz(none)
    assert r.status == 503 and "NOAUTH" in r.text, r


# --------------------------------------------------------------------------- configuration

@pytest.mark.parametrize("env,needles", [
    ({"MERCURE_TRANSPORT_URL": "redis://127.0.0.1:1/s?max_len_approx=many"},
     ["MERCURE_TRANSPORT_URL:1", "transport redis", "max_len_approx", "\"many\""]),
    ({"MERCURE_TRANSPORT_URL": "redis://127.0.0.1:1/s?bogus=1"},
     ["unknown option \"bogus\""]),
    ({"MERCURE_TRANSPORT_URL": "rediss://127.0.0.1:1/s?tls_ca=/nonexistent/ca.pem"},
     ["tls_ca", "/nonexistent/ca.pem"]),
    ({"MERCURE_EXTRA_DIRECTIVES": "transport redis {\naddress nowhere:99999\n}"},
     ["MERCURE_EXTRA_DIRECTIVES:2", "address", "\"nowhere:99999\""]),
])
def test_configuration_errors_stop_the_hub(tmp_path, env, needles):
    err = refused(tmp_path, env=env, timeout=T(15))
    for n in needles:
        assert n in err, (n, err)


def test_clean_exit_while_redis_is_down(cluster):
    scenario.clean_exit_while_down(cluster(2, extra=["subscriptions"]), cluster.redis.kill)


def test_a_replay_redis_cannot_serve_is_answered_503(cluster):
    (hub,) = cluster(1)
    scenario.replay_that_cannot_be_served(hub, cluster.redis.kill)


def test_a_hung_redis_times_out_and_recovers(cluster):
    (hub,) = cluster(1, query="timeout=500ms")
    proc = cluster.redis.proc
    scenario.hung_server(hub, lambda: proc.send_signal(signal.SIGSTOP),
                         lambda: proc.send_signal(signal.SIGCONT), "redis", T(3))


def test_presence_of_1_0_subscribers_keeps_their_selectors(cluster):
    scenario.presence_of_1_0_subscribers(cluster, "presence_ttl")
