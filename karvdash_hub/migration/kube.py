"""The Kubernetes calls of a migration: list, create and merge-patch
objects of any kind as plain dicts (kubernetes_asyncio's dynamic client),
a kind the cluster does not have holding no objects."""

from __future__ import annotations

import json
import os
import tempfile

from kubernetes_asyncio.client.rest import ApiException
from kubernetes_asyncio.dynamic import DynamicClient
from kubernetes_asyncio.dynamic.exceptions import ResourceNotFoundError

from karvdash_hub.core.errors import KarvdashError
from karvdash_hub.core.kubeapi import api_message

FIELD_MANAGER = "karvdash-hub-migrate"


class KubeError(KarvdashError):
    """The API server refused a request of the migration."""


class Kube:
    def __init__(self, api_client):
        self.api_client = api_client
        self._dynamic: DynamicClient | None = None
        # the dynamic client's discovery cache, for this run only
        self._cache = tempfile.TemporaryDirectory(prefix="karvdash-migrate-")

    def close(self) -> None:
        self._cache.cleanup()

    async def _resource(self, api_version: str, kind: str):
        if self._dynamic is None:
            cache = os.path.join(self._cache.name, "discovery.json")
            self._dynamic = await DynamicClient(self.api_client, cache_file=cache)
        try:
            return await self._dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            return None

    async def _call(self, method: str, resource, **kwargs) -> dict:
        response = await getattr(self._dynamic, method)(resource, serialize=False, **kwargs)
        body = await response.read()
        if 200 <= response.status <= 299:
            return json.loads(body) if body else {}
        error = ApiException(status=response.status, reason=response.reason)
        error.body = body
        raise error

    async def list(self, api_version: str, kind: str, namespace: str | None = None, label_selector: str = "") -> list[dict]:
        """The objects of a kind (every item with its apiVersion and kind)."""
        resource = await self._resource(api_version, kind)
        if resource is None:
            return []
        try:
            found = await self._call("get", resource, namespace=namespace, label_selector=label_selector or None)
        except ApiException as error:
            if error.status == 404:
                return []
            raise KubeError(502, f"cannot list {kind} objects: {api_message(error)}") from None
        items = found.get("items") or []
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    async def create(self, body: dict) -> bool:
        """Create ``body``; False when an object of its name exists already."""
        resource = await self._resource(body["apiVersion"], body["kind"])
        what = f"{body['kind']} {body['metadata'].get('namespace', '')}/{body['metadata']['name']}"
        if resource is None:
            raise KubeError(400, f"the cluster has no kind {body['kind']} in {body['apiVersion']}: cannot create {what}")
        try:
            await self._call("create", resource, body=body, namespace=body["metadata"].get("namespace"))
            return True
        except ApiException as error:
            if error.status == 409:
                return False
            raise KubeError(502, f"cannot create {what}: {api_message(error)}") from None

    async def patch(self, api_version: str, kind: str, name: str, namespace: str | None, patch: dict) -> None:
        """Merge ``patch`` into the object (labels and annotations only, as the migration sends)."""
        resource = await self._resource(api_version, kind)
        what = f"{kind} {namespace + '/' if namespace else ''}{name}"
        if resource is None:
            raise KubeError(400, f"the cluster has no kind {kind} in {api_version}: cannot label {what}")
        try:
            await self._call("patch", resource, body=patch, name=name, namespace=namespace,
                             content_type="application/merge-patch+json", field_manager=FIELD_MANAGER)
        except ApiException as error:
            raise KubeError(502, f"cannot label {what}: {api_message(error)}") from None
