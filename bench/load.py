"""The Files mix under load: N concurrent clients through the front door,
against the dashboard and against jupyter-server's contents API behind the
same proxy, in the same run.

    .venv/bin/python bench/load.py [--clients 200] [--seconds 60] [--rounds 3] [--front-door proxy|chart] [--json]

Starts a karvdash-hub (local mode, real configurable-http-proxy) and a
jupyter server behind the same proxy (bench/peers.py). Each of --clients
clients runs in a closed loop (the next operation as soon as the last one is
answered, no pause), through the front door (``proxy``, local mode's, by
default; ``chart``: nginx serving the chart's Ingresses, bench/frontdoor.py,
which sends the dashboard's downloads and uploads straight to it and the
rest, jupyter-server too, to the proxy), over keep-alive connections (one
per client), choosing each operation at random (seeded) from the Files mix:

- 60% ``list``: a folder of 100 files, as the Files page opens it
  (dashboard ``GET api/files/private/<folder>?limit=200&sort=name&order=asc``; jupyter
  ``GET api/contents/<folder>?content=1``, as JupyterLab's file browser);
- 30% ``download``: one of 20 files of 256 KiB, read whole
  (dashboard ``GET api/download/private/<file>``; jupyter ``GET files/<file>``,
  what JupyterLab's Download uses);
- 10% ``upload``: a 256 KiB file, replacing one of the client's own three,
  as each page sends it (dashboard ``POST api/uploads`` then one
  ``PUT api/uploads/<id>``; jupyter one contents ``PUT`` with the file in
  base64 JSON, as JupyterLab sends files up to 1 MiB).

An operation counts once it has been answered 2xx and read whole; anything
else (another status, a broken connection, no answer within --timeout) is
an error. The two targets take turns in --rounds rounds of
--seconds/--rounds each, after a short warm-up, so a change of the shared
machine's load touches both alike. No operation starts after a round's
time is up; those under way are answered and counted, and the round lasts
until the last one is (a server that answers every request late finishes
them all at the end: operations/s is what it got through in that time). Printed per target: operations/s,
errors, p50/p99 latency (all operations, and per kind), the CPU seconds of
each process (the client's own too: it must not be what limits the rate),
and the dashboard/jupyter ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.peers import (
    WORKS_IN_CHILDREN,
    Peer,
    Peers,
    cpu_seconds,
    machine,
    started_peers,
)

KIB = 1024
MIX = (("list", 60), ("download", 30), ("upload", 10))
LISTED_ENTRIES = 100
DOWNLOADS = 20
FILE_SIZE = 256 * KIB
OWN_UPLOADS = 3
READ_CHUNK = 64 * KIB
# the Files page's first request for a folder: its first page, by name
FILES_PAGE_QUERY = {"limit": "200", "sort": "name", "order": "asc"}


def lay_out(root: Path) -> None:
    """The folders the mix reads, the same in both servers' roots."""
    listed = root / "load" / "listed"
    listed.mkdir(parents=True)
    for i in range(LISTED_ENTRIES):
        (listed / f"notes-{i:03d}.txt").write_bytes(b"x" * (i * 37 % 4096))
    data = root / "load" / "data"
    data.mkdir()
    for i in range(DOWNLOADS):
        (data / f"part-{i:02d}.bin").write_bytes(os.urandom(FILE_SIZE))
    (root / "load" / "uploads").mkdir()


class Failed(Exception):
    """An answer that does not count as an operation."""


async def expect(response: aiohttp.ClientResponse, kind: str) -> int:
    """The body's size, read whole (and dropped); Failed on a non-2xx answer."""
    size = 0
    async for piece in response.content.iter_chunked(READ_CHUNK):
        size += len(piece)
    if not 200 <= response.status < 300:
        raise Failed(f"{kind}: {response.status}")
    return size


async def expect_json(response: aiohttp.ClientResponse, kind: str):
    body = await response.read()
    if not 200 <= response.status < 300:
        raise Failed(f"{kind}: {response.status}")
    return json.loads(body)


class DashboardClient:
    name = "dashboard"

    def __init__(self, peer: Peer, session: aiohttp.ClientSession, way: str):
        self.api = peer.url(way) + "api/"
        self.session = session

    async def list(self) -> None:
        async with self.session.get(self.api + "files/private/load/listed", params=FILES_PAGE_QUERY) as response:
            await expect(response, "list")

    async def download(self, name: str) -> None:
        async with self.session.get(self.api + f"download/private/load/data/{name}") as response:
            if await expect(response, "download") != FILE_SIZE:
                raise Failed("download: short body")

    async def upload(self, name: str, data: bytes) -> None:
        body = {"domain": "private", "path": f"load/uploads/{name}", "size": len(data), "overwrite": True}
        async with self.session.post(self.api + "uploads", json=body) as response:
            upload = await expect_json(response, "upload start")
        async with self.session.put(self.api + f"uploads/{upload['id']}", data=data,
                                    headers={"Upload-Offset": "0"}) as response:
            await expect(response, "upload")


class JupyterClient:
    name = "jupyter-server"

    def __init__(self, peer: Peer, session: aiohttp.ClientSession, way: str):
        self.base = peer.url(way)
        self.session = session

    async def list(self) -> None:
        async with self.session.get(self.base + "api/contents/load/listed", params={"content": "1"}) as response:
            await expect(response, "list")

    async def download(self, name: str) -> None:
        async with self.session.get(self.base + f"files/load/data/{name}") as response:
            if await expect(response, "download") != FILE_SIZE:
                raise Failed("download: short body")

    async def upload(self, name: str, data: bytes) -> None:
        # what JupyterLab's upload sends for a file up to 1 MiB: one save, base64 in JSON
        body = {"type": "file", "format": "base64", "name": name, "content": base64.b64encode(data).decode()}
        async with self.session.put(self.base + f"api/contents/load/uploads/{name}", json=body) as response:
            await expect(response, "upload")


@dataclass
class Samples:
    """What one target's clients did while they were measured."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {kind: [] for kind, _ in MIX})
    errors: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    client_cpu: float = 0.0
    loop_lag: list[float] = field(default_factory=list)
    server_cpu: Counter = field(default_factory=Counter)


async def one_client(number: int, target, samples: Samples | None, deadline: float, data: bytes, timeout: float,
                     seed: int) -> None:
    # the same seed for both targets: the same operations in the same order
    choose = random.Random(seed * 100_000 + number)
    kinds = [kind for kind, _ in MIX]
    weights = [weight for _, weight in MIX]
    uploads = 0
    while time.perf_counter() < deadline:
        kind = choose.choices(kinds, weights)[0]
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                if kind == "list":
                    await target.list()
                elif kind == "download":
                    await target.download(f"part-{choose.randrange(DOWNLOADS):02d}.bin")
                else:
                    uploads += 1
                    await target.upload(f"client-{number:03d}-{uploads % OWN_UPLOADS}.bin", data)
        except Failed as error:
            outcome = str(error)
        except TimeoutError:
            outcome = f"{kind}: no answer in {timeout:g} s"
        except (aiohttp.ClientError, OSError) as error:
            outcome = f"{kind}: {type(error).__name__}"
        else:
            outcome = None
        if samples is None:
            continue
        if outcome:
            samples.errors[outcome] += 1
        else:
            samples.latencies[kind].append(time.perf_counter() - started)


async def watch_loop(lags: list[float], deadline: float, period: float = 0.01) -> None:
    """How late the client's event loop wakes up: when it is busy, the
    client, not the server, sets the pace."""
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        await asyncio.sleep(period)
        lags.append(time.perf_counter() - started - period)


async def run_target(make_client, peer: Peer, way: str, clients: int, seconds: float, samples: Samples | None,
                     processes: dict[str, int], timeout: float, seed: int = 0) -> None:
    """``clients`` clients against one target for ``seconds`` (not recorded
    when ``samples`` is None: a warm-up)."""
    connector = aiohttp.TCPConnector(limit=clients, limit_per_host=clients, force_close=False)
    async with aiohttp.ClientSession(connector=connector, headers=peer.headers,
                                     timeout=aiohttp.ClientTimeout(total=None)) as session:
        target = make_client(peer, session, way)
        data = os.urandom(FILE_SIZE)
        cpu_before = {name: cpu_seconds(pid, name in WORKS_IN_CHILDREN) for name, pid in processes.items() if pid}
        client_before = time.process_time()
        started = time.perf_counter()
        deadline = started + seconds
        lags: list[float] = []
        await asyncio.gather(
            watch_loop(lags, deadline),
            *(one_client(n, target, samples, deadline, data, timeout, seed) for n in range(clients)),
        )
        if samples is None:
            return
        # the operations that were under way at the deadline are finished and counted
        samples.seconds += time.perf_counter() - started
        samples.client_cpu += time.process_time() - client_before
        samples.loop_lag.extend(lags)
        for name, before in cpu_before.items():
            samples.server_cpu[name] += cpu_seconds(processes[name], name in WORKS_IN_CHILDREN) - before


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def summary(samples: Samples) -> dict:
    every = [latency for latencies in samples.latencies.values() for latency in latencies]
    return {
        "operations": len(every),
        "operations_per_s": round(len(every) / samples.seconds, 1),
        "errors": sum(samples.errors.values()),
        "error_kinds": dict(samples.errors),
        "p50_ms": round(1000 * percentile(every, 50), 1),
        "p99_ms": round(1000 * percentile(every, 99), 1),
        "by_kind": {
            kind: {"operations": len(latencies), "p50_ms": round(1000 * percentile(latencies, 50), 1),
                   "p99_ms": round(1000 * percentile(latencies, 99), 1)}
            for kind, latencies in samples.latencies.items()
        },
        "seconds": round(samples.seconds, 1),
        # cores: CPU seconds per second of measuring
        "client_cores": round(samples.client_cpu / samples.seconds, 2),
        "client_loop_lag_p99_ms": round(1000 * percentile(samples.loop_lag, 99), 1),
        "server_cores": {name: round(cpu / samples.seconds, 2) for name, cpu in samples.server_cpu.items()},
    }


async def measure(peers: Peers, way: str, clients: int, seconds: float, rounds: int, warmup: float,
                  timeout: float) -> dict:
    arms = {"dashboard": (DashboardClient, peers.dashboard), "jupyter-server": (JupyterClient, peers.jupyter)}
    # each arm's own server, the proxy, the hub and the chart's front door;
    # not the other arm's idle server
    doors = ("proxy", "hub", "nginx") if way == "ingress" else ("proxy", "hub")
    watched = {
        "dashboard": {name: peers.processes[name] for name in (*doors, "dashboard")},
        "jupyter-server": {name: peers.processes[name] for name in (*doors, "jupyter-server")},
    }
    for name, (make_client, peer) in arms.items():
        await run_target(make_client, peer, way, clients, warmup, None, watched[name], timeout)
    samples = {name: Samples() for name in arms}
    for turn in range(1, rounds + 1):
        for name, (make_client, peer) in arms.items():
            await run_target(make_client, peer, way, clients, seconds / rounds, samples[name], watched[name], timeout,
                             turn)
    return {name: summary(s) for name, s in samples.items()}


def ratios(ours: dict, theirs: dict) -> dict:
    def divide(a: float, b: float) -> float | None:
        return round(a / b, 2) if b else None
    return {
        "operations_per_s": divide(ours["operations_per_s"], theirs["operations_per_s"]),
        "p50": divide(ours["p50_ms"], theirs["p50_ms"]),
        "p99": divide(ours["p99_ms"], theirs["p99_ms"]),
    }


def print_report(report: dict) -> None:
    m = report["machine"]
    door = {"proxy": "through the proxy", "chart": "through the chart's front door"}[report["front_door"]]
    print(f"{report['clients']} clients, {report['seconds']:g} s per target in {report['rounds']} rounds, "
          f"{door}; mix {', '.join(f'{w}% {k}' for k, w in MIX)}, files of {FILE_SIZE // KIB} KiB")
    print(f"python {m['python']}, {m['cores']} cores ({m['cpu']}), load average {m['loadavg'][0]:.2f} "
          f"before and {report['loadavg_after'][0]:.2f} after")
    print(f"\n{'target':<16}{'ops/s':>8}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'list p50':>10}{'down p50':>10}{'up p50':>9}{'client cores':>14}{'loop lag p99':>14}")
    for name, r in report["results"].items():
        kinds = r["by_kind"]
        print(f"{name:<16}{r['operations_per_s']:>8}{r['errors']:>8}{r['p50_ms']:>9}{r['p99_ms']:>9}"
              f"{kinds['list']['p50_ms']:>10}{kinds['download']['p50_ms']:>10}{kinds['upload']['p50_ms']:>9}"
              f"{r['client_cores']:>14}{r['client_loop_lag_p99_ms']:>13}ms")
    for name, r in report["results"].items():
        cores = ", ".join(f"{process} {value}" for process, value in r["server_cores"].items())
        print(f"  {name}: server processes' cores: {cores}")
        if r["error_kinds"]:
            print(f"  {name}: errors: {r['error_kinds']}")
    q = report["dashboard_vs_jupyter"]
    print(f"\ndashboard / jupyter-server: operations/s {q['operations_per_s']}x, p50 {q['p50']}x, p99 {q['p99']}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients (default 200)")
    parser.add_argument("--seconds", type=float, default=60, help="measuring time per target (default 60)")
    parser.add_argument("--rounds", type=int, default=3, help="turns each target takes (default 3)")
    parser.add_argument("--warmup", type=float, default=3, help="unrecorded seconds per target first (default 3)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds an operation may take (default 120)")
    parser.add_argument("--front-door", choices=("proxy", "chart"), default="proxy",
                        help="local mode's proxy (default) or the chart's Ingresses in nginx (make kube-binaries nginx)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    way = "ingress" if args.front_door == "chart" else "proxy"
    if args.clients < 1 or args.seconds <= 0 or args.rounds < 1:
        parser.error("--clients and --rounds must be at least 1, --seconds above 0")

    work = Path(tempfile.mkdtemp(prefix="karvdash-load-"))
    before = machine()
    try:
        with started_peers(work, front_door=way == "ingress") as peers:
            lay_out(peers.dashboard_root)
            lay_out(peers.jupyter_root)
            results = asyncio.run(measure(peers, way, args.clients, args.seconds, args.rounds, args.warmup,
                                          args.timeout))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "command": " ".join(["bench/load.py", *sys.argv[1:]]),
        "machine": before,
        "loadavg_after": list(os.getloadavg()),
        "clients": args.clients,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "front_door": args.front_door,
        "mix": {kind: weight for kind, weight in MIX},
        "file_kib": FILE_SIZE // KIB,
        "listed_entries": LISTED_ENTRIES,
        "results": results,
        "dashboard_vs_jupyter": ratios(results["dashboard"], results["jupyter-server"]),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
