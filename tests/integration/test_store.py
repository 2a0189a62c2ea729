"""The embedded LMDB store (the default transport): durability under SIGKILL, replay of any
depth with a gapless hand-over to live updates, retention, a full store, and refusal of
corrupt, locked or unusable stores. These cover the store issue's acceptance criteria."""

import os
import resource
import threading
import time

import pytest

import qs
from qs import T


def store_hub(start_hub, data_dir, extra=(), env=None):
    e = {"XDG_DATA_HOME": str(data_dir)}
    e.update(env or {})
    return start_hub(env=e, extra=list(extra))


def replay_ids(hub, topics=("urn:s",), marker="end", cursor="earliest", timeout=None):
    """Publishes a marker, then reads the whole history from `cursor` up to it."""
    with qs.open_stream(hub, list(topics), extra_query=[("lastEventID", cursor)]) as s:
        qs.publish_ok(hub, list(topics), "marker", id=marker)
        return [e.id for e in s.events_until(marker, timeout or T(30))]


def test_sigkill_during_concurrent_publishes_loses_nothing_acknowledged(start_hub, tmp_path):
    data = tmp_path / "data"
    hub = store_hub(start_hub, data)
    acked = {i: [] for i in range(8)}
    stop = threading.Event()

    def publisher(n):
        seq = 0
        try:
            with hub.conn(timeout=T(5)) as c:
                while not stop.is_set():
                    uid = "p%d-%d" % (n, seq)
                    r = qs.publish(hub, ["urn:s"], "x", id=uid, conn=c)
                    if r.status != 200:
                        return
                    acked[n].append(uid)
                    seq += 1
        except Exception:
            return  # the hub was killed mid-request: that publish was never acknowledged

    threads = [threading.Thread(target=publisher, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    hub.proc.kill()  # SIGKILL while publishes are in flight
    hub.proc.wait(T(10))
    hub.stopped = True
    stop.set()
    for t in threads:
        t.join(T(10))
    total = sum(len(v) for v in acked.values())
    assert total > 100, "too few publishes to make the test meaningful: %d" % total

    hub2 = store_hub(start_hub, data)
    got = replay_ids(hub2)
    assert got[-1] == "end"
    history = got[:-1]
    assert len(history) == len(set(history)), "an update is stored twice"
    stored = set(history)
    for n, ids in acked.items():
        missing = [i for i in ids if i not in stored]
        assert not missing, "acknowledged but lost: %s" % missing[:5]
        # Each publisher's updates keep their order in the history.
        positions = [history.index(i) for i in ids]
        assert positions == sorted(positions)
    # The last event id survived too: the restart reports it.
    assert "last event id" in hub2.stderr()


def test_replay_hands_over_to_live_without_gap_or_duplicate(start_hub, tmp_path):
    hub = store_hub(start_hub, tmp_path / "data")
    with hub.conn() as c:
        for i in range(1500):
            qs.publish_ok(hub, ["urn:s"], "x", id="n-%d" % i, conn=c)
    stop = threading.Event()
    published = []

    def live_publisher():
        i = 1500
        with hub.conn() as c:
            while not stop.is_set() and i < 2500:
                qs.publish_ok(hub, ["urn:s"], "x", id="n-%d" % i, conn=c)
                published.append(i)
                i += 1

    t = threading.Thread(target=live_publisher)
    t.start()
    try:
        with qs.open_stream(hub, ["urn:s"], extra_query=[("lastEventID", "n-99")]) as s:
            time.sleep(0.3)
            stop.set()
            t.join(T(10))
            qs.publish_ok(hub, ["urn:s"], "x", id="done")
            got = [e.id for e in s.events_until("done", T(30))]
    finally:
        stop.set()
        t.join(T(10))
    numbers = [int(x.split("-")[1]) for x in got[:-1]]
    last = published[-1] if published else 1499
    assert numbers == list(range(100, last + 1)), "gap or duplicate between replay and live"


def test_replay_longer_than_the_queue_streams(start_hub, tmp_path):
    hub = store_hub(start_hub, tmp_path / "data", extra=["subscriber_queue_size 20"])
    with hub.conn() as c:
        for i in range(3000):
            qs.publish_ok(hub, ["urn:s"], "y" * 200, id="r-%d" % i, conn=c)
    got = replay_ids(hub)
    assert len(got) == 3001
    assert got[0] == "r-0" and got[2999] == "r-2999"
    assert hub.metric("mercure_subscribers_dropped_total", {"reason": "queue_full"}) == 0


def test_replay_filters_topics_and_private_updates(start_hub, tmp_path):
    hub = store_hub(start_hub, tmp_path / "data")
    qs.publish_ok(hub, ["urn:a"], "public a", id="a1")
    qs.publish_ok(hub, ["urn:b"], "public b", id="b1")
    qs.publish_ok(hub, ["urn:a"], "private a", id="a2", private=True)
    qs.publish_ok(hub, ["urn:x", "urn:a"], "alternate", id="a3")
    with qs.open_stream(hub, ["urn:a"], extra_query=[("lastEventID", "earliest")]) as s:
        qs.publish_ok(hub, ["urn:a"], "m", id="end")
        assert [e.id for e in s.events_until("end", T(10))] == ["a1", "a3", "end"]
    tok = qs.sub_token(["urn:a"])
    with qs.open_stream(hub, ["urn:a"], token=tok,
                        extra_query=[("lastEventID", "earliest")]) as s:
        qs.publish_ok(hub, ["urn:a"], "m", id="end2")
        assert [e.id for e in s.events_until("end2", T(10))] == ["a1", "a2", "a3", "end",
                                                                  "end2"]


def test_deep_history_is_found_by_index(start_hub, tmp_path):
    """The reference looks for a Last-Event-ID among the oldest 10 000 records only."""
    hub = store_hub(start_hub, tmp_path / "data")
    with hub.conn() as c:
        for i in range(12000):
            qs.publish_ok(hub, ["urn:s"], "d", id="d-%d" % i, conn=c)
    with qs.open_stream(hub, ["urn:s"], headers=[("Last-Event-ID", "d-11990")]) as s:
        assert s.response.header("Last-Event-ID") == "d-11990"
        qs.publish_ok(hub, ["urn:s"], "m", id="end")
        got = [e.id for e in s.events_until("end", T(10))]
    assert got == ["d-%d" % i for i in range(11991, 12000)] + ["end"]


def kept_history(hub, tag):
    """The history replayed from earliest, without the marker this call publishes."""
    return replay_ids(hub, marker=tag)[:-1]


def assert_newest_kept(hub, prefix, published, limit):
    """Waits for retention to trim, then checks that the newest updates are the ones kept
    (markers of earlier calls are history too, so only the publisher's own ids are
    compared: they must be a suffix of what was published)."""
    calls = iter(range(1000))

    def trimmed():
        return len(kept_history(hub, "probe-%d" % next(calls))) <= limit

    qs.wait_until(trimmed, what="retention to trim")
    ours = [x for x in kept_history(hub, "final") if x.startswith(prefix)]
    assert ours, "nothing kept"
    first = int(ours[0].split("-")[1])
    assert ours == ["%s%d" % (prefix, i) for i in range(first, published)]
    assert len(ours) <= limit


def test_retention_by_count_option_and_url(start_hub, tmp_path):
    hub = store_hub(start_hub, tmp_path / "d1",
                    extra=["transport bolt {", "path %s" % (tmp_path / "s1.db"), "size 10",
                           "cleanup_frequency 0.3", "}"])
    with hub.conn() as c:
        for i in range(50):
            qs.publish_ok(hub, ["urn:s"], "x", id="k-%d" % i, conn=c)
    assert_newest_kept(hub, "k-", 50, 10)
    hub.stop()
    assert (tmp_path / "s1.db").exists()
    hub2 = store_hub(start_hub, tmp_path / "d2",
                     env={"MERCURE_TRANSPORT_URL": "lmdb://%s?size=5" % (tmp_path / "s2.db")})
    assert hub2.transport == "lmdb"
    with hub2.conn() as c:
        for i in range(20):
            qs.publish_ok(hub2, ["urn:s"], "x", id="u-%d" % i, conn=c)
    assert_newest_kept(hub2, "u-", 20, 5)


def test_update_larger_than_the_map_is_refused_and_the_store_stays_writable(start_hub, tmp_path):
    hub = store_hub(start_hub, tmp_path / "data",
                    extra=["max_request_body_size 4MiB", "transport lmdb {",
                           "path %s" % (tmp_path / "small.db"), "map_size 1MiB", "}"])
    qs.publish_ok(hub, ["urn:s"], "small", id="before")
    big = "z" * 1500000  # larger than the whole map
    r = qs.publish(hub, ["urn:s"], big)
    assert r.status == 503, r
    assert "map_size" in r.text
    assert "publish failed" in hub.stderr()
    # One update that can never fit says nothing about the store: it still takes the others,
    # and nothing was trimmed to make room for it.
    assert hub.request("GET", "/healthz").status == 200
    qs.publish_ok(hub, ["urn:s"], "small", id="after")
    assert hub.request("GET", "/healthz").status == 200
    assert hub.metric("mercure_publish_errors_total", {"reason": "transport"}) == 1
    assert kept_history(hub, "end") == ["before", "after"]


def lmdb_block(path, *options):
    return ["transport lmdb {", "path %s" % path, "map_size 1MiB"] + list(options) + ["}"]


def publish_all(hub, updates):
    """Publishes (id, data) pairs in order; returns the acknowledged ids and the first
    refusal (None when every publish was answered 200)."""
    acked = []
    c = hub.conn()
    try:
        for uid, data in updates:
            r = qs.publish(hub, ["urn:s"], data, id=uid, conn=c)
            if r.status != 200:
                return acked, r
            acked.append(uid)
    finally:
        c.close()
    return acked, None


def fill_store(hub):
    """Issue 11's reproduction: 2 KB updates until one is refused, then smaller and smaller
    ones until even 10 bytes are. Returns the acknowledged ids and the last refusal."""
    acked = []
    refusal = None
    for size in (2000, 1000, 500, 100, 10):
        more, refusal = publish_all(hub, (("f-%d" % (len(acked) + i), "x" * size)
                                          for i in range(4000)))
        acked += more
    return acked, refusal


def store_lines(hub, path, text):
    """The store's own log lines (they name its file) whose message contains text."""
    marker = "store %s:" % path
    return [line for line in hub.stderr().splitlines()
            if marker in line and text in line.split(marker, 1)[1]]


def test_full_store_without_limits_refuses_steadily_then_heals_when_restarted_with_a_limit(
        start_hub, tmp_path):
    path = tmp_path / "full.db"
    hub = store_hub(start_hub, tmp_path / "d1", extra=lmdb_block(path, "size 0", "max_bytes 0"))
    acked, refusal = fill_store(hub)
    assert len(acked) > 100
    assert refusal.status == 503 and "full" in refusal.text, refusal
    # Full is a state, not an event: /healthz says so steadily, and the log says it once.
    statuses = []
    for _ in range(10):
        statuses.append(hub.request("GET", "/healthz").status)
        time.sleep(0.05)
    assert statuses == [503] * 10
    assert "full" in hub.request("GET", "/healthz").text
    assert qs.publish(hub, ["urn:s"], "late").status == 503
    time.sleep(0.3)
    assert len(store_lines(hub, path, "full")) == 1, hub.stderr()[-3000:]
    assert "retention failed" not in hub.stderr()
    hub.stop()

    # Restarted as it was, it is full from the start, and it dropped nothing acknowledged:
    # without a limit there is nothing it may trim.
    hub = store_hub(start_hub, tmp_path / "d2", extra=lmdb_block(path, "size 0", "max_bytes 0"))
    assert hub.request("GET", "/healthz").status == 503
    with qs.open_stream(hub, ["urn:s"], extra_query=[("lastEventID", "earliest")]) as s:
        assert [e.id for e in s.events_until(acked[-1], T(30))] == acked
    hub.stop()

    # With a limit, retention finds the pages it needs and publishes are accepted again.
    hub = store_hub(start_hub, tmp_path / "d3", extra=lmdb_block(path, "size 50", "max_bytes 0"))
    qs.wait_until(lambda: hub.request("GET", "/healthz").status == 200, timeout=T(10),
                  what="the store to accept publishes")
    qs.publish_ok(hub, ["urn:s"], "y" * 2000, id="after-1")
    qs.publish_ok(hub, ["urn:s"], "y" * 10, id="after-2")
    calls = iter(range(1000))

    def trimmed():
        history = kept_history(hub, "probe-%d" % next(calls))
        return history if len(history) <= 50 else None

    mine = [x for x in qs.wait_until(trimmed, what="retention to trim")
            if not x.startswith("probe-")]
    assert mine[-2:] == ["after-1", "after-2"]
    assert mine[:-2] == acked[len(acked) - len(mine) + 2:]
    assert "retention failed" not in hub.stderr()
    assert hub.request("GET", "/healthz").status == 200


def test_limits_the_map_cannot_hold_are_kept_by_pages_and_publishes_never_fail(start_hub,
                                                                              tmp_path):
    """900 KiB of records would fit in a 1 MiB map if each took what it weighs, but a 2 KB
    record takes a 4 KiB overflow page: the map, not max_bytes, is what limits history.
    The store trims by pages before it is full, so it never refuses a publish."""
    path = tmp_path / "paged.db"
    hub = store_hub(start_hub, tmp_path / "d1",
                    extra=lmdb_block(path, "size 0", "max_bytes 900KiB"))
    updates = [("big-%d" % i, "x" * 2000) for i in range(700)]
    updates += [("small-%d" % i, "y" * 10) for i in range(300)]
    acked, refusal = publish_all(hub, updates)
    assert refusal is None, "refused after %d publishes: %r" % (len(acked), refusal)
    assert hub.request("GET", "/healthz").status == 200
    kept = kept_history(hub, "end")
    assert len(kept) >= 300
    assert kept == acked[len(acked) - len(kept):], "not the newest, or not without a gap"
    assert "retention failed" not in hub.stderr()
    assert not store_lines(hub, path, "full")
    # The map was filled, and the log says once that it is what limits history.
    assert os.path.getsize(path) > 512 * 1024
    assert len(store_lines(hub, path, "limits the history")) == 1


def test_disk_full_answers_503_and_recovers(start_hub, tmp_path):
    hub = store_hub(start_hub, tmp_path / "data",
                    extra=["transport lmdb {", "path %s" % (tmp_path / "f.db"), "}"])
    qs.publish_ok(hub, ["urn:s"], "before", id="before")
    size = os.path.getsize(tmp_path / "f.db")
    # The file may not grow any more: as if the disk were full (EFBIG instead of ENOSPC).
    # Only the soft limit changes, so it can be raised again without privileges.
    _, hard = resource.prlimit(hub.proc.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(hub.proc.pid, resource.RLIMIT_FSIZE, (size, hard))
    statuses = [qs.publish(hub, ["urn:s"], "p" * 5000).status for _ in range(60)]
    assert 503 in statuses
    assert hub.request("GET", "/healthz").status == 503
    resource.prlimit(hub.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
    qs.publish_ok(hub, ["urn:s"], "after", id="after")
    assert hub.request("GET", "/healthz").status == 200
    got = replay_ids(hub)
    assert got[0] == "before" and "after" in got


def test_locked_corrupt_and_unusable_stores_stop_the_hub(start_hub, tmp_path):
    data = tmp_path / "data"
    hub = store_hub(start_hub, data)
    with pytest.raises(qs.HubStartError) as e:
        store_hub(start_hub, data)
    assert "locked" in str(e.value)
    hub.stop()

    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a store" * 1000)
    with pytest.raises(qs.HubStartError) as e:
        store_hub(start_hub, tmp_path / "d2", env={"MERCURE_TRANSPORT_URL": "bolt://%s" % bad})
    assert "not an LMDB store" in str(e.value)

    with pytest.raises(qs.HubStartError) as e:
        store_hub(start_hub, tmp_path / "d3", env={"MERCURE_TRANSPORT_URL": "lmdb://%s" % tmp_path})
    assert "cannot open the store" in str(e.value)

    with pytest.raises(qs.HubStartError) as e:
        store_hub(start_hub, tmp_path / "d4", extra=["transport bolt {", "size many", "}"])
    assert 'size: invalid number "many"' in str(e.value)
    assert "MERCURE_EXTRA_DIRECTIVES:3" in str(e.value)
