"""Datasets on a real kube-apiserver, as the dashboard keeps them.

The Dataset CRD is the test stand-in in ``tests/integration/crds/datashim.yaml``
(no Datashim controller runs here). The dataset store runs with
kubernetes_asyncio as the chart's dashboard service account, bound by the
chart's own ClusterRole, so the chart's permissions are what is tested. A pod
created afterwards in the namespace gets the dataset from the real
``karvdash-webhook`` (the chart's webhook configurations), and the
spawner's lookup finds it.
"""

from __future__ import annotations

import base64
import ssl
import time
import uuid
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from kubernetes import client as sync_client
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from karvdash_hub.core import labels
from karvdash_hub.core.settings import load_settings
from karvdash_hub.datasets import model as ds
from karvdash_hub.datasets.mounts import dataset_volumes
from karvdash_hub.datasets.store import DatasetStore
from karvdash_hub.namespaces import objects
from karvdash_hub.namespaces.store import UserNamespaces
from tests.integration.test_chart_kube import install_crds, render_chart
from tests.integration.test_webhook_kube import pod, wait_until_mutating, webhook  # noqa: F401 - fixture
from tests.kube.fixtures import wait_for

pytestmark = [pytest.mark.kube, pytest.mark.integration]

CHART_NAMESPACE = "karvdash-datasets-test"
S3 = {
    "type": "s3-remote",
    "name": "climate",
    "endpoint": "https://s3.example.org",
    "bucket": "climate-data",
    "accessKeyID": "AKIAKUBETEST",
    "secretAccessKey": "kube-secret-value",
}


def settings(tmp_path, **env):
    return load_settings(environ={
        "KARVDASH_STATE_DIR": str(tmp_path / "state"),
        "KARVDASH_DATASETS_AVAILABLE": "true",
        **{f"KARVDASH_{k}": v for k, v in env.items()},
    })


@pytest.fixture(scope="module")
def dashboard_kubeconfig(kube_cluster, kube_api_client, tmp_path_factory):
    """A kubeconfig of the chart's dashboard service account, with the chart's ClusterRole."""
    install_crds(kube_cluster, kube_api_client)
    core = sync_client.CoreV1Api(kube_api_client)
    rbac = sync_client.RbacAuthorizationV1Api(kube_api_client)
    core.create_namespace({"metadata": {"name": CHART_NAMESPACE}})
    rendered = render_chart(kube_cluster, tmp_path_factory.mktemp("chart"), {}, namespace=CHART_NAMESPACE)
    suffix = uuid.uuid4().hex[:6]
    account = next(o for o in rendered if o["kind"] == "ServiceAccount" and o["metadata"]["name"].endswith("-dashboard"))
    role = next(o for o in rendered if o["kind"] == "ClusterRole" and o["metadata"]["name"].endswith("-dashboard"))
    binding = next(o for o in rendered if o["kind"] == "ClusterRoleBinding" and o["metadata"]["name"].endswith("-dashboard"))
    role["metadata"]["name"] += f"-{suffix}"
    binding["metadata"]["name"] += f"-{suffix}"
    binding["roleRef"]["name"] = role["metadata"]["name"]
    wait_for(lambda: _has_default_account(core, CHART_NAMESPACE), what="the chart namespace's service account")
    core.create_namespaced_service_account(CHART_NAMESPACE, account)
    rbac.create_cluster_role(role)
    rbac.create_cluster_role_binding(binding)
    token = core.create_namespaced_service_account_token(
        account["metadata"]["name"], CHART_NAMESPACE, {"spec": {"expirationSeconds": 3600}}).status.token
    path = tmp_path_factory.mktemp("dashboard") / "dashboard.kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": kube_cluster.server,
                                                  "certificate-authority": str(kube_cluster.ca)}}],
        "users": [{"name": "dashboard", "user": {"token": token}}],
        "contexts": [{"name": "dashboard", "context": {"cluster": "test", "user": "dashboard"}}],
        "current-context": "dashboard",
    }))
    yield path
    rbac.delete_cluster_role_binding(binding["metadata"]["name"])
    rbac.delete_cluster_role(role["metadata"]["name"])
    core.delete_namespace(CHART_NAMESPACE)


def _has_default_account(core, name):
    try:
        core.read_namespaced_service_account("default", name)
        return True
    except sync_client.rest.ApiException as e:
        if e.status == 404:
            return False
        raise


@pytest.fixture
async def api(dashboard_kubeconfig):
    configuration = k8s.Configuration()
    await k8s_config.load_kube_config(config_file=str(dashboard_kubeconfig), client_configuration=configuration,
                                      persist_config=False)
    async with k8s.ApiClient(configuration) as api_client:
        yield api_client


@pytest.fixture
def users(kube_api_client, tmp_path):
    """Two users with namespaces as the spawner makes them (labelled as theirs)."""
    core = sync_client.CoreV1Api(kube_api_client)
    names = [f"ds{uuid.uuid4().hex[:8]}", f"ds{uuid.uuid4().hex[:8]}"]
    made = settings(tmp_path)
    for name in names:
        core.create_namespace(objects.namespace(made, name))
    yield names
    for name in names:
        core.delete_namespace(made.user_namespace(name))


async def test_create_list_yaml_and_delete_with_a_referenced_secret(api, users, kube_api_client, tmp_path):
    alice, _ = users
    store = DatasetStore(settings(tmp_path), api)
    namespace = f"karvdash-{alice}"
    created = await store.create(alice, S3)
    assert created["name"] == "climate" and created["type"] == "s3-remote"
    assert created["secret"] == "karvdash-dataset-climate"

    core = sync_client.CoreV1Api(kube_api_client)
    custom = sync_client.CustomObjectsApi(kube_api_client)
    dataset = custom.get_namespaced_custom_object("datashim.io", "v1alpha1", namespace, "datasets", "climate")
    assert dataset["spec"]["local"] == {
        "type": "COS", "endpoint": "https://s3.example.org", "bucket": "climate-data",
        "secret-name": "karvdash-dataset-climate",
    }
    secret = core.read_namespaced_secret("karvdash-dataset-climate", namespace)
    assert {k: base64.b64decode(v).decode() for k, v in secret.data.items()} == {
        "accessKeyID": "AKIAKUBETEST", "secretAccessKey": "kube-secret-value"}
    assert [(r.kind, r.name, r.uid) for r in secret.metadata.owner_references] == [
        ("Dataset", "climate", dataset["metadata"]["uid"])]
    assert secret.metadata.labels[ds.DATASET_LABEL] == "climate"

    assert [d["name"] for d in await store.list(alice)] == ["climate"]
    text = ds.dataset_yaml(await store.get(alice, "climate"))
    assert "AKIAKUBETEST" not in text and "kube-secret-value" not in text
    assert yaml.safe_load(text)["spec"]["local"]["secret-name"] == "karvdash-dataset-climate"

    # a taken name gets a suffix, with its own Secret
    again = await store.create(alice, S3)
    assert again["name"].startswith("climate-") and len(again["name"]) == len("climate-") + 4
    assert core.read_namespaced_secret(f"karvdash-dataset-{again['name']}", namespace).metadata.labels[
        ds.DATASET_LABEL] == again["name"]
    assert [d["name"] for d in await store.list(alice)] == ["climate", again["name"]]

    await store.delete(alice, "climate")
    assert [d["name"] for d in await store.list(alice)] == [again["name"]]
    with pytest.raises(sync_client.rest.ApiException) as gone:
        core.read_namespaced_secret("karvdash-dataset-climate", namespace)
    assert gone.value.status == 404
    with pytest.raises(ds.DatasetError) as error:
        await store.delete(alice, "climate")
    assert (error.value.status, error.value.message) == (404, "no dataset named climate")


async def test_another_user_cannot_see_or_remove_it(api, users, tmp_path):
    alice, bob = users
    store = DatasetStore(settings(tmp_path), api)
    await store.create(alice, {"type": "archive", "name": "books", "url": "https://example.org/books.tar"})
    assert await store.list(bob) == []
    with pytest.raises(ds.DatasetError) as error:
        await store.get(bob, "books")
    assert (error.value.status, error.value.message) == (404, "no dataset named books")
    with pytest.raises(ds.DatasetError) as error:
        await store.delete(bob, "books")
    assert error.value.status == 404
    assert [d["name"] for d in await store.list(alice)] == ["books"]
    # bob's own dataset of the same name is his, in his namespace
    await store.create(bob, {"type": "archive", "name": "books", "url": "https://example.org/other.tar"})
    assert [(d["name"], d["endpoint"]) for d in await store.list(bob)] == [("books", "https://example.org/other.tar")]
    assert [(d["name"], d["endpoint"]) for d in await store.list(alice)] == [("books", "https://example.org/books.tar")]


async def test_local_services_refused_values_and_missing_namespace(api, users, kube_api_client, tmp_path):
    alice, _ = users
    store = DatasetStore(settings(tmp_path, DISABLED_DATASET_TEMPLATES="h3-remote"), api)
    namespace = f"karvdash-{alice}"
    # a Redis service of alice, as the Redis template labels it
    sync_client.CoreV1Api(kube_api_client).create_namespaced_service(namespace, {
        "metadata": {"name": "cache", "labels": {labels.OWNER_LABEL: alice, labels.TEMPLATE_LABEL: "redis"}},
        "spec": {"ports": [{"name": "redis", "port": 6379}], "selector": {"app": "cache"}},
    })
    assert await store.local_services(alice) == {"minio": {}, "redis": {"cache": f"redis://cache.{namespace}.svc:6379"}}
    made = await store.create(alice, {"type": "h3-local", "name": "fast", "service": "cache", "bucket": "b01"})
    assert (made["type"], made["endpoint"]) == ("h3-local", f"redis://cache.{namespace}.svc:6379")

    with pytest.raises(ds.DatasetError) as error:
        await store.create(alice, {"type": "h3-remote", "name": "x", "storageUri": "redis://r", "bucket": "b01"})
    assert error.value.message == "dataset type h3-remote is disabled on this deployment"
    with pytest.raises(ds.DatasetError) as error:
        await store.create(alice, {**S3, "bucket": "NO"})
    assert error.value.status == 400
    assert [d["name"] for d in await store.list(alice)] == ["fast"]

    with pytest.raises(ds.DatasetError) as error:
        await store.create("nobody" + uuid.uuid4().hex[:6], S3)
    assert error.value.status == 409 and error.value.message.endswith("does not exist yet: start a server once")


async def test_a_pod_made_afterwards_mounts_the_dataset(api, users, webhook, kube_api_client, tmp_path):  # noqa: F811
    alice, _ = users
    current = settings(tmp_path)
    store = DatasetStore(current, api)
    await store.create(alice, S3)
    namespace = current.user_namespace(alice)

    # the spawner's lookup (KarvdashSpawner mounts what it returns)
    spaces = UserNamespaces(current, k8s.CoreV1Api(api), k8s.RbacAuthorizationV1Api(api), k8s.CustomObjectsApi(api))
    assert await spaces.list_datasets(alice) == ["climate"]
    volumes, mounts = dataset_volumes(["climate"])
    assert volumes == [{"name": "dataset-climate", "persistentVolumeClaim": {"claimName": "climate"}}]
    assert mounts == [{"name": "dataset-climate", "mountPath": "/mnt/datasets/climate"}]

    # any other pod of the user: the admission webhook adds it
    core = sync_client.CoreV1Api(kube_api_client)
    wait_until_mutating(core, namespace)
    created = core.create_namespaced_pod(namespace, pod("notebook"))
    volumes = {v.name: v for v in created.spec.volumes}
    assert volumes["dataset-climate"].persistent_volume_claim.claim_name == "climate"
    container_mounts = {m.mount_path: m.name for m in created.spec.containers[0].volume_mounts}
    assert container_mounts["/mnt/datasets/climate"] == "dataset-climate"
    core.delete_namespaced_pod("notebook", namespace, grace_period_seconds=0)


# --- 429 answers: tried again, a bounded number of times -------------------------------------------


class BusyApiServer:
    """A loopback proxy in front of the real API server that answers chosen
    requests with the API server's own 429 ("storage is (re)initializing",
    which a new or restarting kind's storage answers for a moment and which
    cannot be brought about on demand), and forwards all others."""

    def __init__(self, upstream: str, ca: Path):
        self.upstream = upstream.rstrip("/")
        self.ssl = ssl.create_default_context(cafile=str(ca))
        self.busy: dict[tuple[str, str], int] = {}  # (method, path suffix) -> 429s still to answer
        self.seen: list[tuple[str, str, int]] = []
        self.retry_after = "1"
        self.url = ""

    async def __aenter__(self):
        self.session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()
        await self.session.close()

    async def handle(self, request: web.Request) -> web.Response:
        for (method, suffix), left in self.busy.items():
            if request.method == method and request.path.endswith(suffix) and left:
                self.busy[(method, suffix)] = left - 1
                self.seen.append((request.method, request.path, 429))
                return web.json_response(
                    {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": "storage is (re)initializing", "reason": "TooManyRequests",
                     "details": {"retryAfterSeconds": 1}, "code": 429},
                    status=429, headers={"Retry-After": self.retry_after})
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type", "accept")}
        async with self.session.request(request.method, self.upstream + request.path_qs, data=await request.read(),
                                        headers=headers, ssl=self.ssl) as answer:
            body = await answer.read()
            self.seen.append((request.method, request.path, answer.status))
            return web.Response(status=answer.status, body=body,
                                headers={"Content-Type": answer.headers.get("Content-Type", "application/json")})


@pytest.fixture
async def busy_api(kube_cluster, dashboard_kubeconfig):
    """(the proxy, an API client of the dashboard's account that goes through it)."""
    token = yaml.safe_load(dashboard_kubeconfig.read_text())["users"][0]["user"]["token"]
    async with BusyApiServer(kube_cluster.server, kube_cluster.ca) as proxy:
        configuration = k8s.Configuration(host=proxy.url, api_key={"BearerToken": f"Bearer {token}"})
        async with k8s.ApiClient(configuration) as api_client:
            yield proxy, api_client


DATASETS_PATH = "/datasets"


async def test_busy_answers_are_tried_again(busy_api, users, kube_api_client, tmp_path):
    proxy, api_client = busy_api
    alice, _ = users
    namespace = f"karvdash-{alice}"
    store = DatasetStore(settings(tmp_path), api_client)
    # the Secret goes through; the Dataset is refused twice, then made
    proxy.busy = {("GET", DATASETS_PATH): 1, ("POST", DATASETS_PATH): 2}
    made = await store.create(alice, dict(S3))
    assert made["name"] == "climate"
    dataset_calls = [(m, s) for m, p, s in proxy.seen if p.endswith(DATASETS_PATH)]
    assert dataset_calls == [("GET", 429), ("GET", 200), ("POST", 429), ("POST", 429), ("POST", 201)]
    # one Dataset and one Secret, nothing made twice
    custom = sync_client.CustomObjectsApi(kube_api_client)
    items = custom.list_namespaced_custom_object("datashim.io", "v1alpha1", namespace, "datasets")["items"]
    assert [i["metadata"]["name"] for i in items] == ["climate"]
    secrets = sync_client.CoreV1Api(kube_api_client).list_namespaced_secret(
        namespace, label_selector=ds.DATASET_LABEL).items
    assert [s.metadata.name for s in secrets] == [ds.secret_name("climate")]


async def test_a_busy_api_server_is_tried_a_bounded_number_of_times(busy_api, users, tmp_path):
    proxy, api_client = busy_api
    alice, _ = users
    store = DatasetStore(settings(tmp_path), api_client)
    proxy.busy = {("GET", DATASETS_PATH): 100}
    # Retry-After is followed up to 2 s a time
    proxy.retry_after = "30"
    started = time.monotonic()
    with pytest.raises(ds.DatasetError) as error:
        await store.list(alice)
    elapsed = time.monotonic() - started
    assert (error.value.status, error.value.message) == (
        503, "cannot list datasets: the Kubernetes API is busy (storage is (re)initializing); try again")
    assert [s for _, _, s in proxy.seen] == [429, 429, 429, 429]
    assert 6 <= elapsed < 9, elapsed
