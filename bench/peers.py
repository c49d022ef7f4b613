"""The dashboard and its peer, jupyter-server, reached the same way.

Benchmarks compare the dashboard with what a user would open instead: a
``jupyter server`` (JupyterLab's back end) on the same machine. Both are
measured through the same front door, the hub's configurable-http-proxy,
and both straight at their own ports:

    from bench.peers import started_peers

    with started_peers(work) as peers:
        peers.dashboard.proxied   # http://127.0.0.1:<proxy>/services/karvdash/
        peers.dashboard.direct    # http://127.0.0.1:<dashboard>/services/karvdash/
        peers.jupyter.proxied     # http://127.0.0.1:<proxy>/bench-jupyter/
        peers.jupyter.direct      # http://127.0.0.1:<jupyter>/bench-jupyter/

With ``front_door=True`` both are also reached through the chart's front
door (``peers.dashboard.ingress``, ``peers.jupyter.ingress``): nginx
serving the chart's Ingresses (bench/frontdoor.py), which send the
dashboard's bulk paths straight to its port and everything else, the
jupyter server's prefix too, to the proxy.

The hub is started with a proxy token chosen here (``CONFIGPROXY_AUTH_TOKEN``,
which JupyterHub hands to the proxy it starts), and the jupyter server with
``base_url=/bench-jupyter/``; one route added through the proxy's REST API
sends that prefix to it. The hub leaves the route alone: it only prunes
routes it made itself (those with ``jupyterhub`` in their data).
"""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.frontdoor import nginx_command, static_nginx_command
from tests.hubprocess import RunningHub, free_port, start_hub

JUPYTER_PREFIX = "/bench-jupyter/"
DASHBOARD_PREFIX = "/services/karvdash/"


def wait_until_answering(process, url: str, what: str, timeout: float, stop, *, headers=None, details=lambda: "") -> None:
    """Until ``url`` answers 200; a RuntimeError naming ``what`` (and its
    ``details()``) if ``process`` exits first or ``timeout`` passes (then ``stop()``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}{details()}")
        try:
            # (the body is not read: it may be the file a benchmark sends)
            with requests.get(url, headers=headers, timeout=5, stream=True) as answer:
                if answer.status_code == 200:
                    return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    stop()
    raise RuntimeError(f"{what} did not answer in {timeout}s{details()}")


def stop_group(process: subprocess.Popen) -> None:
    """Stop ``process`` and its session's processes (SIGTERM, then SIGKILL after 30 s)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@dataclass
class Peer:
    """One server under test: its address through the proxy and its own,
    the token that authenticates a client, and its process."""

    name: str
    proxied: str
    direct: str
    token: str
    pid: int
    # through the chart's front door (started_peers(front_door=True))
    ingress: str = ""

    def url(self, way: str) -> str:
        """``way`` is ``proxy``, ``direct`` or ``ingress``."""
        address = {"proxy": self.proxied, "direct": self.direct, "ingress": self.ingress}[way]
        if not address:
            raise ValueError(f"{self.name} has no {way} address: started without the front door")
        return address

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}


@dataclass
class Proxy:
    """configurable-http-proxy's REST API, with the token the hub gave it."""

    api_url: str
    token: str
    pid: int = 0

    def add_route(self, prefix: str, target: str) -> None:
        response = requests.post(
            f"{self.api_url}/api/routes{prefix.rstrip('/')}",
            json={"target": target},
            headers={"Authorization": f"token {self.token}"},
            timeout=30,
        )
        if response.status_code != 201:
            raise RuntimeError(f"the proxy refused the route {prefix}: {response.status_code} {response.text}")


class JupyterServer:
    """``jupyter server`` on a loopback port, serving ``root`` at ``base_url``."""

    def __init__(self, root: Path, log_path: Path, base_url: str = JUPYTER_PREFIX, timeout: float = 120):
        self.port = free_port()
        self.base_url = base_url
        self.token = "bench-token-" + secrets.token_hex(8)
        self.target = f"http://127.0.0.1:{self.port}"
        self.direct = self.target + base_url
        with open(log_path, "wb") as log:  # the server writes to its own copy
            self.process = self._start(root, log)
        wait_until_answering(self.process, self.direct + "api/status", "jupyter server", timeout, self.stop,
                             headers=self.headers, details=lambda: f"; see {log_path}")

    def _start(self, root: Path, log) -> subprocess.Popen:
        return subprocess.Popen(
            [
                str(Path(sys.executable).parent / "jupyter"),
                "server",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                f"--ServerApp.base_url={self.base_url}",
                "--ServerApp.open_browser=False",
                f"--ServerApp.root_dir={root}",
                f"--IdentityProvider.token={self.token}",
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def stop(self) -> None:
        stop_group(self.process)


class Nginx:
    """An nginx run by ``command`` on ``port`` until ``stop()``, waited for
    until ``check`` (a path) answers through it."""

    def __init__(self, work: Path, command: list[str], port: int, check: str, *, name: str = "nginx",
                 timeout: float = 30):
        self.url = f"http://127.0.0.1:{port}"
        log_path = work / f"{name}.log"
        with open(log_path, "wb") as log:  # nginx writes to its own copy
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until_answering(self.process, self.url + check, name, timeout, self.stop,
                             details=lambda: f"; see {log_path}")

    def stop(self) -> None:
        stop_group(self.process)


class IngressNginx(Nginx):
    """nginx serving the chart's Ingresses (bench/frontdoor.py) on a loopback
    port, in front of the hub's proxy and the dashboard."""

    def __init__(self, work: Path, *, proxy: str, dashboard: str, timeout: float = 30):
        # answered through nginx and the proxy by the hub
        super().__init__(work, *nginx_command(work, proxy=proxy, dashboard=dashboard), "/hub/api", timeout=timeout)


@contextlib.contextmanager
def static_nginx(work: Path, root: Path, check: str):
    """nginx sending the files under ``root`` itself (bench/frontdoor.py),
    for as long as the block runs; ``check``: a file's path to wait for."""
    server = Nginx(work, *static_nginx_command(work, root), check, name="nginx-static")
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Peers:
    hub: RunningHub
    proxy: Proxy
    dashboard: Peer
    jupyter: Peer
    # the folders each one serves: the admin's private domain and jupyter's root
    dashboard_root: Path
    jupyter_root: Path
    processes: dict[str, int] = field(default_factory=dict)


def dashboard_pid(hub: RunningHub, port: int) -> int:
    """The process listening on the dashboard's port (under the hub's supervisor)."""
    for process in psutil.Process(hub.process.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in process.net_connections("tcp")):
                return process.pid
    return 0


@contextlib.contextmanager
def started_peers(work: Path, hub_env: dict | None = None, *, front_door: bool = False):
    """A karvdash-hub (local mode, real proxy) and a jupyter server behind
    its proxy (and the chart's front door before both, with ``front_door``),
    stopped on the way out. The dashboard's token is the admin's."""
    proxy_token = secrets.token_hex(32)
    hub = server = ingress = None
    try:
        hub = start_hub(work / "hub", env={"CONFIGPROXY_AUTH_TOKEN": proxy_token, **(hub_env or {})})
        token = hub.token_for(hub.admin)
        service_url = hub.api("GET", "/services/karvdash", token=token).json()["url"].rstrip("/")
        dashboard_root = work / "hub" / "files" / "private" / hub.admin
        dashboard_root.mkdir(parents=True, exist_ok=True)
        jupyter_root = work / "jupyter"
        jupyter_root.mkdir(exist_ok=True)
        server = JupyterServer(jupyter_root, work / "jupyter.log")
        # JupyterHub's ConfigurableHTTPProxy.pid_file, in the state folder
        proxy_pid = int((work / "hub" / "proxy.pid").read_text().strip())
        proxy = Proxy(hub.proxy_api_url, proxy_token, proxy_pid)
        proxy.add_route(JUPYTER_PREFIX, server.target)
        dashboard = Peer(
            "dashboard",
            proxied=hub.url + DASHBOARD_PREFIX,
            direct=service_url + DASHBOARD_PREFIX,
            token=token,
            pid=dashboard_pid(hub, urlsplit(service_url).port),
        )
        jupyter = Peer("jupyter-server", proxied=hub.url + JUPYTER_PREFIX, direct=server.direct,
                       token=server.token, pid=server.process.pid)
        processes = {"hub": hub.process.pid, "proxy": proxy_pid, "dashboard": dashboard.pid, "jupyter-server": jupyter.pid}
        if front_door:
            ingress = IngressNginx(work, proxy=urlsplit(hub.url).netloc, dashboard=urlsplit(service_url).netloc)
            processes["nginx"] = ingress.process.pid
            dashboard.ingress = ingress.url + DASHBOARD_PREFIX
            jupyter.ingress = ingress.url + JUPYTER_PREFIX
        # the route answers through the proxy (and the front door) before anything is measured
        for way in ("proxy", "ingress") if front_door else ("proxy",):
            response = requests.get(jupyter.url(way) + "api/status", headers=jupyter.headers, timeout=30)
            if not response.ok:
                raise RuntimeError(f"jupyter server, {way}: {response.status_code}")
        yield Peers(
            hub=hub, proxy=proxy, dashboard=dashboard, jupyter=jupyter, dashboard_root=dashboard_root,
            jupyter_root=jupyter_root, processes=processes,
        )
    finally:
        if ingress:
            ingress.stop()
        if server:
            server.stop()
        if hub:
            hub.stop()


# the processes whose work is done by their children (nginx's workers)
WORKS_IN_CHILDREN = frozenset({"nginx"})


def cpu_seconds(pid: int, with_children: bool = False) -> float:
    """User + system CPU seconds a process (and its children, with
    ``with_children``) has used so far (0 when gone)."""
    try:
        process = psutil.Process(pid)
        processes = [process, *process.children(recursive=True)] if with_children else [process]
    except psutil.Error:
        return 0.0
    total = 0.0
    for one in processes:
        with contextlib.suppress(psutil.Error):
            times = one.cpu_times()
            total += times.user + times.system
    return total


def machine() -> dict:
    """What the figures were measured on, and how busy it was."""
    return {
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "cpu": _cpu_model(),
        "loadavg": list(os.getloadavg()),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()
