"""The chart's front door on one machine: Debian's nginx serving the chart's
own Ingresses as ingress-nginx serves them (tests/ingressnginx.py), in
front of a local-mode hub.

The Ingresses are the chart's, rendered by ``helm template`` with its
default ``ingress`` values: ``/`` to the proxy's Service and the
dashboard's downloads, zips and uploads straight to the dashboard's
Service, with the annotations of body size and buffering the chart gives
them. Here each Service is a loopback port: the proxy's is the hub's
configurable-http-proxy, the dashboard's its own port. So a request takes
the path it takes in a cluster, less the pod network.

    command, port = nginx_command(work, proxy="127.0.0.1:8000", dashboard="127.0.0.1:8100")
    # bench/peers.py's IngressNginx runs it (started_peers(front_door=True))

``static_nginx_command`` is the floor beside it: an nginx sending files
itself, no application behind it.

Needs helm (``make kube-binaries``) and nginx (``make nginx``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.hubprocess import free_port
from tests.ingressnginx import nginx_conf
from tests.kube.cluster import default_bin_dir

CHART = ROOT / "chart" / "karvdash-hub"
RELEASE = "bench"
NAMESPACE = "karvdash"
# the Host the Ingresses are rendered for: a client on this machine sends it
HOST = "127.0.0.1"
NGINX_UNPACK = ROOT / "tools" / "nginx" / "unpack.sh"


def helm_binary() -> Path:
    helm = default_bin_dir() / "helm"
    if not helm.exists():
        raise RuntimeError(f"helm is not built in {helm.parent}: run make kube-binaries")
    return helm


def chart_objects(work: Path) -> list[dict]:
    """The chart's Ingresses and Services with its default values for ``ingress``."""
    values = work / "frontdoor-values.yaml"
    values.write_text(yaml.safe_dump({"karvdash": {
        "ingressURL": f"http://{HOST}", "filesURL": "file:///mnt/karvdash/files",
        "stateHostPath": "/mnt/karvdash/state"}}))
    shown = ("proxy/ingress.yaml", "dashboard/ingress.yaml", "proxy/service.yaml", "dashboard/service.yaml")
    proc = subprocess.run(
        [str(helm_binary()), "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", str(values),
         *[argument for path in shown for argument in ("--show-only", f"templates/{path}")]],
        capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode:
        raise RuntimeError(f"helm template: {proc.stderr}")
    objects = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
    for obj in objects:
        obj["metadata"].setdefault("namespace", NAMESPACE)
    return objects


def upstreams(objects: list[dict], proxy: str, dashboard: str):
    """Each Service of the Ingresses' backends as the loopback address that stands for it."""
    addresses = {}
    for obj in objects:
        if obj["kind"] != "Service":
            continue
        name = obj["metadata"]["name"]
        if name.endswith("-proxy-public"):
            addresses[name] = proxy
        elif name.endswith("-dashboard"):
            addresses[name] = dashboard
    for ingress in (obj for obj in objects if obj["kind"] == "Ingress"):
        for rule in ingress["spec"].get("rules") or []:
            for path in rule["http"]["paths"]:
                if path["backend"]["service"]["name"] not in addresses:
                    raise RuntimeError(f"no loopback address for the Service {path['backend']['service']['name']}")

    def upstream(namespace: str, name: str, port: int) -> str:
        return addresses[name]

    return upstream


def nginx_command(work: Path, *, proxy: str, dashboard: str) -> tuple[list[str], int]:
    """The command of an nginx serving the chart's Ingresses on a free
    loopback port, ``proxy`` and ``dashboard`` (host:port) standing for
    their Services (its configuration and state in ``work/nginx``); and
    that port."""
    nginx = nginx_binary()
    state = work / "nginx"
    state.mkdir(parents=True, exist_ok=True)
    objects = chart_objects(work)
    port = free_port()
    conf = nginx_conf([o for o in objects if o["kind"] == "Ingress"], services=[o for o in objects if o["kind"] == "Service"],
                      upstream=upstreams(objects, proxy, dashboard), listen=f"127.0.0.1:{port}", state=str(state),
                      # (a controller's log goes to its pod's output; here it would be a file written per request)
                      access_log="off")
    (state / "nginx.conf").write_text(conf)
    return [nginx, "-p", str(state), "-e", "stderr", "-c", str(state / "nginx.conf"), "-g", DIRECTIVES], port


# as root, nginx's workers would otherwise run as nobody, who cannot write
# the buffered bodies into its folder (or read the served files)
DIRECTIVES = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")


def nginx_binary() -> str:
    nginx = subprocess.run([str(NGINX_UNPACK), "--print-path"], capture_output=True, text=True, check=True).stdout.strip()
    if not os.access(nginx, os.X_OK):
        raise RuntimeError(f"{nginx} not found: run make nginx")
    return nginx


def static_nginx_command(work: Path, root: Path) -> tuple[list[str], int]:
    """The command of an nginx sending the files under ``root`` itself
    (``sendfile``, as a static file server's best), on a free loopback port;
    and that port. What a download costs a client with no application
    behind the server."""
    state = work / "nginx-static"
    state.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (state / "nginx.conf").write_text(f"""pid {state}/nginx.pid;
events {{}}
http {{
    access_log off;
    client_body_temp_path {state}/client_body;
    proxy_temp_path {state}/proxy;
    fastcgi_temp_path {state}/fastcgi;
    uwsgi_temp_path {state}/uwsgi;
    scgi_temp_path {state}/scgi;
    sendfile on;
    tcp_nopush on;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
""")
    return [nginx_binary(), "-p", str(state), "-e", "stderr", "-c", str(state / "nginx.conf"), "-g", DIRECTIVES], port
