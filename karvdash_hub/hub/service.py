"""Register the dashboard with JupyterHub (called by ``karvdash_hub.hub.config``).

In local mode the hub starts the dashboard itself on a loopback port; with
``dashboardURL`` set (the chart) the dashboard runs on its own and the hub
only proxies to it. Either way the dashboard reads the same settings as the
hub: its environment carries ``KARVDASH_VALUES``, every ``KARVDASH_*``
variable of the hub and every setting the hub's config chose.
"""

from __future__ import annotations

import json
import os
import socket
import sys

from traitlets.config import Config

from karvdash_hub.core.scopes import SERVICE_NAME, custom_scopes, user_scopes
from karvdash_hub.core.settings import ENV_PREFIX, VALUES_ENV, KarvdashConfig, env_names

# Scopes of JupyterHub's default roles that a redefinition must keep.
DEFAULT_ROLE_SCOPES = {
    "user": ["self"],
    "server": ["users:activity!user", "access:servers!server"],
}
DASHBOARD_ROLE = "karvdash-dashboard"
# The dashboard checks that a user exists before an admin acts as them
# (name), and the ingress-auth check refuses members of the deactivated
# group, which the hub's Sign-ups page sets when an approval is revoked (groups).
# The Home page lists the user's servers (servers).
DASHBOARD_SCOPES = ["read:users:name", "read:users:groups", "read:servers"]

DASHBOARD_START_SECONDS = 180


def free_loopback_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the OS's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def encode_setting(value) -> str:
    """A setting as the environment variable text ``load_settings`` reads back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def settings_environment(settings: KarvdashConfig, environ=None) -> dict[str, str]:
    """Environment that makes the dashboard load the same settings as the hub."""
    environ = os.environ if environ is None else environ
    env = {name: value for name, value in environ.items() if name.startswith(ENV_PREFIX)}
    names = env_names()
    chosen = settings.config.get("KarvdashConfig", {}) if settings.config else {}
    for name in chosen:
        if name in names:
            env[names[name]] = encode_setting(getattr(settings, name))
    if environ.get(VALUES_ENV):
        env[VALUES_ENV] = environ[VALUES_ENV]
    # the Kubernetes clients' own variable: without it a hub run outside the
    # cluster would spawn in one cluster while its dashboard found none
    if environ.get("KUBECONFIG"):
        env["KUBECONFIG"] = environ["KUBECONFIG"]
    return env


def service_spec(settings: KarvdashConfig, environ=None) -> dict:
    """The ``JupyterHub.services`` entry of the dashboard."""
    spec = {
        "name": SERVICE_NAME,
        "oauth_no_confirm": True,
        # the pages are in the hub's own navigation bar, not the Services menu
        "display": False,
        # what the dashboard may do with a browser's login: its own scopes only
        "oauth_client_allowed_scopes": sorted(custom_scopes()),
    }
    if settings.dashboardURL:
        spec["url"] = settings.dashboardURL
        spec["api_token"] = settings.dashboardAPIToken
    else:
        port = settings.dashboardPort or free_loopback_port()
        spec["url"] = f"http://127.0.0.1:{port}"
        # JupyterHub starts a managed service once: the supervisor starts it again when it dies
        spec["command"] = [sys.executable, "-m", "karvdash_hub.dashboard.supervisor"]
        # the hub stops when the dashboard does not answer in time; its first
        # start on a busy machine takes longer than JupyterHub's 30 s
        spec["timeout"] = DASHBOARD_START_SECONDS
        spec["environment"] = settings_environment(settings, environ)
    return spec


def merge_role(roles: list[dict], name: str, scopes: list[str], **members) -> list[dict]:
    """Add ``scopes`` (and members) to role ``name``, defining it if needed."""
    roles = [dict(role) for role in roles]
    for role in roles:
        if role.get("name") == name:
            role["scopes"] = list(dict.fromkeys([*role.get("scopes", []), *scopes]))
            for key, values in members.items():
                role[key] = list(dict.fromkeys([*role.get(key, []), *values]))
            return roles
    base = DEFAULT_ROLE_SCOPES.get(name, [])
    roles.append({"name": name, "scopes": list(dict.fromkeys([*base, *scopes])), **members})
    return roles


def configure_service(c: Config, settings: KarvdashConfig) -> None:
    hub = c.JupyterHub
    services = list(hub.get("services", []))
    if not any(service.get("name") == SERVICE_NAME for service in services):
        services.append(service_spec(settings))
    hub.services = services
    hub.custom_scopes = {**custom_scopes(), **hub.get("custom_scopes", {})}
    if settings.dashboardURL and "trust_user_provided_tokens" not in hub:
        # dashboardAPIToken is random (the chart makes 64 characters): the
        # 16384 rounds of SHA-512 JupyterHub spends on a token from config
        # (3 to 5 ms of the hub's event loop on each call the dashboard makes)
        # stretch nothing, so the hub stores it as it stores a token it made
        hub.trust_user_provided_tokens = True

    roles = list(hub.get("load_roles", []))
    roles = merge_role(roles, "user", user_scopes())
    # a server's token (karvdashctl in a notebook) may use the dashboard as its owner
    roles = merge_role(roles, "server", user_scopes())
    roles = merge_role(roles, DASHBOARD_ROLE, DASHBOARD_SCOPES, services=[SERVICE_NAME])
    hub.load_roles = roles
