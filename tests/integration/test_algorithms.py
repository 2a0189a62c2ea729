"""Every JWS algorithm with keys given the way the reference takes them: PEM in
MERCURE_*_JWT_KEY and the algorithm in MERCURE_*_JWT_ALG."""

import pytest

import qs

ASYMMETRIC = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
              "EdDSA"]


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_algorithms(start_hub, alg):
    hub = start_hub(env={"MERCURE_PUBLISHER_JWT_ALG": alg, "MERCURE_SUBSCRIBER_JWT_ALG": alg})
    assert qs.publish(hub, ["urn:x"], "x", token=qs.pub_token(alg=alg)).status == 200
    for other in {"HS256", "HS384", "HS512"} - {alg}:
        assert qs.publish(hub, ["urn:x"], "x", token=qs.pub_token(alg=other)).status == 401
    with qs.open_stream(hub, ["urn:p"], token=qs.sub_token(["urn:p"], alg=alg)) as s:
        qs.publish_ok(hub, ["urn:p"], "x", id="p", private=True, token=qs.pub_token(alg=alg))
        assert s.next_event().id == "p"


@pytest.mark.parametrize("alg", ASYMMETRIC)
def test_asymmetric_publisher_key(start_hub, keys, alg):
    priv, pem, other_priv = keys[alg]
    hub = start_hub(env={"MERCURE_PUBLISHER_JWT_KEY": pem, "MERCURE_PUBLISHER_JWT_ALG": alg})
    claims = qs.mercure_claims(publish=["*"])
    with qs.open_stream(hub, ["urn:x"]) as s:
        r = qs.publish(hub, ["urn:x"], "x", id="signed", token=qs.make_jwt(claims, priv, alg))
        assert r.status == 200, r
        assert s.next_event().id == "signed"
    # Signed by another key of the same type.
    assert qs.publish(hub, ["urn:x"], "x", token=qs.make_jwt(claims, other_priv, alg)).status \
        == 401
    # Algorithm confusion: HS256 keyed with the public PEM must be refused.
    assert qs.publish(hub, ["urn:x"], "x",
                      token=qs.make_jwt(claims, pem.encode(), "HS256")).status == 401
    # HMAC tokens with the (unrelated) default HMAC key are refused too.
    assert qs.publish(hub, ["urn:x"], "x", token=qs.pub_token()).status == 401


@pytest.mark.parametrize("alg,other_alg", [("RS256", "RS384"), ("RS256", "PS256"),
                                           ("PS256", "RS256"), ("ES256", "ES384")])
def test_asymmetric_alg_pinning(start_hub, keys, alg, other_alg):
    priv, pem, _ = keys[alg]
    hub = start_hub(env={"MERCURE_PUBLISHER_JWT_KEY": pem, "MERCURE_PUBLISHER_JWT_ALG": alg})
    claims = qs.mercure_claims(publish=["*"])
    other_priv = keys[other_alg][0]
    # A valid signature with another algorithm (same RSA key for RS/PS) is still refused.
    tok = qs.make_jwt(claims, other_priv, other_alg)
    assert qs.publish(hub, ["urn:x"], "x", token=tok).status == 401


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_asymmetric_subscriber_key(start_hub, keys, alg):
    priv, pem, other_priv = keys[alg]
    hub = start_hub(env={"MERCURE_SUBSCRIBER_JWT_KEY": pem, "MERCURE_SUBSCRIBER_JWT_ALG": alg})
    claims = qs.mercure_claims(subscribe=["urn:p"])
    with qs.open_stream(hub, ["urn:p"], token=qs.make_jwt(claims, priv, alg)) as s:
        qs.publish_ok(hub, ["urn:p"], "x", id="p", private=True)
        assert s.next_event().id == "p"
    with hub.conn() as c:
        c.send(qs.subscribe_request(["urn:p"], token=qs.make_jwt(claims, other_priv, alg)))
        assert c.read_head().status == 401


def test_hs256_token_refused_when_key_is_rs256(start_hub, keys):
    _, pem, _ = keys["RS256"]
    hub = start_hub(env={"MERCURE_PUBLISHER_JWT_KEY": pem, "MERCURE_PUBLISHER_JWT_ALG": "RS256"})
    assert qs.publish(hub, ["urn:x"], "x", token=qs.pub_token()).status == 401


def test_caddyfile_pem_key_via_env_placeholder(start_hub, keys, tmp_path):
    """`{env.VAR}` keeps a multi-line PEM as one token (the official Caddyfile's way)."""
    priv, pem, _ = keys["ES256"]
    caddyfile = ("127.0.0.1:0 {\n\tmercure {\n"
                 "\t\tpublisher_jwt {env.QS_TEST_PEM} ES256\n"
                 "\t\tsubscriber_jwt %s\n\t\tanonymous\n\t}\n}\n" % qs.SUB_KEY)
    hub = start_hub(caddyfile=caddyfile, env={"QS_TEST_PEM": pem, "SERVER_NAME": None},
                    anonymous=False, publisher_key=None, subscriber_key=None)
    tok = qs.make_jwt(qs.mercure_claims(publish=["*"]), priv, "ES256")
    assert qs.publish(hub, ["urn:x"], "x", token=tok).status == 200


@pytest.mark.parametrize("var,directive", [("MERCURE_PUBLISHER_JWT_KEY", "publisher_jwt"),
                                           ("MERCURE_SUBSCRIBER_JWT_KEY", "subscriber_jwt")])
@pytest.mark.parametrize("bad_key", [
    "-----BEGIN PUBLIC KEY-----\nnot base64 at all!\n-----END PUBLIC KEY-----\n",
    "just-a-secret-not-a-pem-key",
])
def test_unparsable_pem_refuses_to_start(tmp_path, var, directive, bad_key):
    alg_var = var.replace("_KEY", "_ALG")
    env = {"SERVER_NAME": "127.0.0.1:0", "MERCURE_PUBLISHER_JWT_KEY": qs.PUB_KEY,
           "MERCURE_SUBSCRIBER_JWT_KEY": qs.SUB_KEY, var: bad_key, alg_var: "RS256"}
    p = qs.run_mercure(["run"], tmp_path, env=env)
    assert p.returncode != 0
    assert directive in p.stderr, p.stderr
    assert "listening" not in p.stderr


def test_pem_of_wrong_type_refuses_to_start(tmp_path, keys):
    _, ec_pem, _ = keys["ES256"]
    env = {"SERVER_NAME": "127.0.0.1:0", "MERCURE_PUBLISHER_JWT_KEY": ec_pem,
           "MERCURE_PUBLISHER_JWT_ALG": "RS256", "MERCURE_SUBSCRIBER_JWT_KEY": qs.SUB_KEY}
    p = qs.run_mercure(["run"], tmp_path, env=env)
    assert p.returncode != 0
    assert "publisher_jwt" in p.stderr, p.stderr
