"""The local Kubernetes control plane does what the project's tests rely on."""

from __future__ import annotations

import base64
import ipaddress
import json
import ssl
import threading
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.kube.cluster import LOCAL_PROCESS_LABEL, POD_CIDR, read_versions
from tests.kube.fixtures import wait_for
from tests.kube.pki import CertificateAuthority

pytestmark = [pytest.mark.kube, pytest.mark.integration]

SMOKE_CHART = Path(__file__).resolve().parents[1] / "kube" / "charts" / "smoke"


def _pod(name: str, **spec) -> dict:
    container = {"name": "main", "image": "registry.invalid/test:1"}
    container.update(spec.pop("container", {}))
    return {
        "metadata": {"name": name, "labels": spec.pop("labels", {})},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 5, **spec},
    }


def _ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def test_version_is_the_pinned_release(kube_cluster):
    status, version = kube_cluster.api("GET", "/version")
    assert status == 200
    assert version["gitVersion"] == read_versions()["KUBERNETES_VERSION"]
    assert version["gitTreeState"] == "clean"


def test_rbac_is_enforced_for_service_account_tokens(kube_cluster, kube_api_client, kube_namespace):
    core = client.CoreV1Api(kube_api_client)
    rbac = client.RbacAuthorizationV1Api(kube_api_client)
    core.create_namespaced_service_account(kube_namespace, {"metadata": {"name": "reader"}})
    rbac.create_namespaced_role(kube_namespace, {
        "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
    })
    rbac.create_namespaced_role_binding(kube_namespace, {
        "metadata": {"name": "reader-reads-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": kube_namespace}],
    })
    token = core.create_namespaced_service_account_token(
        "reader", kube_namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token
    assert token

    config = client.Configuration()
    config.host = kube_cluster.server
    config.ssl_ca_cert = str(kube_cluster.ca)
    config.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(config) as as_reader:
        reader = client.CoreV1Api(as_reader)
        assert reader.list_namespaced_pod(kube_namespace).items == []
        with pytest.raises(ApiException) as denied:
            reader.list_namespaced_secret(kube_namespace)
        assert denied.value.status == 403
        with pytest.raises(ApiException) as elsewhere:
            reader.list_namespaced_pod("default")
        assert elsewhere.value.status == 403
    # The token really names the service account (not some broader identity).
    who = client.AuthenticationV1Api(kube_api_client).create_token_review(
        {"spec": {"token": token}}
    ).status
    assert who.authenticated
    assert who.user.username == f"system:serviceaccount:{kube_namespace}:reader"


def test_pod_is_scheduled_and_running_with_a_loopback_ip(kube_cluster, kube_api_client, kube_namespace):
    core = client.CoreV1Api(kube_api_client)
    core.create_namespaced_pod(kube_namespace, _pod("sleeper", container={
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}))
    pod = wait_for(
        lambda: (p := core.read_namespaced_pod("sleeper", kube_namespace)).status.phase == "Running"
        and _ready(p) and p,
        timeout=30, what="pod Running and Ready",
    )
    assert pod.spec.node_name == kube_cluster.node_name
    ip = ipaddress.ip_address(pod.status.pod_ip)
    assert ip.is_loopback and ip in ipaddress.ip_network(POD_CIDR)
    # A Deployment's pods come from the controller-manager and are placed too.
    apps = client.AppsV1Api(kube_api_client)
    apps.create_namespaced_deployment(kube_namespace, {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]}},
        },
    })
    wait_for(lambda: (apps.read_namespaced_deployment("web", kube_namespace).status.ready_replicas or 0) == 2,
             timeout=30, what="deployment web ready")


def test_gpu_resources_are_schedulable(kube_api_client, kube_namespace):
    core = client.CoreV1Api(kube_api_client)
    core.create_namespaced_pod(kube_namespace, _pod("gpu", container={
        "resources": {"limits": {"nvidia.com/gpu": "1"}}}))
    core.create_namespaced_pod(kube_namespace, _pod("too-many-gpus", container={
        "resources": {"limits": {"nvidia.com/gpu": "64"}}}))
    wait_for(lambda: core.read_namespaced_pod("gpu", kube_namespace).status.phase == "Running",
             timeout=30, what="GPU pod Running")

    def unschedulable():
        conditions = core.read_namespaced_pod("too-many-gpus", kube_namespace).status.conditions or []
        return any(c.type == "PodScheduled" and c.reason == "Unschedulable" for c in conditions)

    wait_for(unschedulable, timeout=30, what="oversized GPU pod marked Unschedulable")


def test_custom_resource_definition_and_object(kube_api_client, kube_namespace):
    ext = client.ApiextensionsV1Api(kube_api_client)
    group, plural = "smoke.karvdash-hub.test", f"widgets{uuid.uuid4().hex[:6]}"
    crd_name = f"{plural}.{group}"
    ext.create_custom_resource_definition({
        "metadata": {"name": crd_name},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": f"W{plural[1:]}".capitalize()},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {"type": "object", "required": ["size"],
                                            "properties": {"size": {"type": "integer", "minimum": 1}}}},
                }},
            }],
        },
    })
    try:
        def established():
            crd = ext.read_custom_resource_definition(crd_name)
            return any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))

        wait_for(established, timeout=30, what="CRD Established")
        kind = f"W{plural[1:]}".capitalize()
        custom = client.CustomObjectsApi(kube_api_client)
        body = {"apiVersion": f"{group}/v1", "kind": kind, "metadata": {"name": "one"}, "spec": {"size": 3}}
        wait_for(lambda: _try_create(custom, group, kube_namespace, plural, body), timeout=30,
                 what="custom object created")
        got = custom.get_namespaced_custom_object(group, "v1", kube_namespace, plural, "one")
        assert got["spec"] == {"size": 3}
        bad = dict(body, metadata={"name": "two"}, spec={"size": 0})
        with pytest.raises(ApiException) as invalid:
            custom.create_namespaced_custom_object(group, "v1", kube_namespace, plural, bad)
        assert invalid.value.status == 422
    finally:
        ext.delete_custom_resource_definition(crd_name)


def _try_create(custom, group, namespace, plural, body) -> bool:
    try:
        custom.create_namespaced_custom_object(group, "v1", namespace, plural, body)
        return True
    except ApiException as exc:
        if exc.status == 404:  # discovery of the new resource not settled yet
            return False
        raise


class _MutatingWebhook:
    """HTTPS admission webhook on 127.0.0.1 with its own CA; adds a label to pods."""

    label = "webhook.karvdash-hub.test/mutated"

    def __init__(self, tmp_path: Path):
        self.ca = CertificateAuthority("webhook test CA")
        cert, key = self.ca.issue("webhook", ip_addresses=("127.0.0.1",), server=True).write(tmp_path, "webhook")
        self.reviews: list[dict] = []
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                webhook.reviews.append(review)
                pod = review["request"]["object"]
                key = webhook.label.replace("~", "~0").replace("/", "~1")
                if pod["metadata"].get("labels"):
                    patch = [{"op": "add", "path": f"/metadata/labels/{key}", "value": "yes"}]
                else:
                    patch = [{"op": "add", "path": "/metadata/labels", "value": {webhook.label: "yes"}}]
                body = json.dumps({
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": {
                        "uid": review["request"]["uid"],
                        "allowed": True,
                        "patchType": "JSONPatch",
                        "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
                    },
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/mutate"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_mutating_webhook_is_called_and_its_patch_stored(kube_api_client, kube_namespace, tmp_path):
    admission = client.AdmissionregistrationV1Api(kube_api_client)
    core = client.CoreV1Api(kube_api_client)
    name = f"smoke-{kube_namespace}"
    with _MutatingWebhook(tmp_path) as webhook:
        admission.create_mutating_webhook_configuration({
            "metadata": {"name": name},
            "webhooks": [{
                "name": "label.smoke.karvdash-hub.test",
                "clientConfig": {"url": webhook.url, "caBundle": base64.b64encode(webhook.ca.cert_pem).decode()},
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                           "resources": ["pods"]}],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": kube_namespace}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
            }],
        })
        try:
            # The configuration reaches the apiserver's webhook source asynchronously.
            def mutated():
                pod_name = f"p{len(webhook.reviews)}-{uuid.uuid4().hex[:4]}"
                pod = core.create_namespaced_pod(kube_namespace, _pod(pod_name, labels={"app": "x"}))
                return (pod.metadata.labels or {}).get(webhook.label) == "yes" and pod_name

            pod_name = wait_for(mutated, timeout=30, interval=0.5, what="webhook patch in a created pod")
            stored = core.read_namespaced_pod(pod_name, kube_namespace)
            assert stored.metadata.labels == {"app": "x", webhook.label: "yes"}
            review = webhook.reviews[-1]
            assert review["kind"] == "AdmissionReview"
            assert review["request"]["operation"] == "CREATE"
            assert review["request"]["namespace"] == kube_namespace
        finally:
            admission.delete_mutating_webhook_configuration(name)


def test_helm_install_and_uninstall(kube_cluster, kube_api_client, kube_namespace):
    core = client.CoreV1Api(kube_api_client)
    kube_cluster.helm("install", "smoke", str(SMOKE_CHART), "--namespace", kube_namespace,
                      "--set", "greeting=hi there", "--wait", "--timeout", "90s")
    settings = core.read_namespaced_config_map("smoke-settings", kube_namespace)
    assert settings.data["greeting"] == "hi there"
    assert settings.data["kubeVersion"] == read_versions()["KUBERNETES_VERSION"]
    assert client.AppsV1Api(kube_api_client).read_namespaced_deployment(
        "smoke-web", kube_namespace).status.ready_replicas == 1
    # ClusterIPs come from the loopback service range, never a private one.
    cluster_ip = ipaddress.ip_address(core.read_namespaced_service("smoke-web", kube_namespace).spec.cluster_ip)
    assert cluster_ip.is_loopback
    releases = json.loads(kube_cluster.helm("list", "--namespace", kube_namespace, "--output", "json").stdout)
    assert [(r["name"], r["status"]) for r in releases] == [("smoke", "deployed")]

    kube_cluster.helm("uninstall", "smoke", "--namespace", kube_namespace, "--wait", "--timeout", "60s")
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("smoke-settings", kube_namespace)
    assert gone.value.status == 404
    assert json.loads(kube_cluster.helm("list", "--namespace", kube_namespace, "--output", "json").stdout) == []


def test_local_process_pod_serves_on_its_pod_ip(kube_api_client, kube_namespace, kube_local_node):
    core = client.CoreV1Api(kube_api_client)
    core.create_namespaced_pod(kube_namespace, _pod(
        "web",
        labels={LOCAL_PROCESS_LABEL: "true"},
        container={
            "command": ["python3", "-m", "http.server"],
            "args": ["--bind", "$(POD_IP)", "8888"],
            "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "ports": [{"containerPort": 8888}],
        },
    ))
    pod = wait_for(lambda: _ready(p := core.read_namespaced_pod("web", kube_namespace)) and p,
                   timeout=30, what="local-process pod Ready")
    pod_ip = pod.status.pod_ip
    assert ipaddress.ip_address(pod_ip) in ipaddress.ip_network(POD_CIDR)
    proc = kube_local_node.process(kube_namespace, "web")
    assert proc is not None and proc.argv[-2:] == [pod_ip, "8888"]
    assert proc.returncode is None

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{pod_ip}:8888/", timeout=5) as resp:
        assert resp.status == 200
        assert b"Directory listing" in resp.read()

    core.delete_namespaced_pod("web", kube_namespace)

    def gone():
        try:
            core.read_namespaced_pod("web", kube_namespace)
            return False
        except ApiException as exc:
            return exc.status == 404

    wait_for(gone, timeout=30, what="pod removed")
    assert proc.returncode is not None, "the pod's process still runs after the pod was deleted"
    assert not kube_local_node.errors


def test_local_process_exit_is_reported(kube_api_client, kube_namespace, kube_local_node):
    core = client.CoreV1Api(kube_api_client)
    core.create_namespaced_pod(kube_namespace, _pod(
        "job",
        labels={LOCAL_PROCESS_LABEL: "true"},
        restartPolicy="Never",
        container={"command": ["python3", "-c", "import os, sys; print(os.environ['GREETING']); sys.exit(3)"],
                   "env": [{"name": "GREETING", "value": "hello from $(HOSTNAME_HINT)"},
                           {"name": "HOSTNAME_HINT", "value": "unused"}]},
    ))
    pod = wait_for(lambda: (p := core.read_namespaced_pod("job", kube_namespace)).status.phase == "Failed" and p,
                   timeout=30, what="pod Failed after its process exited")
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 3
    # $(VAR) only refers to variables defined before it, as in Kubernetes.
    assert kube_local_node.process(kube_namespace, "job").output().strip() == "hello from $(HOSTNAME_HINT)"
