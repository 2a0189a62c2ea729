"""Reconnection with history on the default, persistent transport (the reference's default
is bolt: docs/protocol.md §8). Skipped when the default transport keeps no history."""

import pytest

import qs
from qs import T

@pytest.fixture
def history_hub(start_hub, tmp_path):
    hub = start_hub(env={"XDG_DATA_HOME": str(tmp_path / "shared-data")})
    if hub.transport == "local":
        pytest.skip("the default transport keeps no history")
    return hub


def _fill(hub):
    with hub.conn() as c:
        for x in "abc":
            qs.publish_ok(hub, ["urn:t"], "data " + x, id=x, conn=c)
        qs.publish_ok(hub, ["urn:other"], "o", id="o", conn=c)
        qs.publish_ok(hub, ["urn:t"], "private", id="p", private=True, conn=c)
        qs.publish_ok(hub, ["urn:t"], "data d", id="d", conn=c)


def test_known_last_event_id_header(history_hub):
    _fill(history_hub)
    with qs.open_stream(history_hub, ["urn:t"], headers=[("Last-Event-ID", "b")]) as s:
        assert s.response.header("Last-Event-ID") == "b"


def test_replay_after_known_id(history_hub):
    _fill(history_hub)
    with qs.open_stream(history_hub, ["urn:t"], headers=[("Last-Event-ID", "a")]) as s:
        qs.publish_ok(history_hub, ["urn:t"], "live", id="live")
        got = [e.id for e in s.events_until("live", T(5))]
        assert got == ["b", "c", "d", "live"]


def test_replay_from_earliest_with_private_authorized(history_hub):
    _fill(history_hub)
    tok = qs.sub_token(["urn:t"])
    with qs.open_stream(history_hub, ["urn:t"], token=tok,
                        extra_query=[("lastEventID", "earliest")]) as s:
        assert s.response.header("Last-Event-ID") == "earliest"
        qs.publish_ok(history_hub, ["urn:t"], "live", id="live")
        got = [e.id for e in s.events_until("live", T(5))]
        assert got == ["a", "b", "c", "p", "d", "live"]
        assert s.events[0].raw == b"id: a\ndata: data a\n\n"


def test_unknown_last_event_id_replays_nothing(history_hub):
    _fill(history_hub)
    with qs.open_stream(history_hub, ["urn:t"], headers=[("Last-Event-ID", "nope")]) as s:
        assert s.response.has_header("Last-Event-ID")
        qs.publish_ok(history_hub, ["urn:t"], "live", id="live")
        assert [e.id for e in s.events_until("live", T(5))] == ["live"]


def test_replay_is_sent_without_waiting_for_a_live_update(history_hub):
    _fill(history_hub)
    with qs.open_stream(history_hub, ["urn:t"],
                        extra_query=[("lastEventID", "earliest")]) as s:
        s.wait_raw(b"data: data d\n\n", T(5))
        # Anonymous: the private update and the other topic are filtered out.
        assert bytes(s.raw) == (b":\nid: a\ndata: data a\n\nid: b\ndata: data b\n\n"
                                b"id: c\ndata: data c\n\nid: d\ndata: data d\n\n")


def test_header_wins_over_query_cursor(history_hub):
    _fill(history_hub)
    with qs.open_stream(history_hub, ["urn:t"], headers=[("Last-Event-ID", "c")],
                        extra_query=[("lastEventID", "a")]) as s:
        assert s.response.header("Last-Event-ID") == "c"
        qs.publish_ok(history_hub, ["urn:t"], "live", id="live")
        assert [e.id for e in s.events_until("live", T(5))] == ["d", "live"]


def test_no_cursor_no_replay(history_hub):
    _fill(history_hub)
    with qs.open_stream(history_hub, ["urn:t"]) as s:
        qs.publish_ok(history_hub, ["urn:t"], "live", id="live")
        assert [e.id for e in s.events_until("live", T(5))] == ["live"]


def test_history_survives_restart(start_hub, tmp_path):
    data = str(tmp_path / "persist")
    hub = start_hub(env={"XDG_DATA_HOME": data})
    if hub.transport == "local":
        pytest.skip("the default transport keeps no history")
    _fill(hub)
    assert hub.stop() == 0
    hub2 = start_hub(env={"XDG_DATA_HOME": data})
    with qs.open_stream(hub2, ["urn:t"], headers=[("Last-Event-ID", "c")]) as s:
        assert s.response.header("Last-Event-ID") == "c"
        qs.publish_ok(hub2, ["urn:t"], "live", id="live")
        assert [e.id for e in s.events_until("live", T(5))] == ["d", "live"]


def test_long_replay_to_many_selectors_arrives_whole_and_in_order(history_hub):
    """Matching a replayed batch against many selectors is done in slices, a loop turn
    apart: the subscriber still gets every update, once, in order, then live ones."""
    topics = ["urn:many:%d" % i for i in range(200)]
    with history_hub.conn() as c:
        ids = [qs.publish_ok(history_hub, [topics[(7 * i) % 200]], "n%d" % i, conn=c)
               for i in range(600)]
    with qs.open_stream(history_hub, topics, extra_query=[("lastEventID", "earliest")]) as s:
        live = qs.publish_ok(history_hub, [topics[3]], "live")
        got = [e.id for e in s.events_until(live, T(20))]
    assert got == ids + [live]
