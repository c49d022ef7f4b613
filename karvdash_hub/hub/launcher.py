"""``karvdash-hub``: check the settings, then run JupyterHub with the
project's configuration. JupyterHub's own options (``--ip``, ``--port``,
``--debug``, ...) pass through.

In local mode one hub runs per state folder: the hub holds a lock on
``<stateDir>/karvdash-hub.pid`` (its pid and address) for as long as it
runs, and a second start in the same folder says where the first one is and
stops before it changes anything (JupyterHub itself would stop the first
hub's proxy). The address is printed once the login page answers, not when
the proxy starts, which is seconds before the hub has its routes.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import signal
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlunsplit

# Only light imports up here: a second start must refuse at once. What the
# hub needs is imported after the lock, once, into the process that becomes
# the hub (JupyterHub runs in this process, not in a second Python).
from karvdash_hub.core.paths import HUB_CONFIG_FILE
from karvdash_hub.core.settings import SettingsError, load_settings

USAGE = """usage: karvdash-hub [JUPYTERHUB OPTIONS]
       karvdash-hub COMMAND [ARGS]   (commands: {commands}; COMMAND --help for each)

Runs JupyterHub with karvdash-hub's configuration. Settings come from the
values file named by $KARVDASH_VALUES and from KARVDASH_* environment
variables (see the README). Any JupyterHub option passes through, for
example --port 8080 or --debug; `jupyterhub --help-all` lists them.

In local mode one hub runs per state folder: a second start says where the
first one runs and exits with status 3.
"""

# karvdash-hub's own commands, imported only when asked for: name ->
# (module, function taking the remaining arguments and returning an exit status)
COMMANDS: dict[str, tuple[str, str]] = {
    "check-template": ("karvdash_hub.services.check", "main"),
    "migrate": ("karvdash_hub.migration.command", "main"),
}

LOCK_FILE = "karvdash-hub.pid"
ANNOUNCING_PROXY = "karvdash_hub.hub.readiness.AnnouncingProxy"
# exit status of a start refused because a hub already runs on the same state
ALREADY_RUNNING = 3

# JupyterHub options that make up the hub's public address (its aliases, as
# in jupyterhub.app.aliases, and the traits behind them)
ADDRESS_OPTIONS = {
    "ip": "ip", "JupyterHub.ip": "ip",
    "port": "port", "JupyterHub.port": "port",
    "base-url": "base_url", "JupyterHub.base_url": "base_url",
    "ssl-cert": "ssl_cert", "JupyterHub.ssl_cert": "ssl_cert",
}
# what hub/config.py sets in local mode unless told otherwise
LOCAL_ADDRESS = {"ip": "127.0.0.1", "port": 8000, "base_url": "/"}
WILDCARD_HOSTS = {"", "0.0.0.0", "::", "*"}


class AlreadyRunning(Exception):
    def __init__(self, pid: int | None, url: str):
        self.pid, self.url = pid, url
        where = f" at {url}" if url else ""
        super().__init__(f"already running{where} (pid {pid if pid else 'unknown'})")


@dataclass
class HubLock:
    """The lock of one state folder, held by the hub's process.

    An flock rather than a bare pid file: the kernel drops it however the hub
    ends, so the file a dead hub left behind is simply taken over."""

    path: Path
    fd: int

    @classmethod
    def take(cls, state_dir: Path, url: str) -> HubLock:
        """Lock ``<state_dir>/karvdash-hub.pid`` for this process; raise
        AlreadyRunning with the holder's pid and address when another has it."""
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = state_dir / LOCK_FILE
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise AlreadyRunning(holder.get("pid"), holder.get("url", "")) from None
            # a hub that stopped between our open and flock removed the file:
            # the lock must be on the file that is there now
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "url": url}).encode() + b"\n", 0)
        return cls(path, fd)

    def release(self) -> None:
        os.close(self.fd)


def _read_holder(fd: int) -> dict:
    # the holder writes its pid right after it takes the lock: give it a moment
    for _ in range(20):
        try:
            holder = json.loads(os.pread(fd, 4096, 0) or b"null")
        except ValueError:
            holder = None
        if isinstance(holder, dict):
            return holder
        time.sleep(0.05)
    return {}


def address_options(argv: list[str]) -> dict[str, str]:
    """The public-address options among JupyterHub's command line ``argv``
    (``--port 8010`` and ``--port=8010`` alike)."""
    found = {}
    args = iter(argv)
    for arg in args:
        if not arg.startswith("--"):
            continue
        name, equals, value = arg[2:].partition("=")
        if name in ADDRESS_OPTIONS:
            found[ADDRESS_OPTIONS[name]] = value if equals else next(args, "")
    return found


def public_url(argv: list[str], jupyterhub_config: dict | None = None) -> str:
    """The address people open: config.py's local defaults, under the values
    file's ``JupyterHub`` section, under the command line. A wildcard
    address is reached on 127.0.0.1."""
    chosen = {**LOCAL_ADDRESS}
    section = (jupyterhub_config or {}).get("JupyterHub", {})
    chosen.update({name: value for name, value in section.items() if name in ADDRESS_OPTIONS.values()})
    chosen.update(address_options(argv))
    host = str(chosen["ip"])
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"
    netloc = f"[{host}]:{chosen['port']}" if ":" in host else f"{host}:{chosen['port']}"
    path = str(chosen["base_url"]).strip("/")
    return urlunsplit(("https" if chosen.get("ssl_cert") else "http", netloc, f"/{path}/" if path else "/", "", ""))


def login_page_answers(url: str) -> bool:
    """Whether ``<url>hub/login`` answers 200."""
    context = ssl.create_default_context()
    # the probe only asks this machine's own hub, whatever its certificate
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url + "hub/login", timeout=5, context=context) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_and_announce(url: str, lines: Callable[[], list[str]], ready_fd: int, attempts: int = 50) -> bool:
    """Print ``lines()`` once the hub has its routes (a byte on ``ready_fd``)
    and its login page answers; nothing when the hub ends first (end of file)."""
    if not os.read(ready_fd, 1):
        return False
    for _ in range(attempts):
        if login_page_answers(url):
            print("\n".join(lines()), flush=True)
            return True
        time.sleep(0.2)
    print(f"karvdash-hub: the hub runs, but {url}hub/login does not answer; see the log above",
          file=sys.stderr, flush=True)
    return False


def start_announcer(url: str, lines: Callable[[], list[str]], lock: HubLock) -> list[str]:
    """Fork the process that prints ``lines()`` when the hub is ready; return
    the JupyterHub options that make the hub tell it."""
    ready_read, ready_write = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(ready_write)
            lock.release()
            # forked once more, so that it is nobody's zombie when it is done
            if os.fork() == 0:
                # Ctrl-C ends it without a traceback
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                try:
                    wait_and_announce(url, lines, ready_read)
                except Exception as error:  # noqa: BLE001 - the hub runs on; say why no line came
                    print(f"karvdash-hub: cannot say where to log in: {error}", file=sys.stderr, flush=True)
        finally:
            os._exit(0)
    os.close(ready_read)
    os.waitpid(child, 0)
    return [f"--JupyterHub.proxy_class={ANNOUNCING_PROXY}", f"--AnnouncingProxy.ready_fd={ready_write}"]


def login_lines(settings, url: str, started: float) -> list[str]:
    """Where to log in (``url``, when known) and, with native login, the
    administrator's password: in full when its file was written after
    ``started`` (generated by this start), else where it is."""
    at = f" at {url}" if url else ""
    if settings.authenticator != "native":
        return [f"karvdash-hub: log in{at}"] if url else []
    from .auth import admin_password

    password, path, _ = admin_password(settings)
    who = f"karvdash-hub: log in{at} as {settings.adminUsername!r}"
    if path is None:
        return [who]
    if path.stat().st_mtime >= started:
        return [f"{who} with password {password}", f"karvdash-hub: (generated once, kept in {path}, readable by you only)"]
    return [f"{who}; the password is in {path}"]


def runs_the_hub(argv: list[str]) -> bool:
    """False for JupyterHub's subcommands and informational options."""
    if argv and not argv[0].startswith("-"):
        return False
    return not any(arg in ("--help-all", "--version", "--generate-config") for arg in argv)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE.format(commands=", ".join(sorted(COMMANDS)) or "none"))
        return
    if argv[:1] and argv[0] in COMMANDS:
        module, function = COMMANDS[argv[0]]
        sys.exit(getattr(importlib.import_module(module), function)(argv[1:]))
    started = time.time()
    try:
        settings = load_settings()
    except SettingsError as error:
        sys.exit(f"karvdash-hub: {error}")
    local = settings.mode == "local" and runs_the_hub(argv)
    if local:
        url = public_url(argv, settings.config)
        # before anything else: a second hub on the same state would take
        # over the first one's proxy and database
        try:
            lock = HubLock.take(Path(settings.stateDir), url)
        except AlreadyRunning as running:
            print(f"karvdash-hub: {running}", file=sys.stderr)
            sys.exit(ALREADY_RUNNING)

    from . import auth, deployment  # noqa: F401 - auth: the hub's, and the announcer reads the password with it
    from .config import proxy_command
    from .profiles import ProfileError

    try:
        deployment.load()
    except (SettingsError, ProfileError) as error:
        sys.exit(f"karvdash-hub: {error}")
    if proxy_command() == ["configurable-http-proxy"]:
        sys.exit("karvdash-hub: configurable-http-proxy not found; run `make run` or `npm install` in the project")

    options = ["-f", str(HUB_CONFIG_FILE)]
    if local:
        options += start_announcer(url, lambda: login_lines(settings, url, started), lock)
    elif runs_the_hub(argv):
        # in a cluster the password goes to the hub's log (the chart's notes
        # say to look there); the address is the ingress's business
        for line in login_lines(settings, "", started):
            print(line, flush=True)
    from jupyterhub.app import JupyterHub

    # the user's options last: they win
    JupyterHub.launch_instance([*options, *argv])


if __name__ == "__main__":
    main()
