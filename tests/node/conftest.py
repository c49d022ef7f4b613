"""Fixtures of the real-node tests (``make test-node``; marker ``node``).

``real_node`` is one :class:`tests.kube.realnode.RealNodeCluster` per test
session: a control plane and a real kubelet with containerd in a network
namespace of its own. Without what it needs (root, the node binaries, the
Debian packages) it skips with one reason; KARVDASH_NODE_REQUIRED=1 makes
that a failure. Images come from tools/images/build.sh (cached) and reach
the node through the cluster's registry.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.kube.cluster import ControlPlaneError
from tests.kube.realnode import RealNodeCluster, unavailable_reason

ROOT = Path(__file__).resolve().parents[2]
IMAGES_BUILD = ROOT / "tools" / "images" / "build.sh"

_started: list[RealNodeCluster] = []
_image_seconds: dict[str, float] = {}
_memory: dict[str, dict[str, float]] = {}


def record_memory(cluster: RealNodeCluster, when: str) -> None:
    """Keep the cluster's memory use now (shown at the end of the run)."""
    _memory[when] = cluster.memory()


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
