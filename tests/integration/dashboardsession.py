"""Talking to the dashboard of a running test hub: as a token holder, as a
logged-in session (requests or a real browser page), and looking at its
files and its process."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import requests

SERVICE = "/services/karvdash/"
PASSWORD = "dashboard-pw-1"
ACCESS = "access:services!service=karvdash"
FILES_READ = "custom:karvdash:files:read"
FILES_WRITE = "custom:karvdash:files:write"


def dashboard_url(hub, path: str = "") -> str:
    return hub.url + SERVICE + path


class DashboardAPI:
    """Requests to ``/services/karvdash/api/`` with a token, a session or nothing."""

    def __init__(self, hub, token: str | None = None, session: requests.Session | None = None):
        self.hub = hub
        self.session = session or requests.Session()
        if token:
            self.session.headers["Authorization"] = f"token {token}"

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 120)
        kwargs.setdefault("allow_redirects", False)
        return self.session.request(method, dashboard_url(self.hub, "api/" + path), **kwargs)


def browser_session(hub, username: str, password: str) -> requests.Session:
    """Logged in at the hub, then through the dashboard's OAuth, with the
    dashboard's XSRF token ready in X-XSRFToken."""
    session = hub.login(username, password)
    page = session.get(dashboard_url(hub, "files/private/"), timeout=60)
    assert page.status_code == 200, page.status_code
    session.headers["X-XSRFToken"] = session.cookies.get("_xsrf", path=SERVICE)
    return session


def log_in_page(page, hub, username: str, password: str = PASSWORD) -> None:
    """Log a browser page in through the hub's login form, as a person does."""
    page.goto(hub.url + "/hub/login")
    page.fill("#username_input", username)
    page.fill("#password_input", password)
    page.click("#login_submit")
    # wherever the hub sends a login (the dashboard's Home page, or ?next=), but not back to the form
    page.wait_for_url(re.compile(r"^(?!.*/hub/login).*/(hub|services|user)/"))


def files_root(hub):
    """The root of the hub's file domains: a folder, or for an S3 file
    domain its prefix as a ``tests.s3files.S3Path`` (``start_files_hub``)."""
    return getattr(hub, "files", None) or Path(hub.state_dir) / "files"


def staging_folder(hub) -> Path:
    """Where the dashboard stages uploads: a local folder, whatever the domains."""
    return Path(hub.state_dir) / "files" / "uploads" / "staged"


def is_s3(hub) -> bool:
    return getattr(hub, "files", None) is not None


def remove_tree(path) -> None:
    if hasattr(path, "rmtree"):
        path.rmtree()
    else:
        shutil.rmtree(path)


def private_folder(hub, username: str) -> Path:
    return files_root(hub) / "private" / username


def ensure_user(hub, username: str, created: set = set()) -> None:  # noqa: B006 - per-process record
    key = (hub.url, username)
    if key not in created:
        hub.create_user(username, PASSWORD)
        created.add(key)


def service_pid(hub) -> int:
    response = hub.api("GET", "/services/karvdash", token=hub.token_for(hub.admin))
    response.raise_for_status()
    return response.json()["pid"]


def dashboard_pid(hub) -> int:
    """The dashboard's own process: the hub's service process is its
    supervisor (``karvdash_hub.dashboard.supervisor``), which runs it as a child."""
    import psutil

    supervisor = psutil.Process(service_pid(hub))
    children = [p for p in supervisor.children() if "karvdash_hub.dashboard" in " ".join(p.cmdline())]
    assert len(children) == 1, f"the dashboard supervisor {supervisor.pid} runs {children}"
    return children[0].pid


def peak_rss_kib(pid: int) -> int:
    """VmHWM: the most resident memory the process ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")
