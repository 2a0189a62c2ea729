"""Fixtures: hubs started per test (killed by finalizers), crash and sanitizer checks,
asymmetric keys generated once per session."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import qs  # noqa: E402


def pytest_report_header(config):
    return "quicksilver binary: %s (sanitized: %s, timeout factor %.1f, protocol %s)" % (
        qs.BINARY, qs.SANITIZED, qs.SLOW, qs.PROTOCOL)


def pytest_configure(config):
    if not os.access(qs.BINARY, os.X_OK):
        raise pytest.UsageError("hub binary %s not found: build it or set QS_BINARY" % qs.BINARY)
    if qs.PROTOCOL not in ("h1", "https", "h2"):
        raise pytest.UsageError("QS_PROTOCOL must be h1, https or h2, not %r" % qs.PROTOCOL)
    config.addinivalue_line("markers", "h1_only(reason): the test is about HTTP/1.1 itself "
                            "(its bytes, versions, connection handling): skipped when "
                            "QS_PROTOCOL runs the suite over TLS or HTTP/2")


def pytest_collection_modifyitems(config, items):
    if qs.PROTOCOL == "h1":
        return
    for item in items:
        m = item.get_closest_marker("h1_only")
        if m:
            reason = m.args[0] if m.args else m.kwargs.get("reason", "")
            item.add_marker(pytest.mark.skip(reason="HTTP/1.1 only: " + reason))


def _dead_hubs(item):
    hubs = getattr(item, "_qs_hubs", [])
    return [h for h in hubs if not h.stopped and not h.alive()]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """A hub that died during the test (crash, sanitizer abort) fails the test itself."""
    yield
    dead = _dead_hubs(item)
    if dead:
        for h in dead:
            h.stopped = True
        # Raised from the hook wrapper: pytest reports it as the test's failure.
        raise AssertionError("the hub crashed during the test: " +
                             "\n".join(h.crash_report() for h in dead))


@pytest.fixture
def start_hub(request, tmp_path):
    """start_hub(**kw) -> qs.Hub (see qs.Hub.start). Every hub is stopped with SIGTERM at
    the end of the test; it must exit 0 and report no sanitizer finding."""
    hubs = []
    request.node._qs_hubs = hubs

    def start(**kw):
        workdir = tmp_path / ("hub%d" % len(hubs))
        if qs.PROTOCOL != "h1" and not any(k in kw for k in ("tls", "caddyfile", "server_name")):
            # The suite over HTTPS (QS_PROTOCOL=https) or HTTP/2 over TLS (h2): the hub's
            # address is served with the session's test certificate.
            kw["tls"] = session_tls(request)
            kw.setdefault("protocol", "h2" if qs.PROTOCOL == "h2" else "h1")
        hub = qs.Hub.start(workdir, wait=False, **kw)
        hubs.append(hub)
        hub.wait_listening()
        return hub

    yield start

    problems = []
    for hub in hubs:
        if not hub.stopped:
            if not hub.alive():
                problems.append("hub crashed: " + hub.crash_report())
                continue
            rc = hub.stop()
            if rc != 0:
                problems.append("hub did not exit cleanly on SIGTERM (exit code %r): %s"
                                % (rc, hub.stderr()[-3000:]))
        report = hub.sanitizer_report()
        if report:
            problems.append("sanitizer report:\n" + hub.stderr()[-8000:])
    for hub in hubs:
        hub.kill()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def session_tls(request):
    return request.getfixturevalue("tls_files")


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """A test CA and a certificate for 127.0.0.1 and localhost (qs.TLSFiles)."""
    return qs.TLSFiles(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def hub(start_hub):
    """A default hub: HMAC keys, anonymous subscribers allowed."""
    return start_hub()


@pytest.fixture(scope="session")
def keys():
    """Asymmetric key pairs for every algorithm family, with PEM public keys."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    def pem(public_key):
        return public_key.public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    out = {}
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for bits in (256, 384, 512):
        out["RS%d" % bits] = (rsa_key, pem(rsa_key.public_key()), rsa_other)
        out["PS%d" % bits] = (rsa_key, pem(rsa_key.public_key()), rsa_other)
    for bits, curve in ((256, ec.SECP256R1), (384, ec.SECP384R1), (512, ec.SECP521R1)):
        k = ec.generate_private_key(curve())
        other = ec.generate_private_key(curve())
        out["ES%d" % bits] = (k, pem(k.public_key()), other)
    ed = ed25519.Ed25519PrivateKey.generate()
    out["EdDSA"] = (ed, pem(ed.public_key()), ed25519.Ed25519PrivateKey.generate())
    return out
