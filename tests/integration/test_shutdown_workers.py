"""Graceful shutdown on SIGTERM/SIGINT, and delivery across worker threads."""

import signal
import time

import pytest

import qs
from qs import T


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_streams_cleanly_and_exits_0(start_hub, sig):
    hub = start_hub()
    streams = [qs.open_stream(hub, ["urn:x"]) for _ in range(5)]
    idle = hub.conn()
    try:
        assert idle.request("GET", "/healthz").status == 200
        qs.publish_ok(hub, ["urn:x"], "before", id="before")
        for s in streams:
            assert s.next_event().id == "before"
        t0 = time.monotonic()
        hub.signal(sig)
        for s in streams:
            s.wait_end(T(10))
            assert s.ended, "no final chunk 0\r\n\r\n: %r" % s.raw
            assert s.raw.endswith(b"data: before\n\n")
            # Nothing after the final chunk.
            assert s.conn.buf == b""
        assert idle.wait_closed(T(10))
        rc = hub.wait_exit(T(10))
        assert rc == 0, hub.stderr()
        assert time.monotonic() - t0 < T(5)
        assert not hub.sanitizer_report(), hub.stderr()
    finally:
        for s in streams:
            s.close()
        idle.close()


HTTP10_CRASH = (
    "hub bug (crash): ending the stream of an HTTP/1.0 subscriber (unchunked stream: there "
    "is no final chunk to write) aborts the whole hub with the libuv assertion "
    "'uv__check_before_write: Assertion `nbufs > 0` failed' (SIGABRT, exit -6) - apparently "
    "a zero-buffer write of the (empty) stream terminator. Reproduce: GET "
    "/.well-known/mercure?topic=x HTTP/1.0, then SIGTERM, or let write_timeout / the token "
    "exp end the stream: any anonymous client can crash the hub")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_with_http10_stream(start_hub, sig):
    hub = start_hub()
    s = qs.open_stream(hub, ["urn:x"], version="HTTP/1.0")
    try:
        qs.publish_ok(hub, ["urn:x"], "before", id="before")
        assert s.next_event().id == "before"
        hub.signal(sig)
        s.wait_end(T(10))
        assert s.raw == b":\nid: before\ndata: before\n\n"
        assert hub.wait_exit(T(10)) == 0, hub.stderr()
    finally:
        s.close()


def test_write_timeout_ends_http10_stream(start_hub):
    hub = start_hub(extra=["write_timeout 1s", "dispatch_timeout 100ms"])
    with qs.open_stream(hub, ["urn:x"], version="HTTP/1.0") as s:
        s.wait_end(T(10))
        assert s.raw == b":\n"
    time.sleep(0.3)
    assert hub.alive(), hub.crash_report()
    assert hub.request("GET", "/healthz").status == 200


def test_token_exp_ends_http10_stream(start_hub):
    hub = start_hub(extra=["dispatch_timeout 100ms"])
    tok = qs.sub_token(["*"], exp=int(time.time()) + 2)
    with qs.open_stream(hub, ["urn:x"], token=tok, version="HTTP/1.0") as s:
        s.wait_end(T(10))
    time.sleep(0.3)
    assert hub.alive(), hub.crash_report()
    assert hub.request("GET", "/healthz").status == 200


def test_http10_stream_closed_by_client(hub):
    s = qs.open_stream(hub, ["urn:x"], version="HTTP/1.0")
    qs.publish_ok(hub, ["urn:x"], "x", id="a")
    assert s.next_event().id == "a"
    s.close()
    qs.wait_until(lambda: hub.metric("mercure_subscribers_connected") == 0, T(5))
    assert hub.request("GET", "/healthz").status == 200


def test_sigterm_without_clients(start_hub):
    hub = start_hub()
    assert hub.stop(signal.SIGTERM) == 0
    assert not hub.sanitizer_report(), hub.stderr()


def test_sigterm_during_publish_load(start_hub):
    hub = start_hub()
    streams = [qs.open_stream(hub, ["urn:x"]) for _ in range(5)]
    try:
        with hub.conn() as c:
            for i in range(100):
                qs.publish_ok(hub, ["urn:x"], "x" * 1000, conn=c)
            c.send(b"".join(qs.publish_request(["urn:x"], data="y" * 1000)
                            for _ in range(50)))
            hub.signal(signal.SIGTERM)
        for s in streams:
            s.wait_end(T(10))
        assert hub.wait_exit(T(10)) == 0, hub.stderr()
        assert not hub.sanitizer_report(), hub.stderr()
    finally:
        for s in streams:
            s.close()


def test_sigterm_with_slow_subscriber(start_hub):
    """A subscriber that does not read must not block the shutdown."""
    hub = start_hub()
    slow = qs.open_stream(hub, ["urn:x"], rcvbuf=4096)
    try:
        for _ in range(20):
            qs.publish_ok(hub, ["urn:x"], "z" * 65536)
        t0 = time.monotonic()
        rc = hub.stop(signal.SIGTERM, timeout=T(15))
        assert rc == 0, hub.stderr()
        assert time.monotonic() - t0 < T(10)
    finally:
        slow.close()


def test_connections_refused_after_shutdown(start_hub):
    hub = start_hub()
    port = hub.port
    assert hub.stop() == 0
    with pytest.raises(OSError):
        qs.HTTPConn(port, timeout=T(2)).request("GET", "/healthz")


@pytest.mark.parametrize("workers", [1, 4])
def test_workers_deliver_to_subscribers_on_all_connections(start_hub, workers):
    hub = start_hub(extra=["workers %d" % workers])
    assert hub.workers == workers
    topics = ["urn:w%d" % (i % 4) for i in range(24)]
    streams = [qs.open_stream(hub, [t, "urn:all"]) for t in topics]
    try:
        with hub.conn() as c:
            for i in range(20):
                qs.publish_ok(hub, ["urn:all"], "m%d" % i, id="all%d" % i, conn=c)
            for k in range(4):
                qs.publish_ok(hub, ["urn:w%d" % k], "only %d" % k, id="w%d" % k, conn=c)
            qs.publish_ok(hub, ["urn:all"], "end", id="end", conn=c)
        for t, s in zip(topics, streams):
            ids = [e.id for e in s.events_until("end", T(10))]
            k = int(t[-1])
            assert ids == ["all%d" % i for i in range(20)] + ["w%d" % k, "end"], (t, ids)
        m = hub.metrics()
        assert qs.metric_value(m, "mercure_subscribers_connected") == len(streams)
        assert qs.metric_value(m, "mercure_updates_total") == 25
    finally:
        for s in streams:
            s.close()


def test_workers_many_publishers_in_parallel(start_hub):
    """Publishers on several connections (hence several workers): every subscriber sees
    every update exactly once, and each publisher's updates in its order."""
    import threading
    hub = start_hub(extra=["workers 4"])
    streams = [qs.open_stream(hub, ["*"]) for _ in range(12)]
    n_pub, n_each = 4, 50
    errors = []

    def publisher(p):
        try:
            with hub.conn() as c:
                for i in range(n_each):
                    qs.publish_ok(hub, ["urn:p%d" % p], "x", id="p%d-%d" % (p, i), conn=c)
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=publisher, args=(p,)) for p in range(n_pub)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(T(30))
        assert not errors, errors
        total = n_pub * n_each
        for s in streams:
            s.wait_for(lambda: len(s.events) >= total, T(10), "all events")
            ids = [e.id for e in s.events]
            assert len(ids) == total and len(set(ids)) == total
            for p in range(n_pub):
                mine = [i for i in ids if i.startswith("p%d-" % p)]
                assert mine == ["p%d-%d" % (p, i) for i in range(n_each)]
    finally:
        for s in streams:
            s.close()
