"""The stores the dashboard's features work through, made once per
dashboard on first use and shared by every request after: the Kubernetes
client, services and users' templates, datasets, the registry, the hub's
user lookup. Each says here, once, when its feature cannot work on this
deployment (local mode, a setting left unset)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from karvdash_hub.core.errors import KarvdashError
from karvdash_hub.core.kubeapi import api_client_from_environment, pod_namespace
from karvdash_hub.core.paths import SHIPPED_TEMPLATES_DIR
from karvdash_hub.core.settings import KarvdashConfig
from karvdash_hub.images.registry import RegistryAccess, RegistryClient
from karvdash_hub.services import catalogue
from karvdash_hub.services import templates as st
from karvdash_hub.services.ingressauth import HubUserLookup

if TYPE_CHECKING:
    # the Kubernetes stores load kubernetes_asyncio: imported where they are
    # first made, so a dashboard in local mode (or one not yet asked) never loads it
    from karvdash_hub.datasets.store import DatasetStore
    from karvdash_hub.services.store import InstanceStore, UserTemplateStore

log = logging.getLogger("karvdash.dashboard")

# why services cannot start here: the pages show it beside their disabled
# Create buttons, the API answers it with 503
SERVICES_NEED_KUBERNETES = "services need Kubernetes; this hub runs in local mode"


class Stores:
    def __init__(self, settings: KarvdashConfig, hub_api_url: str, hub_api_token: str):
        self.settings = settings
        self.hub_users = HubUserLookup(hub_api_url, hub_api_token)
        self._api = None
        self._instances: InstanceStore | None = None
        self._user_templates: UserTemplateStore | None = None
        self._datasets: DatasetStore | None = None
        self._registry: RegistryAccess | None = None

    @property
    def on_kubernetes(self) -> bool:
        return self.settings.mode == "kubernetes"

    @property
    def services_unavailable(self) -> str:
        """Why services cannot be started on this deployment ('' where they can)."""
        return "" if self.on_kubernetes else SERVICES_NEED_KUBERNETES

    async def kube_api(self):
        """The shared kubernetes_asyncio ApiClient; 503 when Kubernetes cannot be reached."""
        if self._api is None:
            try:
                self._api = await api_client_from_environment(self.settings.kubeconfig)
            except Exception as error:  # noqa: BLE001 - kubeconfig and in-cluster loaders raise several kinds
                log.error("cannot reach Kubernetes: %s", error)
                raise KarvdashError(503, f"the dashboard cannot reach Kubernetes: {error}") from None
        return self._api

    async def instances(self) -> InstanceStore:
        if not self.on_kubernetes:
            raise KarvdashError(503, SERVICES_NEED_KUBERNETES)
        if self._instances is None:
            from karvdash_hub.services.store import (
                InstanceStore,  # Kubernetes only: see TYPE_CHECKING above
            )

            self._instances = InstanceStore(await self.kube_api(), self.settings.hubNamespace or pod_namespace())
        return self._instances

    async def user_templates(self) -> UserTemplateStore:
        if self._user_templates is None:
            from karvdash_hub.services.store import (
                UserTemplateStore,  # Kubernetes only: see TYPE_CHECKING above
            )

            self._user_templates = UserTemplateStore(await self.instances())
        return self._user_templates

    async def templates(self, username: str) -> dict[str, st.ServiceTemplate]:
        """Every template ``username`` may use, by id: shipped, admin, and
        (on Kubernetes) their own."""
        settings = self.settings
        folder_templates, problems = await asyncio.get_running_loop().run_in_executor(
            None, catalogue.file_catalogue, SHIPPED_TEMPLATES_DIR, Path(settings.stateDir) / "templates",
            settings.disabledServiceTemplates,
        )
        for problem in problems:
            log.warning("template skipped: %s", problem)
        user_templates = []
        if self.on_kubernetes:
            store = await self.user_templates()
            user_templates, problems = await store.list(username, settings.user_namespace(username))
            for problem in problems:
                log.warning("template of %s skipped: %s", username, problem)
        return catalogue.combine(folder_templates, user_templates)

    async def template(self, username: str, template_id: str) -> st.ServiceTemplate:
        templates = await self.templates(username)
        if template_id not in templates:
            raise KarvdashError(404, f"no template {template_id!r}")
        return templates[template_id]

    async def datasets(self) -> DatasetStore:
        self.check_datasets()
        if self._datasets is None:
            from karvdash_hub.datasets.store import (
                DatasetStore,  # Kubernetes only: see TYPE_CHECKING above
            )

            self._datasets = DatasetStore(self.settings, await self.kube_api())
        return self._datasets

    def check_datasets(self) -> None:
        if not self.settings.datasetsAvailable:
            raise KarvdashError(404, "datasets are not enabled on this deployment (datasetsAvailable)")
        if not self.on_kubernetes:
            raise KarvdashError(503, "datasets need Kubernetes: this deployment runs in local mode")

    def registry(self) -> RegistryClient:
        """A registry client for one request (its connections close with it)."""
        if self._registry is None:
            self._registry = RegistryAccess.from_settings(self.settings)
            if self._registry is None:
                raise KarvdashError(404, "no registry is configured on this deployment (dockerRegistryURL)")
        return RegistryClient(self._registry)

    async def close(self) -> None:
        """Close the Kubernetes client at shutdown (its HTTP session would be left open)."""
        api, self._api = self._api, None
        if api is not None:
            await api.close()
