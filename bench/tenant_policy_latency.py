"""What the tenant policy adds to a pod create through the API server.

    .venv/bin/python bench/tenant_policy_latency.py [--pods 300] [--json]

Starts the test control plane (tests/kube/cluster.py: a real kube-apiserver
1.34 with etcd, the scheduler and a kwok node) and makes two namespaces
alike but for the label the hub puts on user namespaces: the chart's
ValidatingAdmissionPolicies (templates/admission/) match one of them only.
It then creates pods (an ordinary pod that mounts the owner's private
folder and the shared folder, as spawned servers do) in the two namespaces
in turn, one by one, so that the machine's drift falls on both alike:
first without the policies (the control: how alike the namespaces are),
then with them. Prints the median and p90 of each, the ratio of the
medians (user namespace / plain namespace) in both runs, and the policy's
ratio (with / control). No webhook is registered: the policy's cost alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHART = ROOT / "chart" / "karvdash-hub"
POLICY_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
NAMESPACE = "karvdash-alice"
PLAIN = "plain-alice"


def pod(name: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {
            "containers": [{"name": "main", "image": "registry.invalid/x:1",
                            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                            "volumeMounts": [{"name": "private", "mountPath": "/private"},
                                             {"name": "shared", "mountPath": "/shared"}]}],
            "volumes": [{"name": "private", "hostPath": {"path": "/data/karvdash/private/alice"}},
                        {"name": "shared", "hostPath": {"path": "/data/karvdash/shared"}}],
            "terminationGracePeriodSeconds": 0,
        },
    }


def policies(cp, directory: Path) -> list[dict]:
    values = directory / "values.yaml"
    values.write_text(yaml.safe_dump({"karvdash": {
        "ingressURL": "https://example.test", "filesURL": "file:///data/karvdash",
        "stateHostPath": "/srv/state", "allowedHostPathDirs": ["/opt/datasets"]}}))
    out = cp.helm("template", "kd", str(CHART), "--namespace", "karvdash", "-f", str(values)).stdout
    return [o for o in yaml.safe_load_all(out) if o and o["kind"] in POLICY_KINDS]


def timed_creates(core, count: int) -> dict[str, list[float]]:
    """``count`` creates in each namespace, alternating which goes first."""
    seconds: dict[str, list[float]] = {NAMESPACE: [], PLAIN: []}
    for i in range(count):
        for namespace in (NAMESPACE, PLAIN) if i % 2 else (PLAIN, NAMESPACE):
            body = pod("bench-" + uuid.uuid4().hex[:10])
            start = time.perf_counter()
            core.create_namespaced_pod(namespace, body)
            seconds[namespace].append(time.perf_counter() - start)
    for namespace in seconds:
        core.delete_collection_namespaced_pod(namespace, label_selector="app=bench", grace_period_seconds=0)
    return seconds


def wait(check, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.2)


def refuses_privileged(core) -> bool:
    from kubernetes.client.rest import ApiException

    body = pod("probe")
    body["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    try:
        core.create_namespaced_pod(NAMESPACE, body, dry_run="All")
    except ApiException as e:
        return e.status == 403
    return False


def summary(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {"pods": len(ordered), "median_ms": 1000 * statistics.median(ordered),
            "p90_ms": 1000 * ordered[int(0.9 * (len(ordered) - 1))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=300, help="pod creates per namespace and run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from kubernetes import client

    from tests.kube.cluster import ControlPlane
    from tests.kube.fixtures import new_api_client

    with tempfile.TemporaryDirectory(prefix="tenant-bench-") as tmp:
        directory = Path(tmp)
        cp = ControlPlane(directory / "cluster")
        cp.start()
        try:
            api = new_api_client(cp.kubeconfig)
            core = client.CoreV1Api(api)
            core.create_namespace({"metadata": {"name": NAMESPACE, "labels": {
                "karvdash.io/user-namespace": "enabled", "karvdash.io/owner": "alice"}}})
            core.create_namespace({"metadata": {"name": PLAIN, "labels": {"karvdash.io/owner": "alice"}}})
            for namespace in (NAMESPACE, PLAIN):
                wait(lambda: core.list_namespaced_service_account(namespace).items, "the default service account")
            manifest = directory / "policies.yaml"
            manifest.write_text(yaml.safe_dump_all(policies(cp, directory)))
            timed_creates(core, 20)  # warm connections and caches
            control = timed_creates(core, args.pods)
            cp.kubectl("apply", "-f", str(manifest))
            wait(lambda: refuses_privileged(core), "the policy in force")
            timed_creates(core, 20)
            measured = timed_creates(core, args.pods)
            api.close()
        finally:
            cp.stop()
    result = {}
    for run, seconds in (("without", control), ("with", measured)):
        result[run] = {"user namespace": summary(seconds[NAMESPACE]), "plain namespace": summary(seconds[PLAIN])}
        result[run]["ratio"] = result[run]["user namespace"]["median_ms"] / result[run]["plain namespace"]["median_ms"]
    result["policy ratio"] = result["with"]["ratio"] / result["without"]["ratio"]
    result["added_ms"] = (result["with"]["user namespace"]["median_ms"] - result["with"]["plain namespace"]["median_ms"]
                          - result["without"]["user namespace"]["median_ms"]
                          + result["without"]["plain namespace"]["median_ms"])
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for run in ("without", "with"):
        for where in ("user namespace", "plain namespace"):
            r = result[run][where]
            print(f"{run:>7} the policy, {where:>15}: {r['pods']} pod creates, median {r['median_ms']:.2f} ms, "
                  f"p90 {r['p90_ms']:.2f} ms")
        print(f"{run:>7} the policy, ratio of the medians (user / plain): {result[run]['ratio']:.3f}")
    print(f"the policy's ratio (with / without): {result['policy ratio']:.3f}, "
          f"about {result['added_ms']:.1f} ms per pod create")


if __name__ == "__main__":
    main()
