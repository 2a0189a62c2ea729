"""Short concurrency stress: subscribers come and go (some with a TCP reset) on several
workers while updates are published. Meant to shake out races and use-after-free bugs
under the sanitizer build; the hub must survive and stay consistent."""

import random
import threading
import time

import qs
from qs import T


def test_subscriber_churn_during_publishing(start_hub):
    hub = start_hub(extra=["workers 4", "heartbeat 50ms", "subscriber_queue_size 50"])
    stop = threading.Event()
    errors = []
    published = [0]

    def publisher(n):
        try:
            with hub.conn() as c:
                i = 0
                while not stop.is_set():
                    qs.publish_ok(hub, ["urn:churn/%d" % (i % 3)], "d" * (i % 5000), conn=c,
                                  private=(i % 4 == 0))
                    i += 1
                    published[0] += 1
        except Exception as e:
            errors.append(("publisher", n, e))

    def churner(seed):
        rnd = random.Random(seed)
        try:
            while not stop.is_set():
                topics = ["urn:churn/{id}"] if rnd.random() < 0.5 else ["urn:churn/1", "*"]
                tok = qs.sub_token(["urn:churn/{id}"]) if rnd.random() < 0.5 else None
                s = qs.open_stream(hub, topics, token=tok, rcvbuf=4096 if rnd.random() < 0.2
                                   else None)
                s.collect(rnd.random() * 0.05)
                if rnd.random() < 0.5:
                    s.conn.abort()
                else:
                    s.close()
        except Exception as e:
            errors.append(("churner", seed, e))

    threads = [threading.Thread(target=publisher, args=(n,)) for n in range(2)]
    threads += [threading.Thread(target=churner, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    time.sleep(2.5)
    stop.set()
    for t in threads:
        t.join(T(20))
    assert not any(t.is_alive() for t in threads), "a client thread hung"
    assert not errors, errors[:3]
    assert published[0] > 50
    # Consistent afterwards.
    qs.wait_until(lambda: hub.metric("mercure_subscribers_connected") == 0, T(10),
                  what="every subscriber to be gone")
    with qs.open_stream(hub, ["urn:after"]) as s:
        qs.publish_ok(hub, ["urn:after"], "x", id="after")
        assert s.next_event().id == "after"


def test_sigterm_during_churn(start_hub):
    hub = start_hub(extra=["workers 4"])
    streams = [qs.open_stream(hub, ["urn:x"]) for _ in range(20)]
    stop = threading.Event()

    def publisher():
        try:
            with hub.conn() as c:
                while not stop.is_set():
                    qs.publish_ok(hub, ["urn:x"], "x" * 100, conn=c)
        except Exception:
            pass  # the hub goes away under our feet: expected

    th = threading.Thread(target=publisher)
    th.start()
    try:
        time.sleep(0.3)
        for s in streams[:5]:
            s.conn.abort()
        hub.signal(qs._signal.SIGTERM)
        for s in streams[5:]:
            s.wait_end(T(10))
            assert s.ended
        assert hub.wait_exit(T(10)) == 0, hub.stderr()
    finally:
        stop.set()
        th.join(T(10))
        for s in streams:
            s.close()
