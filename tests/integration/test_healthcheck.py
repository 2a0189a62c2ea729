"""`mercure healthcheck`: the hub asks itself for its health check (container images have
no curl), finding the address in the configuration as `mercure run` does."""

import signal
import socket

import qs
from qs import T


def free_port():
    with socket.socket() as s:
        s.bind((qs.HOST, 0))
        return s.getsockname()[1]


def hub_env(port, scheme=""):
    return {"SERVER_NAME": "%s127.0.0.1:%d" % (scheme, port),
            "MERCURE_PUBLISHER_JWT_KEY": qs.PUB_KEY,
            "MERCURE_SUBSCRIBER_JWT_KEY": qs.SUB_KEY}


def healthcheck(tmp_path, env, *args):
    return qs.run_mercure(["healthcheck", *args], tmp_path / "check", env=env)


def test_healthcheck_live_and_ready_then_not_ready_while_draining(start_hub, tmp_path):
    port = free_port()
    env = hub_env(port)
    hub = start_hub(server_name=env["SERVER_NAME"],
                    env={"GLOBAL_OPTIONS": "shutdown_delay 3s"})
    p = healthcheck(tmp_path, env)
    assert p.returncode == 0, p.stderr
    assert "/mercure/health/live" in p.stdout and "200" in p.stdout
    p = healthcheck(tmp_path, env, "--ready")
    assert p.returncode == 0, p.stderr
    hub.signal(signal.SIGTERM)
    qs.wait_until(lambda: healthcheck(tmp_path, env, "--ready").returncode == 1, T(2),
                  what="not ready while draining")
    assert healthcheck(tmp_path, env).returncode == 0  # still alive during the delay
    hub.stopped = True
    assert hub.wait_exit(T(15)) == 0


def test_healthcheck_fails_when_nothing_listens(tmp_path):
    p = healthcheck(tmp_path, hub_env(free_port()))
    assert p.returncode == 1
    assert "cannot connect" in p.stderr


def test_healthcheck_over_tls(start_hub, tmp_path):
    port = free_port()
    env = dict(hub_env(port, "https://"), CADDY_SERVER_EXTRA_DIRECTIVES="tls internal",
               XDG_DATA_HOME=str(tmp_path / "data"))
    start_hub(server_name=env["SERVER_NAME"], env=env)
    p = qs.run_mercure(["healthcheck"], tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "https://127.0.0.1:%d/mercure/health/live: HTTP/1.1 200 OK\n" % port


def test_healthcheck_bad_configuration_and_option(tmp_path):
    p = healthcheck(tmp_path, {"SERVER_NAME": ":1"})  # no publisher key
    assert p.returncode == 1 and "configuration error" in p.stderr
    p = healthcheck(tmp_path, hub_env(free_port()), "--nope")
    assert p.returncode == 2
