"""The dashboard's REST API over HTTP, with its errors as exceptions."""

from __future__ import annotations

from urllib.parse import quote

import requests

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

    def url(self, path: str) -> str:
        return self.connection.api_url + path

    def request(self, method: str, path: str, *, json=None, expect_json: bool = True, **kwargs):
        try:
            response = self.session.request(method, self.url(path), json=json, timeout=self.timeout, **kwargs)
        except requests.ConnectionError as e:
            raise ConnectionProblem(f"cannot reach the dashboard at {self.connection.base_url}: {e}") from None
        except requests.Timeout:
            raise ConnectionProblem(f"the dashboard at {self.connection.base_url} did not answer in time") from None
        check(response)
        if not expect_json:
            return response
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def stream(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, expect_json=False, stream=True, **kwargs)

    # --- files -------------------------------------------------------------------------

    def files(self, domain: str, path: str) -> dict:
        return self.request("GET", f"files/{domain}/{quote_path(path)}")


def check(response: requests.Response) -> None:
    if response.ok:
        return
    try:
        body = response.json()
        message = body.get("message") or response.reason
    except ValueError:
        body, message = {}, f"{response.status_code} {response.reason}"
    raise APIProblem(response.status_code, message, body)
