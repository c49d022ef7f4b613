"""Pages that look like the hub's own.

Templates load from the dashboard's folder, then ``karvdash_hub/templates``
(our ``page.html``: title, theme, navigation bar, user menu), then
JupyterHub's own templates (its ``page.html`` reachable as
``templates/page.html``, as in the hub). The variables are the ones the
hub's ``page.html`` expects, pointing at the hub: ``base_url`` is
``/hub/``, ``static_url()`` serves from the hub's ``/hub/static/``.
"""

from __future__ import annotations

import json
from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from jupyterhub._data import DATA_FILES_PATH
from jupyterhub.utils import url_path_join
from markupsafe import Markup
from tornado.web import StaticFileHandler

from karvdash_hub.core.settings import KarvdashConfig
from karvdash_hub.theme import HUB_TEMPLATES_DIR
from karvdash_hub.theme.variables import template_vars

DASHBOARD_TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
JUPYTERHUB_TEMPLATES_DIR = Path(DATA_FILES_PATH) / "templates"
JUPYTERHUB_STATIC_DIR = Path(DATA_FILES_PATH) / "static"


class PageUser:
    """What the hub's templates read of a user."""

    def __init__(self, name: str):
        self.name = name
        # page.html writes it into a JS string with `| safe`
        self.json_escaped_name = json.dumps(name)[1:-1]


class PageRenderer:
    def __init__(self, settings: KarvdashConfig, base_url: str, hub_prefix: str, extra_dirs: list[Path] = ()):
        self.base_url = base_url
        self.hub_prefix = hub_prefix
        loader = ChoiceLoader(
            [
                FileSystemLoader([*map(str, extra_dirs), str(DASHBOARD_TEMPLATES_DIR), str(HUB_TEMPLATES_DIR)]),
                PrefixLoader({"templates": FileSystemLoader(str(JUPYTERHUB_TEMPLATES_DIR))}, delimiter="/"),
                FileSystemLoader(str(JUPYTERHUB_TEMPLATES_DIR)),
            ]
        )
        self.environment = Environment(loader=loader, autoescape=True)
        self.environment.filters["tojson_script"] = tojson_script
        self.common = {
            **template_vars(settings),
            "base_url": hub_prefix,
            "prefix": base_url,
            "login_url": url_path_join(hub_prefix, "login"),
            "logout_url": url_path_join(hub_prefix, "logout"),
            "static_url": self.hub_static_url,
            "version_hash": "",
            "announcement": "",
            "no_spawner_check": True,
            "services": [],
        }

    def hub_static_url(self, path: str, include_version: bool = True) -> str:
        url = url_path_join(self.hub_prefix, "static", path)
        if include_version:
            # the same hash the hub adds, so the browser reuses its cached copy
            version = StaticFileHandler.get_version({"static_path": str(JUPYTERHUB_STATIC_DIR)}, path)
            if version:
                url += f"?v={version}"
        return url

    def render(self, name: str, *, user: dict | None, xsrf_token: str, **variables) -> str:
        scopes = set(user.get("scopes", [])) if user else set()
        if user and user.get("admin"):
            # the browser's token holds only the dashboard's scopes; the admin
            # flag is what the hub itself checks to show its admin pages
            scopes.add("admin-ui")
        context = {
            **self.common,
            "user": PageUser(user["name"]) if user else None,
            "admin_access": bool(user and user.get("admin")),
            "parsed_scopes": scopes,
            "xsrf_token": xsrf_token,
            **variables,
        }
        return self.environment.get_template(name).render(context)


def tojson_script(value) -> Markup:
    """JSON that is safe inside a <script> element."""
    text = json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)
