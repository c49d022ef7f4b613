"""The chart with real pods: the project's image built from its Dockerfile
(buildah, on the mmdebstrap bases), pulled from the node's registry with a
pull secret; every Deployment Ready, the hub's login page answering through
the proxy's ClusterIP, the apiserver calling the webhook through its
Service; and the notebook image (images/notebook/Dockerfile) running
jupyterhub-singleuser and karvdashctl."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from tests.kube.pki import CertificateAuthority
from tests.node.conftest import build_image, record_memory
from tests.node.test_real_node import describe, wait_for

pytestmark = [pytest.mark.node, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "chart" / "karvdash-hub"
RELEASE = "kd"
NAME = f"{RELEASE}-karvdash-hub"


@pytest.fixture(scope="module")
def hub_image(real_node) -> str:
    archive = build_image("karvdash-hub")
    return real_node.push_image(archive, f"karvdash-hub:{archive.stem.rsplit('-', 1)[1]}")


@pytest.fixture(scope="module")
def notebook_image(real_node) -> str:
    archive = build_image("notebook")
    return real_node.push_image(archive, f"karvdash-notebook:{archive.stem.rsplit('-', 1)[1]}")


@pytest.fixture(scope="module")
def release(real_node, hub_image, tmp_path_factory):
    """The chart installed in namespace ``karvdash`` without cert-manager
    (the webhook's certificate from a test CA), state and files in host folders."""
    ns = "karvdash"
    work = tmp_path_factory.mktemp("chart")
    state, files = work / "state", work / "files"
    for folder in (state, files):
        folder.mkdir()
        os.chown(folder, 1000, 1000)  # the image runs as uid 1000
    real_node.kubectl("create", "namespace", ns)
    wait_for(lambda: real_node.api("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")[0] == 200, 30,
             "default service account")
    secret = real_node.pull_secret(ns)
    ca = CertificateAuthority("karvdash-hub webhook test CA")
    service = f"{NAME}-webhook"
    pair = ca.issue(service, dns_names=(service, f"{service}.{ns}", f"{service}.{ns}.svc"), server=True)
    real_node.apply({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                     "metadata": {"name": "webhook-tls", "namespace": ns},
                     "stringData": {"tls.crt": pair.cert_pem.decode(), "tls.key": pair.key_pem.decode()}})
    values = {
        "image": hub_image,
        "imagePullSecrets": [{"name": secret}],
        "karvdash": {"ingressURL": "https://karvdash.example.test", "stateHostPath": str(state),
                     "filesURL": f"file://{files}", "adminPassword": "admin-secret"},
        "webhook": {"certManager": {"enabled": False},
                    "tls": {"secretName": "webhook-tls", "caBundle": ca.cert_pem.decode()}},
    }
    values_file = work / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    started = time.monotonic()
    try:
        real_node.helm("install", RELEASE, str(CHART), "--namespace", ns, "-f", str(values_file),
                       "--wait", "--timeout", "300s", timeout=360)
    except Exception:
        pytest.fail(describe(real_node, ns) + "\n" + real_node.kubectl(
            "logs", "-n", ns, "-l", "app.kubernetes.io/name=karvdash-hub", "--tail=30", "--all-containers",
            "--prefix", check=False).stdout)
    print(f"helm install --wait: {time.monotonic() - started:.1f} s")
    record_memory(real_node, "with the chart installed")
    yield ns
    real_node.helm("uninstall", RELEASE, "--namespace", ns, "--wait", "--timeout", "120s", check=False, timeout=180)


def test_every_deployment_is_ready(real_node, release):
    deployments = json.loads(real_node.kubectl("get", "deployments", "-n", release, "-o", "json").stdout)["items"]
    names = {d["metadata"]["name"]: d for d in deployments}
    assert set(names) == {f"{NAME}-{c}" for c in ("hub", "proxy", "dashboard", "webhook")}
    for name, d in names.items():
        assert d["status"].get("readyReplicas") == d["spec"]["replicas"], (name, d["status"])


def test_hub_login_through_the_proxy_service(real_node, release):
    service = json.loads(real_node.kubectl("get", "service", f"{NAME}-proxy-public", "-n", release,
                                           "-o", "json").stdout)
    ip, port = service["spec"]["clusterIP"], service["spec"]["ports"][0]["port"]

    def login_page():
        try:
            status, body = real_node.netns_http_get(f"http://{ip}:{port}/hub/login", timeout=5)
        except OSError:
            return None
        return (status, body) if status == 200 else None

    # right after Ready the proxy may still answer 503 for a moment
    status, body = wait_for(login_page, 60, "/hub/login through the proxy")
    assert b"<form" in body and b"password" in body.lower()


def test_the_apiserver_calls_the_webhook(real_node, release):
    """A pod in a user namespace with a host path outside the allowed folders
    is refused, and the webhooks were called on the way: the apiserver
    reaches them through the webhook's Service (a ClusterIP) like on any
    cluster. (The mutating webhook warns that the namespace has no owner;
    the refusal comes from the validating webhook, or from the chart's
    ValidatingAdmissionPolicy where it has one, which is asked first.)"""
    ns = "karvdash-webhook-probe"
    real_node.apply({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": ns, "labels": {"karvdash.io/user-namespace": "enabled"}}})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe", "namespace": ns},
           "spec": {"containers": [{"name": "c", "image": "unused.example.test/none:1"}],
                    "volumes": [{"name": "etc", "hostPath": {"path": "/etc"}}]}}
    try:
        out = real_node.kubectl("apply", "-f", "-", input=json.dumps(pod), check=False)
        assert out.returncode != 0 and "/etc" in out.stderr, out.stderr
        called = ("admission webhook" in out.stderr and "denied the request" in out.stderr) or \
            "no file domains were added" in out.stderr
        assert called, out.stderr
    finally:
        real_node.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_notebook_image_runs_singleuser_and_karvdashctl(real_node, notebook_image, node_namespace):
    ns = node_namespace
    script = ("set -e; id -u; echo HOME=$HOME; jupyterhub-singleuser --version; "
              "python -c 'import jupyterlab; print(\"jupyterlab\", jupyterlab.__version__)'; "
              "karvdashctl --help >/dev/null && echo karvdashctl ok")
    real_node.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "notebook", "namespace": ns},
                     "spec": {"restartPolicy": "Never", "imagePullSecrets": [{"name": "karvdash-node-registry"}],
                              "containers": [{"name": "notebook", "image": notebook_image,
                                              "command": ["bash", "-c", script]}]}})

    def finished():
        status = json.loads(real_node.kubectl("get", "pod", "notebook", "-n", ns, "-o", "json").stdout)["status"]
        return status.get("phase") if status.get("phase") in ("Succeeded", "Failed") else None

    try:
        phase = wait_for(finished, 180, "the notebook pod to finish")
    except TimeoutError:
        pytest.fail(describe(real_node, ns))
    logs = real_node.kubectl("logs", "-n", ns, "notebook").stdout
    assert phase == "Succeeded", logs
    lines = logs.splitlines()
    assert lines[0] == "1000" and "HOME=/home/jovyan" in lines
    assert any(line.startswith("jupyterlab 4.") for line in lines) and "karvdashctl ok" in lines, logs
