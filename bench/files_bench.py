"""Benchmark of the dashboard's files API against jupyter-server's contents
API and a raw disk operation, all measured in the same run on this machine.

    .venv/bin/python bench/files_bench.py [--size-mib 1024] [--entries 10000] [--repeat 3]

It starts a karvdash-hub (local mode, real proxy) and a jupyter server on
loopback ports, then measures:

- listing a folder of --entries files: dashboard ``GET api/files/...``,
  jupyter ``GET api/contents/...``, raw ``os.scandir`` + ``stat``;
- uploading a --size-mib file: dashboard chunked ``PUT api/uploads/<id>``
  (64 MiB chunks), jupyter chunked contents ``PUT`` (base64, 8 MiB chunks, as
  JupyterLab does), raw ``copyfile`` + fsync;
- downloading it: dashboard ``GET api/download/...``, jupyter ``GET files/...``
  (what JupyterLab's Download uses; the contents API would send the whole
  file as base64 JSON), raw ``copyfile`` + fsync.

The dashboard is measured through the hub's proxy (as browsers reach it)
and straight at the service port. Ratios are time / comparator time
(below 1 means faster than the comparator).
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.hubprocess import free_port, start_hub  # noqa: E402

MIB = 1024 * 1024
OUR_CHUNK = 64 * MIB
JUPYTER_CHUNK = 8 * MIB


def timed(function, repeat: int = 1) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def make_file(path: Path, size: int) -> None:
    block = os.urandom(MIB)
    with open(path, "wb") as f:
        for offset in range(0, size, MIB):
            f.write(block[: min(MIB, size - offset)])


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


class Jupyter:
    def __init__(self, root: Path):
        self.port = free_port()
        self.token = "bench-token-" + os.urandom(8).hex()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(root.parent / "jupyter.log", "wb")
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "jupyter"),
                "server",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                "--ServerApp.open_browser=False",
                f"--ServerApp.root_dir={root}",
                f"--IdentityProvider.token={self.token}",
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {self.token}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter server exited with {self.process.returncode}")
            try:
                if self.session.get(self.url + "/api/status", timeout=2).ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.3)
        raise RuntimeError("jupyter server did not start")

    def list(self, path: str) -> None:
        response = self.session.get(f"{self.url}/api/contents/{path}", params={"content": "1"}, timeout=600)
        response.raise_for_status()

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
                    "path": path,
                    "chunk": -1 if last else chunk,
                    "content": base64.b64encode(data).decode(),
                }
                self.session.put(f"{self.url}/api/contents/{path}", json=body, timeout=600).raise_for_status()
                if last:
                    return
                chunk += 1

    def download(self, path: str, target: Path) -> None:
        with self.session.get(f"{self.url}/files/{path}", stream=True, timeout=600) as response:
            response.raise_for_status()
            with open(target, "wb") as f:
                for piece in response.iter_content(MIB):
                    f.write(piece)
            fsync_path(target)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)
        self.log.close()


class Dashboard:
    def __init__(self, base: str, token: str):
        self.api = base + "/services/karvdash/api/"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"

    def list(self, path: str) -> None:
        self.session.get(self.api + f"files/private/{path}", timeout=600).raise_for_status()

    def upload(self, source: Path, path: str) -> None:
        size = source.stat().st_size
        started = self.session.post(
            self.api + "uploads", json={"domain": "private", "path": path, "size": size, "overwrite": True}, timeout=60
        )
        started.raise_for_status()
        upload_id, offset = started.json()["id"], 0
        with open(source, "rb") as f:
            while True:
                data = f.read(OUR_CHUNK)
                answer = self.session.put(
                    self.api + f"uploads/{upload_id}", data=data, headers={"Upload-Offset": str(offset)}, timeout=600
                )
                answer.raise_for_status()
                offset = answer.json()["offset"]
                if answer.json()["complete"]:
                    return

    def download(self, path: str, target: Path) -> None:
        with self.session.get(self.api + f"download/private/{path}", stream=True, timeout=600) as response:
            response.raise_for_status()
            with open(target, "wb") as f:
                for piece in response.iter_content(MIB):
                    f.write(piece)
            fsync_path(target)


def ratio(value: float, reference: float) -> str:
    return f"{value / reference:6.2f}x" if reference else "   -"


def report(title: str, rows: list[tuple[str, float]], jupyter: float, raw: float, size: int = 0) -> None:
    print(f"\n{title}")
    print(f"  {'what':34} {'seconds':>9} {'MiB/s':>9} {'vs jupyter':>11} {'vs raw':>9}")
    for name, seconds in rows:
        rate = f"{size / MIB / seconds:9.1f}" if size else f"{'':9}"
        print(f"  {name:34} {seconds:9.3f} {rate} {ratio(seconds, jupyter):>11} {ratio(seconds, raw):>9}")


def measure_transfer(title: str, size: int, *, raw, jupyter, proxied, direct, written: Path) -> None:
    """Time the four ways of moving one file; ``written`` is removed after
    each way that leaves a local copy."""

    def once(run) -> float:
        seconds = timed(run)
        written.unlink(missing_ok=True)
        return seconds

    raw_seconds = once(raw)
    jupyter_name, jupyter_run = jupyter
    jupyter_seconds = once(jupyter_run)
    rows = [
        ("dashboard, through the proxy", once(proxied)),
        ("dashboard, direct", once(direct)),
        (jupyter_name, jupyter_seconds),
        ("raw copyfile + fsync", raw_seconds),
    ]
    report(title, rows, jupyter_seconds, raw_seconds, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the transferred file (default 1024)")
    parser.add_argument("--entries", type=int, default=10_000, help="files in the listed folder (default 10000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each listing (median kept)")
    args = parser.parse_args()
    size = args.size_mib * MIB

    work = Path(tempfile.mkdtemp(prefix="karvdash-bench-"))
    hub = jupyter = None
    try:
        hub = start_hub(work / "hub")
        token = hub.token_for(hub.admin)
        service_url = hub.api("GET", "/services/karvdash", token=token).json()["url"]
        proxied, direct = Dashboard(hub.url, token), Dashboard(service_url, token)
        private = work / "hub" / "files" / "private" / hub.admin
        private.mkdir(parents=True, exist_ok=True)
        jupyter_root = work / "jupyter"
        jupyter_root.mkdir()
        jupyter = Jupyter(jupyter_root)
        print(f"karvdash-hub at {hub.url}, dashboard at {service_url}, jupyter server at {jupyter.url}")
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, files in {work}")

        # --- listing ---------------------------------------------------------------------
        for folder in (private / "many", jupyter_root / "many"):
            folder.mkdir()
            for i in range(args.entries):
                (folder / f"file-{i:05d}.txt").write_bytes(b"x" * (i % 100))
        proxied.list("many")  # warm-up
        jupyter.list("many")
        raw = timed(lambda: raw_listing(private / "many"), args.repeat)
        theirs = timed(lambda: jupyter.list("many"), args.repeat)
        rows = [
            ("dashboard, through the proxy", timed(lambda: proxied.list("many"), args.repeat)),
            ("dashboard, direct", timed(lambda: direct.list("many"), args.repeat)),
            ("jupyter-server contents API", theirs),
            ("raw scandir + stat", raw),
        ]
        report(f"List a folder of {args.entries} files (median of {args.repeat})", rows, theirs, raw)
        shutil.rmtree(private / "many")
        shutil.rmtree(jupyter_root / "many")

        # --- upload --------------------------------------------------------------------
        source = work / "source.bin"
        make_file(source, size)
        fsync_path(source)
        copy = work / "raw-copy.bin"
        measure_transfer(
            f"Upload {args.size_mib} MiB",
            size,
            raw=lambda: raw_copy(source, copy),
            jupyter=("jupyter-server contents API", lambda: jupyter.upload(source, "big.bin")),
            proxied=lambda: proxied.upload(source, "big.bin"),
            direct=lambda: direct.upload(source, "big.bin"),
            written=copy,
        )

        # --- download ------------------------------------------------------------------
        target = work / "downloaded.bin"
        measure_transfer(
            f"Download {args.size_mib} MiB",
            size,
            raw=lambda: raw_copy(private / "big.bin", target),
            jupyter=("jupyter-server files handler", lambda: jupyter.download("big.bin", target)),
            proxied=lambda: proxied.download("big.bin", target),
            direct=lambda: direct.download("big.bin", target),
            written=target,
        )
    finally:
        if jupyter:
            jupyter.stop()
        if hub:
            hub.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
