"""Three hubs of the image and a Redis on one container network: an update published on
one node reaches the subscribers of the others; then a rolling restart of the three nodes,
one by one, while updates keep being published and a subscriber reconnects with
Last-Event-ID: it receives every acknowledged update once, in order."""

import threading
import time

import pytest

import hub
from conftest import FIGURES
from hub import podman

REDIS = "qs-deploy-redis"
NODES = ["qs-deploy-n1", "qs-deploy-n2", "qs-deploy-n3"]
TOPIC = "https://example.com/rolling"
ENV = {
    "MERCURE_TRANSPORT_URL": "redis://%s:6379/qs-deploy" % REDIS,
    # The drain a load balancer needs: not ready for 1 s while still serving, then the
    # streams end spread over 2 s.
    "GLOBAL_OPTIONS": "shutdown_delay 1s\ngrace_period 2s",
}


@pytest.fixture(scope="module")
def cluster():
    hub.remove(*NODES, REDIS)
    podman("network", "rm", "-f", hub.NETWORK, check=False)
    podman("network", "create", hub.NETWORK)
    try:
        podman("run", "-d", "--pull=never", "--name", REDIS, "--network", hub.NETWORK,
               hub.HELPER_IMAGE, "redis-server", "--protected-mode", "no", "--save", "",
               "--appendonly", "no")
        ports = [hub.free_port() for _ in NODES]
        for name, port in zip(NODES, ports):
            hub.run_hub(name, port, env=ENV, network=hub.NETWORK)
        for port in ports:
            hub.wait_ready(port)
        yield dict(zip(NODES, ports))
    finally:
        hub.remove(*NODES, REDIS)
        podman("network", "rm", "-f", hub.NETWORK, check=False)


def test_update_reaches_every_node(cluster):
    p1, p2, p3 = (cluster[n] for n in NODES)
    with hub.Stream(p2, TOPIC) as s2, hub.Stream(p3, TOPIC) as s3:
        uid = hub.publish(p1, TOPIC, "from node 1")
        for s in (s2, s3):
            ev = s.next_event()
            assert (ev["id"], ev["data"]) == (uid, "from node 1")


class Publisher(threading.Thread):
    """Publishes numbered updates, every 50 ms, to the next node that is ready, as a load
    balancer would route them; a publish that could not be sent goes to another node."""

    def __init__(self, ports):
        super().__init__(daemon=True)
        self.ports = ports
        self.acked = []  # (id, data) in the order acknowledged
        self.stop = threading.Event()
        self.error = None

    def run(self):
        n, i = 0, 0
        try:
            while not self.stop.is_set():
                port = self.ports[i % len(self.ports)]
                i += 1
                if hub.health(port) != 200:
                    continue
                data = "update %d" % n
                try:
                    uid = hub.publish(port, TOPIC, data)
                except ConnectionRefusedError:
                    continue  # closed between the check and the publish: not sent
                self.acked.append((uid, data))
                n += 1
                time.sleep(0.05)
        except Exception as e:  # reported by the test
            self.error = e


class Subscriber(threading.Thread):
    """Keeps a subscription open on a ready node; when its stream ends (a drain) or its
    node goes, reconnects to another ready node with the last id it received."""

    def __init__(self, ports):
        super().__init__(daemon=True)
        self.ports = ports
        self.received = []
        self.connections = 0
        self.stop = threading.Event()
        self.error = None

    def run(self):
        i = 0
        try:
            while not self.stop.is_set():
                port = self.ports[i % len(self.ports)]
                i += 1
                if hub.health(port) != 200:
                    time.sleep(0.05)
                    continue
                last = self.received[-1][0] if self.received else None
                try:
                    s = hub.Stream(port, TOPIC, last_event_id=last)
                except (OSError, AssertionError):
                    continue
                self.connections += 1
                with s:
                    while not self.stop.is_set():
                        try:
                            ev = s.next_event(timeout=0.5)
                        except TimeoutError:
                            continue
                        except OSError:
                            break
                        if ev is None:
                            break
                        self.received.append((ev["id"], ev["data"]))
        except Exception as e:
            self.error = e


def test_rolling_restart_loses_nothing(cluster):
    ports = [cluster[n] for n in NODES]
    sub = Subscriber(ports)
    sub.start()
    deadline = time.monotonic() + 10
    while sub.connections == 0:
        assert time.monotonic() < deadline, "the subscriber could not connect"
        time.sleep(0.05)
    pub = Publisher(ports)
    pub.start()
    time.sleep(1)

    drains, readies = [], []
    for name in NODES:
        t = time.monotonic()
        podman("stop", "-t", "30", name, timeout=60)  # SIGTERM, then waits for the exit
        drains.append(time.monotonic() - t)
        assert hub.exit_code(name) == 0, hub.logs(name)[-2000:]
        t = time.monotonic()
        podman("start", name)
        readies.append(hub.wait_ready(cluster[name]) - t)
        time.sleep(0.5)

    time.sleep(1)
    pub.stop.set()
    pub.join(10)
    assert pub.error is None, pub.error
    published = pub.acked
    assert len(published) > 20
    deadline = time.monotonic() + 15
    while len(sub.received) < len(published) and time.monotonic() < deadline:
        time.sleep(0.1)
    sub.stop.set()
    sub.join(10)
    assert sub.error is None, sub.error

    got = sub.received
    ids = [i for i, _ in got]
    assert len(ids) == len(set(ids)), "an update was received twice"
    missing = [d for _, d in published if d not in {d2 for _, d2 in got}]
    assert not missing, "updates never received: %s" % missing[:10]
    assert got == published, "received out of order"
    assert sub.connections >= 2, "the subscriber never had to reconnect"
    FIGURES["rolling restart: updates published / received"] = "%d / %d, %d connections" % (
        len(published), len(got), sub.connections)
    FIGURES["rolling restart: drain per node (podman stop)"] = ", ".join(
        "%.2f s" % d for d in drains)
    FIGURES["rolling restart: start to ready per node"] = ", ".join(
        "%.2f s" % r for r in readies)
