"""Spawn storms on Kubernetes: N users start at once with KarvdashSpawner,
against plain JupyterHub with plain KubeSpawner, on the tests' control plane.

    .venv/bin/python bench/spawnkube.py [--users 10 50 100] [--json]
    .venv/bin/python bench/spawn_scale.py --mode kube [--users 10 50 100]

Starts one control plane (tests/kube/cluster.py: real kube-apiserver, etcd,
controller-manager, scheduler, a kwok node) and plays its node with
tests/kube/node.py, which runs the pods labelled for it as local processes
on their 127.x pod IPs. Then two hubs on loopback ports, with the same
configurable-http-proxy, the same admin kubeconfig, the same timeouts
(tests/kube/node.py ``HUB_ARGS``) and the same single-user command,
tests/kube/stub_singleuser.py (an http.server answering 200: the storm measures
the spawner, the hub and Kubernetes, not JupyterLab's start-up):

- ``karvdash``: karvdash-hub in kubernetes mode (KarvdashSpawner: a
  namespace per user with its NetworkPolicy, RoleBinding, API settings
  Secret and a token, the user's folders, the default profile);
- ``plain``: ``jupyterhub`` with ``kubespawner.KubeSpawner`` and all pods in
  one namespace, as a plain deployment runs it.

For each N and round, one storm per hub, the arms taking turns going first
(so a change of the machine's load touches both): N new users, N start
requests sent at once through the proxy's ``/hub/api``, then the proxy's
routes read every 0.25 s until every server has its route (it is ready)
or has failed (the hub's user list, read every 2 s). Reported per arm (the
median over ``--rounds``): wall time (first request to last server ready),
failures, the hub process's CPU seconds over the storm and its peak RSS;
per N the ratios karvdash/plain. Servers are stopped and their pods gone
before the next storm.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import peers
from tests.hubprocess import RunningHub, free_port, start_hub
from tests.kube.cluster import LOCAL_PROCESS_LABEL, ControlPlane
from tests.kube.fixtures import new_api_client, wait_for
from tests.kube.node import HUB_ARGS, LocalProcessNode

# one executable (its "#!/usr/bin/env python3" finds the node's Python first
# on PATH), given as Spawner.cmd: a class the hub knows before loading its
# spawner, so the command line's value is parsed as a list at once
STUB_COMMAND = str(ROOT / "tests" / "kube" / "stub_singleuser.py")
PLAIN_NAMESPACE = "plain-kubespawner"
# room for every storm's pods on the one fake node (its default is a
# kubelet's 110 pods; the default profile asks 0.5 CPU a server)
NODE_RESOURCES = {"cpu": "1000", "memory": "4Ti", "pods": "500", "nvidia.com/gpu": "4"}
ARMS = ("plain", "karvdash")
POLL_SECONDS = 0.25
HUB_POLL_SECONDS = 2

# a plain JupyterHub of a storm (with spawner_class and the spawner's own lines after it)
PLAIN_HUB_CONFIG = """\
c = get_config()  # noqa: F821
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = {proxy!r}
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.JupyterHub.services = [{{"name": "bench", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "bench", "scopes": ["admin:users", "admin:servers", "list:users"],
                            "services": ["bench"]}}]
"""
PLAIN_CONFIG = PLAIN_HUB_CONFIG + """\
c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.KubeSpawner.namespace = {namespace!r}
"""


def shared_args() -> list[str]:
    """What both hubs get: this node's pods, the timeouts, the stub server."""
    return [*HUB_ARGS, f"--Spawner.cmd={STUB_COMMAND}"]


def start_plain_hub(state: Path, kubeconfig: Path, proxy_token: str, timeout: float = 180) -> tuple[RunningHub, str]:
    from karvdash_hub.hub.config import proxy_command

    state.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    port, api_port = free_port(), free_port()
    config = state / "jupyterhub_config.py"
    config.write_text(PLAIN_CONFIG.format(
        port=port, hub_port=free_port(), api_port=api_port, proxy=proxy_command(), state=state,
        token=token, namespace=PLAIN_NAMESPACE,
    ))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KARVDASH_")}
    env.update(KUBECONFIG=str(kubeconfig), CONFIGPROXY_AUTH_TOKEN=proxy_token)
    log_path = state / "hub.log"
    with open(log_path, "wb") as log:
        process = psutil.Popen(
            [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(config), *shared_args()],
            env=env, stdout=log, stderr=log, cwd=state, start_new_session=True,
        )
    hub = RunningHub(url=f"http://127.0.0.1:{port}", state_dir=state, log_path=log_path, process=process,
                     proxy_api_url=f"http://127.0.0.1:{api_port}")
    wait_until_answering(hub, process, timeout)
    return hub, token


def wait_until_answering(hub: RunningHub, process, timeout: float) -> None:
    """Until a plain JupyterHub started as ``process`` answers its API (stopped if it does not)."""
    peers.wait_until_answering(process, hub.hub_api, "jupyterhub", timeout, hub.stop,
                               details=lambda: ":\n" + hub.log()[-3000:])


def start_karvdash_hub(state: Path, kubeconfig: Path, proxy_token: str,
                       spawn_concurrency: int = 0) -> tuple[RunningHub, str]:
    env = {"KARVDASH_MODE": "kubernetes", "KARVDASH_INGRESS_URL": "https://example.test",
           "KUBECONFIG": str(kubeconfig), "CONFIGPROXY_AUTH_TOKEN": proxy_token}
    if spawn_concurrency:
        env["KARVDASH_SPAWN_CONCURRENCY"] = str(spawn_concurrency)
    hub = start_hub(
        state,
        env=env,
        args=["--JupyterHub.ip=127.0.0.1", *shared_args()],
    )
    return hub, hub.token_for("admin")


class Arm:
    """One hub and what a storm on it costs.

    With ``proxy_token`` (the hub's CONFIGPROXY_AUTH_TOKEN) a server counts
    as ready when the hub has put its route in the proxy, read from the
    proxy's API every POLL_SECONDS; the hub's user list is then asked only
    every HUB_POLL_SECONDS, for the starts that failed, so that watching
    the storm costs the hub little (asking it every 0.25 s was ~15% of its
    busy time in a storm of 100)."""

    def __init__(self, name: str, hub: RunningHub, token: str, proxy_token: str = ""):
        self.name = name
        self.hub = hub
        self.token = token
        self.proxy_token = proxy_token
        self.process = psutil.Process(hub.process.pid)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, self.hub.hub_api + path, timeout=120, **kwargs)

    def active_servers(self) -> dict[str, dict]:
        """Every user with a server pending or running: name -> the server's model."""
        found, offset = {}, 0
        while True:
            response = self.api("GET", f"/users?state=active&offset={offset}&limit=200")
            response.raise_for_status()
            page = response.json()
            for user in page:
                server = (user.get("servers") or {}).get("")
                if server is not None:
                    found[user["name"]] = server
            if len(page) < 200:
                return found
            offset += 200

    def proxied_users(self) -> set[str] | None:
        """Users whose server has its route in the proxy (None: not known here)."""
        if not (self.proxy_token and self.hub.proxy_api_url):
            return None
        response = self.session.get(f"{self.hub.proxy_api_url}/api/routes", timeout=30,
                                    headers={"Authorization": f"token {self.proxy_token}"})
        response.raise_for_status()
        return {data["user"] for data in response.json().values() if data.get("user")}

    def storm(self, users: list[str], timeout: float) -> dict:
        response = self.api("POST", "/users", json={"usernames": users})
        if response.status_code != 201:
            raise RuntimeError(f"{self.name}: creating users: {response.status_code} {response.text[:500]}")
        started = threading.Event()
        answers: dict[str, int] = {}
        errors: dict[str, str] = {}

        def start(name: str) -> None:
            with requests.Session() as own:
                own.headers["Authorization"] = f"token {self.token}"
                started.wait()
                try:
                    answer = own.post(f"{self.hub.hub_api}/users/{name}/server", json={}, timeout=timeout)
                    answers[name] = answer.status_code
                    if answer.status_code >= 400:
                        errors[name] = f"{answer.status_code} {answer.text[:200]}"
                except requests.RequestException as exc:
                    errors[name] = repr(exc)

        cpu_before = self.process.cpu_times()
        peak_rss = self.process.memory_info().rss
        ready_at: dict[str, float] = {}
        failed: set[str] = set(errors)
        with ThreadPoolExecutor(len(users)) as pool:
            futures = [pool.submit(start, name) for name in users]
            time.sleep(0.2)  # every thread waiting at the gate
            t0 = time.monotonic()
            started.set()
            deadline = t0 + timeout
            asked_hub = t0
            while time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
                peak_rss = max(peak_rss, self.process.memory_info().rss)
                proxied = self.proxied_users()
                now = time.monotonic()
                servers = None
                if proxied is None or now - asked_hub >= HUB_POLL_SECONDS:
                    servers, asked_hub = self.active_servers(), now
                for name in users:
                    if name in ready_at or name in failed:
                        continue
                    server = servers.get(name) if servers is not None else None
                    if (proxied is not None and name in proxied) or (server is not None and server.get("ready")):
                        ready_at[name] = now - t0
                    elif name in errors or (servers is not None and server is None and name in answers):
                        # refused, or a start that failed and was cleaned up
                        failed.add(name)
                if len(ready_at) + len(failed) == len(users):
                    break
            for future in futures:
                future.result()
        cpu_after = self.process.cpu_times()
        unfinished = [n for n in users if n not in ready_at and n not in failed]
        times = sorted(ready_at.values())
        return {
            "users": len(users),
            "ready": len(ready_at),
            "failures": len(failed) + len(unfinished),
            "failed": sorted(failed | set(unfinished))[:10],
            "errors": dict(list(errors.items())[:5]),
            "wall_s": round(max(times), 2) if times and not (failed or unfinished) else None,
            "first_ready_s": round(times[0], 2) if times else None,
            "median_ready_s": round(times[len(times) // 2], 2) if times else None,
            "hub_cpu_s": round((cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system), 2),
            "hub_peak_rss_mib": round(peak_rss / 2**20, 1),
        }

    def stop_all(self, users: list[str], core, label_selector: str) -> None:
        with ThreadPoolExecutor(min(len(users), 20)) as pool:
            list(pool.map(lambda name: self.api("DELETE", f"/users/{name}/server"), users))
        wait_for(lambda: not (set(self.active_servers()) & set(users)), timeout=300,
                 what=f"{self.name}: servers stopped", interval=1)
        wait_for(lambda: not core.list_pod_for_all_namespaces(label_selector=label_selector).items,
                 timeout=300, what=f"{self.name}: pods gone", interval=1)


# an arm's figures of a storm that its rounds give as their median (a local
# storm's also counts its servers' CPU)
MEDIAN_FIGURES = ("wall_s", "first_ready_s", "median_ready_s", "hub_cpu_s", "hub_peak_rss_mib",
                  "server_cpu_s_per_start")


def median_figures(rounds: list[dict]) -> dict:
    """One arm's figures over the rounds: failures summed, the rest their median
    (a wall time only if every round had one)."""
    def median(key):
        values = [r[key] for r in rounds]
        return None if None in values else statistics.median(values)

    merged = {key: median(key) for key in MEDIAN_FIGURES if key in rounds[0]}
    merged.update(users=rounds[0]["users"], ready=sum(r["ready"] for r in rounds) // len(rounds),
                  failures=sum(r["failures"] for r in rounds))
    return merged


def storm_rounds(arms: dict, n: int, rounds: int, timeout: float, log, stop) -> dict:
    """``rounds`` storms of ``n`` new users on each arm, another arm going
    first each round, each storm's servers stopped by ``stop(arm, users)``
    before the next; the row of ``n``: its rounds and each arm's medians."""
    names = list(arms)
    row = {"n": n, "loadavg_before": os.getloadavg()[0], "rounds": []}
    for number in range(rounds):
        turn = number % len(names)
        figures = {}
        for name in [*names[turn:], *names[:turn]]:
            users = [f"{name[0]}{n}r{number}x{i:03d}" for i in range(n)]
            figures[name] = arms[name].storm(users, timeout)
            log(f"N={n} round {number + 1} {name}: {json.dumps(figures[name])}")
            stop(arms[name], users)
        row["rounds"].append(figures)
    for name in names:
        row[name] = median_figures([figures[name] for figures in row["rounds"]])
    return row


def ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


def run(counts: list[int], work_dir: Path | None = None, timeout: float = 300, log=print, keep: bool = False,
        spawn_concurrency: int = 0, rounds: int = 1) -> dict:
    """Storms of each N in ``counts`` on both arms, ``rounds`` times (the
    arms taking turns going first; medians reported); the figures and ratios as
    a dict. ``spawn_concurrency``: karvdash-hub's ``spawnConcurrency`` (0:
    its default). ``keep`` leaves the hubs' logs and state in the scratch folder."""
    from kubernetes import client

    scratch = Path(tempfile.mkdtemp(prefix="spawnkube-", dir=work_dir))
    log(f"scratch folder {scratch}")
    try:
        cluster = ControlPlane(scratch / "kube", node_resources=dict(NODE_RESOURCES))
        cluster.start()
        log(f"control plane ready in {cluster.ready_seconds:.1f} s")
        admin = new_api_client(cluster.kubeconfig)
        core = client.CoreV1Api(admin)
        core.create_namespace({"metadata": {"name": PLAIN_NAMESPACE}})
        node = LocalProcessNode(admin, scratch / "pods", node_name=cluster.node_name)
        node.start()
        hubs: list[RunningHub] = []
        # the proxies' API token (each hub has its own proxy): readiness is read there
        proxy_token = secrets.token_hex(16)
        try:
            plain_hub, plain_token = start_plain_hub(scratch / "plain", cluster.kubeconfig, proxy_token)
            hubs.append(plain_hub)
            karvdash_hub, karvdash_token = start_karvdash_hub(scratch / "karvdash", cluster.kubeconfig,
                                                               proxy_token, spawn_concurrency)
            hubs.append(karvdash_hub)
            arms = {"plain": Arm("plain", plain_hub, plain_token, proxy_token),
                    "karvdash": Arm("karvdash", karvdash_hub, karvdash_token, proxy_token)}
            results = []
            for n in counts:
                row = storm_rounds(arms, n, rounds, timeout, log,
                                   stop=lambda arm, users: arm.stop_all(users, core, f"{LOCAL_PROCESS_LABEL}=true"))
                k, p = row["karvdash"], row["plain"]
                row["ratios"] = {key: ratio(k[key], p[key]) for key in ("wall_s", "hub_cpu_s", "hub_peak_rss_mib")}
                row["loadavg_after"] = os.getloadavg()[0]
                results.append(row)
            return {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                            "loadavg_end": list(os.getloadavg())},
                "server_command": "tests/kube/stub_singleuser.py (http.server answering 200)",
                "results": results,
                "node_errors": node.errors[:10],
            }
        finally:
            for hub in reversed(hubs):
                hub.stop()
            node.stop()
            cluster.stop()
            admin.close()
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)


def print_table(report: dict) -> None:
    print(f"{'N':>4} {'arm':<9} {'wall s':>7} {'fail':>5} {'median s':>9} {'hub CPU s':>10} {'peak RSS MiB':>13}")
    for row in report["results"]:
        for name in ARMS:
            f = row[name]
            wall = "-" if f["wall_s"] is None else f"{f['wall_s']:.2f}"
            print(f"{row['n']:>4} {name:<9} {wall:>7} {f['failures']:>5} {f['median_ready_s'] or 0:>9.2f} "
                  f"{f['hub_cpu_s']:>10.2f} {f['hub_peak_rss_mib']:>13.1f}")
        r = row["ratios"]
        print(f"{row['n']:>4} {'ratio':<9} {r['wall_s'] or '-':>7} {'':>5} {'':>9} {r['hub_cpu_s'] or '-':>10} "
              f"{r['hub_peak_rss_mib'] or '-':>13}   load {row['loadavg_before']:.2f} -> {row['loadavg_after']:.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10, 50, 100], help="storm sizes (N at once)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds a storm may take")
    parser.add_argument("--spawn-concurrency", type=int, default=0,
                        help="karvdash-hub's spawnConcurrency (default 0: its own default)")
    parser.add_argument("--rounds", type=int, default=1, help="storms per N and arm (medians reported)")
    parser.add_argument("--keep", action="store_true", help="keep the hubs' logs and state")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = run(args.users, timeout=args.timeout, log=(lambda line: print(line, file=sys.stderr)), keep=args.keep,
                 spawn_concurrency=args.spawn_concurrency, rounds=args.rounds)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
