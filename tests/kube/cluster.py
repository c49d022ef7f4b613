"""A real, node-less Kubernetes control plane on loopback.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (which
plays one fake node) run as local processes built by tools/kube/build.sh.
Everything listens on 127.0.0.1; pods get IPs in 127.0.0.0/8.

    python -m tests.kube.cluster up --dir .cluster
    python -m tests.kube.cluster down --dir .cluster

Needs only the standard library and ``cryptography``.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import ctypes
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.kube.pki import CertificateAuthority, service_account_key

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONS_FILE = REPO_ROOT / "tools" / "kube" / "versions.env"
STAGES_FILE = Path(__file__).resolve().parent / "kwok-stages.yaml"
EXEC_FILE = Path(__file__).resolve().parent / "kwok-exec.yaml"

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok", "helm")

# Pods get IPs from here; every address in 127.0.0.0/8 is local on Linux, so
# a process can bind a pod's IP without any network set-up.
POD_CIDR = "127.42.0.0/16"
# ClusterIPs are only ever numbers here (no kube-proxy, no DNS): a loopback
# range keeps anything that still dials one on this machine. The apiserver
# accepts it (checked against 1.34), unlike a private range we must not use.
SERVICE_CIDR = "127.96.0.0/20"
NODE_IP = "127.0.0.1"
DEFAULT_NODE_NAME = "kwok-node-0"
# What the fake node offers; nvidia.com/gpu lets GPU profiles be scheduled.
# Room for a class of servers of the default profile (0.5 CPU, 1G each) at once.
DEFAULT_NODE_RESOURCES = {"cpu": "64", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": "4"}
# Label that hands a pod to tests.kube.node (see kwok-stages.yaml).
LOCAL_PROCESS_LABEL = "karvdash-hub.test/local-process"


_SETTING = re.compile(rb"^[A-Za-z_][A-Za-z0-9_]*=")


class ControlPlaneError(RuntimeError):
    pass


class BinariesMissing(ControlPlaneError):
    pass


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    versions = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            versions[key.strip()] = value.strip()
    return versions


def cache_root() -> Path:
    if os.environ.get("KARVDASH_KUBE_CACHE"):
        return Path(os.environ["KARVDASH_KUBE_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "karvdash-hub"


def default_bin_dir() -> Path:
    """Where tools/kube/build.sh puts the binaries (KARVDASH_KUBE_BIN_DIR overrides)."""
    if os.environ.get("KARVDASH_KUBE_BIN_DIR"):
        return Path(os.environ["KARVDASH_KUBE_BIN_DIR"])
    # Same key as tools/kube/build.sh: a hash of the KEY=value lines only,
    # less cert-manager's (tools/certmanager/build.sh keys those itself).
    settings = [line for line in VERSIONS_FILE.read_bytes().split(b"\n")
                if _SETTING.match(line) and not line.startswith(b"CERT_MANAGER_")]
    key = hashlib.sha256(b"".join(line + b"\n" for line in settings)).hexdigest()[:12]
    return cache_root() / f"kube-{key}" / "bin"


def missing_binaries(bin_dir: Path) -> list[str]:
    return [b for b in BINARIES if not os.access(bin_dir / b, os.X_OK)]


def go_available() -> bool:
    return shutil.which("go") is not None or os.access("/usr/local/go/bin/go", os.X_OK)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """preexec_fn: SIGTERM this child when the process that started it dies.

    Keeps a killed test run (CI time-out, SIGKILL) from leaving servers behind.
    """
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class _Process:
    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen | None = None
    pid: int | None = None


@dataclass
class ControlPlane:
    """One control plane in ``run_dir`` (certificates, etcd data, logs, kubeconfig).

    ``start()`` returns when the node is Ready and the ``default`` service
    account exists; ``stop()`` ends every process group it started.
    """

    run_dir: Path
    bin_dir: Path | None = None
    node_name: str = DEFAULT_NODE_NAME
    node_resources: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_NODE_RESOURCES))
    verbosity: int = 1

    def __post_init__(self):
        self.run_dir = Path(self.run_dir).resolve()
        self.bin_dir = Path(self.bin_dir or default_bin_dir())
        self.pki_dir = self.run_dir / "pki"
        self.log_dir = self.run_dir / "logs"
        self.kubeconfig = self.run_dir / "admin.kubeconfig"
        self.ca = self.pki_dir / "ca.crt"
        self.state_file = self.run_dir / "state.json"
        self.server = ""
        self.ready_seconds: float | None = None
        self._processes: list[_Process] = []
        self._ports: dict[str, int] = {}
        self._ssl: ssl.SSLContext | None = None
        self._detach = False

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout: float = 120.0, detach: bool = False) -> "ControlPlane":
        """Start everything; with ``detach`` the processes outlive this Python process."""
        missing = missing_binaries(self.bin_dir)
        if missing:
            raise BinariesMissing(f"missing in {self.bin_dir}: {', '.join(missing)} (run tools/kube/build.sh)")
        started = time.monotonic()
        deadline = started + timeout
        self._detach = detach
        if not detach:
            atexit.register(self.stop)
        try:
            self._prepare()
            self._start_etcd(deadline)
            self._start_apiserver(deadline)
            self._start_nodes_and_controllers()
            self._create_node()
            self._wait(deadline, "node Ready", self._node_ready)
            self._wait(deadline, "service account default/default", self._default_service_account)
        except BaseException:
            self.stop()
            raise
        self.ready_seconds = time.monotonic() - started
        self._write_state()
        return self

    def stop(self) -> None:
        """Terminate in reverse start order; SIGKILL what does not exit in 10 s."""
        for proc in reversed(self._processes):
            _terminate_group(proc)
        self._processes = []
        if self.state_file.exists():
            self.state_file.unlink()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- public helpers ----------------------------------------------------

    def env(self) -> dict[str, str]:
        """Environment for kubectl/helm: this cluster's kubeconfig, helm state in run_dir."""
        env = dict(os.environ)
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            HELM_CACHE_HOME=str(self.run_dir / "helm" / "cache"),
            HELM_CONFIG_HOME=str(self.run_dir / "helm" / "config"),
            HELM_DATA_HOME=str(self.run_dir / "helm" / "data"),
            PATH=f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        return env

    def run(self, binary: str, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(self.bin_dir / binary), *args], input=input, capture_output=True, text=True,
            env=self.env(), timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise ControlPlaneError(
                f"{binary} {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def kubectl(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run("kubectl", *args, **kwargs)

    def helm(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run("helm", *args, **kwargs)

    def log_paths(self) -> dict[str, Path]:
        return {p.name: p.log for p in self._processes} or {
            p.stem: p for p in sorted(self.log_dir.glob("*.log"))
        }

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def api(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """One request as the admin; returns (status, decoded JSON body or {})."""
        conn = http.client.HTTPSConnection("127.0.0.1", self._ports["apiserver"], context=self._ssl_context(),
                                           timeout=10)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw) if raw else {}
        except ValueError:
            return resp.status, {"raw": raw.decode(errors="replace")}

    # -- start-up steps ----------------------------------------------------

    def _prepare(self) -> None:
        for sub in ("pki", "logs", "etcd"):
            shutil.rmtree(self.run_dir / sub, ignore_errors=True)
        self.log_dir.mkdir(parents=True)
        ports = ("etcd_client", "etcd_peer", "apiserver", "controller_manager", "scheduler", "kwok")
        self._ports = {name: free_port() for name in ports}
        self.server = f"https://127.0.0.1:{self._ports['apiserver']}"

        ca = CertificateAuthority("karvdash-hub test cluster CA")
        ca.key_pair.write(self.pki_dir, "ca")
        ca.issue(
            "kube-apiserver",
            dns_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                       "kubernetes.default.svc.cluster.local"),
            ip_addresses=("127.0.0.1",),
            server=True,
        ).write(self.pki_dir, "apiserver")
        # controller-manager and scheduler serve /healthz on loopback.
        ca.issue("kube-components", dns_names=("localhost",), ip_addresses=("127.0.0.1",),
                 server=True).write(self.pki_dir, "components")
        admin = ca.issue("kubernetes-admin", organizations=("system:masters",), client=True)
        admin.write(self.pki_dir, "admin")
        sa_private, sa_public = service_account_key()
        (self.pki_dir / "sa.key").write_bytes(sa_private)
        (self.pki_dir / "sa.pub").write_bytes(sa_public)

        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "karvdash-test", "cluster": {
                "server": self.server, "certificate-authority-data": _b64(ca.cert_pem)}}],
            "users": [{"name": "admin", "user": {
                "client-certificate-data": _b64(admin.cert_pem), "client-key-data": _b64(admin.key_pem)}}],
            "contexts": [{"name": "karvdash-test", "context": {"cluster": "karvdash-test", "user": "admin"}}],
            "current-context": "karvdash-test",
        }, indent=2))
        self.kubeconfig.chmod(0o600)
        self._ssl = None

    def _spawn(self, name: str, binary: str, args: list[str]) -> _Process:
        argv = [str(self.bin_dir / binary), *args]
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as out:
            out.write(("$ " + " ".join(argv) + "\n").encode())
            out.flush()
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.run_dir, start_new_session=True,  # own process group, killed as one
                env=self._component_env(), preexec_fn=None if self._detach else die_with_parent,
            )
        proc = _Process(name, argv, log, popen, popen.pid)
        self._processes.append(proc)
        return proc

    def _component_env(self) -> dict[str, str]:
        # No proxy for loopback traffic, and nothing read from the user's ~/.kube or ~/.kwok.
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env["HOME"] = str(self.run_dir)
        env.pop("KUBECONFIG", None)
        return env

    def _start_etcd(self, deadline: float) -> None:
        client = f"http://127.0.0.1:{self._ports['etcd_client']}"
        peer = f"http://127.0.0.1:{self._ports['etcd_peer']}"
        self._spawn("etcd", "etcd", [
            "--name=default",
            f"--data-dir={self.run_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            # Test data: durability is not worth the fsync latency.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ])
        self._wait(deadline, "etcd /health", lambda: _http_ok(f"{client}/health"))

    def _start_apiserver(self, deadline: float) -> None:
        p = self.pki_dir
        self._spawn("kube-apiserver", "kube-apiserver", [
            f"--etcd-servers=http://127.0.0.1:{self._ports['etcd_client']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self._ports['apiserver']}",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=Node,RBAC",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # The "kubernetes" Endpoints would hold 127.0.0.1, which Endpoints
            # validation refuses (loopback); nothing in-cluster dials it anyway.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            # exec and logs dial the node's InternalIP (loopback); its name
            # would be looked up in the machine's DNS
            "--kubelet-preferred-address-types=InternalIP",
            f"--cert-dir={self.run_dir / 'apiserver-certs'}",
            "--profiling=false",
            f"--v={self.verbosity}",
        ])
        self._wait(deadline, "kube-apiserver /readyz", self._apiserver_ready)

    def _start_nodes_and_controllers(self) -> None:
        p = self.pki_dir
        self._spawn("kube-controller-manager", "kube-controller-manager", [
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={self._ports['controller_manager']}",
            f"--tls-cert-file={p / 'components.crt'}",
            f"--tls-private-key-file={p / 'components.key'}",
            f"--service-account-private-key-file={p / 'sa.key'}",
            f"--root-ca-file={p / 'ca.crt'}",
            f"--cluster-signing-cert-file={p / 'ca.crt'}",
            f"--cluster-signing-key-file={p / 'ca.key'}",
            # Each controller acts with its own service account, so RBAC applies to them too.
            "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--profiling=false",
            f"--v={self.verbosity}",
        ])
        self._spawn("kube-scheduler", "kube-scheduler", [
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={self._ports['scheduler']}",
            f"--tls-cert-file={p / 'components.crt'}",
            f"--tls-private-key-file={p / 'components.key'}",
            "--profiling=false",
            f"--v={self.verbosity}",
        ])
        self._spawn("kwok", "kwok", [
            f"--kubeconfig={self.kubeconfig}",
            f"--config={STAGES_FILE}",
            f"--config={EXEC_FILE}",
            "--manage-all-nodes=true",
            f"--node-ip={NODE_IP}",
            f"--cidr={POD_CIDR}",
            f"--server-address=127.0.0.1:{self._ports['kwok']}",
            f"--node-port={self._ports['kwok']}",
            # kwok renews the node's Lease, which keeps the node lifecycle
            # controller from marking it NotReady and evicting pods.
            "--node-lease-duration-seconds=40",
            f"--v={'DEBUG' if self.verbosity > 2 else 'INFO'}",
        ])

    def _create_node(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {"podCIDR": POD_CIDR, "podCIDRs": [POD_CIDR]},
            "status": {"allocatable": dict(self.node_resources), "capacity": dict(self.node_resources)},
        }
        status, body = self.api("POST", "/api/v1/nodes", node)
        if status not in (201, 409):
            raise ControlPlaneError(f"creating node {self.node_name}: HTTP {status}: {body}")

    # -- readiness checks --------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = ssl.create_default_context(cafile=str(self.ca))
            ctx.load_cert_chain(self.pki_dir / "admin.crt", self.pki_dir / "admin.key")
            self._ssl = ctx
        return self._ssl

    def _apiserver_ready(self) -> bool:
        try:
            status, _ = self.api("GET", "/readyz")
        except OSError:
            return False
        return status == 200

    def _node_ready(self) -> bool:
        status, node = self.api("GET", f"/api/v1/nodes/{self.node_name}")
        if status != 200:
            return False
        conditions = node.get("status", {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def _default_service_account(self) -> bool:
        status, _ = self.api("GET", "/api/v1/namespaces/default/serviceaccounts/default")
        return status == 200

    def _wait(self, deadline: float, what: str, check) -> None:
        while True:
            for proc in self._processes:
                if proc.popen is not None and proc.popen.poll() is not None:
                    raise ControlPlaneError(
                        f"{proc.name} exited with {proc.popen.returncode} while waiting for {what}; "
                        f"last lines of {proc.log}:\n{self.log_tail(proc.name)}"
                    )
            try:
                if check():
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"timed out waiting for {what}; logs in {self.log_dir}")
            time.sleep(0.2)

    # -- state for `down` from another process -----------------------------

    def _write_state(self) -> None:
        self.state_file.write_text(json.dumps({
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "bin_dir": str(self.bin_dir),
            "ports": self._ports,
            "ready_seconds": self.ready_seconds,
            "processes": [{"name": p.name, "pid": p.pid, "argv": p.argv, "log": str(p.log)}
                          for p in self._processes],
        }, indent=2))

    @classmethod
    def attach(cls, run_dir: Path) -> "ControlPlane":
        """The control plane recorded in run_dir/state.json (started by ``up``)."""
        cp = cls(run_dir)
        state = json.loads(cp.state_file.read_text())
        cp.bin_dir = Path(state["bin_dir"])
        cp.server = state["server"]
        cp._ports = state["ports"]
        cp.ready_seconds = state.get("ready_seconds")
        cp._processes = [_Process(p["name"], p["argv"], Path(p["log"]), None, p["pid"])
                         for p in state["processes"]]
        return cp

    def running(self) -> list[str]:
        return [p.name for p in self._processes if _is_ours(p)]


def _is_ours(proc: _Process) -> bool:
    """True if proc.pid is still the process we started (pids get reused)."""
    if proc.popen is not None:
        return proc.popen.poll() is None
    try:
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
    except OSError:
        return False
    zombie = stat.rsplit(")", 1)[1].split()[0] == "Z"
    return not zombie and cmdline[0].decode(errors="replace") == proc.argv[0]


def _terminate_group(proc: _Process, grace: float = 10.0) -> None:
    if proc.pid is None or not _is_ours(proc):
        if proc.popen is not None:
            proc.popen.wait()
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _is_ours(proc):
        time.sleep(0.05)
    if _is_ours(proc):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.popen is not None:
        proc.popen.wait()
    else:
        while _is_ours(proc):
            time.sleep(0.05)


def _http_ok(url: str) -> bool:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kube.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--dir", default=".cluster", type=Path, help="run directory (default: .cluster)")
    parser.add_argument("--bin-dir", type=Path, default=None, help="binaries (default: tools/kube/build.sh's cache)")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    run_dir = args.dir.resolve()

    existing = ControlPlane.attach(run_dir) if (run_dir / "state.json").exists() else None
    if args.command == "status":
        running = existing.running() if existing else []
        print(f"running: {', '.join(running)}" if running else "not running")
        return 0 if running else 1
    if args.command == "down":
        if existing is None:
            print(f"no cluster recorded in {run_dir}")
            return 0
        existing.stop()
        print(f"cluster in {run_dir} stopped")
        return 0

    if existing is not None:
        if existing.running():
            print(f"already running: export KUBECONFIG={existing.kubeconfig}")
            return 0
        existing.stop()
    cp = ControlPlane(run_dir, bin_dir=args.bin_dir)
    try:
        cp.start(timeout=args.timeout, detach=True)
    except BinariesMissing as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 3
    except ControlPlaneError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    print(f"Kubernetes control plane ready in {cp.ready_seconds:.1f} s at {cp.server} (logs in {cp.log_dir})")
    print(f"  export KUBECONFIG={cp.kubeconfig}")
    print(f"  export PATH={cp.bin_dir}:$PATH   # kubectl and helm of the same versions")
    print("  kubectl get nodes")
    print(f"stop it with: make cluster-down  (or python -m tests.kube.cluster down --dir {args.dir})")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
