"""``karvdash-hub``: check the settings, then run JupyterHub with the
project's configuration. JupyterHub's own options (``--ip``, ``--port``,
``--debug``, ...) pass through."""

from __future__ import annotations

import os
import sys

from karvdash_hub.core.paths import HUB_CONFIG_FILE
from karvdash_hub.core.settings import SettingsError

from . import deployment
from .auth import admin_password
from .config import proxy_command
from .profiles import ProfileError

USAGE = """usage: karvdash-hub [JUPYTERHUB OPTIONS]

Runs JupyterHub with karvdash-hub's configuration. Settings come from the
values file named by $KARVDASH_VALUES and from KARVDASH_* environment
variables (see the README). Any JupyterHub option passes through, for
example --port 8080 or --debug; `jupyterhub --help-all` lists them.
"""


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return
    try:
        settings = deployment.load().settings
    except (SettingsError, ProfileError) as error:
        sys.exit(f"karvdash-hub: {error}")

    if settings.authenticator == "native":
        password, path, generated = admin_password(settings)
        if generated:
            print(f"karvdash-hub: log in as {settings.adminUsername!r} with password {password}")
            print(f"karvdash-hub: (generated once, kept in {path}, readable by you only)")
        elif path:
            print(f"karvdash-hub: log in as {settings.adminUsername!r}; the password is in {path}")
    if proxy_command() == ["configurable-http-proxy"]:
        sys.exit("karvdash-hub: configurable-http-proxy not found; run `make run` or `npm install` in the project")

    command = [sys.executable, "-m", "jupyterhub", "-f", str(HUB_CONFIG_FILE), *argv]
    os.execv(sys.executable, command)


if __name__ == "__main__":
    main()
