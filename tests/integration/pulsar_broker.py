"""A real Apache Pulsar broker (standalone mode: broker, BookKeeper and a RocksDB metadata
store in one JVM) for the Pulsar tests and benchmark, on kernel-chosen loopback ports in a
folder of its own.

The broker's jars are resolved from Maven Central by Maven (tests/pulsar/pom.xml, with
tests/pulsar/settings.xml sending every repository Pulsar's POMs name to Maven Central)
into a cache folder kept between runs (.cache/pulsar at the repository's root, or
$QS_PULSAR_CACHE). The broker listens on the binary protocol (plain, and optionally TLS
with a PEM key and certificate) and on its HTTP admin port; with token authentication on,
clients without a token still get in (an anonymous role), clients with a wrong one are
refused. It can be killed with SIGKILL and started again on the same folders and ports.

    python3 tests/integration/pulsar_broker.py resolve   # fetch the jars (bootstrap, CI)
    python3 tests/integration/pulsar_broker.py run DIR   # for bench/pulsar.sh: prints the
                                                         # pulsar:// URL, runs until
                                                         # SIGTERM, then stops the broker
"""

import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from java_broker import JAVA, Process, free_port, run_until_signalled
import java_broker

PULSAR_VERSION = "4.0.7"
REPO = Path(__file__).resolve().parents[2]
POM = REPO / "tests" / "pulsar" / "pom.xml"
SETTINGS = REPO / "tests" / "pulsar" / "settings.xml"
CACHE = Path(os.environ.get("QS_PULSAR_CACHE") or REPO / ".cache" / "pulsar")
LIBS = CACHE / ("libs-" + PULSAR_VERSION)

# The secret that signs the broker's tokens (HS256), and its subject.
TOKEN_SECRET = b"quicksilver-tests-pulsar-token-secret-32b"


def available():
    """None when a broker can be run here, else why not."""
    return java_broker.available(LIBS)


def make_token(subject="quicksilver", secret=TOKEN_SECRET):
    """A JWT the broker's token provider accepts (HS256 with its secret key)."""
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": subject}).encode())
    sig = hmac.new(secret, (head + "." + body).encode(), hashlib.sha256).digest()
    return head + "." + body + "." + b64(sig)


def resolve_jars():
    """The folder of the broker's jars, resolved once with Maven (every repository that
    Pulsar's POMs name sent to Maven Central by SETTINGS)."""
    return java_broker.resolve_jars(CACHE, LIBS, POM, mvn_options=("-s", str(SETTINGS)),
                                    timeout=1200)


class Broker(Process):
    """One standalone broker. tls: (certificate PEM, PKCS#8 key PEM), to add a TLS port;
    auth: True to turn token authentication on (TOKEN_SECRET; anonymous clients allowed)."""

    def __init__(self, workdir, tls=None, auth=False):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        ports = self.dir / "ports.json"
        if ports.exists():  # a restart on the same folders keeps its ports
            p = json.loads(ports.read_text())
        else:
            p = {k: free_port() for k in ("broker", "web", "bookie", "tls")}
            ports.write_text(json.dumps(p))
        self.port, self.web_port = p["broker"], p["web"]
        self.bookie_port, self.tls_port = p["bookie"], p["tls"]
        self.tls = tls
        self.auth = auth
        self.proc = None
        self.log = None

    @property
    def url(self):
        return "pulsar://127.0.0.1:%d" % self.port

    @property
    def tls_url(self):
        return "pulsar+ssl://127.0.0.1:%d" % self.tls_port

    @property
    def web(self):
        return "http://127.0.0.1:%d" % self.web_port

    def _conf(self):
        lines = [
            "clusterName=standalone",
            "bindAddress=127.0.0.1",
            "advertisedAddress=127.0.0.1",
            "brokerServicePort=%d" % self.port,
            "webServicePort=%d" % self.web_port,
            "metadataStoreUrl=",
            "managedLedgerDefaultEnsembleSize=1",
            "managedLedgerDefaultWriteQuorum=1",
            "managedLedgerDefaultAckQuorum=1",
            "webSocketServiceEnabled=true",
            "functionsWorkerEnabled=false",
            "brokerDeleteInactiveTopicsEnabled=false",
            "allowAutoTopicCreation=true",
            "allowAutoTopicCreationType=non-partitioned",
            "defaultRetentionTimeInMinutes=-1",
            "defaultRetentionSizeInMB=-1",
            "managedLedgerCacheSizeMB=64",
            "dbStorage_writeCacheMaxSizeMb=32",
            "dbStorage_readAheadCacheMaxSizeMb=32",
            "numIOThreads=2",
            "numHttpServerThreads=4",
            "journalMaxGroupWaitMSec=1",
            # A subscription that caught up is told of new entries at once, not after the
            # default 10 ms check delay (which every delivery across nodes would wait).
            "managedLedgerNewEntriesCheckDelayInMillis=0",
            "systemTopicEnabled=false",
            "topicLevelPoliciesEnabled=false",
            "transactionCoordinatorEnabled=false",
        ]
        if self.tls:
            lines += ["brokerServicePortTls=%d" % self.tls_port,
                      "tlsCertificateFilePath=" + str(self.tls[0]),
                      "tlsKeyFilePath=" + str(self.tls[1]),
                      "tlsRequireTrustedClientCertOnConnect=false"]
        if self.auth:
            secret = base64.b64encode(TOKEN_SECRET).decode()
            lines += ["authenticationEnabled=true",
                      "authenticationProviders=org.apache.pulsar.broker.authentication."
                      "AuthenticationProviderToken",
                      "tokenSecretKey=data:;base64," + secret,
                      "anonymousUserRole=anonymous",
                      "authorizationEnabled=false",
                      "brokerClientAuthenticationPlugin=org.apache.pulsar.client.impl.auth."
                      "AuthenticationToken",
                      "brokerClientAuthenticationParameters=token:" + make_token("broker")]
        # Extra settings (bench/pulsar.sh runs, e.g. journalSyncData=false), one per ";".
        lines += [x for x in os.environ.get("QS_PULSAR_EXTRA_CONF", "").split(";") if x]
        return "\n".join(lines) + "\n"

    def _java(self, libs):
        log4j = self.dir / "log4j2.properties"
        opens = ["java.base/java.io", "java.base/java.util.zip", "java.base/java.nio",
                 "java.base/jdk.internal.misc", "java.base/sun.net",
                 "java.management/sun.management", "java.base/jdk.internal.platform"]
        return ([JAVA, "-Xms256m", "-Xmx1g", "-XX:MaxDirectMemorySize=512m", "-XX:+UseG1GC"] +
                ["--add-opens=%s=ALL-UNNAMED" % o for o in opens] +
                ["-Djava.net.preferIPv4Stack=true", "-Dio.netty.tryReflectionSetAccessible=true",
                 "-Dbookkeeper.metadata.bookie.drivers="
                 "org.apache.pulsar.metadata.bookkeeper.PulsarMetadataBookieDriver",
                 "-Dbookkeeper.metadata.client.drivers="
                 "org.apache.pulsar.metadata.bookkeeper.PulsarMetadataClientDriver",
                 "-Djava.awt.headless=true", "-Dlog4j2.configurationFile=" + str(log4j),
                 "-Dpulsar.log.dir=" + str(self.dir),
                 "-cp", str(libs) + "/*", "org.apache.pulsar.PulsarStandaloneStarter",
                 "--config", str(self.dir / "standalone.conf"), "--no-functions-worker",
                 "--no-stream-storage", "--metadata-dir", str(self.dir / "metadata"),
                 "--bookkeeper-dir", str(self.dir / "bookkeeper"),
                 "--bookkeeper-port", str(self.bookie_port), "-a", "127.0.0.1"])

    def ready(self):
        try:
            with urllib.request.urlopen(self.web + "/admin/v2/namespaces/public/default",
                                        timeout=3) as r:
                return r.status == 200
        except Exception:
            return False

    def start(self, timeout=240):
        libs = resolve_jars()
        (self.dir / "standalone.conf").write_text(self._conf())
        (self.dir / "log4j2.properties").write_text(
            "status = error\n"
            "appender.f.type = File\nappender.f.name = F\n"
            "appender.f.fileName = %s\n" % (self.dir / "broker.log") +
            "appender.f.layout.type = PatternLayout\n"
            "appender.f.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\nrootLogger.appenderRef.f.ref = F\n")
        self.log = open(self.dir / "stdout.log", "ab")
        self.proc = subprocess.Popen(self._java(libs), stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     cwd=str(self.dir))
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("the Pulsar broker exited:\n" + self.tail())
            if self.ready():
                return self
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("the Pulsar broker did not become ready:\n" + self.tail())
            time.sleep(0.5)

    def admin(self, method, path, body=None):
        """One call of the broker's REST admin API; the decoded JSON answer (or None)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.web + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return json.loads(text) if text else None

    def produce(self, topic, payload, properties=None, key=None):
        """Sends one message with the broker's WebSocket producer API (an independent client:
        none of the hub's code); returns the broker's answer."""
        path = "/ws/v2/producer/persistent/public/default/" + topic
        msg = {"payload": base64.b64encode(payload).decode()}
        if properties:
            msg["properties"] = properties
        if key:
            msg["key"] = key
        with socket.create_connection(("127.0.0.1", self.web_port), timeout=30) as s:
            nonce = base64.b64encode(os.urandom(16)).decode()
            s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n" % (path, nonce)).encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError("websocket handshake: connection closed")
                head += chunk
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                raise RuntimeError("websocket handshake refused: %r" % head[:200])
            rest = head.split(b"\r\n\r\n", 1)[1]
            data = json.dumps(msg).encode()
            mask = os.urandom(4)
            n = len(data)
            frame = bytearray([0x81])
            if n < 126:
                frame.append(0x80 | n)
            elif n < 65536:
                frame += bytes([0x80 | 126]) + n.to_bytes(2, "big")
            else:
                frame += bytes([0x80 | 127]) + n.to_bytes(8, "big")
            frame += mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            s.sendall(bytes(frame))
            buf = rest
            while True:
                if len(buf) >= 2:
                    ln = buf[1] & 0x7f
                    off = 2
                    if ln == 126:
                        ln, off = int.from_bytes(buf[2:4], "big"), 4
                    elif ln == 127:
                        ln, off = int.from_bytes(buf[2:10], "big"), 10
                    if len(buf) >= off + ln:
                        return json.loads(buf[off:off + ln])
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError("websocket: connection closed before the answer")
                buf += chunk


def _run(workdir):
    run_until_signalled(Broker(workdir), lambda b: b.url)


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "resolve":
        print(resolve_jars())
    elif len(sys.argv) == 3 and sys.argv[1] == "run":
        _run(sys.argv[2])
    else:
        sys.exit("usage: pulsar_broker.py resolve | run DIR")
