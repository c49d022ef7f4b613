"""Spawn storms: N users start their servers at once, karvdash-hub against
plain JupyterHub on the same machine, through the same proxy, with the same
single-user server command.

    .venv/bin/python bench/spawn_scale.py [--mode local] [--users 1 10 30] [--rounds 1] [--rounds-of-one 9] [--json]
    .venv/bin/python bench/spawn_scale.py --mode kube [--users 10 50 100] [--json]

``--mode local`` (the default) runs three hubs on loopback ports, each with
the project's configurable-http-proxy and the single-user command of the
JupyterLab profile in local mode (``python -m karvdash_hub.hub.singleuser``,
jupyterhub-singleuser of this venv made cheaper, ``/lab``; ``--server
jupyterhub-singleuser`` for the figures before it): real JupyterLab starts,
which cost CPU-seconds each, so a storm measures what a class logging in at
once gets.

- ``plain``: ``jupyterhub`` with SimpleLocalProcessSpawner and JupyterHub's
  defaults (start_timeout 60 s, http_timeout 30 s, no queue);
- ``patient``: the same with start_timeout and http_timeout of 600 s, the
  fair floor of the wall time (every start succeeds, nothing queues);
- ``karvdash``: karvdash-hub in local mode with its defaults (the spawn queue
  sized from the machine, ``spawnConcurrency``).

For each N and round (``--rounds``; for N = 1 at least
``--rounds-of-one``, since one start takes a few seconds and three of them
spread by more than the bound of 1.1x), one storm per hub, one after the
other, the hubs' order turning by one each round (so a change of the
machine's load touches every arm): N new users, N start requests sent at
once to ``/hub/api`` through the proxy, the hub's user list polled every
0.25 s until every server is ready or has failed (the storm code is
bench/spawnkube.py's ``Arm``, shared by both modes). Reported per arm (the
median over the rounds, failures summed): wall time (first request to last
server ready), failures, the hub process's CPU seconds and peak RSS, and
the single-user servers' CPU seconds per start (their processes, read once
all are ready); per N the ratios karvdash/patient and karvdash/plain.

``--mode kube`` is bench/spawnkube.py's run on the tests' control plane
(KarvdashSpawner against plain KubeSpawner); see that module.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.spawnkube import PLAIN_HUB_CONFIG, Arm, ratio, storm_rounds, wait_until_answering
from tests.hubprocess import RunningHub, free_port, start_hub

LOCAL_ARMS = ("plain", "patient", "karvdash")
# --server: the local spawner's command (karvdash_hub/hub/singleuser.py), or
# jupyterhub-singleuser itself, for the figures before that module
SERVERS = {
    "karvdash": None,
    "jupyterhub-singleuser": [str(Path(sys.executable).parent / "jupyterhub-singleuser")],
}
PATIENT_TIMEOUT = 600

PLAIN_CONFIG = PLAIN_HUB_CONFIG + """\
c.JupyterHub.spawner_class = "simple"
c.Spawner.cmd = {command!r}
c.Spawner.args = {args!r}
c.Spawner.default_url = "/lab"
c.SimpleLocalProcessSpawner.home_dir_template = "{state}/homes/{{username}}"
"""


def server_args() -> list[str]:
    """The arguments karvdash-hub's local spawner adds to JupyterHub's own
    (KarvdashLocalSpawner.get_args), for the plain arms too."""
    return ["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []


def server_command(server: str) -> list[str]:
    from karvdash_hub.hub.localspawner import SERVER_COMMAND

    return SERVERS[server] or list(SERVER_COMMAND)


def start_plain_hub(state: Path, patient: bool, command: list[str], timeout: float = 180) -> tuple[RunningHub, str]:
    from karvdash_hub.hub.config import proxy_command

    state.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    port = free_port()
    text = PLAIN_CONFIG.format(
        port=port, hub_port=free_port(), api_port=free_port(), proxy=proxy_command(), state=state, token=token,
        command=command, args=server_args(),
    )
    if patient:
        text += f"c.Spawner.start_timeout = {PATIENT_TIMEOUT}\nc.Spawner.http_timeout = {PATIENT_TIMEOUT}\n"
    config = state / "jupyterhub_config.py"
    config.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KARVDASH_")}
    log_path = state / "hub.log"
    with open(log_path, "wb") as log:
        process = psutil.Popen(
            [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(config)],
            env=env, stdout=log, stderr=log, cwd=state, start_new_session=True,
        )
    hub = RunningHub(url=f"http://127.0.0.1:{port}", state_dir=state, log_path=log_path, process=process)
    wait_until_answering(hub, process, timeout)
    return hub, token


class LocalArm(Arm):
    """A hub whose servers are its own child processes."""

    def servers(self) -> list[psutil.Process]:
        found = []
        for child in self.process.children(recursive=True):
            try:
                if any("singleuser" in part for part in child.cmdline()):
                    found.append(child)
            except psutil.NoSuchProcess:
                pass
        return found

    def server_cpu_seconds(self) -> float:
        total = 0.0
        for server in self.servers():
            try:
                for process in (server, *server.children(recursive=True)):
                    times = process.cpu_times()
                    total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def storm(self, users: list[str], timeout: float) -> dict:
        figures = super().storm(users, timeout)
        cpu = self.server_cpu_seconds()
        figures["server_cpu_s_per_start"] = round(cpu / figures["ready"], 2) if figures["ready"] else None
        return figures

    def stop_all(self, users: list[str]) -> None:
        with ThreadPoolExecutor(min(len(users), 20)) as pool:
            list(pool.map(lambda name: self.api("DELETE", f"/users/{name}/server"), users))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if not (set(self.active_servers()) & set(users)) and not self.servers():
                return
            time.sleep(1)
        raise RuntimeError(f"{self.name}: servers still running after 300 s")


def start_local_arms(work: Path, server: str, names=LOCAL_ARMS, spawn_concurrency: int = 0) -> dict[str, LocalArm]:
    command = server_command(server)
    arms: dict[str, LocalArm] = {}
    try:
        for name in names:
            if name == "karvdash":
                env = {"KARVDASH_SPAWN_CONCURRENCY": str(spawn_concurrency)} if spawn_concurrency else {}
                hub = start_hub(work / name, env=env, args=[f"--Spawner.cmd={json.dumps(command)}"])
                token = hub.token_for(hub.admin)
            else:
                hub, token = start_plain_hub(work / name, patient=name == "patient", command=command)
            arms[name] = LocalArm(name, hub, token)
    except BaseException:
        for arm in arms.values():
            arm.hub.stop()
        raise
    return arms


def run_local(counts: list[int], timeout: float = 600, server: str = "karvdash", names=LOCAL_ARMS,
              spawn_concurrency: int = 0, log=print, rounds: int = 1, rounds_of_one: int = 1) -> dict:
    with tempfile.TemporaryDirectory(prefix="spawn-scale-") as scratch:
        arms = start_local_arms(Path(scratch), server, names, spawn_concurrency)
        try:
            results = []
            for n in counts:
                row = storm_rounds(arms, n, max(rounds, rounds_of_one) if n == 1 else rounds, timeout, log,
                                   stop=lambda arm, users: arm.stop_all(users))
                k = row.get("karvdash")
                row["ratios"] = {
                    f"{key}_vs_{ref}": ratio(k[key], row[ref][key])
                    for ref in ("patient", "plain")
                    if k and ref in row
                    for key in ("wall_s", "hub_cpu_s", "hub_peak_rss_mib")
                }
                row["loadavg_after"] = os.getloadavg()[0]
                results.append(row)
        finally:
            for arm in arms.values():
                arm.hub.stop()
    return {
        "mode": "local",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_end": list(os.getloadavg())},
        "arms": list(names),
        "server_command": " ".join([*server_command(server), *server_args()]),
        "results": results,
    }


def print_local(report: dict) -> None:
    print(f"spawn storms, local mode: {report['server_command']}; {report['machine']}")
    print(f"{'N':>4} {'arm':<9} {'wall s':>7} {'fail':>5} {'median s':>9} {'hub CPU s':>10} {'peak RSS MiB':>13} "
          f"{'server CPU s/start':>19}")
    for row in report["results"]:
        for name in report["arms"]:
            f = row[name]
            wall = "-" if f["wall_s"] is None else f"{f['wall_s']:.2f}"
            print(f"{row['n']:>4} {name:<9} {wall:>7} {f['failures']:>5} {f['median_ready_s'] or 0:>9.2f} "
                  f"{f['hub_cpu_s']:>10.2f} {f['hub_peak_rss_mib']:>13.1f} {f['server_cpu_s_per_start'] or '-':>19}")
        r = row["ratios"]
        for ref in ("patient", "plain"):
            if f"wall_s_vs_{ref}" not in r:
                continue
            print(f"{row['n']:>4} {'/' + ref:<9} {r[f'wall_s_vs_{ref}'] or '-':>7} {'':>5} {'':>9} "
                  f"{r[f'hub_cpu_s_vs_{ref}'] or '-':>10} {r[f'hub_peak_rss_mib_vs_{ref}'] or '-':>13}")
        print(f"     load {row['loadavg_before']:.2f} -> {row['loadavg_after']:.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("local", "kube"), default="local", help="local (default) or kube")
    parser.add_argument("--users", type=int, nargs="+", help="storm sizes (default: 1 10 30 local, 10 50 100 kube)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a storm may take (default 600)")
    parser.add_argument("--spawn-concurrency", type=int, default=0,
                        help="karvdash-hub's spawnConcurrency (default 0: sized from the machine)")
    parser.add_argument("--server", choices=sorted(SERVERS), default="karvdash",
                        help="local single-user command of both arms: karvdash-hub's (default) or jupyterhub-singleuser")
    parser.add_argument("--arms", nargs="+", choices=LOCAL_ARMS, default=list(LOCAL_ARMS),
                        help="local hubs to storm (default: all three)")
    parser.add_argument("--rounds", type=int, default=1, help="storms per N and arm (medians reported)")
    parser.add_argument("--rounds-of-one", type=int, default=9,
                        help="local mode: storms of one user at least this many times (default 9)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    progress = (lambda line: print(line, file=sys.stderr, flush=True))
    if args.mode == "kube":
        from bench import spawnkube

        report = spawnkube.run(args.users or [10, 50, 100], timeout=args.timeout, log=progress,
                               spawn_concurrency=args.spawn_concurrency, rounds=args.rounds)
        report.setdefault("mode", "kube")
        show = spawnkube.print_table
    else:
        report = run_local(args.users or [1, 10, 30], args.timeout, args.server, args.arms, args.spawn_concurrency,
                           log=progress, rounds=args.rounds, rounds_of_one=args.rounds_of_one)
        show = print_local
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        show(report)


if __name__ == "__main__":
    main()
