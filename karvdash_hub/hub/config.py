"""Turn the deployment settings into JupyterHub configuration.

``jupyterhub_config.py`` calls :func:`configure` with its config object ``c``;
everything here only sets values that the deployment did not set itself, so
``c.JupyterHub...`` lines before or after the call still win.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
from pathlib import Path

from jupyterhub.utils import url_path_join
from traitlets.config import Config

from karvdash_hub.core.paths import PROJECT_ROOT
from karvdash_hub.core.scopes import SERVICE_PREFIX
from karvdash_hub.core.settings import KarvdashConfig
from karvdash_hub.files.domains import S3_NOT_MOUNTED, FileDomains
from karvdash_hub.files.storage import open_storage
from karvdash_hub.theme import HUB_TEMPLATES_DIR
from karvdash_hub.theme.variables import template_vars

from . import deployment
from .database import configure_journal
from .service import configure_service, free_loopback_port

# JupyterHub's own logger (the application's, which it configures)
log = logging.getLogger("JupyterHub")


def _setdefault(section: Config, name: str, value) -> None:
    if name not in section:
        section[name] = value


# configurable-http-proxy through a wrapper that answers 400, not 500, to
# an address whose percent-encoding is not UTF-8
PROXY_WRAPPER = Path(__file__).resolve().parent / "chp-wrapper.mjs"


def proxy_command() -> list[str]:
    """configurable-http-proxy installed in the project (npm), else on PATH;
    run by node through :data:`PROXY_WRAPPER` when node is there."""
    node = shutil.which("node")
    local = PROJECT_ROOT / "node_modules" / "configurable-http-proxy"
    if node and (local / "package.json").exists():
        return [node, str(PROXY_WRAPPER), f"--chp-package={local}"]
    found = shutil.which("configurable-http-proxy")
    if node and found:
        # .../configurable-http-proxy/bin/configurable-http-proxy
        package = Path(os.path.realpath(found)).parent.parent
        if (package / "package.json").exists():
            return [node, str(PROXY_WRAPPER), f"--chp-package={package}"]
    return [found] if found else ["configurable-http-proxy"]


def configure(c: Config) -> KarvdashConfig:
    """Apply the karvdash-hub settings to the JupyterHub config ``c``."""
    settings = deployment.activate(deployment.load(config=c)).settings
    log_value_warnings(settings)
    # traitlets sections of the values file (the chart's hub.config, as in
    # z2jh), under what jupyterhub_config.py itself set (it wins in the merge)
    for section, values in settings.config.items():
        if section != "KarvdashConfig":
            c[section] = values
    state = Path(settings.stateDir)
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    open_storage(FileDomains.from_settings(settings), settings).ensure_folders()

    hub = c.JupyterHub
    _setdefault(hub, "db_url", settings.hub_db_url)
    configure_journal(hub.db_url, settings.hubDatabaseWAL)
    _setdefault(hub, "cookie_secret_file", str(state / "jupyterhub_cookie_secret"))
    _setdefault(hub, "allow_named_servers", True)
    if settings.debug:
        _setdefault(hub, "log_level", "DEBUG")
    if hub.get("extra_log_file"):
        # a log folder on a host path (Karvdash's logsHostPath) may not exist yet
        Path(hub.extra_log_file).parent.mkdir(parents=True, exist_ok=True)
    # after login: the dashboard's Home page, unless the login asked for a
    # page of its own (?next=, e.g. a server's URL), which the hub honours first
    _setdefault(hub, "default_url", url_path_join(hub.get("base_url", "/"), SERVICE_PREFIX.lstrip("/")))
    _setdefault(hub, "template_paths", [str(HUB_TEMPLATES_DIR)])
    hub.template_vars = {**template_vars(settings), **hub.get("template_vars", {})}
    _setdefault(c.ConfigurableHTTPProxy, "command", proxy_command())
    _setdefault(c.ConfigurableHTTPProxy, "pid_file", str(state / "proxy.pid"))

    if settings.mode == "local":
        # loopback only: local mode has no isolation between users
        _setdefault(hub, "ip", "127.0.0.1")
        _setdefault(hub, "port", 8000)
        _setdefault(hub, "hub_ip", "127.0.0.1")
        # free loopback ports for the hub's API and the proxy's (JupyterHub's
        # defaults are fixed: 8081, 8001), so checkouts run side by side
        _setdefault(hub, "hub_port", free_loopback_port())
        _setdefault(c.ConfigurableHTTPProxy, "api_url", f"http://127.0.0.1:{free_loopback_port()}")
        from .localspawner import KarvdashLocalSpawner as spawner_class
    else:
        from .spawner import KarvdashSpawner as spawner_class
    _setdefault(hub, "spawner_class", spawner_class)
    _setdefault(c.Spawner, "default_url", "/lab")
    if settings.mode == "local":
        # JupyterLab's start on the hub's own CPUs, spawnConcurrency of them at
        # once on a machine that may be busy with more: twice JupyterHub's 30 s
        _setdefault(c.Spawner, "http_timeout", 60)

    if settings.authenticator == "native":
        from .auth import KarvdashAuthenticator as authenticator_class

        c.Authenticator.admin_users = set(c.Authenticator.get("admin_users", set())) | {settings.adminUsername}
        # every approved account may log in: approval is the allow list
        _setdefault(c.Authenticator, "allow_all", True)
    else:
        # With single sign-on, who may log in and who is an administrator is
        # the provider's and the deployment's call (allowed_groups,
        # admin_groups, ...): a local "admin" name or allow_all here would
        # let anyone with such an account at the provider in.
        from .auth import KarvdashOAuthenticator as authenticator_class
    _setdefault(hub, "authenticator_class", authenticator_class)

    configure_service(c, settings)
    return settings


def log_value_warnings(settings: KarvdashConfig) -> None:
    """Log what the values file said under Karvdash's names, and that pods
    mount no S3 file domains, once: JupyterHub loads this configuration once
    per start. While it does, its log has no extra_log_file yet; the
    warnings wait for the next turn of its loop, by when it has."""

    def warn():
        for warning in settings.value_warnings:
            log.warning("%s", warning)
        if not FileDomains.from_settings(settings).mounted_in_pods:
            log.warning("%s", S3_NOT_MOUNTED)

    try:
        asyncio.get_running_loop().call_soon(warn)
    except RuntimeError:  # no loop: not inside JupyterHub's start
        warn()


def main_config_error(error: Exception) -> None:
    """Stop start-up with one line that names the bad setting."""
    sys.exit(f"karvdash-hub: {error}")
