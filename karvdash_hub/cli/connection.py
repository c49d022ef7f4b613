"""Where the dashboard is and which token to use.

In order: ``--url``/``--token``; the file named by ``--config``, then by
``$KARVDASH_CONFIG``; ``~/.karvdash/config.ini``;
``/var/lib/karvdash/config.ini`` (mounted into pods of user namespaces);
inside a notebook without it, the server's own ``JUPYTERHUB_API_TOKEN``
with the dashboard's address asked from ``JUPYTERHUB_API_URL``. A config
file looks like::

    [Karvdash]
    base_url = https://example.org/services/karvdash/
    token = <a hub API token>

Karvdash 2.x's files work as they are: their ``base_url`` is an API's
address (``http://karvdash.default.svc/api``, or here the dashboard's
``.../services/karvdash/api`` or its Karvdash 2.x API
``.../services/karvdash/karvdash2/api``), which stands for the dashboard
it belongs to (see :func:`dashboard_base`).
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

from karvdash_hub.core.labels import API_SETTINGS_KEY, API_SETTINGS_MOUNT_PATH, API_SETTINGS_SECTION
from karvdash_hub.core.scopes import KARVDASH2_API_PATH, SERVICE_NAME, SERVICE_PREFIX

# the API settings the admission webhook mounts into pods of user namespaces
SYSTEM_CONFIG = Path(API_SETTINGS_MOUNT_PATH) / API_SETTINGS_KEY


class ConnectionProblem(Exception):
    """No usable URL and token, or the dashboard cannot be reached."""


@dataclass(frozen=True)
class Connection:
    base_url: str  # the dashboard's prefix, ending in /
    token: str
    source: str  # where they came from, for error messages

    @property
    def api_url(self) -> str:
        return self.base_url + "api/"


def user_config() -> Path:
    return Path.home() / ".karvdash" / "config.ini"


def read_config_file(path: Path) -> Connection:
    parser = configparser.ConfigParser()
    try:
        with open(path) as f:
            parser.read_file(f)
    except OSError as e:
        raise ConnectionProblem(f"cannot read {path}: {e.strerror}") from None
    except configparser.Error as e:
        raise ConnectionProblem(f"{path} is not a valid config file: {e}") from None
    if not parser.has_section(API_SETTINGS_SECTION):
        raise ConnectionProblem(f"{path} has no [{API_SETTINGS_SECTION}] section")
    base_url = parser.get(API_SETTINGS_SECTION, "base_url", fallback="").strip()
    token = parser.get(API_SETTINGS_SECTION, "token", fallback="").strip()
    if not base_url or not token:
        raise ConnectionProblem(f"{path} needs base_url and token in [{API_SETTINGS_SECTION}]")
    return Connection(dashboard_base(base_url), token, str(path))


def with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def dashboard_base(url: str) -> str:
    """The dashboard's address for an address of it or of one of its APIs.

    Karvdash's config files name the API (``base_url = http://host/api``),
    so do the files mounted into pods (``.../services/karvdash/api/``) and
    those for Karvdash 2.x's API (``.../services/karvdash/karvdash2/api``):
    each stands for the dashboard it belongs to, never for ``.../api/api/``.
    What remains of ``http://host/api`` is a hub's address, where the
    client looks for the dashboard under ``/services/karvdash/``.
    """
    parts = urlsplit(url)
    path = with_slash(parts.path)
    for suffix in ("/" + KARVDASH2_API_PATH, "/api/"):
        if path.endswith(suffix):
            path = path[: -len(suffix)] + "/"
            break
    return urlunsplit(parts._replace(path=path, query="", fragment=""))


def from_notebook(environ, session: requests.Session | None = None) -> Connection | None:
    """The dashboard's address, asked from the hub with the server's token."""
    token = environ.get("JUPYTERHUB_API_TOKEN")
    api_url = environ.get("JUPYTERHUB_API_URL")
    if not token or not api_url:
        return None
    session = session or requests.Session()
    try:
        response = session.get(
            f"{api_url.rstrip('/')}/services/{SERVICE_NAME}",
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        if response.ok:
            model = response.json()
            if model.get("url") and model.get("prefix"):
                return Connection(with_slash(model["url"].rstrip("/") + model["prefix"]), token, "JUPYTERHUB_API_URL")
    except (requests.RequestException, ValueError):
        pass
    # the hub's API is usually behind the same proxy as the dashboard
    base = api_url.rstrip("/")
    if base.endswith("/hub/api"):
        return Connection(base[: -len("/hub/api")] + SERVICE_PREFIX, token, "JUPYTERHUB_API_URL")
    return None


def find_connection(
    url: str | None = None, token: str | None = None, environ=None, config: str | None = None
) -> Connection:
    environ = os.environ if environ is None else environ
    if url and token:
        return Connection(dashboard_base(url), token, "the command line")
    found = None
    if config:
        found = read_config_file(Path(config))
    elif environ.get("KARVDASH_CONFIG"):
        found = read_config_file(Path(environ["KARVDASH_CONFIG"]))
    elif user_config().is_file():
        found = read_config_file(user_config())
    elif SYSTEM_CONFIG.is_file():
        # the hub writes these for the namespace with a token for the
        # dashboard; a server's own token may only report its activity
        found = read_config_file(SYSTEM_CONFIG)
    else:
        found = from_notebook(environ)
    if found is None:
        raise ConnectionProblem(
            "no dashboard configured: pass --url and --token or --config, set $KARVDASH_CONFIG, or write "
            f"{user_config()} with a [{API_SETTINGS_SECTION}] section (base_url, token)"
        )
    return Connection(dashboard_base(url) if url else found.base_url, token or found.token, found.source)
