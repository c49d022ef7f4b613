"""Fixtures of the real-node tests (``make test-node``; marker ``node``).

``real_node`` is one :class:`tests.kube.realnode.RealNodeCluster` per test
session: a control plane and a real kubelet with containerd in a network
namespace of its own. Without what it needs (root, the node binaries, the
Debian packages) it skips with one reason; KARVDASH_NODE_REQUIRED=1 makes
that a failure. Images come from tools/images/build.sh (cached) and reach
the node through the cluster's registry.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.kube.cluster import ControlPlaneError, free_port
from tests.kube.fixtures import wait_for
from tests.kube.pki import CertificateAuthority
from tests.kube.realnode import NSRELAY, RealNodeCluster, unavailable_reason

ROOT = Path(__file__).resolve().parents[2]
IMAGES_BUILD = ROOT / "tools" / "images" / "build.sh"
CHART = ROOT / "chart" / "karvdash-hub"
RELEASE = "kd"
NAME = f"{RELEASE}-karvdash-hub"

_started: list[RealNodeCluster] = []
_image_seconds: dict[str, float] = {}
_memory: dict[str, dict[str, float]] = {}
_timings: dict[str, float] = {}


def record_memory(cluster: RealNodeCluster, when: str) -> None:
    """Keep the cluster's memory use now (shown at the end of the run)."""
    _memory[when] = cluster.memory()


def record_timing(what: str, seconds: float) -> None:
    """Keep how long a step of a test took (shown at the end of the run)."""
    _timings[what] = seconds


def node_unavailable() -> str | None:
    return unavailable_reason()


def skip_or_fail(reason: str):
    if os.environ.get("KARVDASH_NODE_REQUIRED"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed node test shows the end of the node's logs."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _started:
        cluster = _started[-1]
        for name in ("kubelet", "containerd", "kube-proxy", "kube-router", "coredns", "kube-apiserver", "registry"):
            tail = cluster.log_tail(name, 20)
            if tail:
                report.sections.append((f"{name} log, last lines ({cluster.log_dir / (name + '.log')})", tail))


def pytest_terminal_summary(terminalreporter):
    for cluster in _started:
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in cluster.timings.items())
        terminalreporter.write_line(f"real node: ready in {cluster.ready_seconds:.1f} s ({phases}); "
                                    f"logs in {cluster.log_dir}")
    for name, seconds in _image_seconds.items():
        terminalreporter.write_line(f"image {name}: {seconds:.1f} s (build or cache hit)")
    for what, seconds in _timings.items():
        terminalreporter.write_line(f"timing {what}: {seconds:.1f} s")
    for when, usage in _memory.items():
        processes = sum(v for k, v in usage.items() if not k.startswith("pods"))
        details = ", ".join(f"{k} {v:.0f}" for k, v in usage.items())
        terminalreporter.write_line(f"memory {when}: harness processes {processes:.0f} MiB RSS; {details} (MiB)")


@pytest.fixture(scope="session")
def real_node(tmp_path_factory):
    reason = node_unavailable()
    if reason:
        skip_or_fail(f"real node not available: {reason}")
    cluster = RealNodeCluster(tmp_path_factory.mktemp("realnode"))
    try:
        cluster.start()
    except ControlPlaneError as exc:
        pytest.fail(f"real node did not start: {exc}")
    _started.append(cluster)
    yield cluster
    left = cluster.stop()
    assert not left, f"teardown left: {left}"


def build_image(name: str) -> Path:
    """tools/images/build.sh NAME (cached); the OCI archive's path."""
    started = time.monotonic()
    proc = subprocess.run([str(IMAGES_BUILD), name], capture_output=True, text=True, timeout=1800)
    _image_seconds[name] = time.monotonic() - started
    if proc.returncode == 3:
        skip_or_fail(f"cannot build image {name}: {proc.stderr.strip().splitlines()[-1]}")
    if proc.returncode != 0:
        pytest.fail(f"tools/images/build.sh {name} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def python_image(real_node) -> str:
    """The mmdebstrap Python base image, in the node's registry; its reference."""
    return real_node.push_image(build_image("python-base"), "karvdash-base/python:3.11-bookworm")


@pytest.fixture
def node_namespace(real_node):
    """A fresh namespace with its default service account and the registry's pull secret."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    real_node.kubectl("create", "namespace", name)
    deadline = time.monotonic() + 30
    while real_node.api("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")[0] != 200:
        assert time.monotonic() < deadline, f"no default service account in {name}"
        time.sleep(0.2)
    real_node.pull_secret(name)
    yield name
    real_node.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def hub_image(real_node) -> str:
    """The project's image (its Dockerfile), in the node's registry; its reference."""
    archive = build_image("karvdash-hub")
    return real_node.push_image(archive, f"karvdash-hub:{archive.stem.rsplit('-', 1)[1]}")


@pytest.fixture(scope="session")
def notebook_image(real_node) -> str:
    """The notebook image (images/notebook/Dockerfile), in the node's registry; its reference."""
    archive = build_image("notebook")
    return real_node.push_image(archive, f"karvdash-notebook:{archive.stem.rsplit('-', 1)[1]}")


def describe_namespace(cluster: RealNodeCluster, ns: str) -> str:
    from tests.node.test_real_node import describe

    return describe(cluster, ns) + "\n" + cluster.kubectl(
        "logs", "-n", ns, "-l", "app.kubernetes.io/name=karvdash-hub", "--tail=30", "--all-containers",
        "--prefix", check=False).stdout


@contextlib.contextmanager
def installed_chart(cluster: RealNodeCluster, image: str, work: Path, ns: str, values: dict | None = None,
                    state_files: dict[str, str] | None = None):
    """``helm install --wait`` of the chart as release ``kd`` in ``ns`` with
    the project's image, state and files in host folders of ``work`` and the
    webhook's certificate from a test CA (``values`` merged over these, one
    level deep); ``state_files`` (relative path: text) are put into the state
    folder first, as an administrator puts admin profiles there. Yields
    ``ns`` and uninstalls afterwards."""
    state, files = work / "state", work / "files"
    for folder in (state, files):
        folder.mkdir()
        os.chown(folder, 1000, 1000)  # the image runs as uid 1000
    for relative, text in (state_files or {}).items():
        path = state / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        for made in (path, *path.relative_to(state).parents):
            os.chown(state / made, 1000, 1000)
    cluster.kubectl("create", "namespace", ns)
    wait_for(lambda: cluster.api("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")[0] == 200, 30,
             "default service account")
    secret = cluster.pull_secret(ns)
    ca = CertificateAuthority("karvdash-hub webhook test CA")
    service = f"{NAME}-webhook"
    pair = ca.issue(service, dns_names=(service, f"{service}.{ns}", f"{service}.{ns}.svc"), server=True)
    cluster.apply({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                   "metadata": {"name": "webhook-tls", "namespace": ns},
                   "stringData": {"tls.crt": pair.cert_pem.decode(), "tls.key": pair.key_pem.decode()}})
    merged = {
        "image": image,
        "imagePullSecrets": [{"name": secret}],
        "karvdash": {"ingressURL": "https://karvdash.example.test", "stateHostPath": str(state),
                     "filesURL": f"file://{files}", "adminPassword": "admin-secret"},
        "webhook": {"certManager": {"enabled": False},
                    "tls": {"secretName": "webhook-tls", "caBundle": ca.cert_pem.decode()}},
    }
    for key, value in (values or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    values_file = work / "values.yaml"
    values_file.write_text(yaml.safe_dump(merged))
    started = time.monotonic()
    try:
        cluster.helm("install", RELEASE, str(CHART), "--namespace", ns, "-f", str(values_file),
                     "--wait", "--timeout", "300s", timeout=360)
    except Exception:
        pytest.fail(describe_namespace(cluster, ns))
    print(f"helm install --wait: {time.monotonic() - started:.1f} s")
    record_memory(cluster, f"with the chart installed in {ns}")
    try:
        yield ns
    finally:
        cluster.helm("uninstall", RELEASE, "--namespace", ns, "--wait", "--timeout", "120s", check=False,
                     timeout=180)
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@contextlib.contextmanager
def relay(cluster: RealNodeCluster, target: str):
    """A port on the host's 127.0.0.1 that connects to ``target``
    (``host:port``, e.g. a ClusterIP) from inside the node's namespace
    (tests/kube/nsrelay.py): how a browser on the host reaches a Service.
    Yields the port; the relay stops afterwards."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(NSRELAY), f"--netns={cluster.netns_path}",
                             f"127.0.0.1:{port}={target}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        line = proc.stdout.readline().strip()
        if line != "ready":
            proc.kill()
            pytest.fail(f"relay to {target} did not start: {line} {proc.stderr.read()[-2000:]}")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
