"""The Helm chart on a real API server: every rendered object passes a
server-side dry run (with stand-ins for the cert-manager and Datashim CRDs,
tests/integration/crds/), `helm install` brings every Deployment to
available (kwok plays the node; no container runs), and `helm uninstall`
leaves nothing but the CRDs."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.kube.fixtures import wait_for

pytestmark = [pytest.mark.kube, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "chart" / "karvdash-hub"
CRDS = Path(__file__).resolve().parent / "crds"
BASE = {
    "karvdash": {"ingressURL": "https://example.test", "filesURL": "file:///mnt/karvdash/files",
                 "stateHostPath": "/mnt/karvdash/state"},
}
VALUE_SETS = {
    "file": {},
    "nfs": {"karvdash": {"filesURL": "nfs://nfs.example.test/export/karvdash"}},
    "datasets-on": {"karvdash": {"datasetsAvailable": True}},
    "datasets-off": {"karvdash": {"datasetsAvailable": False}, "networkPolicy": {"enabled": False}},
    "oauth": {"karvdash": {"authenticator": "oauth"},
              "hub": {"config": {"GenericOAuthenticator": {"client_id": "karvdash", "client_secret": "s3cret"}},
                      "db": {"url": "postgresql://hub@db.example.test/hub"}}},
    "no-cert-manager": {"webhook": {"certManager": {"enabled": False},
                                    "tls": {"secretName": "webhook-tls", "caBundle": "not checked by the API"}}},
}


def merged(values: dict) -> dict:
    out = json.loads(json.dumps(BASE))
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def install_crds(cluster, api_client) -> None:
    """The cert-manager and Datashim stand-ins (idempotent: apply)."""
    cluster.kubectl("apply", "-f", str(CRDS))
    ext = client.ApiextensionsV1Api(api_client)
    names = [doc["metadata"]["name"] for path in sorted(CRDS.glob("*.yaml"))
             for doc in yaml.safe_load_all(path.read_text()) if doc]

    def established():
        for name in names:
            crd = ext.read_custom_resource_definition(name)
            if not any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])):
                return False
        return True

    wait_for(established, timeout=30, what="test CRDs established")


def render_chart(cluster, directory: Path, values: dict, namespace: str, include_crds: bool = False) -> list[dict]:
    path = directory / f"values-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(merged(values)))
    args = ["template", "kd", str(CHART), "--namespace", namespace, "-f", str(path)]
    if include_crds:
        args.append("--include-crds")
    return [doc for doc in yaml.safe_load_all(cluster.helm(*args).stdout) if doc]


@pytest.fixture(scope="module")
def crds(kube_cluster, kube_api_client):
    install_crds(kube_cluster, kube_api_client)


def test_helm_lint(kube_cluster, tmp_path):
    for name, values in VALUE_SETS.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(merged(values)))
        out = kube_cluster.helm("lint", "--strict", str(CHART), "-f", str(path)).stdout
        assert "0 chart(s) failed" in out, (name, out)


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_rendered_object_passes_a_server_side_dry_run(kube_cluster, crds, kube_namespace, tmp_path, name):
    objects = render_chart(kube_cluster, tmp_path, VALUE_SETS[name], kube_namespace, include_crds=True)
    kinds = sorted({o["kind"] for o in objects})
    assert {"Deployment", "Service", "Secret", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
            "CustomResourceDefinition"} <= set(kinds)
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    proc = kube_cluster.kubectl("apply", "--dry-run=server", "--namespace", kube_namespace, "-f", str(manifest),
                                "-o", "name", check=False)
    assert proc.returncode == 0, proc.stderr
    accepted = proc.stdout.split()
    assert len(accepted) == len(objects), (accepted, kinds)


NAMESPACED = ("deployments,replicasets,pods,services,secrets,configmaps,serviceaccounts,roles,rolebindings,"
              "networkpolicies,ingresses,poddisruptionbudgets,persistentvolumeclaims,issuers,certificates")
CLUSTER_SCOPED = ("clusterroles,clusterrolebindings,mutatingwebhookconfigurations,validatingwebhookconfigurations,"
                  "persistentvolumes")


def labelled(cluster, kinds: str, namespace: str | None = None) -> list[str]:
    args = ["get", kinds, "-l", "app.kubernetes.io/instance=kd", "-o", "name"]
    if namespace:
        args += ["--namespace", namespace]
    return cluster.kubectl(*args).stdout.split()


def test_install_and_uninstall(kube_cluster, kube_api_client, crds, kube_namespace, tmp_path):
    apps = client.AppsV1Api(kube_api_client)
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(merged({"webhook": {"replicas": 2}})))
    try:
        kube_cluster.helm("install", "kd", str(CHART), "--namespace", kube_namespace, "-f", str(values),
                          "--wait", "--timeout", "120s", timeout=180)
        deployments = {d.metadata.name: d for d in apps.list_namespaced_deployment(kube_namespace).items}
        assert set(deployments) == {f"kd-karvdash-hub-{c}" for c in ("hub", "proxy", "dashboard", "webhook")}
        for name, deployment in deployments.items():
            available = [c for c in deployment.status.conditions or [] if c.type == "Available"]
            assert available and available[0].status == "True", name
            assert deployment.status.available_replicas == deployment.spec.replicas, name
        assert deployments["kd-karvdash-hub-webhook"].status.available_replicas == 2
        # the values file in the cluster is the one the hub reads
        secret = client.CoreV1Api(kube_api_client).read_namespaced_secret("kd-karvdash-hub-secrets", kube_namespace)
        import base64

        from karvdash_hub.settings import load_settings

        rendered = tmp_path / "from-cluster.yaml"
        rendered.write_bytes(base64.b64decode(secret.data["values.yaml"]))
        assert load_settings(values_file=rendered, environ={}).mode == "kubernetes"
        # an upgrade keeps the generated tokens
        token = secret.data["dashboard-token"]
        kube_cluster.helm("upgrade", "kd", str(CHART), "--namespace", kube_namespace, "-f", str(values),
                          "--set", "karvdash.dashboardTitle=Lab", "--wait", "--timeout", "120s", timeout=180)
        again = client.CoreV1Api(kube_api_client).read_namespaced_secret("kd-karvdash-hub-secrets", kube_namespace)
        assert again.data["dashboard-token"] == token
        assert labelled(kube_cluster, CLUSTER_SCOPED)
    finally:
        kube_cluster.helm("uninstall", "kd", "--namespace", kube_namespace, "--wait", "--timeout", "120s",
                          check=False, timeout=180)

    def nothing_left():
        return not labelled(kube_cluster, NAMESPACED, kube_namespace) and not labelled(kube_cluster, CLUSTER_SCOPED)

    wait_for(nothing_left, timeout=60, what="every object of the release gone")
    remaining = kube_cluster.kubectl("get", "all,secrets,configmaps,serviceaccounts,roles,rolebindings,"
                                     "networkpolicies,ingresses,certificates,issuers", "--namespace", kube_namespace,
                                     "-o", "name").stdout.split()
    # only what Kubernetes itself keeps in every namespace
    assert [r for r in remaining if r not in ("serviceaccount/default", "configmap/kube-root-ca.crt")] == []
    # the CRDs stay (Helm never deletes them)
    try:
        client.ApiextensionsV1Api(kube_api_client).read_custom_resource_definition("templates.karvdash.io")
    except ApiException as e:  # pragma: no cover - reported as a failure
        pytest.fail(f"the Template CRD is gone: {e.status}")
