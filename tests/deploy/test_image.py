"""The container image alone: how it is built (user, ports, volume, health check, labels),
then a hub from it: publish and subscribe, SIGTERM drains and exits 0, and the data volume
keeps the history across containers."""

import json
import time

import pytest

import hub
from conftest import FIGURES
from hub import podman

NAME = "qs-deploy-hub"
VOLUME = "qs-deploy-data"
TOPIC = "https://example.com/books/1"
DRAIN = {"GLOBAL_OPTIONS": "shutdown_delay 2s\ngrace_period 2s\nlog {\n\tformat json\n}"}


@pytest.fixture
def volume():
    hub.remove(NAME)
    podman("volume", "rm", "-f", VOLUME, check=False)
    podman("volume", "create", VOLUME)
    yield VOLUME
    hub.remove(NAME)
    podman("volume", "rm", "-f", VOLUME, check=False)


def test_image_configuration():
    image = json.loads(podman("image", "inspect", hub.IMAGE).stdout)[0]
    cfg = image["Config"]
    assert cfg["User"] == "10001:10001"
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "443/tcp"}
    assert "/data" in cfg["Volumes"]
    env = dict(e.split("=", 1) for e in cfg["Env"])
    assert env["XDG_DATA_HOME"] == "/data" and env["SERVER_NAME"] == ":80"
    assert cfg["Cmd"][:4] == ["mercure", "run", "--config", "/etc/caddy/Caddyfile"]
    # (kept in the docker format only: `podman build --format docker`)
    assert image["Healthcheck"]["Test"][:3] == ["CMD", "mercure", "healthcheck"]
    labels = cfg["Labels"]
    for k in ("title", "description", "version", "revision", "created", "licenses"):
        assert labels.get("org.opencontainers.image." + k), k
    size = int(podman("image", "inspect", "--format", "{{.Size}}", hub.IMAGE).stdout)
    base = int(podman("image", "inspect", "--format", "{{.Size}}",
                      "docker.io/library/debian:bookworm-slim").stdout)
    FIGURES["image size (base)"] = "%.1f MB (%.1f MB)" % (size / 1e6, base / 1e6)
    # Only runtime libraries: no compiler, no headers.
    p = podman("run", "--rm", "--pull=never", "--entrypoint", "sh", hub.IMAGE, "-c",
               "command -v cc gcc cmake; ls /usr/include 2>/dev/null | head -1; "
               "mercure version", check=False)
    assert p.stdout.strip().startswith("Quicksilver mercure"), p.stdout + p.stderr


def test_publish_subscribe_drain_and_volume(volume):
    port = hub.free_port()
    t0 = time.monotonic()
    hub.run_hub(NAME, port, env=DRAIN, volume=volume)
    ready = hub.wait_ready(port)
    FIGURES["container start (podman run to ready)"] = "%.2f s" % (ready - t0)

    assert podman("exec", NAME, "id", "-u").stdout.strip() == "10001"
    assert podman("healthcheck", "run", NAME, check=False).returncode == 0
    # Read-only root file system: only /data (and podman's /tmp) can be written.
    assert podman("exec", NAME, "touch", "/etc/x", check=False).returncode != 0

    with hub.Stream(port, TOPIC) as s:
        ids = [hub.publish(port, TOPIC, "update %d" % i) for i in range(3)]
        got = [s.next_event() for _ in ids]
        assert [e["id"] for e in got] == ids
        assert [e["data"] for e in got] == ["update 0", "update 1", "update 2"]

        # SIGTERM: not ready at once but serving for shutdown_delay, then the stream ends
        # (with a retry hint) within grace_period and the process exits 0.
        t_term = time.monotonic()
        podman("kill", "--signal", "TERM", NAME)
        while hub.health(port) != 503:
            assert time.monotonic() - t_term < 1.5, "still ready after SIGTERM"
            time.sleep(0.02)
        t_not_ready = time.monotonic()
        late = hub.publish(port, TOPIC, "during the delay")
        assert s.next_event()["id"] == late
        assert s.next_event(timeout=10) is None
        t_end = time.monotonic()
        assert s.retry is not None, "no retry hint before the end of the stream"
    assert podman("wait", NAME, timeout=30).stdout.strip() == "0"
    t_exit = time.monotonic()
    assert hub.exit_code(NAME) == 0
    out = hub.logs(NAME)
    assert '"msg":"stopped"' in out or "stopped" in out
    FIGURES["image drain (shutdown_delay 2s, grace_period 2s)"] = (
        "not ready after %.2f s, stream ended at %.2f s, exited at %.2f s"
        % (t_not_ready - t_term, t_end - t_term, t_exit - t_term))

    # A new container on the same volume: the history is there.
    hub.remove(NAME)
    hub.run_hub(NAME, port, env=DRAIN, volume=volume)
    hub.wait_ready(port)
    assert "4 updates kept" in hub.logs(NAME)
    with hub.Stream(port, TOPIC, last_event_id=ids[0]) as s:
        replay = [s.next_event() for _ in range(3)]
    assert [e["id"] for e in replay] == ids[1:] + [late]
    t = time.monotonic()
    podman("stop", "-t", "30", NAME, timeout=60)
    assert hub.exit_code(NAME) == 0
    FIGURES["image stop with no stream open (shutdown_delay 2s)"] = "%.2f s" % (time.monotonic() - t)
