"""/healthz and the Prometheus /metrics endpoint."""

import qs
from qs import T


def test_healthz(hub):
    r = hub.request("GET", "/healthz")
    assert r.status == 200
    r = hub.request("HEAD", "/healthz")
    assert r.status == 200


def test_metrics_exposition(hub):
    r = hub.request("GET", "/metrics")
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/plain")
    text = r.text
    for name, kind in [("mercure_subscribers_connected", "gauge"),
                       ("mercure_subscribers_total", "counter"),
                       ("mercure_updates_total", "counter"),
                       ("mercure_publish_errors_total", "counter"),
                       ("mercure_subscribers_dropped_total", "counter")]:
        assert "# TYPE %s %s\n" % (name, kind) in text, name
    m = qs.parse_metrics(text)
    assert qs.metric_value(m, "mercure_subscribers_connected") == 0
    assert qs.metric_value(m, "mercure_updates_total") == 0
    for reason in ("unauthorized", "forbidden", "bad_request"):
        assert qs.metric_value(m, "mercure_publish_errors_total", {"reason": reason}) == 0
    assert qs.metric_value(m, "mercure_subscribers_dropped_total", {"reason": "queue_full"}) == 0


def test_subscriber_gauge_and_counter(hub):
    streams = [qs.open_stream(hub, ["urn:x"]) for _ in range(3)]
    try:
        assert hub.metric("mercure_subscribers_connected") == 3
        assert hub.metric("mercure_subscribers_total") == 3
        streams.pop().close()
        qs.wait_until(lambda: hub.metric("mercure_subscribers_connected") == 2, T(5))
        streams.append(qs.open_stream(hub, ["urn:x"]))
        assert hub.metric("mercure_subscribers_connected") == 3
        assert hub.metric("mercure_subscribers_total") == 4
    finally:
        for s in streams:
            s.close()
    qs.wait_until(lambda: hub.metric("mercure_subscribers_connected") == 0, T(5))
    assert hub.metric("mercure_subscribers_total") == 4


def test_refused_subscriptions_are_not_counted(hub):
    assert hub.request("GET", qs.HUB_PATH).status == 400
    assert hub.request("GET", qs.subscribe_target(["x"], token_query="x" * 60)).status == 401
    assert hub.metric("mercure_subscribers_total") == 0
    assert hub.metric("mercure_subscribers_connected") == 0


def test_updates_total(hub):
    for i in range(5):
        qs.publish_ok(hub, ["urn:x"], "x")
    qs.publish(hub, ["urn:x"], "x", token=None)
    assert hub.metric("mercure_updates_total") == 5


def test_publish_errors_by_reason(hub):
    qs.publish(hub, ["urn:x"], "x", token=None)
    qs.publish(hub, ["urn:x"], "x", token="x" * 60)
    qs.publish(hub, ["/.well-known/mercure"], "x")
    qs.publish(hub, [], "x")
    qs.publish(hub, ["urn:x"], "x", retry="abc")
    qs.publish(hub, ["urn:x"], "x", id="a\nb")
    m = hub.metrics()
    assert qs.metric_value(m, "mercure_publish_errors_total", {"reason": "unauthorized"}) == 2
    assert qs.metric_value(m, "mercure_publish_errors_total", {"reason": "forbidden"}) == 1
    assert qs.metric_value(m, "mercure_publish_errors_total", {"reason": "bad_request"}) == 3
    assert qs.metric_value(m, "mercure_updates_total") == 0


def test_metrics_method_and_unknown_paths(hub):
    assert hub.request("POST", "/metrics").status in (404, 405)
    r = hub.request("GET", "/nope")
    assert r.status == 404
    assert hub.request("GET", "/robots.txt").status == 200
