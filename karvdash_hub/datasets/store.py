"""Datasets in Kubernetes: list, add, read and remove the Datashim Datasets
of one user's namespace, with their credentials Secrets. Thin I/O over
kubernetes_asyncio; what is sent comes from ``model.py``.

Names are claimed by create-only requests, so two requests for the same
name cannot both get it: the second one gets a suffix.
"""

from __future__ import annotations

import asyncio
import logging

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.rest import ApiException

from karvdash_hub.core.kubeapi import RETRIES_ON_BUSY, api_message, retry_delay
from karvdash_hub.core.labels import OWNER_LABEL, TEMPLATE_LABEL
from karvdash_hub.core.settings import KarvdashConfig

from . import model as ds

log = logging.getLogger("karvdash.datasets")
ATTEMPTS = 8


class DatasetStore:
    """Datasets of the deployment; every call names the user it acts for and
    works only in that user's namespace."""

    def __init__(self, settings: KarvdashConfig, api_client: k8s.ApiClient):
        self.settings = settings
        self.api_client = api_client
        self.custom = k8s.CustomObjectsApi(api_client)
        self.core = k8s.CoreV1Api(api_client)

    @property
    def group(self) -> str:
        return self.settings.datasetsAPIGroup

    async def _request(self, call, *args, **kwargs):
        """``call`` (a method of the API clients), tried again while the API
        server answers 429 (refused requests change nothing)."""
        for attempt in range(RETRIES_ON_BUSY + 1):
            try:
                return await call(*args, **kwargs)
            except ApiException as error:
                if error.status != 429 or attempt == RETRIES_ON_BUSY:
                    raise
                await asyncio.sleep(retry_delay(error.headers))

    def _failure(self, action: str, error: ApiException) -> ds.DatasetError:
        if error.status == 429:
            return ds.DatasetError(
                503, f"cannot {action}: the Kubernetes API is busy ({api_message(error)}); try again"
            )
        if error.status == 404 and "the server could not find the requested resource" in api_message(error):
            return ds.DatasetError(
                503, f"the cluster has no {self.group}/{ds.DATASET_VERSION} Dataset API: "
                "an administrator must install Datashim"
            )
        return ds.DatasetError(502, f"cannot {action}: {api_message(error)}")

    # --- reading ---------------------------------------------------------------------------

    async def _objects(self, namespace: str) -> list[dict]:
        try:
            found = await self._request(
                self.custom.list_namespaced_custom_object, self.group, ds.DATASET_VERSION, namespace, ds.DATASET_PLURAL
            )
        except ApiException as error:
            raise self._failure("list datasets", error) from None
        return found.get("items") or []

    async def list(self, username: str) -> list[dict]:
        """Summaries of the user's datasets, by name."""
        items = await self._objects(self.settings.user_namespace(username))
        return sorted((ds.summary(item) for item in items), key=lambda s: s["name"])

    async def get(self, username: str, name: str) -> dict:
        """The user's Dataset ``name`` as the API holds it; 404 if there is none."""
        ds.check_name(name)
        try:
            return await self._request(
                self.custom.get_namespaced_custom_object,
                self.group, ds.DATASET_VERSION, self.settings.user_namespace(username), ds.DATASET_PLURAL, name,
            )
        except ApiException as error:
            if error.status == 404 and "not found" in api_message(error):
                raise ds.DatasetError(404, f"no dataset named {name}") from None
            raise self._failure(f"read dataset {name}", error) from None

    async def type_descriptions(self, username: str) -> list[dict]:
        """The types users may add, each with the user's services that can serve it."""
        services = await self.local_services(username)
        types = ds.enabled_types(self.settings.disabledDatasetTemplates)
        return [t.to_json(sorted(services.get(t.local_template, {}))) for t in types]

    async def local_services(self, username: str) -> dict[str, dict[str, str]]:
        """For each type served from the user's own services: the user's
        instances of its template and their endpoints."""
        namespace = self.settings.user_namespace(username)
        result: dict[str, dict[str, str]] = {}
        for kind in ds.TYPES.values():
            if not kind.local_template or kind.local_template in result:
                continue
            selector = f"{OWNER_LABEL}={username},{TEMPLATE_LABEL}={kind.local_template}"
            try:
                services = await self._request(self.core.list_namespaced_service, namespace, label_selector=selector)
            except ApiException as error:
                raise self._failure("list your services", error) from None
            plain = self.api_client.sanitize_for_serialization(services).get("items") or []
            result[kind.local_template] = ds.local_service_endpoints(plain, kind, namespace)
        return result

    # --- adding ----------------------------------------------------------------------------

    async def create(self, username: str, body: dict) -> dict:
        """Check ``body`` and add the dataset (and its Secret); return its summary.
        A taken name gets a random suffix."""
        namespace = self.settings.user_namespace(username)
        kind = ds.TYPES.get(body.get("type")) if isinstance(body, dict) and isinstance(body.get("type"), str) else None
        # only types served by the user's own services need them looked up
        services = await self.local_services(username) if kind and kind.local_template else {}
        request = ds.check_request(body, disabled=self.settings.disabledDatasetTemplates, local_services=services)
        taken = {item["metadata"]["name"] for item in await self._objects(namespace)}
        for _ in range(ATTEMPTS):
            request = ds.with_name(request, ds.free_name(request.name, taken))
            created = await self._create_once(request, namespace, username)
            if created is not None:
                log.info("%s added dataset %s (%s)", username, request.name, request.type.id)
                return ds.summary(created)
            taken.add(request.name)
        raise ds.DatasetError(409, f"no free name like {request.name!r}")

    async def _create_once(self, request: ds.DatasetRequest, namespace: str, owner: str) -> dict | None:
        """Create the Secret, then the Dataset; None if either name is taken.
        On failure nothing is left behind."""
        secret = None
        if request.credentials:
            body = ds.credentials_secret(request, namespace, owner)
            try:
                secret = await self._request(self.core.create_namespaced_secret, namespace, body)
            except ApiException as error:
                if error.status == 409:
                    return None
                raise self._namespace_failure("store the dataset's credentials", error, namespace) from None
        try:
            dataset = await self._request(
                self.custom.create_namespaced_custom_object,
                self.group, ds.DATASET_VERSION, namespace, ds.DATASET_PLURAL,
                ds.dataset_object(self.group, request, namespace, owner),
            )
        except ApiException as error:
            if secret is not None:
                await self._delete_secret(namespace, secret.metadata.name)
            if error.status == 409:
                return None
            if error.status in (400, 422):
                raise ds.DatasetError(400, f"Kubernetes refused the dataset: {api_message(error)}") from None
            raise self._namespace_failure("create the dataset", error, namespace) from None
        if secret is not None:
            try:
                await self._request(
                    self.core.patch_namespaced_secret,
                    secret.metadata.name, namespace, {"metadata": {"ownerReferences": [ds.owner_reference(dataset)]}},
                )
            except ApiException as error:
                await self._delete_dataset(namespace, request.name)
                await self._delete_secret(namespace, secret.metadata.name)
                raise self._failure("link the credentials to the dataset", error) from None
        return dataset

    def _namespace_failure(self, action: str, error: ApiException, namespace: str) -> ds.DatasetError:
        if error.status == 404 and "namespaces" in api_message(error):
            return ds.DatasetError(409, f"your namespace {namespace} does not exist yet: start a server once")
        return self._failure(action, error)

    # --- removing --------------------------------------------------------------------------

    async def delete(self, username: str, name: str) -> None:
        """Remove the user's dataset and the credentials Secret karvdash made for it."""
        dataset = await self.get(username, name)
        namespace = self.settings.user_namespace(username)
        await self._delete_dataset(namespace, name, dataset["metadata"]["uid"])
        referenced = ((dataset.get("spec") or {}).get("local") or {}).get("secret-name")
        if referenced == ds.secret_name(name):
            try:
                secret = await self._request(self.core.read_namespaced_secret, referenced, namespace)
            except ApiException as error:
                if error.status == 404:
                    return
                raise self._failure("read the dataset's credentials", error) from None
            labels = secret.metadata.labels or {}
            # only the Secret made for this dataset, never one the user made by hand
            if labels.get(ds.DATASET_LABEL) == name and labels.get(OWNER_LABEL) == username:
                await self._delete_secret(namespace, referenced)
        log.info("%s removed dataset %s", username, name)

    async def _delete_dataset(self, namespace: str, name: str, uid: str | None = None) -> None:
        body = {"preconditions": {"uid": uid}} if uid else None
        try:
            await self._request(
                self.custom.delete_namespaced_custom_object,
                self.group, ds.DATASET_VERSION, namespace, ds.DATASET_PLURAL, name, body=body,
            )
        except ApiException as error:
            if error.status != 404:
                raise self._failure(f"remove dataset {name}", error) from None

    async def _delete_secret(self, namespace: str, name: str) -> None:
        try:
            await self._request(self.core.delete_namespaced_secret, name, namespace)
        except ApiException as error:
            if error.status != 404:
                log.warning("cannot remove Secret %s/%s: %s", namespace, name, api_message(error))
