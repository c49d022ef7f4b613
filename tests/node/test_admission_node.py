"""The admission webhook of the chart on the real node: a pod made with
kubectl in a user's namespace (made by the hub when the user's server
started) gets the file domains as real mounts, both ways between the host's
folder and the container; a forbidden host path is refused; and with the
webhook's pods deleted or scaled to 0, pods elsewhere still start while the
users' namespaces fail closed (every new pod refused until the webhook is
back, running pods untouched).

The tests run in file order and build on each other (one chart install for
the module)."""

from __future__ import annotations

import contextlib
import json

import pytest

from karvdash_hub.core.labels import ADDED_VOLUMES_ANNOTATION, API_SETTINGS_MOUNT_PATH
from tests.kube.fixtures import wait_for
from tests.node.chartusers import (
    chart_hub,
    notebook_profile_files,
    registry_values,
    start_server,
    stop_server,
)
from tests.node.conftest import NAME, describe_namespace, installed_chart
from tests.node.test_real_node import describe, pod_ready

pytestmark = [pytest.mark.node, pytest.mark.integration]

NS = "karvdash-admission"
USER, PASSWORD = "carol", "carol-password-1"
USER_NS = f"karvdash-{USER}"
WEBHOOK = f"{NAME}-webhook"
WEBHOOK_PODS = "app.kubernetes.io/component=webhook,app.kubernetes.io/name=karvdash-hub"


@pytest.fixture(scope="module")
def site(real_node, hub_image, notebook_image, tmp_path_factory):
    """The chart, carol signed up and approved, and her namespace made by the
    hub when her server started (stopped again: only the namespace is needed)."""
    work = tmp_path_factory.mktemp("admission")
    with contextlib.ExitStack() as stack:
        # users' namespaces are the hub's, not Helm's: they go after the uninstall
        stack.callback(real_node.kubectl, "delete", "namespace", USER_NS, "--wait=false", check=False)
        ns = stack.enter_context(installed_chart(real_node, hub_image, work, NS,
                                                 {"karvdash": registry_values(real_node)},
                                                 state_files=notebook_profile_files(notebook_image)))
        hub = stack.enter_context(chart_hub(real_node, ns, work))
        hub.create_user(USER, PASSWORD)
        token = hub.token_for(USER, PASSWORD)
        start_server(real_node, hub, USER, token)
        stop_server(real_node, hub, USER, token)
        yield {"ns": ns, "files": work / "files"}


def pod_json(cluster, ns: str, name: str) -> dict:
    return json.loads(cluster.kubectl("get", "pod", name, "-n", ns, "-o", "json").stdout)


def create_pod(cluster, ns: str, name: str, image: str, script: str, volumes: list | None = None,
               pull_secret: str = "karvdash-registry"):
    """``kubectl create`` of a one-container pod; the CompletedProcess (check=False)."""
    spec = {"restartPolicy": "Never", "imagePullSecrets": [{"name": pull_secret}], "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": image, "command": ["sh", "-c", script]}]}
    if volumes:
        spec["volumes"] = volumes
        spec["containers"][0]["volumeMounts"] = [{"name": v["name"], "mountPath": f"/mnt/{v['name']}"}
                                                 for v in volumes]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": spec}
    return cluster.kubectl("create", "-f", "-", input=json.dumps(pod), check=False)


def wait_running(cluster, ns: str, name: str, timeout: float = 120) -> None:
    try:
        wait_for(lambda: pod_ready(cluster, ns, name) or None, timeout, f"pod {ns}/{name} ready")
    except TimeoutError:
        pytest.fail(describe(cluster, ns))


def webhook_ready(cluster, ns: str, replicas: int) -> bool:
    status = json.loads(cluster.kubectl("get", "deployment", WEBHOOK, "-n", ns, "-o", "json").stdout)["status"]
    return status.get("readyReplicas", 0) == replicas and status.get("updatedReplicas", 0) == replicas


def webhook_pods(cluster, ns: str) -> list[str]:
    out = cluster.kubectl("get", "pods", "-n", ns, "-l", WEBHOOK_PODS, "-o", "name")
    return out.stdout.split()


def test_the_namespace_is_the_hubs(real_node, site):
    namespace = json.loads(real_node.kubectl("get", "namespace", USER_NS, "-o", "json").stdout)
    labels = namespace["metadata"]["labels"]
    assert labels["karvdash.io/owner"] == USER and labels["karvdash.io/user-namespace"] == "enabled", labels
    secrets = real_node.kubectl("get", "secrets", "-n", USER_NS, "-o", "name").stdout.split()
    assert "secret/karvdash-registry" in secrets, secrets


def test_a_kubectl_pod_gets_the_private_folder_as_a_real_mount(real_node, site, python_image):
    private = site["files"] / "private" / USER
    private.mkdir(parents=True, exist_ok=True)
    (private / "from-host.txt").write_text("put on the host\n")
    script = "echo written in the pod > /private/from-pod.txt; sleep 3600"
    out = create_pod(real_node, USER_NS, "files", python_image, script)
    assert out.returncode == 0, out.stderr
    wait_running(real_node, USER_NS, "files")

    pod = pod_json(real_node, USER_NS, "files")
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["karvdash-private"]["hostPath"]["path"] == str(private)
    assert volumes["karvdash-shared"]["hostPath"]["path"] == str(site["files"] / "shared")
    mounts = {m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert {"/private", "/shared", API_SETTINGS_MOUNT_PATH} <= mounts, mounts
    assert ADDED_VOLUMES_ANNOTATION in pod["metadata"]["annotations"]

    # the host's file inside the container, the container's file on the host
    seen = real_node.kubectl("exec", "-n", USER_NS, "files", "--", "cat", "/private/from-host.txt").stdout
    assert seen == "put on the host\n"
    wait_for(lambda: (private / "from-pod.txt").exists() or None, 30, "the pod's file on the host")
    assert (private / "from-pod.txt").read_text() == "written in the pod\n"
    # the mount is the host folder itself, not a copy: a later change shows at once
    (private / "from-host.txt").write_text("changed on the host\n")
    seen = real_node.kubectl("exec", "-n", USER_NS, "files", "--", "cat", "/private/from-host.txt").stdout
    assert seen == "changed on the host\n"
    settings = real_node.kubectl("exec", "-n", USER_NS, "files", "--", "cat",
                                 f"{API_SETTINGS_MOUNT_PATH}/config.ini").stdout
    assert "base_url" in settings and "token" in settings


def test_a_forbidden_host_path_is_refused(real_node, site, python_image):
    out = create_pod(real_node, USER_NS, "etc", python_image, "sleep 3600",
                     volumes=[{"name": "etc", "hostPath": {"path": "/etc"}}])
    assert out.returncode != 0
    assert "/etc" in out.stderr and "host paths outside the allowed folders" in out.stderr, out.stderr
    # another user's private folder is as foreign as /etc
    other = str(site["files"] / "private" / "dave")
    out = create_pod(real_node, USER_NS, "dave", python_image, "sleep 3600",
                     volumes=[{"name": "dave", "hostPath": {"path": other}}])
    assert out.returncode != 0 and other in out.stderr, out.stderr
    listed = real_node.kubectl("get", "pods", "-n", USER_NS, "-o", "name").stdout.split()
    assert "pod/etc" not in listed and "pod/dave" not in listed, listed


def test_deleted_webhook_pods_block_nothing_outside_users_namespaces(real_node, site, python_image,
                                                                     node_namespace):
    ns = site["ns"]
    assert webhook_ready(real_node, ns, 2)
    before = webhook_pods(real_node, ns)
    real_node.kubectl("delete", "pod", "-n", ns, "-l", WEBHOOK_PODS, "--wait=false")
    # right away, while the replacements start: a namespace that is not a user's is never asked about
    out = create_pod(real_node, node_namespace, "elsewhere", python_image, "sleep 3600",
                     pull_secret="karvdash-node-registry")
    assert out.returncode == 0, out.stderr
    wait_running(real_node, node_namespace, "elsewhere")

    # the Deployment puts the webhook back, and user pods get their mounts again
    try:
        wait_for(lambda: webhook_ready(real_node, ns, 2) or None, 180, "the webhook's new pods ready")
    except TimeoutError:
        pytest.fail(describe_namespace(real_node, ns))
    assert not set(webhook_pods(real_node, ns)) & set(before)
    out = create_pod(real_node, USER_NS, "after-restart", python_image, "ls /private; sleep 3600")
    assert out.returncode == 0, out.stderr
    wait_running(real_node, USER_NS, "after-restart")
    assert "karvdash-private" in {v["name"] for v in pod_json(real_node, USER_NS, "after-restart")["spec"]["volumes"]}


def test_a_webhook_scaled_to_zero_fails_closed_in_users_namespaces_only(real_node, site, python_image,
                                                                        node_namespace):
    ns = site["ns"]
    real_node.kubectl("scale", "deployment", WEBHOOK, "-n", ns, "--replicas=0")
    try:
        wait_for(lambda: not webhook_pods(real_node, ns) or None, 120, "no webhook pod left")
        # elsewhere: pods start as if there were no webhook
        out = create_pod(real_node, node_namespace, "elsewhere", python_image, "sleep 3600",
                         pull_secret="karvdash-node-registry")
        assert out.returncode == 0, out.stderr
        wait_running(real_node, node_namespace, "elsewhere")

        # in the user's namespace every new pod is refused, with the reason
        # (mutatingFailurePolicy Fail): none starts without its file domains
        out = create_pod(real_node, USER_NS, "while-down", python_image, "sleep 3600")
        assert out.returncode != 0
        assert 'failed calling webhook "pods.mutate.karvdash.io"' in out.stderr, out.stderr
        # and a forbidden host path stays refused (the validating side fails closed too)
        out = create_pod(real_node, USER_NS, "etc-while-down", python_image, "sleep 3600",
                         volumes=[{"name": "etc", "hostPath": {"path": "/etc"}}])
        assert out.returncode != 0 and "failed calling webhook" in out.stderr, out.stderr
        listed = real_node.kubectl("get", "pods", "-n", USER_NS, "-o", "name").stdout.split()
        assert "pod/while-down" not in listed and "pod/etc-while-down" not in listed, listed
        # what runs keeps running: the webhook only admits new pods
        assert pod_ready(real_node, USER_NS, "files")
    finally:
        real_node.kubectl("scale", "deployment", WEBHOOK, "-n", ns, "--replicas=2")
    try:
        wait_for(lambda: webhook_ready(real_node, ns, 2) or None, 180, "the webhook back at 2 replicas")
    except TimeoutError:
        pytest.fail(describe_namespace(real_node, ns))
    out = create_pod(real_node, USER_NS, "while-down", python_image, "sleep 3600")
    assert out.returncode == 0, out.stderr
    wait_running(real_node, USER_NS, "while-down")
