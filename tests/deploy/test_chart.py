"""The Helm chart: `helm lint --strict`, `helm template` with each values file of
tests/deploy/helm (one node, a cluster over each transport, ingress, autoscaling), every
rendered manifest validated offline against the Kubernetes schemas of the oldest and a recent
supported version, what each renders checked, bad values refused with the reason; then the
chart's pod and its `helm test` hook run as podman containers of the image."""

import base64
import glob
import json
import os
import subprocess
import time

import pytest
import yaml

import hub
from conftest import FIGURES
from hub import podman

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(ROOT, "deploy", "helm", "quicksilver")
VALUES = os.path.join(os.path.dirname(__file__), "helm")
HELM = os.environ.get("QS_DEPLOY_HELM", "helm")
VALIDATE = os.environ.get("QS_DEPLOY_KUBERNETES_VALIDATE", "kubernetes-validate")
KUBE_VERSIONS = ("1.25.0", "1.32.0")
GOOD = sorted(os.path.basename(f) for f in glob.glob(os.path.join(VALUES, "*.yaml")))
BAD = sorted(os.path.basename(f) for f in glob.glob(os.path.join(VALUES, "bad", "*.yaml")))


def helm(*args, check=True):
    p = subprocess.run([HELM, *args], capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError("helm %s failed:\n%s%s" % (" ".join(args), p.stdout, p.stderr))
    return p


def template(*values, sets=(), name="qs"):
    args = ["template", name, CHART, "--namespace", "hub", "--kube-version", KUBE_VERSIONS[-1]]
    for v in values:
        args += ["-f", v]
    for s in sets:
        args += ["--set", s]
    return helm(*args).stdout


def docs(text):
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(text) if d}


def kinds(rendered):
    return sorted(k for k, _ in rendered)


def only(rendered, kind):
    (d,) = [d for (k, _), d in rendered.items() if k == kind]
    return d


def container(rendered):
    return only(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def env(rendered):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(rendered)["env"]}


def test_lint_strict():
    helm("lint", "--strict", CHART)
    for v in GOOD:
        helm("lint", "--strict", CHART, "-f", os.path.join(VALUES, v))


@pytest.mark.parametrize("values", ["(defaults)"] + GOOD)
def test_renders_valid_manifests(values, tmp_path):
    files = [] if values == "(defaults)" else [os.path.join(VALUES, values)]
    out = tmp_path / "rendered.yaml"
    out.write_text(template(*files))
    for version in KUBE_VERSIONS:
        p = subprocess.run([VALIDATE, "--strict", "--quiet", "-k", version, str(out)],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        # The only resource without a schema is the Prometheus Operator's.
        for line in (p.stdout + p.stderr).splitlines():
            assert "ServiceMonitor" in line or not line.startswith(("WARN", "ERROR")), line


def test_single_node_defaults():
    r = docs(template())
    assert kinds(r) == ["Deployment", "PersistentVolumeClaim", "Pod", "PodDisruptionBudget",
                        "Secret", "Service", "ServiceAccount"]
    dep = only(r, "Deployment")
    spec = dep["spec"]["template"]["spec"]
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"]["type"] == "Recreate"
    c = container(r)
    assert c["livenessProbe"]["httpGet"]["path"] == "/mercure/health/live"
    assert c["readinessProbe"]["httpGet"]["path"] == "/mercure/health/ready"
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["runAsUser"] != 0
    e = env(r)
    assert e["SERVER_NAME"] == ":8080" and "MERCURE_TRANSPORT_URL" not in e
    assert "format json" in e["GLOBAL_OPTIONS"]
    assert "shutdown_delay 5s" in e["GLOBAL_OPTIONS"] and "grace_period 20s" in e["GLOBAL_OPTIONS"]
    assert spec["terminationGracePeriodSeconds"] > 5 + 20
    assert spec["volumes"][0]["persistentVolumeClaim"]["claimName"] == "qs-quicksilver-data"
    secret = only(r, "Secret")["data"]
    assert len(base64.b64decode(secret["publisher-jwt-key"])) >= 32
    test_pod = only(r, "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"


def test_single_node_values():
    r = docs(template(os.path.join(VALUES, "single.yaml")))
    pvc = only(r, "PersistentVolumeClaim")["spec"]
    assert pvc["storageClassName"] == "fast-ssd"
    assert pvc["resources"]["requests"]["storage"] == "5Gi"
    e = env(r)
    assert e["CADDY_SERVER_EXTRA_DIRECTIVES"] == "log"
    assert e["MERCURE_EXTRA_DIRECTIVES"] == "cors_origins https://app.example.com\nheartbeat 30s"
    secret = only(r, "Secret")["data"]
    assert base64.b64decode(secret["publisher-jwt-key"]).decode().startswith("publisher-key")


@pytest.mark.parametrize("values,kind,url", [
    ("cluster-redis.yaml", "redis", "redis://:secret@redis-master.redis.svc:6379/mercure"),
    ("cluster-kafka.yaml", "kafka", None),
    ("cluster-pulsar.yaml", "pulsar", None),
    ("cluster-postgres.yaml", "postgres", None),
])
def test_cluster_transports(values, kind, url):
    r = docs(template(os.path.join(VALUES, values)))
    dep = only(r, "Deployment")
    assert dep["spec"]["replicas"] > 1
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate",
                                       "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert "PersistentVolumeClaim" not in kinds(r)
    assert dep["spec"]["template"]["spec"]["volumes"][0] == {"name": "data", "emptyDir": {}}
    ref = env(r)["MERCURE_TRANSPORT_URL"]["secretKeyRef"]
    if kind == "postgres":
        assert ref == {"name": "mercure-postgres", "key": "url"}
        assert "Secret" not in kinds(r)  # keys and URL come from the operator's Secrets
        assert env(r)["MERCURE_PUBLISHER_JWT_KEY"]["secretKeyRef"]["name"] == "mercure-keys"
        assert "GLOBAL_OPTIONS" in env(r) and "json" not in env(r)["GLOBAL_OPTIONS"]
    else:
        assert ref == {"name": "qs-quicksilver", "key": "transport-url"}
        secret = only(r, "Secret")["data"]
        assert base64.b64decode(secret["transport-url"]).decode().startswith(kind)
        if url:
            assert base64.b64decode(secret["transport-url"]).decode() == url
    if values == "cluster-redis.yaml":
        spec = dep["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] == 10 + 30 + 15
        assert spec["topologySpreadConstraints"][0]["maxSkew"] == 1
    if values == "cluster-pulsar.yaml":
        assert only(r, "PodDisruptionBudget")["spec"]["maxUnavailable"] == "25%"


def test_ingress_has_the_annotations_event_streams_need():
    r = docs(template(os.path.join(VALUES, "ingress.yaml")))
    ing = only(r, "Ingress")
    a = ing["metadata"]["annotations"]
    assert a["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(a["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert a["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["tls"][0]["hosts"] == ["hub.example.com"]
    backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "qs-quicksilver", "port": {"name": "http"}}


def test_autoscaling_and_service_monitor():
    r = docs(template(os.path.join(VALUES, "autoscaling.yaml")))
    assert "replicas" not in only(r, "Deployment")["spec"]
    hpa = only(r, "HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 8)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    sm = only(r, "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert sm["spec"]["endpoints"][0] == {"port": "http", "path": "/metrics", "interval": "30s",
                                          "scrapeTimeout": "10s"}
    assert sm["spec"]["selector"]["matchLabels"] == \
        only(r, "Service")["spec"]["selector"]


@pytest.mark.parametrize("values,reason", [
    ("typo.yaml", "Additional property replicaCont is not allowed"),
    ("nested-typo.yaml", "Additional property uri is not allowed"),
    ("wrong-type.yaml", "replicaCount: Invalid type"),
    ("embedded-replicas.yaml", "replicaCount is 3, but transport.type embedded keeps its state "
                               "on one node"),
    ("embedded-autoscaling.yaml", "autoscaling.enabled needs a cluster transport"),
    ("cluster-without-url.yaml", "transport.type redis needs transport.url or "
                                 "transport.existingSecret"),
    ("unknown-transport.yaml", "transport.type must be one of the following"),
    ("short-termination.yaml", "drain.terminationGracePeriodSeconds (20) must exceed"),
])
def test_bad_values_are_refused(values, reason):
    p = helm("template", "qs", CHART, "--kube-version", KUBE_VERSIONS[-1],
             "-f", os.path.join(VALUES, "bad", values), check=False)
    assert p.returncode != 0, "accepted:\n" + p.stdout[:2000]
    assert reason in p.stderr, p.stderr
    assert BAD  # every file of bad/ is listed above
    assert values in BAD


def test_every_bad_file_is_tested():
    tested = {v for v, _ in test_bad_values_are_refused.pytestmark[0].args[1]}
    assert tested == set(BAD)


def test_package():
    p = helm("package", CHART, "--destination", os.environ.get("TMPDIR", "/tmp"))
    assert "quicksilver-0.1.0.tgz" in p.stdout


# ---------------------------------------------------------------- the chart's pods, run

POD = "qs-deploy-chart"
TEST_POD = "qs-deploy-chart-test"


@pytest.fixture
def network():
    hub.remove(POD, TEST_POD)
    podman("network", "rm", "-f", hub.NETWORK, check=False)
    podman("network", "create", hub.NETWORK)
    yield hub.NETWORK
    hub.remove(POD, TEST_POD)
    podman("network", "rm", "-f", hub.NETWORK, check=False)


def pod_env(c, secret):
    """A container's environment with its secretKeyRefs read from the rendered Secret."""
    out = []
    for e in c["env"]:
        if "value" in e:
            v = e["value"]
        else:
            v = base64.b64decode(secret[e["valueFrom"]["secretKeyRef"]["key"]]).decode()
        out += ["-e", "%s=%s" % (e["name"], v)]
    return out


def test_chart_pod_and_helm_test_hook_run(network):
    """The Deployment's container as the chart configures it (its user, read-only root,
    environment, command and probes), and the `helm test` pod against it, reached by the
    Service's name (the full name, here the container's) on the Service's port."""
    r = docs(template(os.path.join(VALUES, "single.yaml"),
                      sets=["fullnameOverride=" + POD, "service.port=8080"]))
    secret = only(r, "Secret")["data"]
    spec = only(r, "Deployment")["spec"]["template"]["spec"]
    c = spec["containers"][0]
    uid = "%d:%d" % (spec["securityContext"]["runAsUser"], spec["securityContext"]["runAsGroup"])
    port = hub.free_port()
    container_port = c["ports"][0]["containerPort"]
    t0 = time.monotonic()
    podman("run", "-d", "--pull=never", "--name", POD, "--network", network, "--user", uid,
           "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
           "-p", "%s:%d:%d" % (hub.HOST, port, container_port),
           *pod_env(c, secret), hub.IMAGE, *c["args"])
    hub.wait_ready(port)
    FIGURES["chart pod: start to ready"] = "%.2f s" % (time.monotonic() - t0)
    for probe in ("livenessProbe", "readinessProbe"):
        path = c[probe]["httpGet"]["path"]
        assert hub.request(port, "GET", path)[0] == 200, path
    # JSON logs (log.format json), access logs on (single.yaml).
    hub.request(port, "GET", "/healthz")
    lines = [l for l in hub.logs(POD).splitlines() if l.startswith("{")]
    assert lines and all(json.loads(l)["level"] for l in lines)
    assert any("/healthz" in l for l in lines), lines

    tp = only(r, "Pod")
    tc = tp["spec"]["containers"][0]
    t = tp["spec"]["securityContext"]
    p = podman("run", "--pull=never", "--name", TEST_POD, "--network", network,
               "--user", "%d:%d" % (t["runAsUser"], t["runAsGroup"]), "--read-only",
               "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
               *pod_env(tc, secret),
               "--entrypoint", tc["command"][0], hub.IMAGE, *tc["command"][1:], check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "received: helm-test-" in p.stdout, p.stdout

    # Deleting the pod: SIGTERM, and the hub is gone well within the grace period.
    t = time.monotonic()
    podman("stop", "-t", str(spec["terminationGracePeriodSeconds"]), POD, timeout=120)
    took = time.monotonic() - t
    assert hub.exit_code(POD) == 0
    assert took < spec["terminationGracePeriodSeconds"]
    FIGURES["chart pod: stop (shutdown_delay 5s, grace_period 20s)"] = "%.2f s" % took
