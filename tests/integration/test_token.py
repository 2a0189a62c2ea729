"""`mercure token`: every algorithm's token is accepted by a hub configured with the
matching key; claims, kid, expiry; errors."""

import base64
import json
import time

import pytest

import qs

ALGS = ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
        "ES256", "ES384", "ES512", "EdDSA"]
DEV_KEY = "!ChangeThisMercureHubJWTSecretKey!"


def token(tmp_path, *args, ok=True):
    p = qs.run_mercure(["token"] + list(args), tmp_path)
    if ok:
        assert p.returncode == 0, p.stderr
        tok = p.stdout.strip()
        assert p.stdout == tok + "\n" and tok.count(".") == 2, p.stdout
        return tok
    assert p.returncode != 0, p.stdout
    return p


def decode(tok, part):
    seg = tok.split(".")[part]
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


@pytest.fixture(scope="module")
def pems(keys):
    """PEM private keys (PKCS#8) for the asymmetric algorithms of conftest's `keys`."""
    from cryptography.hazmat.primitives import serialization
    out = {}
    for alg, (priv, pub_pem, _) in keys.items():
        out[alg] = (priv.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()).decode(), pub_pem)
    return out


@pytest.mark.parametrize("alg", ALGS)
def test_every_algorithm_is_accepted(start_hub, tmp_path, pems, alg):
    if alg.startswith("HS"):
        secret = "a secret for " + alg
        key_file = tmp_path / "secret"
        key_file.write_text(secret + "\n")  # an editor's newline is not part of the secret
        verify_key, sign_args = secret, ["--key-file", str(key_file), "--alg", alg]
    else:
        priv_pem, verify_key = pems[alg]
        key_file = tmp_path / "key.pem"
        key_file.write_text(priv_pem)
        sign_args = ["--key-file", str(key_file), "--alg", alg]
    hub = start_hub(env={"MERCURE_PUBLISHER_JWT_KEY": verify_key,
                         "MERCURE_PUBLISHER_JWT_ALG": alg,
                         "MERCURE_SUBSCRIBER_JWT_KEY": verify_key,
                         "MERCURE_SUBSCRIBER_JWT_ALG": alg})
    pub = token(tmp_path, *sign_args, "--publish", "urn:t/{id}")
    sub = token(tmp_path, *sign_args, "--subscribe", "urn:t/1")
    assert decode(pub, 0) == {"alg": alg, "typ": "JWT"}
    with qs.open_stream(hub, ["urn:t/1"], token=sub) as s:
        r = qs.publish(hub, ["urn:t/1"], "x", id="private-1", private=True, token=pub)
        assert r.status == 200, r
        assert s.next_event().id == "private-1"
    # The publish claim is honoured, not just the signature (the reference answers 401).
    assert qs.publish(hub, ["urn:other"], "x", token=pub).status == 401


def test_default_algorithm_follows_the_key(tmp_path, pems):
    for alg in ("RS256", "ES256", "ES384", "ES512", "EdDSA"):
        key_file = tmp_path / ("k-" + alg)
        key_file.write_text(pems[alg][0])
        tok = token(tmp_path, "--key-file", str(key_file), "--publish", "*")
        assert decode(tok, 0)["alg"] == alg
    assert decode(token(tmp_path, "--key", "s", "--publish", "*"), 0)["alg"] == "HS256"


def test_the_development_token_of_the_readme(tmp_path):
    """HMAC tokens are deterministic: the README's token for the development key."""
    readme = (qs.REPO / "README.md").read_text()
    expected = readme.split("TOKEN=", 1)[1].split()[0]
    assert token(tmp_path, "--key", DEV_KEY, "--publish", "*") == expected


def test_claims_kid_and_verbose(tmp_path):
    p = qs.run_mercure(["token", "--key", "k", "--kid", "key-2024", "--publish", "a",
                        "--publish", "b", "--subscribe", "c", "--payload",
                        '{"user":"https://example.com/u/1"}', "--exp", "1h", "--verbose"],
                       tmp_path)
    assert p.returncode == 0, p.stderr
    tok = p.stdout.strip()
    assert decode(tok, 0) == {"alg": "HS256", "kid": "key-2024", "typ": "JWT"}
    claims = decode(tok, 1)
    assert claims["mercure"] == {"publish": ["a", "b"], "subscribe": ["c"],
                                 "payload": {"user": "https://example.com/u/1"}}
    assert abs(claims["exp"] - (time.time() + 3600)) < 60
    assert '"kid": "key-2024"' in p.stderr and '"payload"' in p.stderr
    # No --exp: no expiry.
    assert "exp" not in decode(token(tmp_path, "--key", "k", "--publish", "a"), 1)


def test_expired_token_is_refused(start_hub, tmp_path):
    hub = start_hub()
    past = token(tmp_path, "--key", qs.PUB_KEY, "--publish", "*",
                 "--exp", "@%d" % (time.time() - 10))
    assert qs.publish(hub, ["urn:x"], "x", token=past).status == 401
    soon = token(tmp_path, "--key", qs.PUB_KEY, "--publish", "*", "--exp", "1s")
    assert qs.publish(hub, ["urn:x"], "x", token=soon).status == 200
    time.sleep(2.1)
    assert qs.publish(hub, ["urn:x"], "x", token=soon).status == 401


def test_key_from_standard_input(tmp_path):
    import subprocess
    p = subprocess.run([qs.BINARY, "token", "--key-file", "-", "--publish", "*"],
                       input=DEV_KEY + "\n", capture_output=True, text=True,
                       env=qs.clean_env(), timeout=qs.T(10))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == token(tmp_path, "--key", DEV_KEY, "--publish", "*")


@pytest.mark.parametrize("args,code,message", [
    ([], 2, "a key is needed: --key or --key-file"),
    (["--key", "k", "--key-file", "f", "--publish", "*"], 2, "not both"),
    (["--key", "k"], 1, "the token would grant nothing"),
    (["--key", "k", "--alg", "none", "--publish", "*"], 1, "unsupported algorithm \"none\""),
    (["--key", "k", "--alg", "RS256", "--publish", "*"], 1, "RS256 needs a PEM private key"),
    (["--key", "k", "--payload", "{nope", "--publish", "*"], 1, "--payload is not JSON"),
    (["--key", "k", "--exp", "soon", "--publish", "*"], 2, "--exp: \"soon\" is neither"),
    (["--key", "k", "--bogus"], 2, "unknown option \"--bogus\""),
    (["--key"], 2, "--key needs a value"),
    (["--key-file", "/nonexistent/key", "--publish", "*"], 1, "cannot open /nonexistent/key"),
])
def test_errors(tmp_path, args, code, message):
    p = token(tmp_path, *args, ok=False)
    assert p.returncode == code, p.stderr
    assert message in p.stderr, p.stderr
    assert p.stdout == ""


def test_pem_errors(tmp_path, pems):
    rsa_pem = pems["RS256"][0]
    p = token(tmp_path, "--key", rsa_pem, "--alg", "ES256", "--publish", "*", ok=False)
    assert p.returncode == 1 and "the key cannot sign ES256 tokens" in p.stderr
    p = token(tmp_path, "--key", rsa_pem, "--alg", "HS256", "--publish", "*", ok=False)
    assert p.returncode == 1 and "HS256 signs with a shared secret" in p.stderr
    # A public key cannot sign.
    p = token(tmp_path, "--key", pems["ES256"][1], "--publish", "*", ok=False)
    assert p.returncode == 1 and "cannot sign" in p.stderr


def test_help(tmp_path):
    p = qs.run_mercure(["token", "--help"], tmp_path)
    assert p.returncode == 0 and "--key-file FILE" in p.stdout
    p = qs.run_mercure(["help"], tmp_path)
    assert "mercure token" in p.stdout
