"""People on the chart's hub in the node tests: the hub reached from the
host through a relay to the proxy's ClusterIP, users signed up and approved
through its pages (tests/hubprocess.py's helpers), and a user's namespace
made the way the product makes it: by the hub, when the user's server
starts (KarvdashSpawner prepares the namespace, its NetworkPolicy, roles
and Secrets before the pod)."""

from __future__ import annotations

import contextlib
import json

import requests

from tests.hubprocess import RunningHub
from tests.kube.fixtures import wait_for
from tests.kube.realnode import REGISTRY, REGISTRY_USER, RealNodeCluster
from tests.node.conftest import NAME, describe_namespace, relay
from tests.node.test_journey_node import jupyter_profile

ADMIN_PASSWORD = "admin-secret"  # installed_chart's karvdash.adminPassword


def registry_values(cluster: RealNodeCluster) -> dict:
    """Chart values that make the node's registry the deployment's registry:
    the hub writes its pull secret (karvdash-registry) into users' namespaces."""
    return {"dockerRegistryURL": f"https://{REGISTRY_USER}:{cluster.registry_password}@{REGISTRY}",
            "dockerRegistryCert": cluster.registry_ca.read_text()}


def notebook_profile_files(notebook_image: str) -> dict[str, str]:
    """``installed_chart``'s state_files: the Jupyter profile with the node's notebook image."""
    return {"profiles/jupyter.yaml": jupyter_profile(notebook_image)}


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


@contextlib.contextmanager
def chart_hub(cluster: RealNodeCluster, ns: str, work):
    """The hub of the chart in ``ns`` as a :class:`RunningHub` (its HTTP
    helpers) on a host port relayed to the proxy's Service."""
    service = json.loads(cluster.kubectl("get", "service", f"{NAME}-proxy-public", "-n", ns,
                                         "-o", "json").stdout)["spec"]
    with relay(cluster, f"{service['clusterIP']}:{service['ports'][0]['port']}") as port:
        hub = RunningHub(url=f"http://127.0.0.1:{port}", state_dir=work / "state", log_path=work / "none",
                         process=None, admin_password=ADMIN_PASSWORD)
        # right after Ready the proxy may answer 503 for a moment
        wait_for(lambda: _answers(hub.url + "/hub/login"), 90, "/hub/login through the relay")
        yield hub


def start_server(cluster: RealNodeCluster, hub: RunningHub, user: str, token: str, timeout: float = 300) -> None:
    """Start ``user``'s server (the Jupyter profile) and wait until the hub says it is ready."""
    response = hub.api("POST", f"/users/{user}/server", token=token, json={"profile": "jupyter"})
    assert response.status_code in (201, 202), response.text

    def ready():
        model = hub.api("GET", f"/users/{user}", token=token).json()
        return True if model["servers"].get("", {}).get("ready") else None

    try:
        wait_for(ready, timeout, f"{user}'s server ready")
    except TimeoutError:
        raise AssertionError(describe_namespace(cluster, f"karvdash-{user}")) from None


def stop_server(cluster: RealNodeCluster, hub: RunningHub, user: str, token: str) -> None:
    response = hub.api("DELETE", f"/users/{user}/server", token=token)
    assert response.status_code in (202, 204), response.text
    wait_for(lambda: cluster.kubectl("get", "pod", f"jupyter-{user}", "-n", f"karvdash-{user}",
                                     check=False).returncode != 0, 120, f"{user}'s server pod to go")
