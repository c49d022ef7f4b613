"""Where the file domains are kept, behind one interface (:mod:`.interface`) chosen by
``filesURL``'s scheme: folders (``file://``, ``nfs://``: :class:`LocalStorage`,
the operations of ``operations.py``) or an S3 bucket (``minio://``,
``minios://``: ``s3storage.S3Storage``, imported only then, so a local
deployment needs no S3 client).

Handlers parse a request and make one call here. Every method is blocking
(disk or network): the dashboard runs them in its executor. Paths arrive as
people sent them; each storage checks them with the same
:func:`~karvdash_hub.files.operations.clean_relative_path` and the same
domain rules before it touches anything.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .domains import PRIVATE, UPLOADS, FileDomains
from .downloads import build_zip, zip_members
from .interface import ChunkWriter, FileStorage, Found
from .listing import EVERY_ENTRY, Query
from .nameindex import NameIndex
from .operations import (
    TRASH_PREFIX,
    BadPath,
    Conflict,
    DomainFolder,
    NotFound,
    check_target,
    clean_relative_path,
    delete,
    delete_private,
    delete_quietly,
    describe,
    ensure_folders,
    entry_for,
    entry_json,
    make_file,
    make_folder,
    move,
    open_domain_folder,
    open_for_reading,
    place_file,
    read_text,
    trash_folder,
)
from .usage import Usage, folder_usage


def open_storage(domains: FileDomains, settings=None) -> FileStorage:
    """The storage of ``filesURL``: S3 for ``minio://``/``minios://``, else folders."""
    if domains.is_s3:
        try:
            from .s3storage import S3Storage  # the S3 client only where it is used
        except ImportError as error:
            from karvdash_hub.core.settings import SettingsError

            raise SettingsError("filesURL", f"an S3 URL needs boto3 ({error}): pip install 'karvdash-hub[s3]'") from None
        return S3Storage(domains, access_key=settings.filesS3AccessKey, secret_key=settings.files_s3_secret_key)
    return LocalStorage(domains)


class DescriptorReader:
    """A file of a local domain, read through its open descriptor (a link
    swapped in after the check cannot make the download read anything else)."""

    def __init__(self, descriptor: int):
        self.descriptor = descriptor
        info = os.fstat(descriptor)
        self.size = info.st_size
        self.modified = info.st_mtime
        self.etag = f'"{info.st_mtime_ns:x}-{self.size:x}"'

    def read(self, position: int, length: int) -> bytes:
        return os.pread(self.descriptor, length, position)

    def close(self) -> None:
        os.close(self.descriptor)


# Where the staged files of uploads are synced while their next bytes arrive:
# the disk writes what came so far during the upload, not all of it at the end.
_SYNCS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="karvdash-upload-sync")
# bytes written to a staged file after which a sync starts behind the writes
SYNC_BEHIND = 32 * 1024 * 1024


class DescriptorWriter:
    """Upload bytes written at their offset into the staged file, synced
    behind the writes (at most one sync running per file)."""

    spliceable = True

    def __init__(self, path: Path):
        self.descriptor = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        self.unsynced = 0
        self.syncing: Future | None = None

    def write(self, data: bytes, position: int) -> int:
        written = os.pwrite(self.descriptor, data, position)
        self.wrote(written)
        return written

    def wrote(self, count: int) -> None:
        """``count`` more bytes are on the file (written here, or by the
        kernel from the socket): a sync starts behind them every SYNC_BEHIND."""
        self.unsynced += count
        if self.unsynced >= SYNC_BEHIND and (self.syncing is None or self.syncing.done()):
            self.check_synced()
            self.unsynced = 0
            self.syncing = _SYNCS.submit(os.fdatasync, self.descriptor)

    def check_synced(self) -> None:
        """Wait for the sync behind the writes; raises what it raised (a
        failed sync is not reported again by the next one)."""
        syncing, self.syncing = self.syncing, None
        if syncing is not None:
            syncing.result()

    def sync(self) -> None:
        self.check_synced()
        os.fsync(self.descriptor)

    def close(self) -> None:
        syncing, self.syncing = self.syncing, None
        if syncing is not None and not syncing.done():
            # closed by the sync's thread once it is done: never under it,
            # and never waited for here (this may run in the event loop)
            descriptor = self.descriptor
            syncing.add_done_callback(lambda _: os.close(descriptor))
        else:
            os.close(self.descriptor)


@dataclass
class LocalStorage:
    """File domains in folders of this machine (``file://``, or ``nfs://``
    mounted at ``filesMountPath``)."""

    domains: FileDomains

    def folder(self, user: str, domain: str) -> DomainFolder:
        return open_domain_folder(self.domains, domain, user)

    def ensure_folders(self, username: str | None = None) -> None:
        ensure_folders(self.domains, username)

    def delete_private(self, username: str) -> bool:
        return delete_private(self.domains, username)

    def _located(self, user: str, domain: str, path: str, *, follow: bool, new: bool = False):
        relative = clean_relative_path(path or "", new=new)
        folder = self.folder(user, domain)
        return folder, relative, (folder.resolve if follow else folder.locate)(relative)

    def describe(self, user: str, domain: str, path: str, query: Query = EVERY_ENTRY) -> dict:
        folder, relative, location = self._located(user, domain, path, follow=True)
        return describe(folder, relative, location, query, self.name_index)

    @functools.cached_property
    def name_index(self) -> NameIndex:
        """Large folders' sorted names, beside the uploads (the dashboard's own folder)."""
        return NameIndex(self.domains.local_path(UPLOADS) / "listing-index.sqlite3")

    def entry_type(self, user: str, domain: str, path: str) -> str:
        folder, relative, location = self._located(user, domain, path, follow=True)
        return entry_for(folder, location, relative.name or domain).type

    def create(self, user: str, domain: str, path: str, kind: str) -> dict:
        folder, relative, location = self._located(user, domain, path, follow=False, new=True)
        if not relative.parts:
            raise Conflict(f"{folder.display('')} already exists")
        entry = (make_folder if kind == "folder" else make_file)(folder, location)
        return entry_json(folder, location, entry)

    def move(self, user: str, domain: str, path: str, target_domain: str, target_path: str,
             overwrite: bool) -> dict:
        folder, _, location = self._located(user, domain, path, follow=False)
        target_folder, _, target = self._located(user, target_domain, target_path, follow=False, new=True)
        entry = move(folder, location, target_folder, target, overwrite=overwrite, trash=trash_folder(self.domains))
        return entry_json(target_folder, target, entry)

    def delete(self, user: str, domain: str, path: str) -> str:
        folder, relative, location = self._located(user, domain, path, follow=False)
        delete(folder, location)
        return folder.display(relative)

    def find(self, user: str, domain: str, path: str) -> Found:
        folder, relative, real = self._located(user, domain, path, follow=True)
        name = relative.name or (user if domain == PRIVATE else domain)
        display = folder.display(relative)
        if not os.path.exists(real):
            raise NotFound(f"{display} does not exist")
        if os.path.isdir(real):
            return Found(name, display)
        descriptor = open_for_reading(folder, relative) if relative.parts else None
        return Found(name, display, DescriptorReader(descriptor))

    def zip_paths(self, user: str, domain: str, paths: list, folder: str | None = None) -> Iterator[bytes]:
        """A zip of ``paths`` of the domain; with ``folder``, of that one
        folder (``paths`` then holds its name in the archive)."""
        domain_folder = self.folder(user, domain)
        if folder is not None:
            real = domain_folder.resolve(clean_relative_path(folder))
            return build_zip(domain_folder, [(real, paths[0])])
        return build_zip(domain_folder, zip_members(domain_folder, paths))

    def usage(self, username: str) -> Usage:
        return folder_usage(self.domains.local_path(PRIVATE, username))

    def read_text(self, user: str, domain: str, path: str, what: str, limit: int) -> str:
        return read_text(self.folder(user, domain), clean_relative_path(path), what, limit)

    def open_for_reading(self, user: str, domain: str, path: str, what: str) -> tuple[int, str]:
        folder = self.folder(user, domain)
        relative = clean_relative_path(path)
        return open_for_reading(folder, relative, what), folder.display(relative)

    # --- uploads ------------------------------------------------------------------------

    def upload_target(self, user: str, domain: str, path: str, overwrite: bool) -> str:
        """The checked path of a new upload, once its place is free (or ``overwrite``)."""
        relative = clean_relative_path(path, new=True)
        if not relative.parts:
            raise BadPath("an upload needs a file name")
        folder = self.folder(user, domain)
        check_target(folder, folder.locate(relative), overwrite)
        return str(relative)

    def staging_need(self, size: int) -> int:
        """The whole file is staged before it moves into place."""
        return size

    def upload_writer(self, upload, store) -> ChunkWriter:
        return DescriptorWriter(upload.data_path)

    def place_upload(self, upload) -> dict:
        folder = self.folder(upload.domain_user, upload.domain)
        relative = clean_relative_path(upload.path)
        target = folder.locate(relative)
        check_target(folder, target, upload.overwrite)
        os.chmod(upload.data_path, 0o644)
        place_file(upload.data_path, target, overwrite=upload.overwrite, trash=trash_folder(self.domains),
                   display=folder.display(relative))
        return entry_json(folder, target, entry_for(folder, target))

    def discard_upload(self, meta: dict) -> None:
        """Nothing outside the staged file to remove."""

    def clean_up(self, older_than: float) -> None:
        """Remove replaced folders a crash left in the trash."""
        trash = trash_folder(self.domains)
        for entry in os.scandir(trash):
            info = entry.stat(follow_symlinks=False)
            if entry.name.startswith(TRASH_PREFIX) and info.st_mtime < older_than:
                delete_quietly(Path(entry.path))


