"""Benchmark of the dashboard's files API against jupyter-server's contents
API and a raw disk operation, all measured in the same run on this machine.

    .venv/bin/python bench/files_bench.py [--size-mib 1024] [--entries 10000] [--repeat 3] [--json]

It starts a karvdash-hub (local mode, real proxy) and a jupyter server
behind the same proxy (bench/peers.py), then measures each of the two
reached the same way, three ways: through the hub's
configurable-http-proxy (the front door a user has in local mode),
through the chart's front door (nginx serving the chart's Ingresses as
ingress-nginx does, bench/frontdoor.py: the dashboard's bulk paths
straight to it, the jupyter server through the proxy, as a user's server
is on Kubernetes) and straight at its own port:

- listing a folder of --entries files: dashboard ``GET api/files/...``,
  jupyter ``GET api/contents/...?content=1``, raw ``os.scandir`` + ``stat``;
- uploading a --size-mib file: dashboard chunked ``PUT api/uploads/<id>``
  (64 MiB chunks as the CLI sends them, on one kept-alive connection as a
  browser or the CLI keeps it, each body sent from the file by the
  kernel), jupyter chunked contents ``PUT`` (base64 JSON, 1 MiB chunks, as
  JupyterLab sends them), raw ``copyfile`` + fsync into a new file (each
  upload replaces the one of the round before, as a second upload of the
  same file does);
- downloading it into a file + fsync: dashboard ``GET api/download/...``,
  jupyter ``GET files/...`` (what JupyterLab's Download uses; the contents
  API would send the whole file as base64 JSON), raw ``copyfile`` + fsync;
  and, as the floor of any HTTP server, nginx sending the same file itself
  (``sendfile``, straight at its port: ``nginx-static``). The client moves
  the body from the socket to the file in the kernel (``splice`` through a
  pipe), as the uploads' client sends from the file: what is measured is
  the servers' and the proxies' cost over the disk's, not a client's. curl
  (a client in C writing through stdio, 8 KiB per ``write``) fetches from
  nginx-static and from the dashboard straight as well: its own cost,
  stated beside.

Targets take turns in each of --repeat rounds, the raw operation first
(so a change of the shared machine's load, or of its disk's speed, touches
them alike); the median of the rounds is kept, and each ratio to the raw
operation is the median of the rounds' own ratios. After each transfer
(outside its time) the disk's writes are flushed (``sync``), so that no
transfer pays for the writes of the one before. Ratios are time /
comparator time (below 1 means faster): dashboard/jupyter each way, and
dashboard/raw.

Needs ``make setup kube-binaries nginx`` (helm renders the chart's
Ingresses); ``--no-front-door`` measures the other two ways alone.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import http.client
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.peers import Peer, machine, started_peers, static_nginx

MIB = 1024 * 1024
OUR_CHUNK = 64 * MIB
# JupyterLab's upload chunk (files above it are sent in chunks of it)
JUPYTER_CHUNK = 1 * MIB
# through configurable-http-proxy, the chart's front door, straight at each server
WAYS = ("proxy", "ingress", "direct")
WAY_LABELS = {"proxy": "through the proxy", "ingress": "chart's front door", "direct": "direct"}


def make_file(path: Path, size: int) -> None:
    block = os.urandom(MIB)
    with open(path, "wb") as f:
        f.writelines(block[: min(MIB, size - offset)] for offset in range(0, size, MIB))


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def raw_copy(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    fsync_path(target)


def raw_listing(folder: Path) -> None:
    with os.scandir(folder) as scan:
        for entry in scan:
            entry.stat(follow_symlinks=False)


def curl_headers(headers: dict) -> list[str]:
    return [argument for name, value in headers.items() for argument in ("--header", f"{name}: {value}")]


# a transfer's longest wait
TIMEOUT_S = 600
# the pipe between the socket and the file (the kernel's default is 64 KiB)
PIPE_SIZE = 1 * MIB


def fetch_to(url: str, headers: dict, target: Path) -> None:
    """Download with curl (a client in C, as a browser's download is), then
    fsync as the raw copy does."""
    command = ["curl", "--silent", "--show-error", "--fail", "--output", str(target), *curl_headers(headers)]
    subprocess.run([*command, url], check=True, timeout=TIMEOUT_S)
    fsync_path(target)


def receive_to(url: str, headers: dict, target: Path) -> None:
    """GET ``url`` into ``target``, the body moved by the kernel from the
    socket through a pipe into the file (``splice(2)``), then fsync as the
    raw copy does. The answer must be a 200 with a Content-Length."""
    parts = urlsplit(url)
    lines = [f"GET {parts.path}{'?' + parts.query if parts.query else ''} HTTP/1.1", f"Host: {parts.netloc}",
             "Connection: close", *(f"{name}: {value}" for name, value in headers.items())]
    with socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT_S) as sock:
        # splice needs a blocking socket; the receive timeout still bounds each wait
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", TIMEOUT_S, 0))
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        # unbuffered: the head is read a byte at a time, and no byte of the body with it
        head = sock.makefile("rb", buffering=0)
        status = head.readline().split(maxsplit=2)
        answer = http.client.parse_headers(head)
        if len(status) < 2 or status[1] != b"200":
            raise RuntimeError(f"{b' '.join(status)!r} from {url}")
        if "Content-Length" not in answer:
            raise RuntimeError(f"no Content-Length from {url} ({answer.get('Transfer-Encoding', 'no length')})")
        length = int(answer["Content-Length"])
        read_end, write_end = os.pipe()
        try:
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            with open(target, "wb") as f:
                left = length
                while left:
                    moved = os.splice(sock.fileno(), write_end, min(PIPE_SIZE, left))
                    if not moved:
                        raise RuntimeError(f"{url} closed with {left} of {length} bytes to come")
                    left -= moved
                    while moved:
                        moved -= os.splice(read_end, f.fileno(), moved)
                os.fsync(f.fileno())
        finally:
            os.close(read_end)
            os.close(write_end)


class Sender:
    """PUTs of byte ranges of a file on one kept-alive connection, each
    body sent from the file by the kernel (``socket.sendfile``): the client
    costs no copy, as curl would cost one into its buffers, nor a process
    per chunk."""

    def __init__(self, url: str):
        self.connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=TIMEOUT_S)

    def put(self, url: str, headers: dict, source, offset: int, length: int) -> bytes:
        """PUT ``length`` bytes of the open file ``source`` from ``offset``; the answer's body."""
        parts = urlsplit(url)
        self.connection.putrequest("PUT", parts.path + (f"?{parts.query}" if parts.query else ""), skip_accept_encoding=True)
        for name, value in {**headers, "Content-Length": str(length)}.items():
            self.connection.putheader(name, value)
        self.connection.endheaders()
        sent = self.connection.sock.sendfile(source, offset, length)
        if sent != length:
            raise RuntimeError(f"sent {sent} of {length} bytes to {url}")
        answer = self.connection.getresponse()
        body = answer.read()
        if answer.status >= 400:
            raise RuntimeError(f"{answer.status} from {url}: {body[:200]!r}")
        return body

    def close(self) -> None:
        self.connection.close()


class Jupyter:
    """jupyter-server's contents API and files handler, as JupyterLab uses them."""

    def __init__(self, peer: Peer, way: str):
        self.base = peer.url(way)
        self.session = requests.Session()
        self.session.headers.update(peer.headers)
        self.headers = peer.headers

    def list(self, path: str) -> None:
        self.session.get(f"{self.base}api/contents/{path}", params={"content": "1"}, timeout=TIMEOUT_S).raise_for_status()

    def upload(self, source: Path, path: str) -> None:
        size = source.stat().st_size
        with open(source, "rb") as f:
            chunk = 1
            while True:
                data = f.read(JUPYTER_CHUNK)
                last = f.tell() >= size
                body = {
                    "type": "file",
                    "format": "base64",
                    "name": Path(path).name,
                    "chunk": -1 if last else chunk,
                    "content": base64.b64encode(data).decode(),
                }
                self.session.put(f"{self.base}api/contents/{path}", json=body, timeout=TIMEOUT_S).raise_for_status()
                if last:
                    return
                chunk += 1

    def download(self, path: str, target: Path) -> None:
        receive_to(f"{self.base}files/{path}", self.headers, target)


class Dashboard:
    """The dashboard's files API, as its Files page uses it."""

    def __init__(self, peer: Peer, way: str):
        self.api = peer.url(way) + "api/"
        self.session = requests.Session()
        self.session.headers.update(peer.headers)
        self.headers = peer.headers

    def list(self, path: str) -> None:
        self.session.get(self.api + f"files/private/{path}", timeout=TIMEOUT_S).raise_for_status()

    def upload(self, source: Path, path: str) -> None:
        """Chunks of OUR_CHUNK, each sent from the file by the kernel (as a
        browser sends slices of a file), on one connection."""
        size = source.stat().st_size
        started = self.session.post(
            self.api + "uploads", json={"domain": "private", "path": path, "size": size, "overwrite": True}, timeout=60
        )
        started.raise_for_status()
        upload_id, offset = started.json()["id"], 0
        sender = Sender(self.api)
        try:
            with open(source, "rb") as f:
                while True:
                    length = min(OUR_CHUNK, size - offset)
                    answer = json.loads(sender.put(
                        self.api + f"uploads/{upload_id}", {**self.headers, "Upload-Offset": str(offset)}, f, offset, length
                    ))
                    offset = answer["offset"]
                    if answer["complete"]:
                        return
        finally:
            sender.close()

    def download(self, path: str, target: Path, fetch=receive_to) -> None:
        fetch(self.api + f"download/private/{path}", self.headers, target)


def take_turns(runs: dict, rounds: int, after=None) -> dict[str, list[float]]:
    """Seconds of each run in each round, the runs taking turns in every
    round in their order; ``after`` is called after each run (outside the
    timing)."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
            if after:
                after()
    return times


def ratios(times: dict[str, list[float]], ways, size: int = 0) -> dict:
    """The report of one operation: median seconds per target and the
    ratios (to the raw operation: the median of each round's own ratio)."""
    seconds = {name: statistics.median(values) for name, values in times.items()}
    raw = seconds["raw"]

    def to_raw(name: str) -> float:
        return round(statistics.median(t / r for t, r in zip(times[name], times["raw"])), 3)

    # microseconds: a small listing takes a few milliseconds, and a coarser figure would not give its ratio back
    result: dict = {"raw_seconds": round(raw, 6), "rounds": len(times["raw"])}
    for way in ways:
        ours, theirs = seconds[f"dashboard-{way}"], seconds[f"jupyter-{way}"]
        result[way] = {
            "dashboard_seconds": round(ours, 6),
            "jupyter_seconds": round(theirs, 6),
            "dashboard_vs_jupyter": round(ours / theirs, 3),
            "dashboard_vs_raw": to_raw(f"dashboard-{way}"),
            "jupyter_vs_raw": to_raw(f"jupyter-{way}"),
        }
        if size:
            result[way]["dashboard_mib_s"] = round(size / MIB / ours, 1)
            result[way]["jupyter_mib_s"] = round(size / MIB / theirs, 1)
    if size:
        result["raw_mib_s"] = round(size / MIB / raw, 1)
    if "nginx-static" in times:
        floor = seconds["nginx-static"]
        result["nginx_static"] = {
            "seconds": round(floor, 6),
            "vs_raw": to_raw("nginx-static"),
            # what the dashboard reached straight adds to the best a server does for this client
            "dashboard_direct_vs_nginx_static": round(statistics.median(
                t / f for t, f in zip(times["dashboard-direct"], times["nginx-static"])), 3),
        }
    if "nginx-static-curl" in times:
        result["curl"] = {
            "nginx_static_seconds": round(seconds["nginx-static-curl"], 6),
            "nginx_static_vs_raw": to_raw("nginx-static-curl"),
            "dashboard_direct_seconds": round(seconds["dashboard-direct-curl"], 6),
            "dashboard_direct_vs_raw": to_raw("dashboard-direct-curl"),
        }
    return result


def print_report(title: str, result: dict, transfer: bool, ways) -> None:
    print(f"\n{title}")
    print(f"  {'reached':<20}{'dashboard s':>12}{'jupyter s':>12}{'dash/jupyter':>14}{'dash/raw':>10}{'jupyter/raw':>13}"
          + (f"{'dash MiB/s':>12}{'jupyter MiB/s':>15}" if transfer else ""))
    for way in ways:
        r = result[way]
        line = (f"  {WAY_LABELS[way]:<20}{r['dashboard_seconds']:>12.3f}{r['jupyter_seconds']:>12.3f}"
                f"{r['dashboard_vs_jupyter']:>13.2f}x{r['dashboard_vs_raw']:>9.2f}x{r['jupyter_vs_raw']:>12.2f}x")
        if transfer:
            line += f"{r['dashboard_mib_s']:>12.1f}{r['jupyter_mib_s']:>15.1f}"
        print(line)
    raw = f"  {'raw':<20}{result['raw_seconds']:>12.3f}"
    if transfer:
        raw += f"{'':>49}{result['raw_mib_s']:>12.1f}"
    print(raw)
    if "nginx_static" in result:
        floor = result["nginx_static"]
        print(f"  {'nginx-static':<20}{floor['seconds']:>12.3f}{'':>26}{floor['vs_raw']:>9.2f}x"
              f"   (dashboard direct / nginx-static: {floor['dashboard_direct_vs_nginx_static']:.2f}x)")
    if "curl" in result:
        curl = result["curl"]
        print(f"  with curl: nginx-static {curl['nginx_static_seconds']:.3f} s, {curl['nginx_static_vs_raw']:.2f}x raw;"
              f" dashboard direct {curl['dashboard_direct_seconds']:.3f} s, {curl['dashboard_direct_vs_raw']:.2f}x raw")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the transferred file (default 1024)")
    parser.add_argument("--entries", type=int, default=10_000, help="files in the listed folder (default 10000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each listing, median kept (default 3)")
    parser.add_argument("--transfer-repeat", type=int, default=1, help="rounds of each transfer, median kept (default 1)")
    parser.add_argument("--no-front-door", action="store_true",
                        help="without the chart's front door (no helm or nginx needed)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    ways = tuple(way for way in WAYS if not (args.no_front_door and way == "ingress"))
    size = args.size_mib * MIB
    say = (lambda *a, **k: print(*a, file=sys.stderr, **k)) if args.json else print

    work = Path(tempfile.mkdtemp(prefix="karvdash-bench-"))
    before = machine()
    results: dict = {}
    try:
        with started_peers(work, front_door="ingress" in ways) as peers:
            clients = {}
            for way in ways:
                clients[f"dashboard-{way}"] = Dashboard(peers.dashboard, way)
                clients[f"jupyter-{way}"] = Jupyter(peers.jupyter, way)
            ours, theirs = peers.dashboard_root, peers.jupyter_root
            say(f"karvdash-hub at {peers.hub.url}: dashboard {peers.dashboard.direct}, "
                f"jupyter server {peers.jupyter.direct}, both also through the proxy"
                + (f" and the chart's front door ({peers.dashboard.ingress})" if "ingress" in ways else "")
                + f"; files in {work}")

            # --- listing ---------------------------------------------------------------------
            for folder in (ours / "many", theirs / "many"):
                folder.mkdir()
                for i in range(args.entries):
                    (folder / f"file-{i:05d}.txt").write_bytes(b"x" * (i % 100))
            runs = {name: (lambda c=client: c.list("many")) for name, client in clients.items()}
            for run in runs.values():  # warm-up
                run()
            runs = {"raw": lambda: raw_listing(ours / "many"), **runs}
            results["list"] = ratios(take_turns(runs, args.repeat), ways)
            shutil.rmtree(ours / "many")
            shutil.rmtree(theirs / "many")
            say(f"listed {args.entries} entries")

            # --- upload --------------------------------------------------------------------
            source = work / "source.bin"
            make_file(source, size)
            fsync_path(source)
            copy = work / "raw-copy.bin"
            runs = {"raw": lambda: raw_copy(source, copy),
                    **{name: (lambda c=client: c.upload(source, "big.bin")) for name, client in clients.items()}}
            # the raw copy always writes a new file (its last one is deleted
            # outside the timing): freeing the old one's blocks is not in it,
            # while each upload replaces the big.bin of the round before
            results["upload"] = ratios(
                take_turns(runs, args.transfer_repeat, after=lambda: (copy.unlink(missing_ok=True), os.sync())),
                ways, size,
            )
            copy.unlink(missing_ok=True)
            say(f"uploaded {args.size_mib} MiB")

            # --- download ------------------------------------------------------------------
            target = work / "downloaded.bin"
            with static_nginx(work, ours, "/big.bin") as floor:
                runs = {"raw": lambda: raw_copy(ours / "big.bin", target),
                        **{name: (lambda c=client: c.download("big.bin", target)) for name, client in clients.items()},
                        "nginx-static": lambda: receive_to(floor.url + "/big.bin", {}, target),
                        "nginx-static-curl": lambda: fetch_to(floor.url + "/big.bin", {}, target),
                        "dashboard-direct-curl": lambda: clients["dashboard-direct"].download(
                            "big.bin", target, fetch=fetch_to)}
                results["download"] = ratios(
                    take_turns(runs, args.transfer_repeat, after=lambda: (target.unlink(missing_ok=True), os.sync())),
                    ways, size,
                )
            say(f"downloaded {args.size_mib} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report = {
        "command": " ".join(["bench/files_bench.py", *sys.argv[1:]]),
        "machine": before,
        "loadavg_after": list(os.getloadavg()),
        "entries": args.entries,
        "size_mib": args.size_mib,
        "repeat": args.repeat,
        "transfer_repeat": args.transfer_repeat,
        "ways": list(ways),
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    m = before
    print(f"\npython {m['python']}, {m['cores']} cores ({m['cpu']}), load average {m['loadavg'][0]:.2f} "
          f"before and {report['loadavg_after'][0]:.2f} after")
    print_report(f"List a folder of {args.entries} files (median of {args.repeat})", results["list"], False, ways)
    print_report(f"Upload {args.size_mib} MiB (median of {args.transfer_repeat})", results["upload"], True, ways)
    print_report(f"Download {args.size_mib} MiB (median of {args.transfer_repeat})", results["download"], True, ways)
    for way, door in (("proxy", "local mode's front door (the proxy)"), ("ingress", "the chart's front door")):
        if way in ways:
            print(f"\nThrough {door}, dashboard/jupyter and dashboard/raw:")
            for operation in ("list", "upload", "download"):
                r = results[operation][way]
                print(f"  {operation:<10}{r['dashboard_vs_jupyter']:>6.2f}x {r['dashboard_vs_raw']:>6.2f}x")


if __name__ == "__main__":
    main()
