"""What the Kafka and Pulsar test brokers (kafka_broker.py, pulsar_broker.py) share: a JVM
whose jars Maven resolves once into a cache folder, run on kernel-chosen loopback ports, and
stopped, killed or kept running until a signal in the same way.
"""

import fcntl
import shutil
import signal
import socket
import subprocess
import time

JAVA = shutil.which("java")
MVN = shutil.which("mvn")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available(libs):
    """None when a broker whose jars go to the folder libs can be run here, else why not."""
    if not JAVA:
        return "java is not installed"
    if not MVN and not (libs / ".complete").exists():
        return "maven is not installed (needed once, to fetch the broker's jars)"
    return None


def resolve_jars(cache, libs, pom, mvn_options=(), timeout=900):
    """The folder libs (in cache) filled once with the runtime jars of pom by Maven, under
    a lock so that two runs never fill it at the same time."""
    done = libs / ".complete"
    if done.exists():
        return libs
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(libs, ignore_errors=True)
            subprocess.run([MVN, "-q", "-B"] + list(mvn_options) + [
                            "-f", str(pom), "-Dmaven.repo.local=" + str(cache / "m2"),
                            "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:"
                            "copy-dependencies", "-DincludeScope=runtime",
                            "-DoutputDirectory=" + str(libs)],
                           check=True, timeout=timeout, stdin=subprocess.DEVNULL)
            done.write_text("ok\n")
    return libs


class Process:
    """The broker's JVM: self.proc (Popen), self.log (its open log file), self.dir."""

    proc = None
    log = None

    def tail(self, n=3000):
        out = ""
        for name in ("stdout.log", "broker.log"):
            p = self.dir / name
            if p.exists():
                out += p.read_text(errors="replace")[-n:]
        return out

    def kill(self):
        """SIGKILL: the broker dies without flushing anything of its own."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        if self.log:
            self.log.close()
            self.log = None

    def stop(self, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


def run_until_signalled(broker, address):
    """For the benchmarks: starts broker, prints address(broker), and stops the broker on
    SIGTERM or SIGINT (or when it dies)."""
    broker.start()
    print(address(broker), flush=True)
    done = []
    signal.signal(signal.SIGTERM, lambda *_: done.append(1))
    signal.signal(signal.SIGINT, lambda *_: done.append(1))
    try:
        while not done and broker.proc.poll() is None:
            time.sleep(0.2)
    finally:
        broker.stop()
