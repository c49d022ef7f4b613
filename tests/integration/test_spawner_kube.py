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
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from karvdash_hub.core.settings import load_settings
from karvdash_hub.namespaces import objects
from karvdash_hub.namespaces.store import NamespaceNotOwned, UserNamespaces
from tests.hubprocess import start_hub
from tests.kube.fixtures import wait_for
from tests.kube.node import HUB_ARGS

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


async def test_namespace_setup_is_idempotent(tmp_path, hub_clients, admin, monkeypatch):
    core_admin = client.CoreV1Api(admin)
    rbac_admin = client.RbacAuthorizationV1Api(admin)
    user = _user()
    namespace = f"karvdash-{user}"
    registry = {"KARVDASH_DOCKER_REGISTRY_URL": "https://puller:pw@registry.example.test:5000"}
    spaces = UserNamespaces(_settings(tmp_path, **registry), *hub_clients)
    seen, messages, reads = [], [], []

    def token_source(current):
        seen.append(current)
        return current or "token-1"

    def counted(name, method):
        async def read(*args, **kwargs):
            reads.append(name)
            return await method(*args, **kwargs)
        return read

    for api in (spaces.core, spaces.rbac, spaces.networking):
        for name in dir(api):
            if name.startswith("read_"):
                monkeypatch.setattr(api, name, counted(name, getattr(api, name)))

    await spaces.ensure(user, token_source, report=messages.append)
    assert messages[0] == f"Preparing your namespace {namespace}"
    # a namespace made now holds nothing of ours: nothing is read before writing
    assert reads == []
    labels = core_admin.read_namespace(namespace).metadata.labels
    assert labels["karvdash.io/user-namespace"] == "enabled" and labels["karvdash.io/owner"] == user
    binding = rbac_admin.read_namespaced_role_binding("karvdash-user", namespace)
    assert (binding.role_ref.kind, binding.role_ref.name) == ("ClusterRole", "edit")
    assert [(s.kind, s.name, s.namespace) for s in binding.subjects] == [("ServiceAccount", "default", namespace)]
    secret = core_admin.read_namespaced_secret("karvdash-api", namespace)
    ini = base64.b64decode(secret.data["config.ini"]).decode()
    assert ini == objects.api_settings_ini("https://example.test/services/karvdash/karvdash2/api/", "token-1")
    pull = core_admin.read_namespaced_secret("karvdash-registry", namespace)
    assert pull.type == "kubernetes.io/dockerconfigjson"

    # again: the same token is offered back and nothing changes
    before = core_admin.read_namespaced_secret("karvdash-api", namespace).metadata.resource_version
    await spaces.ensure(user, token_source)
    assert seen == ["", "token-1"]
    assert {"read_namespace", "read_namespaced_secret"} <= set(reads)
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


# --- a real karvdash-hub in kubernetes mode ----------------------------------------------

PASSWORD = "kube-test-password"
# a test profile whose pods no node accepts: they stay Pending, as behind a missing image
UNSCHEDULABLE_PROFILE = """\
display_name: Unschedulable
kubespawner_override:
  node_selector: {karvdash-hub.test/no-such-node: "true"}
"""


@pytest.fixture(scope="module")
def kube_hub(tmp_path_factory, hub_kubeconfig, kube_local_node):
    state = tmp_path_factory.mktemp("kube-hub")
    (state / "profiles").mkdir()
    (state / "profiles" / "unschedulable.yaml").write_text(UNSCHEDULABLE_PROFILE)
    hub = start_hub(
        state,
        env={
            "KARVDASH_MODE": "kubernetes",
            "KARVDASH_INGRESS_URL": "https://example.test",
            "KARVDASH_DATASETS_AVAILABLE": "true",
            "KUBECONFIG": str(hub_kubeconfig),
        },
        # tests/kube/node.py runs the servers as local processes
        args=["--JupyterHub.ip=127.0.0.1", *HUB_ARGS],
    )
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def users(kube_hub):
    tokens = {}
    for name in ("alice", "bob", "carol", "dave", "erin"):
        kube_hub.create_user(name, PASSWORD)
        tokens[name] = kube_hub.token_for(name, PASSWORD)
    return tokens


def _pod(core, namespace, name):
    try:
        return core.read_namespaced_pod(name, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def _server(hub, user, token, name=""):
    return hub.api("GET", f"/users/{user}", token).json()["servers"].get(name)


def _progress_messages(hub, user, token, until, give_up=lambda: False) -> list[str]:
    """Messages of the spawn progress stream until an event ``until(event)`` is true."""
    messages = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not give_up():
        response = hub.api("GET", f"/users/{user}/server/progress", token, stream=True)
        if response.status_code != 200:
            time.sleep(0.1)
            continue
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("data:"):
                event = json.loads(line[5:])
                messages.append(event.get("message", ""))
                if until(event):
                    return messages
        return messages
    return messages


def _start_with_progress(hub, user, token, options, until, while_pending=None):
    """Start ``user``'s server and read its progress stream while it starts
    (``while_pending`` runs meanwhile): the start request's response and the
    progress messages."""
    result = {}

    def start():
        result["response"] = hub.api("POST", f"/users/{user}/server", token, json={"user_options": options})

    def pending():
        try:
            while_pending()
        except BaseException as e:  # reported below, in the test's thread
            result["error"] = e

    threads = [threading.Thread(target=start)]
    if while_pending is not None:
        threads.append(threading.Thread(target=pending))
    for thread in threads:
        thread.start()
    try:
        refused = lambda: "response" in result and result["response"].status_code >= 400  # noqa: E731
        messages = _progress_messages(hub, user, token, until, give_up=refused)
    finally:
        for thread in threads:
            thread.join(120)
    if "error" in result:
        raise result["error"]
    return result["response"], messages


def _spawn_failure(hub, user, token, options, while_pending=None) -> str:
    """Start a server expected to fail; return the message the person sees."""
    response, messages = _start_with_progress(
        hub, user, token, options, until=lambda e: e.get("failed"), while_pending=while_pending
    )
    if response.status_code >= 400:
        # a start refused for a reason the person can act on is never a 500
        assert response.status_code < 500, response.text
        return response.json()["message"]
    return messages[-1]


def test_spawn_prepares_the_namespace_and_runs_jupyterlab(kube_hub, users, admin):
    core = client.CoreV1Api(admin)
    token = users["alice"]
    response, messages = _start_with_progress(
        kube_hub,
        "alice",
        token,
        {"profile": "jupyter", "resources": "medium"},
        until=lambda e: e.get("ready") or e.get("failed"),
    )
    assert response.status_code in (201, 202), response.text
    assert "Preparing your namespace karvdash-alice" in messages
    assert "Creating your server's pod in karvdash-alice" in messages
    assert any("Successfully assigned karvdash-alice/jupyter-alice" in m for m in messages), messages
    assert messages[-1].startswith("Server ready at /user/alice/"), messages
    wait_for(lambda: (_server(kube_hub, "alice", token) or {}).get("ready"), timeout=60, what="alice's server")

    namespace = core.read_namespace("karvdash-alice")
    assert namespace.metadata.labels["karvdash.io/user-namespace"] == "enabled"
    assert namespace.metadata.labels["karvdash.io/owner"] == "alice"
    binding = client.RbacAuthorizationV1Api(admin).read_namespaced_role_binding("karvdash-user", "karvdash-alice")
    assert binding.role_ref.name == "edit"
    pod = core.read_namespaced_pod("jupyter-alice", "karvdash-alice")
    assert pod.status.phase == "Running"
    assert pod.spec.service_account_name == "default"
    volumes = {v.name: v for v in pod.spec.volumes}
    files = kube_hub.state_dir / "files"
    assert volumes["karvdash-private"].host_path.path == str(files / "private" / "alice")
    assert volumes["karvdash-shared"].host_path.path == str(files / "shared")
    mounts = {m.mount_path: m.name for m in pod.spec.containers[0].volume_mounts}
    assert mounts["/private"] == "karvdash-private" and mounts["/shared"] == "karvdash-shared"
    assert mounts["/var/lib/karvdash"] == "karvdash-api"
    resources = pod.spec.containers[0].resources
    assert (resources.limits["cpu"], resources.limits["memory"]) == ("2", str(8 * 1024**3))

    # the API settings hold a token of alice limited to the dashboard's scopes
    secret = core.read_namespaced_secret("karvdash-api", "karvdash-alice")
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(base64.b64decode(secret.data["config.ini"]).decode())
    assert ini["Karvdash"]["base_url"] == "https://example.test/services/karvdash/karvdash2/api/"
    identity = kube_hub.api("GET", "/user", ini["Karvdash"]["token"]).json()
    assert identity["name"] == "alice"
    assert identity["scopes"], "the namespace token carries the dashboard's scopes"
    outside = {
        s for s in identity["scopes"] if not s.startswith("custom:karvdash:") and not s.endswith("!service=karvdash")
    }
    # beyond the dashboard's scopes only JupyterHub's own "who am I" scopes
    assert outside <= {"read:users:name!user=alice", "read:users:groups!user=alice"}, outside
    assert "custom:karvdash:files:write" in identity["scopes"]

    # JupyterLab (jupyterhub-singleuser run by the node on the pod's IP) through the hub's proxy
    status = requests.get(
        f"{kube_hub.url}/user/alice/api/status", headers={"Authorization": f"token {token}"}, timeout=30
    )
    assert status.status_code == 200 and "started" in status.json()
    lab = kube_hub.login("alice", PASSWORD).get(f"{kube_hub.url}/user/alice/lab", timeout=60)
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    anonymous = requests.get(f"{kube_hub.url}/user/alice/lab", allow_redirects=False, timeout=30)
    assert anonymous.status_code == 302
    other = requests.get(
        f"{kube_hub.url}/user/alice/api/status", headers={"Authorization": f"token {users['bob']}"}, timeout=30
    )
    assert other.status_code in (403, 404)

    assert "unhandled user_options" not in kube_hub.log()


def test_stop_deletes_the_pod(kube_hub, users, admin):
    core = client.CoreV1Api(admin)
    assert _pod(core, "karvdash-alice", "jupyter-alice") is not None
    response = kube_hub.api("DELETE", "/users/alice/server", users["alice"])
    assert response.status_code in (202, 204)
    wait_for(lambda: _pod(core, "karvdash-alice", "jupyter-alice") is None, timeout=60, what="pod deletion")
    wait_for(lambda: _server(kube_hub, "alice", users["alice"]) is None, timeout=30, what="server stopped")
    assert core.read_namespace("karvdash-alice").status.phase == "Active"  # stopping keeps the namespace


def test_image_outside_the_allowed_pattern_is_refused(kube_hub, users, admin):
    response = kube_hub.api(
        "POST",
        "/users/alice/servers/lab2",
        users["alice"],
        json={"user_options": {"profile": "jupyter", "image--unlisted-choice": "evil image;reboot"}},
    )
    assert response.status_code == 400
    assert response.json()["message"] == (
        "Invalid server options: Image: 'evil image;reboot' is not allowed: "
        "an image reference such as registry.example.com/team/image:tag"
    )
    assert client.CoreV1Api(admin).list_namespaced_pod("karvdash-alice").items == []


def test_a_user_cannot_spawn_into_another_users_namespace(kube_hub, users, admin):
    response = kube_hub.api(
        "POST",
        "/users/bob/server",
        users["bob"],
        json={"user_options": {"profile": "jupyter", "namespace": "karvdash-alice"}},
    )
    assert response.status_code == 400
    assert "has no option 'namespace'" in response.json()["message"]
    # bob may not start alice's server either
    response = kube_hub.api("POST", "/users/alice/server", users["bob"], json={"user_options": {}})
    assert response.status_code in (403, 404)
    # and bob's namespace account has no rights in alice's namespace
    authz = client.AuthorizationV1Api(admin)

    def allowed(namespace):
        review = authz.create_subject_access_review(
            {
                "spec": {
                    "user": "system:serviceaccount:karvdash-alice:default",
                    "groups": ["system:serviceaccounts", "system:serviceaccounts:karvdash-alice"],
                    "resourceAttributes": {"namespace": namespace, "verb": "create", "resource": "pods"},
                }
            }
        )
        return review.status.allowed

    assert allowed("karvdash-alice") is True
    assert allowed("karvdash-bob") is False
    assert allowed("default") is False


def test_exceeded_quota_is_explained(kube_hub, users, admin):
    core = client.CoreV1Api(admin)
    # an administrator made carol's namespace, with a quota that allows no server
    core.create_namespace({"metadata": {"name": "karvdash-carol", "labels": {"karvdash.io/owner": "carol"}}})
    core.create_namespaced_resource_quota("karvdash-carol", {"metadata": {"name": "none"}, "spec": {"hard": {"pods": "0"}}})
    wait_for(
        lambda: (core.read_namespaced_resource_quota("none", "karvdash-carol").status or client.V1ResourceQuotaStatus()).hard,
        what="the quota controller",
    )
    message = _spawn_failure(kube_hub, "carol", users["carol"], {"profile": "jupyter"})
    assert "The resource quota of your namespace does not allow this server" in message, message
    assert "exceeded quota: none" in message
    # the namespace was adopted (labelled) and still holds the hub's objects
    assert core.read_namespace("karvdash-carol").metadata.labels["karvdash.io/user-namespace"] == "enabled"


def test_missing_image_is_explained(kube_hub, users, admin):
    core = client.CoreV1Api(admin)

    def kubelet_reports_pull_failure():
        pod = wait_for(lambda: _pod(core, "karvdash-dave", "jupyter-dave"), timeout=60, what="dave's pod")
        # no kubelet here: report what one reports for an image that does not exist
        core.patch_namespaced_pod_status(
            "jupyter-dave",
            "karvdash-dave",
            {
                "status": {
                    "containerStatuses": [
                        {
                            "name": "notebook",
                            "image": pod.spec.containers[0].image,
                            "imageID": "",
                            "ready": False,
                            "restartCount": 0,
                            "state": {
                                "waiting": {
                                    "reason": "ErrImagePull",
                                    "message": "manifest for registry.example.test/no/such:1 not found",
                                }
                            },
                        }
                    ]
                }
            },
        )

    options = {"profile": "unschedulable"}
    message = _spawn_failure(kube_hub, "dave", users["dave"], options, while_pending=kubelet_reports_pull_failure)
    assert "The image quay.io/jupyterhub/singleuser:latest cannot be pulled (ErrImagePull: manifest for" in message
    wait_for(lambda: _pod(core, "karvdash-dave", "jupyter-dave") is None, timeout=60, what="the failed pod's removal")


def test_a_namespace_that_is_not_the_users_is_refused(kube_hub, users, admin):
    core = client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": "karvdash-erin", "labels": {"team": "ops"}}})
    message = _spawn_failure(kube_hub, "erin", users["erin"], {"profile": "jupyter"})
    assert message.endswith(
        "The namespace karvdash-erin exists but is not labelled as yours (karvdash.io/owner=erin). "
        "An administrator must label it or remove it."
    ), message
    assert core.list_namespaced_pod("karvdash-erin").items == []


def test_deleting_a_user_removes_their_namespace(kube_hub, users, admin):
    core = client.CoreV1Api(admin)
    assert core.read_namespace("karvdash-alice").status.phase == "Active"
    core.create_persistent_volume(
        {
            "metadata": {"name": "alice-data", "labels": {"karvdash.io/owner": "alice"}},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/x"}},
        }
    )
    admin_token = kube_hub.token_for("admin")
    response = kube_hub.api("DELETE", "/users/alice", admin_token)
    assert response.status_code == 204, response.text
    wait_for(lambda: _gone_or_terminating(core, "karvdash-alice"), timeout=30, what="namespace deletion")
    wait_for(lambda: not _exists(core.read_persistent_volume, "alice-data"), timeout=30, what="volume deletion")
    # erin's foreign namespace is not touched by deleting erin
    assert kube_hub.api("DELETE", "/users/erin", admin_token).status_code == 204
    assert core.read_namespace("karvdash-erin").status.phase == "Active"


def test_a_server_started_after_a_dataset_mounts_it(kube_hub, admin):
    # the namespace exists before the first start when the user made a
    # dataset first (the dashboard does that through the hub's namespace)
    kube_hub.create_user("fay", PASSWORD)
    token = kube_hub.token_for("fay", PASSWORD)
    core = client.CoreV1Api(admin)
    namespace = "karvdash-fay"
    core.create_namespace(objects.namespace(load_settings(environ={}), "fay"))
    client.CustomObjectsApi(admin).create_namespaced_custom_object(
        "datashim.io", "v1alpha1", namespace, "datasets",
        {
            "apiVersion": "datashim.io/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": "corpus"},
            "spec": {"local": {"type": "ARCHIVE", "url": "https://example.test/corpus.tar", "format": "application/x-tar"}},
        },
    )
    started = kube_hub.api("POST", "/users/fay/server", token, json={"profile": "jupyter"})
    assert started.status_code in (201, 202), started.text
    wait_for(lambda: _pod(core, namespace, "jupyter-fay") is not None, timeout=60, what="pod creation")
    pod = _pod(core, namespace, "jupyter-fay")
    volumes = {v.name: v for v in pod.spec.volumes}
    mounts = {m.mount_path: m.name for m in pod.spec.containers[0].volume_mounts}
    assert volumes[mounts["/mnt/datasets/corpus"]].persistent_volume_claim.claim_name == "corpus"
    assert "/private" in mounts and "/shared" in mounts
    assert kube_hub.api("DELETE", "/users/fay/server", token).status_code in (202, 204)
    wait_for(lambda: _pod(core, namespace, "jupyter-fay") is None, timeout=60, what="pod deletion")


# --- many users at once ------------------------------------------------------------------

STORM_USERS = 20
STUB_SERVER = Path(__file__).resolve().parents[1] / "kube" / "stub_singleuser.py"


@pytest.fixture(scope="module")
def storm_hub(tmp_path_factory, hub_kubeconfig, kube_local_node):
    """A hub like ``kube_hub`` whose servers are tests/kube/stub_singleuser.py
    (an http.server naming its user): twenty JupyterLab starts would cost
    a minute of this machine's CPU, and what a storm tests is the path
    through the spawner, the hub and Kubernetes."""
    hub = start_hub(
        tmp_path_factory.mktemp("storm-hub"),
        env={
            "KARVDASH_MODE": "kubernetes",
            "KARVDASH_INGRESS_URL": "https://example.test",
            "KUBECONFIG": str(hub_kubeconfig),
        },
        args=["--JupyterHub.ip=127.0.0.1", *HUB_ARGS, f"--Spawner.cmd={STUB_SERVER}"],
    )
    yield hub
    hub.stop()


def test_users_starting_at_once_each_get_their_namespace_and_server(storm_hub, admin):
    core = client.CoreV1Api(admin)
    rbac = client.RbacAuthorizationV1Api(admin)
    names = [f"storm{i:02d}" for i in range(STORM_USERS)]
    token = storm_hub.token_for("admin")
    assert storm_hub.api("POST", "/users", token, json={"usernames": names}).status_code == 201
    gate = threading.Barrier(len(names))
    answers = {}

    def start(name):
        gate.wait()
        answers[name] = storm_hub.api("POST", f"/users/{name}/server", token, json={"profile": "jupyter"})

    threads = [threading.Thread(target=start, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    refused = {name: (r.status_code, r.text[:200]) for name, r in answers.items() if r.status_code not in (201, 202)}
    assert len(answers) == len(names) and not refused, refused

    def ready():
        users = storm_hub.api("GET", "/users?state=ready&limit=200", token).json()
        return {u["name"] for u in users} >= set(names)

    wait_for(ready, timeout=300, what=f"{len(names)} servers ready", interval=1)
    for name in names:
        namespace = f"karvdash-{name}"
        labels = core.read_namespace(namespace).metadata.labels
        assert (labels["karvdash.io/owner"], labels["karvdash.io/user-namespace"]) == (name, "enabled"), labels
        binding = rbac.read_namespaced_role_binding("karvdash-user", namespace)
        assert binding.role_ref.name == "edit" and binding.subjects[0].namespace == namespace
        # the namespace's API token is this user's, not a neighbour's started at the same moment
        ini = configparser.ConfigParser(interpolation=None)
        ini.read_string(base64.b64decode(core.read_namespaced_secret("karvdash-api", namespace).data["config.ini"]).decode())
        assert storm_hub.api("GET", "/user", ini["Karvdash"]["token"]).json()["name"] == name
        pod = core.read_namespaced_pod(f"jupyter-{name}", namespace)
        assert pod.status.phase == "Running" and pod.metadata.labels["karvdash.io/owner"] == name
        # the proxy's route leads to this user's own server
        answer = requests.get(f"{storm_hub.url}/user/{name}/", timeout=30)
        assert answer.status_code == 200 and answer.text == f"stub single-user server of {name}\n", answer.text

    for name in names:
        assert storm_hub.api("DELETE", f"/users/{name}/server", token).status_code in (202, 204)
    wait_for(lambda: not [p for name in names for p in core.list_namespaced_pod(f"karvdash-{name}").items],
             timeout=120, what="the servers' pods deleted", interval=1)
