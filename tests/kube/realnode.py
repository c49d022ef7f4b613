"""A real single-node Kubernetes cluster inside a network namespace.

Next to tests.kube.cluster (whose node is kwok's and runs nothing), this one
runs real containers: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kubelet, kube-proxy, containerd 2 with Debian's runc, the CNI
bridge plugin, kube-router's network policy controller (the bridge does not
enforce NetworkPolicy), CoreDNS and a docker-registry, all as local processes started
with ``nsenter --net`` in one network namespace the harness creates and
deletes. That namespace holds only ``lo``, a veth pair (both ends inside; it
carries the node IP) and the CNI bridge: no uplink, no default route, so
nothing of the cluster can reach anything outside it. Addresses come from
the benchmark range 198.18.0.0/15, not from a private range.

The host reaches the apiserver (and the registry) through
tests/kube/nsrelay.py, which listens on 127.0.0.1 here and connects from
inside the namespace: the admin kubeconfig says https://127.0.0.1:<port>,
the same port inside and outside. Anything else (ClusterIPs, pod IPs) is
reached from inside the namespace: ``in_netns(fn)``, ``netns_http_get()``,
``exec_in_netns()``.

    python -m tests.kube.realnode up --dir .cluster     # make cluster NODE=real
    python -m tests.kube.realnode down --dir .cluster   # make cluster-down
    python -m tests.kube.realnode push --dir .cluster ARCHIVE NAME[:TAG]   # make images
    python -m tests.kube.realnode sweep    # clusters of killed test runs

Needs root, the binaries of ``tools/kube/build.sh`` and ``--node``, and
Debian's runc, containernetworking-plugins, iproute2, iptables, ipset and
docker-registry (``make node-packages``). ``stop()`` leaves nothing behind:
no process, mount, network namespace, cgroup, iptables rule or ipset (those
of kube-proxy and kube-router live in the namespace and go with it).
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
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.kube.cluster import (
    ControlPlaneError,
    _is_ours,
    _Process,
    _terminate_group,
    default_bin_dir,
    die_with_parent,
    free_port,
    missing_binaries,
)
from tests.kube.pki import CertificateAuthority, service_account_key

NODE_IP = "198.18.1.1"
POD_CIDR = "198.18.0.0/24"
POD_GATEWAY = "198.18.0.1"
SERVICE_CIDR = "198.18.16.0/20"
KUBERNETES_SERVICE_IP = "198.18.16.1"
DNS_SERVICE_IP = "198.18.16.10"
CLUSTER_DOMAIN = "cluster.local"
NODE_NAME = "karvdash-node"
REGISTRY_PORT = 5000
REGISTRY = f"{NODE_IP}:{REGISTRY_PORT}"
REGISTRY_USER = "karvdash"
NETNS_PREFIX = "karvdash-node-"
# kubelet makes unix sockets in its root dir (<run dir>/kubelet/root/
# pod-resources/<10 digits>), and a socket path has at most 107 bytes
MAX_RUN_DIR = 64

NODE_BINARIES = ("kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2", "ctr", "coredns", "pause",
                 "pause-image.tar", "kube-router")
CONTROL_PLANE_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "helm")
RUNC = "/usr/sbin/runc"
CNI_BIN_DIR = Path("/usr/lib/cni")
CNI_PLUGINS = ("bridge", "host-local", "portmap", "loopback")
HOST_TOOLS = {"ip": "iproute2", "nsenter": "util-linux", "iptables": "iptables", "ipset": "ipset",
              "docker-registry": "docker-registry",
              "skopeo": "skopeo"}
# kube-router's default, inside the namespace only
KUBE_ROUTER_HEALTH_PORT = 20244
CGROUP_FS = Path("/sys/fs/cgroup")
CNI_CACHE = Path("/var/lib/cni")
CLONE_NEWNET = 0x40000000
NSRELAY = Path(__file__).resolve().parent / "nsrelay.py"
STATE_NAME = "realnode.json"
# One file per running cluster (run dir, owner), so that a later start can
# tear down what a killed test run left behind.
RECORDS = Path("/run/karvdash-node")
# What kubelet and the shims create outside run_dir whatever their
# configuration says (kubelet's device-plugin socket and container-log
# links, the shims' socket folder): created by the first cluster, shared
# while several run, removed with the last one if it was not there before.
HOST_PATHS = (Path("/var/lib/kubelet/device-plugins/kubelet.sock"), Path("/var/lib/kubelet/device-plugins"),
              Path("/var/lib/kubelet"), Path("/var/log/containers"), Path("/run/containerd/s"),
              Path("/run/containerd"))
CONTAINER_LOGS = Path("/var/log/containers")
HOST_BEFORE = RECORDS / "host-paths-before.json"


class NodeUnavailable(ControlPlaneError):
    """Something the real node needs is missing on this machine (a skip, not a failure)."""


def default_node_bin_dir() -> Path:
    """Where ``tools/kube/build.sh --node`` puts kubelet & co (KARVDASH_NODE_BIN_DIR overrides)."""
    if os.environ.get("KARVDASH_NODE_BIN_DIR"):
        return Path(os.environ["KARVDASH_NODE_BIN_DIR"])
    return default_bin_dir().parent / "node-bin"


def unavailable_reason(bin_dir: Path | None = None, node_bin_dir: Path | None = None) -> str | None:
    """Why a real node cannot start here, or None."""
    if os.geteuid() != 0:
        return "real node needs root (network namespaces, mounts, cgroups)"
    if not Path("/proc/self/ns/net").exists():
        return "real node needs network namespaces"
    bin_dir = Path(bin_dir or default_bin_dir())
    node_bin_dir = Path(node_bin_dir or default_node_bin_dir())
    missing = [b for b in CONTROL_PLANE_BINARIES if b in missing_binaries(bin_dir)]
    if missing:
        return f"control plane not built ({', '.join(missing)} missing in {bin_dir}): run make kube-binaries"
    missing = [b for b in NODE_BINARIES if not (node_bin_dir / b).exists()]
    if missing:
        return f"node not built ({', '.join(missing)} missing in {node_bin_dir}): run make node-binaries"
    missing = [f"{tool} ({pkg})" for tool, pkg in HOST_TOOLS.items() if not shutil.which(tool)]
    if not os.access(RUNC, os.X_OK):
        missing.append(f"{RUNC} (runc)")
    missing += [f"{CNI_BIN_DIR / p} (containernetworking-plugins)" for p in CNI_PLUGINS
                if not os.access(CNI_BIN_DIR / p, os.X_OK)]
    if missing:
        return f"Debian packages missing: {', '.join(missing)}: run make node-packages"
    return None


# -- network namespaces --------------------------------------------------------


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _setns(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc().setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def in_netns(netns_path: str | Path, fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` in a fresh thread that joined the network
    namespace: sockets it opens live there. Returns its result or raises its
    exception. The calling thread's namespace does not change."""
    box: dict = {}

    def target():
        try:
            _setns(netns_path)
            box["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name="in-netns", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")


def _run(argv: list[str], check: bool = True, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        output = proc.stderr.strip() or proc.stdout.strip()
        raise ControlPlaneError(f"{' '.join(argv)} exited {proc.returncode}: {output}")
    return proc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _mounts() -> list[str]:
    """Mount points of this mount namespace, as /proc/self/mountinfo has them."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        points.append(point.encode().decode("unicode_escape"))
    return points


def _umount_lazy(path: str) -> None:
    mnt_detach = 2
    if _libc().umount2(path.encode(), mnt_detach) != 0:
        err = ctypes.get_errno()
        if err not in (22, 2):  # EINVAL: not a mount point (any more); ENOENT
            raise OSError(err, f"umount {path}: {os.strerror(err)}")


def _procs_whose(predicate) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        argv = [c.decode(errors="replace") for c in cmdline if c]
        if argv and predicate(argv):
            pids.append(int(entry.name))
    return pids


def _ancestors(pid: int) -> set[int]:
    """pid and its parents up to init."""
    found = set()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return found


def _argv(pid: int) -> list[str]:
    try:
        return [c.decode(errors="replace") for c in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if c]
    except OSError:
        return []


def _kill_pids(pids: list[int], sig=signal.SIGKILL) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        if alive:
            time.sleep(0.05)
    return alive


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _live_records(exclude: Path | None = None) -> list[Path]:
    """Records of clusters that still have an owner (or were started by ``up``)."""
    live = []
    for record in sorted(RECORDS.glob("karvdash-node-*.json")) if RECORDS.is_dir() else []:
        if record == exclude:
            continue
        try:
            info = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        if info.get("detached") or _start_time(info["owner"]) == info.get("owner_start"):
            live.append(record)
    return live


def sweep_stale() -> list[str]:
    """Tear down the clusters whose owner (a test run) died without stopping
    them; those started by ``up`` stay until ``down``. Returns their run dirs."""
    swept = []
    live = _live_records()
    for record in sorted(RECORDS.glob("karvdash-node-*.json")) if RECORDS.is_dir() else []:
        if record in live:
            continue
        try:
            info = json.loads(record.read_text())
        except (OSError, ValueError):
            record.unlink(missing_ok=True)
            continue
        run_dir = Path(info["run_dir"])
        cluster = RealNodeCluster.attach(run_dir) if (run_dir / STATE_NAME).exists() else RealNodeCluster(run_dir)
        cluster.stop()
        record.unlink(missing_ok=True)
        swept.append(str(run_dir))
    return swept


def _cgroup_hierarchies() -> list[Path]:
    """Every mounted cgroup hierarchy (v1 controllers, name=systemd, unified)."""
    roots = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype = right.split()[0] if right else ""
        if fstype in ("cgroup", "cgroup2"):
            roots.append(Path(left.split()[4]))
    return roots


def _cgroup_dirs(path: Path) -> list[Path]:
    """path and every cgroup below it, deepest first; tolerates cgroups
    that go away meanwhile (runc and kubelet remove theirs)."""
    found = []
    for top, dirs, _ in os.walk(path, onerror=lambda err: None):
        found.extend(Path(top) / d for d in dirs)
    found.sort(key=lambda p: len(p.parts), reverse=True)
    return [*found, path] if path.is_dir() else found


def _cgroup_pids(path: Path) -> list[int]:
    pids = []
    for cg in _cgroup_dirs(path):
        try:
            pids += [int(p) for p in (cg / "cgroup.procs").read_text().split()]
        except OSError:
            pass
    return pids


def _rmdir_tree(path: Path) -> None:
    """rmdir a cgroup and its children, deepest first (cgroup files cannot be unlinked)."""
    for d in _cgroup_dirs(path):
        try:
            d.rmdir()
        except FileNotFoundError:
            pass


# -- the cluster ---------------------------------------------------------------


@dataclass
class RealNodeCluster:
    """A control plane and one real node in ``run_dir``, in network namespace ``netns``.

    ``start()`` returns when the node is Ready, kube-proxy has programmed
    the Service rules, CoreDNS answers and ``default/default`` exists;
    ``stop()`` removes everything and returns what it could not remove
    (nothing, normally).
    """

    run_dir: Path
    bin_dir: Path | None = None
    node_bin_dir: Path | None = None
    verbosity: int = 1
    node_name: str = NODE_NAME
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        self.run_dir = Path(self.run_dir).resolve()
        self.bin_dir = Path(self.bin_dir or default_bin_dir())
        self.node_bin_dir = Path(self.node_bin_dir or default_node_bin_dir())
        # one name for the namespace and the cgroups, from the folder: a
        # second cluster elsewhere does not collide, the same folder reuses it
        ident = hashlib.sha256(str(self.run_dir).encode()).hexdigest()[:8]
        self.netns = NETNS_PREFIX + ident
        self.netns_path = Path("/run/netns") / self.netns
        self.cgroup_root = "/" + NETNS_PREFIX + ident
        self.cni_network = NETNS_PREFIX + ident
        self.pki_dir = self.run_dir / "pki"
        self.log_dir = self.run_dir / "logs"
        self.kubeconfig = self.run_dir / "admin.kubeconfig"
        self.ca = self.pki_dir / "ca.crt"
        self.state_file = self.run_dir / STATE_NAME
        self._record = RECORDS / f"{self.netns}.json"
        self.containerd_socket = self.run_dir / "containerd" / "containerd.sock"
        self.apiserver_port = 0
        self.registry_host_port = 0
        self.registry_password = ""
        self.server = ""
        self.ready_seconds: float | None = None
        self._processes: list[_Process] = []
        self._ssl: ssl.SSLContext | None = None
        self._detach = False
        self.teardown_errors: list[str] = []

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout: float = 180.0, detach: bool = False) -> "RealNodeCluster":
        reason = unavailable_reason(self.bin_dir, self.node_bin_dir)
        if reason:
            raise NodeUnavailable(reason)
        if len(str(self.run_dir).encode()) > MAX_RUN_DIR:
            raise ControlPlaneError(f"run dir {self.run_dir} is longer than {MAX_RUN_DIR} bytes: kubelet's "
                                    "unix sockets there would not fit; use a shorter path")
        started = time.monotonic()
        deadline = started + timeout
        self._detach = detach
        sweep_stale()
        if self.state_file.exists() or self.netns_path.exists():
            RealNodeCluster.attach(self.run_dir).stop()  # what an earlier run left
        if not detach:
            atexit.register(self.stop)
        RECORDS.mkdir(exist_ok=True)
        if not _live_records(exclude=self._record) and not HOST_BEFORE.exists():
            HOST_BEFORE.write_text(json.dumps({str(p): p.exists() for p in HOST_PATHS}))
        self._record.write_text(json.dumps({"run_dir": str(self.run_dir), "owner": os.getpid(),
                                            "owner_start": _start_time(os.getpid()), "detached": detach}))
        try:
            self._phase("prepare", self._prepare)
            self._phase("netns", self._create_netns)
            self._write_state()
            self._phase("etcd+apiserver", lambda: self._start_control_plane(deadline))
            self._phase("containerd", lambda: self._start_containerd(deadline))
            self._phase("kubelet", lambda: self._start_kubelet(deadline))
            self._phase("kube-proxy+coredns", lambda: self._start_proxy_and_dns(deadline))
            self._phase("kube-router", lambda: self._start_network_policy(deadline))
            self._phase("registry", lambda: self._start_registry(deadline))
            self._wait(deadline, "service account default/default", self._default_service_account)
        except BaseException:
            self.stop()
            raise
        self.ready_seconds = time.monotonic() - started
        self._write_state()
        return self

    def _phase(self, name: str, fn) -> None:
        t = time.monotonic()
        fn()
        self.timings[name] = round(time.monotonic() - t, 2)

    def stop(self) -> list[str]:
        """Tear everything down; return what is still there (empty when clean).

        Every step runs even when an earlier one failed; a failure shows in
        what is left (and in ``teardown_errors``)."""
        try:
            atexit.unregister(self.stop)
        except Exception:
            pass
        self.teardown_errors = []
        by_name = {p.name: p for p in self._processes}
        # the node first, so nothing restarts containers while they go
        for name in ("registry", "coredns", "kube-router", "kube-proxy", "kubelet"):
            if name in by_name:
                self._step(_terminate_group, by_name[name], 10)
        # then the containers: SIGKILL to every process in the pods' cgroups
        # (asking containerd task by task takes seconds per pod), and the
        # shims, which outlive containerd by design
        self._step(self._kill_cgroup_processes)
        sockets = self._step(self._shim_sockets) or set()
        self._step(self._kill_shims)
        for proc in reversed(self._processes):
            self._step(_terminate_group, proc, 10)
        self._processes = []
        self._step(self._kill_cgroup_processes)
        self._step(self._kill_shims)
        for path in sockets:
            self._step(Path(path).unlink, missing_ok=True)
        self._step(self._unmount_all)
        for hierarchy in _cgroup_hierarchies():
            self._step(_rmdir_tree, hierarchy / self.cgroup_root.lstrip("/"))
        if self.netns_path.exists():
            self._step(_run, ["ip", "netns", "delete", self.netns], check=False)
        self._step(self._remove_cni_cache)
        self._step(self._remove_container_log_links)
        if self.state_file.exists():
            self._step(self.state_file.unlink)
        # what containerd started while going (shim "delete" calls) goes by itself
        self._step(_wait_gone, self._our_processes(), 10)
        last = not _live_records(exclude=self._record)
        if last:
            self._step(self._remove_host_paths)
        left = self.leftovers(last=last)
        if not left:
            self._record.unlink(missing_ok=True)
            if last and RECORDS.is_dir() and not any(RECORDS.iterdir()):
                RECORDS.rmdir()
        return left + [f"teardown error: {e}" for e in self.teardown_errors]

    def _our_processes(self) -> list[int]:
        """Processes whose command line names run_dir, but this one and its
        ancestors (``make cluster-down DIR=...`` names it too)."""
        run, sock = str(self.run_dir), str(self.containerd_socket)
        pids = _procs_whose(lambda argv: any(run in a or sock in a for a in argv))
        mine = _ancestors(os.getpid())
        return [p for p in pids if p not in mine and _alive(p)]

    def _container_log_links(self) -> list[Path]:
        """kubelet's links in /var/log/containers (not configurable) to this node's pod logs."""
        links = []
        for link in CONTAINER_LOGS.glob("*.log") if CONTAINER_LOGS.is_dir() else []:
            try:
                if link.is_symlink() and os.readlink(link).startswith(f"{self.run_dir}/"):
                    links.append(link)
            except OSError:
                pass
        return links

    def _remove_container_log_links(self) -> None:
        for link in self._container_log_links():
            link.unlink(missing_ok=True)

    def _host_paths_left(self) -> list[Path]:
        try:
            before = json.loads(HOST_BEFORE.read_text())
        except (OSError, ValueError):
            return []
        return [p for p in HOST_PATHS if not before.get(str(p), True) and (p.exists() or p.is_symlink())]

    def _remove_host_paths(self) -> None:
        """The last cluster removes what the first one made outside its folder (when empty)."""
        for path in self._host_paths_left():
            try:
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()  # only when empty: another user of it keeps it
                elif path.is_socket():
                    path.unlink()
            except OSError:
                pass
        if not self._host_paths_left():
            HOST_BEFORE.unlink(missing_ok=True)

    def _step(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # keep tearing down; reported by stop()
            self.teardown_errors.append(f"{getattr(fn, '__name__', fn)}: {exc!r}")
            return None

    def _unmount_all(self) -> None:
        """Lazily unmount everything under run_dir, deepest first (pod
        volumes, container root file systems, pod network namespaces, and
        kubelet's bind mount of its own root dir)."""
        run = str(self.run_dir)
        for _ in range(3):
            points = sorted({m for m in _mounts() if m == run or m.startswith(f"{run}/")}, key=len, reverse=True)
            if not points:
                return
            for point in points:
                _umount_lazy(point)

    def leftovers(self, last: bool = False) -> list[str]:
        """Processes, mounts, namespace, cgroups or files of this cluster that
        still exist (with ``last``, also the shared host paths the first cluster made)."""
        found = []
        run = str(self.run_dir)
        pids = self._our_processes()
        if pids:
            found.append(f"processes {[(pid, _argv(pid)[:4]) for pid in pids]}")
        mounts = [m for m in _mounts() if m == run or m.startswith(run + "/")]
        if mounts:
            found.append(f"mounts {mounts[:5]}{' ...' if len(mounts) > 5 else ''}")
        if self.netns_path.exists() or self.netns in _run(["ip", "netns", "list"], check=False).stdout.split():
            found.append(f"network namespace {self.netns}")
        cgroups = [str(h / self.cgroup_root.lstrip("/")) for h in _cgroup_hierarchies()
                   if (h / self.cgroup_root.lstrip("/")).exists()]
        if cgroups:
            found.append(f"cgroups {cgroups}")
        cni = [str(p) for p in self._cni_cache_files()]
        if cni:
            found.append(f"CNI cache files {cni}")
        links = [str(p) for p in self._container_log_links()]
        if links:
            found.append(f"container log links {links}")
        # kube-router runs in the namespace: its chains must never be the host's
        host_chains = [line.split()[0][1:] for line in _run(["iptables-save", "-t", "filter"], check=False).stdout
                       .splitlines() if line.startswith((":KUBE-ROUTER-", ":KUBE-NWPLCY-", ":KUBE-POD-FW-"))]
        if host_chains:
            found.append(f"host iptables chains {host_chains}")
        host = [str(p) for p in self._host_paths_left()] if last else []
        if host:
            found.append(f"host paths {host}")
        return found

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- public helpers ----------------------------------------------------

    def env(self) -> dict[str, str]:
        """Environment for kubectl/helm on the host: this cluster's kubeconfig, helm state in run_dir."""
        env = dict(os.environ)
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            HELM_CACHE_HOME=str(self.run_dir / "helm" / "cache"),
            HELM_CONFIG_HOME=str(self.run_dir / "helm" / "config"),
            HELM_DATA_HOME=str(self.run_dir / "helm" / "data"),
            PATH=f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        for key in list(env):
            if key.lower().endswith("_proxy"):
                del env[key]
        return env

    def run(self, binary: str, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(self.bin_dir / binary), *args], input=input, capture_output=True, text=True,
                              env=self.env(), timeout=timeout)
        if check and proc.returncode != 0:
            raise ControlPlaneError(
                f"{binary} {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def kubectl(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run("kubectl", *args, **kwargs)

    def helm(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run("helm", *args, **kwargs)

    def api(self, method: str, path: str, body: dict | None = None,
            content_type: str = "application/json") -> tuple[int, dict]:
        """One request as the admin (through the relay); returns (status, decoded JSON body or {})."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.apiserver_port, context=self._ssl_context(), timeout=10)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=payload, headers={"Content-Type": content_type})
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw) if raw else {}
        except ValueError:
            return resp.status, {"raw": raw.decode(errors="replace")}

    def apply(self, obj: dict) -> None:
        """Create or replace one object (server-side apply as field manager karvdash-node)."""
        self.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=karvdash-node", "-f", "-",
                     input=json.dumps(obj))

    def in_netns(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` in a thread inside the cluster's network namespace."""
        return in_netns(self.netns_path, fn, *args, **kwargs)

    def netns_http_get(self, url: str, timeout: float = 5.0,
                       context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
        """GET from inside the namespace (ClusterIPs, pod IPs, the node IP); (status, body)."""
        import urllib.parse

        parts = urllib.parse.urlsplit(url)

        def get():
            cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            kwargs = {"context": context} if parts.scheme == "https" else {}
            conn = cls(parts.hostname, parts.port, timeout=timeout, **kwargs)
            try:
                conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else "") or "/")
                resp = conn.getresponse()
                return resp.status, resp.read()
            finally:
                conn.close()

        return self.in_netns(get)

    def exec_in_netns(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a command in the namespace (``nsenter --net``)."""
        return _run(["nsenter", f"--net={self.netns_path}", "--", *argv], check=check, timeout=timeout)

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def log_names(self) -> list[str]:
        return sorted(p.stem for p in self.log_dir.glob("*.log"))

    # registry and images

    @property
    def registry_ca(self) -> Path:
        """The registry's CA certificate, alone in its folder (skopeo's --cert-dir takes a folder)."""
        return self.pki_dir / "registry-ca" / "ca.crt"

    def push_image(self, archive: str | Path, name: str) -> str:
        """Copy an OCI archive (``oci-archive:`` path) into the cluster's
        registry as NAME[:TAG]; return the reference pods use."""
        ref = f"{REGISTRY}/{name}"
        _run(["skopeo", "copy", "--quiet", "--dest-cert-dir", str(self.registry_ca.parent),
              "--dest-creds", f"{REGISTRY_USER}:{self.registry_password}",
              f"oci-archive:{archive}", f"docker://127.0.0.1:{self.registry_host_port}/{name}"], timeout=600)
        return ref

    def pull_secret(self, namespace: str, name: str = "karvdash-node-registry") -> str:
        """A kubernetes.io/dockerconfigjson Secret for the registry in ``namespace``; returns its name."""
        auth = _b64(f"{REGISTRY_USER}:{self.registry_password}".encode())
        config = {"auths": {REGISTRY: {"username": REGISTRY_USER, "password": self.registry_password, "auth": auth}}}
        self.apply({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": name, "namespace": namespace},
            "data": {".dockerconfigjson": _b64(json.dumps(config).encode())},
        })
        return name

    def memory(self) -> dict[str, float]:
        """Resident memory in MiB: each process of the harness, and the pods' cgroup."""
        out = {}
        for proc in self._processes:
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out[proc.name] = round(int(line.split()[1]) / 1024, 1)
            except OSError:
                pass
        usage = CGROUP_FS / "memory" / self.cgroup_root.lstrip("/") / "memory.usage_in_bytes"
        stat = usage.with_name("memory.stat")
        if stat.exists():
            values = dict(line.split() for line in stat.read_text().splitlines())
            out["pods (rss+cache)"] = round((int(values.get("total_rss", 0)) + int(values.get("total_cache", 0)))
                                            / 2**20, 1)
            out["pods (rss)"] = round(int(values.get("total_rss", 0)) / 2**20, 1)
        shims = _procs_whose(lambda argv: "containerd-shim-runc-v2" in argv[0] and str(self.containerd_socket) in argv)
        rss = 0
        for pid in shims:
            try:
                rss += next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                            if line.startswith("VmRSS:"))
            except (OSError, StopIteration):
                pass
        out["shims"] = round(rss / 1024, 1)
        return out

    # -- start-up steps ----------------------------------------------------

    def _prepare(self) -> None:
        for sub in ("pki", "logs", "etcd", "containerd", "kubelet", "cni", "coredns", "registry", "kube-proxy",
                    "kube-router"):
            path = self.run_dir / sub
            if path.exists():
                shutil.rmtree(path)
        self.log_dir.mkdir(parents=True)
        self.apiserver_port = free_port()
        self.registry_host_port = free_port()
        self.server = f"https://127.0.0.1:{self.apiserver_port}"
        p = self.pki_dir
        ca = CertificateAuthority("karvdash-hub real-node CA")
        ca.key_pair.write(p, "ca")
        ca.issue("kube-apiserver",
                 dns_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                            f"kubernetes.default.svc.{CLUSTER_DOMAIN}"),
                 ip_addresses=("127.0.0.1", NODE_IP, KUBERNETES_SERVICE_IP), server=True).write(p, "apiserver")
        ca.issue("kube-components", dns_names=("localhost",), ip_addresses=("127.0.0.1",),
                 server=True).write(p, "components")
        ca.issue("kube-apiserver-kubelet-client", organizations=("system:masters",), client=True).write(
            p, "apiserver-kubelet-client")
        ca.issue(self.node_name, dns_names=(self.node_name, "localhost"), ip_addresses=(NODE_IP, "127.0.0.1"),
                 server=True).write(p, "kubelet-serving")
        clients = {
            "admin": ca.issue("kubernetes-admin", organizations=("system:masters",), client=True),
            "kubelet": ca.issue(f"system:node:{self.node_name}", organizations=("system:nodes",), client=True),
            "kube-proxy": ca.issue("system:kube-proxy", client=True),
            "coredns": ca.issue("system:coredns", client=True),
            "kube-router": ca.issue("system:kube-router", client=True),
        }
        for name, pair in clients.items():
            pair.write(p, name)
        sa_private, sa_public = service_account_key()
        (p / "sa.key").write_bytes(sa_private)
        (p / "sa.pub").write_bytes(sa_public)
        for name, pair in clients.items():
            path = self.kubeconfig if name == "admin" else self.run_dir / f"{name}.kubeconfig"
            path.write_text(json.dumps({
                "apiVersion": "v1", "kind": "Config",
                "clusters": [{"name": "karvdash-node", "cluster": {
                    "server": self.server, "certificate-authority-data": _b64(ca.cert_pem)}}],
                "users": [{"name": name, "user": {
                    "client-certificate-data": _b64(pair.cert_pem), "client-key-data": _b64(pair.key_pem)}}],
                "contexts": [{"name": "karvdash-node", "context": {"cluster": "karvdash-node", "user": name}}],
                "current-context": "karvdash-node",
            }, indent=2))
            path.chmod(0o600)
        # the registry's own CA, as a registry out there would have
        reg_ca = CertificateAuthority("karvdash-hub real-node registry CA")
        self.registry_ca.parent.mkdir(parents=True)
        self.registry_ca.write_bytes(reg_ca.cert_pem)
        reg_ca.issue(REGISTRY, ip_addresses=(NODE_IP, "127.0.0.1"), server=True).write(p / "registry", "registry")
        self._ssl = None

    def _create_netns(self) -> None:
        _run(["ip", "netns", "add", self.netns])
        ns = ["ip", "-n", self.netns]
        _run([*ns, "link", "set", "lo", "up"])
        # a veth pair with both ends inside: an interface for the node IP
        # (kubelet wants a non-loopback one), and nothing outside
        _run([*ns, "link", "add", "kd-node", "type", "veth", "peer", "name", "kd-peer"])
        _run([*ns, "addr", "add", f"{NODE_IP}/32", "dev", "kd-node"])
        _run([*ns, "link", "set", "kd-node", "up"])
        _run([*ns, "link", "set", "kd-peer", "up"])
        # ClusterIPs from processes of the namespace (the apiserver calling
        # webhooks, tests): routed to the veth, DNATed by kube-proxy's rules
        _run([*ns, "route", "add", SERVICE_CIDR, "dev", "kd-node", "src", NODE_IP])
        for key, value in (("net.ipv4.ip_forward", "1"), ("net.bridge.bridge-nf-call-iptables", "1"),
                           ("net.ipv4.conf.all.route_localnet", "1")):
            self.exec_in_netns("sysctl", "-q", "-w", f"{key}={value}")
        for hierarchy in _cgroup_hierarchies():
            cg = hierarchy / self.cgroup_root.lstrip("/")
            cg.mkdir(exist_ok=True)
            if (hierarchy / "cpuset.cpus").exists():
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (cg / f).write_text((hierarchy / f).read_text())

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
               in_netns: bool = True) -> _Process:
        log = self.log_dir / f"{name}.log"
        full = ["nsenter", f"--net={self.netns_path}", "--", *argv] if in_netns else argv
        with open(log, "ab") as out:
            out.write(("$ " + " ".join(argv) + "\n").encode())
            out.flush()
            popen = subprocess.Popen(
                full, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=cwd or self.run_dir,
                start_new_session=True, env=env or self._component_env(),
                preexec_fn=None if self._detach else die_with_parent,
            )
        proc = _Process(name, argv, log, popen, popen.pid)
        self._processes.append(proc)
        return proc

    def _component_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env["HOME"] = str(self.run_dir)
        env.pop("KUBECONFIG", None)
        env["PATH"] = f"{self.node_bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        return env

    def _start_control_plane(self, deadline: float) -> None:
        p = self.pki_dir
        b = self.bin_dir
        # the relay first: readiness checks go through it
        # (it listens here and joins the namespace itself: no nsenter)
        self._spawn("nsrelay", [sys.executable, str(NSRELAY), f"--netns={self.netns_path}",
                                f"127.0.0.1:{self.apiserver_port}=127.0.0.1:{self.apiserver_port}",
                                f"127.0.0.1:{self.registry_host_port}={REGISTRY}"], in_netns=False)
        self._spawn("etcd", [
            str(b / "etcd"), "--name=default", f"--data-dir={self.run_dir / 'etcd'}",
            "--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
            "--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
            "--initial-cluster=default=http://127.0.0.1:2380", "--listen-metrics-urls=",
            "--unsafe-no-fsync", "--log-level=warn",
        ])
        self._wait(deadline, "etcd /health", lambda: self._netns_ok("http://127.0.0.1:2379/health"))
        self._spawn("kube-apiserver", [
            str(b / "kube-apiserver"),
            "--etcd-servers=http://127.0.0.1:2379",
            # inside the namespace: lo, the node IP and the bridge, nothing else
            "--bind-address=0.0.0.0",
            f"--advertise-address={NODE_IP}",
            f"--secure-port={self.apiserver_port}",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={p / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--allow-privileged=true",
            f"--cert-dir={self.run_dir / 'apiserver-certs'}",
            "--profiling=false",
            f"--v={self.verbosity}",
        ])
        self._wait(deadline, "kube-apiserver /readyz", self._apiserver_ready)
        common = ["--leader-elect=false", "--bind-address=127.0.0.1", f"--tls-cert-file={p / 'components.crt'}",
                  f"--tls-private-key-file={p / 'components.key'}", "--profiling=false", f"--v={self.verbosity}",
                  f"--kubeconfig={self.kubeconfig}"]
        self._spawn("kube-controller-manager", [
            str(b / "kube-controller-manager"), *common,
            f"--service-account-private-key-file={p / 'sa.key'}",
            f"--root-ca-file={p / 'ca.crt'}",
            f"--cluster-signing-cert-file={p / 'ca.crt'}",
            f"--cluster-signing-key-file={p / 'ca.key'}",
            "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
        ])
        self._spawn("kube-scheduler", [str(b / "kube-scheduler"), *common])

    def _start_containerd(self, deadline: float) -> None:
        c = self.run_dir / "containerd"
        cni = self.run_dir / "cni"
        (cni / "net.d").mkdir(parents=True)
        (cni / "ipam").mkdir()
        (cni / "net.d" / "10-karvdash-node.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0",
            "name": self.cni_network,
            "plugins": [
                {"type": "bridge", "bridge": "kd-cni0", "isGateway": True, "ipMasq": False, "hairpinMode": True,
                 "ipam": {"type": "host-local", "dataDir": str(cni / "ipam"),
                          "ranges": [[{"subnet": POD_CIDR, "gateway": POD_GATEWAY}]],
                          "routes": [{"dst": "0.0.0.0/0"}]}},
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }, indent=2))
        hosts = c / "certs.d" / REGISTRY
        hosts.mkdir(parents=True)
        (hosts / "hosts.toml").write_text(f'server = "https://{REGISTRY}"\nca = "{self.registry_ca}"\n')
        pause_ref = (self.node_bin_dir / "pause-image.ref").read_text().strip()
        config = f"""version = 3
root = "{c / 'root'}"
state = "{c / 'state'}"
# containerd's own default would be -999, which needs CAP_SYS_RESOURCE
oom_score = 0

[grpc]
  address = "{self.containerd_socket}"

[ttrpc]
  address = "{self.containerd_socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = "{c / 'opt'}"
  [plugins.'io.containerd.nri.v1.nri']
    disable = true
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = "{pause_ref}"
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = "{c / 'certs.d'}"
  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
    # no CAP_SYS_RESOURCE here: runc cannot lower oom_score_adj below ours
    restrict_oom_score_adj = true
    disable_apparmor = true
    # pod network namespaces under our state dir, not /run/netns
    netns_mounts_under_state_dir = true
    cdi_spec_dirs = []
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = "{RUNC}"
          SystemdCgroup = false
          Root = "{c / 'runc'}"
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ["{CNI_BIN_DIR}"]
      conf_dir = "{cni / 'net.d'}"
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
"""
        (c / "config.toml").write_text(config)
        self._spawn("containerd", [str(self.node_bin_dir / "containerd"), f"--config={c / 'config.toml'}",
                                   "--log-level=warn"])
        self._wait(deadline, "containerd socket", lambda: self.containerd_socket.exists() and self._ctr_ok())
        self.ctr("images", "import", "--local", str(self.node_bin_dir / "pause-image.tar"))

    def ctr(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """ctr against this node's containerd, namespace k8s.io (the CRI's)."""
        return _run([str(self.node_bin_dir / "ctr"), f"--address={self.containerd_socket}", "--namespace=k8s.io",
                     *args], check=check, timeout=timeout)

    def _ctr_ok(self) -> bool:
        return self.ctr("version", check=False, timeout=10).returncode == 0

    def _start_kubelet(self, deadline: float) -> None:
        k = self.run_dir / "kubelet"
        p = self.pki_dir
        (k / "root").mkdir(parents=True)
        (k / "pod-logs").mkdir()
        # pods get the cluster DNS, and nothing of the host's resolver
        (k / "resolv.conf").write_text(f"nameserver {DNS_SERVICE_IP}\n")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": NODE_IP,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                               "x509": {"clientCAFile": str(p / "ca.crt")}},
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(p / "kubelet-serving.crt"),
            "tlsPrivateKeyFile": str(p / "kubelet-serving.key"),
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": self.cgroup_root,
            "cgroupsPerQOS": True,
            "enforceNodeAllocatable": ["pods"],
            # the machines run cgroup v1 ("hybrid"); 1.35 would refuse it by default
            "failCgroupV1": False,
            "failSwapOn": False,
            # -999 needs CAP_SYS_RESOURCE, which the machines do not give
            "oomScoreAdj": 0,
            "clusterDomain": CLUSTER_DOMAIN,
            "clusterDNS": [DNS_SERVICE_IP],
            "resolvConf": str(k / "resolv.conf"),
            "podLogsDir": str(k / "pod-logs"),
            # a shared disk: do not evict or collect because of others' files
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "nodefs.inodesFree": "1%",
                             "imagefs.available": "1%", "imagefs.inodesFree": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "maxPods": 110,
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "registerNode": True,
            "shutdownGracePeriod": "0s",
            "containerLogMaxSize": "10Mi",
            "nodeStatusUpdateFrequency": "5s",
            # the default (Watch) gives a new pod's secrets 1 s to sync, which
            # a loaded 2-core machine misses: the first image pull then goes
            # without the pull secret and backs off for 10-30 s
            "configMapAndSecretChangeDetectionStrategy": "Cache",
        }
        (k / "config.yaml").write_text(json.dumps(config, indent=2))
        self._spawn("kubelet", [
            str(self.node_bin_dir / "kubelet"),
            f"--config={k / 'config.yaml'}",
            f"--kubeconfig={self.run_dir / 'kubelet.kubeconfig'}",
            f"--root-dir={k / 'root'}",
            f"--cert-dir={k / 'pki'}",
            f"--hostname-override={self.node_name}",
            f"--node-ip={NODE_IP}",
            f"--v={self.verbosity}",
        ])
        self._wait(deadline, f"node {self.node_name} Ready", self._node_ready)

    def _start_proxy_and_dns(self, deadline: float) -> None:
        kp = self.run_dir / "kube-proxy"
        kp.mkdir()
        (kp / "config.yaml").write_text(json.dumps({
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.run_dir / "kube-proxy.kubeconfig")},
            "hostnameOverride": self.node_name,
            "mode": "iptables",
            "clusterCIDR": POD_CIDR,
            "bindAddress": NODE_IP,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            "nodePortAddresses": [f"{NODE_IP}/32"],
            # conntrack sysctls are the machine's (not per namespace): leave them
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
            "iptables": {"syncPeriod": "30s", "minSyncPeriod": "0s"},
        }, indent=2))
        self._spawn("kube-proxy", [str(self.node_bin_dir / "kube-proxy"), f"--config={kp / 'config.yaml'}",
                                   f"--v={self.verbosity}"])
        # CoreDNS as a process on the node IP, behind the usual kube-dns Service
        self.apply({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "karvdash-node:coredns"},
            "rules": [{"apiGroups": [""], "resources": ["services", "pods", "namespaces"],
                       "verbs": ["list", "watch"]},
                      {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                       "verbs": ["list", "watch"]}],
        })
        self.apply({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "karvdash-node:coredns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "karvdash-node:coredns"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:coredns"}],
        })
        self.apply({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system",
                         "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}},
            "spec": {"clusterIP": DNS_SERVICE_IP, "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]},
        })
        self.apply({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kube-dns-node", "namespace": "kube-system",
                         "labels": {"kubernetes.io/service-name": "kube-dns",
                                    "endpointslice.kubernetes.io/managed-by": "karvdash-node"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}, "nodeName": self.node_name}],
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                      {"name": "dns-tcp", "port": 53, "protocol": "TCP"}],
        })
        d = self.run_dir / "coredns"
        d.mkdir()
        (d / "Corefile").write_text(f""".:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {self.run_dir / 'coredns.kubeconfig'}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    # no forward: there is no upstream, nothing leaves the namespace
    cache 5
    loadbalance
}}
""")
        self._spawn("coredns", [str(self.node_bin_dir / "coredns"), "-conf", str(d / "Corefile")], cwd=d)
        self._wait(deadline, "kube-proxy /healthz", lambda: self._netns_ok("http://127.0.0.1:10256/healthz"))
        self._wait(deadline, "CoreDNS /ready", lambda: self._netns_ok("http://127.0.0.1:18181/ready"))
        self._wait(deadline, "kube-dns Service rules", self._dns_answers)

    def _start_network_policy(self, deadline: float) -> None:
        """kube-router's network policy controller alone, after kube-proxy: the
        CNI bridge lets every pod reach every other one whatever the
        NetworkPolicies say. Its chains (KUBE-ROUTER-*, KUBE-NWPLCY-*, KUBE-POD-FW-*)
        and ipsets are the namespace's, like kube-proxy's rules."""
        self.apply({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "karvdash-node:kube-router"},
            "rules": [{"apiGroups": [""], "resources": ["namespaces", "pods", "services", "nodes", "endpoints"],
                       "verbs": ["get", "list", "watch"]},
                      {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
                       "verbs": ["get", "list", "watch"]},
                      {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                       "verbs": ["get", "list", "watch"]}],
        })
        self.apply({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "karvdash-node:kube-router"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "karvdash-node:kube-router"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:kube-router"}],
        })
        d = self.run_dir / "kube-router"
        d.mkdir()
        self._spawn("kube-router", [
            str(self.node_bin_dir / "kube-router"), f"--kubeconfig={self.run_dir / 'kube-router.kubeconfig'}",
            f"--hostname-override={self.node_name}", "--run-firewall=true", "--run-router=false",
            "--run-service-proxy=false", f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--health-port={KUBE_ROUTER_HEALTH_PORT}", "--metrics-port=0", f"--v={self.verbosity}",
        ], cwd=d)
        self._wait(deadline, "kube-router /healthz",
                   lambda: self._netns_ok(f"http://127.0.0.1:{KUBE_ROUTER_HEALTH_PORT}/healthz"))
        self._wait(deadline, "kube-router's policy chains", self._policy_chains_programmed)

    def _policy_chains_programmed(self) -> bool:
        save = self.exec_in_netns("iptables-save", "-t", "filter", check=False).stdout
        return "-j KUBE-ROUTER-FORWARD" in save

    def _start_registry(self, deadline: float) -> None:
        r = self.run_dir / "registry"
        (r / "storage").mkdir(parents=True)
        import bcrypt

        self.registry_password = secrets.token_urlsafe(12)
        (r / "htpasswd").write_text(
            f"{REGISTRY_USER}:{bcrypt.hashpw(self.registry_password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n")
        reg = self.pki_dir / "registry"
        (r / "config.yml").write_text(json.dumps({
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(r / "storage")}, "delete": {"enabled": True}},
            "http": {"addr": REGISTRY, "secret": secrets.token_hex(16),
                     "tls": {"certificate": str(reg / "registry.crt"), "key": str(reg / "registry.key")}},
            "auth": {"htpasswd": {"realm": "karvdash-node", "path": str(r / "htpasswd")}},
        }, indent=2))
        self._spawn("registry", [shutil.which("docker-registry"), "serve", str(r / "config.yml")])
        ctx = ssl.create_default_context(cafile=str(self.registry_ca))
        self._wait(deadline, "registry /v2/", lambda: self.netns_http_get(
            f"https://{REGISTRY}/v2/", context=ctx)[0] == 401)

    # -- readiness checks --------------------------------------------------

    def _netns_ok(self, url: str) -> bool:
        try:
            return self.netns_http_get(url, timeout=2)[0] == 200
        except OSError:
            return False

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

    def dns_query(self, name: str, server: str = DNS_SERVICE_IP, timeout: float = 2.0) -> list[str]:
        """A records of ``name`` from ``server`` (default: the kube-dns ClusterIP), asked from inside."""
        import struct

        qid = secrets.randbelow(65536)
        question = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
        packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)

        def ask():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(timeout)
                s.sendto(packet, (server, 53))
                return s.recv(4096)

        reply = self.in_netns(ask)
        rid, flags, qd, an = struct.unpack(">HHHH", reply[:8])
        if rid != qid or flags & 0x000F:
            return []
        pos = 12 + len(question) + 4
        addresses = []
        for _ in range(an):
            if reply[pos] & 0xC0 == 0xC0:
                pos += 2
            else:
                while reply[pos]:
                    pos += reply[pos] + 1
                pos += 1
            rtype, _, _, length = struct.unpack(">HHIH", reply[pos:pos + 10])
            pos += 10
            if rtype == 1 and length == 4:
                addresses.append(socket.inet_ntoa(reply[pos:pos + 4]))
            pos += length
        return addresses

    def _dns_answers(self) -> bool:
        try:
            return self.dns_query(f"kubernetes.default.svc.{CLUSTER_DOMAIN}") == [KUBERNETES_SERVICE_IP]
        except OSError:
            return False

    def _wait(self, deadline: float, what: str, check) -> None:
        while True:
            for proc in self._processes:
                if proc.popen is not None and proc.popen.poll() is not None:
                    raise ControlPlaneError(
                        f"{proc.name} exited with {proc.popen.returncode} while waiting for {what}; "
                        f"last lines of {proc.log}:\n{self.log_tail(proc.name)}")
            try:
                if check():
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"timed out waiting for {what}; logs in {self.log_dir}")
            time.sleep(0.2)

    # -- teardown steps ----------------------------------------------------

    def _shim_pids(self) -> list[int]:
        sock = str(self.containerd_socket)
        return _procs_whose(lambda argv: os.path.basename(argv[0]) == "containerd-shim-runc-v2"
                            and any(sock in a for a in argv))

    def _shim_sockets(self) -> set[str]:
        """The sockets of this containerd's shims (in /run/containerd/s, whatever the state dir)."""
        sockets = set()
        state = self.run_dir / "containerd" / "state" / "io.containerd.runtime.v2.task"
        for f in list(state.glob("*/*/bootstrap.json")) + list(state.glob("*/*/address")):
            try:
                text = f.read_text()
                address = json.loads(text).get("address", "") if f.name == "bootstrap.json" else text
            except (OSError, ValueError):
                continue
            path = address.strip().removeprefix("unix://")
            if path.startswith("/run/containerd/s/"):
                sockets.add(path)
        return sockets

    def _kill_shims(self) -> None:
        pids = self._shim_pids()
        _kill_pids(pids, signal.SIGKILL)
        _wait_gone(pids, 10)

    def _kill_cgroup_processes(self) -> None:
        for _ in range(3):
            pids = []
            for hierarchy in _cgroup_hierarchies():
                cg = hierarchy / self.cgroup_root.lstrip("/")
                if cg.exists():
                    pids += _cgroup_pids(cg)
            pids = sorted(set(pids) - {os.getpid()})
            if not pids:
                return
            _kill_pids(pids, signal.SIGKILL)
            _wait_gone(pids, 5)

    def _cni_cache_files(self) -> list[Path]:
        """libcni's cache entries (in /var/lib/cni whatever the config says) of
        this node's pods: they name their network namespace, which is under run_dir."""
        found = []
        results = CNI_CACHE / "results"
        for path in results.glob("*") if results.is_dir() else []:
            try:
                netns = json.loads(path.read_text()).get("netns", "")
            except (OSError, ValueError):
                continue
            if netns.startswith(f"{self.run_dir}/") or path.name.startswith(f"{self.cni_network}-"):
                found.append(path)
        networks = CNI_CACHE / "networks" / self.cni_network
        return found + ([networks] if networks.exists() else [])

    def _remove_cni_cache(self) -> None:
        for path in self._cni_cache_files():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    # -- state for `down` from another process -----------------------------

    def _write_state(self) -> None:
        self.state_file.write_text(json.dumps({
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "bin_dir": str(self.bin_dir),
            "node_bin_dir": str(self.node_bin_dir),
            "apiserver_port": self.apiserver_port,
            "registry_host_port": self.registry_host_port,
            "registry_password": self.registry_password,
            "ready_seconds": self.ready_seconds,
            "timings": self.timings,
            "processes": [{"name": p.name, "pid": p.pid, "argv": p.argv, "log": str(p.log)}
                          for p in self._processes],
        }, indent=2))
        self.state_file.chmod(0o600)

    @classmethod
    def attach(cls, run_dir: Path) -> "RealNodeCluster":
        """The cluster recorded in run_dir (started by ``up``), or an empty one to clean up after."""
        cluster = cls(run_dir)
        if cluster.state_file.exists():
            state = json.loads(cluster.state_file.read_text())
            cluster.bin_dir = Path(state["bin_dir"])
            cluster.node_bin_dir = Path(state["node_bin_dir"])
            cluster.server = state["server"]
            cluster.apiserver_port = state["apiserver_port"]
            cluster.registry_host_port = state["registry_host_port"]
            cluster.registry_password = state["registry_password"]
            cluster.ready_seconds = state.get("ready_seconds")
            cluster.timings = state.get("timings", {})
            cluster._processes = [_Process(p["name"], p["argv"], Path(p["log"]), None, p["pid"])
                                  for p in state["processes"]]
        return cluster

    def running(self) -> list[str]:
        return [p.name for p in self._processes if _is_ours(p)]


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kube.realnode", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status", "push", "sweep"))
    parser.add_argument("args", nargs="*", help="push: ARCHIVE NAME[:TAG]")
    parser.add_argument("--dir", default=".cluster", type=Path, help="run directory (default: .cluster)")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_intermixed_args(argv)
    run_dir = args.dir.resolve()
    existing = RealNodeCluster.attach(run_dir) if (run_dir / STATE_NAME).exists() else None

    if args.command == "sweep":
        for path in sweep_stale():
            print(f"removed the cluster a dead test run left in {path}")
        return 0
    if args.command == "status":
        running = existing.running() if existing else []
        print(f"running: {', '.join(running)}" if running else "not running")
        return 0 if running else 1
    if args.command == "down":
        cluster = existing or RealNodeCluster(run_dir)
        left = cluster.stop()
        if left:
            print(f"cluster in {run_dir} stopped, but these are left: {'; '.join(left)}", file=sys.stderr)
            return 1
        print(f"cluster in {run_dir} stopped" if existing else f"no real-node cluster recorded in {run_dir}")
        return 0
    if args.command == "push":
        if existing is None or not existing.running():
            print(f"no real-node cluster running in {run_dir}: make cluster NODE=real", file=sys.stderr)
            return 1
        if len(args.args) != 2:
            parser.error("push needs ARCHIVE NAME[:TAG]")
        print(existing.push_image(args.args[0], args.args[1]))
        return 0

    if existing is not None and existing.running():
        print(f"already running: export KUBECONFIG={existing.kubeconfig}")
        return 0
    cluster = RealNodeCluster(run_dir)
    try:
        cluster.start(timeout=args.timeout, detach=True)
    except NodeUnavailable as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 3
    except ControlPlaneError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    print(f"Kubernetes with a real node ready in {cluster.ready_seconds:.1f} s "
          f"(network namespace {cluster.netns}; logs in {cluster.log_dir})")
    print(f"  export KUBECONFIG={cluster.kubeconfig}")
    print(f"  export PATH={cluster.bin_dir}:$PATH   # kubectl and helm of the same versions")
    print(f"  registry {REGISTRY} (user {REGISTRY_USER}, password in {cluster.state_file}); "
          f"push with: python -m tests.kube.realnode push --dir {args.dir} ARCHIVE NAME:TAG")
    print(f"  inside the namespace: nsenter --net={cluster.netns_path} -- COMMAND")
    print(f"stop it with: make cluster-down  (or python -m tests.kube.realnode down --dir {args.dir})")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
