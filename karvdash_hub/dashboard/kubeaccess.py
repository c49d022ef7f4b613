"""The dashboard's Kubernetes client: made by the first request that needs
it (services, templates, datasets) and shared by all of them after."""

from __future__ import annotations

import logging

from karvdash_hub.services.store import api_client_from_environment

from .context import DashboardContext
from .handlers import DashboardError

log = logging.getLogger("karvdash.dashboard")

KUBE_CLIENT = "kube_api_client"


async def kube_client(context: DashboardContext):
    """The shared kubernetes_asyncio ApiClient; 503 when Kubernetes cannot be reached."""
    if KUBE_CLIENT not in context.extras:
        try:
            context.extras[KUBE_CLIENT] = await api_client_from_environment(context.settings.kubeconfig)
        except Exception as error:  # noqa: BLE001 - kubeconfig and in-cluster loaders raise several kinds
            log.error("cannot reach Kubernetes: %s", error)
            raise DashboardError(503, f"the dashboard cannot reach Kubernetes: {error}") from None
    return context.extras[KUBE_CLIENT]


async def close_kube_client(context: DashboardContext) -> None:
    """Close the shared client at shutdown (its HTTP session would be left open)."""
    client = context.extras.pop(KUBE_CLIENT, None)
    if client is not None:
        await client.close()
