"""Cluster mode over Apache Pulsar (transport pulsar): several hub processes sharing one topic
of a real Pulsar broker (4.0.x standalone) behave as one hub. The scenarios every cluster
transport runs (cluster_scenarios.py) — delivery across nodes in one order with the same
ids, Last-Event-ID on any node (generated and custom ids, `earliest`), private updates,
presence across nodes and a SIGKILLed node — plus TLS, token authentication (a wrong token
refused), a partitioned topic refused, configuration errors, and, last, the broker killed
with SIGKILL during publishes and restarted on the same folders.

One broker (plain and TLS ports, token authentication with anonymous clients allowed) is
started once for the session (pulsar_broker.py); each test uses topics of its own."""

import signal
import time
import uuid
from pathlib import Path

import pytest

import cluster_scenarios as scenario
import pulsar_broker
import qs
from cluster_scenarios import healthz, publish_id, refused
from qs import T

pytestmark = pytest.mark.skipif(pulsar_broker.available() is not None,
                                reason=str(pulsar_broker.available()))


def make_certs(d):
    certs = scenario.make_certs(d)
    # The broker's key in PKCS#8.
    scenario.openssl(d, "pkcs8", "-topk8", "-nocrypt", "-in", "server.key", "-out",
                     "server.pk8.pem")
    return dict(certs, key=str(d / "server.pk8.pem"))


@pytest.fixture(scope="session")
def pulsar(tmp_path_factory):
    d = tmp_path_factory.mktemp("pulsar")
    certs = make_certs(d / "certs")
    t0 = time.monotonic()
    broker = pulsar_broker.Broker(d / "broker", tls=(certs["cert"], certs["key"]), auth=True)
    broker.start()
    broker.start_seconds = time.monotonic() - t0
    broker.certs = certs
    yield broker
    broker.stop()


def url_for(broker_url, topic, query=""):
    return "%s?topic=%s%s" % (broker_url, topic, ("&" + query) if query else "")


@pytest.fixture
def cluster(pulsar, start_hub):
    """cluster(n, extra=..., query=...) -> [hubs] sharing a topic of their own."""
    topic = "qs-test-" + uuid.uuid4().hex[:8]

    def start(n=3, extra=(), query="", topic_name=None):
        hubs = []
        for i in range(n):
            q = "subscription_name=node-%s-%d" % (uuid.uuid4().hex[:6], i)
            q += ("&" + query) if query else ""
            url = url_for(pulsar.url, topic_name or topic, q)
            hubs.append(start_hub(env={"MERCURE_TRANSPORT_URL": url}, extra=list(extra)))
        return hubs

    start.pulsar = pulsar
    start.topic = topic
    return start


# --------------------------------------------------------------------------- delivery

def test_three_nodes_deliver_every_update_in_one_order_with_the_same_ids(cluster):
    def one_message_each(ids):
        # One message per update in the topic, as the broker counts them.
        stats = cluster.pulsar.admin("GET", "/admin/v2/persistent/public/default/%s/stats"
                                     % cluster.topic)
        assert stats["msgInCounter"] == 75, stats

    scenario.one_order_with_the_same_ids(cluster, "pulsar", check=one_message_each)


def test_last_event_id_on_another_node_replays_exactly_what_was_missed(cluster):
    scenario.last_event_id_on_another_node(cluster)


def test_a_duplicated_custom_id_resolves_to_its_earliest_occurrence(cluster):
    scenario.duplicated_custom_id(cluster)


def test_private_updates_stay_private_across_nodes(cluster):
    scenario.private_updates_across_nodes(cluster)


def test_a_foreign_message_in_the_topic_is_skipped(cluster):
    def produce():
        r = cluster.pulsar.produce(cluster.topic, b"not an update", {"mercure-id": "forged"})
        assert r["result"] == "ok", r

    scenario.foreign_message_is_skipped(cluster, produce)


def test_long_history_is_replayed_in_batches_across_nodes(cluster):
    scenario.long_history_in_batches(cluster, T(30))


def test_a_node_started_after_tens_of_thousands_of_updates_knows_old_ids(cluster):
    # 20 000 more updates, straight through the transport: build/transport_tput.
    tput = str(Path(qs.BINARY).parent / "transport_tput")
    scenario.late_node_knows_old_ids(cluster, tput, url_for(cluster.pulsar.url, cluster.topic),
                                     20000, tput_timeout=T(180), start_bound=T(60))


def test_an_id_removed_by_retention_is_unknown(pulsar, start_hub):
    # A namespace that retains nothing: once its ledger is closed (the topic unloaded, which
    # also makes the hub reconnect) and the topic trimmed, the first update is gone.
    ns = "public/qs-ret-" + uuid.uuid4().hex[:6]
    pulsar.admin("PUT", "/admin/v2/namespaces/" + ns)
    pulsar.admin("POST", "/admin/v2/namespaces/%s/retention" % ns,
                 {"retentionTimeInMinutes": 0, "retentionSizeInMB": 0})
    topic = "persistent://%s/ret" % ns
    hub = start_hub(env={"MERCURE_TRANSPORT_URL": url_for(pulsar.url, topic)})
    gone = publish_id(hub, "urn:ret", "gone")
    path = "/admin/v2/persistent/%s/ret" % ns

    def first_gone():
        pulsar.admin("PUT", path + "/unload")
        qs.wait_until(lambda: healthz(hub).status == 200, T(30), what="the hub reconnected")
        publish_id(hub, "urn:ret", "filler")
        pulsar.admin("POST", path + "/trim")
        stats = pulsar.admin("GET", path + "/internalStats")
        return all(int(l["ledgerId"]) > int(gone_ledger) for l in stats["ledgers"])

    stats = pulsar.admin("GET", path + "/internalStats")
    gone_ledger = stats["ledgers"][-1]["ledgerId"]
    qs.wait_until(first_gone, T(60), interval=1, what="the first ledger to be trimmed")
    with qs.open_stream(hub, ["urn:ret"], headers=[("Last-Event-ID", gone)]) as s:
        assert s.response.header("Last-Event-ID") == "earliest"
    # The hub went on across the unloads: a publish is delivered.
    with qs.open_stream(hub, ["urn:ret"]) as s:
        uid = publish_id(hub, "urn:ret", "after")
        assert s.next_event(T(10)).id == uid


# --------------------------------------------------------------------------- presence

def test_presence_is_shared_and_a_killed_node_expires(cluster):
    scenario.presence_across_nodes(cluster, "presence_ttl")


def test_presence_of_1_0_subscribers_keeps_their_selectors(cluster):
    scenario.presence_of_1_0_subscribers(cluster, "presence_ttl")


def test_a_node_started_after_every_node_died_publishes_their_departures(cluster):
    scenario.departures_of_a_dead_cluster(cluster, "presence_ttl")


def test_a_cleanly_stopped_node_removes_its_entries(cluster):
    scenario.a_cleanly_stopped_node_leaves(cluster, "presence_ttl")


# --------------------------------------------------------------------------- TLS and tokens

def test_tls(pulsar, start_hub, tmp_path):
    certs = pulsar.certs
    topic = "qs-tls-" + uuid.uuid4().hex[:8]
    n1 = start_hub(env={"MERCURE_TRANSPORT_URL": url_for(pulsar.tls_url, topic,
                                                         "tls_ca=" + certs["ca"])})
    n2 = start_hub(extra=["transport pulsar {", "url " + pulsar.tls_url, "topic " + topic,
                          "tls_insecure", "}"])
    with qs.open_stream(n2, ["urn:tls"]) as s:
        uid = publish_id(n1, "urn:tls", "over TLS")
        assert s.next_event(T(10)).id == uid
    # The broker's certificate is verified: another CA is refused at start, naming tls_ca.
    err = refused(tmp_path / "a", url_for(pulsar.tls_url, topic,
                                          "timeout=3s&tls_ca=" + certs["other"]))
    assert "transport pulsar: tls_ca" in err and "certificate" in err, err
    # Plain text to the TLS port does not get through either.
    err = refused(tmp_path / "b", url_for(pulsar.url.replace(str(pulsar.port),
                                                             str(pulsar.tls_port)),
                                          topic, "timeout=2s"))
    assert "transport pulsar: url" in err, err


def test_token_authentication_and_a_wrong_token(pulsar, start_hub, tmp_path):
    topic = "qs-token-" + uuid.uuid4().hex[:8]
    token = pulsar_broker.make_token("quicksilver")
    good = start_hub(env={"MERCURE_TRANSPORT_URL": url_for(pulsar.url, topic,
                                                           "token=" + token)})
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    block = start_hub(extra=["transport pulsar {", "url " + pulsar.url, "topic " + topic,
                             "token_file " + str(token_file), "}"])
    with qs.open_stream(block, ["urn:tok"]) as s:
        uid = publish_id(good, "urn:tok", "authenticated")
        assert s.next_event(T(10)).id == uid
    wrong = pulsar_broker.make_token("quicksilver", secret=b"not-the-broker-secret-0123456789")
    err = refused(tmp_path / "a", url_for(pulsar.url, topic, "timeout=5s&token=" + wrong))
    assert "transport pulsar: token" in err, err
    assert wrong not in err
    (tmp_path / "bad").write_text(wrong)
    err = refused(tmp_path / "b", None, "transport pulsar {\nurl %s\ntoken_file %s\n}"
                  % (pulsar.url, tmp_path / "bad"))
    assert "transport pulsar: token_file" in err, err


def test_a_topic_the_broker_refuses_is_named(pulsar, tmp_path):
    # A namespace that does not exist: the broker refuses the lookup.
    err = refused(tmp_path, url_for(pulsar.url, "persistent://public/qs-no-such-ns/t",
                                    "timeout=5s"))
    assert "transport pulsar: topic" in err and "TopicNotFound" in err, err
    assert "persistent://public/qs-no-such-ns/t" in err, err


def test_a_partitioned_topic_is_refused_at_start(pulsar, start_hub, tmp_path):
    # A topic created partitioned through the admin API: its messages have no one order, so
    # the hub stops at once, naming the option, the topic and why.
    topic = "qs-part-" + uuid.uuid4().hex[:8]
    full = "persistent://public/default/" + topic
    pulsar.admin("PUT", "/admin/v2/persistent/public/default/%s/partitions" % topic, 3)
    t0 = time.monotonic()
    err = refused(tmp_path / "a", url_for(pulsar.url, topic, "timeout=5s"))
    assert time.monotonic() - t0 < T(15), "the refusal took %.1f s" % (time.monotonic() - t0)
    lines = [line for line in err.splitlines() if "transport pulsar" in line]
    assert len(lines) == 1, err
    assert ('MERCURE_TRANSPORT_URL:1: transport pulsar: topic: "%s" is a partitioned topic '
            "(3 partitions); the hub needs a non-partitioned topic, whose single order every "
            "node delivers in" % full) in lines[0], err
    # Nothing was created on it (no producer on the partitioned topic's name).
    assert pulsar.admin("GET", "/admin/v2/persistent/public/default/%s/partitions"
                        % topic)["partitions"] == 3
    assert full not in pulsar.admin("GET", "/admin/v2/persistent/public/default")
    # The presence topic too, in a block this time (its line is the block's).
    other = "qs-part-" + uuid.uuid4().hex[:8]
    pulsar.admin("PUT", "/admin/v2/persistent/public/default/%s-presence/partitions" % other, 1)
    err = refused(tmp_path / "b", None, "transport pulsar {\nurl %s\ntopic %s\ntimeout 5s\n}"
                  % (pulsar.url, other))
    assert ('transport pulsar: presence_topic: "persistent://public/default/%s-presence" is a '
            "partitioned topic (1 partition)" % other) in err, err
    # In a namespace whose policy creates topics partitioned, the check creates nothing: the
    # hub's producer creates its topics, not partitioned, and the hub starts.
    ns = "public/qs-autopart-" + uuid.uuid4().hex[:6]
    pulsar.admin("PUT", "/admin/v2/namespaces/" + ns, {})
    pulsar.admin("POST", "/admin/v2/namespaces/%s/autoTopicCreation" % ns,
                 {"allowAutoTopicCreation": True, "topicType": "partitioned",
                  "defaultNumPartitions": 2})
    hub = start_hub(env={"MERCURE_TRANSPORT_URL": url_for(pulsar.url,
                                                          "persistent://%s/updates" % ns)})
    with qs.open_stream(hub, ["urn:part"]) as s:
        uid = publish_id(hub, "urn:part", "one order")
        assert s.next_event(T(10)).id == uid
    for name in ("updates", "updates-presence"):
        assert pulsar.admin("GET", "/admin/v2/persistent/%s/%s/partitions"
                            % (ns, name))["partitions"] == 0, name


# --------------------------------------------------------------------------- configuration

@pytest.mark.parametrize("url,extra,needles", [
    ("pulsar://127.0.0.1:1?bogus=1", None, ["unknown option \"bogus\""]),
    ("pulsar://127.0.0.1:1?topic=non-persistent://public/default/t", None,
     ["MERCURE_TRANSPORT_URL:1", "transport pulsar: topic", "not a persistent Pulsar topic"]),
    ("pulsar://127.0.0.1:1?topic=a/b", None, ["topic", "not a persistent Pulsar topic"]),
    ("pulsar://127.0.0.1:1?tls_ca=/x.pem", None, ["tls_ca", "pulsar+ssl://"]),
    ("pulsar://127.0.0.1:1?token=s3cret&token_file=/x", None, ["token_file", "combined"]),
    ("pulsar://127.0.0.1:1?subscription_name=a/b", None, ["subscription_name"]),
    ("pulsar+ssl://127.0.0.1:1?tls_ca=/nonexistent.pem", None, ["tls_ca", "cannot load"]),
    (None, "transport pulsar {\nurl pulsar://127.0.0.1:1\ntimeout soon\n}",
     ["MERCURE_EXTRA_DIRECTIVES:3", "timeout", "\"soon\""]),
    (None, "transport pulsar {\ntopic t\n}", ["transport pulsar: url", "required"]),
    ("pulsar://127.0.0.1:1?timeout=1s&token=s3cret", None,
     ["transport pulsar: url: cannot create a producer on the topic at pulsar://127.0.0.1:1",
      "connection refused"]),
])
def test_configuration_errors_stop_the_hub(tmp_path, url, extra, needles):
    err = refused(tmp_path, url, extra)
    for n in needles:
        assert n.lower() in err.lower(), (n, err)
    assert "s3cret" not in err


# --------------------------------------------------------------------------- outages
# Last in the file: it kills the session's broker and starts it again on the same folders.

def test_broker_killed_with_sigkill_and_restarted_mid_stream(pulsar, start_hub):
    topic = "qs-kill-" + uuid.uuid4().hex[:8]
    hubs = [start_hub(env={"MERCURE_TRANSPORT_URL": url_for(
        pulsar.url, topic, "publish_timeout=3s&subscription_name=kill-%d" % i)})
        for i in range(3)]
    subs = [qs.open_stream(h, ["urn:k"]) for h in hubs]
    acked = scenario.publishes_through_an_outage(
        hubs, subs, pulsar.kill, pulsar.start,  # same ports, same folders
        "pulsar", "pulsar", publish_timeout=T(15), pause=0.05, before=T(20), unhealthy=T(10),
        healthy=T(60), after=T(30), join=T(20), kill_bound=T(10))
    order = scenario.delivered_once_in_one_order(hubs, subs, acked, T(30))
    # A node started after the restart knows the ids from before the outage.
    late = start_hub(env={"MERCURE_TRANSPORT_URL": url_for(pulsar.url, topic)})
    with qs.open_stream(late, ["urn:k"], headers=[("Last-Event-ID", acked[0])]) as s:
        assert s.response.header("Last-Event-ID") == acked[0]
        end = publish_id(late, "urn:k", "end")
        got = [e.id for e in s.events_until(end, T(30))]
        assert got == order[order.index(acked[0]) + 1:] + [end]
    # Down again: the hubs stop cleanly, all at once, and do not hang (a hang check with room
    # for a loaded machine, not a speed check); the broker is started again for what follows.
    pulsar.kill()
    for h in hubs + [late]:
        h.proc.send_signal(signal.SIGTERM)
    for h in hubs + [late]:
        assert h.wait_exit(T(45)) == 0, h.stderr()
    pulsar.start()
