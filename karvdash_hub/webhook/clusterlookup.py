"""What the webhook asks the Kubernetes API: who owns a namespace, which
datasets it has. The thin I/O layer under :mod:`karvdash_hub.webhook.reviews`.

The owner comes from the namespace's ``karvdash.io/owner`` label (set by the
spawner when it creates the namespace) rather than from the namespace name,
so a change of the naming scheme cannot hand one user's files to another.
Owners are cached for a minute: a namespace's owner never changes while the
namespace exists, and the lookup is on every pod's admission path.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from karvdash_hub.core.kubeapi import retry_delay
from karvdash_hub.core.labels import OWNER_LABEL
from karvdash_hub.datasets.model import DATASET_PLURAL, DATASET_VERSION

log = logging.getLogger("karvdash_hub.webhook")


class ClusterUnavailable(RuntimeError):
    """The Kubernetes API could not answer."""


class ClusterLookup:
    def __init__(self, api: client.ApiClient, datasets_group: str, *, timeout: float = 5.0,
                 owner_ttl: float = 60.0):
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.datasets_group = datasets_group
        self.timeout = timeout
        self.owner_ttl = owner_ttl
        self._owners: dict[str, tuple[float, str | None]] = {}

    async def _request(self, what: str, call):
        """``await call()``, again after a 429/503 (the API server sheds load
        or has just started serving a resource) until ``timeout`` is spent.
        404 goes to the caller; anything else is ClusterUnavailable."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return await asyncio.wait_for(call(), max(deadline - time.monotonic(), 0.1))
            except ApiException as e:
                if e.status == 404:
                    raise
                # short waits: the API server waits for this answer
                retry_after = retry_delay(e.headers, default=0.2, shortest=0.05, longest=1.0)
                if e.status not in (429, 503) or time.monotonic() + retry_after >= deadline:
                    raise ClusterUnavailable(f"cannot {what}: {e.status} {e.reason}") from None
                log.info("%s: %s %s, trying again in %.1f s", what, e.status, e.reason, retry_after)
                await asyncio.sleep(retry_after)
            except (asyncio.TimeoutError, OSError, aiohttp.ClientError) as e:
                raise ClusterUnavailable(f"cannot {what}: {e or 'timed out'}") from None

    async def owner(self, namespace: str) -> str | None:
        """The namespace's owner, or None if it has no owner label (or is gone)."""
        cached = self._owners.get(namespace)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        try:
            ns = await self._request(f"read namespace {namespace}", lambda: self.core.read_namespace(namespace))
        except ApiException:  # 404
            return None
        owner = (ns.metadata.labels or {}).get(OWNER_LABEL) or None
        # only a positive answer is kept: a namespace may get its label a moment later
        if owner:
            self._owners[namespace] = (time.monotonic() + self.owner_ttl, owner)
        return owner

    async def datasets(self, namespace: str) -> list[str]:
        """Names of the namespace's Datashim Datasets ([] without Datashim)."""
        try:
            listing = await self._request(
                f"list datasets in {namespace}",
                lambda: self.custom.list_namespaced_custom_object(
                    self.datasets_group, DATASET_VERSION, namespace, DATASET_PLURAL))
        except ApiException:  # 404
            log.warning("no %s/%s datasets in the cluster (is Datashim installed?)",
                        self.datasets_group, DATASET_VERSION)
            return []
        return sorted(item["metadata"]["name"] for item in listing.get("items", []))
