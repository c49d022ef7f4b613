"""The NetworkPolicy of user namespaces enforced on a real node: the
``karvdash-tenant`` policy of ``network_policy()``, as the hub builds it,
in alice's and bob's namespaces (labelled as the hub labels them), with
kube-router's network policy controller doing the enforcing. Bob's pod
reaches alice's web server before the policy and not after it, by pod IP
and through the Service; alice's other pod and a pod in the hub's namespace
still do."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest

from karvdash_hub.core.settings import load_settings
from karvdash_hub.namespaces import objects
from tests.kube.fixtures import wait_for

pytestmark = [pytest.mark.node, pytest.mark.integration]

PULL_SECRET = "karvdash-node-registry"
PORT = 8000

# Run in a pod: one TCP connection, then one HTTP request; prints "open",
# "refused" or "timeout" (kube-router rejects or drops what a policy keeps out).
PROBE = """
import socket, sys, urllib.request
host, port = sys.argv[1], int(sys.argv[2])
try:
    socket.create_connection((host, port), timeout=3).close()
    urllib.request.urlopen(f"http://{host}:{port}/", timeout=3).read()
    print("open")
except ConnectionRefusedError:
    print("refused")
except (TimeoutError, socket.timeout):
    print("timeout")
except OSError as e:
    print("refused" if "refused" in str(e) else "timeout")
"""



def server_pod(image: str, name: str, app: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "containers": [{
                "name": "web", "image": image,
                "command": ["python3", "-m", "http.server", str(PORT), "--directory", "/etc"],
                "ports": [{"containerPort": PORT, "name": "http"}],
                "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 1},
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
            }],
            "imagePullSecrets": [{"name": PULL_SECRET}],
            "terminationGracePeriodSeconds": 1,
        },
    }


def service(app: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": app},
            "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": "http", "name": "http"}]}}


class Tenants:
    """Alice's and bob's namespaces and the hub's, on the real node."""

    def __init__(self, cluster, image: str):
        self.cluster = cluster
        suffix = uuid.uuid4().hex[:6]
        self.hub_namespace = f"hub{suffix}"
        self.alice, self.bob = f"alice{suffix}", f"bob{suffix}"
        # the settings the hub runs with (the chart sets its namespace)
        self.settings = load_settings(environ={
            "KARVDASH_MODE": "kubernetes", "KARVDASH_INGRESS_URL": "https://example.test",
            "KARVDASH_FILES_URL": "file:///data/karvdash", "KARVDASH_HUB_NAMESPACE": self.hub_namespace})
        self.image = image
        self.namespaces: list[str] = []

    def ns(self, username: str) -> str:
        return self.settings.user_namespace(username)

    def create_namespace(self, obj: dict) -> str:
        name = obj["metadata"]["name"]
        self.cluster.apply(obj)
        self.namespaces.append(name)
        wait_for(lambda: self.cluster.api("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")[0] == 200,
                 30, f"the default service account of {name}")
        self.cluster.pull_secret(name)
        return name

    def apply(self, namespace: str, *objs: dict) -> None:
        self.cluster.kubectl("apply", "-n", namespace, "-f", "-",
                             input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}))

    def pod(self, namespace: str, name: str) -> dict:
        return json.loads(self.cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "json").stdout)

    def ready(self, namespace: str, name: str) -> bool:
        status = self.pod(namespace, name).get("status", {})
        return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))

    def probe(self, namespace: str, pod: str, host: str, port: int) -> str:
        out = self.cluster.kubectl("exec", "-n", namespace, pod, "--", "python3", "-c", PROBE, host, str(port),
                                   timeout=30)
        return out.stdout.strip()

    def delete(self) -> None:
        for name in self.namespaces:
            self.cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def tenants(real_node, python_image):
    t = Tenants(real_node, python_image)
    yield t
    t.delete()


def test_tenant_network_policy_keeps_other_users_out(real_node, tenants, capsys):
    t = tenants
    alice_ns = t.create_namespace(objects.namespace(t.settings, t.alice))
    bob_ns = t.create_namespace(objects.namespace(t.settings, t.bob))
    hub_ns = t.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": t.hub_namespace}})

    started = time.monotonic()
    t.apply(alice_ns, server_pod(t.image, "httpd", "web"), server_pod(t.image, "peer", "peer"), service("web"))
    t.apply(bob_ns, server_pod(t.image, "httpd", "web"), service("web"))
    t.apply(hub_ns, server_pod(t.image, "client", "client"))
    pods = [(alice_ns, "httpd"), (alice_ns, "peer"), (bob_ns, "httpd"), (hub_ns, "client")]
    try:
        wait_for(lambda: all(t.ready(ns, name) for ns, name in pods), 180, "the four pods Ready")
    except TimeoutError:
        out = real_node.kubectl("get", "pods,events", "-A", "-o", "wide", check=False)
        pytest.fail(out.stdout + out.stderr)
    pods_ready = time.monotonic() - started

    alice_ip = t.pod(alice_ns, "httpd")["status"]["podIP"]
    alice_service = json.loads(real_node.kubectl("get", "service", "web", "-n", alice_ns, "-o", "json").stdout)
    service_ip = alice_service["spec"]["clusterIP"]
    targets = [(alice_ip, PORT), (service_ip, 80)]

    # without the policy the bridge lets bob in: the test below is not vacuous
    for host, port in targets:
        assert wait_for(lambda: t.probe(bob_ns, "httpd", host, port) == "open", 30,
                        f"bob reaching {host}:{port} without a policy")

    policies = {ns: objects.network_policy(t.settings, user, t.hub_namespace)
                for ns, user in ((alice_ns, t.alice), (bob_ns, t.bob))}
    assert policies[alice_ns]["metadata"]["name"] == "karvdash-tenant"
    applied = time.monotonic()
    for ns, policy in policies.items():
        t.apply(ns, policy)

    def bob_kept_out():
        results = [t.probe(bob_ns, "httpd", host, port) for host, port in targets]
        return results if all(r in ("refused", "timeout") for r in results) else None

    results = wait_for(bob_kept_out, 60, "bob kept out of alice's namespace")
    enforced = time.monotonic() - applied

    # alice's own other pod, and the hub's namespace, still get in
    for host, port in targets:
        assert t.probe(alice_ns, "peer", host, port) == "open", (host, port)
        assert t.probe(hub_ns, "client", host, port) == "open", (host, port)
    # and bob's namespace keeps alice out the same way
    bob_ip = t.pod(bob_ns, "httpd")["status"]["podIP"]
    assert t.probe(alice_ns, "peer", bob_ip, PORT) in ("refused", "timeout")
    assert t.probe(hub_ns, "client", bob_ip, PORT) == "open"
    # still kept out (not a race with the controller's resync)
    assert all(t.probe(bob_ns, "httpd", host, port) in ("refused", "timeout") for host, port in targets)

    # the controller's chains and ipsets are the node namespace's, none on the host
    inside = real_node.exec_in_netns("iptables-save", "-t", "filter").stdout
    assert "KUBE-NWPLCY-" in inside and "KUBE-ROUTER-FORWARD" in inside
    assert real_node.exec_in_netns("ipset", "list", "-n").stdout.split()
    host_rules = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True).stdout
    assert "KUBE-ROUTER" not in host_rules and "KUBE-NWPLCY" not in host_rules
    inside_sets = set(real_node.exec_in_netns("ipset", "list", "-n").stdout.split())
    host_sets = set(subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True).stdout.split())
    assert not inside_sets & host_sets, inside_sets & host_sets

    with capsys.disabled():
        print(f"\nnetwork policy: pods Ready {pods_ready:.1f} s after apply; bob kept out {enforced:.1f} s "
              f"after the policies ({results})")
