"""File domains: where each user's files live, as folders and as pod volumes.

One model serves three consumers: the spawner (volumes of user servers), the
admission webhook (volumes of every pod in a user namespace, and which host
paths are allowed) and the dashboard (the folders it browses). Inside the root
of ``filesURL``:

- ``private/<user>``: the user's own files, mounted at ``/private``;
- ``shared``: everyone's, mounted at ``/shared``;
- ``uploads``: the dashboard's staging area, never mounted in user pods.

With an S3 ``filesURL`` (``minio://``, ``minios://``) the same names are key
prefixes inside the bucket (and its prefix, if the URL has one), which only
the dashboard reaches, and ``uploads`` stays a local folder of the
dashboard. Pods mount no file domain then: a mount needs credentials in the
user's namespace, where the user can read them, and the deployment's reach
every user's keys (:data:`S3_NOT_MOUNTED`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from karvdash_hub.core.settings import S3_SCHEMES, KarvdashConfig, parse_files_url

PRIVATE = "private"
SHARED = "shared"
UPLOADS = "uploads"

# Domains a person sees (dashboard) and a pod mounts, with their mount points.
MOUNTED_DOMAINS = {PRIVATE: "/private", SHARED: "/shared"}
VOLUME_PREFIX = "karvdash-"
# Logged once by the hub with an S3 filesURL
S3_NOT_MOUNTED = (
    "filesURL is an S3 bucket: pods get no /private and /shared. Mounting them would put S3 credentials "
    "in each user's namespace, where the user can read them, and the deployment's credentials reach every "
    "user's files; karvdashctl and the dashboard reach the files instead."
)


@dataclass(frozen=True)
class FileDomains:
    """The file domains of one deployment.

    ``scheme``/``server``/``export_path`` say where the files are for the
    cluster (host path or NFS export); ``root`` says where this process sees
    them.
    """

    scheme: str
    server: str
    export_path: str
    root: Path

    region: str = ""

    @classmethod
    def from_settings(cls, settings: KarvdashConfig) -> FileDomains:
        scheme, server, path = parse_files_url(settings.files_url)
        return cls(scheme=scheme, server=server, export_path=path, root=settings.files_root,
                   region=settings.filesS3Region)

    # --- an S3 bucket ---------------------------------------------------------------

    @property
    def is_s3(self) -> bool:
        return self.scheme in S3_SCHEMES

    @property
    def endpoint_url(self) -> str:
        """The S3 endpoint (minios: HTTPS, minio: HTTP)."""
        return f"{'https' if self.scheme == 'minios' else 'http'}://{self.server}"

    @property
    def bucket(self) -> str:
        return PurePosixPath(self.export_path).parts[1]

    @property
    def key_prefix(self) -> str:
        """The prefix inside the bucket that holds the domains ('' or ``a/b/``)."""
        rest = PurePosixPath(self.export_path).parts[2:]
        return "".join(f"{part}/" for part in rest)

    def key(self, domain: str, username: str | None = None) -> str:
        """The key prefix of a domain, ending in ``/``."""
        return f"{self.key_prefix}{self.relative_path(domain, username)}/"

    # --- folders, as this process sees them -------------------------------------

    def relative_path(self, domain: str, username: str | None = None) -> PurePosixPath:
        if domain == PRIVATE:
            if not username:
                raise ValueError("the private domain belongs to a user")
            return PurePosixPath(PRIVATE, username)
        if domain in (SHARED, UPLOADS):
            return PurePosixPath(domain)
        raise ValueError(f"unknown file domain {domain!r}")

    def local_path(self, domain: str, username: str | None = None) -> Path:
        return self.root / self.relative_path(domain, username)

    # --- folders, as nodes see them ------------------------------------------------

    def node_path(self, domain: str, username: str | None = None) -> str:
        """The domain's path on a node (file://) or on the NFS server (nfs://)."""
        return str(PurePosixPath(self.export_path) / self.relative_path(domain, username))

    # --- pod volumes ------------------------------------------------------------------

    def volume_name(self, domain: str) -> str:
        return VOLUME_PREFIX + domain

    @property
    def mounted_in_pods(self) -> bool:
        """Whether pods mount the file domains (never from S3: see :data:`S3_NOT_MOUNTED`)."""
        return not self.is_s3

    def volumes(self, username: str) -> list[dict]:
        """Volumes giving a pod of ``username`` its mounted file domains."""
        volumes = []
        if not self.mounted_in_pods:
            return volumes
        for domain in MOUNTED_DOMAINS:
            path = self.node_path(domain, username if domain == PRIVATE else None)
            if self.scheme == "file":
                source = {"hostPath": {"path": path, "type": "DirectoryOrCreate"}}
            else:
                source = {"nfs": {"server": self.server, "path": path}}
            volumes.append({"name": self.volume_name(domain), **source})
        return volumes

    def volume_mounts(self) -> list[dict]:
        if not self.mounted_in_pods:
            return []
        return [
            {"name": self.volume_name(domain), "mountPath": mount_path}
            for domain, mount_path in MOUNTED_DOMAINS.items()
        ]

    def allowed_host_paths(self, username: str, extra: list[str] = ()) -> list[str]:
        """Host paths a pod of ``username`` may mount: its own private folder,
        the shared folder and the extra allowed folders (file:// only)."""
        allowed = list(extra)
        if self.scheme == "file":
            allowed += [self.node_path(PRIVATE, username), self.node_path(SHARED)]
        return [os.path.normpath(p) for p in allowed]


def is_path_within(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or inside it, comparing normalised path
    components (``/data2`` is not inside ``/data``)."""
    path_parts = PurePosixPath(os.path.normpath(path)).parts
    folder_parts = PurePosixPath(os.path.normpath(folder)).parts
    return path_parts[: len(folder_parts)] == folder_parts
