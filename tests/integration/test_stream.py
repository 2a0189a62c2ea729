"""Stream lifecycle: Last-Event-ID, heartbeats, write_timeout, token expiry, slow
subscribers."""

import socket
import threading
import time

import pytest

import qs
from qs import T


# ----------------------------------------------------------------- Last-Event-ID
# The local transport keeps no history: any requested cursor is answered "earliest".

@pytest.fixture
def local_hub(start_hub):
    hub = start_hub(extra=["transport local"])
    assert hub.transport == "local"
    return hub


def test_last_event_id_header_gets_earliest(local_hub):
    with qs.open_stream(local_hub, ["urn:x"], headers=[("Last-Event-ID", "some-id")]) as s:
        names = [n for n, _ in s.response.headers if n.lower() == "last-event-id"]
        assert len(names) == 1
        assert s.response.header("Last-Event-ID") == "earliest"
        # Nothing is replayed on the local transport.
        assert s.collect(T(0.2)) == b""


def test_last_event_id_query_gets_earliest(local_hub):
    with qs.open_stream(local_hub, ["urn:x"], extra_query=[("lastEventID", "x")]) as s:
        assert s.response.header("last-event-id") == "earliest"


def test_last_event_id_with_existing_id_still_earliest(local_hub):
    eid = qs.publish_ok(local_hub, ["urn:x"], "before")
    with qs.open_stream(local_hub, ["urn:x"], headers=[("Last-Event-ID", eid)]) as s:
        assert s.response.header("Last-Event-ID") == "earliest"
        qs.publish_ok(local_hub, ["urn:x"], "after", id="after")
        assert [e.id for e in s.events_until("after")] == ["after"]


def test_no_last_event_id_no_header(local_hub):
    with qs.open_stream(local_hub, ["urn:x"]) as s:
        assert not s.response.has_header("Last-Event-ID")


def test_empty_last_event_id_no_header(local_hub):
    """[0.x] sets the header only when the cursor is non-empty."""
    with qs.open_stream(local_hub, ["urn:x"], headers=[("Last-Event-ID", "")]) as s:
        assert not s.response.has_header("Last-Event-ID")
    with qs.open_stream(local_hub, ["urn:x"], extra_query=[("lastEventID", "")]) as s:
        assert not s.response.has_header("Last-Event-ID")


def test_last_event_id_query_variant_needs_protocol_7(start_hub):
    hub = start_hub(extra=["transport local"])
    with qs.open_stream(hub, ["urn:x"], extra_query=[("Last-Event-ID", "x")]) as s:
        assert not s.response.has_header("Last-Event-ID")
    hub7 = start_hub(extra=["transport local", "protocol_version_compatibility 7"])
    with qs.open_stream(hub7, ["urn:x"], extra_query=[("Last-Event-ID", "x")]) as s:
        assert s.response.header("Last-Event-ID") == "earliest"


# ----------------------------------------------------------------- heartbeat

def test_heartbeat_on_idle_stream(start_hub):
    hub = start_hub(extra=["heartbeat 100ms"])
    with qs.open_stream(hub, ["urn:x"]) as s:
        raw = s.collect(1.0)
        # Only comment lines: ":\n" repeated, no blank line, no event.
        assert raw and set(raw.split(b":\n")) == {b""}, raw
        n = raw.count(b":\n")
        assert 3 <= n <= 15, n
        assert s.events == []


def test_heartbeat_postponed_by_updates(start_hub):
    hub = start_hub(extra=["heartbeat 600ms"])
    with qs.open_stream(hub, ["urn:x"]) as s, hub.conn() as c:
        t_end = time.monotonic() + 1.5
        i = 0
        while time.monotonic() < t_end:
            qs.publish_ok(hub, ["urn:x"], "x", id="e%d" % i, conn=c)
            i += 1
            time.sleep(0.1)
        s.next_event()
        s.wait_for(lambda: len(s.events) == i, T(5), "all events")
        # While updates flowed every 100ms, no heartbeat was sent.
        assert s.comments == 1, s.raw
        # Once idle, heartbeats come back.
        s.wait_for(lambda: s.comments >= 2, T(3), "a heartbeat after the updates")
        assert s.raw.endswith(b"\n\n:\n")


def test_heartbeat_zero_disables(start_hub):
    hub = start_hub(extra=["heartbeat 0s"])
    with qs.open_stream(hub, ["urn:x"]) as s:
        assert s.collect(1.0) == b""


# ----------------------------------------------------------------- write_timeout

def test_write_timeout_ends_stream_cleanly(start_hub):
    """The stream ends at 80-100% of write_timeout, minus dispatch_timeout, with the
    final chunk."""
    hub = start_hub(extra=["write_timeout 1s", "dispatch_timeout 100ms"])
    t0 = time.monotonic()
    with qs.open_stream(hub, ["urn:x"]) as s:
        t_end = s.wait_end(T(10))
        elapsed = t_end - t0
        assert s.ended, "no final chunk: %r" % s.raw
        assert s.raw == b":\n"
        assert 0.8 * 1.0 - 0.1 - 0.05 <= elapsed <= 1.0 + T(0.5), elapsed


def test_write_timeout_stream_receives_until_the_end(start_hub):
    hub = start_hub(extra=["write_timeout 1500ms", "dispatch_timeout 100ms"])
    with qs.open_stream(hub, ["urn:x"]) as s:
        qs.publish_ok(hub, ["urn:x"], "x", id="a")
        assert s.next_event().id == "a"
        s.wait_end(T(10))
        assert s.ended


def test_write_timeout_zero_keeps_stream_open(start_hub):
    hub = start_hub(extra=["write_timeout 0s"])
    with qs.open_stream(hub, ["urn:x"]) as s:
        assert s.collect(1.2) == b""
        assert not s.eof


def test_token_exp_2s_ahead_ends_stream(start_hub):
    """Connected just after a second boundary, exp = now + 2 s: the stream ends (final
    chunk) before exp, not much earlier than 80% of the time left minus dispatch_timeout."""
    hub = start_hub(extra=["dispatch_timeout 200ms"])
    while time.time() % 1 > 0.1:
        time.sleep(0.01)
    now = time.time()
    exp = int(now) + 2
    with qs.open_stream(hub, ["urn:x"], token=qs.sub_token(["*"], exp=exp)) as s:
        s.wait_end(T(10))
        ended_at = time.time()
        assert s.ended, s.raw
        assert ended_at < exp + 0.05, ended_at - exp
        assert ended_at - now >= 0.8 * (exp - now) - 0.2 - 0.1, ended_at - now


def test_token_exp_ends_stream_before_expiry(start_hub):
    """A subscriber token with `exp` closes the stream before it expires (80-100% of the
    remaining time, minus dispatch_timeout). Connect late in a second so that the time
    left is not a whole number of seconds."""
    hub = start_hub(extra=["dispatch_timeout 200ms"])
    while time.time() % 1 < 0.8 or time.time() % 1 > 0.9:
        time.sleep(0.01)
    now = time.time()
    exp = int(now) + 2  # ~1.1-1.2 s from now
    tok = qs.sub_token(["*"], exp=exp)
    with qs.open_stream(hub, ["urn:x"], token=tok) as s:
        s.wait_end(T(10))
        ended_at = time.time()
        assert s.ended, s.raw
        assert ended_at < exp, "stream ended %.3fs after the token expired" % (ended_at - exp)
        assert ended_at - now >= 0.8 * (exp - now) - 0.2 - 0.1, ended_at - now


def test_token_exp_far_in_future_does_not_end_stream(start_hub):
    hub = start_hub(extra=["dispatch_timeout 100ms"])
    tok = qs.sub_token(["*"], exp=int(time.time()) + 3600)
    with qs.open_stream(hub, ["urn:x"], token=tok) as s:
        assert s.collect(1.0) == b""
        assert not s.eof


# ----------------------------------------------------------------- slow subscribers

def _dropped(hub, reason):
    return hub.metric("mercure_subscribers_dropped_total", {"reason": reason})


def _publish_until_dropped(hub, topic, reason, size, max_updates, latencies=None):
    """Publishes `size`-byte updates on one keep-alive connection until the hub reports a
    subscriber dropped for `reason` (then 5 more); returns the ids published. How many
    it takes depends on the kernel's socket buffers."""
    data = "x" * size
    ids = []
    extra = None
    with hub.conn() as c:
        for i in range(max_updates):
            t0 = time.monotonic()
            ids.append(qs.publish_ok(hub, [topic], data, id="u%d" % i, conn=c))
            if latencies is not None:
                latencies.append(time.monotonic() - t0)
            if extra is None and i % 5 == 4 and _dropped(hub, reason) >= 1:
                extra = 5
            elif extra is not None:
                extra -= 1
                if extra == 0:
                    break
        ids.append(qs.publish_ok(hub, [topic], "end", id="end", conn=c))
    return ids


def test_slow_subscriber_is_dropped_others_unaffected(start_hub):
    hub = start_hub(extra=["subscriber_queue_size 10"])
    size = 64 * 1024
    # A subscriber that never reads, with a tiny receive window.
    slow = qs.open_stream(hub, ["urn:big"], rcvbuf=4096)
    fast = qs.open_stream(hub, ["urn:big"])
    received, errors = [], []

    def reader():
        try:
            while not received or received[-1].id != "end":
                received.append(fast.next_event(T(30)))
        except Exception as e:  # reported by the main thread
            errors.append(e)

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    try:
        assert hub.metric("mercure_subscribers_connected") == 2
        latencies = []
        ids = _publish_until_dropped(hub, "urn:big", "queue_full", size, 600, latencies)
        assert _dropped(hub, "queue_full") == 1, "the slow subscriber was never dropped"
        # Publishing never waits for the slow subscriber (generous bound: detects hangs).
        assert max(latencies) < T(2), max(latencies)
        th.join(T(60))
        assert not th.is_alive(), "the fast subscriber did not get everything"
        assert not errors, errors
        assert [e.id for e in received] == ids
        assert all(len(e.data) == size for e in received[:-1])
        qs.wait_until(lambda: hub.metric("mercure_subscribers_connected") == 1, T(10),
                      what="the slow subscriber to be gone")
        # Its connection gets closed (after what was already in flight).
        slow.conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        slow.conn.read_to_eof(T(20), limit=1 << 16)
    finally:
        slow.close()
        fast.close()


def test_dropped_subscriber_can_reconnect(start_hub):
    hub = start_hub(extra=["subscriber_queue_size 2"])
    slow = qs.open_stream(hub, ["urn:s"], rcvbuf=4096)
    try:
        _publish_until_dropped(hub, "urn:s", "queue_full", 65536, 600)
        assert _dropped(hub, "queue_full") == 1
    finally:
        slow.close()
    with qs.open_stream(hub, ["urn:s"]) as s:
        qs.publish_ok(hub, ["urn:s"], "z", id="again")
        assert s.next_event().id == "again"


def test_dispatch_timeout_drops_stuck_subscriber(start_hub):
    """A subscriber whose socket stays full longer than dispatch_timeout is dropped even
    when its queue never fills."""
    hub = start_hub(extra=["dispatch_timeout 300ms", "subscriber_queue_size 100000",
                           "subscriber_queue_bytes 1GiB"])
    slow = qs.open_stream(hub, ["urn:s"], rcvbuf=4096)
    try:
        _publish_until_dropped(hub, "urn:s", "dispatch_timeout", 65536, 600)
        qs.wait_until(lambda: _dropped(hub, "dispatch_timeout") >= 1, T(10),
                      what="dispatch_timeout drop")
        assert _dropped(hub, "queue_full") == 0
        qs.wait_until(lambda: hub.metric("mercure_subscribers_connected") == 0, T(10))
    finally:
        slow.close()


@pytest.mark.parametrize("n", [3])
def test_subscriber_disconnect_is_noticed(hub, n):
    streams = [qs.open_stream(hub, ["urn:x"]) for _ in range(n)]
    qs.wait_until(lambda: hub.metric("mercure_subscribers_connected") == n)
    for s in streams:
        s.close()
    qs.wait_until(lambda: hub.metric("mercure_subscribers_connected") == 0, T(5),
                  what="the gauge to go back to 0")
