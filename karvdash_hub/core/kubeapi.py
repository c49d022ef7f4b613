"""Thin helpers for talking to the Kubernetes API (kubernetes_asyncio), shared
by the hub, the dashboard's stores and the webhook: a client from the
environment, the pod's own namespace, the API server's message of an error
and how long to wait before trying a busy API server again."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubernetes_asyncio import client as k8s
    from kubernetes_asyncio.client.rest import ApiException

# The API server answers 429 while it is busy or while a new kind's storage
# is (re)initializing; a request is tried this many more times.
RETRIES_ON_BUSY = 3
SERVICE_ACCOUNT_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


async def api_client_from_environment(kubeconfig: str = "", *, persist_config: bool = True) -> k8s.ApiClient:
    """An API client from ``kubeconfig`` if given, else with the pod's
    service account, else from ``$KUBECONFIG``. ``persist_config`` lets the
    loader write refreshed credentials back to that kubeconfig."""
    # imported on first use: kubernetes_asyncio loads its models and jsonschema
    # (~50 MiB), which local mode and the pure helpers below never need
    from kubernetes_asyncio import client as k8s
    from kubernetes_asyncio import config as k8s_config

    configuration = k8s.Configuration()
    if kubeconfig:
        await k8s_config.load_kube_config(
            config_file=kubeconfig, client_configuration=configuration, persist_config=persist_config
        )
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config(client_configuration=configuration)
    else:
        await k8s_config.load_kube_config(client_configuration=configuration, persist_config=persist_config)
    return k8s.ApiClient(configuration)


def pod_namespace(default: str = "default") -> str:
    """The namespace of the running pod's service account (blocking read of a tiny file)."""
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE_FILE) as f:
            return f.read().strip() or default
    except OSError:
        return default


def api_error_message(body: str | bytes | None, fallback: str = "") -> str:
    """The ``message`` of a Kubernetes API error body (a Status object); a
    body that is not JSON is the message itself; else ``fallback``."""
    try:
        status = json.loads(body or b"")
    except ValueError:
        return (body.decode(errors="replace") if isinstance(body, bytes) else body or fallback).strip()
    if isinstance(status, dict) and status.get("message"):
        return status["message"]
    return fallback


def api_message(error: ApiException) -> str:
    """The API server's own message of ``error``, else its status and reason."""
    return api_error_message(getattr(error, "body", None), f"{error.status} {error.reason}")


def retry_delay(headers, *, default: float = 1.0, shortest: float = 0.0, longest: float = 2.0) -> float:
    """Seconds to wait before retrying a busy answer (429, 503): its
    Retry-After (``default`` without one), within [``shortest``, ``longest``]."""
    try:
        seconds = float((headers or {}).get("Retry-After") or default)
    except (TypeError, ValueError):
        seconds = default
    return min(max(seconds, shortest), longest)
