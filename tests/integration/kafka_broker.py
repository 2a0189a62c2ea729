"""A real Apache Kafka broker (KRaft mode: broker and controller in one JVM) for the Kafka
tests and benchmark, on kernel-chosen loopback ports in a folder of its own.

The broker's jars are resolved from Maven Central by Maven (tests/kafka/pom.xml) into a
cache folder kept between runs (.cache/kafka at the repository's root, or $QS_KAFKA_CACHE).
The broker listens on PLAINTEXT, and optionally on SSL (a PEM key and certificate) and on
SASL_PLAINTEXT (PLAIN users; SCRAM-SHA-256 and SCRAM-SHA-512 users, whose credentials are
written into the metadata log when the storage is formatted). It can be killed with SIGKILL
and started again on the same log folder and ports. scram_env() gives hubs a librdkafka able
to log in with SCRAM (from a PyPI wheel, into the same cache folder, when the system's is
too old).

    python3 tests/integration/kafka_broker.py run DIR   # for bench/kafka.sh: prints the
                                                        # PLAINTEXT address, runs until
                                                        # SIGTERM, then stops the broker
"""

import ctypes
import fcntl
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from java_broker import JAVA, Process, free_port, run_until_signalled
import java_broker

KAFKA_VERSION = "4.4.0"
REPO = Path(__file__).resolve().parents[2]
POM = REPO / "tests" / "kafka" / "pom.xml"
CACHE = Path(os.environ.get("QS_KAFKA_CACHE") or REPO / ".cache" / "kafka")
LIBS = CACHE / ("libs-" + KAFKA_VERSION)

# SASL users of the SASL_PLAINTEXT listener (PLAIN, from the JAAS line).
PLAIN_USERS = {"admin": "admin-secret", "alice": "alice-secret"}
# SCRAM users of the same listener, with credentials for each of SCRAM_MECHANISMS. KRaft
# keeps SCRAM credentials in the metadata log: they are added when the storage is formatted
# (`kafka-storage format --add-scram`), so a log folder formatted without them has none.
# Passwords differ from the PLAIN ones, so that a hub authenticated with them proves SCRAM.
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
SCRAM_USERS = {"carol": "carol-scram-secret", "dave": "dave-scram-secret"}

# librdkafka before 2.6.1 repeats its own nonce in the final message of a SCRAM login, which
# Kafka brokers 4.0 and later refuse whatever the password (librdkafka's issue 4895; Debian
# 12 has 2.0.2). The SCRAM tests then run the hub with the librdkafka that this release of
# the confluent-kafka wheel bundles (a self-contained librdkafka 2.16.0 of the same ABI).
SCRAM_NONCE_FIXED = 0x02060100  # 2.6.1, as rd_kafka_version() gives it
LIBRDKAFKA_WHEEL = "confluent-kafka==2.16.1"


def available():
    """None when a broker can be run here, else why not."""
    return java_broker.available(LIBS)


def admin_binary():
    """The kafka_admin helper of the release build (build/), else the one beside the hub
    (QS_BINARY's folder): a sanitized helper would report librdkafka's own races."""
    hub = os.environ.get("QS_BINARY")
    for d in [REPO / "build"] + ([Path(hub).parent] if hub else []):
        if (d / "kafka_admin").exists():
            return str(d / "kafka_admin")
    raise RuntimeError("kafka_admin not found: build the project first")


def admin(brokers, *args, timeout=60, check=True):
    p = subprocess.run([admin_binary(), brokers] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError("kafka_admin %s: %s" % (" ".join(map(str, args)), p.stderr.strip()))
    return p


def resolve_jars():
    """The folder of the broker's jars, resolved once with Maven."""
    return java_broker.resolve_jars(CACHE, LIBS, POM)


def librdkafka_version(path="librdkafka.so.1"):
    """rd_kafka_version() of a librdkafka (by default the one the hub loads), or None."""
    try:
        lib = ctypes.CDLL(str(path))
    except OSError:
        return None
    lib.rd_kafka_version.restype = ctypes.c_int
    return lib.rd_kafka_version()


def scram_env():
    """The environment in which the hub's librdkafka can log in to this broker with SCRAM:
    none needed when it is 2.6.1 or later, else LD_LIBRARY_PATH to the librdkafka.so.1 of
    LIBRDKAFKA_WHEEL, fetched once with pip into the cache (under its lock). RuntimeError
    when no such librdkafka can be had."""
    if (librdkafka_version() or 0) >= SCRAM_NONCE_FIXED:
        return {}
    d = CACHE / LIBRDKAFKA_WHEEL.replace("==", "-")
    lib = d / "librdkafka.so.1"
    if not lib.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with open(CACHE / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not lib.exists():
                _fetch_librdkafka(d, lib)
    version = librdkafka_version(lib)
    if (version or 0) < SCRAM_NONCE_FIXED:
        raise RuntimeError("%s holds librdkafka %#x, not 2.6.1 or later" % (lib, version or 0))
    path = os.environ.get("LD_LIBRARY_PATH")
    return {"LD_LIBRARY_PATH": str(d) + (":" + path if path else "")}


def _fetch_librdkafka(d, lib):
    wheels = d.parent / (d.name + ".wheel")
    shutil.rmtree(wheels, ignore_errors=True)
    p = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--only-binary", ":all:", "-d", str(wheels), LIBRDKAFKA_WHEEL],
                       capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    found = sorted(wheels.glob("*.whl")) if p.returncode == 0 else []
    if not found:
        raise RuntimeError("pip download %s failed: %s" % (LIBRDKAFKA_WHEEL,
                                                         (p.stdout + p.stderr).strip()[-2000:]))
    with zipfile.ZipFile(found[0]) as z:
        names = [n for n in z.namelist()
                 if Path(n).name.startswith("librdkafka") and ".so" in Path(n).name]
        if not names:
            raise RuntimeError("no librdkafka in " + found[0].name)
        d.mkdir(parents=True, exist_ok=True)
        part = d / "librdkafka.so.1.part"
        part.write_bytes(z.read(names[0]))
        part.rename(lib)  # the name the hub asks for; its own soname does not matter
    shutil.rmtree(wheels, ignore_errors=True)


class Broker(Process):
    """One broker+controller. ssl: (pem with key and certificate) to add an SSL listener;
    sasl: True to add a SASL_PLAINTEXT listener (PLAIN_USERS, and SCRAM_USERS for each of
    SCRAM_MECHANISMS)."""

    def __init__(self, workdir, ssl=None, sasl=False, flush_every_message=False, quick_jit=True):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.controller_port = free_port()
        self.ssl_port = free_port() if ssl else None
        self.sasl_port = free_port() if sasl else None
        self.ssl = ssl
        self.sasl = sasl
        self.flush = flush_every_message
        self.quick_jit = quick_jit  # C1 only: starts sooner, runs slower (tests, not benches)
        self.proc = None
        self.log = None

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def _properties(self):
        listeners = ["PLAINTEXT://127.0.0.1:%d" % self.port]
        if self.ssl:
            listeners.append("SSL://127.0.0.1:%d" % self.ssl_port)
        if self.sasl:
            listeners.append("SASL_PLAINTEXT://127.0.0.1:%d" % self.sasl_port)
        lines = [
            "process.roles=broker,controller",
            "node.id=1",
            "controller.quorum.voters=1@127.0.0.1:%d" % self.controller_port,
            "controller.listener.names=CONTROLLER",
            "listeners=" + ",".join(listeners + ["CONTROLLER://127.0.0.1:%d"
                                                 % self.controller_port]),
            "advertised.listeners=" + ",".join(listeners),
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,"
            "SASL_PLAINTEXT:SASL_PLAINTEXT",
            "log.dirs=" + str(self.dir / "logs"),
            "num.partitions=1",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.cleaner.backoff.ms=1000",
            "log.retention.check.interval.ms=1000",
        ]
        if self.flush:
            lines.append("log.flush.interval.messages=1")
        if self.ssl:
            lines += ["ssl.keystore.type=PEM", "ssl.keystore.location=" + str(self.ssl),
                      "ssl.client.auth=none"]
        if self.sasl:
            plain = " ".join('user_%s="%s"' % kv for kv in PLAIN_USERS.items())
            lines += [
                "sasl.enabled.mechanisms=" + ",".join(("PLAIN",) + SCRAM_MECHANISMS),
                "listener.name.sasl_plaintext.plain.sasl.jaas.config="
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                'username="admin" password="%s" %s;' % (PLAIN_USERS["admin"], plain),
            ]
            # The SCRAM login modules need no user of their own: the brokers talk to each
            # other over PLAINTEXT. Clients are checked against the metadata log's credentials.
            lines += ["listener.name.sasl_plaintext.%s.sasl.jaas.config="
                      "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                      % m.lower() for m in SCRAM_MECHANISMS]
        return "\n".join(lines) + "\n"

    def _java(self, libs, main, *args):
        log4j = self.dir / "log4j2.properties"
        jit = ["-XX:TieredStopAtLevel=1"] if self.quick_jit else []
        return [JAVA, "-Xms256m", "-Xmx512m", "-XX:+UseG1GC"] + jit + [
                "-Djava.awt.headless=true", "-Dlog4j2.configurationFile=" + str(log4j),
                "-Dkafka.logs.dir=" + str(self.dir), "-cp", str(libs) + "/*", main] + list(args)

    def start(self, timeout=120):
        libs = resolve_jars()
        props = self.dir / "server.properties"
        props.write_text(self._properties())
        (self.dir / "log4j2.properties").write_text(
            "status = error\n"
            "appender.f.type = File\nappender.f.name = F\n"
            "appender.f.fileName = %s\n" % (self.dir / "broker.log") +
            "appender.f.layout.type = PatternLayout\n"
            "appender.f.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\nrootLogger.appenderRef.f.ref = F\n")
        if not (self.dir / "logs" / "meta.properties").exists():
            uuid = subprocess.run(self._java(libs, "kafka.tools.StorageTool", "random-uuid"),
                                  capture_output=True, text=True, check=True,
                                  timeout=120).stdout.strip().splitlines()[-1]
            fmt = ["format", "-t", uuid, "-c", str(props)]
            if self.sasl:
                for m in SCRAM_MECHANISMS:
                    for user, password in SCRAM_USERS.items():
                        fmt += ["--add-scram", "%s=[name=%s,password=%s]" % (m, user, password)]
            p = subprocess.run(self._java(libs, "kafka.tools.StorageTool", *fmt),
                               capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                raise RuntimeError("formatting the broker's storage failed:\n" +
                                   (p.stdout + p.stderr)[-3000:])
        self.log = open(self.dir / "stdout.log", "ab")
        deadline = time.monotonic() + timeout
        clashes = self._clashes()
        self._spawn(libs, props)
        while True:
            if self.proc.poll() is not None:
                # Restarted on the same ports, the broker may find one of them taken for a
                # moment: they are kernel-chosen (ephemeral) ports, and the hubs' reconnection
                # attempts take ephemeral ports as their source. Such a clash is transient.
                if self._clashes() > clashes and time.monotonic() < deadline:
                    clashes = self._clashes()
                    time.sleep(1)
                    self._spawn(libs, props)
                    continue
                raise RuntimeError("the Kafka broker exited:\n" + self.tail())
            if admin(self.addr, "ready", 2000, timeout=30, check=False).returncode == 0:
                return self
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("the Kafka broker did not become ready:\n" + self.tail())
            time.sleep(0.3)

    def _clashes(self):
        return self.tail(1 << 30).count("Address already in use")

    def _spawn(self, libs, props):
        self.proc = subprocess.Popen(self._java(libs, "kafka.Kafka", str(props)),
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)


def _run(workdir):
    run_until_signalled(Broker(workdir, quick_jit=False), lambda b: b.addr)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "run":
        _run(sys.argv[2])
    else:
        sys.exit("usage: kafka_broker.py run DIR")
