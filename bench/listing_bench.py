"""Large folders: the first page of a folder of --large entries against one
of --small entries, through the hub's proxy as a browser reaches the
dashboard, beside jupyter-server's contents API for the same folders
through the same proxy, and the dashboard's memory after.

    .venv/bin/python bench/listing_bench.py [--small 100] [--large 100000] [--rounds 7] [--json]

It starts a karvdash-hub (local mode, the real configurable-http-proxy) and
a jupyter server behind that proxy (bench/peers.py), fills two folders of
empty files in each one's root, and measures, in interleaved rounds
(median of --rounds, one client, keep-alive):

- dashboard ``GET api/files/private/<folder>?limit=100``: the first page
  by name (the Files page and karvdashctl ask so), of the small folder and
  of the large one, and their ratio (the goal: at most 2x). The very first
  listing of a large folder reads it whole and indexes its names
  (``karvdash_hub/files/nameindex.py``): timed once, as ``-indexing``;
- the same by size (every entry looked at) and a later page (by cursor);
- the answer without paging (every entry, the shape of clients that know
  no paging), once per round;
- jupyter-server ``GET api/contents/<folder>?content=1`` (what JupyterLab's
  file browser asks; it has no paging), fewer rounds for the large folder;
- raw: ``os.scandir`` of the folder without ``stat``, in this process;
- the dashboard's resident memory (RSS, and its peak VmHWM) before any
  listing, after the paged listings, and after the answers without paging.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.peers import Peer, machine, started_peers
from karvdash_hub.dashboard.app import COLLECT_INTERVAL
from karvdash_hub.files.nameindex import SETTLED

PAGE = 100
MIB = 1024 * 1024


def fill(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        os.close(os.open(folder / f"file-{i:07d}.dat", os.O_WRONLY | os.O_CREAT, 0o644))


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def getter(session: requests.Session, url: str, **params):
    def call():
        response = session.get(url, params=params, timeout=1200)
        response.raise_for_status()
        response.content  # noqa: B018 - the whole body, as a client reads it
    return call


def scan(folder: Path):
    def call():
        with os.scandir(folder) as entries:
            for _ in entries:
                pass
    return call


def memory(pid: int) -> dict:
    info = {"rss_mib": round(psutil.Process(pid).memory_info().rss / MIB, 1)}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            info["peak_mib"] = round(int(line.split()[1]) / 1024, 1)
    return info


def session_for(peer: Peer) -> requests.Session:
    session = requests.Session()
    session.headers.update(peer.headers)
    return session


def run(small: int, large: int, rounds: int, jupyter_rounds: int, work: Path, settle: float) -> dict:
    with started_peers(work) as peers:
        folders = {"small": f"n{small}", "large": f"n{large}"}
        counts = {"small": small, "large": large}
        for kind, name in folders.items():
            fill(peers.dashboard_root / name, counts[kind])
            fill(peers.jupyter_root / name, counts[kind])
        dashboard, jupyter = session_for(peers.dashboard), session_for(peers.jupyter)
        api = peers.dashboard.proxied + "api/files/private/"
        contents = peers.jupyter.proxied + "api/contents/"
        # the first listing of a folder that has settled reads it whole and indexes its names
        time.sleep(SETTLED + 0.5)
        cold = {kind: timed(getter(dashboard, api + name, limit=PAGE)) for kind, name in folders.items()}
        # a later page: the cursor after the first page of the large folder
        first = dashboard.get(api + folders["large"], params={"limit": PAGE}, timeout=600).json()
        assert len(first["entries"]) == min(PAGE, large) and (large <= PAGE or first["next"]), first.get("next")
        targets = {}
        for kind, name in folders.items():
            targets[f"first-page-{kind}"] = getter(dashboard, api + name, limit=PAGE)
            targets[f"first-page-by-size-{kind}"] = getter(dashboard, api + name, limit=PAGE, sort="size")
            targets[f"raw-scandir-{kind}"] = scan(peers.dashboard_root / name)
        if first.get("next"):
            targets["later-page-large"] = getter(dashboard, api + folders["large"], limit=PAGE, cursor=first["next"])
        unpaged = {kind: getter(dashboard, api + name) for kind, name in folders.items()}
        jupyters = {kind: getter(jupyter, contents + name, content=1) for kind, name in folders.items()}

        pid = peers.dashboard.pid
        getter(dashboard, api + folders["small"], limit=PAGE)()  # the dashboard's first answer warms it up
        before = memory(pid)
        times: dict[str, list[float]] = {name: [] for name in [*targets, "unpaged-small", "unpaged-large",
                                                                "jupyter-small", "jupyter-large"]}
        for _ in range(rounds):
            for name, call in targets.items():
                times[name].append(timed(call))
        after_paged = memory(pid)
        for number in range(rounds):
            for kind in folders:
                times[f"unpaged-{kind}"].append(timed(unpaged[kind]))
            times["jupyter-small"].append(timed(jupyters["small"]))
            if number < jupyter_rounds:
                times["jupyter-large"].append(timed(jupyters["large"]))
        after_unpaged = memory(pid)
        # what stays once the dashboard's periodic full collection has run
        time.sleep(settle)
        settled = memory(pid)

    for kind, seconds in cold.items():
        times[f"first-page-{kind}-indexing"] = [seconds]
    results = {name: {"runs": len(values), "median_ms": round(statistics.median(values) * 1000, 2),
                      "min_ms": round(min(values) * 1000, 2)} for name, values in times.items() if values}

    def ratio(a: str, b: str) -> float | None:
        if a not in results or b not in results:
            return None
        return round(results[a]["median_ms"] / results[b]["median_ms"], 4)

    ratios = {
        "first_page_large_vs_small": ratio("first-page-large", "first-page-small"),
        "first_page_by_size_large_vs_small": ratio("first-page-by-size-large", "first-page-by-size-small"),
        "first_page_large_vs_jupyter_large": ratio("first-page-large", "jupyter-large"),
        "first_page_small_vs_jupyter_small": ratio("first-page-small", "jupyter-small"),
        "unpaged_large_vs_jupyter_large": ratio("unpaged-large", "jupyter-large"),
        "first_page_large_vs_raw_scandir_large": ratio("first-page-large", "raw-scandir-large"),
    }
    ratios["later_page_large_vs_first_page_small"] = ratio("later-page-large", "first-page-small")
    ratios = {name: value for name, value in ratios.items() if value is not None}
    return {
        "small": small, "large": large, "page": PAGE, "rounds": rounds,
        "results": results, "ratios": ratios,
        "dashboard_memory": {"before": before, "after_paged": after_paged, "after_unpaged": after_unpaged,
                             "after_unpaged_settled": settled},
        "settle_s": settle,
        "machine": machine(),
    }


def print_report(report: dict) -> None:
    print(f"folders of {report['small']:,} and {report['large']:,} empty files; pages of {report['page']}; "
          f"median of {report['rounds']} rounds; load average {report['machine']['loadavg']}")
    print(f"\n  {'what':34} {'runs':>5} {'median ms':>11} {'min ms':>9}")
    for name, figures in report["results"].items():
        print(f"  {name:34} {figures['runs']:5} {figures['median_ms']:11.2f} {figures['min_ms']:9.2f}")
    print("\nratios (time / reference time)")
    for name, value in report["ratios"].items():
        print(f"  {name:44} {value:9.3f}x")
    print("\ndashboard memory (MiB)")
    for when, figures in report["dashboard_memory"].items():
        print(f"  {when:14} RSS {figures['rss_mib']:7.1f}   peak {figures.get('peak_mib', 0):7.1f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--jupyter-rounds", type=int, default=1,
                        help="rounds of jupyter-server's large listing (it takes minutes at 100,000; 0 skips it)")
    parser.add_argument("--settle", type=float, default=COLLECT_INTERVAL + 3,
                        help="seconds to wait after the unpaged listings before reading the memory again "
                             f"(default {COLLECT_INTERVAL + 3}: the dashboard collects every {COLLECT_INTERVAL})")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="listing-bench-") as work:
        report = run(args.small, args.large, args.rounds, args.jupyter_rounds, Path(work), args.settle)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
