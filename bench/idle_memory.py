"""Idle memory of a karvdash-hub in local mode against plain JupyterHub with
the same proxy, started in the same run.

    .venv/bin/python bench/idle_memory.py [--settle 20] [--samples 5] [--after-use] [--json]

Starts a karvdash-hub (local mode, real proxy, SQLite; tests/hubprocess.py)
and the plain ``jupyterhub`` of bench/spawn_scale.py (SimpleLocalProcessSpawner,
DummyAuthenticator, SQLite) whose proxy is the same configurable-http-proxy
command, both on loopback ports; waits --settle seconds with neither
answering a request, then reads the memory of every process --samples
times, a second apart, and prints the median of each:

- ours: the hub, the dashboard, the dashboard's supervisor (local mode runs
  the dashboard as its child, to start it again when it dies) and the proxy;
- plain: the hub and the proxy.

Both resident memory (RSS, what ``ps`` shows) and proportional memory (PSS:
a page that several processes map counts a share in each, as the Python
libraries the hub and the dashboard both load do). Ratios: dashboard/hub
(our hub's process), dashboard/plain hub, hub/plain hub, and our total over
plain's. With --after-use the admin then opens the dashboard's pages (home,
files, services, templates, docs, API document) and the figures are read
again after another --settle: what the dashboard loads when it is first used.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.peers import machine  # noqa: E402
from bench.spawn_scale import server_command, start_plain_hub  # noqa: E402
from tests.hubprocess import start_hub  # noqa: E402

MiB = 1024 * 1024
# what the admin opens with --after-use: the dashboard's pages a person sees first
PAGES = ("", "files/private", "services", "templates", "docs/", "api/openapi.json")


def proxy_pid(hub_pid: int) -> int:
    """The configurable-http-proxy the hub started (its child, either way)."""
    for child in psutil.Process(hub_pid).children():
        if any("configurable-http-proxy" in part or "chp-wrapper" in part for part in child.cmdline()):
            return child.pid
    raise RuntimeError(f"hub {hub_pid} runs no proxy")


def our_pids(hub) -> dict[str, int]:
    token = hub.token_for(hub.admin)
    supervisor = hub.api("GET", "/services/karvdash", token=token).json()["pid"]
    # the dashboard's health answer names its own process (the supervisor's child)
    dashboard = requests.get(hub.url + "/services/karvdash/health", timeout=30).json()["pid"]
    return {
        "hub": hub.process.pid,
        "dashboard": dashboard,
        "supervisor": supervisor,
        "proxy": proxy_pid(hub.process.pid),
    }


def sample(pids: dict[str, dict[str, int]], count: int) -> dict[str, dict[str, dict[str, float]]]:
    """Median RSS and PSS in MiB of every process, ``count`` readings a
    second apart. PSS shares each page among the processes mapping it (the
    Python libraries hub and dashboard both load count half in each)."""
    readings = {side: {name: {"rss": [], "pss": []} for name in names} for side, names in pids.items()}
    for index in range(count):
        if index:
            time.sleep(1)
        for side, names in pids.items():
            for name, pid in names.items():
                memory = psutil.Process(pid).memory_full_info()
                readings[side][name]["rss"].append(memory.rss)
                readings[side][name]["pss"].append(memory.pss)
    return {
        kind: {
            side: {name: round(statistics.median(values[kind]) / MiB, 1) for name, values in names.items()}
            for side, names in readings.items()
        }
        for kind in ("rss", "pss")
    }


def ratios(figures: dict[str, dict[str, float]]) -> dict[str, float]:
    ours, plain = figures["ours"], figures["plain"]
    ours_total, plain_total = sum(ours.values()), sum(plain.values())
    return {
        "dashboard_vs_hub": round(ours["dashboard"] / ours["hub"], 2),
        "dashboard_vs_plain_hub": round(ours["dashboard"] / plain["hub"], 2),
        "hub_vs_plain_hub": round(ours["hub"] / plain["hub"], 2),
        "ours_total_mib": round(ours_total, 1),
        "plain_total_mib": round(plain_total, 1),
        "ours_total_vs_plain_total": round(ours_total / plain_total, 2),
    }


def use_dashboard(hub) -> None:
    session = hub.admin_session()
    for page in PAGES:
        response = session.get(f"{hub.url}/services/karvdash/{page}", timeout=120)
        if response.status_code != 200:
            raise RuntimeError(f"dashboard {page or 'home'}: {response.status_code} {response.text[:300]}")


def print_phase(title: str, phase: dict) -> None:
    print(title)
    for kind in ("rss", "pss"):
        figures, ratio = phase[kind], phase["ratios"][kind]
        for side, names in figures.items():
            print(f"  {kind.upper()} {side}: " + ", ".join(f"{name} {mib:.1f}" for name, mib in names.items()) + " MiB")
        print(f"  {kind.upper()} dashboard / hub {ratio['dashboard_vs_hub']}, dashboard / plain hub"
              f" {ratio['dashboard_vs_plain_hub']}, hub / plain hub {ratio['hub_vs_plain_hub']};"
              f" ours {ratio['ours_total_mib']} MiB / plain {ratio['plain_total_mib']} MiB ="
              f" {ratio['ours_total_vs_plain_total']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settle", type=float, default=20.0, help="idle seconds before reading (default 20)")
    parser.add_argument("--samples", type=int, default=5, help="readings a second apart, median kept (default 5)")
    parser.add_argument("--after-use", action="store_true",
                        help="read again after the admin opens the dashboard's pages")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error("--samples must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="karvdash-memory-"))
    hub = plain = None
    report = {}
    try:
        # both start at once, each waiting for its own API (the settling evens out what starting cost)
        with ThreadPoolExecutor(2) as starting:
            ours = starting.submit(start_hub, work / "hub")
            # the spawn benchmark's plain hub; its single-user command is never run here
            theirs = starting.submit(start_plain_hub, work / "plain", patient=False, command=server_command("karvdash"))
        # both are done: one that started is stopped below even when the other failed
        hub = None if ours.exception() else ours.result()
        plain = None if theirs.exception() else theirs.result()[0]
        ours.result(), theirs.result()  # either failure is raised here
        pids = {"ours": our_pids(hub), "plain": {"hub": plain.process.pid, "proxy": proxy_pid(plain.process.pid)}}
        time.sleep(args.settle)
        report["idle"] = sample(pids, args.samples)
        if args.after_use:
            use_dashboard(hub)
            time.sleep(args.settle)
            report["after_use"] = sample(pids, args.samples)
        measured_on = machine()
    finally:
        for running in (hub, plain):
            if running:
                running.stop()
        shutil.rmtree(work, ignore_errors=True)

    results = {
        phase: {**figures, "ratios": {kind: ratios(figures[kind]) for kind in ("rss", "pss")}}
        for phase, figures in report.items()
    }
    if args.json:
        print(json.dumps({"machine": measured_on, "settle_seconds": args.settle, "samples": args.samples,
                          "results": results}, indent=2))
        return
    load = " ".join(f"{value:.2f}" for value in measured_on["loadavg"])
    print(f"idle memory, MiB (median of {args.samples} readings after {args.settle:g} s idle);"
          f" python {measured_on['python']}, {measured_on['cores']} cores, {measured_on['arch']}; load average {load}")
    for phase, result in results.items():
        print_phase(phase.replace("_", " ") + ":", result)


if __name__ == "__main__":
    main()
