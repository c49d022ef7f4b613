"""The admission webhook called by a real kube-apiserver.

``karvdash-webhook`` runs as its own process on 127.0.0.1 with a test CA
(IP SAN), looking namespaces and datasets up in the test cluster as the
chart's webhook service account, with only the chart's ClusterRole. The webhook
configurations are the chart's own (``helm template``), with ``clientConfig``
pointed at that URL, so their selectors and rules are what is tested.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from karvdash_hub.core import labels
from tests.integration.test_chart_kube import install_crds, render_chart
from tests.kube.cluster import free_port
from tests.kube.fixtures import wait_for
from tests.kube.pki import CertificateAuthority

pytestmark = [pytest.mark.kube, pytest.mark.integration]

CHART_NAMESPACE = "karvdash-webhook-test"


class WebhookProcess:
    def __init__(self, directory: Path, kubeconfig: Path, env: dict | None = None):
        self.ca = CertificateAuthority("webhook kube test CA")
        self.cert, self.key = self.ca.issue("karvdash-webhook", ip_addresses=("127.0.0.1",), server=True).write(
            directory, "webhook")
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.log = directory / "webhook.log"
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "KARVDASH_VALUES": "",
            "KARVDASH_STATE_DIR": str(directory / "state"),
            "KARVDASH_FILES_URL": "file:///data/karvdash",
            "KARVDASH_ALLOWED_HOST_PATH_DIRS": "/opt/datasets",
            "KARVDASH_DATASETS_AVAILABLE": "true",
            "KARVDASH_WEBHOOK_PORT": str(self.port),
            "KARVDASH_WEBHOOK_CERT_FILE": str(self.cert),
            "KARVDASH_WEBHOOK_KEY_FILE": str(self.key),
            **(env or {}),
        }
        self.env.pop("KUBERNETES_SERVICE_HOST", None)
        self.proc = None

    def start(self):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "karvdash_hub.webhook.server"], env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        import ssl
        import urllib.request

        context = ssl.create_default_context(cadata=self.ca.cert_pem.decode())

        def healthy():
            assert self.proc.poll() is None, self.log.read_text()
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", context=context, timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(healthy, timeout=30, what="karvdash-webhook healthy")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def service_account_kubeconfig(cluster, api_client, objects, directory: Path,
                               chart_namespace: str = CHART_NAMESPACE, server: str | None = None) -> Path:
    """A kubeconfig for the chart's webhook service account, bound by the
    chart's own ClusterRole: the webhook gets only what the chart grants
    (``server``: another address of the apiserver than its own)."""
    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    account = next(o for o in objects if o["kind"] == "ServiceAccount" and o["metadata"]["name"].endswith("-webhook"))
    core.create_namespaced_service_account(chart_namespace, account)
    role = next(o for o in objects if o["kind"] == "ClusterRole" and o["metadata"]["name"].endswith("-webhook"))
    binding = next(o for o in objects if o["kind"] == "ClusterRoleBinding" and o["metadata"]["name"].endswith("-webhook"))
    rbac.create_cluster_role(role)
    rbac.create_cluster_role_binding(binding)
    token = core.create_namespaced_service_account_token(
        account["metadata"]["name"], chart_namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    path = directory / "webhook.kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server or cluster.server,
                                                  "certificate-authority": str(cluster.ca)}}],
        "users": [{"name": "webhook", "user": {"token": token}}],
        "contexts": [{"name": "webhook", "context": {"cluster": "test", "user": "webhook"}}],
        "current-context": "webhook",
    }))
    return path, [("cluster_role", role["metadata"]["name"]), ("cluster_role_binding", binding["metadata"]["name"])]


@pytest.fixture(scope="module")
def webhook(kube_cluster, kube_api_client, tmp_path_factory):
    # a registry with credentials: the hub writes its pull secret into user namespaces
    env = {"KARVDASH_DOCKER_REGISTRY_URL": "https://puller:s3cret@registry.example.test"}
    with running_webhook(kube_cluster, kube_api_client, tmp_path_factory, env) as process:
        yield process


@contextmanager
def running_webhook(kube_cluster, kube_api_client, tmp_path_factory, env: dict | None = None,
                    chart_namespace: str = CHART_NAMESPACE, api_server: str | None = None):
    """karvdash-webhook with the chart's configurations (``env``: settings of its
    own; ``api_server``: the address it reaches the apiserver at)."""
    install_crds(kube_cluster, kube_api_client)
    core = client.CoreV1Api(kube_api_client)
    rbac = client.RbacAuthorizationV1Api(kube_api_client)
    # the chart's namespace, labelled for karvdash by mistake: still never matched
    namespace(core, chart_namespace, {labels.NAMESPACE_LABEL: labels.NAMESPACE_LABEL_VALUE, labels.OWNER_LABEL: "alice"})
    objects = render_chart(kube_cluster, tmp_path_factory.mktemp("chart"), {}, namespace=chart_namespace)
    directory = tmp_path_factory.mktemp("webhook")
    kubeconfig, rbac_objects = service_account_kubeconfig(kube_cluster, kube_api_client, objects, directory,
                                                          chart_namespace, api_server)
    process = WebhookProcess(directory, kubeconfig, env)
    process.start()
    admission = client.AdmissionregistrationV1Api(kube_api_client)
    created = []
    suffix = uuid.uuid4().hex[:6]
    for obj in objects:
        if obj["kind"] not in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            continue
        obj["metadata"]["name"] += f"-{suffix}"
        obj["metadata"].pop("annotations", None)  # no cert-manager CA injector here
        path = obj["webhooks"][0]["clientConfig"]["service"]["path"]
        obj["webhooks"][0]["clientConfig"] = {"url": process.url + path,
                                              "caBundle": base64.b64encode(process.ca.cert_pem).decode()}
        if obj["kind"] == "MutatingWebhookConfiguration":
            admission.create_mutating_webhook_configuration(obj)
        else:
            admission.create_validating_webhook_configuration(obj)
        created.append(obj)
    assert len(created) == 2
    yield process
    for obj in created:
        if obj["kind"] == "MutatingWebhookConfiguration":
            admission.delete_mutating_webhook_configuration(obj["metadata"]["name"])
        else:
            admission.delete_validating_webhook_configuration(obj["metadata"]["name"])
    process.stop()
    for kind, name in rbac_objects:
        getattr(rbac, f"delete_{kind}")(name)
    core.delete_namespace(chart_namespace)
    # gone before the next module makes it again (a namespace being deleted cannot be created)
    wait_for(lambda: _namespace_gone(core, chart_namespace), timeout=120, what=f"namespace {chart_namespace} deleted")


def _namespace_gone(core, name: str) -> bool:
    try:
        core.read_namespace(name)
        return False
    except ApiException as e:
        if e.status == 404:
            return True
        raise


def namespace(core, name: str, labels_: dict) -> str:
    core.create_namespace({"metadata": {"name": name, "labels": labels_}})
    wait_for(lambda: _has_default_account(core, name), timeout=30, what=f"service account {name}/default")
    return name


def _has_default_account(core, name):
    try:
        core.read_namespaced_service_account("default", name)
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


@pytest.fixture
def namespaces(kube_api_client):
    core = client.CoreV1Api(kube_api_client)
    made = []

    def make(name, labels_):
        made.append(namespace(core, name, labels_))
        return name

    yield make
    for name in made:
        try:
            core.delete_namespace(name)
        except ApiException as e:
            if e.status != 404:
                raise


@pytest.fixture
def user_namespace(namespaces):
    name = f"karvdash-alice-{uuid.uuid4().hex[:6]}"
    return namespaces(name, {labels.NAMESPACE_LABEL: labels.NAMESPACE_LABEL_VALUE, labels.OWNER_LABEL: "alice"})


def pod(name: str, volumes=(), pod_labels=None, mounts=()) -> dict:
    return {
        "metadata": {"name": name, "labels": pod_labels or {"app": name}},
        "spec": {
            "containers": [{"name": "main", "image": "registry.invalid/test:1",
                            "volumeMounts": list(mounts)}],
            "volumes": list(volumes),
            "terminationGracePeriodSeconds": 1,
        },
    }


def wait_until_mutating(core, ns):
    """Webhook configurations reach the apiserver asynchronously."""
    def mutated():
        name = f"probe-{uuid.uuid4().hex[:6]}"
        created = core.create_namespaced_pod(ns, pod(name))
        core.delete_namespaced_pod(name, ns, grace_period_seconds=0)
        return labels.ADDED_VOLUMES_ANNOTATION in (created.metadata.annotations or {})

    wait_for(mutated, timeout=30, interval=0.5, what="the webhook mutating pods")


def refusal(call) -> tuple[int, str]:
    with pytest.raises(ApiException) as error:
        call()
    body = json.loads(error.value.body)
    return error.value.status, body["message"]


def test_pod_in_a_user_namespace_gets_file_domains_api_settings_and_datasets(webhook, kube_api_client, user_namespace):
    core = client.CoreV1Api(kube_api_client)
    custom = client.CustomObjectsApi(kube_api_client)
    wait_until_mutating(core, user_namespace)
    custom.create_namespaced_custom_object("datashim.io", "v1alpha1", user_namespace, "datasets", {
        "apiVersion": "datashim.io/v1alpha1", "kind": "Dataset", "metadata": {"name": "mnist"},
        "spec": {"local": {"type": "ARCHIVE", "url": "https://data.example.test/mnist.tar", "format": "application/x-tar"}},
    })

    created = core.create_namespaced_pod(user_namespace, pod("notebook"))
    stored = core.read_namespaced_pod("notebook", user_namespace)
    volumes = {v.name: v for v in stored.spec.volumes}
    assert volumes["karvdash-private"].host_path.path == "/data/karvdash/private/alice"
    assert volumes["karvdash-private"].host_path.type == "DirectoryOrCreate"
    assert volumes["karvdash-shared"].host_path.path == "/data/karvdash/shared"
    assert volumes["karvdash-api"].secret.secret_name == "karvdash-api"
    assert volumes["karvdash-api"].secret.optional is True
    assert volumes["dataset-mnist"].persistent_volume_claim.claim_name == "mnist"
    mounts = {m.mount_path: m.name for m in stored.spec.containers[0].volume_mounts}
    assert mounts["/private"] == "karvdash-private"
    assert mounts["/shared"] == "karvdash-shared"
    assert mounts["/var/lib/karvdash"] == "karvdash-api"
    assert mounts["/mnt/datasets/mnist"] == "dataset-mnist"
    assert stored.metadata.annotations[labels.ADDED_VOLUMES_ANNOTATION] == \
        "karvdash-private,karvdash-shared,karvdash-api,dataset-mnist"
    assert created.metadata.uid == stored.metadata.uid
    assert [s.name for s in stored.spec.image_pull_secrets] == ["karvdash-registry"]

    opted_out = core.create_namespaced_pod(user_namespace, pod("no-datasets", pod_labels={labels.DATASETS_LABEL: "false"}))
    assert sorted(v.name for v in opted_out.spec.volumes if v.name.startswith(("karvdash-", "dataset-"))) == [
        "karvdash-api", "karvdash-private", "karvdash-shared"]

    # a pod that already has the file domains (as spawned servers do) keeps its own
    own = pod("spawned", volumes=[{"name": "karvdash-private", "hostPath": {"path": "/data/karvdash/private/alice"}}],
              mounts=[{"name": "karvdash-private", "mountPath": "/home/jovyan", "subPath": "work"}])
    spawned = core.create_namespaced_pod(user_namespace, own)
    # its own volume (no type, the API's default ""), not the webhook's DirectoryOrCreate
    assert [v.host_path.type for v in spawned.spec.volumes if v.name == "karvdash-private"] == [""]
    assert [m.sub_path for m in spawned.spec.containers[0].volume_mounts if m.mount_path == "/home/jovyan"] == ["work"]
    assert {m.mount_path for m in spawned.spec.containers[0].volume_mounts} >= {"/home/jovyan", "/shared"}


def test_forbidden_host_paths_are_refused_with_the_reason(webhook, kube_api_client, user_namespace):
    core = client.CoreV1Api(kube_api_client)
    apps = client.AppsV1Api(kube_api_client)
    batch = client.BatchV1Api(kube_api_client)
    wait_until_mutating(core, user_namespace)

    status, message = refusal(lambda: core.create_namespaced_pod(
        user_namespace, pod("bad", volumes=[{"name": "etc", "hostPath": {"path": "/etc"}}])))
    assert status == 403
    assert message == (
        'admission webhook "volumes.validate.karvdash.io" denied the request: karvdash: volume \'etc\' of Pod bad '
        "mounts host path /etc, which is outside the allowed folders "
        "(/opt/datasets, /data/karvdash/private/alice, /data/karvdash/shared)")

    bob = {"name": "bobs", "hostPath": {"path": "/data/karvdash/private/bob"}}
    template = {"metadata": {"labels": {"app": "web"}}, "spec": pod("x", volumes=[bob])["spec"]}
    status, message = refusal(lambda: apps.create_namespaced_deployment(user_namespace, {
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": template}}))
    assert status == 403
    assert "volume 'bobs' of Deployment web (in spec.template) mounts host path /data/karvdash/private/bob, " \
           "which reaches into the files folder /data/karvdash outside your folders" in message

    template["spec"]["restartPolicy"] = "OnFailure"
    status, message = refusal(lambda: batch.create_namespaced_cron_job(user_namespace, {
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}}}))
    assert status == 403
    assert "volume 'bobs' of CronJob nightly (in spec.jobTemplate.spec.template)" in message

    # a subfolder of the owner's own folder is not (symlinks): subPath is the way
    status, message = refusal(lambda: core.create_namespaced_pod(user_namespace, pod("sub", volumes=[
        {"name": "mine", "hostPath": {"path": "/data/karvdash/shared/link"}}])))
    assert status == 403 and "mount the folder itself" in message

    # the owner's own folder and the allowed folders are fine
    allowed = core.create_namespaced_pod(user_namespace, pod("good", volumes=[
        {"name": "mine", "hostPath": {"path": "/data/karvdash/private/alice"}},
        {"name": "data", "hostPath": {"path": "/opt/datasets/imagenet"}}]))
    assert allowed.metadata.name == "good"
    # an update that adds a forbidden path to a workload is refused too
    template["spec"]["volumes"] = [{"name": "mine", "hostPath": {"path": "/data/karvdash/shared"}}]
    template["spec"]["restartPolicy"] = "Always"
    apps.create_namespaced_deployment(user_namespace, {
        "metadata": {"name": "web2"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": template}})
    status, message = refusal(lambda: apps.patch_namespaced_deployment("web2", user_namespace, {
        "spec": {"template": {"spec": {"volumes": [{"name": "mine", "hostPath": {"path": "/var/run"}}]}}}}))
    assert status == 403 and "mounts host path /var/run" in message


def test_other_namespaces_are_untouched(webhook, kube_api_client, user_namespace, namespaces):
    core = client.CoreV1Api(kube_api_client)
    wait_until_mutating(core, user_namespace)
    hostile = [{"name": "etc", "hostPath": {"path": "/etc"}}]
    plain = namespaces(f"plain-{uuid.uuid4().hex[:6]}", {})
    # the chart's own namespace is labelled for karvdash (see the fixture): never matched
    for ns in (plain, CHART_NAMESPACE, "default"):
        name = f"sys-{uuid.uuid4().hex[:6]}"
        created = core.create_namespaced_pod(ns, pod(name, volumes=hostile))
        assert [v.name for v in created.spec.volumes if not v.name.startswith("kube-api-access")] == ["etc"]
        assert labels.ADDED_VOLUMES_ANNOTATION not in (created.metadata.annotations or {})
        assert not created.spec.image_pull_secrets
        core.delete_namespaced_pod(name, ns, grace_period_seconds=0)


def test_a_change_in_the_cluster_reaches_the_next_admission(webhook, kube_api_client, user_namespace):
    """The webhook answers from its watches of namespaces and datasets, not
    from a copy kept for a while: the next pod after a dataset is removed or
    the owner label changes is decided by the new state."""
    core = client.CoreV1Api(kube_api_client)
    custom = client.CustomObjectsApi(kube_api_client)
    wait_until_mutating(core, user_namespace)
    log = webhook.log.read_text()
    assert "watching namespaces from resourceVersion" in log and "watching datasets from resourceVersion" in log

    def admitted(volumes=()) -> client.V1Pod:
        return core.create_namespaced_pod(user_namespace, pod(f"p-{uuid.uuid4().hex[:6]}", volumes=volumes))

    def added(created) -> str:
        return created.metadata.annotations[labels.ADDED_VOLUMES_ANNOTATION]

    custom.create_namespaced_custom_object("datashim.io", "v1alpha1", user_namespace, "datasets", {
        "apiVersion": "datashim.io/v1alpha1", "kind": "Dataset", "metadata": {"name": "mnist"},
        "spec": {"local": {"type": "ARCHIVE", "url": "https://data.example.test/mnist.tar", "format": "application/x-tar"}},
    })
    # a new dataset may be missing from a pod made at the same moment (nothing granted): wait for it
    wait_for(lambda: added(admitted()).endswith(",dataset-mnist"), timeout=30, interval=0.2,
             what="the new dataset in pods")
    for _ in range(3):  # answered from the view, again and again
        assert added(admitted()) == "karvdash-private,karvdash-shared,karvdash-api,dataset-mnist"

    custom.delete_namespaced_custom_object("datashim.io", "v1alpha1", user_namespace, "datasets", "mnist")
    after = admitted()
    assert added(after) == "karvdash-private,karvdash-shared,karvdash-api"
    assert "dataset-mnist" not in {v.name for v in after.spec.volumes}

    core.patch_namespace(user_namespace, {"metadata": {"labels": {labels.OWNER_LABEL: "bob"}}})
    after = admitted()
    assert {v.name: v.host_path.path for v in after.spec.volumes if v.host_path} == {
        "karvdash-private": "/data/karvdash/private/bob", "karvdash-shared": "/data/karvdash/shared"}
    # and the old owner's folder is no longer the namespace's to mount
    status, message = refusal(lambda: admitted(
        volumes=[{"name": "mine", "hostPath": {"path": "/data/karvdash/private/alice"}}]))
    assert status == 403 and "mounts host path /data/karvdash/private/alice, which reaches into the files " \
        "folder /data/karvdash outside your folders (/data/karvdash/private/bob, /data/karvdash/shared)" in message
    assert admitted(volumes=[{"name": "mine", "hostPath": {"path": "/data/karvdash/private/bob"}}]).metadata.name


def test_an_outage_blocks_only_user_namespaces(webhook, kube_api_client, user_namespace):
    # last in this module: it stops the webhook
    core = client.CoreV1Api(kube_api_client)
    wait_until_mutating(core, user_namespace)
    webhook.stop()
    status, message = refusal(lambda: core.create_namespaced_pod(user_namespace, pod("during-outage")))
    assert status == 500
    assert 'failed calling webhook "pods.mutate.karvdash.io"' in message
    name = f"sys-{uuid.uuid4().hex[:6]}"
    assert core.create_namespaced_pod("default", pod(name)).metadata.name == name
    core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
    kube_system = core.create_namespaced_pod("kube-system", pod(name))
    assert kube_system.metadata.name == name
    core.delete_namespaced_pod(name, "kube-system", grace_period_seconds=0)
