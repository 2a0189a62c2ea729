"""The Debian package and its systemd unit: installed with apt in a container of the local
Debian base running systemd, the unit becomes active as a dynamic user with its state
directory, the hub answers, reload sends SIGHUP, a crash restarts it, `systemctl stop`
drains, `systemd-analyze verify` passes and `systemd-analyze security` scores it OK (at
most 2.5); purging removes keys and data. `cmake --install` lays out the same files."""

import os
import re
import subprocess
import time

import pytest

import hub
from conftest import FIGURES
from hub import podman

NAME = "qs-deploy-systemd"
UNIT = "quicksilver.service"
TOPIC = "https://example.com/service"
DEB = os.environ.get("QS_DEPLOY_DEB", "")
PKG_BUILD = os.environ.get("QS_DEPLOY_PKG_BUILD", "")


def sh(cmd, check=True, timeout=120):
    return podman("exec", NAME, "sh", "-c", cmd, check=check, timeout=timeout)


def wait_for(what, predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.fixture(scope="module")
def machine():
    assert DEB and os.path.exists(DEB), "QS_DEPLOY_DEB must name the package"
    hub.remove(NAME)
    port = hub.free_port()
    try:
        podman("run", "-d", "--pull=never", "--name", NAME, "--systemd=always",
               "--cap-add", "SYS_ADMIN", "-p", "%s:%d:80" % (hub.HOST, port),
               hub.HELPER_IMAGE, "/sbin/init")
        wait_for("systemd did not start", lambda: sh(
            "systemctl is-system-running", check=False).stdout.strip()
            in ("running", "degraded"), 60)
        podman("cp", DEB, NAME + ":/tmp/quicksilver.deb")
        t = time.monotonic()
        # apt's lists again: the helper image may be older than the mirror's packages.
        p = sh("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y "
               "--no-install-recommends /tmp/quicksilver.deb", check=False, timeout=300)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        FIGURES["package: apt-get update and install (with its libraries)"] = "%.1f s" % (
            time.monotonic() - t)
        yield port
    finally:
        if os.environ.get("QS_DEPLOY_KEEP"):
            return
        hub.remove(NAME)


def keys():
    env = sh("cat /etc/quicksilver/quicksilver.env").stdout
    found = dict(re.findall(r"^(MERCURE_\w+_JWT_KEY)=(\S+)$", env, re.M))
    return found["MERCURE_PUBLISHER_JWT_KEY"], found["MERCURE_SUBSCRIBER_JWT_KEY"]


def main_pid():
    return int(sh("systemctl show -p MainPID --value " + UNIT).stdout)


def test_unit_active_and_hub_answers(machine):
    port = machine
    wait_for("the unit is not active", lambda: sh(
        "systemctl is-active " + UNIT, check=False).stdout.strip() == "active")
    hub.wait_ready(port)
    assert sh("stat -c %a /etc/quicksilver/quicksilver.env").stdout.strip() == "600"
    # A user of its own (DynamicUser), not root; its store in the state directory.
    uid = sh("stat -c %%u /proc/%d" % main_pid()).stdout.strip()
    assert uid.isdigit() and uid != "0", uid
    assert sh("test -f /var/lib/quicksilver/mercure.db", check=False).returncode == 0
    pub, sub = keys()
    with hub.Stream(port, TOPIC, token=hub.jwt({"mercure": {"subscribe": ["*"]}}, sub)) as s:
        uid = hub.publish(port, TOPIC, "through the package",
                          token=hub.jwt({"mercure": {"publish": ["*"]}}, pub))
        assert s.next_event()["id"] == uid


def test_systemd_analyze(machine):
    p = sh("systemd-analyze verify " + UNIT, check=False)
    assert p.returncode == 0 and not p.stderr.strip(), p.stdout + p.stderr
    p = sh("systemd-analyze security --no-pager --threshold=25 " + UNIT, check=False)
    m = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", p.stdout)
    assert m, p.stdout + p.stderr
    score = float(m.group(1))
    FIGURES["systemd-analyze security"] = "%s %s" % (m.group(1), m.group(2))
    assert score <= 2.5 and p.returncode == 0, p.stdout


def test_reload_and_restart_on_failure(machine):
    pid = main_pid()
    sh("systemctl reload " + UNIT)
    wait_for("no SIGHUP in the journal", lambda: "received SIGHUP" in sh(
        "journalctl -u %s --no-pager -o cat" % UNIT).stdout, 10)
    assert main_pid() == pid
    sh("kill -KILL %d" % pid)
    wait_for("not restarted after a crash", lambda: main_pid() not in (0, pid) and sh(
        "systemctl is-active " + UNIT, check=False).stdout.strip() == "active", 30)
    hub.wait_ready(machine)


def test_stop_drains(machine):
    port = machine
    pub, sub = keys()
    hub.wait_ready(port)
    with hub.Stream(port, TOPIC, token=hub.jwt({"mercure": {"subscribe": ["*"]}}, sub)) as s:
        t = time.monotonic()
        stop = subprocess.Popen(["podman", "exec", NAME, "systemctl", "stop", UNIT])
        assert s.next_event(timeout=15) is None  # ended cleanly, with the final chunk
        t_end = time.monotonic() - t
        assert s.retry is not None
        assert stop.wait(60) == 0
        t_stop = time.monotonic() - t
    assert sh("systemctl is-active " + UNIT, check=False).stdout.strip() == "inactive"
    result = sh("systemctl show -p Result -p ExecMainStatus " + UNIT).stdout
    assert "Result=success" in result and "ExecMainStatus=0" in result, result
    journal = sh("journalctl -u %s --no-pager -o cat" % UNIT).stdout
    assert "stopped" in journal
    FIGURES["systemctl stop with one stream (grace_period 5s)"] = (
        "stream ended at %.2f s, stop returned at %.2f s" % (t_end, t_stop))


def test_purge(machine):
    sh("DEBIAN_FRONTEND=noninteractive apt-get purge -y quicksilver", timeout=120)
    for path in ("/usr/bin/mercure", "/etc/quicksilver", "/var/lib/quicksilver",
                 "/var/lib/private/quicksilver", "/lib/systemd/system/" + UNIT):
        assert sh("test -e " + path, check=False).returncode != 0, path


def test_cmake_install(tmp_path):
    """`cmake --install` of the packaging build lays out the binary, the unit (pointing at
    the binary and the configuration where they are installed) and the Caddyfile."""
    assert PKG_BUILD, "QS_DEPLOY_PKG_BUILD must name the packaging build"
    dest = tmp_path / "root"
    p = subprocess.run(["cmake", "--install", PKG_BUILD], env=dict(os.environ, DESTDIR=str(dest)),
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    files = sorted(str(f.relative_to(dest)) for f in dest.rglob("*") if f.is_file())
    assert files == ["etc/quicksilver/Caddyfile", "usr/bin/mercure",
                     "usr/lib/systemd/system/quicksilver.service"], files
    unit = (dest / "usr/lib/systemd/system/quicksilver.service").read_text()
    assert "ExecStart=/usr/bin/mercure run --config /etc/quicksilver/Caddyfile" in unit
    assert "EnvironmentFile=-/etc/quicksilver/quicksilver.env" in unit
