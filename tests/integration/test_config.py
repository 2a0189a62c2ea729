"""Configuration errors at startup, `mercure validate`, `mercure version`, `mercure help`,
Caddyfile loading (./Caddyfile, --config)."""

import subprocess

import pytest

import qs

BASE_ENV = {"SERVER_NAME": "127.0.0.1:0", "MERCURE_PUBLISHER_JWT_KEY": qs.PUB_KEY,
            "MERCURE_SUBSCRIBER_JWT_KEY": qs.SUB_KEY}


def _run_fails(tmp_path, env, *needles, args=("run",)):
    full = dict(BASE_ENV)
    full.update(env)
    p = qs.run_mercure(args, tmp_path, env=full)
    assert p.returncode != 0, (p.returncode, p.stderr)
    assert "listening" not in p.stderr
    for n in needles:
        assert n in p.stderr, (n, p.stderr)
    assert not qs.sanitizer_lines(p.stderr), p.stderr
    return p


def test_unknown_directive_in_extra_directives(tmp_path):
    _run_fails(tmp_path, {"MERCURE_EXTRA_DIRECTIVES": "anonymous\nfoo_bar 1"},
               "MERCURE_EXTRA_DIRECTIVES", ":2", "foo_bar")


def test_bad_duration_value(tmp_path):
    _run_fails(tmp_path, {"MERCURE_EXTRA_DIRECTIVES": "anonymous\nheartbeat 4Os"},
               "MERCURE_EXTRA_DIRECTIVES", ":2", "heartbeat", "4Os")


def test_bad_duration_with_space(tmp_path):
    _run_fails(tmp_path, {"MERCURE_EXTRA_DIRECTIVES": "anonymous\nheartbeat 4O s"},
               "MERCURE_EXTRA_DIRECTIVES", ":2", "heartbeat", "4O")


@pytest.mark.parametrize("directive,value", [
    ("write_timeout", "ten"),
    ("dispatch_timeout", "-5s"),
    ("max_request_body_size", "lots"),
    ("subscriber_queue_size", "0"),
    ("protocol_version_compatibility", "6"),
    ("workers", "many"),
])
def test_bad_directive_values(tmp_path, directive, value):
    _run_fails(tmp_path, {"MERCURE_EXTRA_DIRECTIVES": "anonymous\n\n%s %s" % (directive, value)},
               "MERCURE_EXTRA_DIRECTIVES", ":3", directive, value)


def test_missing_publisher_key(tmp_path):
    _run_fails(tmp_path, {"MERCURE_PUBLISHER_JWT_KEY": None,
                          "MERCURE_EXTRA_DIRECTIVES": "anonymous"}, "publisher")


def test_empty_publisher_key(tmp_path):
    _run_fails(tmp_path, {"MERCURE_PUBLISHER_JWT_KEY": "",
                          "MERCURE_EXTRA_DIRECTIVES": "anonymous"}, "publisher")


def test_missing_subscriber_key_without_anonymous(tmp_path):
    _run_fails(tmp_path, {"MERCURE_SUBSCRIBER_JWT_KEY": None}, "subscriber")


def test_missing_subscriber_key_with_anonymous_is_fine(start_hub):
    hub = start_hub(subscriber_key=None)
    with qs.open_stream(hub, ["urn:x"]) as s:
        qs.publish_ok(hub, ["urn:x"], "x", id="a")
        assert s.next_event().id == "a"


@pytest.mark.parametrize("var,directive", [("MERCURE_PUBLISHER_JWT_ALG", "publisher_jwt"),
                                           ("MERCURE_SUBSCRIBER_JWT_ALG", "subscriber_jwt")])
@pytest.mark.parametrize("alg", ["HS999", "none", "rs256"])
def test_bad_algorithm(tmp_path, var, directive, alg):
    _run_fails(tmp_path, {var: alg}, directive, '"%s"' % alg)


@pytest.mark.parametrize("server_name", ["https://127.0.0.1:0", "https://localhost"])
def test_https_server_name_refused(tmp_path, server_name):
    _run_fails(tmp_path, {"SERVER_NAME": server_name}, "SERVER_NAME", "https", server_name)


@pytest.mark.parametrize("server_name", ["127.0.0.1:notaport", "127.0.0.1:70000"])
def test_bad_server_name_port(tmp_path, server_name):
    _run_fails(tmp_path, {"SERVER_NAME": server_name}, "SERVER_NAME")


def test_http_scheme_server_name_accepted(start_hub):
    hub = start_hub(server_name="http://127.0.0.1:0")
    assert hub.request("GET", "/healthz").status == 200


def test_license_env_accepted(start_hub):
    hub = start_hub(env={"MERCURE_LICENSE": "some-license-key"})
    assert hub.request("GET", "/healthz").status == 200


def test_transport_url_local(start_hub):
    hub = start_hub(env={"MERCURE_TRANSPORT_URL": "local://local"})
    assert hub.transport == "local"
    with qs.open_stream(hub, ["urn:x"]) as s:
        qs.publish_ok(hub, ["urn:x"], "x", id="t")
        assert s.next_event().id == "t"


def test_bad_transport_url(tmp_path):
    _run_fails(tmp_path, {"MERCURE_TRANSPORT_URL": "nosuch://x"}, "nosuch")


GOOD_CADDYFILE = """{
\t# global options
}

127.0.0.1:0 {
\tmercure {
\t\tpublisher_jwt %s
\t\tsubscriber_jwt %s
\t\tanonymous
\t\theartbeat 30s
\t}
}
""" % (qs.PUB_KEY, qs.SUB_KEY)


def test_validate_good_config(tmp_path):
    cf = tmp_path / "good.Caddyfile"
    cf.write_text(GOOD_CADDYFILE)
    p = qs.run_mercure(["validate", "--config", str(cf)], tmp_path)
    assert p.returncode == 0, p.stderr
    assert not qs.sanitizer_lines(p.stderr)


def test_validate_bad_config(tmp_path):
    cf = tmp_path / "bad.Caddyfile"
    cf.write_text(GOOD_CADDYFILE.replace("heartbeat 30s", "heartbeat nope"))
    p = qs.run_mercure(["validate", "--config", str(cf)], tmp_path)
    assert p.returncode != 0
    assert "bad.Caddyfile" in p.stderr and "heartbeat" in p.stderr and "nope" in p.stderr
    # The line of the directive (line 10 of the file).
    assert ":10" in p.stderr, p.stderr


def test_validate_bad_pem(tmp_path):
    cf = tmp_path / "pem.Caddyfile"
    cf.write_text(GOOD_CADDYFILE.replace("publisher_jwt %s" % qs.PUB_KEY,
                                         "publisher_jwt not-a-pem RS256"))
    p = qs.run_mercure(["validate", "--config", str(cf)], tmp_path)
    assert p.returncode != 0
    assert "publisher_jwt" in p.stderr


def test_validate_missing_file(tmp_path):
    p = qs.run_mercure(["validate", "--config", str(tmp_path / "nope")], tmp_path)
    assert p.returncode != 0
    assert "nope" in p.stderr


def test_run_with_config_file(start_hub):
    hub = start_hub(caddyfile=GOOD_CADDYFILE, env={"SERVER_NAME": None}, anonymous=False,
                    publisher_key=None, subscriber_key=None)
    with qs.open_stream(hub, ["urn:x"]) as s:
        qs.publish_ok(hub, ["urn:x"], "x", id="cf")
        assert s.next_event().id == "cf"


def test_run_reads_caddyfile_in_cwd(start_hub, tmp_path):
    workdir = tmp_path / "hub0"
    workdir.mkdir()
    (workdir / "Caddyfile").write_text(GOOD_CADDYFILE.replace("anonymous", "anonymous\n\t\tcors_origins https://cwd.test"))
    hub = start_hub(env={"SERVER_NAME": None}, anonymous=False, publisher_key=None,
                    subscriber_key=None)
    r = hub.request("OPTIONS", qs.HUB_PATH, [("Origin", "https://cwd.test"),
                                             ("Access-Control-Request-Method", "GET")])
    assert r.header("Access-Control-Allow-Origin") == "https://cwd.test"


def test_unknown_directive_in_caddyfile(tmp_path):
    cf = tmp_path / "x.Caddyfile"
    cf.write_text(GOOD_CADDYFILE.replace("anonymous", "anonymous\n\t\tbogus_directive yes"))
    p = qs.run_mercure(["run", "--config", str(cf)], tmp_path, env={})
    assert p.returncode != 0
    assert "x.Caddyfile" in p.stderr and "bogus_directive" in p.stderr and ":10" in p.stderr


def test_version(tmp_path):
    p = qs.run_mercure(["version"], tmp_path)
    assert p.returncode == 0
    assert "Quicksilver" in p.stdout and "0.1.0" in p.stdout


def test_help(tmp_path):
    p = qs.run_mercure(["help"], tmp_path)
    assert p.returncode == 0
    for word in ("run", "validate", "version"):
        assert word in p.stdout


def test_unknown_command(tmp_path):
    p = qs.run_mercure(["frobnicate"], tmp_path)
    assert p.returncode != 0
    assert "frobnicate" in p.stderr


def test_unknown_option(tmp_path):
    p = qs.run_mercure(["run", "--nope"], tmp_path, env=BASE_ENV)
    assert p.returncode != 0
    assert "--nope" in p.stderr


def test_port_in_use(start_hub, tmp_path):
    hub = start_hub()
    try:
        p = qs.run_mercure(["run"], tmp_path / "second",
                           env=dict(BASE_ENV, SERVER_NAME="127.0.0.1:%d" % hub.port,
                                    MERCURE_EXTRA_DIRECTIVES="anonymous"), timeout=qs.T(3))
    except subprocess.TimeoutExpired as e:
        pytest.fail("a second hub started on port %d, already used by a running hub: %s"
                    % (hub.port, (e.stderr or b"")[-300:]))
    assert p.returncode != 0
    assert str(hub.port) in p.stderr or "in use" in p.stderr.lower(), p.stderr


@pytest.mark.parametrize("workers", [1, 3])
def test_workers_directive_reported(start_hub, workers):
    hub = start_hub(extra=["workers %d" % workers])
    assert hub.workers == workers
