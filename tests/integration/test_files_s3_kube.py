"""S3 file domains on a real kube-apiserver: the deployment's S3
credentials reach every user's keys, so they never go into a user
namespace, where the user could read them. Pods get no ``/private`` and
``/shared`` then, from the spawner or from the real ``karvdash-webhook``,
and still get the karvdashctl settings.

The hub's Kubernetes account holds only the documented ClusterRole; the S3
server is moto (tests/s3files.py). What is checked is on the control plane:
every Secret of the user's namespace and every pod spec, as the API server
keeps them.
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from kubernetes import client

from karvdash_hub.core import labels
from karvdash_hub.files.domains import S3_NOT_MOUNTED
from karvdash_hub.namespaces.store import UserNamespaces
from tests.hubprocess import start_hub
from tests.integration.test_spawner_kube import (  # noqa: F401 - fixtures
    PASSWORD,
    _pod,
    _settings,
    _start_with_progress,
    _user,
    admin,
    hub_clients,
    hub_kubeconfig,
)
from tests.integration.test_webhook_kube import (
    pod,
    running_webhook,
    wait_until_mutating,
)
from tests.kube.fixtures import wait_for
from tests.kube.node import HUB_ARGS
from tests.s3files import ACCESS_KEY, SECRET_KEY

pytestmark = [pytest.mark.kube, pytest.mark.integration]

S3_ENV = {
    "KARVDASH_FILES_URL": "minio://minio.files.svc:9000/karvdash-files/deploy",
    "KARVDASH_FILES_S3_ACCESS_KEY": "AKIAFILES",
    "KARVDASH_FILES_S3_SECRET_KEY": "files-secret-key",
}
FILE_DOMAIN_VOLUMES = {"karvdash-private", "karvdash-shared"}


def secret_texts(admin, namespace: str) -> dict[str, str]:  # noqa: F811
    """Every Secret of ``namespace``, as its decoded data joined into one text."""
    found = client.CoreV1Api(admin).list_namespaced_secret(namespace).items
    return {
        s.metadata.name: "\n".join(base64.b64decode(v).decode(errors="replace") for v in (s.data or {}).values())
        for s in found
    }


def assert_no_s3_credentials(admin, namespace: str, access_key: str, secret_key: str) -> None:  # noqa: F811
    texts = secret_texts(admin, namespace)
    assert "karvdash-api" in texts, "the karvdashctl settings are still written"
    leaking = [name for name, text in texts.items() if access_key in text or secret_key in text]
    assert leaking == [], f"Secrets of {namespace} holding the deployment's S3 credentials: {leaking}"


def datasets_of(admin, namespace: str) -> list[str]:  # noqa: F811
    items = client.CustomObjectsApi(admin).list_namespaced_custom_object(
        "datashim.io", "v1alpha1", namespace, "datasets")["items"]
    return sorted(item["metadata"]["name"] for item in items)


async def test_a_user_namespace_never_holds_the_deployments_s3_credentials(tmp_path, hub_clients, admin):  # noqa: F811
    user = _user()
    namespace = f"karvdash-{user}"
    spaces = UserNamespaces(_settings(tmp_path, **S3_ENV, KARVDASH_DATASETS_AVAILABLE="true"), *hub_clients)
    messages = []
    await spaces.ensure(user, lambda current: "t", report=messages.append)
    # a second start too (every start puts the namespace's objects back)
    await spaces.ensure(user, lambda current: "t", report=messages.append)
    assert_no_s3_credentials(admin, namespace, "AKIAFILES", "files-secret-key")
    assert datasets_of(admin, namespace) == []
    assert not any("S3" in m or "Datashim" in m for m in messages), messages


@pytest.fixture(scope="module")
def s3_kube_hub(tmp_path_factory, hub_kubeconfig, kube_local_node, s3_server):  # noqa: F811
    state = tmp_path_factory.mktemp("s3-kube-hub")
    hub = start_hub(
        state,
        env={
            "KARVDASH_MODE": "kubernetes",
            "KARVDASH_INGRESS_URL": "https://example.test",
            "KUBECONFIG": str(hub_kubeconfig),
            **s3_server.hub_env(s3_server.new_bucket()),
        },
        # tests/kube/node.py runs the servers as local processes
        args=["--JupyterHub.ip=127.0.0.1", *HUB_ARGS],
    )
    yield hub
    hub.stop()


def test_a_server_on_s3_files_gets_no_s3_credentials_and_no_file_mounts(s3_kube_hub, admin):  # noqa: F811
    user = _user()
    namespace = f"karvdash-{user}"
    s3_kube_hub.create_user(user, PASSWORD)
    token = s3_kube_hub.token_for(user, PASSWORD)
    core = client.CoreV1Api(admin)
    response, messages = _start_with_progress(
        s3_kube_hub, user, token, {"profile": "jupyter"}, until=lambda e: e.get("ready") or e.get("failed"))
    assert response.status_code in (201, 202), response.text
    assert messages[-1].startswith(f"Server ready at /user/{user}/"), messages
    try:
        assert_no_s3_credentials(admin, namespace, ACCESS_KEY, SECRET_KEY)
        server = _pod(core, namespace, f"jupyter-{user}")
        spec = client.ApiClient().sanitize_for_serialization(server.spec)
        assert ACCESS_KEY not in json.dumps(spec) and SECRET_KEY not in json.dumps(spec)
        volumes = {v.name for v in server.spec.volumes}
        assert not volumes & FILE_DOMAIN_VOLUMES, volumes
        mounts = {m.mount_path: m.name for m in server.spec.containers[0].volume_mounts}
        assert "/private" not in mounts and "/shared" not in mounts
        # karvdashctl in the server reaches the files through the dashboard
        assert mounts["/var/lib/karvdash"] == "karvdash-api"
    finally:
        assert s3_kube_hub.api("DELETE", f"/users/{user}/server", token).status_code in (202, 204)
        wait_for(lambda: _pod(core, namespace, f"jupyter-{user}") is None, timeout=60, what="pod deletion")
    # the hub said why, once
    assert s3_kube_hub.log().count(S3_NOT_MOUNTED) == 1


@pytest.fixture(scope="module")
def s3_webhook(kube_cluster, kube_api_client, tmp_path_factory):
    with running_webhook(kube_cluster, kube_api_client, tmp_path_factory, env=S3_ENV,
                         chart_namespace="karvdash-webhook-s3-test") as process:
        yield process


def test_the_webhook_mounts_no_s3_file_domains(s3_webhook, kube_api_client):
    core = client.CoreV1Api(kube_api_client)
    namespace = f"karvdash-alice-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace, "labels": {
        labels.NAMESPACE_LABEL: labels.NAMESPACE_LABEL_VALUE, labels.OWNER_LABEL: "alice"}}})
    try:
        client.CustomObjectsApi(kube_api_client).create_namespaced_custom_object(
            "datashim.io", "v1alpha1", namespace, "datasets", {
                "apiVersion": "datashim.io/v1alpha1", "kind": "Dataset", "metadata": {"name": "climate"},
                "spec": {"local": {"type": "COS", "bucket": "b", "endpoint": "http://s3.test"}},
            })
        wait_until_mutating(core, namespace)
        created = core.create_namespaced_pod(namespace, pod("notebook"))
        volumes = {v.name: v for v in created.spec.volumes}
        assert not set(volumes) & FILE_DOMAIN_VOLUMES, sorted(volumes)
        mounts = {m.mount_path: m.name for m in created.spec.containers[0].volume_mounts}
        assert "/private" not in mounts and "/shared" not in mounts
        # the karvdashctl settings and the user's own datasets, as in every pod
        assert volumes["karvdash-api"].secret.secret_name == "karvdash-api"
        assert mounts["/var/lib/karvdash"] == "karvdash-api"
        assert mounts["/mnt/datasets/climate"] == "dataset-climate"
    finally:
        core.delete_namespace(namespace)
