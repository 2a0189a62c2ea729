"""Hostile URI templates (issue 11): a subscriber's topic selectors are bounded in length,
expressions and automaton states (alone and together); the selector of the attack is refused
with 400 and a one-line reason, applications' templates still work beside subscribers at the
limits, and the hub's memory returns near its baseline once a crowd of subscribers at the
limits has left. Nothing here measures time (machines are noisy): bench/hostile.sh does."""

import urllib.parse

import pytest

import qs
from qs import T

# The selector of the issue: "{+a}" ten thousand times. With "+" percent-encoded (it would
# mean a space) it fits in the default 64 KiB request head.
ATTACK = "{+a}" * 10000
ATTACK_QUERY = "topic=" + "{%2Ba}" * 10000


def subscribe_raw(hub, query, headers=()):
    """GET /.well-known/mercure?<query> with the query sent as is; returns the response
    (the head only for a stream, which is then closed)."""
    c = hub.conn()
    try:
        c.send(qs.build_request("GET", qs.HUB_PATH + "?" + query, headers))
        r = c.read_head(T(10))
        if r.status != 200:
            r.body = c.read_exact(int(r.header("Content-Length", "0")), T(5))
        return r
    finally:
        c.close()


def topics_query(selectors, extra=()):
    pairs = [("topic", s) for s in selectors] + list(extra)
    return urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)


def assert_refused(r, *words):
    assert r.status == 400, r
    text = r.body.decode()
    assert text.endswith("\n") and text.count("\n") == 1, text  # one line
    for w in words:
        assert w in text, text


def test_the_attack_is_refused_with_400(hub):
    r = subscribe_raw(hub, ATTACK_QUERY)
    assert_refused(r, "Topic selector too long: 40000 bytes", "max_selector_length 4096")
    # Also with a history replay asked for, and beside valid selectors.
    r = subscribe_raw(hub, "topic=https%3A%2F%2Fexample.com%2F1&" + ATTACK_QUERY +
                      "&lastEventID=earliest")
    assert_refused(r, "max_selector_length")
    assert hub.request("GET", "/healthz").status == 200
    assert hub.metric("mercure_subscribers_connected") == 0


@pytest.mark.h1_only("a 110 KB request target: nghttp2 ends the connection with "
                     "COMPRESSION_ERROR for a field whose HPACK encoding passes 64 KiB")
def test_the_attack_fully_encoded_in_a_larger_head_is_refused(start_hub):
    hub = start_hub(extra=["max_header_size 256KiB"])
    r = subscribe_raw(hub, topics_query([ATTACK]))
    assert_refused(r, "max_selector_length")


@pytest.mark.parametrize("selectors,words", [
    (["{a}/" * 65], ["too many expressions: 65", "max_selector_expressions 64"]),
    (["{+a}" + "x" * 1024 + "{+b}"], ["too complex: 1025 automaton states",
                                      "max_selector_states 1024"]),
    (["https://example.com/%d/{id}" % i for i in range(65)],
     ["too complex together: 4160 automaton states", "max_subscriber_states 4096"]),
    (["{+a}" + "x" * 1022 + "{+b}"] * 4 + ["https://example.com/{id}"],
     ["max_subscriber_states 4096"]),
])
def test_selectors_over_the_limits_get_400(hub, selectors, words):
    assert_refused(subscribe_raw(hub, topics_query(selectors)), *words)


def at_limit_wide(i, k):
    """1023 states (rounded up: 1024), 4 per subscriber: the largest automatons allowed.
    The leading "{+h}" loop takes almost any byte, so the automaton never dies early."""
    mark = "%d-%d-" % (i, k)
    return "{+h}" + mark + "x" * (1021 - len(mark)) + "{+t}"


def at_limit_many(i, k):
    """A tiny template that no literal prefix or suffix rules out, 64 per subscriber."""
    return "{+h}%d-%d{+t}" % (i, k)


def at_limit_memory(i, k):
    """4096 bytes and 1023 states, 4 per subscriber: the most memory a subscriber's templates
    may take (the literal prefix is kept three times: selector, group key, automaton)."""
    prefix = ("https://example.com/%d/%d/" % (i, k)).ljust(3060, "p")
    return prefix + "{a}" + "x" * 1021 + "{b}"


def test_limits_are_inclusive(hub):
    for shape, n in ((at_limit_wide, 4), (at_limit_many, 64), (at_limit_memory, 4)):
        selectors = [shape(0, k) for k in range(n)]
        assert all(len(s) <= 4096 for s in selectors)
        r = subscribe_raw(hub, topics_query(selectors))
        assert r.status == 200, (shape.__name__, r)


def test_limits_are_configurable(start_hub):
    hub = start_hub(extra=["max_selector_states 2", "max_selector_expressions 3",
                           "max_subscriber_states 64", "max_selector_length 40"])
    assert subscribe_raw(hub, topics_query(["https://example.com/{a}/{b}"])).status == 200
    assert_refused(subscribe_raw(hub, topics_query(["https://example.com/{a}/{b}/{c}"])),
                   "3 automaton states (max_selector_states 2)")
    assert_refused(subscribe_raw(hub, topics_query(["{a}{b}{c}{d}"])),
                   "too many expressions: 4 (max_selector_expressions 3)")
    long_one = "https://example.com/books/{book}/chapter1"
    assert len(long_one) == 41
    assert_refused(subscribe_raw(hub, topics_query([long_one])),
                   "41 bytes (max_selector_length 40)")
    assert_refused(subscribe_raw(hub, topics_query(["https://example.com/{a}",
                                                    "https://example.com/{b}"])),
                   "128 automaton states (max_subscriber_states 64)")
    # Exact selectors are not limited.
    assert subscribe_raw(hub, topics_query(["https://example.com/" + "x" * 1000])).status == 200


def test_without_limits_the_attack_is_harmless(start_hub):
    """With every limit lifted the attack selector is accepted, and it is what it means:
    one loop over the reserved and unreserved characters, matched like "{+a}"."""
    hub = start_hub(extra=["max_selector_length 0", "max_selector_expressions 0",
                           "max_selector_states 0", "max_subscriber_states 0"])
    raw = qs.build_request("GET", qs.HUB_PATH + "?" + ATTACK_QUERY, ())
    with qs.open_stream(hub, raw_request=raw) as s, \
            qs.open_stream(hub, ["https://example.com/books/{id}"]) as legit:
        qs.publish_ok(hub, "https://example.com/books/1", "one")
        qs.publish_ok(hub, "https://example.com/a b", "two")  # " " is in no class
        qs.publish_ok(hub, "https://example.com/books/2", "three")
        got = [s.next_event(T(5)).data for _ in range(2)]
        assert got == ["one", "three"]
        assert [legit.next_event(T(5)).data for _ in range(2)] == ["one", "three"]


def test_applications_templates_work_beside_subscribers_at_the_limits(hub):
    hostile = []
    try:
        for i in range(10):
            shape, n = (at_limit_wide, 4) if i % 2 else (at_limit_many, 64)
            hostile.append(qs.open_stream(hub, [shape(i, k) for k in range(n)]))
        books = qs.open_stream(hub, ["https://example.com/books/{id}"])
        messages = qs.open_stream(
            hub, ["https://example.com/users/{user}/messages{/message}{?page,limit}"])
        sent = [
            ("https://example.com/books/1", "b1"),
            ("https://example.com/books/1/2", "not a book"),
            ("https://example.com/users/ann/messages", "m-all"),
            ("https://example.com/users/ann/messages/7?page=2&limit=10", "m7"),
            ("https://example.com/users/ann/messages/7/8", "not a message"),
            ("https://example.com/books/%2F", "b-encoded"),
        ]
        for i, (topic, data) in enumerate(sent):
            qs.publish_ok(hub, topic + ("?n=%d" % i if "not" in data else ""), data)
        qs.publish_ok(hub, "https://example.com/end", "end")
        with books, messages:
            assert [books.next_event(T(5)).data for _ in range(2)] == ["b1", "b-encoded"]
            assert [messages.next_event(T(5)).data for _ in range(2)] == ["m-all", "m7"]
            # Nothing else arrives: the "end" update is matched by neither.
            books.collect(0.3)
            messages.collect(0.3)
            assert len(books.events) == 2 and len(messages.events) == 2
        # The subscribers at the limits get what their templates match, and only that:
        # subscriber 3 ("{+h}3-0-xxx...{+t}") a topic containing its text, subscriber 0
        # ("{+h}0-5{+t}" among others) a topic containing "0-5".
        qs.publish_ok(hub, "https://example.com/" + at_limit_wide(3, 0)[4:-4] + "/z", "for 3")
        qs.publish_ok(hub, "https://example.com/a0-5b", "for 0")
        assert hostile[3].next_event(T(5)).data == "for 3"
        assert hostile[0].next_event(T(5)).data == "for 0"
        assert [e.data for e in hostile[0].events] == ["for 0"]
        assert [e.data for e in hostile[3].events] == ["for 3"]
    finally:
        for s in hostile:
            s.close()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


@pytest.mark.h1_only("the memory of 1000 HTTP/1.1 connections")
@pytest.mark.skipif(qs.SANITIZED, reason="the sanitizers' allocator keeps freed memory")
def test_memory_returns_near_baseline_after_1000_subscribers_at_the_limits_leave(hub):
    pid = hub.proc.pid
    # Warm up what every hub allocates once (worker tables, the match cache, buffers).
    with qs.open_stream(hub, ["https://example.com/{id}"]):
        qs.publish_ok(hub, "https://example.com/" + "w" * 40, "warm")
    qs.wait_until(lambda: hub.metric("mercure_subscribers_connected") == 0, T(5))
    baseline = rss_kib(pid)

    n = 1000
    conns = []
    try:
        for i in range(n):
            c = hub.conn()
            query = topics_query([at_limit_memory(i, k) for k in range(4)])
            c.send(qs.build_request("GET", qs.HUB_PATH + "?" + query, ()))
            conns.append(c)
        for c in conns:
            r = c.read_head(T(10))
            assert r.status == 200, r
        qs.wait_until(lambda: hub.metric("mercure_subscribers_connected") == n, T(10))
        peak = rss_kib(pid)
    finally:
        for c in conns:
            c.close()
    qs.wait_until(lambda: hub.metric("mercure_subscribers_connected") == 0, T(10))
    grown = peak - baseline
    # 1000 subscribers with 4 selectors of 4 KiB each: tens of MB while they are connected.
    assert grown > 30 * 1024, (baseline, peak)
    # Once they left, at most a quarter of that stays (before: 60 of 76 MB stayed).
    limit = baseline + grown // 4

    def settled():
        return rss_kib(pid) <= limit

    try:
        qs.wait_until(settled, T(5), interval=0.1, what="RSS near the baseline")
    except AssertionError:
        raise AssertionError("RSS %d KiB after the subscribers left; baseline %d, peak %d, "
                             "limit %d" % (rss_kib(pid), baseline, peak, limit))
