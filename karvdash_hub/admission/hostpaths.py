"""Which node and NFS paths a pod in a user namespace may mount.

Users can create any pod in their own namespace, so a ``hostPath`` volume (or
an NFS volume into the files export) is a way to read other users' files or
the node itself. The admission webhook refuses every such volume except:

- the user's own private folder and the shared folder themselves, as
  :class:`~karvdash_hub.files.domains.FileDomains` places them. Not a folder
  inside them: the node resolves a host path, symlinks included, and users
  write into those folders, so ``shared/link -> ../private/bob`` would hand
  out another user's files. A pod mounts the folder and picks a subfolder
  with ``subPath``, which the kubelet keeps inside the volume;
- folders inside ``allowedHostPathDirs`` (host paths only), but never a
  folder that reaches into the files tree: there only the file-domain rules
  count, so a broad entry such as ``/mnt`` cannot expose ``/mnt/files``.

Paths are compared by their normalised components (``/data2`` is not inside
``/data``, ``/data/shared/../private/bob`` is ``/data/private/bob``), with the
same :func:`~karvdash_hub.files.domains.is_path_within` the spawner relies on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from karvdash_hub.core.settings import KarvdashConfig
from karvdash_hub.files.domains import PRIVATE, SHARED, FileDomains, is_path_within

# The NFS CSI driver's inline volumes name the export in volumeAttributes.
NFS_CSI_DRIVER = "nfs.csi.k8s.io"


def normalise(path: str) -> str:
    # POSIX keeps a leading "//" apart from "/"; Linux does not
    return os.path.normpath("/" + path.lstrip("/"))


@dataclass(frozen=True)
class HostPathPolicy:
    """The host-path rules of one deployment."""

    domains: FileDomains
    extra_dirs: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: KarvdashConfig) -> HostPathPolicy:
        return cls(FileDomains.from_settings(settings), tuple(settings.allowedHostPathDirs))

    def _user_folders(self, username: str | None) -> list[str]:
        """The file-domain folders (node or export paths) the user may mount."""
        folders = [self.domains.node_path(SHARED)]
        if username:
            folders.insert(0, self.domains.node_path(PRIVATE, username))
        return folders

    def allowed_host_paths(self, username: str | None) -> list[str]:
        if username:
            return self.domains.allowed_host_paths(username, list(self.extra_dirs))
        # no owner known: nothing private, whatever is shared
        allowed = list(self.extra_dirs)
        if self.domains.scheme == "file":
            allowed.append(self.domains.node_path(SHARED))
        return [os.path.normpath(p) for p in allowed]

    def volume_refusal(self, volume: dict, username: str | None) -> str | None:
        """Why ``volume`` may not be mounted by a pod of ``username``, or None."""
        if not isinstance(volume, dict):
            return "is not a volume object"
        if "hostPath" in volume:
            return self._host_path_refusal(volume["hostPath"], username)
        if "nfs" in volume and self.domains.scheme == "nfs":
            nfs = volume["nfs"]
            if not isinstance(nfs, dict):
                return "has a malformed nfs source"
            return self._nfs_refusal(nfs.get("server"), nfs.get("path"), username)
        if "csi" in volume and self.domains.scheme == "nfs":
            csi = volume["csi"]
            if not isinstance(csi, dict):
                return "has a malformed csi source"
            if csi.get("driver") == NFS_CSI_DRIVER:
                attributes = csi.get("volumeAttributes") or {}
                if not isinstance(attributes, dict):
                    return "has malformed csi volumeAttributes"
                path = attributes.get("share")
                if isinstance(path, str) and attributes.get("subDir"):
                    path = f"{path}/{attributes['subDir']}"
                return self._nfs_refusal(attributes.get("server"), path, username)
        return None

    def _overlaps_files(self, path: str) -> bool:
        # inside the files tree, or a parent folder that contains all of it
        root = self.domains.export_path
        return is_path_within(path, root) or is_path_within(root, path)

    def _host_path_refusal(self, source, username: str | None) -> str | None:
        path = source.get("path") if isinstance(source, dict) else None
        if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
            return "has a hostPath that is not an absolute path"
        path = normalise(path)
        if self.domains.scheme == "file" and self._overlaps_files(path):
            # the files tree follows the file-domain rules only, whatever
            # allowedHostPathDirs says, so a broad entry cannot expose it
            return self._files_tree_refusal(f"host path {path}", path, "files folder", username)
        if any(is_path_within(path, folder) for folder in self.extra_dirs):
            return None
        allowed = self.allowed_host_paths(username)
        where = ", ".join(allowed) if allowed else "none"
        return f"mounts host path {path}, which is outside the allowed folders ({where})"

    def _nfs_refusal(self, server, path, username: str | None) -> str | None:
        if not isinstance(server, str) or not isinstance(path, str) or not path.startswith("/") or "\0" in path:
            return "has an NFS source without a server and an absolute path"
        if server.strip().lower().rstrip(".") != self.domains.server.lower().rstrip("."):
            return None
        path = normalise(path)
        if not self._overlaps_files(path):
            return None
        return self._files_tree_refusal(f"{server}:{path}", path, "files export", username)

    def _files_tree_refusal(self, source: str, path: str, tree: str, username: str | None) -> str | None:
        """Inside the files tree only the user's own folders themselves may be
        mounted (subfolders through subPath), whichever volume type reaches it."""
        folders = self._user_folders(username)
        if path in folders:
            return None
        if any(is_path_within(path, folder) for folder in folders):
            return (f"mounts {source}, inside one of your folders: mount the folder itself "
                    f"({', '.join(folders)}) and choose the subfolder with subPath")
        return (f"mounts {source}, which reaches into the {tree} "
                f"{self.domains.export_path} outside your folders ({', '.join(folders)})")
