"""pytest plugin: one real Kubernetes control plane per test session.

Import it from a conftest.py (``from tests.kube.fixtures import *``). Tests
that need it take the ``kube_cluster`` fixture (a started
:class:`tests.kube.cluster.ControlPlane`) and carry ``@pytest.mark.kube``.

Without the binaries the fixture skips with one reason; set
KARVDASH_KUBE_REQUIRED=1 to make that a failure instead (CI, where Go exists).
"""

from __future__ import annotations

import os
import time
import uuid

import pytest

from tests.kube.cluster import (
    LOCAL_PROCESS_LABEL,
    ControlPlane,
    ControlPlaneError,
    default_bin_dir,
    go_available,
    missing_binaries,
)

__all__ = [
    "LOCAL_PROCESS_LABEL",
    "kube_cluster",
    "kube_api_client",
    "kube_namespace",
    "kube_local_node",
    "new_api_client",
    "require_control_plane",
    "wait_for",
    "pytest_configure",
    "pytest_runtest_makereport",
    "pytest_terminal_summary",
]

NO_GO_REASON = "Kubernetes control plane not available: Go not found; install Go >= 1.26 and run make test"

_started: list[ControlPlane] = []


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "kube: needs the local Kubernetes control plane (binaries from tools/kube/build.sh)"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that used the cluster shows the end of its components' logs."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _started and "kube_cluster" in getattr(item, "fixturenames", ()):
        cp = _started[-1]
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
            tail = cp.log_tail(name, 25)
            if tail:
                report.sections.append((f"{name} log, last lines ({cp.log_dir / (name + '.log')})", tail))


def pytest_terminal_summary(terminalreporter):
    for cp in _started:
        terminalreporter.write_line(f"kube control plane: ready in {cp.ready_seconds:.1f} s (logs in {cp.log_dir})")


def unavailable_reason() -> str | None:
    """Why the control plane cannot start here (None: it can)."""
    bin_dir = default_bin_dir()
    missing = missing_binaries(bin_dir)
    if not missing:
        return None
    if not go_available():
        return NO_GO_REASON
    return (f"Kubernetes control plane not available: {', '.join(missing)} not built in {bin_dir}; "
            "run make kube-binaries")


def new_api_client(kubeconfig, **overrides):
    """A ``kubernetes`` (sync) ApiClient for that kubeconfig, sharing no global configuration."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    for key, value in overrides.items():
        setattr(configuration, key, value)
    return client.ApiClient(configuration)


def wait_for(check, timeout: float = 30, what: str = "condition", interval: float = 0.2):
    """Poll ``check()`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def require_control_plane() -> None:
    """Skip the test when the control plane cannot start here (fail it with
    KARVDASH_KUBE_REQUIRED=1); for tests that start their own, e.g. a benchmark's."""
    reason = unavailable_reason()
    if reason:
        if os.environ.get("KARVDASH_KUBE_REQUIRED"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory):
    """The session's control plane: .kubeconfig, .server, .ca, .bin_dir, .kubectl(), .helm(), .log_tail()."""
    require_control_plane()
    cp = ControlPlane(tmp_path_factory.mktemp("kube"))
    try:
        cp.start()
    except ControlPlaneError as exc:
        pytest.fail(f"Kubernetes control plane did not start: {exc}")
    _started.append(cp)
    yield cp
    cp.stop()


@pytest.fixture(scope="session")
def kube_api_client(kube_cluster):
    """Admin ApiClient for the session's cluster."""
    api = new_api_client(kube_cluster.kubeconfig)
    yield api
    api.close()


@pytest.fixture
def kube_namespace(kube_cluster, kube_api_client):
    """A fresh namespace (with its default service account), deleted after the test."""
    from kubernetes import client

    core = client.CoreV1Api(kube_api_client)
    name = f"test-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    wait_for(lambda: has_default_service_account(core, name), timeout=30, what=f"service account {name}/default")
    yield name
    delete_if_there(core.delete_namespace, name)


def has_default_service_account(core, namespace: str) -> bool:
    """Whether ``namespace`` has its ``default`` service account yet (the
    controller manager makes it moments after the namespace)."""
    from kubernetes.client.rest import ApiException

    try:
        core.read_namespaced_service_account("default", namespace, _preload_content=False)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def delete_if_there(delete, *args) -> None:
    """``delete(*args)``; an object that is not there is fine."""
    from kubernetes.client.rest import ApiException

    try:
        delete(*args)
    except ApiException as exc:
        if exc.status != 404:
            raise


@pytest.fixture(scope="session")
def kube_local_node(kube_cluster, kube_api_client, tmp_path_factory):
    """Runs pods labelled karvdash-hub.test/local-process=true as local processes (tests.kube.node)."""
    from tests.kube.node import LocalProcessNode

    node = LocalProcessNode(kube_api_client, tmp_path_factory.mktemp("pods"), node_name=kube_cluster.node_name)
    node.start()
    yield node
    node.stop()
