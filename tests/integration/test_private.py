"""Private updates: who receives them (docs/protocol.md §3.4 delivery rule, §7)."""

import qs

CANON = "https://example.com/books/1"
ALT = "https://example.com/users/dunglas/books/1"


def _ids_until(stream, sentinel):
    return [e.id for e in stream.events_until(sentinel)]


def _sentinel(hub):
    qs.publish_ok(hub, ["urn:sentinel"], "s", id="sentinel")


def test_anonymous_subscriber_never_gets_private_updates(hub):
    with qs.open_stream(hub, ["*", CANON, "urn:sentinel"]) as s:
        qs.publish_ok(hub, [CANON], "x", id="private", private=True)
        qs.publish_ok(hub, [CANON], "x", id="public")
        _sentinel(hub)
        assert _ids_until(s, "sentinel") == ["public", "sentinel"]


def test_private_update_needs_matching_subscribe_claim(hub):
    ok = qs.sub_token([CANON])
    wrong = qs.sub_token(["https://example.com/books/2"])
    with qs.open_stream(hub, [CANON, "urn:sentinel"], token=ok) as s_ok, \
            qs.open_stream(hub, [CANON, "urn:sentinel"], token=wrong) as s_wrong:
        qs.publish_ok(hub, [CANON], "x", id="p", private=True)
        _sentinel(hub)
        assert _ids_until(s_ok, "sentinel") == ["p", "sentinel"]
        assert _ids_until(s_wrong, "sentinel") == ["sentinel"]


def test_alternate_topic_authorizes_private_update(hub):
    """The subscribe claim only matches the alternate topic; the selector only the
    canonical one: the update is delivered (the alternate-topic trick)."""
    tok = qs.sub_token([ALT])
    with qs.open_stream(hub, [CANON, "urn:sentinel"], token=tok) as s:
        qs.publish_ok(hub, [CANON], "x", id="canon-only", private=True)
        qs.publish_ok(hub, [CANON, ALT], "x", id="with-alt", private=True)
        qs.publish_ok(hub, [ALT], "x", id="alt-only", private=True)  # selector doesn't match
        _sentinel(hub)
        assert _ids_until(s, "sentinel") == ["with-alt", "sentinel"]


def test_star_claim_gets_everything(hub):
    tok = qs.sub_token(["*"])
    with qs.open_stream(hub, ["*"], token=tok) as s:
        qs.publish_ok(hub, [CANON], "x", id="a", private=True)
        qs.publish_ok(hub, ["urn:whatever"], "x", id="b", private=True)
        qs.publish_ok(hub, ["urn:public"], "x", id="c")
        _sentinel(hub)
        assert _ids_until(s, "sentinel") == ["a", "b", "c", "sentinel"]


def test_uri_template_in_subscribe_claim(hub):
    tok = qs.sub_token(["https://example.com/users/{id}"])
    with qs.open_stream(hub, ["*"], token=tok) as s:
        qs.publish_ok(hub, ["https://example.com/users/42"], "x", id="yes", private=True)
        qs.publish_ok(hub, ["https://example.com/users/42/secret"], "x", id="no",
                      private=True)
        qs.publish_ok(hub, ["https://example.com/groups/1"], "x", id="no2", private=True)
        _sentinel(hub)
        assert _ids_until(s, "sentinel") == ["yes", "sentinel"]


def test_claim_selector_matches_template_topic_only_if_it_matches(hub):
    # A claim can authorize alternate topics that are themselves templates-looking strings.
    tok = qs.sub_token(["https://example.com/books/{id}"])
    with qs.open_stream(hub, [CANON], token=tok) as s:
        qs.publish_ok(hub, [CANON], "x", id="p", private=True)
        _sentinel(hub)
        # The selector only matches CANON; the sentinel topic isn't subscribed.
        assert s.next_event().id == "p"


def test_token_without_subscribe_claim_gets_public_only(hub):
    tok = qs.make_jwt({"mercure": {"publish": ["*"]}}, qs.SUB_KEY)
    with qs.open_stream(hub, ["*"], token=tok) as s:
        qs.publish_ok(hub, [CANON], "x", id="p", private=True)
        _sentinel(hub)
        assert _ids_until(s, "sentinel") == ["sentinel"]


def test_namespaced_claim_subscribe(hub):
    tok = qs.make_jwt(qs.mercure_claims(subscribe=[CANON], namespaced=True), qs.SUB_KEY)
    with qs.open_stream(hub, ["*"], token=tok) as s:
        qs.publish_ok(hub, [CANON], "x", id="p", private=True)
        _sentinel(hub)
        assert _ids_until(s, "sentinel") == ["p", "sentinel"]


def test_private_and_public_interleaved_keep_order(hub):
    tok = qs.sub_token(["*"])
    with qs.open_stream(hub, ["*"], token=tok) as s_priv, qs.open_stream(hub, ["*"]) as s_pub:
        expected_priv, expected_pub = [], []
        for i in range(30):
            private = i % 3 == 0
            qs.publish_ok(hub, ["urn:t"], str(i), id="e%d" % i, private=private)
            expected_priv.append("e%d" % i)
            if not private:
                expected_pub.append("e%d" % i)
        _sentinel(hub)
        assert _ids_until(s_priv, "sentinel") == expected_priv + ["sentinel"]
        assert _ids_until(s_pub, "sentinel") == expected_pub + ["sentinel"]
