"""The one interface of the file domains' storage (:mod:`.storage` for
folders, :mod:`.s3storage` for an S3 bucket) and what its methods return."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from typing import Protocol

from .domains import FileDomains
from .listing import EVERY_ENTRY, Query
from .usage import Usage


class FileReader(Protocol):
    """An open file of a domain, for a download."""

    size: int
    modified: float
    etag: str
    # an open descriptor the kernel can send the bytes from (sendfile), or None
    descriptor: int | None

    def read(self, position: int, length: int) -> bytes: ...

    def close(self) -> None: ...


@dataclass
class Found:
    """What a download path names: a file (``reader``) or a folder."""

    name: str
    display: str
    reader: FileReader | None = None

    @property
    def last_modified(self) -> str:
        return formatdate(self.reader.modified, usegmt=True) if self.reader else ""


class ChunkWriter(Protocol):
    """Where the bytes of one upload go while they arrive."""

    # True when the kernel may put received bytes straight into ``descriptor``
    # at the upload's offsets (splice; then told with ``DescriptorWriter.wrote``)
    spliceable: bool
    descriptor: int

    def write(self, data: bytes, position: int) -> int: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


class FileStorage(Protocol):
    """The operations the dashboard does on the file domains (all blocking)."""

    domains: FileDomains

    def ensure_folders(self, username: str | None = None) -> None: ...

    def delete_private(self, username: str) -> bool: ...

    def describe(self, user: str, domain: str, path: str, query: Query = EVERY_ENTRY) -> dict: ...

    def entry_type(self, user: str, domain: str, path: str) -> str: ...

    def create(self, user: str, domain: str, path: str, kind: str) -> dict: ...

    def move(self, user: str, domain: str, path: str, target_domain: str, target_path: str,
             overwrite: bool) -> dict: ...

    def delete(self, user: str, domain: str, path: str) -> str: ...

    def find(self, user: str, domain: str, path: str) -> Found: ...

    def zip_paths(self, user: str, domain: str, paths: list, folder: str | None = None) -> Iterator[bytes]: ...

    def usage(self, username: str) -> Usage: ...

    def read_text(self, user: str, domain: str, path: str, what: str, limit: int) -> str: ...

    def open_for_reading(self, user: str, domain: str, path: str, what: str) -> tuple[int, str]: ...

    def upload_target(self, user: str, domain: str, path: str, overwrite: bool) -> str: ...

    def staging_need(self, size: int) -> int: ...

    def upload_writer(self, upload, store) -> ChunkWriter: ...

    def place_upload(self, upload) -> dict: ...

    def discard_upload(self, meta: dict) -> None: ...

    def clean_up(self, older_than: float) -> None: ...
