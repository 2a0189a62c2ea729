"""HTTP/2: event streams on one connection, publishes, the same SSE bytes as HTTP/1.1,
stream lifetimes (heartbeat, write_timeout, the token's exp, dispatch_timeout, the bounded
queue), flow control (a stream whose window stays shut is dropped alone), GOAWAY at
shutdown, and the limits a peer cannot get around: concurrent streams, header list size,
HPACK table size, rapid reset (CVE-2023-44487), CONTINUATION floods (CVE-2024-27316),
SETTINGS, PING and empty-frame floods, zero-window stalls.

Each attack is sent by a frame-level client (h2client.RawH2); the test checks that the
connection is ended (GOAWAY, then closed) while the hub keeps serving others, and that the
hub's memory stays bounded and it is idle again once the attacker is gone. No assertion is
on a speed: outcomes only.
"""

import signal
import time
import uuid

import h2.settings
import hyperframe.frame as hf
import pytest

import h2client
import qs
from h2client import ENHANCE_YOUR_CALM, NO_ERROR
from qs import T
from test_subscribe import EXPECTED_STREAM_HEADERS

TOPIC = "https://example.com/books/1"
INITIAL_WINDOW = h2.settings.SettingCodes.INITIAL_WINDOW_SIZE


@pytest.fixture
def h2hub(start_hub, tls_files):
    def start(extra=(), **kw):
        return start_hub(tls=tls_files, protocol="h2", extra=list(extra), **kw)
    return start


def client(hub, **kw):
    return h2client.H2Client(hub.port, tls=hub.tls.context(("h2",)), **kw)


def raw(hub, **kw):
    return h2client.RawH2(hub.port, tls=hub.tls.context(("h2",)), **kw)


def assert_serves_others(hub):
    """A new subscriber and a new publisher, each on its own HTTP/2 connection, are served."""
    marker = "check-%s" % uuid.uuid4().hex[:8]
    with client(hub) as sub, client(hub) as pub:
        s = sub.open_stream(["urn:check"])
        r = pub.publish(["urn:check"], "x", id=marker)
        assert r.status == 200, r
        assert s.next_event().id == marker
    with hub.conn(protocol="h1") as c:
        assert c.request("GET", "/healthz").status == 200


class Resources:
    """The hub's resident memory and CPU time around an attack: memory must stay within
    `max_growth_mib` of where it started, and once the attacker is gone the hub must be
    idle (not spinning on what the attack left)."""

    def __init__(self, hub, max_growth_mib=64):
        self.pid = hub.proc.pid
        # The sanitizers' allocators keep freed memory in quarantine.
        self.max_growth = max_growth_mib * 1024 * (4 if qs.SANITIZED else 1)
        self.rss0 = qs.process_rss_kib(self.pid)
        self.peak = self.rss0

    def sample(self):
        self.peak = max(self.peak, qs.process_rss_kib(self.pid))

    def check(self):
        self.sample()
        assert self.peak - self.rss0 <= self.max_growth, \
            "RSS grew from %d to %d KiB" % (self.rss0, self.peak)
        # Idle afterwards: over a second, far less than a second of CPU.
        cpu0 = qs.process_cpu_seconds(self.pid)
        time.sleep(1.0)
        used = qs.process_cpu_seconds(self.pid) - cpu0
        assert used < 0.5, "the hub used %.2f s of CPU in the second after the attack" % used


def assert_ended(r, codes=None, timeout=None):
    """The server ended the attacker's connection: closed, after a GOAWAY with one of
    `codes` if it sent one."""
    assert r.wait_closed(timeout or T(15)), "the connection is still open; frames: %r" % (
        r.frames[-5:],)
    if r.goaway is not None and codes is not None:
        assert r.goaway.error_code in codes, r.goaway


# --------------------------------------------------------------------- streams

def test_many_event_streams_on_one_connection(h2hub):
    hub = h2hub()
    n = 100
    with client(hub) as c:
        streams = [c.open_stream([TOPIC] if i % 2 else ["https://example.com/books/{id}"])
                   for i in range(n)]
        assert len({s.stream_id for s in streams}) == n
        assert hub.metric("mercure_subscribers_connected") == n
        assert hub.metric("mercure_connections_open") >= 1
        with client(hub) as p:
            assert p.publish([TOPIC], "one", id="one").status == 200
        for s in streams:
            assert s.next_event().id == "one"
        # Closing half of them leaves the others running on the connection.
        for s in streams[::2]:
            s.close()
        qs.wait_until(lambda: hub.metric("mercure_subscribers_connected") == n // 2, T(5))
        assert c.publish([TOPIC], "two", id="two").status == 200
        for s in streams[1::2]:
            assert s.next_event().id == "two"


def test_concurrent_publishes_on_one_connection(h2hub):
    hub = h2hub()
    n = 50
    with client(hub) as c, qs.open_stream(hub, ["urn:p/{n}"]) as s:
        body = lambda i: qs.form_body(qs.publish_pairs(["urn:p/%d" % i], data=str(i),
                                                       id="p%d" % i))
        hdrs = [("content-type", "application/x-www-form-urlencoded"),
                ("authorization", "Bearer " + qs.pub_token())]
        sids = [c.request("POST", qs.HUB_PATH, hdrs, body(i)) for i in range(n)]
        answers = [c.response(sid) for sid in sids]
        assert [(r.status, r.text) for r in answers] == [(200, "p%d" % i) for i in range(n)]
        got = set()
        while len(got) < n:
            got.add(s.next_event().id)
        assert got == {"p%d" % i for i in range(n)}


def test_same_sse_bytes_and_headers_as_http1(h2hub):
    hub = h2hub()
    with hub.conn(protocol="h1") as h1c, client(hub) as c:
        h1c.send(qs.subscribe_request([TOPIC]))
        s1 = qs.SSEStream(h1c, h1c.read_head())
        s2 = c.open_stream([TOPIC])
        qs.publish_ok(hub, [TOPIC], "Hello World", type="test", id="b")
        assert c.publish([TOPIC], "Great\nagain", retry=1, id="c").status == 200
        expected = (b":\nevent: test\nid: b\ndata: Hello World\n\n"
                    b"retry: 1\nid: c\ndata: Great\ndata: again\n\n")
        for s in (s1, s2):
            s.wait_raw(len(expected))
            assert bytes(s.raw) == expected
        # The same fields, but those HTTP/2 has no place for (connection, transfer-encoding).
        h2_fields = dict(s2.response.headers)
        for name, value in EXPECTED_STREAM_HEADERS.items():
            if name == "connection":
                assert name not in h2_fields
            else:
                assert h2_fields.get(name) == value, (name, s2.response.headers)
        assert "transfer-encoding" not in h2_fields and "content-length" not in h2_fields


def test_heartbeat_over_http2(h2hub):
    hub = h2hub(["heartbeat 200ms"])
    with client(hub) as c:
        s = c.open_stream([TOPIC])
        s.wait_for(lambda: s.comments >= 3, T(5), "three heartbeats")
        assert bytes(s.raw).startswith(b":\n:\n:\n")


def test_write_timeout_ends_the_stream_not_the_connection(h2hub):
    hub = h2hub(["write_timeout 1s", "dispatch_timeout 100ms"])
    with client(hub) as c:
        s = c.open_stream([TOPIC])
        assert c.publish([TOPIC], "x", id="a").status == 200
        assert s.next_event().id == "a"
        s.wait_end(T(10))
        st = c.streams[s.stream_id]
        assert st.ended and st.reset is None, "not ended cleanly (END_STREAM)"
        assert not c.closed and c.goaway is None
        assert c.get("/healthz").status == 200


def test_token_exp_ends_the_stream(h2hub):
    hub = h2hub(["write_timeout 0s"], anonymous=False)
    tok = qs.sub_token([TOPIC], exp=int(time.time()) + 2)
    with client(hub) as c:
        s = c.open_stream([TOPIC], token=tok)
        s.wait_end(T(10))
        st = c.streams[s.stream_id]
        assert st.ended and st.reset is None
        assert c.get("/healthz").status == 200


def _slow_and_fast(c, hub, topic="urn:flow"):
    """A stream whose window stays shut and one whose window is wide, on one connection
    whose own window the client keeps open."""
    slow = c.open_stream([topic], wait_preamble=False)
    fast = c.open_stream([topic], wait_preamble=False)
    c.ack(fast.stream_id, 1 << 24)
    fast.wait_for(lambda: len(fast.raw) >= 2, T(5), "the fast stream's preamble")
    return slow, fast


def test_a_stream_whose_window_stays_shut_is_dropped_alone(h2hub):
    """dispatch_timeout: the shut stream's writes stall, it is dropped as a slow
    subscriber, and the connection's other stream gets every update meanwhile."""
    hub = h2hub(["dispatch_timeout 500ms", "subscriber_queue_size 100000",
                 "subscriber_queue_bytes 64MiB"])
    with client(hub, settings={INITIAL_WINDOW: 0}, auto_ack="connection") as c:
        slow, fast = _slow_and_fast(c, hub)
        big = "x" * 8192
        with client(hub) as p:
            for i in range(20):  # 160 KiB: more than a stream may buffer
                assert p.publish(["urn:flow"], big, id="e%d" % i).status == 200
        assert [e.id for e in fast.events_until("e19", T(10))] == ["e%d" % i for i in range(20)]
        c.wait(lambda: c.streams[slow.stream_id].reset is not None, T(10),
               "the slow stream's reset")
        assert hub.metric("mercure_subscribers_dropped_total",
                          {"reason": "dispatch_timeout"}) == 1
        assert slow.raw == b""
        # The connection and its other stream go on.
        assert c.goaway is None and not c.closed
        with client(hub) as p:
            assert p.publish(["urn:flow"], "after", id="after").status == 200
        assert fast.next_event().id == "after"


def test_the_queue_of_a_stream_is_bounded(h2hub):
    hub = h2hub(["dispatch_timeout 0s", "subscriber_queue_size 5"])
    with client(hub, settings={INITIAL_WINDOW: 0}, auto_ack="connection") as c:
        slow, fast = _slow_and_fast(c, hub)
        big = "x" * 8192
        with client(hub) as p:
            for i in range(40):
                assert p.publish(["urn:flow"], big, id="e%d" % i).status == 200
        assert [e.id for e in fast.events_until("e39", T(10))] == ["e%d" % i for i in range(40)]
        c.wait(lambda: c.streams[slow.stream_id].reset is not None, T(10),
               "the slow stream's reset")
        assert hub.metric("mercure_subscribers_dropped_total", {"reason": "queue_full"}) == 1
        assert c.goaway is None and not c.closed


def test_a_connection_that_reads_nothing_is_closed(h2hub):
    """Windows wide open but the socket never read: the connection's writes stall, and
    after 2 x dispatch_timeout the hub closes it."""
    hub = h2hub(["dispatch_timeout 300ms"])
    res = Resources(hub)
    c = client(hub, rcvbuf=4096, settings={INITIAL_WINDOW: (1 << 31) - 1})
    try:
        c.conn.increment_flow_control_window((1 << 31) - 1 - 65535)
        c.flush()
        s = c.open_stream(["urn:deaf"])
        with client(hub) as p:
            for i in range(64):
                assert p.publish(["urn:deaf"], "y" * 65536, id="d%d" % i).status == 200
        # Now read: what the kernel holds comes first, then the end.
        assert c.wait_closed(T(15)), "the connection is still open"
        assert s is not None
    finally:
        c.close()
    assert hub.metric("mercure_subscribers_connected") == 0
    assert_serves_others(hub)
    res.check()


def test_goaway_at_graceful_shutdown(h2hub):
    """SIGTERM: GOAWAY (NO_ERROR, naming the last stream), every event stream ended
    cleanly (END_STREAM), then the connection closed and the hub exits 0. (Read frame by
    frame: hyper-h2 stops accepting frames once it has a GOAWAY.)"""
    hub = h2hub()
    with raw(hub) as r:
        r.send([r.request_frame(1, qs.subscribe_target([TOPIC])),
                r.request_frame(3, qs.subscribe_target(["urn:other"]))])
        for sid in (1, 3):
            assert r.response_status(sid) == 200
            assert r.wait_for(lambda f: isinstance(f, hf.DataFrame) and f.stream_id == sid)
        hub.signal(signal.SIGTERM)
        goaway = r.wait_for(lambda f: isinstance(f, hf.GoAwayFrame), T(10))
        assert goaway is not None, r.frames[-5:]
        assert goaway.error_code == NO_ERROR and goaway.last_stream_id >= 3, goaway
        for sid in (1, 3):
            end = r.wait_for(lambda f: f.stream_id == sid and "END_STREAM" in f.flags, T(10))
            assert isinstance(end, hf.DataFrame), end
            assert not r.frames_of(hf.RstStreamFrame, sid)
        assert r.wait_closed(T(10))
    assert hub.wait_exit() == 0


def test_a_bad_connection_preface_ends_the_connection(h2hub):
    """ALPN said h2 but the client's first bytes are not the HTTP/2 preface: RFC 9113 §3.4,
    the connection is ended at once (nothing but the hub's own SETTINGS comes back)."""
    hub = h2hub()
    with raw(hub, preface=False) as r:
        r.send(b"INVALID CONNECTION PREFACE\r\n\r\n")
        assert r.wait_closed(T(5)), r.frames
        assert all(isinstance(f, (hf.SettingsFrame, hf.GoAwayFrame)) for f in r.frames), r.frames
    assert_serves_others(hub)


@pytest.mark.parametrize("transport", ["tls", "h2c"])
def test_a_connection_the_hub_ends_closes_with_fin_not_reset(start_hub, tls_files, transport):
    """The hub ends a connection (here a flood of empty DATA frames) while the client is
    still sending: it sends its GOAWAY, then a FIN, and reads what still comes for a moment,
    so the client reads the GOAWAY and the end of the connection, never a reset (which
    could destroy the GOAWAY before the client reads it)."""
    if transport == "tls":
        hub = start_hub(tls=tls_files)
    else:
        hub = start_hub(env={"GLOBAL_OPTIONS": "protocols h1 h2c"})
    with h2client.RawH2(hub.port, tls=tls_files.context(("h2",)) if hub.tls else None) as r:
        r.send(r.request_frame(1, qs.HUB_PATH, method="POST", end_stream=False))
        r.send([hf.DataFrame(1)] * 20000)  # far past the bound: the hub stops reading early
        time.sleep(0.3)  # a reset, if the hub's kernel sends one, is here before we read
        assert r.wait_closed(T(10))
        assert r.goaway is not None and r.goaway.error_code == ENHANCE_YOUR_CALM, r.goaway
        assert not r.reset, "the connection was reset"


# --------------------------------------------------------------------- limits

def test_concurrent_streams_per_connection_are_limited(h2hub):
    hub = h2hub()
    with client(hub) as c:
        c.wait(lambda: c.remote_settings_seen, T(5), "the hub's SETTINGS")
        assert c.conn.remote_settings.max_concurrent_streams == 250
    res = Resources(hub)
    with raw(hub) as r:
        target = qs.subscribe_target([TOPIC])
        r.send([r.request_frame(1 + 2 * i, target) for i in range(251)])
        over = 1 + 2 * 250
        rst = r.wait_for(lambda f: isinstance(f, hf.RstStreamFrame) and f.stream_id == over,
                         T(10))
        assert rst is not None, "the stream over the limit was not refused"
        # The 250 streams within the limit are served, and the connection goes on.
        for sid in (1, over - 2):
            assert r.response_status(sid, T(10)) == 200
        assert not r.frames_of(hf.RstStreamFrame, 1) and r.goaway is None
        assert_serves_others(hub)
        assert not r.closed
    res.check()


def test_header_list_over_the_limit_is_431(h2hub):
    hub = h2hub(["max_header_size 8KiB"])
    with client(hub) as c:
        c.wait(lambda: c.remote_settings_seen, T(5), "the hub's SETTINGS")
        assert c.conn.remote_settings.max_header_list_size == 8192
        r = c.get("/healthz", [("x-big", "a" * 9000)])
        assert r.status == 431, r
        assert b"too large" in r.body
        r = c.get("/healthz", [("x-h%d" % i, "b" * 100) for i in range(100)])
        assert r.status == 431, r
        # Just under the limit is served, on the same connection.
        assert c.get("/healthz", [("x-ok", "c" * 7000)]).status == 200
        assert hub.metric("mercure_http_bad_requests_total") >= 2


def test_a_header_block_cannot_grow_the_hpack_table(h2hub):
    """The hub advertises a 4096-byte HPACK table; a block that resizes it beyond that is
    a compression error that ends the connection."""
    hub = h2hub()
    with raw(hub) as r:
        r.encoder.header_table_size = 1 << 20  # the next block starts with a size update
        r.send(r.request_frame(1, "/healthz"))
        assert_ended(r, {h2client.COMPRESSION_ERROR})
        assert r.goaway is not None
    assert_serves_others(hub)


def test_rapid_reset_ends_the_connection(h2hub):
    """CVE-2023-44487: streams opened and reset at once, by thousands."""
    hub = h2hub()
    res = Resources(hub)
    with raw(hub) as r:
        target = qs.subscribe_target([TOPIC])
        sid = 1
        for _batch in range(50):
            frames = []
            for _ in range(100):
                frames.append(r.request_frame(sid, target))
                frames.append(hf.RstStreamFrame(sid, error_code=h2client.CANCEL))
                sid += 2
            if not r.send(frames):
                break
            r.read(0.001)
            res.sample()
            if r.closed:
                break
        # nghttp2's reset rate limit (a burst of 1000, then 33 a second) sends its own
        # GOAWAY, with INTERNAL_ERROR.
        assert_ended(r, {h2client.INTERNAL_ERROR, ENHANCE_YOUR_CALM})
        assert r.goaway is not None, "closed without GOAWAY"
        assert r.goaway.last_stream_id < sid - 2, "every stream was accepted"
    assert hub.metric("mercure_subscribers_connected") == 0
    assert_serves_others(hub)
    res.check()


@pytest.mark.parametrize("fragment", ["empty", "fields"])
def test_continuation_flood_ends_the_connection(h2hub, fragment):
    """CVE-2024-27316: a header block that never ends, in CONTINUATION frames (empty ones,
    or ones adding fields)."""
    hub = h2hub()
    res = Resources(hub)
    with raw(hub) as r:
        r.send(r.headers_frame(1, [(":method", "GET"), (":scheme", "https"),
                                   (":authority", "127.0.0.1"), (":path", "/healthz")],
                               end_stream=True, end_headers=False))
        for i in range(2000):
            f = hf.ContinuationFrame(1)
            if fragment == "fields":
                f.data = r.header_block([("x-f%d" % i, "v" * 1000)])
            if not r.send(f):
                break
            if i % 50 == 0:
                r.read(0.001)
                res.sample()
                if r.closed:
                    break
        assert_ended(r, {ENHANCE_YOUR_CALM})
        assert r.goaway is not None
    assert_serves_others(hub)
    res.check()


def test_settings_with_too_many_entries_ends_the_connection(h2hub):
    hub = h2hub()
    with raw(hub) as r:
        f = hf.SettingsFrame(0)
        for i in range(40):
            f.settings[0x100 + i] = i  # unknown settings are allowed, but not by the dozen
        r.send(f)
        assert_ended(r, {ENHANCE_YOUR_CALM})
        assert r.goaway is not None
    assert_serves_others(hub)


def _ack_frame(kind):
    return (hf.SettingsFrame(0) if kind == "settings" else
            hf.PingFrame(0, opaque_data=b"flooding")).serialize()


@pytest.mark.parametrize("kind,transport", [("settings", "tls"), ("ping", "h2c")])
def test_ack_flood_ends_the_connection(start_hub, tls_files, kind, transport):
    """SETTINGS and PING frames each ask for an acknowledgement: more than the hub's bound
    of them in one read, and the connection ends with ENHANCE_YOUR_CALM. (A TLS record
    holds 16 KiB: enough SETTINGS frames to go over the bound, not enough PINGs, which
    arrive by the 3000 in one read over h2c.)"""
    if transport == "tls":
        hub = start_hub(tls=tls_files)
    else:
        hub = start_hub(env={"GLOBAL_OPTIONS": "protocols h1 h2c"})
    res = Resources(hub)
    with h2client.RawH2(hub.port, tls=tls_files.context(("h2",)) if hub.tls else None) as r:
        batch = _ack_frame(kind) * 5000
        for _ in range(40):
            if not r.send(batch):
                break
            r.read(0.001)
            res.sample()
            if r.closed or r.goaway is not None:
                break
        assert_ended(r, {ENHANCE_YOUR_CALM})
        assert r.goaway is not None
    res.check()


@pytest.mark.parametrize("kind", ["settings", "ping"])
def test_ack_flood_from_a_peer_that_reads_nothing_is_closed(h2hub, kind):
    """The same flood from a peer that never reads: the acknowledgements stop at the bound,
    and the hub closes the connection (its writes stall); seen from the hub, since the
    peer's own socket would take minutes to drain."""
    hub = h2hub(["dispatch_timeout 500ms"])
    res = Resources(hub)
    baseline = hub.metric("mercure_connections_open")
    r = raw(hub)
    try:
        r.sock.setsockopt(h2client.socket.SOL_SOCKET, h2client.socket.SO_RCVBUF, 4096)
        batch = _ack_frame(kind) * 10000
        for _ in range(100):  # at most a million frames
            if not r.send(batch):
                break
            res.sample()
        qs.wait_until(lambda: hub.metric("mercure_connections_open") <= baseline, T(15),
                      what="the flooding connection's end")
    finally:
        r.close()
    assert_serves_others(hub)
    res.check()


def test_empty_data_flood_ends_the_connection(h2hub):
    hub = h2hub()
    res = Resources(hub)
    with raw(hub) as r:
        r.send(r.request_frame(1, qs.HUB_PATH, method="POST", end_stream=False,
                               extra=[("content-type", "application/x-www-form-urlencoded")]))
        for i in range(100):
            if not r.send([hf.DataFrame(1)] * 100):
                break
            r.read(0.001)
            if r.closed:
                break
        assert_ended(r, {ENHANCE_YOUR_CALM})
        assert r.goaway is not None
    assert_serves_others(hub)
    res.check()


def test_zero_window_streams_are_dropped_and_memory_stays_bounded(h2hub):
    """A peer that opens many streams and never opens a window: each stream buffers a
    bounded amount and is dropped after dispatch_timeout; the hub's memory stays bounded."""
    hub = h2hub(["dispatch_timeout 500ms"])
    res = Resources(hub)
    n = 100
    with client(hub, settings={INITIAL_WINDOW: 0}, auto_ack=False) as c:
        streams = [c.open_stream(["urn:stall"], wait_preamble=False) for _ in range(n)]
        with client(hub) as p:
            for i in range(40):  # 40 x 8 KiB to each of 100 streams
                assert p.publish(["urn:stall"], "z" * 8192, id="s%d" % i).status == 200
                res.sample()
        c.wait(lambda: all(c.streams[s.stream_id].reset is not None for s in streams), T(15),
               "every stalled stream's reset")
        res.sample()
        assert hub.metric("mercure_subscribers_dropped_total",
                          {"reason": "dispatch_timeout"}) == n
        assert hub.metric("mercure_subscribers_connected") == 0
    assert_serves_others(hub)
    res.check()
