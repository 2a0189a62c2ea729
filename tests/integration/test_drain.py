"""Graceful drain for rolling updates (shutdown_delay, grace_period), the reference's health
checks on the hub's port, JSON logs and access logs."""

import json
import re
import signal
import time

import hyperframe.frame as hf

import h2client
import qs
from qs import T


def health(hub, path):
    r = hub.request("GET", path)
    return r.status, (json.loads(r.body) if r.body else None)


def test_health_checks_live_and_ready(start_hub):
    hub = start_hub(extra=["name hub-a"])
    for path in ("/mercure/health/live", "/mercure/health/ready",
                 "/mercure/health/hub-a/live", "/mercure/health/hub-a/ready"):
        status, body = health(hub, path)
        assert (status, body) == (200, {"status": "ok"}), path
    assert hub.request("GET", "/mercure/health/other/ready").status == 404
    assert hub.request("GET", "/mercure/health/nothing").status == 404
    r = hub.request("POST", "/mercure/health/ready")
    assert r.status == 405


def test_shutdown_delay_reports_not_ready_and_keeps_serving(start_hub):
    """SIGTERM: readiness answers 503 at once, publishes and streams go on during the delay,
    then the streams end and the hub exits 0."""
    hub = start_hub(env={"GLOBAL_OPTIONS": "shutdown_delay 2s"})
    with qs.open_stream(hub, ["urn:d"]) as s, hub.conn() as c:
        assert c.request("GET", "/mercure/health/ready").status == 200
        hub.signal(signal.SIGTERM)
        qs.wait_until(lambda: c.request("GET", "/mercure/health/ready").status == 503, T(2),
                      what="not ready")
        assert c.request("GET", "/healthz").status == 503
        assert c.request("GET", "/mercure/health/live").status == 200
        uid = qs.publish_ok(hub, ["urn:d"], "during the delay")
        assert s.next_event().id == uid
        assert hub.alive()
        s.wait_end(T(10))
        assert s.ended
    assert hub.wait_exit(T(10)) == 0, hub.stderr()
    assert "draining" in hub.stderr()


def test_grace_period_spreads_the_ends_of_streams_with_a_retry_hint(start_hub):
    hub = start_hub(env={"GLOBAL_OPTIONS": "grace_period 2s"})
    streams = [qs.open_stream(hub, ["urn:g"]) for _ in range(12)]
    try:
        t0 = time.monotonic()
        hub.signal(signal.SIGTERM)
        # Each stream's own end: waiting for them in turn would date them all at the first
        # one's end whenever it is the last to end (all 12 then look simultaneous).
        ends = [at - t0 for at in qs.wait_ends(streams, T(10))]
        for s in streams:
            assert s.ended
            retry = re.findall(rb"retry: (\d+)\n\n", s.raw)
            assert len(retry) == 1, s.raw
            assert 1000 <= int(retry[0]) <= 2000
            assert s.raw.endswith(retry[0] + b"\n\n")
        # Spread over the window: not all in the same instant (12 random moments in 2 s).
        assert max(ends) - min(ends) > 0.2, ends
        assert hub.wait_exit(T(10)) == 0, hub.stderr()
    finally:
        for s in streams:
            s.close()



def test_a_stream_opened_after_the_drain_began_ends_in_the_window(start_hub):
    """An HTTP/2 request whose header block was still coming when the drain began (HEADERS
    before the GOAWAY, its CONTINUATION after) is still served: its stream too ends within
    the grace period with a retry hint, rather than being cut at the end of the stop."""
    hub = start_hub(env={"GLOBAL_OPTIONS": "grace_period 2s\nprotocols h1 h2c"})
    with h2client.RawH2(hub.port) as r:
        block = r.header_block([(":method", "GET"), (":scheme", "http"),
                                (":authority", "127.0.0.1"),
                                (":path", qs.subscribe_target(["urn:g"]))])
        first = hf.HeadersFrame(1)
        first.data = block[:4]
        first.flags.add("END_STREAM")
        assert r.send(first)
        r.drain(0.2)
        hub.signal(signal.SIGTERM)
        assert r.wait_for(lambda f: isinstance(f, hf.GoAwayFrame), T(5)), r.frames
        rest = hf.ContinuationFrame(1)
        rest.data = block[4:]
        rest.flags.add("END_HEADERS")
        assert r.send(rest)
        end = r.wait_for(lambda f: f.stream_id == 1 and "END_STREAM" in f.flags, T(10))
        assert end is not None, r.frames
        body = b"".join(f.data for f in r.frames_of(hf.DataFrame, 1))
        assert r.response_status(1) == 200
        assert re.search(rb"retry: \d+\n\n$", body), body
    assert hub.wait_exit(T(10)) == 0, hub.stderr()


def test_a_second_sigterm_during_the_grace_period_does_not_kill_the_hub(start_hub):
    """A supervisor that repeats its SIGTERM (or the fixture's own at the end of a test) while
    the hub drains: the drain goes on and the hub still exits 0."""
    hub = start_hub(env={"GLOBAL_OPTIONS": "grace_period 2s"})
    # Four streams: the hub is still draining when the second signal comes (they all end
    # within the first 0.25 s less than once in a million).
    streams = [qs.open_stream(hub, ["urn:g"]) for _ in range(4)]
    try:
        hub.signal(signal.SIGTERM)
        qs.wait_until(lambda: "shutting down" in hub.stderr(), T(2), what="the first signal")
        hub.signal(signal.SIGTERM)
        hub.signal(signal.SIGINT)
        qs.wait_ends(streams, T(10))
        for s in streams:
            assert s.ended and re.search(rb"retry: \d+\n\n$", bytes(s.raw)), s.raw
        assert hub.wait_exit(T(10)) == 0, hub.stderr()
    finally:
        for s in streams:
            s.close()
    assert hub.stderr().count("shutting down") == 1, hub.stderr()


def test_json_logs(start_hub):
    hub = start_hub(env={"GLOBAL_OPTIONS": "log {\n format json\n}"})
    hub.stop()
    lines = [l for l in hub.stderr().splitlines() if l.startswith("{")]
    assert lines, hub.stderr()
    for line in lines:
        rec = json.loads(line)
        assert rec["level"] in ("debug", "info", "warn", "error")
        assert isinstance(rec["ts"], float) and rec["msg"]
    assert any("listening on" in json.loads(l)["msg"] for l in lines)


def test_access_logs_are_off_by_default(start_hub):
    hub = start_hub()
    hub.request("GET", "/healthz")
    hub.stop()
    assert "handled request" not in hub.stderr()


def test_access_logs_redact_the_authorization_parameter(start_hub, tmp_path):
    caddyfile = """
{
    log {
        format json
    }
}
127.0.0.1:0 {
    log
    mercure {
        publisher_jwt %s
        subscriber_jwt %s
        anonymous
    }
}
""" % (qs.PUB_KEY, qs.SUB_KEY)
    hub = start_hub(caddyfile=caddyfile, env={"SERVER_NAME": None})
    token = qs.sub_token(["*"])
    with qs.open_stream(hub, ["urn:a"], token_query=token):
        pass
    qs.publish_ok(hub, ["urn:a"], "x")
    hub.stop()
    text = hub.stderr()
    assert token not in text
    access = [json.loads(l) for l in text.splitlines()
              if l.startswith("{") and json.loads(l).get("logger") == "http.log.access"]
    uris = [a["request"]["uri"] for a in access]
    assert any("authorization=REDACTED" in u for u in uris), uris
    assert any(a["request"]["method"] == "POST" and a["status"] == 200 for a in access)
