"""Where the dashboard is and which token to use.

In order: ``--url``/``--token``; the file named by ``$KARVDASH_CONFIG``;
``~/.karvdash/config.ini``; inside a notebook, the server's own
``JUPYTERHUB_API_TOKEN`` with the dashboard's address asked from
``JUPYTERHUB_API_URL``; ``/var/lib/karvdash/config.ini`` (mounted into
pods of user namespaces). A config file looks like::

    [Karvdash]
    base_url = https://example.org/services/karvdash/
    token = <a hub API token>
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path

import requests

from karvdash_hub.core.labels import API_SETTINGS_KEY, API_SETTINGS_MOUNT_PATH, API_SETTINGS_SECTION
from karvdash_hub.core.scopes import SERVICE_NAME, SERVICE_PREFIX

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
    return Connection(with_slash(base_url), token, str(path))


def with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


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


def find_connection(url: str | None = None, token: str | None = None, environ=None) -> Connection:
    environ = os.environ if environ is None else environ
    if url and token:
        return Connection(with_slash(url), token, "the command line")
    found = None
    if environ.get("KARVDASH_CONFIG"):
        found = read_config_file(Path(environ["KARVDASH_CONFIG"]))
    elif user_config().is_file():
        found = read_config_file(user_config())
    else:
        found = from_notebook(environ)
        if found is None and SYSTEM_CONFIG.is_file():
            found = read_config_file(SYSTEM_CONFIG)
    if found is None:
        raise ConnectionProblem(
            "no dashboard configured: pass --url and --token, set $KARVDASH_CONFIG, or write "
            f"{user_config()} with a [{API_SETTINGS_SECTION}] section (base_url, token)"
        )
    return Connection(with_slash(url) if url else found.base_url, token or found.token, found.source)
