"""The variables the page templates read besides JupyterHub's own: the
deployment's title and theme, the navigation bar and its links. The hub sets
them as ``JupyterHub.template_vars``; the dashboard renders its pages with
the same values."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import jupyterhub

from karvdash_hub import __version__
from karvdash_hub.core.labels import API_SETTINGS_SECTION
from karvdash_hub.core.scopes import ACCESS_SCOPE, SERVICE_PREFIX, custom_scopes, scope
from karvdash_hub.core.settings import KarvdashConfig

from .images import image_url

DOCS_URL = f"{SERVICE_PREFIX}docs/"


def nav_entries(settings: KarvdashConfig) -> list[tuple[str, str]]:
    """The dashboard's pages in the hub's navigation bar: (label, path)."""
    entries = [("Files", "files"), ("Services", "services"), ("Templates", "templates")]
    if settings.datasetsAvailable:
        entries.append(("Datasets", "datasets"))
    if settings.dockerRegistryURL:
        entries.append(("Images", "images"))
    return entries


def argo_link(settings: KarvdashConfig) -> str:
    """The navigation bar's Workflows entry ('' without ``argoURL``). With
    ``argoNamespace`` (SSO with namespace delegation) a person may use Argo
    in their own namespace only, so the entry opens that namespace's
    workflows; ``page.html`` fills in ``{username}``."""
    if not settings.argoURL or not settings.argoNamespace:
        return settings.argoURL
    parts = urlsplit(settings.argoURL)
    path = f"{parts.path.rstrip('/')}/workflows/{settings.namespaceTemplate}"
    return urlunsplit(parts._replace(path=path))


def token_presets() -> list[tuple[str, str, list[str]]]:
    """The Token page's choices for dashboard tokens: (id, label, scopes)."""
    return [
        ("files-read", "Files, read-only", [ACCESS_SCOPE, scope("files", "read")]),
        ("files", "Files", [ACCESS_SCOPE, scope("files", "read"), scope("files", "write")]),
        ("dashboard", "Everything in the dashboard", [ACCESS_SCOPE, *custom_scopes()]),
    ]


def template_vars(settings: KarvdashConfig) -> dict:
    return {
        "karvdash_title": settings.dashboardTitle,
        "karvdash_theme": settings.dashboardTheme.lower(),
        "karvdash_logo_url": image_url(settings, "logo"),
        "karvdash_favicon_url": image_url(settings, "favicon"),
        "karvdash_version": __version__,
        "jupyterhub_version": jupyterhub.__version__,
        "karvdash_issues_url": settings.issuesURL,
        "karvdash_docs_url": DOCS_URL,
        "karvdash_nav": nav_entries(settings),
        "karvdash_dashboard_prefix": SERVICE_PREFIX,
        "karvdash_native_auth": settings.authenticator == "native",
        "karvdash_argo_url": argo_link(settings),
        "karvdash_token_presets": token_presets(),
        "karvdash_config_section": API_SETTINGS_SECTION,
    }
