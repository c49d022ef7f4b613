"""Every benchmark in one run, one after the other on the same machine, and
the project's targets checked against what that run measured.

    .venv/bin/python bench/run_all.py [--out DIR] [--quick] [--only NAME ...] [--skip NAME ...]

Runs each script of bench/ with ``--json`` and its arguments below (with
--quick, shorter ones, for trying the runner, not for figures), one at a
time so that none measures while another loads the machine. Writes into
--out (default: a new folder under the system's temporary folder, printed
first) ``<name>.json`` (the script's report) and ``<name>.log`` (its
progress) for each, then ``summary.json`` and ``summary.md``: per target the
ratio measured, the bound and whether it was met, with the machine and the
load average before and after each script. docs/benchmarks.md takes its
summary table from ``summary.md``.

Before each script it waits for the machine to be quiet: until the CPU
was less than a fifth busy over two seconds and at most 64 MiB of the page
cache waits for the disk, at most two minutes (the local spawn storm leaves
its servers stopping and the load average high for a while after its end;
the transfers leave gigabytes to write). ``spawn-kube``, ``files`` and ``load-chart``
need the Kubernetes binaries (``make kube-binaries``, for their control
plane or helm) and ``files`` and ``load-chart`` Debian's nginx
(``make nginx``); skip them with ``--skip`` where they are not built.
Exits 1 when a script failed (the others still run), not when a target is
missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    args: tuple[str, ...]
    quick: tuple[str, ...]


BENCHMARKS = (
    Benchmark("files", "files_bench.py", ("--transfer-repeat", "3"),
              ("--size-mib", "64", "--entries", "1000", "--repeat", "1")),
    Benchmark("load", "load.py", (), ("--clients", "20", "--seconds", "10", "--rounds", "1")),
    Benchmark("load-chart", "load.py", ("--front-door", "chart"),
              ("--front-door", "chart", "--clients", "20", "--seconds", "10", "--rounds", "1")),
    Benchmark("webhook-closed", "webhook_latency.py", ("--seconds", "20", "--rounds", "10"),
              ("--seconds", "2", "--rounds", "2")),
    Benchmark("webhook-open", "webhook_latency.py", ("--rate", "200", "--seconds", "30", "--rounds", "15"),
              ("--rate", "200", "--seconds", "3", "--rounds", "3")),
    Benchmark("hub-scale", "hub_scale.py", (), ("--users", "1000", "--seconds", "2")),
    Benchmark("listing", "listing_bench.py", (), ("--large", "20000", "--rounds", "3", "--jupyter-rounds", "0")),
    Benchmark("spawn-local", "spawn_scale.py", ("--rounds", "3"), ("--users", "1", "10")),
    Benchmark("spawn-kube", "spawnkube.py", ("--rounds", "3"), ("--users", "10",)),
    Benchmark("idle-memory", "idle_memory.py", ("--after-use",), ("--settle", "5", "--samples", "1")),
)
NAMES = tuple(b.name for b in BENCHMARKS)

# the pages and APIs of hub-scale held to the page bound (the rest are the
# reference itself and sign-up POSTs, which a bcrypt hash sets)
HUB_PAGES = ("signups-first-page", "signups-search", "signups-sort", "accounts-api", "hub-admin-page", "hub-users-api")


@dataclass(frozen=True)
class Target:
    """A figure and its bound; with no bound, a figure stated beside the
    targets (what local mode's proxy costs)."""

    what: str
    measured: float | None
    bound: float | None
    at_most: bool = True

    @property
    def met(self) -> bool | None:
        if self.measured is None or self.bound is None:
            return None
        return self.measured <= self.bound if self.at_most else self.measured >= self.bound

    def as_json(self) -> dict:
        return {"what": self.what, "measured": self.measured, "bound": self.bound,
                "at_most": self.at_most, "met": self.met}


def targets(reports: dict[str, dict]) -> list[Target]:
    """The targets each report holds (a report that is missing adds none)."""
    found: list[Target] = []
    spawn = reports.get("spawn-local")
    if spawn:
        for row in spawn["results"]:
            ours = row["karvdash"]
            found.append(Target(f"local spawn, {row['n']} at once: failures", ours["failures"], 0))
            if "wall_s_vs_plain" in row["ratios"] and not row["plain"]["failures"]:
                found.append(Target(f"local spawn, {row['n']} at once: wall time / plain JupyterHub",
                                    row["ratios"]["wall_s_vs_plain"], 1.1))
            if "wall_s_vs_patient" in row["ratios"]:
                found.append(Target(f"local spawn, {row['n']} at once: wall time / JupyterHub without timeouts",
                                    row["ratios"]["wall_s_vs_patient"], 1.1))
    kube = reports.get("spawn-kube")
    if kube:
        for row in kube["results"]:
            found.append(Target(f"Kubernetes spawn, {row['n']} at once: failures", row["karvdash"]["failures"], 0))
            found.append(Target(f"Kubernetes spawn, {row['n']} at once: wall time / plain KubeSpawner",
                                row["ratios"]["wall_s"], 1.1))
    hub = reports.get("hub-scale")
    if hub:
        for name in HUB_PAGES:
            found.append(Target(f"{name} at {hub['accounts']} accounts: p99 / /hub/api",
                                hub["results"][name]["p99_vs_reference"], 2.0))
        found.append(Target(f"sign-up POST at {hub['users']} accounts / at a tenth", hub["signup_p50_at_n_vs_n_tenth"], 1.2))
        # the same users page on a plain JupyterHub with as many users: JupyterHub's own cost (stated)
        plain = hub["plain"]
        found.append(Target(f"hub-users-api on plain JupyterHub with {plain['users']} users: p99 / its /hub/api",
                            plain["results"]["hub-users-api"]["p99_vs_reference"], None))
        found.append(Target("hub-users-api: p99 / plain JupyterHub's", plain["users_api_vs_plain"]["p99"], None))
    files = reports.get("files")
    if files:
        results = files["results"]
        # the deployment's front door is the chart's (its Ingresses, the
        # bulk paths past the proxy); local mode's proxy is stated, not bound
        for operation, bound_door, bound_direct in (("download", 1.5, 1.2), ("upload", 1.5, 1.5)):
            if "ingress" in results[operation]:
                found.append(Target(f"{operation} through the chart's front door / raw copy",
                                    results[operation]["ingress"]["dashboard_vs_raw"], bound_door))
            found.append(Target(f"{operation} straight at the dashboard / raw copy",
                                results[operation]["direct"]["dashboard_vs_raw"], bound_direct))
            found.append(Target(f"{operation} through local mode's proxy / raw copy (the proxy's cost)",
                                results[operation]["proxy"]["dashboard_vs_raw"], None))
        floor = results["download"].get("nginx_static")
        if floor:
            # what no HTTP server does better (stated)
            found.append(Target("download from nginx sending the file itself / raw copy (any server's floor)",
                                floor["vs_raw"], None))
            found.append(Target("download straight at the dashboard / from nginx sending the file itself",
                                floor["dashboard_direct_vs_nginx_static"], None))
        curl = results["download"].get("curl")
        if curl:
            # the same two fetched by curl: a client's own cost (stated)
            found.append(Target("download with curl from nginx sending the file itself / raw copy",
                                curl["nginx_static_vs_raw"], None))
            found.append(Target("download with curl straight at the dashboard / raw copy",
                                curl["dashboard_direct_vs_raw"], None))
    listing = reports.get("listing")
    if listing:
        found.append(Target(f"first page of {listing['large']} entries / of {listing['small']}",
                            listing["ratios"]["first_page_large_vs_small"], 2.0))
    closed = reports.get("webhook-closed")
    if closed:
        found.append(Target("webhook mutate req/s / allow-all reference", closed["goal"]["ratio"], 0.8, at_most=False))
    opened = reports.get("webhook-open")
    if opened:
        found.append(Target("webhook mutate p99 / allow-all reference at 200 req/s", opened["goal"]["ratio"], 1.2))
    memory = reports.get("idle-memory")
    if memory:
        found.append(Target("dashboard idle RSS / the hub's", memory["results"]["idle"]["ratios"]["rss"]["dashboard_vs_hub"], 0.6))
    for name, door in (("load", "local mode's proxy"), ("load-chart", "the chart's front door")):
        load = reports.get(name)
        if load:
            found.append(Target(f"load through {door}: operations/s / jupyter-server's",
                                load["dashboard_vs_jupyter"]["operations_per_s"], 1.5, at_most=False))
            found.append(Target(f"load through {door}: errors", load["results"]["dashboard"]["errors"], 0))
    return found


def markdown(targets_found: list[Target], runs: list[dict], machine: str) -> str:
    lines = [f"Machine: {machine}.", "",
             "| target | measured | bound | met |", "|---|---|---|---|"]
    for target in targets_found:
        sign = "<=" if target.at_most else ">="
        bound = "stated" if target.bound is None else f"{sign} {target.bound:g}"
        met = {True: "yes", False: "**no**", None: "-"}[target.met]
        lines.append(f"| {target.what} | {target.measured} | {bound} | {met} |")
    lines += ["", "| script | arguments | waited for quiet (s) | seconds | load before | load after | exit |",
              "|---|---|---|---|---|---|---|"]
    for run in runs:
        lines.append(f"| {run['name']} | `{' '.join(run['args'])}` | {run.get('settled_seconds', '-')} "
                     f"| {run['seconds']} | {run['loadavg_before']} | {run['loadavg_after']} | {run['returncode']} |")
    return "\n".join(lines) + "\n"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# quiet: the CPU (all cores) less than this busy over SETTLE_SAMPLE seconds,
# and no more than QUIET_UNWRITTEN bytes of the page cache waiting for the
# disk (a benchmark that wrote gigabytes leaves the next one a busy disk)
QUIET_PERCENT = 20.0
QUIET_UNWRITTEN = 64 * 1024 * 1024
SETTLE_SAMPLE = 2.0
SETTLE_LIMIT = 120.0


def unwritten_bytes(meminfo: Path = Path("/proc/meminfo")) -> int:
    """Bytes of the page cache not yet on the disk (Dirty + Writeback)."""
    kib = 0
    for line in meminfo.read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("Dirty", "Writeback"):
            kib += int(value.split()[0])
    return kib * 1024


def settle(busy=lambda: psutil.cpu_percent(interval=SETTLE_SAMPLE), unwritten=unwritten_bytes,
           limit: float = SETTLE_LIMIT, clock=time.monotonic) -> tuple[float, float, int]:
    """Wait until the machine is quiet (``busy()`` below QUIET_PERCENT and
    ``unwritten()`` at most QUIET_UNWRITTEN) or ``limit`` seconds have
    passed; (seconds waited, the last busy percent, the last unwritten bytes)."""
    started = clock()
    while True:
        percent, waiting = busy(), unwritten()
        quiet = percent < QUIET_PERCENT and waiting <= QUIET_UNWRITTEN
        if quiet or clock() - started >= limit:
            return round(clock() - started, 1), percent, waiting


def run_one(benchmark: Benchmark, args: tuple[str, ...], out: Path) -> tuple[dict, dict | None]:
    command = [sys.executable, str(ROOT / "bench" / benchmark.script), *args, "--json"]
    settled, busy, waiting = settle()
    before = round(os.getloadavg()[0], 2)
    started = time.monotonic()
    with open(out / f"{benchmark.name}.log", "w") as log:
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT, check=False)
    run = {"name": benchmark.name, "args": list(args), "returncode": result.returncode,
           "seconds": round(time.monotonic() - started, 1), "settled_seconds": settled,
           "cpu_busy_percent_before": busy, "unwritten_mib_before": round(waiting / 2**20, 1),
           "loadavg_before": before,
           "loadavg_after": round(os.getloadavg()[0], 2)}
    report = None
    if result.returncode == 0:
        try:
            report = json.loads(result.stdout)
        except json.JSONDecodeError:
            run["returncode"] = "not JSON"
    if report is not None:
        (out / f"{benchmark.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    return run, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder for the reports (default: a new temporary one)")
    parser.add_argument("--quick", action="store_true", help="short runs, to try the runner (not figures)")
    parser.add_argument("--only", nargs="+", choices=NAMES, help="these benchmarks only")
    parser.add_argument("--skip", nargs="+", choices=NAMES, default=[], help="all but these")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="karvdash-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"reports in {out}", flush=True)
    chosen = [b for b in BENCHMARKS if (not args.only or b.name in args.only) and b.name not in args.skip]
    machine = f"{os.cpu_count()} cores ({cpu_model()}, {platform.machine()}), Python {platform.python_version()}"
    runs, reports = [], {}
    for benchmark in chosen:
        run, report = run_one(benchmark, benchmark.quick if args.quick else benchmark.args, out)
        runs.append(run)
        if report is not None:
            reports[benchmark.name] = report
        print(f"{benchmark.name}: exit {run['returncode']} in {run['seconds']} s "
              f"(load {run['loadavg_before']} -> {run['loadavg_after']})", flush=True)
    found = targets(reports)
    summary = {"machine": machine, "quick": args.quick, "runs": runs, "targets": [t.as_json() for t in found]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = markdown(found, runs, machine)
    (out / "summary.md").write_text(table)
    print(table)
    return 0 if all(run["returncode"] == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
