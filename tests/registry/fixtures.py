"""pytest fixtures for tests against a real Docker registry (Debian's
``docker-registry``; ``make test`` installs it and skopeo)."""

from __future__ import annotations

import os

import pytest

from tests.registry.server import REGISTRY_BINARY, SKOPEO_BINARY, start_registry

__all__ = ["docker_registry"]


@pytest.fixture(scope="module")
def docker_registry(tmp_path_factory):
    """A running registry with TLS and basic auth, one per test module."""
    for binary, package in ((REGISTRY_BINARY, "docker-registry"), (SKOPEO_BINARY, "skopeo")):
        if not os.path.exists(binary):
            pytest.fail(f"{binary} not found; `make test` installs Debian's {package}")
    registry = start_registry(tmp_path_factory.mktemp("registry"))
    yield registry
    registry.stop()
