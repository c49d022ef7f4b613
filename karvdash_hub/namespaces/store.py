"""User namespaces on the cluster: the thin I/O layer that applies the
objects of ``objects.py`` (idempotently, so every start can run it), lists
a namespace's datasets and removes a deleted user's namespace.

Runs on the hub's event loop with kubernetes_asyncio clients.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import logging
from collections.abc import Awaitable, Callable

from kubernetes_asyncio.client import ApiException, NetworkingV1Api

from karvdash_hub.core import labels
from karvdash_hub.core.kubeapi import api_error_message, pod_namespace
from karvdash_hub.core.settings import KarvdashConfig
from karvdash_hub.datasets.model import DATASET_PLURAL, DATASET_VERSION

from . import objects
from .spawnfailures import SpawnFailure, api_failure

Report = Callable[[str], None]
TokenSource = Callable[[str], str | Awaitable[str]]


class NamespaceNotOwned(SpawnFailure):
    """The namespace exists but is not this user's karvdash namespace."""


def _calls(api, kind: str) -> dict:
    """The create, read, replace and delete methods of ``kind`` (e.g. "role") in ``api``."""
    return {verb: getattr(api, f"{verb}_namespaced_{kind}") for verb in ("create", "read", "replace", "delete")}


def _bound_to_another_role(kind: str, name: str) -> Callable:
    """``recreate_if`` of a RoleBinding: its roleRef cannot change in place."""
    return lambda existing: (existing.role_ref.kind, existing.role_ref.name) != (kind, name)


async def _all(steps: list[Awaitable]) -> None:
    """Run ``steps`` at once; the first failure is raised as it is, once the
    steps still running are cancelled (a failed start leaves no request behind)."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _refused(action: str, error: ApiException) -> SpawnFailure:
    return SpawnFailure(api_failure(action, error.status, api_error_message(error.body, error.reason or "")))


class UserNamespaces:
    """Creates, fills and deletes user namespaces with the hub's clients
    (``core``: CoreV1Api, ``rbac``: RbacAuthorizationV1Api, ``custom``:
    CustomObjectsApi, ``networking``: NetworkingV1Api, by default on the
    client of ``core``)."""

    def __init__(self, settings: KarvdashConfig, core, rbac, custom, log: logging.Logger | None = None,
                 networking=None):
        self.settings = settings
        self.core = core
        self.rbac = rbac
        self.custom = custom
        self.networking = networking if networking is not None else NetworkingV1Api(core.api_client)
        self.log = log or logging.getLogger(__name__)

    # --- setting up ----------------------------------------------------------------

    async def ensure(self, username: str, token_source: TokenSource, report: Report = lambda message: None) -> None:
        """Make the namespace of ``username`` ready for a server: the
        namespace, its NetworkPolicy, the RoleBinding, the user's Argo account (with
        ``argoNamespace``), the API settings Secret (with a token from
        ``token_source(current_token)``), the registry pull secret and, in a
        namespace made now, its ``default`` service account.
        Raises SpawnFailure with a message for the person."""
        name = self.settings.user_namespace(username)
        report(f"Preparing your namespace {name}")
        # a namespace made just now holds none of our objects: nothing to read first
        fresh = await self._ensure_namespace(username)
        # once the namespace is there, its objects do not depend on each
        # other: one round trip's wait for all of them instead of one each
        # (when a class starts at once, every wait is the API server's busiest)
        report(f"Keeping other users' pods out of {name}")
        steps = [self._ensure_network_policy(username)]
        report(f"Giving your namespace's service account the {self.settings.namespaceRole} role")
        steps.append(self._ensure_role_binding(username))
        if self.settings.argoNamespace:
            report(f"Giving you an Argo Workflows account in {name}")
            steps.append(self._ensure_argo_account(username))
        report("Writing the dashboard API settings for karvdashctl")
        steps.append(self._ensure_api_settings(username, token_source, fresh))
        if fresh:
            steps.append(self._ensure_server_account(username))
        pull_secret = objects.registry_pull_secret(self.settings, username)
        if pull_secret is not None:
            report("Writing the registry pull secret")
            steps.append(self._apply_secret(pull_secret))
        elif not fresh:
            steps.append(self._delete_if_ours(name, objects.REGISTRY_PULL_SECRET, username))
        await _all(steps)

    async def _ensure_api_settings(self, username: str, token_source: TokenSource, fresh: bool = False) -> None:
        current = "" if fresh else await self._current_token(self.settings.user_namespace(username))
        token = token_source(current)
        if inspect.isawaitable(token):
            token = await token
        await self._apply_secret(objects.api_settings_secret(self.settings, username, token))

    async def _ensure_namespace(self, username: str) -> bool:
        """Create the user's namespace or check the one there is ours; True
        when it was created now."""
        wanted = objects.namespace(self.settings, username)
        name = wanted["metadata"]["name"]
        try:
            await self.core.create_namespace(wanted)
            self.log.info("Created namespace %s for %s", name, username)
            return True
        except ApiException as e:
            if e.status != 409:
                raise _refused(f"create your namespace {name}", e) from None
        try:
            existing = await self.core.read_namespace(name)
        except ApiException as e:
            raise _refused(f"read your namespace {name}", e) from None
        current = existing.metadata.labels or {}
        # never adopt a namespace someone else made (it could be the hub's own)
        if current.get(labels.OWNER_LABEL) != username:
            raise NamespaceNotOwned(
                f"The namespace {name} exists but is not labelled as yours "
                f"({labels.OWNER_LABEL}={username}). An administrator must label it or remove it."
            )
        if existing.status and existing.status.phase == "Terminating":
            raise SpawnFailure(f"Your namespace {name} is still being deleted; start again in a minute.")
        missing = {k: v for k, v in wanted["metadata"]["labels"].items() if current.get(k) != v}
        if missing:
            try:
                await self.core.patch_namespace(name, {"metadata": {"labels": missing}})
            except ApiException as e:
                raise _refused(f"label your namespace {name}", e) from None
        return False

    async def _ensure_network_policy(self, username: str) -> None:
        """Put the namespace's NetworkPolicy back as built, on every start
        (the namespace's ``edit`` role may change it: that opens only the
        user's own namespace)."""
        wanted = objects.network_policy(self.settings, username, self.settings.hubNamespace or pod_namespace())
        await self._apply(
            wanted,
            **_calls(self.networking, "network_policy"),
            recreate_if=lambda existing: False,
            action=f"create the NetworkPolicy of {wanted['metadata']['namespace']}",
        )

    async def _ensure_role_binding(self, username: str) -> None:
        wanted = objects.role_binding(self.settings, username)
        role = wanted["roleRef"]["name"]
        await self._apply(
            wanted,
            **_calls(self.rbac, "role_binding"),
            recreate_if=_bound_to_another_role("ClusterRole", role),
            action=f"give the service account of {wanted['metadata']['namespace']} the {role} role",
        )

    async def _ensure_argo_account(self, username: str) -> None:
        """The user's Argo account (``objects.argo_objects``): its rbac-rule
        annotations are put back on every start, so the account always
        matches its owner only."""
        account, token, role, binding = objects.argo_objects(self.settings, username)
        where = account["metadata"]["namespace"]
        await self._apply(
            account,
            **_calls(self.core, "service_account"),
            recreate_if=lambda existing: False,
            action=f"create the Argo service account of {where}",
        )
        await self._ensure_token_secret(token)
        await self._apply(
            role,
            **_calls(self.rbac, "role"),
            recreate_if=lambda existing: False,
            action=f"create the Argo role of {where}",
        )
        await self._apply(
            binding,
            **_calls(self.rbac, "role_binding"),
            recreate_if=_bound_to_another_role("Role", objects.ARGO_ACCOUNT),
            action=f"give the Argo service account of {where} its role",
        )

    async def _ensure_server_account(self, username: str) -> None:
        """The new namespace's ``default`` service account, made now: the
        controller manager makes it moments after the namespace (later when
        a class starts at once), and the API server refuses a pod whose
        service account is not there yet."""
        wanted = objects.server_service_account(self.settings, username)
        namespace = wanted["metadata"]["namespace"]
        try:
            await self.core.create_namespaced_service_account(namespace, wanted)
        except ApiException as e:
            if e.status != 409:  # (409: the controller manager's came first)
                raise _refused(f"create the service account of {namespace}", e) from None

    async def _ensure_token_secret(self, wanted: dict) -> None:
        """Create the token Secret, or make it again if it is not the
        account's token; never replace it (the token controller filled it in)."""
        namespace, name = wanted["metadata"]["namespace"], wanted["metadata"]["name"]
        account = wanted["metadata"]["annotations"]["kubernetes.io/service-account.name"]
        action = f"create the Argo token Secret in {namespace}"
        try:
            await self.core.create_namespaced_secret(namespace, wanted)
            return
        except ApiException as e:
            if e.status != 409:
                raise _refused(action, e) from None
        try:
            existing = await self.core.read_namespaced_secret(name, namespace)
            annotations = existing.metadata.annotations or {}
            if existing.type == wanted["type"] and annotations.get("kubernetes.io/service-account.name") == account:
                return
            await self.core.delete_namespaced_secret(name, namespace)
            await self.core.create_namespaced_secret(namespace, wanted)
        except ApiException as e:
            raise _refused(action, e) from None

    async def _current_token(self, namespace: str) -> str:
        try:
            secret = await self.core.read_namespaced_secret(labels.API_SETTINGS_SECRET, namespace)
        except ApiException as e:
            if e.status == 404:
                return ""
            raise _refused(f"read the API settings in {namespace}", e) from None
        encoded = (secret.data or {}).get(labels.API_SETTINGS_KEY, "")
        try:
            return objects.read_api_settings_token(base64.b64decode(encoded).decode())
        except ValueError:
            return ""

    async def _apply_secret(self, wanted: dict) -> None:
        await self._apply(
            wanted,
            **_calls(self.core, "secret"),
            # a Secret's type cannot change in place
            recreate_if=lambda existing: existing.type != wanted["type"],
            unchanged_if=lambda existing: (existing.data or {}) == wanted["data"] and existing.type == wanted["type"],
            action=f"write the Secret {wanted['metadata']['name']} in {wanted['metadata']['namespace']}",
        )

    async def _apply(self, wanted: dict, *, create, read, replace, delete, recreate_if, action, unchanged_if=None):
        """Create ``wanted``; if it exists, leave it (``unchanged_if``), make
        it again (``recreate_if``: a field that cannot change) or replace it."""
        namespace, name = wanted["metadata"]["namespace"], wanted["metadata"]["name"]
        try:
            await create(namespace, wanted)
            return
        except ApiException as e:
            if e.status != 409:
                raise _refused(action, e) from None
        try:
            existing = await read(name, namespace)
            if unchanged_if is not None and unchanged_if(existing):
                return
            if recreate_if(existing):
                await delete(name, namespace)
                await create(namespace, wanted)
                return
            wanted["metadata"]["resourceVersion"] = existing.metadata.resource_version
            await replace(name, namespace, wanted)
        except ApiException as e:
            raise _refused(action, e) from None

    async def _delete_if_ours(self, namespace: str, name: str, username: str) -> None:
        """Remove a Secret karvdash-hub made that the settings no longer want."""
        try:
            existing = await self.core.read_namespaced_secret(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return
            raise _refused(f"read the Secret {name} in {namespace}", e) from None
        if (existing.metadata.labels or {}).get(labels.OWNER_LABEL) == username:
            await self.core.delete_namespaced_secret(name, namespace)

    # --- datasets ----------------------------------------------------------------------

    async def list_datasets(self, username: str) -> list[str]:
        """Names of the Datashim Datasets in the user's namespace ([] when
        the Dataset API is not installed)."""
        namespace = self.settings.user_namespace(username)
        try:
            found = await self.custom.list_namespaced_custom_object(
                self.settings.datasetsAPIGroup, DATASET_VERSION, namespace, DATASET_PLURAL
            )
        except ApiException as e:
            if e.status == 404:
                self.log.warning(
                    "datasetsAvailable is set but the %s/%s Dataset API is missing",
                    self.settings.datasetsAPIGroup,
                    DATASET_VERSION,
                )
                return []
            raise _refused(f"list the datasets of {namespace}", e) from None
        return sorted(item["metadata"]["name"] for item in found.get("items", []))

    # --- deleting a user ---------------------------------------------------------------

    async def delete_user(self, username: str) -> list[str]:
        """Delete the user's namespace (only if it is labelled as theirs) and
        the PersistentVolumes labelled with their name; return what was deleted."""
        deleted = []
        name = self.settings.user_namespace(username)
        try:
            existing = await self.core.read_namespace(name)
        except ApiException as e:
            if e.status != 404:
                raise
            existing = None
        if existing is not None:
            if (existing.metadata.labels or {}).get(labels.OWNER_LABEL) == username:
                await self.core.delete_namespace(name)
                deleted.append(f"namespace/{name}")
            else:
                self.log.warning("Not deleting namespace %s: it is not labelled as %s's", name, username)
        volumes = await self.core.list_persistent_volume(label_selector=f"{labels.OWNER_LABEL}={username}")
        for volume in volumes.items:
            try:
                await self.core.delete_persistent_volume(volume.metadata.name)
                deleted.append(f"persistentvolume/{volume.metadata.name}")
            except ApiException as e:
                if e.status != 404:
                    raise
        return deleted
