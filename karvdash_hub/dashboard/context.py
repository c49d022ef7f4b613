"""What every part of the dashboard shares: settings, file domains, the
hub's OAuth client, the page renderer, the upload staging area, the stores
of the features, the feature modules themselves and the service's own view
of the hub (its URLs and API token)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType

from jupyterhub.services.auth import HubOAuth
from jupyterhub.utils import url_path_join

from karvdash_hub.core.settings import KarvdashConfig
from karvdash_hub.files.domains import FileDomains
from karvdash_hub.files.interface import FileStorage
from karvdash_hub.files.uploads import UploadStore

from .pages import PageRenderer
from .stores import Stores


@dataclass
class HubEnvironment:
    """The ``JUPYTERHUB_*`` variables the hub gives its services (the chart
    sets the same ones for the dashboard's own Deployment)."""

    service_prefix: str
    base_url: str
    api_url: str
    api_token: str
    service_url: str

    @classmethod
    def from_environ(cls, environ=None) -> HubEnvironment:
        environ = os.environ if environ is None else environ
        missing = [
            name
            for name in ("JUPYTERHUB_SERVICE_PREFIX", "JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN")
            if not environ.get(name)
        ]
        if missing:
            raise SystemExit(
                f"karvdash-dashboard: {', '.join(missing)} not set; the hub sets them for the "
                "services it starts, a dashboard running on its own needs them in its environment"
            )
        return cls(
            service_prefix=environ["JUPYTERHUB_SERVICE_PREFIX"],
            base_url=environ.get("JUPYTERHUB_BASE_URL", "/"),
            api_url=environ["JUPYTERHUB_API_URL"],
            api_token=environ["JUPYTERHUB_API_TOKEN"],
            service_url=environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8080"),
        )

    @property
    def hub_prefix(self) -> str:
        return url_path_join(self.base_url, "hub/")


@dataclass
class DashboardContext:
    settings: KarvdashConfig
    hub: HubEnvironment
    hub_auth: HubOAuth
    domains: FileDomains
    pages: PageRenderer
    uploads: UploadStore
    stores: Stores
    # the file domains' operations, on folders or S3 (files/storage.py)
    storage: FileStorage | None = None
    # the feature modules serving this dashboard (routes, OpenAPI parts)
    features: tuple[ModuleType, ...] = ()

    @property
    def prefix(self) -> str:
        return self.hub.service_prefix

    def url(self, *parts: str) -> str:
        return url_path_join(self.prefix, *parts)
