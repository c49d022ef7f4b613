"""``python -m karvdash_hub.dashboard.supervisor``: run the dashboard and
start it again when it dies.

JupyterHub starts a managed service once and never again: a dashboard that
crashes or is killed stays down until the hub restarts. In local mode the
hub runs this supervisor instead, which runs ``python -m
karvdash_hub.dashboard`` (with the same arguments) as its child, starts it
again after a backoff when it exits on its own, and passes SIGINT/SIGTERM
on to it when the hub stops the service, then exits with it.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import sys
import time

# the exit status of the dashboard on bad settings (EX_CONFIG of sysexits.h);
# defined here, not in app.py, so the supervisor loads none of the dashboard
CONFIG_ERROR_STATUS = 78
INITIAL_DELAY = 1.0
MAX_DELAY = 30.0
# a child that ran this long was healthy: its next restart waits INITIAL_DELAY again
STABLE_SECONDS = 60.0
# exits that another start cannot fix: bad arguments (argparse) and bad settings
FATAL_STATUSES = {2, CONFIG_ERROR_STATUS}
PR_SET_PDEATHSIG = 1
log = logging.getLogger("karvdash.supervisor")


def restart_delay(previous: float | None, uptime: float) -> float:
    """Seconds to wait before the next start: doubling from INITIAL_DELAY up
    to MAX_DELAY while the child keeps dying, back to INITIAL_DELAY once it
    ran STABLE_SECONDS."""
    if previous is None or uptime >= STABLE_SECONDS:
        return INITIAL_DELAY
    return min(previous * 2, MAX_DELAY)


def die_with_parent() -> None:
    """In the child before exec: the kernel sends it SIGTERM when the
    supervisor dies, even by SIGKILL, so no dashboard outlives it."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the signals passed on are all there is


async def supervise(command: list[str]) -> int:
    """Run ``command`` until a signal stops it; the exit status to end with."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    child: asyncio.subprocess.Process | None = None

    def stop(signum: int) -> None:
        stopping.set()
        if child is not None and child.returncode is None:
            child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)
    delay = None
    while not stopping.is_set():
        started = time.monotonic()
        child = await asyncio.create_subprocess_exec(*command, preexec_fn=die_with_parent)
        if stopping.is_set():  # the signal came while the child was starting
            child.terminate()
        status = await child.wait()
        if stopping.is_set():
            return 0 if status in (0, -signal.SIGTERM, -signal.SIGINT) else status
        if status in FATAL_STATUSES:
            log.error("dashboard exited with %d: not starting it again", status)
            return status
        uptime = time.monotonic() - started
        delay = restart_delay(delay, uptime)
        log.warning("dashboard exited with %s after %.0f s; starting it again in %.0f s", status, uptime, delay)
        try:
            await asyncio.wait_for(stopping.wait(), delay)
        except asyncio.TimeoutError:
            pass
    return 0


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
    args = sys.argv[1:] if argv is None else argv
    raise SystemExit(asyncio.run(supervise([sys.executable, "-m", "karvdash_hub.dashboard", *args])))


if __name__ == "__main__":
    main()
