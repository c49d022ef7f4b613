"""The chart with ``webhook.certManager.enabled`` on the real node, with a
real cert-manager: its controller, webhook and CA injector built from Go
modules (tools/certmanager/build.sh, cached), installed from cert-manager's
own Helm chart and CRDs out of the module's source tree, with the images in
the node's registry. cert-manager issues the webhook's serving certificate
from the chart's self-signed Issuer, the CA injector puts its CA into both
webhook configurations, and the apiserver calls the webhook with it.

The tests run in file order (one cert-manager and one chart install for the
module)."""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from tests.kube.cluster import ControlPlaneError
from tests.kube.fixtures import wait_for
from tests.kube.realnode import REGISTRY
from tests.node.conftest import (
    NAME,
    ROOT,
    _image_seconds,
    describe_namespace,
    installed_chart,
    skip_or_fail,
)

pytestmark = [pytest.mark.node, pytest.mark.integration]

BUILD = ROOT / "tools" / "certmanager" / "build.sh"
CM_NS = "cert-manager"
NS = "karvdash-certmanager"
CERTIFICATE = f"{NAME}-webhook"
SECRET = f"{NAME}-webhook-tls"
CONFIGURATIONS = ("mutatingwebhookconfiguration", "validatingwebhookconfiguration")


def build_cert_manager() -> Path:
    """tools/certmanager/build.sh (cached); its output folder."""
    started = time.monotonic()
    proc = subprocess.run([str(BUILD)], check=False, capture_output=True, text=True, timeout=3600)
    _image_seconds["cert-manager (binaries, images)"] = time.monotonic() - started
    if proc.returncode == 3:
        skip_or_fail(f"cannot build cert-manager: {proc.stderr.strip().splitlines()[-1]}")
    if proc.returncode != 0:
        pytest.fail(f"tools/certmanager/build.sh exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def images_of(built: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (built / "images.env").read_text().split())
    return {key.removeprefix("CERT_MANAGER_").removesuffix("_IMAGE").lower(): value for key, value in pairs}


def cert_manager_values(cluster, built: Path, secret: str) -> dict:
    """Values of cert-manager's chart: its three images from the node's
    registry, CRDs applied beforehand from deploy/crds, one replica each
    without leader election (what this build runs), no startupapicheck
    (an image of its own, not built)."""
    images = {}
    for component, ref in images_of(built).items():
        name, tag = ref.removeprefix("localhost/").rsplit(":", 1)
        pushed = cluster.push_image(built / "images" / f"{component}.tar", f"{name}:{tag}")
        images[component] = {"repository": pushed.rsplit(":", 1)[0], "tag": tag}
    no_election = {"leaderElectionConfig": {"enabled": False}}
    return {
        "global": {"imagePullSecrets": [{"name": secret}], "leaderElection": {"namespace": CM_NS}},
        "crds": {"enabled": False},
        "startupapicheck": {"enabled": False},
        "prometheus": {"enabled": False},
        "image": images["controller"],
        "config": {"apiVersion": "controller.config.cert-manager.io/v1alpha1", "kind": "ControllerConfiguration",
                   **no_election},
        "webhook": {"image": images["webhook"]},
        "cainjector": {"image": images["cainjector"],
                       "config": {"apiVersion": "cainjector.config.cert-manager.io/v1alpha1",
                                  "kind": "CAInjectorConfiguration", **no_election}},
    }


@contextlib.contextmanager
def cert_manager(cluster, work: Path):
    built = build_cert_manager()
    crds = sorted(str(p) for p in (built / "crds").glob("*.yaml"))
    cluster.kubectl("create", "namespace", CM_NS)
    try:
        secret = cluster.pull_secret(CM_NS)
        values = work / "cert-manager-values.yaml"
        values.write_text(yaml.safe_dump(cert_manager_values(cluster, built, secret)))
        for crd in crds:
            cluster.kubectl("apply", "--server-side", "-f", crd)
        try:
            cluster.helm("install", "cert-manager", str(built / "chart"), "--namespace", CM_NS, "-f", str(values),
                         "--wait", "--timeout", "300s", timeout=360)
        except (ControlPlaneError, subprocess.TimeoutExpired) as error:
            pytest.fail(f"{error}\n{describe_namespace(cluster, CM_NS)}")
        yield built
    finally:
        cluster.helm("uninstall", "cert-manager", "--namespace", CM_NS, "--wait", "--timeout", "120s",
                     check=False, timeout=180)
        for crd in crds:
            cluster.kubectl("delete", "-f", crd, "--wait=false", check=False)
        cluster.kubectl("delete", "namespace", CM_NS, "--wait=false", check=False)


@pytest.fixture(scope="module")
def release(real_node, hub_image, tmp_path_factory):
    """cert-manager, then the chart with webhook.certManager.enabled (no
    Secret or caBundle given: cert-manager makes both)."""
    work = tmp_path_factory.mktemp("certmanager")
    with cert_manager(real_node, work) as built:
        values = {"webhook": {"certManager": {"enabled": True}, "tls": {"secretName": "", "caBundle": ""}}}
        with installed_chart(real_node, hub_image, work, NS, values) as ns:
            yield {"ns": ns, "built": built}


def get(cluster, *args: str) -> dict:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def test_cert_manager_runs_from_its_own_chart(real_node, release):
    deployments = get(real_node, "deployments", "-n", CM_NS)["items"]
    ready = {d["metadata"]["name"]: d["status"].get("readyReplicas") for d in deployments}
    assert ready == {"cert-manager": 1, "cert-manager-webhook": 1, "cert-manager-cainjector": 1}, ready
    images = {c["image"] for d in deployments for c in d["spec"]["template"]["spec"]["containers"]}
    assert all(image.startswith(f"{REGISTRY}/karvdash-node/cert-manager-") for image in images), images
    # its own webhook answers: an invalid Certificate is refused by it
    bad = {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "bad", "namespace": NS},
           "spec": {"secretName": "bad", "issuerRef": {"name": "x"}}}
    out = real_node.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(bad), check=False)
    assert out.returncode != 0 and 'admission webhook "webhook.cert-manager.io" denied' in out.stderr, out.stderr


def test_the_webhook_certificate_is_issued_by_cert_manager(real_node, release):
    ns = release["ns"]

    def ready():
        status = get(real_node, "certificate", CERTIFICATE, "-n", ns).get("status", {})
        return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])) or None

    try:
        wait_for(ready, 120, "the webhook's Certificate Ready")
    except TimeoutError:
        pytest.fail(describe_namespace(real_node, ns))
    secret = get(real_node, "secret", SECRET, "-n", ns)
    annotations = secret["metadata"]["annotations"]
    assert annotations["cert-manager.io/certificate-name"] == CERTIFICATE
    assert annotations["cert-manager.io/issuer-name"] == f"{NAME}-webhook"
    assert annotations["cert-manager.io/issuer-kind"] == "Issuer"
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    # the chart's Issuer is selfSigned: the certificate signs itself
    assert cert.issuer == cert.subject
    names = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert f"{NAME}-webhook.{ns}.svc" in names.get_values_for_type(x509.DNSName)
    # the webhook's pods serve it: their tls volume is that Secret
    pods = get(real_node, "pods", "-n", ns, "-l", "app.kubernetes.io/component=webhook")["items"]
    assert pods and all({"name": "tls", "secret": {"secretName": SECRET, "defaultMode": 420}} in p["spec"]["volumes"]
                        for p in pods)


def test_the_ca_injector_fills_in_both_webhook_configurations(real_node, release):
    ns = release["ns"]
    ca = base64.b64decode(get(real_node, "secret", SECRET, "-n", ns)["data"]["ca.crt"])

    def injected():
        bundles = [w.get("clientConfig", {}).get("caBundle", "")
                   for kind in CONFIGURATIONS for w in get(real_node, kind, f"{ns}-{NAME}-webhook")["webhooks"]]
        return bundles if all(bundles) else None

    bundles = wait_for(injected, 120, "caBundle in the webhook configurations")
    assert len(bundles) == 2 and {base64.b64decode(b) for b in bundles} == {ca}
    for kind in CONFIGURATIONS:
        configuration = get(real_node, kind, f"{ns}-{NAME}-webhook")
        assert configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{ns}/{CERTIFICATE}"


def test_the_apiserver_calls_the_webhook_with_the_injected_ca(real_node, release):
    """A pod of a user's namespace gets the file domains from the mutating
    webhook (server-side dry run: the apiserver runs admission and answers
    with the mutated pod), and a forbidden host path is refused."""
    user_ns = "karvdash-erin"
    real_node.apply({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": user_ns, "labels": {"karvdash.io/user-namespace": "enabled",
                                                              "karvdash.io/owner": "erin"}}})
    try:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe", "namespace": user_ns},
               "spec": {"containers": [{"name": "c", "image": "unused.example.test/none:1"}]}}
        out = real_node.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(pod),
                                check=False)
        assert out.returncode == 0, out.stderr
        volumes = {v["name"] for v in json.loads(out.stdout)["spec"]["volumes"]}
        assert {"karvdash-private", "karvdash-shared"} <= volumes, volumes
        pod["spec"]["volumes"] = [{"name": "etc", "hostPath": {"path": "/etc"}}]
        out = real_node.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
        assert out.returncode != 0 and "/etc" in out.stderr, out.stderr
        # no TLS trouble on the way (an unknown CA would fail the call, and the pod with it)
        log = real_node.log_tail("kube-apiserver", 400)
        assert "x509: certificate signed by unknown authority" not in log
    finally:
        real_node.kubectl("delete", "namespace", user_ns, "--wait=false", check=False)
