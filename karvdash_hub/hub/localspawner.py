"""Local mode: user servers as local processes, for trying karvdash-hub
without a Kubernetes cluster.

Every server runs as the hub's own OS user, so local mode gives no isolation
between users: it is for a laptop or a demo, not for shared machines.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import default

from karvdash_hub.files.domains import MOUNTED_DOMAINS, FileDomains
from karvdash_hub.files.operations import ensure_folders

from .profiles import Profile, Selection
from .profilespawner import ProfileSpawnerMixin

# jupyterhub-singleuser of the hub's own environment, wherever it runs from,
# through the module that makes its start cheaper (hub/singleuser.py)
SERVER_COMMAND = [sys.executable, "-m", "karvdash_hub.hub.singleuser"]


class KarvdashLocalSpawner(ProfileSpawnerMixin, SimpleLocalProcessSpawner):
    """Runs the profiles that can run locally (JupyterLab) as local processes
    whose root folder shows the user's file domains."""

    @default("home_dir")
    def _default_home_dir(self):
        return str(Path(self.karvdash_settings.stateDir) / "homes" / self.user.name)

    @default("cmd")
    def _default_cmd(self):
        return list(SERVER_COMMAND)

    def get_args(self):
        if self.selection is not None and self.selection.profile.app:
            # the app's own command line, behind jupyter-standaloneproxy: no Jupyter options
            return []
        args = super().get_args()
        if os.geteuid() == 0:
            # containers and CI often run everything as root; Jupyter refuses that by default
            args.append("--ServerApp.allow_root=True")
        return args

    def profile_unavailable_reason(self, profile: Profile) -> str:
        return profile.local_unavailable_reason()

    async def apply_selection(self, selection: Selection) -> None:
        local = selection.profile.local
        if local.get("cmd"):
            self.cmd = list(local["cmd"])
        if local.get("default_url"):
            self.default_url = local["default_url"]
        self.notebook_dir = self.home_dir
        # what the options would set in a pod, for code that looks at it
        self.environment.update(
            {f"KARVDASH_OPTION_{k.upper().replace('-', '_')}": str(v) for k, v in selection.user_options().items()}
        )

    def prepare_home(self) -> None:
        """The server's root folder: ``private`` and ``shared`` link to the
        same folders the dashboard shows and pods mount (files in an S3
        bucket have no folder to link to: a local server does without)."""
        domains = FileDomains.from_settings(self.karvdash_settings)
        home = Path(self.home_dir)
        home.mkdir(parents=True, exist_ok=True)
        if domains.is_s3:
            return
        ensure_folders(domains, self.user.name)
        for domain in MOUNTED_DOMAINS:
            target = domains.local_path(domain, self.user.name)
            link = home / domain
            if link.is_symlink() and Path(os.readlink(link)) == target:
                continue
            if link.is_symlink():
                link.unlink()
            elif link.exists():
                raise RuntimeError(f"{link} exists and is not a link to the {domain} files")
            link.symlink_to(target, target_is_directory=True)

    async def start(self):
        self.prepare_home()
        return await super().start()
