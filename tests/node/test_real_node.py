"""A real node: a pod from an image built here (mmdebstrap Python base),
pulled from the cluster's own registry with a pull secret, serving files
from a hostPath volume with ``python3 -m http.server``, reached through its
ClusterIP Service and by name through CoreDNS; and a teardown that leaves
nothing behind, so that a second cluster starts right after."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from tests.kube.fixtures import wait_for
from tests.kube.realnode import (
    CLUSTER_DOMAIN,
    CONTAINER_LOGS,
    HOST_PATHS,
    RECORDS,
    RealNodeCluster,
    _cgroup_hierarchies,
    _mounts,
)

pytestmark = [pytest.mark.node, pytest.mark.integration]



def pod(cluster, namespace: str, name: str) -> dict:
    return json.loads(cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "json").stdout)


def pod_ready(cluster, namespace: str, name: str) -> bool:
    status = pod(cluster, namespace, name).get("status", {})
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))


def describe(cluster, namespace: str) -> str:
    out = cluster.kubectl("get", "pods,events", "-n", namespace, "-o", "wide", check=False)
    return out.stdout + out.stderr


def web_server(image: str, host_dir: Path, pull_secret: str | None) -> list[dict]:
    spec = {
        "containers": [{
            "name": "web",
            "image": image,
            # pull through the registry every time, never from the node's cache
            "imagePullPolicy": "Always",
            "command": ["python3", "-m", "http.server", "8000", "--directory", "/srv/www"],
            "ports": [{"containerPort": 8000, "name": "http"}],
            "readinessProbe": {"httpGet": {"path": "/hello.txt", "port": 8000}, "periodSeconds": 1},
            "volumeMounts": [{"name": "www", "mountPath": "/srv/www"}],
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        }],
        "volumes": [{"name": "www", "hostPath": {"path": str(host_dir), "type": "Directory"}}],
        "terminationGracePeriodSeconds": 1,
    }
    if pull_secret:
        spec["imagePullSecrets"] = [{"name": pull_secret}]
    return [
        # not named like the Service: the pod's /etc/hosts maps its own name to itself
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "httpd", "labels": {"app": "web"}}, "spec": spec},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http", "name": "http"}]}},
    ]


def apply(cluster, namespace: str, objects: list[dict]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                          "items": objects}))


def test_http_server_pod_behind_a_cluster_ip(real_node, python_image, node_namespace, tmp_path):
    ns = node_namespace
    www = tmp_path / "www"
    www.mkdir()
    token = secrets.token_hex(8)
    (www / "hello.txt").write_text(token)

    started = time.monotonic()
    apply(real_node, ns, web_server(python_image, www, "karvdash-node-registry"))
    try:
        wait_for(lambda: pod(real_node, ns, "httpd").get("status", {}).get("phase") == "Running", 120, "pod Running")
        running = time.monotonic() - started
        wait_for(lambda: pod_ready(real_node, ns, "httpd"), 60, "pod Ready")
    except TimeoutError:
        pytest.fail(describe(real_node, ns))
    print(f"web pod Running {running:.1f} s after apply, Ready {time.monotonic() - started:.1f} s")
    from tests.node.conftest import record_memory

    record_memory(real_node, "with one pod")

    # its IP comes from the CNI bridge's range, the image from our registry
    status = pod(real_node, ns, "httpd")["status"]
    assert status["podIP"].startswith("198.18.0."), status
    assert status["containerStatuses"][0]["imageID"].startswith("198.18.1.1:5000/karvdash-base/python@sha256:")

    service = json.loads(real_node.kubectl("get", "service", "web", "-n", ns, "-o", "json").stdout)
    cluster_ip = service["spec"]["clusterIP"]
    assert cluster_ip.startswith("198.18.")

    # through the ClusterIP (kube-proxy's rules), from inside the namespace
    def service_answers():
        try:
            return real_node.netns_http_get(f"http://{cluster_ip}/hello.txt", timeout=2)
        except OSError:
            return None

    assert wait_for(service_answers, 30, "the Service's ClusterIP") == (200, token.encode())

    # by name through CoreDNS
    assert real_node.dns_query(f"web.{ns}.svc.{CLUSTER_DOMAIN}") == [cluster_ip]

    # from the pod itself: DNS search path, the Service by its short name (hairpin), exec
    fetch = ("import urllib.request; "
             "print(urllib.request.urlopen('http://web/hello.txt', timeout=5).read().decode())")
    out = real_node.kubectl("exec", "-n", ns, "httpd", "--", "python3", "-c", fetch).stdout
    assert out.strip() == token

    # the hostPath volume is the host's folder, both ways
    real_node.kubectl("exec", "-n", ns, "httpd", "--", "python3", "-c",
                      "open('/srv/www/from-pod.txt', 'w').write('written in the pod')")
    assert (www / "from-pod.txt").read_text() == "written in the pod"

    # logs come from the container
    logs = real_node.kubectl("logs", "-n", ns, "httpd").stdout
    assert '"GET /hello.txt HTTP/1.1" 200' in logs


def test_pull_without_the_secret_is_refused(real_node, python_image, node_namespace, tmp_path):
    """The registry wants credentials: without the pull secret the image does not come."""
    ns = node_namespace
    (tmp_path / "www").mkdir()
    objects = web_server(python_image, tmp_path / "www", pull_secret=None)
    apply(real_node, ns, objects[:1])

    def waiting_reason():
        statuses = pod(real_node, ns, "httpd").get("status", {}).get("containerStatuses") or []
        reason = statuses[0].get("state", {}).get("waiting", {}).get("reason") if statuses else None
        return reason if reason in ("ErrImagePull", "ImagePullBackOff") else None

    assert wait_for(waiting_reason, 60, "ErrImagePull")
    events = real_node.kubectl("get", "events", "-n", ns, "-o", "json").stdout
    assert "authorization failed: no basic auth credentials" in events, events[-2000:]


def _host_snapshot() -> dict:
    """What a cluster must not leave on the host: iptables rules, namespaces,
    cgroups, mounts (but those of the session's cluster, whose pods come and go)."""
    from tests.node.conftest import _started

    others = [str(c.run_dir) for c in _started]
    save = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    rules = sorted(line for line in save.splitlines() if line and not line.startswith("#"))
    netns = sorted(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split("\n"))
    cgroups = sorted(str(p) for h in _cgroup_hierarchies() for p in h.glob("karvdash-node-*"))
    mounts = sorted(m for m in _mounts() if not any(m.startswith(o) for o in others))
    links = sorted(f"{p} -> {os.readlink(p)}" for p in CONTAINER_LOGS.glob("*") if p.is_symlink()
                   and not any(os.readlink(p).startswith(o) for o in others))
    host = sorted(str(p) for p in HOST_PATHS if p.exists())
    records = sorted(str(p) for p in RECORDS.glob("*")) if RECORDS.is_dir() else []
    return {"iptables": rules, "netns": netns, "cgroups": cgroups, "mounts": mounts, "container logs": links,
            "host paths": host, "records": records}


def test_teardown_leaves_nothing_and_a_second_run_works(tmp_path_factory):
    """Two clusters one after the other in the same folder (so the same
    namespace and cgroup names), each running a pod with volumes: after each
    stop nothing of it is left, and the host looks as before."""
    from tests.node.conftest import node_unavailable, skip_or_fail

    reason = node_unavailable()
    if reason:
        skip_or_fail(f"real node not available: {reason}")
    tmp_path = tmp_path_factory.mktemp("rn")  # short: kubelet's sockets live below it
    before = _host_snapshot()
    for run in range(2):
        cluster = RealNodeCluster(tmp_path / "c")
        cluster.start()
        try:
            pause = (cluster.node_bin_dir / "pause-image.ref").read_text().strip()
            host = tmp_path / f"host-{run}"
            host.mkdir()
            apply(cluster, "default", [{
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"sleeper-{run}"},
                "spec": {
                    "containers": [{"name": "pause", "image": pause, "imagePullPolicy": "Never",
                                    "volumeMounts": [{"name": "host", "mountPath": "/host"},
                                                     {"name": "scratch", "mountPath": "/scratch"}]}],
                    "volumes": [{"name": "host", "hostPath": {"path": str(host)}},
                                {"name": "scratch", "emptyDir": {"medium": "Memory"}}],
                    "terminationGracePeriodSeconds": 1,
                },
            }])
            try:
                wait_for(lambda c=cluster, r=run: pod_ready(c, "default", f"sleeper-{r}"), 60, "pod Ready")
            except TimeoutError:
                pytest.fail(describe(cluster, "default"))
            assert cluster._shim_pids(), "a pod runs, so a shim should"
        finally:
            left = cluster.stop()
        assert left == [], left
        after = _host_snapshot()
        for key in before:
            assert after[key] == before[key], (key, sorted(set(after[key]) ^ set(before[key]))[:10])
