"""Resumable uploads, staged in the ``uploads`` folder of the file domains.

An upload is created with its target (domain, path) and total size, then
receives its bytes in chunks at explicit offsets, in any number of requests;
a broken connection loses nothing already written, and the client asks for
the offset to go on from. When the last byte arrives the staged file moves
into place in one rename, so nobody ever sees a partial file. Uploads left
unfinished for ``uploadExpiry`` seconds are removed.

Layout: ``uploads/<id>.part`` (the bytes) and ``uploads/<id>.json`` (who,
where, how big), both readable by the dashboard's account only. Where the
bytes end up is the storage's business (``storage.py``): a rename into a
folder, or, for an S3 domain, the parts of a multipart upload sent while
the bytes arrive (the ``.part`` file then holds only what follows the parts
already sent, ``<id>.<sent>.part``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from karvdash_hub.core.errors import KarvdashError

from .operations import NotFound

log = logging.getLogger("karvdash.files.uploads")
UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{22,64}$")


@dataclass
class Upload:
    id: str
    owner: str  # whose upload it is (the acting user: the sender, or whom an admin acts as)
    domain: str
    domain_user: str  # whose private domain it goes to (the owner, or whom an admin acts as)
    path: str  # inside the domain, already checked
    size: int
    overwrite: bool
    created: float
    folder: Path
    # bytes already handed on by the storage (S3: the parts sent), and its bookkeeping
    shipped: int = 0
    parts: list = field(default_factory=list)
    multipart: str = ""

    @property
    def data_path(self) -> Path:
        """The staged bytes that follow the ``shipped`` ones."""
        return self.folder / (f"{self.id}.{self.shipped}.part" if self.shipped else f"{self.id}.part")

    @property
    def meta_path(self) -> Path:
        return self.folder / f"{self.id}.json"

    def offset(self) -> int:
        try:
            return self.shipped + os.stat(self.data_path).st_size
        except FileNotFoundError:
            raise NotFound(f"upload {self.id} does not exist (finished, cancelled or expired)") from None

    def to_json(self, offset: int | None = None) -> dict:
        return {
            "id": self.id,
            "domain": self.domain,
            "path": self.path,
            "size": self.size,
            "offset": self.offset() if offset is None else offset,
            "overwrite": self.overwrite,
            "created": self.created,
        }


class UploadStore:
    def __init__(self, folder: Path, expiry: float, storage=None):
        self.folder = folder
        self.expiry = expiry
        # where finished uploads go (interface.FileStorage)
        self.storage = storage
        # ids with a request writing right now: one writer per upload
        self.writing: set[str] = set()

    def ensure_folder(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)

    def create(self, *, owner: str, domain: str, domain_user: str, path: str, size: int, overwrite: bool) -> Upload:
        self.ensure_folder()
        upload = Upload(
            id=secrets.token_urlsafe(24),
            owner=owner,
            domain=domain,
            domain_user=domain_user,
            path=path,
            size=size,
            overwrite=overwrite,
            created=time.time(),
            folder=self.folder,
        )
        os.close(os.open(upload.data_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self.save(upload)
        return upload

    def start(self, *, owner: str, domain: str, domain_user: str, path: str, size: int,
              overwrite: bool) -> Upload:
        """A new upload of ``size`` bytes to ``path`` of ``domain_user``'s
        ``domain``, once the target is known to be free (or ``overwrite``)
        and the bytes fit on the disk."""
        relative = self.storage.upload_target(domain_user, domain, path, overwrite)
        self.ensure_folder()
        free = shutil.disk_usage(self.folder).free
        needed = self.storage.staging_need(size)
        if needed > free:
            raise KarvdashError(507, f"not enough space: {needed} bytes to stage, {free} free")
        return self.create(owner=owner, domain=domain, domain_user=domain_user, path=relative, size=size,
                           overwrite=overwrite)

    def writer(self, upload: Upload):
        """Where the next chunk of ``upload`` goes (``interface.ChunkWriter``)."""
        return self.storage.upload_writer(upload, self)

    def finish(self, upload: Upload) -> dict:
        """Put the complete upload in its place; the new entry as the API shows it."""
        entry = self.storage.place_upload(upload)
        self.remove(upload, discard=False)
        return entry

    def save(self, upload: Upload) -> None:
        meta = {key: value for key, value in asdict(upload).items() if key != "folder"}
        staged = upload.meta_path.with_suffix(".json.new")
        with open(os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(meta, f)
        os.replace(staged, upload.meta_path)

    def get(self, upload_id: str, owner: str) -> Upload:
        """The upload ``upload_id`` of ``owner``; another user's is as missing as none."""
        missing = NotFound(f"upload {upload_id} does not exist (finished, cancelled or expired)")
        if not UPLOAD_ID.match(upload_id):
            raise missing
        try:
            with open(self.folder / f"{upload_id}.json") as f:
                meta = json.load(f)
        except (FileNotFoundError, ValueError):
            raise missing from None
        if meta.get("owner") != owner:
            raise missing
        return Upload(**meta, folder=self.folder)

    def list(self, owner: str) -> list[Upload]:
        uploads = []
        if not self.folder.is_dir():
            return uploads
        for meta_path in sorted(self.folder.glob("*.json")):
            try:
                uploads.append(self.get(meta_path.stem, owner))
            except NotFound:
                continue
        return uploads

    def remove(self, upload: Upload, discard: bool = True) -> None:
        """Forget ``upload``; ``discard``: also what the storage holds of it."""
        if discard and self.storage is not None:
            self.storage.discard_upload(asdict(upload))
        for path in (upload.data_path, upload.meta_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def expire(self, now: float | None = None) -> list[str]:
        """Remove uploads with no new bytes for ``expiry`` seconds; returns their ids."""
        now = time.time() if now is None else now
        removed = []
        if not self.folder.is_dir():
            return removed
        for entry in os.scandir(self.folder):
            upload_id, _, suffix = entry.name.partition(".")
            if not (suffix in ("json", "json.new") or suffix.endswith("part")) or not UPLOAD_ID.match(upload_id):
                continue
            if upload_id in self.writing:
                continue
            try:
                last = max(
                    os.stat(path).st_mtime for path in self.folder.glob(f"{upload_id}.*")
                    if path.name.endswith((".part", ".json"))
                )
            except (ValueError, FileNotFoundError):
                last = 0
            if now - last > self.expiry:
                if upload_id not in removed:
                    self._discard(upload_id)
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue
                if upload_id not in removed:
                    removed.append(upload_id)
        return removed

    def _discard(self, upload_id: str) -> None:
        """What the storage holds of an expired upload (an S3 multipart upload)."""
        try:
            with open(self.folder / f"{upload_id}.json") as f:
                meta = json.load(f)
        except (OSError, ValueError):
            return
        if self.storage is not None:
            try:
                self.storage.discard_upload(meta)
            except Exception as error:  # noqa: BLE001 - expiry goes on; the bucket's lifecycle rules can end it
                log.warning("upload %s: could not discard what the storage holds of it: %s", upload_id, error)
