"""The dashboard's REST API over HTTP, with its errors as exceptions."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import quote, urlsplit

import requests

from karvdash_hub.core.scopes import SERVICE_PREFIX

from .connection import Connection, ConnectionProblem


class APIProblem(Exception):
    """The dashboard refused a request: ``status`` and its ``message``."""

    def __init__(self, status: int, message: str, body: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body or {}


def quote_path(path: str) -> str:
    return "/".join(quote(part, safe="") for part in path.split("/") if part)


class DashboardClient:
    def __init__(self, connection: Connection, session: requests.Session | None = None, timeout: float = 120):
        self.connection = connection
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"token {connection.token}"
        self.timeout = timeout
        # an address without the dashboard's prefix may be the hub's: looked at once
        self.located = SERVICE_PREFIX in urlsplit(connection.base_url).path

    def url(self, path: str) -> str:
        return self.connection.api_url + path

    def send(self, method: str, url: str, **kwargs) -> requests.Response:
        try:
            return self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.ConnectionError as e:
            raise ConnectionProblem(f"cannot reach the dashboard at {self.connection.base_url}: {e}") from None
        except requests.Timeout:
            raise ConnectionProblem(f"the dashboard at {self.connection.base_url} did not answer in time") from None

    def locate(self) -> None:
        """Given the hub's address (``https://example.org/``), find the
        dashboard under it, at ``<address>/services/karvdash/``."""
        self.located = True
        if is_dashboard(self.send("GET", self.connection.api_url)):
            return
        under_hub = self.connection.base_url + SERVICE_PREFIX.lstrip("/")
        if is_dashboard(self.send("GET", under_hub + "api/")):
            self.connection = replace(self.connection, base_url=under_hub)

    def request(self, method: str, path: str, *, json=None, expect_json: bool = True, **kwargs):
        if not self.located:
            self.locate()
        response = self.send(method, self.url(path), json=json, **kwargs)
        check(response)
        if not expect_json:
            return response
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def stream(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, expect_json=False, stream=True, **kwargs)

    # --- files -------------------------------------------------------------------------

    def files(self, domain: str, path: str, **query) -> dict:
        """A file's details, or a folder's with its entries (one page with
        ``limit`` or ``cursor`` in ``query``)."""
        return self.request("GET", f"files/{domain}/{quote_path(path)}", params=query or None)

    def kind(self, domain: str, path: str) -> str:
        """Whether a path is a file or a folder, without listing a folder."""
        return self.files(domain, path, limit=1)["type"]


def is_dashboard(response: requests.Response) -> bool:
    """Whether the dashboard's API index answered (its index, or its JSON refusal)."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and ("user" in body or {"status", "message"} <= body.keys())


def check(response: requests.Response) -> None:
    if response.ok:
        return
    try:
        body = response.json()
        message = body.get("message") or response.reason
    except ValueError:
        body, message = {}, f"{response.status_code} {response.reason}"
    raise APIProblem(response.status_code, message, body)
