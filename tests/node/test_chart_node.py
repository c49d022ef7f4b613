"""The chart with real pods: the project's image built from its Dockerfile
(buildah, on the mmdebstrap bases), pulled from the node's registry with a
pull secret; every Deployment Ready, the hub's login page answering through
the proxy's ClusterIP, the apiserver calling the webhook through its
Service; and the notebook image (images/notebook/Dockerfile) running
jupyterhub-singleuser and karvdashctl."""

from __future__ import annotations

import json

import pytest

from tests.node.conftest import NAME, installed_chart
from tests.node.test_real_node import describe, wait_for

pytestmark = [pytest.mark.node, pytest.mark.integration]

@pytest.fixture(scope="module")
def release(real_node, hub_image, tmp_path_factory):
    """The chart installed in namespace ``karvdash`` without cert-manager
    (the webhook's certificate from a test CA), state and files in host folders."""
    with installed_chart(real_node, hub_image, tmp_path_factory.mktemp("chart"), "karvdash") as ns:
        yield ns


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
