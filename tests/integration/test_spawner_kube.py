"""KarvdashSpawner on a real Kubernetes API server.

The hub's Kubernetes account in these tests is a service account bound to
the ClusterRole written in docs/kubernetes-permissions.md and nothing else,
so the documented rules are what is tested. No container runs (kwok plays
the node): pods become Running without images, and the end-to-end test has
tests/kube/node.py run the pod's own command (jupyterhub-singleuser) as a
local process on the pod's 127.x IP.
"""

from __future__ import annotations

import base64
import configparser
import json
import re
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from karvdash_hub import objects
from karvdash_hub.namespaces import NamespaceNotOwned, UserNamespaces
from karvdash_hub.settings import load_settings
from tests.hubprocess import start_hub
from tests.kube.cluster import LOCAL_PROCESS_LABEL
from tests.kube.fixtures import new_api_client, wait_for

pytestmark = [pytest.mark.kube, pytest.mark.integration]

PERMISSIONS_DOC = Path(__file__).resolve().parents[2] / "docs" / "kubernetes-permissions.md"
HUB_NAMESPACE = "karvdash"
HUB_ACCOUNT = "karvdash-hub"
DATASET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "datasets.datashim.io"},
    "spec": {
        "group": "datashim.io",
        "scope": "Namespaced",
        "names": {"plural": "datasets", "singular": "dataset", "kind": "Dataset"},
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


def documented_cluster_role() -> dict:
    blocks = re.findall(r"```yaml\n(.*?)```", PERMISSIONS_DOC.read_text(), re.S)
    roles = [doc for doc in map(yaml.safe_load, blocks) if doc.get("kind") == "ClusterRole"]
    assert len(roles) == 1, "docs/kubernetes-permissions.md must hold exactly one ClusterRole"
    return roles[0]


def ignore_conflict(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except ApiException as e:
        if e.status != 409:
            raise


@pytest.fixture(scope="module")
def admin(kube_api_client):
    return kube_api_client


@pytest.fixture(scope="module")
def hub_kubeconfig(kube_cluster, admin, tmp_path_factory) -> Path:
    """A kubeconfig for a service account that holds only the documented ClusterRole."""
    core = client.CoreV1Api(admin)
    rbac = client.RbacAuthorizationV1Api(admin)
    ignore_conflict(core.create_namespace, {"metadata": {"name": HUB_NAMESPACE}})
    wait_for(lambda: _exists(core.read_namespaced_service_account, "default", HUB_NAMESPACE), what="default SA")
    ignore_conflict(core.create_namespaced_service_account, HUB_NAMESPACE, {"metadata": {"name": HUB_ACCOUNT}})
    role = documented_cluster_role()
    ignore_conflict(rbac.create_cluster_role, role)
    ignore_conflict(
        rbac.create_cluster_role_binding,
        {
            "metadata": {"name": "karvdash-hub"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]},
            "subjects": [{"kind": "ServiceAccount", "name": HUB_ACCOUNT, "namespace": HUB_NAMESPACE}],
        },
    )
    ignore_conflict(client.ApiextensionsV1Api(admin).create_custom_resource_definition, DATASET_CRD)
    token = core.create_namespaced_service_account_token(
        HUB_ACCOUNT, HUB_NAMESPACE, {"spec": {"expirationSeconds": 3 * 3600}}
    ).status.token
    path = tmp_path_factory.mktemp("hub-account") / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "test",
                        "cluster": {
                            "server": kube_cluster.server,
                            "certificate-authority-data": base64.b64encode(kube_cluster.ca.read_bytes()).decode(),
                        },
                    }
                ],
                "users": [{"name": "hub", "user": {"token": token}}],
                "contexts": [{"name": "hub", "context": {"cluster": "test", "user": "hub"}}],
                "current-context": "hub",
            }
        )
    )
    path.chmod(0o600)
    wait_for(lambda: _dataset_api_ready(admin), what="the Dataset CRD")
    return path


def _exists(read, *args) -> bool:
    try:
        read(*args)
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


def _dataset_api_ready(api) -> bool:
    try:
        client.CustomObjectsApi(api).list_cluster_custom_object("datashim.io", "v1alpha1", "datasets")
        return True
    except ApiException:
        return False


def _gone_or_terminating(core, namespace: str) -> bool:
    try:
        return core.read_namespace(namespace).status.phase == "Terminating"
    except ApiException as e:
        return e.status == 404


def _settings(tmp_path, **env):
    return load_settings(
        environ={
            "KARVDASH_STATE_DIR": str(tmp_path),
            "KARVDASH_MODE": "kubernetes",
            "KARVDASH_INGRESS_URL": "https://example.test",
            **env,
        }
    )


# --- the I/O layer (namespaces.py) with the hub's documented permissions ---------------


@pytest.fixture
async def hub_clients(hub_kubeconfig):
    from kubernetes_asyncio import client as aclient
    from kubernetes_asyncio import config as aconfig

    configuration = aclient.Configuration()
    await aconfig.load_kube_config(config_file=str(hub_kubeconfig), client_configuration=configuration)
    api = aclient.ApiClient(configuration)
    yield aclient.CoreV1Api(api), aclient.RbacAuthorizationV1Api(api), aclient.CustomObjectsApi(api)
    await api.close()


def _user() -> str:
    return "u" + uuid.uuid4().hex[:8]


async def test_namespace_setup_is_idempotent(tmp_path, hub_clients, admin):
    core_admin = client.CoreV1Api(admin)
    rbac_admin = client.RbacAuthorizationV1Api(admin)
    user = _user()
    namespace = f"karvdash-{user}"
    registry = {"KARVDASH_DOCKER_REGISTRY_URL": "https://puller:pw@registry.example.test:5000"}
    spaces = UserNamespaces(_settings(tmp_path, **registry), *hub_clients)
    seen, messages = [], []

    def token_source(current):
        seen.append(current)
        return current or "token-1"

    await spaces.ensure(user, token_source, report=messages.append)
    assert messages[0] == f"Preparing your namespace {namespace}"
    labels = core_admin.read_namespace(namespace).metadata.labels
    assert labels["karvdash.io/user-namespace"] == "enabled" and labels["karvdash.io/owner"] == user
    binding = rbac_admin.read_namespaced_role_binding("karvdash-user", namespace)
    assert (binding.role_ref.kind, binding.role_ref.name) == ("ClusterRole", "edit")
    assert [(s.kind, s.name, s.namespace) for s in binding.subjects] == [("ServiceAccount", "default", namespace)]
    secret = core_admin.read_namespaced_secret("karvdash-api", namespace)
    ini = base64.b64decode(secret.data["config.ini"]).decode()
    assert ini == objects.api_settings_ini("https://example.test/services/karvdash/api/", "token-1")
    pull = core_admin.read_namespaced_secret("karvdash-registry", namespace)
    assert pull.type == "kubernetes.io/dockerconfigjson"

    # again: the same token is offered back and nothing changes
    before = core_admin.read_namespaced_secret("karvdash-api", namespace).metadata.resource_version
    await spaces.ensure(user, token_source)
    assert seen == ["", "token-1"]
    assert core_admin.read_namespaced_secret("karvdash-api", namespace).metadata.resource_version == before

    # the namespace role changes; the registry loses its credentials
    spaces = UserNamespaces(_settings(tmp_path, KARVDASH_NAMESPACE_ROLE="admin"), *hub_clients)
    await spaces.ensure(user, lambda current: "token-2")
    assert rbac_admin.read_namespaced_role_binding("karvdash-user", namespace).role_ref.name == "admin"
    assert not _exists(core_admin.read_namespaced_secret, "karvdash-registry", namespace)
    ini = base64.b64decode(core_admin.read_namespaced_secret("karvdash-api", namespace).data["config.ini"]).decode()
    assert objects.read_api_settings_token(ini) == "token-2"


async def test_datasets_are_listed_from_the_users_namespace(tmp_path, hub_clients, admin):
    user = _user()
    spaces = UserNamespaces(_settings(tmp_path, KARVDASH_DATASETS_AVAILABLE="true"), *hub_clients)
    await spaces.ensure(user, lambda current: "t")
    assert await spaces.list_datasets(user) == []
    custom = client.CustomObjectsApi(admin)
    for name in ("zeta", "alpha"):
        custom.create_namespaced_custom_object(
            "datashim.io",
            "v1alpha1",
            f"karvdash-{user}",
            "datasets",
            {
                "apiVersion": "datashim.io/v1alpha1",
                "kind": "Dataset",
                "metadata": {"name": name},
                "spec": {"local": {"type": "ARCHIVE", "url": "https://example.test/a.tar", "format": "application/x-tar"}},
            },
        )
    assert await spaces.list_datasets(user) == ["alpha", "zeta"]
    # an older Datashim API group that this cluster does not have: no datasets, no failure
    old = UserNamespaces(_settings(tmp_path, KARVDASH_DATASETS_API_GROUP="com.ie.ibm.hpsys"), *hub_clients)
    assert await old.list_datasets(user) == []


async def test_a_namespace_not_labelled_as_the_users_is_never_used(tmp_path, hub_clients, admin):
    core_admin = client.CoreV1Api(admin)
    user = _user()
    core_admin.create_namespace({"metadata": {"name": f"karvdash-{user}", "labels": {"team": "ops"}}})
    spaces = UserNamespaces(_settings(tmp_path), *hub_clients)
    with pytest.raises(NamespaceNotOwned) as error:
        await spaces.ensure(user, lambda current: "t")
    assert error.value.jupyterhub_message == (
        f"The namespace karvdash-{user} exists but is not labelled as yours (karvdash.io/owner={user}). "
        "An administrator must label it or remove it."
    )
    assert not _exists(client.RbacAuthorizationV1Api(admin).read_namespaced_role_binding, "karvdash-user", f"karvdash-{user}")
    assert await spaces.delete_user(user) == []
    assert core_admin.read_namespace(f"karvdash-{user}").status.phase == "Active"


async def test_deleting_a_user_removes_namespace_and_their_volumes(tmp_path, hub_clients, admin):
    core_admin = client.CoreV1Api(admin)
    user, other = _user(), _user()
    spaces = UserNamespaces(_settings(tmp_path), *hub_clients)
    await spaces.ensure(user, lambda current: "t")
    for owner in (user, other):
        core_admin.create_persistent_volume(
            {
                "metadata": {"name": f"files-{owner}", "labels": {"karvdash.io/owner": owner}},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteMany"],
                    "nfs": {"server": "nfs.example.test", "path": f"/exports/{owner}"},
                },
            }
        )
    deleted = await spaces.delete_user(user)
    assert deleted == [f"namespace/karvdash-{user}", f"persistentvolume/files-{user}"]
    wait_for(lambda: _gone_or_terminating(core_admin, f"karvdash-{user}"), what="namespace deletion")
    wait_for(lambda: not _exists(core_admin.read_persistent_volume, f"files-{user}"), what="volume deletion")
    assert _exists(core_admin.read_persistent_volume, f"files-{other}")
    core_admin.delete_persistent_volume(f"files-{other}")
