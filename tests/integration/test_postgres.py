"""Cluster mode over PostgreSQL (transport postgres): several hub processes sharing one real
PostgreSQL database behave as one hub, and the updates are rows users can query with SQL.
The scenarios every cluster transport runs (cluster_scenarios.py: one order with the same
ids on every node, Last-Event-ID with generated and custom ids and `earliest` on any node,
private updates, retention, long replays, presence across nodes and a SIGKILLed node), TLS
and authentication, configuration errors, plus: concurrent publishes on three nodes for
several seconds, every node delivering every update exactly once in the same order (commit
order is not sequence order); PostgreSQL killed with -9 during publishes (fsync on) and
restarted; a hung server; the tables created by several hubs starting at once; a hub started
before its database.

One PostgreSQL server (initdb in a temporary folder, a free port, fsync off) serves the whole
module, and every test gets a database of its own. Tests that stop, kill or reconfigure a
server start their own. Every server is stopped by its pid at the end."""

import base64
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid

import pytest

import cluster_scenarios as scenario
import qs
from cluster_scenarios import BASE_ENV, free_port, healthz, make_certs, publish_id, refused
from qs import T


def _pg_bindir():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)
    for d in reversed(dirs):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    initdb = shutil.which("initdb")
    return os.path.dirname(os.path.realpath(initdb)) if initdb else None


PG_BIN = _pg_bindir()
pytestmark = pytest.mark.skipif(PG_BIN is None, reason="PostgreSQL (initdb) is not installed")

# initdb and postgres refuse to run as root: as root, they run as the postgres user.
AS_PG = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(d))
    return out


# --------------------------------------------------------------------------- the server

class Postgres:
    """A PostgreSQL server in its own temporary folder, on a fixed port and data directory
    (so that it can be killed and started again on the same data)."""

    def __init__(self, fsync=False, settings=(), hba=None, ssl=None):
        self.dir = tempfile.mkdtemp(prefix="qs-pg-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.fsync = fsync
        self.settings = list(settings)
        self.hba = hba  # lines of pg_hba.conf (the unix socket always trusts postgres)
        self.ssl = ssl  # (cert, key) files
        self.pid = None
        if AS_PG:
            subprocess.run(["chown", "postgres:", self.dir], check=True)
        self._run(AS_PG + [os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", "postgres",
                           "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"])
        if hba is not None:
            with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
                f.write("local all postgres trust\n" + "\n".join(hba) + "\n")
        if ssl:
            for src, name in zip(ssl, ("server.crt", "server.key")):
                dst = os.path.join(self.data, name)
                shutil.copy(src, dst)
                os.chmod(dst, 0o600)
                if AS_PG:
                    subprocess.run(["chown", "postgres:", dst], check=True)
            self.settings += ["ssl=on", "ssl_cert_file=server.crt", "ssl_key_file=server.key"]

    @staticmethod
    def _run(argv, timeout=60):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError("%s failed: %s %s" % (argv[len(AS_PG)], r.stdout, r.stderr))
        return r

    def start(self):
        opts = ["-p", str(self.port), "-k", self.dir, "-c", "listen_addresses=127.0.0.1",
                "-c", "fsync=%s" % ("on" if self.fsync else "off"),
                "-c", "synchronous_commit=on", "-c", "max_connections=200"]
        for s in self.settings:
            opts += ["-c", s]
        self._run(AS_PG + [os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-l",
                           os.path.join(self.dir, "server.log"), "-w", "-t", "60", "-o",
                           " ".join(opts), "start"], timeout=90)
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            self.pid = int(f.readline())
        return self

    def stop(self):
        """A clean, fast shutdown: sessions are told and closed."""
        self._run(AS_PG + [os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", "fast", "-w",
                           "stop"])
        self.pid = None

    def pids(self):
        return [self.pid] + _children(self.pid) if self.pid and _alive(self.pid) else []

    def kill(self):
        """SIGKILL to the postmaster and every process of the server, as a crash would."""
        pids = self.pids()
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        # The dead postmaster may linger as a zombie nobody reaps, which PostgreSQL's check
        # of its lock files takes for a live server: the lock files go with it.
        for lock in (os.path.join(self.data, "postmaster.pid"),
                     os.path.join(self.dir, ".s.PGSQL.%d.lock" % self.port)):
            try:
                os.unlink(lock)
            except FileNotFoundError:
                pass
        self.pid = None

    def signal_all(self, sig):
        for p in self.pids():
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass

    def destroy(self):
        if self.pid and _alive(self.pid):
            self.signal_all(signal.SIGCONT)
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        try:
            with open(os.path.join(self.dir, "server.log"), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def psql(self, sql, db="postgres"):
        """Runs SQL as the superuser over the unix socket; returns psql's unaligned output."""
        r = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-v",
                            "ON_ERROR_STOP=1", "-h", self.dir, "-p", str(self.port), "-U",
                            "postgres", "-d", db, "-c", sql],
                           capture_output=True, text=True, timeout=T(30),
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError("psql: %s" % r.stderr)
        return r.stdout.strip()

    def rows(self, sql, db="postgres"):
        """The rows of a query, as JSON objects."""
        return json.loads(self.psql("SELECT coalesce(json_agg(q), '[]') FROM (%s) q" % sql, db))

    def new_database(self):
        name = "t_" + uuid.uuid4().hex[:12]
        self.psql("CREATE DATABASE %s" % name)
        return name

    def url(self, db, user="postgres", password=None, query=""):
        cred = user + (":" + urllib.parse.quote(password, safe="") if password else "")
        return "postgres://%s@127.0.0.1:%d/%s%s" % (cred, self.port, db,
                                                    ("?" + query) if query else "")


@pytest.fixture(scope="module")
def pg_server():
    server = Postgres().start()
    yield server
    server.destroy()


class Database:
    def __init__(self, server, name):
        self.server = server
        self.name = name

    def url(self, **kw):
        return self.server.url(self.name, **kw)

    def psql(self, sql):
        return self.server.psql(sql, self.name)

    def rows(self, sql):
        return self.server.rows(sql, self.name)

    def ids(self, prefix="mercure_"):
        return [r["id"] for r in self.rows("SELECT id FROM %supdates ORDER BY seq" % prefix)]


@pytest.fixture
def pg(pg_server):
    """A fresh database on the module's server."""
    return Database(pg_server, pg_server.new_database())


@pytest.fixture
def pg_factory():
    """pg_factory(**kw) -> a server of the test's own (not started), destroyed at the end
    (after the hubs: request it before start_hub)."""
    servers = []

    def make(**kw):
        s = Postgres(**kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.destroy()


@pytest.fixture
def cluster(pg, start_hub):
    """cluster(n, extra=..., query=...) -> [hubs] sharing the test's database. Requested
    after `pg`, so the hubs are stopped before the database goes."""

    def start(n=3, extra=(), query="", db=None):
        url = (db or pg).url(query=query)
        return [start_hub(env={"MERCURE_TRANSPORT_URL": url}, extra=list(extra))
                for _ in range(n)]

    start.db = pg
    return start


# --------------------------------------------------------------------------- delivery

def test_three_nodes_deliver_every_update_in_one_order_with_the_same_ids(cluster):
    def as_in_the_table(ids):
        assert ids == cluster.db.ids(), "delivered order differs from the table's"

    scenario.one_order_with_the_same_ids(cluster, "postgres", check=as_in_the_table)


def test_concurrent_publishes_on_three_nodes_are_delivered_once_in_one_order(cluster):
    """Commit order is not sequence order: with a sequence, two transactions can commit
    their values out of order, and a node reading "everything after the last value I saw"
    skips one for good. Many publishers on three nodes for several seconds: every node
    delivers every acknowledged update exactly once, all in the table's order. The
    subscribers' queues are unbounded here: their readers share the GIL with 18
    publishers, and a reader left behind by 1 000 updates would be dropped as too slow
    (a bound tested elsewhere), which is not what this test is about."""
    hubs = cluster(3, extra=["subscriber_queue_size %d" % 10**9])
    subs = [qs.open_stream(h, ["urn:race"]) for h in hubs]
    acked = []
    lock = threading.Lock()
    stop = time.monotonic() + 5

    def publisher(hub, name):
        with hub.conn() as c:
            k = 0
            while time.monotonic() < stop:
                uid = "%s-%d" % (name, k)
                k += 1
                r = qs.publish(hub, ["urn:race"], uid, id=uid, conn=c, timeout=T(10))
                assert r.status == 200, r
                with lock:
                    acked.append(uid)

    threads = [threading.Thread(target=publisher, args=(h, "p%d-%d" % (i, j)))
               for i, h in enumerate(hubs) for j in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(T(60))
    assert len(acked) > 150, "too few publishes to mean anything: %d" % len(acked)
    markers = [publish_id(h, "urn:race", "end", id="end-%d" % i) for i, h in enumerate(hubs)]
    stored = cluster.db.ids()
    orders = []
    for s in subs:
        s.wait_for(lambda: set(markers) <= {e.id for e in s.events}, T(30), "the markers")
        got = [e.id for e in s.events]
        assert len(got) == len(set(got)), "an update was delivered twice"
        missing = set(acked) - set(got)
        assert not missing, "acknowledged but never delivered: %r" % sorted(missing)[:5]
        orders.append(got)
        s.close()
    assert orders[0] == orders[1] == orders[2], "nodes disagree on the order"
    assert orders[0] == stored, "the delivered order is not the table's"
    seqs = [r["seq"] for r in cluster.db.rows("SELECT seq FROM mercure_updates ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1)), "seqs are not gapless"


def test_last_event_id_on_another_node_replays_exactly_what_was_missed(cluster):
    scenario.last_event_id_on_another_node(cluster)


def test_updates_too_large_for_a_notification_come_from_the_table(cluster):
    """Small groups ride on their notification; a larger one (over the 8000-byte payload
    limit) is read from the table: both ways interleave in one order on every node."""
    n1, n2, n3 = cluster(3)
    subs = [qs.open_stream(h, ["urn:big"]) for h in (n1, n2, n3)]
    ids = []
    for i in range(6):
        hub = (n1, n2)[i % 2]
        data = ("x" * 9000 + str(i)) if i % 3 == 1 else "small-%d" % i
        ids.append(publish_id(hub, "urn:big", data))
    for s in subs:
        got = s.events_until(ids[-1], T(10))
        assert [e.id for e in got] == ids
        assert len(got[1].data) == 9001 and got[1].data.endswith("1")
        s.close()
    assert cluster.db.ids() == ids


def _record(uid, topic, data):
    """An update in the hub's record format (src/record.h), as notifications carry it."""
    def varint(n):
        out = b""
        while True:
            b, n = n & 0x7f, n >> 7
            if not n:
                return out + bytes([b])
            out += bytes([b | 0x80])

    def field(b):
        return varint(len(b)) + b

    rec = (bytes([1, 0]) + varint(0) + field(uid.encode()) + field(b"") + varint(1) +
           field(topic.encode()) + field(data.encode()))
    return len(rec).to_bytes(4, "big") + rec


def test_a_notification_from_a_session_that_cannot_insert_is_not_believed(cluster):
    """Any session of the database may NOTIFY any channel. An update riding on a
    notification from a role that may not insert updates is neither delivered nor allowed
    to hide the real update with that seq."""
    n1, n2 = cluster(2)
    subs = [qs.open_stream(h, ["urn:forge"]) for h in (n1, n2)]
    first = publish_id(n1, "urn:forge", "first")
    for s in subs:
        assert s.next_event(T(10)).id == first
    oid = cluster.db.psql("SELECT 'mercure_updates'::regclass::oid")
    role = "forger_" + cluster.db.name
    cluster.db.psql("CREATE ROLE %s LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO %s"
                    % (role, role))
    forged = base64.urlsafe_b64encode(_record("forged", "urn:forge", "evil")).decode()
    payload = "2 " + forged.rstrip("=")
    r = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-h", cluster.db.server.dir,
                        "-p", str(cluster.db.server.port), "-U", role, "-d", cluster.db.name,
                        "-c", "SELECT pg_notify('mercure_updates_%s', '%s')" % (oid, payload)],
                       capture_output=True, text=True, timeout=T(30), stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    qs.wait_until(lambda: all("may not insert updates" in h.stderr() for h in (n1, n2)), T(10),
                  what="the forged notification to be noticed")
    real = publish_id(n2, "urn:forge", "real")
    for s in subs:
        got = s.events_until(real, T(10))
        assert [e.id for e in got] == [real], [e.data for e in got]
        s.close()
    assert cluster.db.ids() == [first, real]


def test_a_duplicated_custom_id_resolves_to_its_earliest_occurrence(cluster):
    scenario.duplicated_custom_id(cluster)


def test_private_updates_stay_private_across_nodes(cluster):
    scenario.private_updates_across_nodes(cluster)


def test_every_update_is_a_row_users_can_query(cluster):
    (hub,) = cluster(1)
    with qs.open_stream(hub, ["urn:sql"]) as s:
        a = qs.publish_ok(hub, ["urn:sql", "urn:alt"], "line 1\nline 2", id="sql-1",
                          type="greeting", retry="1500", private=True)
        b = publish_id(hub, "urn:sql", "")
        got = s.events_until(b, T(10))
        assert [e.id for e in got] == [b]  # the private one is not for this subscriber
    rows = cluster.db.rows("SELECT seq, id, topics, private, type, retry, data,"
                           " published_at IS NOT NULL AND published_at <= now() AS dated"
                           " FROM mercure_updates ORDER BY seq")
    assert rows == [
        {"seq": 1, "id": a, "topics": ["urn:sql", "urn:alt"], "private": True,
         "type": "greeting", "retry": 1500, "data": "line 1\nline 2", "dated": True},
        {"seq": 2, "id": b, "topics": ["urn:sql"], "private": False, "type": None,
         "retry": None, "data": "", "dated": True},
    ]
    assert cluster.db.rows("SELECT version FROM mercure_schema") == [{"version": 2}]
    assert cluster.db.rows("SELECT last_seq FROM mercure_head") == [{"last_seq": 2}]
    # What a user sees in SQL is what the hub replays.
    with qs.open_stream(hub, ["urn:alt"], token=qs.sub_token(["urn:alt"]),
                        extra_query=[("lastEventID", "earliest")]) as s:
        ev = s.next_event(T(10))
        assert (ev.id, ev.type, ev.retry, ev.data) == (a, "greeting", "1500", "line 1\nline 2")


def test_text_postgres_cannot_store_is_replaced_not_refused(cluster):
    """A NUL byte or invalid UTF-8 cannot be PostgreSQL text: such bytes are stored (and
    delivered, on every node) as U+FFFD, as an EventSource client decodes them."""
    n1, n2 = cluster(2)
    with qs.open_stream(n2, ["urn:bytes"]) as s:
        body = "topic=urn%3Abytes&data=a%00b%FFc&id=bytes-1"
        r = qs.publish(n1, body=body)
        assert r.status == 200, r
        ev = s.next_event(T(10))
        assert ev.id == "bytes-1" and b"data: a\xef\xbf\xbdb\xef\xbf\xbdc\n" in ev.raw, ev.raw
    assert cluster.db.rows("SELECT data FROM mercure_updates") == [{"data": "a\ufffdb\ufffdc"}]


def test_retention_by_size_and_by_age(cluster, pg_server):
    (hub,) = cluster(1, query="mercure_size=50")
    ids = []
    with hub.conn() as c:
        for i in range(300):
            ids.append(qs.publish_ok(hub, ["urn:ret"], "u%d" % i, conn=c))
    qs.wait_until(lambda: len(cluster.db.ids()) <= 50, T(10), interval=0.2,
                  what="retention to trim the table")
    assert cluster.db.ids() == ids[-50:]
    scenario.history_after_retention(hub, ids, 50)
    # By age, in another database.
    aged = Database(pg_server, pg_server.new_database())
    (old,) = cluster(1, query="mercure_max_age=2s", db=aged)
    first = publish_id(old, "urn:age", "old")
    time.sleep(2.5)
    young = publish_id(old, "urn:age", "young")
    qs.wait_until(lambda: aged.ids() == [young], T(10), interval=0.2,
                  what="the old update to go")
    assert first not in aged.ids()


def test_long_history_is_replayed_in_batches_across_nodes(cluster):
    scenario.long_history_in_batches(cluster, T(20))


# --------------------------------------------------------------------------- outages

def test_postgres_killed_during_publishes_and_restarted(pg_factory, start_hub):
    """kill -9 of every PostgreSQL process (fsync on) during publishes on three nodes, then a
    restart on the same data: the hubs stay up and say so, publishes get 503 at once,
    subscribers stay connected; afterwards every update answered 200 is in the table once,
    and every node delivered the table's rows, once each, in its order."""
    server = pg_factory(fsync=True).start()
    url = server.url("postgres", query="mercure_timeout=2s")
    hubs = [start_hub(env={"MERCURE_TRANSPORT_URL": url}) for _ in range(3)]
    subs = [qs.open_stream(h, ["urn:k"]) for h in hubs]
    # 503 within the bound: mercure_timeout (2 s), twice that behind a group in flight.
    acked = scenario.publishes_through_an_outage(
        hubs, subs, server.kill, server.start,  # same port, same data: crash recovery
        "postgres", "postgres unavailable", publish_timeout=T(10), pause=0.02, before=T(10),
        unhealthy=T(5), healthy=T(15), after=T(10), join=T(15), publish_bound=T(1),
        refusal_bound=T(4.5))
    marker = publish_id(hubs[1], "urn:k", "marker", id="marker")
    stored = [r["id"] for r in server.rows("SELECT id FROM mercure_updates ORDER BY seq")]
    assert len(stored) == len(set(stored)), "an update was stored twice"
    missing = set(acked) - set(stored)
    assert not missing, "answered 200 but not in the table: %r" % sorted(missing)[:5]
    for s in subs:
        got = [e.id for e in s.events_until(marker, T(20))]
        assert len(got) == len(set(got)), "an update was delivered twice"
        assert got == stored, "a node's deliveries differ from the table's rows"
        s.close()


def test_postgres_stopped_and_started_again(pg_factory, start_hub):
    """A clean stop of the server: every node notices at once and says why; once the server
    is back, each node connects again, and the first publish is not refused for a
    connection that died meanwhile."""
    server = pg_factory().start()
    url = server.url("postgres")
    hubs = [start_hub(env={"MERCURE_TRANSPORT_URL": url}) for _ in range(2)]
    subs = [qs.open_stream(h, ["urn:restart"]) for h in hubs]
    before = publish_id(hubs[0], "urn:restart", "before")
    server.stop()
    for h in hubs:
        r = qs.wait_until(lambda: (lambda x: x if x.status == 503 else None)(healthz(h)),
                          T(5), what="/healthz 503")
        assert "postgres unavailable" in r.text, r.text
    server.start()
    for h in hubs:
        qs.wait_until(lambda: healthz(h).status == 200, T(10), what="/healthz 200 again")
    after = [publish_id(h, "urn:restart", "after-%d" % i) for i, h in enumerate(hubs)]
    for s in subs:
        assert [e.id for e in s.events_until(after[-1], T(10))] == [before] + after
        s.close()


def test_a_hub_started_before_its_database_waits_and_connects(pg_factory, start_hub):
    server = pg_factory()
    later = threading.Timer(1.0, server.start)
    later.start()
    try:
        hub = start_hub(env={"MERCURE_TRANSPORT_URL": server.url("postgres")})
    finally:
        later.join(T(60))
    assert "waiting for the database" in hub.stderr()
    assert healthz(hub).status == 200
    with qs.open_stream(hub, ["urn:late"]) as s:
        uid = publish_id(hub, "urn:late", "finally")
        assert s.next_event(T(10)).id == uid


def test_clean_exit_while_postgres_is_down(pg_factory, start_hub):
    server = pg_factory().start()
    hubs = [start_hub(env={"MERCURE_TRANSPORT_URL": server.url("postgres")},
                      extra=["subscriptions"]) for _ in range(2)]
    scenario.clean_exit_while_down(hubs, server.kill)


def test_a_replay_postgres_cannot_serve_is_answered_503(pg_factory, start_hub):
    server = pg_factory().start()
    hub = start_hub(env={"MERCURE_TRANSPORT_URL": server.url("postgres")})
    scenario.replay_that_cannot_be_served(hub, server.kill)


def test_a_hung_postgres_times_out_and_recovers(pg_factory, start_hub):
    server = pg_factory().start()
    hub = start_hub(env={"MERCURE_TRANSPORT_URL": server.url("postgres",
                                                             query="mercure_timeout=500ms")})
    scenario.hung_server(hub, lambda: server.signal_all(signal.SIGSTOP),
                         lambda: server.signal_all(signal.SIGCONT), "postgres", T(2))


# --------------------------------------------------------------------------- presence

def test_presence_is_shared_and_a_killed_node_expires(cluster):
    def in_the_table():
        rows = cluster.db.rows("SELECT topics, payload FROM mercure_subscriptions"
                               " ORDER BY registered_at")
        assert {"topics": ["urn:on-3"], "payload": {"u": 3}} in rows

    scenario.presence_across_nodes(cluster, "mercure_presence_ttl", check_registry=in_the_table)


def test_a_node_started_after_every_node_died_publishes_their_departures(cluster):
    def written():  # the entry is in the table
        return cluster.db.rows("SELECT 1 FROM mercure_subscriptions"
                               " WHERE topics = '{urn:orphan}'")

    def only_the_new_node_left():
        assert len(cluster.db.rows("SELECT node FROM mercure_nodes")) == 1

    scenario.departures_of_a_dead_cluster(cluster, "mercure_presence_ttl", stored=written,
                                          outlive_lease=True, check_left=only_the_new_node_left)


def test_a_cleanly_stopped_node_removes_its_entries(cluster):
    def nodes_in_the_table(n):
        def check():
            assert len(cluster.db.rows("SELECT node FROM mercure_nodes")) == n
        return check

    scenario.a_cleanly_stopped_node_leaves(cluster, "mercure_presence_ttl",
                                           before_stop=nodes_in_the_table(2),
                                           after_stop=nodes_in_the_table(1))


# --------------------------------------------------------------------------- set-up

def test_the_tables_are_created_once_by_hubs_starting_at_once(pg, start_hub, request, tmp_path):
    url = pg.url()
    hubs = [qs.Hub.start(tmp_path / ("parallel%d" % i), wait=False,
                         env={"MERCURE_TRANSPORT_URL": url}) for i in range(5)]
    request.node._qs_hubs.extend(hubs)  # stopped and checked by the start_hub fixture
    for h in hubs:
        h.wait_listening(T(30))
    created = sum("creating the tables" in h.stderr() for h in hubs)
    assert created == 1, [h.stderr() for h in hubs]
    assert pg.rows("SELECT version FROM mercure_schema") == [{"version": 2}]
    assert pg.rows("SELECT last_seq FROM mercure_head") == [{"last_seq": 0}]
    with qs.open_stream(hubs[4], ["urn:once"]) as s:
        uid = publish_id(hubs[0], "urn:once", "x")
        assert s.next_event(T(10)).id == uid


def test_tables_of_version_1_are_migrated(pg, start_hub):
    """Tables of the first release (no selectors column) are migrated by the next hub to
    start, and keep their updates."""
    hub = start_hub(env={"MERCURE_TRANSPORT_URL": pg.url()})
    uid = publish_id(hub, "urn:old", "x")
    hub.stop()
    pg.psql("ALTER TABLE mercure_subscriptions DROP COLUMN selectors;"
            "UPDATE mercure_schema SET version = 1")
    hub = start_hub(env={"MERCURE_TRANSPORT_URL": pg.url()})
    assert "migrating the tables mercure_* (schema version 2)" in hub.stderr()
    assert pg.rows("SELECT version FROM mercure_schema") == [{"version": 2}]
    assert pg.rows("SELECT count(*) AS n FROM information_schema.columns WHERE"
                   " table_name = 'mercure_subscriptions' AND column_name = 'selectors'") == \
        [{"n": 1}]
    assert pg.ids() == [uid]


def test_two_schemas_with_the_same_prefix_are_two_clusters(pg, start_hub):
    """Tables of the same name in two schemas of one database (search_path) are two
    clusters: notifications name the table, so neither hears of the other's updates."""
    pg.psql("CREATE SCHEMA tenant_a; CREATE SCHEMA tenant_b")
    a, b = ([start_hub(env={"MERCURE_TRANSPORT_URL": pg.url(
        query="options=-csearch_path%%3D%s" % schema)}) for _ in range(2)]
        for schema in ("tenant_a", "tenant_b"))
    with qs.open_stream(b[1], ["urn:t"]) as sb, qs.open_stream(a[1], ["urn:t"]) as sa:
        only_a = [publish_id(a[0], "urn:t", "a%d" % i) for i in range(3)]
        only_b = publish_id(b[0], "urn:t", "b")
        assert [e.id for e in sb.events_until(only_b, T(10))] == [only_b]
        assert [e.id for e in sa.events_until(only_a[-1], T(10))] == only_a
    assert [r["id"] for r in pg.rows("SELECT id FROM tenant_b.mercure_updates")] == [only_b]


def test_every_way_to_configure_it(pg, start_hub):
    """postgres:// and postgresql:// URLs, a libpq key-value string, PG* environment
    variables, and the Caddyfile block (with a URL, or with libpq's parameters as lines)
    reach the same tables when they name the same database and prefix."""
    port, db = pg.server.port, pg.name
    q = "mercure_table_prefix=cfg_"
    hubs = [
        start_hub(env={"MERCURE_TRANSPORT_URL": "postgres://postgres@127.0.0.1:%d/%s?%s&"
                       "application_name=qs-test" % (port, db, q)}),
        start_hub(env={"MERCURE_TRANSPORT_URL": "postgresql://127.0.0.1:%d/%s?%s&user=postgres"
                       % (port, db, q)}),
        start_hub(env={"MERCURE_TRANSPORT_URL": "host=127.0.0.1 port=%d dbname=%s user=postgres "
                       "mercure_table_prefix=cfg_" % (port, db)}),
        start_hub(env={"MERCURE_TRANSPORT_URL": "postgres://?" + q, "PGHOST": "127.0.0.1",
                       "PGPORT": str(port), "PGDATABASE": db, "PGUSER": "postgres"}),
        start_hub(extra=["transport postgres {", "url postgres://127.0.0.1:%d/%s" % (port, db),
                         "user postgres", "mercure_table_prefix cfg_", "}"]),
        start_hub(extra=["transport postgres {", "host 127.0.0.1", "port %d" % port,
                         "dbname " + db, "user postgres", "mercure_table_prefix cfg_",
                         "mercure_presence_ttl 5s", "}"]),
    ]
    subs = [qs.open_stream(h, ["urn:cfg"]) for h in hubs]
    uid = publish_id(hubs[0], "urn:cfg", "everywhere")
    for s in subs:
        assert s.next_event(T(10)).id == uid
        s.close()
    assert pg.ids("cfg_") == [uid]
    names = pg.server.rows("SELECT DISTINCT application_name FROM pg_stat_activity"
                           " WHERE datname = '%s'" % db)
    assert {"application_name": "qs-test"} in names
    assert {"application_name": "quicksilver"} in names


def run_and_fail(tmp_path, env, needles, absent=()):
    t0 = time.monotonic()
    err = refused(tmp_path, env=env, timeout=T(30))
    for n in needles:
        assert n in err, (n, err)
    for n in absent:
        assert n not in err, (n, err)
    return time.monotonic() - t0


def test_configuration_errors_stop_the_hub(tmp_path, pg):
    port = pg.server.port
    cases = [
        ({"MERCURE_TRANSPORT_URL": "postgres://u:hunter2@127.0.0.1:1/db?mercure_size=many"},
         ["MERCURE_TRANSPORT_URL:1", "transport postgres", "mercure_size", "\"many\""]),
        ({"MERCURE_TRANSPORT_URL": "postgres://127.0.0.1:1/db?mercure_bogus=1"},
         ["unknown option \"mercure_bogus\""]),
        ({"MERCURE_TRANSPORT_URL": "postgres://u:hunter2@127.0.0.1:1/db?bogus=1"},
         ["postgres://u:***@127.0.0.1:1/db?bogus=1", "invalid URI query parameter", "bogus"]),
        ({"MERCURE_TRANSPORT_URL": "postgres://127.0.0.1:1/db?mercure_table_prefix=Bad-Name"},
         ["mercure_table_prefix", "Bad-Name"]),
        ({"MERCURE_TRANSPORT_URL": "postgres://127.0.0.1:1/db?mercure_presence_ttl=10ms"},
         ["mercure_presence_ttl", "at least 1s"]),
        ({"MERCURE_TRANSPORT_URL": "host=127.0.0.1 password='unterminated"},
         ["host=127.0.0.1 ***", "unterminated quoted string"]),
        ({"MERCURE_EXTRA_DIRECTIVES": "transport postgres {\nhost 127.0.0.1\nsize 10\n}"},
         ["MERCURE_EXTRA_DIRECTIVES:3", "unknown option \"size\"", "mercure_"]),
    ]
    for env, needles in cases:
        run_and_fail(tmp_path, env, needles, absent=["hunter2"])
    # Nobody listens: the hub waits mercure_start_timeout, then says why it stops.
    took = run_and_fail(tmp_path, {"MERCURE_TRANSPORT_URL": "postgres://u:hunter2@127.0.0.1:%d/x"
                                   "?mercure_start_timeout=1s" % free_port()},
                        ["postgres://u:***@127.0.0.1:", "cannot connect",
                         "mercure_start_timeout", "Connection refused"], absent=["hunter2"])
    assert took < T(10)
    # A missing database: the server answered, so the hub stops at once.
    took = run_and_fail(tmp_path, {"MERCURE_TRANSPORT_URL": pg.server.url("no_such_db")},
                        ["postgres://postgres@127.0.0.1:%d/no_such_db" % port,
                         "database \"no_such_db\" does not exist"])
    assert took < T(5)
    # A role that may not create tables in the database.
    role = "reader_" + pg.name  # roles belong to the whole server
    pg.psql("CREATE ROLE %s LOGIN" % role)
    run_and_fail(tmp_path, {"MERCURE_TRANSPORT_URL": pg.url(user=role)},
                 ["cannot create the tables mercure_*", "permission denied", "42501"])
    # …but it can use tables that were created for it.
    pg.psql("CREATE SCHEMA app AUTHORIZATION postgres")
    pg.psql("GRANT USAGE ON SCHEMA app TO %s" % role)
    env = dict(BASE_ENV, MERCURE_TRANSPORT_URL=pg.url(
        query="options=-csearch_path%3Dapp"))
    hub = qs.Hub.start(tmp_path / "admin", env=env, wait=True)
    hub.stop()
    pg.psql("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA app TO %s" % role)
    reader = qs.Hub.start(tmp_path / "reader", env=dict(
        BASE_ENV, MERCURE_TRANSPORT_URL=pg.url(user=role, query="options=-csearch_path%3Dapp")))
    try:
        uid = publish_id(reader, "urn:granted", "ok")
        assert [r["id"] for r in pg.rows("SELECT id FROM app.mercure_updates")] == [uid]
    finally:
        assert reader.stop() == 0
        assert not reader.sanitizer_report()


# --------------------------------------------------------------------------- TLS and SCRAM

def test_tls_verify_full_and_scram(pg_factory, start_hub, tmp_path):
    certs = make_certs(tmp_path / "certs")
    server = pg_factory(hba=["hostssl all all 127.0.0.1/32 scram-sha-256",
                             "host all all 127.0.0.1/32 reject"],
                        ssl=(certs["cert"], certs["key"]),
                        settings=["password_encryption=scram-sha-256"]).start()
    server.psql("CREATE ROLE alice LOGIN PASSWORD 's3cr&t'")
    server.psql("CREATE DATABASE ha OWNER alice")
    assert server.psql("SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid"
                       " WHERE rolname = 'alice'") == "t"
    good = server.url("ha", user="alice", password="s3cr&t",
                      query="sslmode=verify-full&sslrootcert=" + certs["ca"])
    n1 = start_hub(env={"MERCURE_TRANSPORT_URL": good})
    n2 = start_hub(extra=["transport postgres {",
                          "url \"host=localhost port=%d dbname=ha user=alice sslmode=verify-full"
                          " sslrootcert=%s\"" % (server.port, certs["ca"]),
                          "password s3cr&t", "}"])
    assert "s3cr" not in n1.stderr() and "alice:***@" in n1.stderr()
    with qs.open_stream(n2, ["urn:tls"]) as s:
        uid = publish_id(n1, "urn:tls", "over TLS")
        assert s.next_event(T(10)).id == uid
    ssl_rows = server.rows("SELECT DISTINCT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a"
                           " USING (pid) WHERE a.usename = 'alice'")
    assert ssl_rows == [{"ssl": True}]
    # Wrong password: the server answered, so the hub stops at once, password masked.
    bad = server.url("ha", user="alice", password="wrong-pw",
                     query="sslmode=verify-full&sslrootcert=" + certs["ca"])
    run_and_fail(tmp_path, {"MERCURE_TRANSPORT_URL": bad},
                 ["alice:***@", "password authentication failed"], absent=["wrong-pw"])
    # A certificate from another CA is refused (nobody trusted answered: the hub gives up
    # after mercure_start_timeout).
    other = server.url("ha", user="alice", password="s3cr&t",
                       query="sslmode=verify-full&mercure_start_timeout=1s&sslrootcert=" +
                       certs["other"])
    run_and_fail(tmp_path, {"MERCURE_TRANSPORT_URL": other}, ["certificate verify failed"],
                 absent=["s3cr"])
    # Without TLS the server's rules refuse the connection.
    plain = server.url("ha", user="alice", password="s3cr&t", query="sslmode=disable")
    run_and_fail(tmp_path, {"MERCURE_TRANSPORT_URL": plain}, ["pg_hba.conf"],
                 absent=["s3cr"])


def test_presence_of_1_0_subscribers_keeps_their_selectors(cluster):
    scenario.presence_of_1_0_subscribers(cluster, "mercure_presence_ttl")
