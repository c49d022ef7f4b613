"""Run pods of the fake node as local processes on their loopback pod IPs.

kwok gives every pod an IP in 127.0.0.0/8 but runs nothing. For pods labelled
``karvdash-hub.test/local-process: "true"`` kwok only assigns the IP and the
Running phase (see kwok-stages.yaml) and :class:`LocalProcessNode` does what
a kubelet would:

- runs the first container's ``command`` + ``args`` (``$(VAR)`` expanded the
  Kubernetes way) with the container's ``env``/``envFrom`` (values, field,
  Secret and ConfigMap references), in its own process group;
- "0.0.0.0" in arguments and env values becomes the pod IP, because for a
  real pod that means "the pod's interfaces", and nothing here may listen on
  every interface of the machine;
- reports the pod Ready once its readiness probe (httpGet or tcpSocket) or,
  without a probe, its first container port accepts connections;
- reports the container terminated (phase Succeeded/Failed) when the process
  exits: containers are not restarted;
- on deletion, sends SIGTERM (SIGKILL after the grace period, at most 10 s)
  and then removes the pod, as the kubelet does.

Images, volumes, resource limits and the pod's PATH and HOME are ignored: the
process runs with this Python's environment (its bin directory first on PATH)
and a scratch directory as working directory and HOME.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.kube.cluster import DEFAULT_NODE_NAME, LOCAL_PROCESS_LABEL, die_with_parent

# what a hub started by a test needs so that the servers it spawns run here:
# this node's label on their pods, and root allowed (the user of the test
# machines; a real image runs as jovyan); generous timeouts on a shared machine
HUB_ARGS = (
    f"--KubeSpawner.extra_labels={LOCAL_PROCESS_LABEL}=true",
    "--KubeSpawner.args=--ServerApp.allow_root=True",
    "--Spawner.http_timeout=60",
    "--Spawner.start_timeout=90",
)

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion: unknown references stay, $$ escapes."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)
    return _VAR_REF.sub(sub, value)


@dataclass
class LocalProcess:
    namespace: str
    name: str
    uid: str
    pod_ip: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen
    ready: threading.Event = field(default_factory=threading.Event)
    deleting: bool = False
    reported: bool = False

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class LocalProcessNode:
    """Plays the kubelet of ``node_name`` for pods carrying LOCAL_PROCESS_LABEL.

    >>> node = LocalProcessNode(api_client, work_dir=tmp_path).start()
    >>> ...  # create pods labelled karvdash-hub.test/local-process=true
    >>> node.stop()  # ends every process it started
    """

    def __init__(self, api_client: client.ApiClient, work_dir: Path, node_name: str = DEFAULT_NODE_NAME,
                 extra_env: dict[str, str] | None = None):
        self.api = client.CoreV1Api(api_client)
        self.work_dir = Path(work_dir)
        self.node_name = node_name
        self.extra_env = dict(extra_env or {})
        self.processes: dict[str, LocalProcess] = {}  # by pod uid
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- public API ----------------------------------------------------------

    def start(self) -> "LocalProcessNode":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._watch_loop, name="local-process-node", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        with self._lock:
            procs = list(self.processes.values())
        for proc in procs:
            _terminate(proc.popen, grace=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def process(self, namespace: str, name: str) -> LocalProcess | None:
        """The newest process started for that pod, if any."""
        with self._lock:
            found = [p for p in self.processes.values() if p.namespace == namespace and p.name == name]
        return found[-1] if found else None

    def wait_for_process(self, namespace: str, name: str, timeout: float = 30) -> LocalProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.process(namespace, name)
            if proc is not None:
                return proc
            time.sleep(0.1)
        raise TimeoutError(f"no process started for pod {namespace}/{name}; errors: {self.errors}")

    # -- watching --------------------------------------------------------------

    def _watch_loop(self) -> None:
        resource_version = None
        while not self._stopping.is_set():
            w = watch.Watch()
            try:
                kwargs = {
                    "field_selector": f"spec.nodeName={self.node_name}",
                    "label_selector": f"{LOCAL_PROCESS_LABEL}=true",
                    "timeout_seconds": 2,
                    "_request_timeout": 10,
                }
                if resource_version:
                    kwargs["resource_version"] = resource_version
                for event in w.stream(self.api.list_pod_for_all_namespaces, **kwargs):
                    pod = event["raw_object"]
                    if event["type"] == "ERROR":  # e.g. 410 Gone: list again
                        resource_version = None
                        break
                    resource_version = pod["metadata"].get("resourceVersion", resource_version)
                    self._handle(event["type"], pod)
                    if self._stopping.is_set():
                        break
            except Exception as exc:  # keep playing the node; record for the tests
                self.errors.append(f"watch: {exc!r}")
                resource_version = None
                time.sleep(0.5)
            finally:
                w.stop()
            self._reap()

    def _handle(self, kind: str, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            proc = self.processes.get(uid)
        if kind == "DELETED":
            if proc is not None:
                _terminate(proc.popen, grace=1)
            return
        if pod["metadata"].get("deletionTimestamp"):
            if proc is not None and not proc.deleting:
                proc.deleting = True
                threading.Thread(target=self._delete, args=(proc, pod), daemon=True).start()
            elif proc is None:
                self._remove_pod(pod)
            return
        status = pod.get("status") or {}
        if proc is None and status.get("phase") == "Running" and status.get("podIP"):
            try:
                self._start(pod)
            except Exception as exc:
                self.errors.append(f"{pod['metadata']['namespace']}/{pod['metadata']['name']}: {exc!r}")
                self._report_failed_start(pod, str(exc))

    def _reap(self) -> None:
        """Report processes that exited by themselves."""
        with self._lock:
            procs = list(self.processes.values())
        for proc in procs:
            if proc.returncode is not None and not proc.deleting and not proc.reported:
                proc.reported = True
                self._report_terminated(proc)

    # -- running a pod ---------------------------------------------------------

    def _start(self, pod: dict) -> None:
        meta, spec, status = pod["metadata"], pod["spec"], pod["status"]
        container = spec["containers"][0]
        pod_ip = status["podIP"]
        env = self._container_env(pod, container)
        argv = [expand(a, env) for a in (container.get("command") or []) + (container.get("args") or [])]
        argv = [a.replace("0.0.0.0", pod_ip) for a in argv]
        if not argv:
            raise ValueError("the container has no command: the image's entrypoint cannot be run locally")
        pod_dir = self.work_dir / meta["namespace"] / f"{meta['name']}-{meta['uid'][:8]}"
        pod_dir.mkdir(parents=True, exist_ok=True)
        bin_dir = os.path.dirname(sys.executable)
        path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        executable = shutil.which(argv[0], path=path) or argv[0]
        full_env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        full_env.pop("KUBECONFIG", None)
        full_env.update(env)
        full_env.update(self.extra_env)
        full_env.update(PATH=path, HOME=str(pod_dir))
        log = pod_dir / "output.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                [executable, *argv[1:]], env=full_env, cwd=pod_dir, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent,
            )
        proc = LocalProcess(meta["namespace"], meta["name"], meta["uid"], pod_ip, argv, env, log, popen)
        with self._lock:
            self.processes[meta["uid"]] = proc
        self._patch_status(proc, self._container_status(pod, container, ready=False, started=True))
        threading.Thread(target=self._probe, args=(proc, pod), daemon=True).start()

    def _container_env(self, pod: dict, container: dict) -> dict[str, str]:
        namespace = pod["metadata"]["namespace"]
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                data = self._config_map(namespace, source["configMapRef"]["name"],
                                        source["configMapRef"].get("optional"))
            else:
                data = self._secret(namespace, source["secretRef"]["name"], source["secretRef"].get("optional"))
            env.update({prefix + k: v for k, v in data.items()})
        for var in container.get("env") or []:
            if "valueFrom" not in var:
                env[var["name"]] = expand(var.get("value", ""), env)
                continue
            ref = var["valueFrom"]
            if "fieldRef" in ref:
                value = _field(pod, ref["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in ref:
                r = ref["secretKeyRef"]
                value = self._secret(namespace, r["name"], r.get("optional")).get(r["key"])
            elif "configMapKeyRef" in ref:
                r = ref["configMapKeyRef"]
                value = self._config_map(namespace, r["name"], r.get("optional")).get(r["key"])
            else:  # resourceFieldRef: no limits are enforced here
                value = "0"
            if value is not None:
                env[var["name"]] = value
        pod_ip = pod["status"]["podIP"]
        return {k: v.replace("0.0.0.0", pod_ip) for k, v in env.items()}

    def _secret(self, namespace: str, name: str, optional: bool | None) -> dict[str, str]:
        try:
            data = _json(self.api.read_namespaced_secret(name, namespace, _preload_content=False)).get("data") or {}
        except ApiException as exc:
            if exc.status == 404 and optional:
                return {}
            raise
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    def _config_map(self, namespace: str, name: str, optional: bool | None) -> dict[str, str]:
        try:
            return _json(self.api.read_namespaced_config_map(name, namespace, _preload_content=False)).get(
                "data") or {}
        except ApiException as exc:
            if exc.status == 404 and optional:
                return {}
            raise

    def _probe(self, proc: LocalProcess, pod: dict) -> None:
        container = pod["spec"]["containers"][0]
        probe = container.get("readinessProbe") or {}
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}

        def port_of(value):
            return ports.get(value, value) if isinstance(value, str) else value

        if "httpGet" in probe:
            get = probe["httpGet"]
            url = f"http://{proc.pod_ip}:{port_of(get['port'])}{get.get('path', '/')}"
            check = lambda: _http_ok(url)  # noqa: E731
        elif "tcpSocket" in probe:
            port = port_of(probe["tcpSocket"]["port"])
            check = lambda: _tcp_ok(proc.pod_ip, port)  # noqa: E731
        elif ports:
            port = next(iter(ports.values()))
            check = lambda: _tcp_ok(proc.pod_ip, port)  # noqa: E731
        else:
            check = lambda: True  # noqa: E731
        while proc.returncode is None and not proc.deleting and not self._stopping.is_set():
            if check():
                proc.ready.set()
                self._patch_status(proc, self._container_status(pod, container, ready=True, started=True))
                return
            time.sleep(0.2)

    # -- status reports --------------------------------------------------------

    def _container_status(self, pod: dict, container: dict, *, ready: bool, started: bool,
                          exit_code: int | None = None) -> dict:
        now = _now()
        if exit_code is not None:
            state = {"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                                    "finishedAt": now, "startedAt": pod["status"].get("startTime", now)}}
            phase = "Succeeded" if exit_code == 0 else "Failed"
        else:
            state = {"running": {"startedAt": now}}
            phase = "Running"
        statuses = []
        for i, c in enumerate(pod["spec"]["containers"]):
            # Only the first container runs; the others are reported like it.
            statuses.append({"name": c["name"], "image": c.get("image", ""), "imageID": "",
                             "ready": ready, "started": started, "restartCount": 0, "state": state})
        reason = None if ready else ("PodCompleted" if exit_code is not None else "ContainersNotReady")
        conditions = [{"type": "Initialized", "status": "True", "lastTransitionTime": now},
                      {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}]
        for t in ("Ready", "ContainersReady"):
            cond = {"type": t, "status": "True" if ready else "False", "lastTransitionTime": now}
            if reason:
                cond["reason"] = reason
            conditions.append(cond)
        return {"status": {"phase": phase, "conditions": conditions, "containerStatuses": statuses}}

    def _patch_status(self, proc: LocalProcess, body: dict) -> None:
        try:
            self.api.patch_namespaced_pod_status(
                proc.name, proc.namespace, body, _content_type="application/merge-patch+json",
            )
        except ApiException as exc:
            if exc.status != 404:
                self.errors.append(f"{proc.namespace}/{proc.name} status: {exc.status} {exc.reason}")

    def _report_terminated(self, proc: LocalProcess) -> None:
        try:
            pod = _json(self.api.read_namespaced_pod(proc.name, proc.namespace, _preload_content=False))
        except ApiException:
            return
        if pod["metadata"]["uid"] != proc.uid:
            return
        self._patch_status(proc, self._container_status(pod, pod["spec"]["containers"][0], ready=False,
                                                        started=False, exit_code=proc.returncode))

    def _report_failed_start(self, pod: dict, message: str) -> None:
        meta = pod["metadata"]
        body = {"status": {"phase": "Failed", "message": message[:1000], "reason": "LocalProcessFailed"}}
        try:
            self.api.patch_namespaced_pod_status(meta["name"], meta["namespace"], body,
                                                 _content_type="application/merge-patch+json")
        except ApiException:
            pass

    def _delete(self, proc: LocalProcess, pod: dict) -> None:
        grace = pod["metadata"].get("deletionGracePeriodSeconds")
        _terminate(proc.popen, grace=min(10, grace if grace is not None else 30))
        self._remove_pod(pod)

    def _remove_pod(self, pod: dict) -> None:
        meta = pod["metadata"]
        try:
            self.api.delete_namespaced_pod(
                meta["name"], meta["namespace"],
                body={"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                self.errors.append(f"{meta['namespace']}/{meta['name']} delete: {exc.status} {exc.reason}")


def _json(resp) -> dict:
    return json.loads(resp.data)


def _field(pod: dict, path: str) -> str | None:
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return (pod["metadata"].get(m.group(1)) or {}).get(m.group(2))
    simple = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.uid": pod["metadata"]["uid"],
        "spec.nodeName": pod["spec"].get("nodeName"),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName"),
        "status.podIP": pod["status"].get("podIP"),
        "status.hostIP": pod["status"].get("hostIP"),
    }
    if path == "status.podIPs":
        return ",".join(ip["ip"] for ip in pod["status"].get("podIPs") or [])
    return simple.get(path)


def _tcp_ok(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as resp:
            return 200 <= resp.status < 400
    except OSError:
        return False


def _terminate(popen: subprocess.Popen, grace: float) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds.

    The group is killed even when its leader has exited, so nothing the
    process started outlives the pod.
    """
    if popen.poll() is None:
        try:
            os.killpg(popen.pid, signal.SIGTERM)
            popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
    try:
        os.killpg(popen.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    popen.wait()
