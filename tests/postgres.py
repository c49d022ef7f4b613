"""A real PostgreSQL server for tests: Debian's postgresql (``make
postgresql`` installs it), a fresh cluster in a temporary folder, listening
on a free 127.0.0.1 port with trust authentication for its own user.

PostgreSQL refuses to run as root: as root, the cluster belongs to the
``postgres`` account the Debian package makes, and runs as it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from karvdash_hub.hub.service import free_loopback_port

SUPERUSER = "karvdash"


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl (/usr/lib/postgresql/<version>/bin), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


@dataclass
class PostgresServer:
    folder: Path
    port: int
    bin_dir: Path
    run_as: list[str]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        subprocess.run([*self.run_as, str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.folder / "data"),
                        "-m", "fast", "-w"], capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres(timeout: float = 60) -> PostgresServer:
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed: run make postgresql")
    folder = Path(tempfile.mkdtemp(prefix="karvdash-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_loopback_port()
    data = folder / "data"
    subprocess.run([*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust",
                    "--no-sync", "-E", "UTF8"], check=True, capture_output=True, timeout=timeout)
    options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off"
    subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "start", "-D", str(data), "-o", options,
                    "-l", str(folder / "server.log"), "-w", "-t", str(int(timeout))],
                   check=True, capture_output=True, timeout=timeout + 10)
    server = PostgresServer(folder=folder, port=port, bin_dir=bin_dir, run_as=run_as)
    deadline = time.monotonic() + timeout
    while subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                         capture_output=True, check=False).returncode != 0:
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError("PostgreSQL did not answer")
        time.sleep(0.2)
    return server
