"""A real karvdash-hub for tests: the ``karvdash-hub`` command as a child
process, with the real configurable-http-proxy and a SQLite database in a
temporary state folder, on free loopback ports."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from karvdash_hub.hub.service import free_loopback_port

ROOT = Path(__file__).resolve().parent.parent
HUB_COMMAND = [str(Path(sys.executable).parent / "karvdash-hub")]

free_port = free_loopback_port


@dataclass
class RunningHub:
    url: str
    state_dir: Path
    log_path: Path
    process: subprocess.Popen
    admin: str = "admin"
    admin_password: str = ""
    # configurable-http-proxy's REST API, when the hub was told where
    proxy_api_url: str = ""
    _sessions: dict = field(default_factory=dict)

    @property
    def hub_api(self) -> str:
        return self.url + "/hub/api"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def login(self, username: str, password: str) -> requests.Session:
        """A requests session logged in through the hub's login form."""
        session = requests.Session()
        page = session.get(self.url + "/hub/login", timeout=30)
        xsrf = session.cookies.get("_xsrf") or _xsrf_from(page.text)
        response = session.post(
            self.url + "/hub/login",
            data={"username": username, "password": password, "_xsrf": xsrf},
            allow_redirects=False,
            timeout=30,
        )
        if response.status_code != 302:
            raise AssertionError(f"login of {username} failed: {response.status_code}")
        session.headers["X-XSRFToken"] = session.cookies.get("_xsrf", xsrf)
        return session

    def admin_session(self) -> requests.Session:
        if "admin" not in self._sessions:
            self._sessions["admin"] = self.login(self.admin, self.admin_password)
        return self._sessions["admin"]

    def token_for(self, username: str, password: str | None = None, scopes: list[str] | None = None) -> str:
        """An API token of ``username``, made by the admin (or by the user when
        a password is given)."""
        if password:
            session = self.login(username, password)
        else:
            session = self._sessions.get(username) or self.admin_session()
        body = {"note": "test"}
        if scopes is not None:
            body["scopes"] = scopes
        response = session.post(f"{self.hub_api}/users/{username}/tokens", json=body, timeout=30)
        response.raise_for_status()
        return response.json()["token"]

    def api(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"token {token}"
        return requests.request(method, self.hub_api + path, headers=headers, timeout=60, **kwargs)

    def create_user(self, username: str, password: str, email: str | None = None) -> None:
        """Sign up and have the admin approve, as a person would (no browser)."""
        session = requests.Session()
        page = session.get(self.url + "/hub/signup", timeout=30)
        xsrf = session.cookies.get("_xsrf") or _xsrf_from(page.text)
        response = session.post(
            self.url + "/hub/signup",
            data={
                "username": username,
                "email": email or f"{username}@example.org",
                "signup_password": password,
                "signup_password_confirmation": password,
                "_xsrf": xsrf,
            },
            timeout=30,
        )
        assert response.status_code == 200, response.text
        admin = self.admin_session()
        response = admin.post(
            f"{self.url}/hub/authorize/{username}",
            data={"_xsrf": admin.cookies.get("_xsrf")},
            allow_redirects=False,
            timeout=30,
        )
        assert response.status_code == 302, response.status_code
        # the hub knows a user from the first login on
        self._sessions[username] = self.login(username, password)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        # the proxy and managed services share the hub's process group; a hub
        # that failed to start does not stop them itself
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


def _xsrf_from(html: str) -> str:
    match = re.search(r'name="_xsrf" value="([^"]+)"', html)
    return match.group(1) if match else ""


def hub_environment(state_dir: Path, extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KARVDASH_")}
    env.update({"KARVDASH_STATE_DIR": str(state_dir), "KARVDASH_ADMIN_PASSWORD": "admin-secret-pw"})
    env.update(extra or {})
    return env


def start_hub(state_dir: Path, env: dict | None = None, args: list[str] = (), timeout: float = 180) -> RunningHub:
    """Start karvdash-hub and wait until its API answers (generously: on a
    loaded 2-core machine the hub and its dashboard take a minute to import)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    port, hub_port, api_port = free_port(), free_port(), free_port()
    environment = hub_environment(state_dir, env)
    log_path = state_dir / "hub.log"
    command = [
        *HUB_COMMAND,
        f"--port={port}",
        f"--JupyterHub.hub_port={hub_port}",
        f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{api_port}",
        *args,
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, env=environment, stdout=log, stderr=subprocess.STDOUT, cwd=state_dir, start_new_session=True
        )
    hub = RunningHub(
        url=f"http://127.0.0.1:{port}",
        state_dir=state_dir,
        log_path=log_path,
        process=process,
        admin_password=environment["KARVDASH_ADMIN_PASSWORD"],
        proxy_api_url=f"http://127.0.0.1:{api_port}",
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            hub.stop()
            raise RuntimeError(f"karvdash-hub exited with {process.returncode}:\n{hub.log()}")
        try:
            if requests.get(hub.hub_api, timeout=5).status_code == 200:
                return hub
        except requests.RequestException:  # not listening yet, or too busy to answer in time
            pass
        time.sleep(0.3)
    hub.stop()
    raise RuntimeError(f"karvdash-hub did not answer in {timeout}s:\n{hub.log()}")


def run_hub_until_exit(state_dir: Path, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run karvdash-hub expecting it to refuse to start."""
    return subprocess.run(
        [*HUB_COMMAND, f"--port={free_port()}"],
        env=hub_environment(state_dir, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=state_dir if state_dir.exists() else None,
    )


@dataclass
class Announced:
    """A hub started as ``make run`` starts it, and what it printed."""

    hub: RunningHub
    # its output up to the login line, that line included
    lines: list[str]
    # /hub/login's status, asked the moment the login line was read
    login_status: int


def start_hub_as_make_run(state_dir: Path, port: int, timeout: float = 180) -> Announced:
    """``karvdash-hub --port PORT`` with nothing else chosen (the internal
    ports, the admin password), read until it prints where to log in."""
    state_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KARVDASH_")}
    env["KARVDASH_STATE_DIR"] = str(state_dir)
    log_path = state_dir / "hub.log"
    process = subprocess.Popen(
        [*HUB_COMMAND, "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        cwd=state_dir, start_new_session=True, text=True, errors="replace",
    )
    hub = RunningHub(url=f"http://127.0.0.1:{port}", state_dir=state_dir, log_path=log_path, process=process)
    lines: list[str] = []
    found = threading.Event()
    status = {}

    def read():
        # drains the pipe for the hub's whole life: a full pipe would stop it
        with open(log_path, "w") as log:
            for line in process.stdout:
                log.write(line)
                log.flush()
                if found.is_set():
                    continue
                lines.append(line.rstrip("\n"))
                if "karvdash-hub: log in at" in line:
                    try:
                        status["login"] = requests.get(hub.url + "/hub/login", timeout=10).status_code
                    except requests.ConnectionError:
                        status["login"] = 0
                    found.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not found.wait(0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            hub.stop()
            raise RuntimeError(f"karvdash-hub printed no login line (exit {process.returncode}):\n{hub.log()}")
    hub.admin_password = (state_dir / "admin-password").read_text().strip()
    return Announced(hub=hub, lines=lines, login_status=status["login"])
