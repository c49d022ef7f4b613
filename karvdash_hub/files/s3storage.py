"""File domains in an S3 bucket (``filesURL: minio://host:port/bucket[/prefix]``,
``minios://`` over TLS), through boto3 (its calls are blocking: the dashboard
runs every method in its executor, as it does for the local storage).

How a file system maps onto keys (below the URL's prefix):

- a file is the object ``<domain key><path>``; a folder is the key prefix
  ``<path>/``, made visible while empty by a folder marker, the empty object
  ``<path>/`` (what the S3 consoles and Datashim's mounts make too);
- there are no links, permissions or hard links: every entry is a file or a
  folder;
- a listing is ``ListObjectsV2`` with ``Delimiter="/"`` (folders are the
  common prefixes);
- copies are server-side (``CopyObject``, and boto3's multipart copy for
  objects over 5 GiB); a move is a copy, then the source's deletion; a
  folder's deletion is batched ``DeleteObjects`` (1000 keys a request);
- an upload is a multipart upload whose parts (``PART_SIZE``) leave as the
  bytes arrive; only the part being filled waits on the dashboard's disk.
  The last request completes it with ``If-None-Match: *`` unless the upload
  may replace a file, so a name taken meanwhile is refused by the server
  itself (S3 and MinIO enforce it); a new folder or empty file is a
  conditional ``PutObject`` the same way. Moves and copies check the target
  first: ``CopyObject`` has no such condition everywhere, so a target made
  between the check and the copy is replaced.

The same path rules as local domains apply (``operations.clean_relative_path``
and the domain checks of ``DomainFolder.for_user``); a key is only ever
built from a checked path below the domain's own prefix.
"""

from __future__ import annotations

import functools
import heapq
import os
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from zipstream import ZIP_STORED, ZipStream

from karvdash_hub.core.errors import KarvdashError

from .domains import PRIVATE, UPLOADS, FileDomains
from .downloads import CHUNK, MAX_ZIP_PATHS
from .interface import Found
from .listing import (
    EVERY_ENTRY,
    FOLDER,
    OTHER,
    Candidate,
    Query,
    page_json,
    select_page,
)
from .operations import (
    TRASH_PREFIX,
    BadPath,
    Conflict,
    DomainFolder,
    NotFound,
    clean_relative_path,
)
from .usage import MAX_ENTRIES, MAX_SECONDS, Usage

# every part but the last of a multipart upload (S3 wants at least 5 MiB)
PART_SIZE = 8 * 1024 * 1024
# CopyObject copies up to 5 GiB; larger objects are copied in parts of COPY_PART
MULTIPART_COPY = 5 * 1024**3
COPY_PART = 512 * 1024**2
DELETE_BATCH = 1000
MISSING = ("404", "NoSuchKey", "NotFound")


class StorageUnavailable(KarvdashError):
    """The S3 server refused or did not answer."""

    def __init__(self, message: str):
        super().__init__(502, message)


def answered(method):
    """S3 errors as a clear 502 (never a 500), naming what failed."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            raise StorageUnavailable(f"the file storage refused the request: {code or error}") from None
        except BotoCoreError as error:
            raise StorageUnavailable(f"the file storage did not answer: {error}") from None

    return wrapper


def answered_stream(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """A zip's pieces, with S3 errors on the way as :class:`StorageUnavailable`."""
    try:
        yield from pieces
    except ClientError as error:
        raise StorageUnavailable(f"the file storage refused the request: {_code(error) or error}") from None
    except BotoCoreError as error:
        raise StorageUnavailable(f"the file storage did not answer: {error}") from None


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class Stat:
    type: str  # "file" or "folder"
    size: int = 0
    modified: float = 0.0
    etag: str = ""


@dataclass(frozen=True)
class Place:
    """A checked path of a domain, with its key."""

    folder: DomainFolder
    relative: PurePosixPath
    base: str  # the domain's key prefix, ending in "/"

    @property
    def key(self) -> str:
        """The object of a file (the domain's top folder: its prefix)."""
        return self.base + str(self.relative) if self.relative.parts else self.base

    @property
    def prefix(self) -> str:
        """The key prefix of a folder, ending in "/"."""
        return self.key if not self.relative.parts else self.key + "/"

    @property
    def display(self) -> str:
        return self.folder.display(self.relative)

    def child(self, relative: PurePosixPath) -> Place:
        return Place(self.folder, relative, self.base)

    @property
    def parent(self) -> Place:
        return self.child(self.relative.parent if len(self.relative.parts) > 1 else PurePosixPath())


def level_entries(pages: Iterable[dict], prefix: str) -> Iterator[tuple[str, dict]]:
    """(name, row) of each entry one level below ``prefix``, in key order,
    from ``ListObjectsV2`` pages listed with ``Delimiter="/"``: folders are
    the common prefixes, files the objects (a folder's marker is not an
    entry). A file named like a folder is hidden by it, as a folder is what
    mounts show; such a file waits only until the listing passes the
    folder's place (``name/``). Rows come in no particular order."""
    waiting: deque[tuple[str, dict]] = deque()
    for page in pages:
        folders = ((common["Prefix"], None) for common in page.get("CommonPrefixes", []))
        files = ((item["Key"], item) for item in page.get("Contents", []))
        for key, item in heapq.merge(folders, files, key=lambda pair: pair[0]):
            name = key[len(prefix):]
            while waiting and waiting[0][0] + "/" < name:
                yield waiting.popleft()
            if item is None:
                name = name.rstrip("/")
                if not name:
                    continue
                for index, (waiting_name, _) in enumerate(waiting):
                    if waiting_name == name:
                        del waiting[index]
                        break
                yield name, {"name": name, "type": "folder", "size": 0, "modified": 0.0}
            elif name:
                waiting.append((name, {"name": name, "type": "file", "size": item["Size"],
                                       "modified": item["LastModified"].timestamp()}))
    yield from waiting


class S3Reader:
    """An object read in order for a download: one streamed GetObject from
    the first position asked, another only when a read jumps."""

    descriptor = None  # no file here for the kernel to send from

    def __init__(self, client, bucket: str, key: str, info: Stat):
        self.client, self.bucket, self.key = client, bucket, key
        self.size, self.modified = info.size, info.modified
        self.etag = f'"{info.etag.strip(chr(34))}-{info.size:x}"'
        self.body = None
        self.position = -1

    @answered
    def read(self, position: int, length: int) -> bytes:
        if position >= self.size:
            return b""
        if self.body is None or position != self.position:
            self.close()
            self.body = self.client.get_object(
                Bucket=self.bucket, Key=self.key, Range=f"bytes={position}-{self.size - 1}"
            )["Body"]
            self.position = position
        data = self.body.read(length)
        self.position += len(data)
        return data

    def close(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None


class S3ChunkWriter:
    """The bytes of one upload: kept in its staged file until a part is
    full, then sent as the next part of the multipart upload."""

    # the staged file holds only the part being filled, at other offsets
    spliceable = False

    def __init__(self, storage: S3Storage, upload, store):
        self.storage, self.upload, self.store = storage, upload, store
        self.descriptor = os.open(upload.data_path, os.O_RDWR | os.O_NOFOLLOW)

    def write(self, data: bytes, position: int) -> int:
        written = os.pwrite(self.descriptor, data, position - self.upload.shipped)
        while os.fstat(self.descriptor).st_size >= PART_SIZE:
            self._ship()
        return written

    def _ship(self) -> None:
        """Send the staged file's first PART_SIZE bytes as the next part. The
        bytes past them (less than a chunk) go to the next staged file first;
        the part is sent from the file itself, never held in memory whole."""
        upload = self.upload
        old = upload.data_path
        rest = os.pread(self.descriptor, os.fstat(self.descriptor).st_size - PART_SIZE, PART_SIZE)
        number = len(upload.parts) + 1
        following = old.with_name(f"{upload.id}.{upload.shipped + PART_SIZE}.part")
        staged = os.open(following, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        os.pwrite(staged, rest, 0)
        os.ftruncate(self.descriptor, PART_SIZE)
        if not upload.multipart:
            # recorded at once: a retry goes on with this multipart upload
            upload.multipart = self.storage.begin_multipart(upload)
            self.store.save(upload)
        with open(old, "rb") as part:
            etag = self.storage.send_part(upload, number, part)
        # the record moves on only once the part is in the bucket: a crash
        # at any step leaves an offset that matches what is kept
        upload.shipped += PART_SIZE
        upload.parts.append({"PartNumber": number, "ETag": etag})
        self.store.save(upload)
        os.close(self.descriptor)
        self.descriptor = staged
        os.unlink(old)

    def sync(self) -> None:
        os.fsync(self.descriptor)

    def close(self) -> None:
        os.close(self.descriptor)


class S3Storage:
    """The file domains as key prefixes of one bucket."""

    def __init__(self, domains: FileDomains, *, access_key: str, secret_key: str, client=None):
        self.domains = domains
        self.bucket = domains.bucket
        self.client = client or boto3.client(
            "s3",
            endpoint_url=domains.endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=domains.region or "us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
                max_pool_connections=32,
            ),
        )

    # --- places and what is there ----------------------------------------------------------

    def place(self, user: str, domain: str, path: str | PurePosixPath, new: bool = False) -> Place:
        folder = DomainFolder.for_user(self.domains, domain, user)
        relative = path if isinstance(path, PurePosixPath) else clean_relative_path(path or "", new=new)
        return Place(folder, relative, self.domains.key(domain, folder.owner))

    def stat(self, place: Place) -> Stat | None:
        if not place.relative.parts:
            return Stat("folder")
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=place.key)
            return Stat("file", head["ContentLength"], head["LastModified"].timestamp(), head.get("ETag", ""))
        except ClientError as error:
            if _code(error) not in MISSING:
                raise
        listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=place.prefix, MaxKeys=1)
        if listing.get("KeyCount", 0):
            first = listing["Contents"][0]
            modified = first["LastModified"].timestamp() if first["Key"] == place.prefix else 0.0
            return Stat("folder", 0, modified)
        return None

    def _existing(self, place: Place) -> Stat:
        found = self.stat(place)
        if found is None:
            raise NotFound(f"{place.display} does not exist")
        return found

    def _require_parent(self, place: Place) -> None:
        parent = place.parent
        found = self.stat(parent)
        if found is None or found.type != "folder":
            raise NotFound(f"folder {parent.display} does not exist")

    def _keys(self, prefix: str) -> Iterator[dict]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def _candidates(self, place: Place, query: Query) -> Iterator[Candidate]:
        """The folder's entries as the listing orders them, read one
        ``ListObjectsV2`` page at a time (nothing but the page being read
        and the rows chosen so far is kept). A page after a file's name in
        name order starts the listing there (``StartAfter``)."""
        prefix = place.prefix
        start = {}
        after = query.after
        if after is not None and after.group == OTHER and query.sort == "name" and query.order == "asc":
            start = {"StartAfter": prefix + after.name}
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/", **start)
        for name, row in level_entries(pages, prefix):
            if name.startswith(TRASH_PREFIX) or not query.matches(name):
                continue
            value = row["modified"] if query.sort == "modified" else row["size"] if query.sort == "size" else 0
            yield (FOLDER if row["type"] == "folder" else OTHER, value, name, row)

    def _listing(self, place: Place, query: Query) -> dict:
        listing = query.listing(place.folder.domain, place.folder.owner, str(place.relative) if place.relative.parts else "")
        chosen, following = select_page(self._candidates(place, query), query)
        entries = [candidate[3] for candidate in chosen]
        return page_json(entries, query, following, listing) if query.paged else {"entries": entries}

    def _entry_json(self, place: Place, found: Stat) -> dict:
        return {
            "name": place.relative.name or place.folder.domain,
            "type": found.type,
            "size": found.size if found.type == "file" else 0,
            "modified": found.modified,
            "domain": place.folder.domain,
            "path": str(place.relative) if place.relative.parts else "",
        }

    # --- the interface (interface.FileStorage) ------------------------------------------------------

    def ensure_folders(self, username: str | None = None) -> None:
        """Prefixes need no making; only the local staging folder does."""
        staging = self.domains.local_path(UPLOADS)
        staging.mkdir(parents=True, exist_ok=True)
        os.chmod(staging, 0o700)

    @answered
    def delete_private(self, username: str) -> bool:
        place = self.place(username, PRIVATE, "")
        keys = [item["Key"] for item in self._keys(place.prefix)]
        self._delete_keys(keys)
        return bool(keys)

    @answered
    def describe(self, user: str, domain: str, path: str, query: Query = EVERY_ENTRY) -> dict:
        place = self.place(user, domain, path)
        found = self._existing(place)
        result = self._entry_json(place, found)
        if found.type == "folder":
            result.update(self._listing(place, query))
        return result

    @answered
    def entry_type(self, user: str, domain: str, path: str) -> str:
        return self._existing(self.place(user, domain, path)).type

    @answered
    def create(self, user: str, domain: str, path: str, kind: str) -> dict:
        place = self.place(user, domain, path, new=True)
        if not place.relative.parts:
            raise Conflict(f"{place.display} already exists")
        self._require_parent(place)
        if self.stat(place) is not None:
            raise Conflict(f"{place.display} already exists")
        self._put_new(place.prefix if kind == "folder" else place.key, b"", place.display)
        return self._entry_json(place, self._existing(place))

    def _put_new(self, key: str, body, display: str, overwrite: bool = False) -> None:
        condition = {} if overwrite else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **condition)
        except ClientError as error:
            if _code(error) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise Conflict(f"{display} already exists") from None
            raise

    @answered
    def move(self, user: str, domain: str, path: str, target_domain: str, target_path: str,
             overwrite: bool) -> dict:
        source = self.place(user, domain, path)
        target = self.place(user, target_domain, target_path, new=True)
        if not source.relative.parts:
            raise BadPath(f"the top folder of the {domain} domain cannot be moved")
        found = self._existing(source)
        if not target.relative.parts:
            raise Conflict(f"{target.folder.display('')} is the top folder of the domain")
        if source.key == target.key:
            return self._entry_json(target, found)
        if found.type == "folder" and target.key.startswith(source.prefix):
            raise BadPath("a folder cannot be moved into itself")
        self._require_parent(target)
        existing = self.stat(target)
        if existing is not None:
            if not overwrite:
                raise Conflict(f"{target.display} already exists")
            if existing.type == "folder" and source.key.startswith(target.prefix):
                raise Conflict(f"{target.display} holds {source.display}: it cannot be replaced by it")
            # replaced as a whole, as a local move does (not in one step here)
            self._delete_place(target, existing)
        if found.type == "file":
            self._copy(source.key, target.key, found.size)
            self.client.delete_object(Bucket=self.bucket, Key=source.key)
        else:
            moved = list(self._keys(source.prefix))
            for item in moved:
                self._copy(item["Key"], target.prefix + item["Key"][len(source.prefix):], item["Size"])
            if not any(item["Key"] == source.prefix for item in moved):
                self._put_new(target.prefix, b"", target.display, overwrite=True)
            self._delete_keys([item["Key"] for item in moved])
        return self._entry_json(target, self._existing(target))

    def _copy(self, source_key: str, target_key: str, size: int) -> None:
        if size <= MULTIPART_COPY:
            self.client.copy_object(Bucket=self.bucket, Key=target_key,
                                    CopySource={"Bucket": self.bucket, "Key": source_key})
            return
        self.client.copy({"Bucket": self.bucket, "Key": source_key}, self.bucket, target_key,
                         Config=TransferConfig(multipart_threshold=MULTIPART_COPY, multipart_chunksize=COPY_PART))

    @answered
    def delete(self, user: str, domain: str, path: str) -> str:
        place = self.place(user, domain, path)
        if not place.relative.parts:
            raise BadPath(f"the top folder of the {domain} domain cannot be deleted")
        self._delete_place(place, self._existing(place))
        return place.display

    def _delete_place(self, place: Place, found: Stat) -> None:
        if found.type == "file":
            self.client.delete_object(Bucket=self.bucket, Key=place.key)
        else:
            self._delete_keys([item["Key"] for item in self._keys(place.prefix)])

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start:start + DELETE_BATCH]
            answer = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise StorageUnavailable(f"the file storage did not delete {len(answer['Errors'])} objects "
                                         f"({first.get('Code')})")

    @answered
    def find(self, user: str, domain: str, path: str) -> Found:
        place = self.place(user, domain, path)
        found = self._existing(place)
        name = place.relative.name or (user if domain == PRIVATE else domain)
        if found.type == "folder":
            return Found(name, place.display)
        return Found(name, place.display, S3Reader(self.client, self.bucket, place.key, found))

    @answered
    def zip_paths(self, user: str, domain: str, paths: list, folder: str | None = None) -> Iterator[bytes]:
        if folder is not None:
            members = [(self.place(user, domain, folder), paths[0])]
        else:
            members = self._zip_members(user, domain, paths)
        return answered_stream(self._build_zip(members))

    def _zip_members(self, user: str, domain: str, paths) -> list[tuple[Place, str]]:
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise BadPath("give the paths to zip: one or more, each a path inside the domain")
        if len(paths) > MAX_ZIP_PATHS:
            raise BadPath(f"a zip takes at most {MAX_ZIP_PATHS} paths; zip their folder instead")
        members, names = [], set()
        for path in paths:
            place = self.place(user, domain, path)
            if not place.relative.parts:
                raise BadPath("the top folder of a domain is downloaded from its own address, not with other paths")
            self._existing(place)
            if place.relative.name in names:
                raise BadPath(f"two of the paths are named {place.relative.name}: a zip needs different names")
            names.add(place.relative.name)
            members.append((place, place.relative.name))
        return members

    def _build_zip(self, members: list[tuple[Place, str]]) -> Iterator[bytes]:
        """A stored zip made while it is sent (like ``downloads.build_zip``):
        an object deleted before its turn is left out."""
        archive = ZipStream(compress_type=ZIP_STORED)
        for place, name in members:
            found = self.stat(place)
            if found is None:
                continue
            if found.type == "file":
                yield from self._zip_object(archive, place.key, name)
                continue
            archive.mkdir(name + "/")
            yield from archive.all_files()
            keys = sorted(item["Key"] for item in self._keys(place.prefix))
            for key in keys:
                relative = key[len(place.prefix):]
                if not relative or any(part.startswith(TRASH_PREFIX) for part in relative.split("/")):
                    continue
                if key.endswith("/"):
                    # a marker: an entry only for a folder with nothing else in it
                    if not any(other != key and other.startswith(key) for other in keys):
                        archive.mkdir(f"{name}/{relative}")
                        yield from archive.all_files()
                    continue
                yield from self._zip_object(archive, key, f"{name}/{relative}")
        yield from archive.footer()

    def _zip_object(self, archive: ZipStream, key: str, name: str) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as error:
            if _code(error) in MISSING:
                return
            raise
        try:
            archive.add(body.iter_chunks(CHUNK), name)
            yield from archive.all_files()
        finally:
            body.close()

    @answered
    def usage(self, username: str, max_entries: int = MAX_ENTRIES, max_seconds: float = MAX_SECONDS) -> Usage:
        deadline = time.monotonic() + max_seconds
        total = files = 0
        for seen, item in enumerate(self._keys(self.place(username, PRIVATE, "").prefix), start=1):
            if seen > max_entries or time.monotonic() > deadline:
                return Usage(total, files, complete=False)
            if not item["Key"].endswith("/"):
                total += item["Size"]
                files += 1
        return Usage(total, files, complete=True)

    def _file(self, user: str, domain: str, path: str, what: str) -> tuple[Place, Stat]:
        place = self.place(user, domain, path)
        if not place.relative.parts:
            raise BadPath(f"give the path of {what}")
        found = self._existing(place)
        if found.type != "file":
            raise BadPath(f"{place.display} is a folder, not {what}")
        return place, found

    @answered
    def read_text(self, user: str, domain: str, path: str, what: str, limit: int) -> str:
        place, found = self._file(user, domain, path, what)
        if found.size > limit:
            raise BadPath(f"{what} is at most {limit // 1024} KiB")
        data = self.client.get_object(Bucket=self.bucket, Key=place.key)["Body"].read(limit + 1)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise BadPath(f"{what} is not UTF-8 text") from None

    @answered
    def open_for_reading(self, user: str, domain: str, path: str, what: str) -> tuple[int, str]:
        """A descriptor of a copy of the object in the staging folder (gone
        from the folder at once; the file lives while it is open)."""
        place, _ = self._file(user, domain, path, what)
        self.ensure_folders()
        with tempfile.TemporaryFile(dir=self.domains.local_path(UPLOADS)) as copy:
            self.client.download_fileobj(self.bucket, place.key, copy)
            copy.flush()
            descriptor = os.dup(copy.fileno())
        os.lseek(descriptor, 0, os.SEEK_SET)
        return descriptor, place.display

    # --- uploads -------------------------------------------------------------------------------

    def _upload_place(self, upload) -> Place:
        return self.place(upload.domain_user, upload.domain, upload.path)

    def _check_target(self, place: Place, overwrite: bool) -> None:
        self._require_parent(place)
        existing = self.stat(place)
        if existing is not None:
            if existing.type == "folder":
                raise Conflict(f"{place.display} is a folder")
            if not overwrite:
                raise Conflict(f"{place.display} already exists")

    @answered
    def upload_target(self, user: str, domain: str, path: str, overwrite: bool) -> str:
        place = self.place(user, domain, path, new=True)
        if not place.relative.parts:
            raise BadPath("an upload needs a file name")
        self._check_target(place, overwrite)
        return str(place.relative)

    def staging_need(self, size: int) -> int:
        """At most a part and the chunk that fills it wait on the disk."""
        return min(size, 2 * PART_SIZE)

    def upload_writer(self, upload, store) -> S3ChunkWriter:
        return S3ChunkWriter(self, upload, store)

    @answered
    def begin_multipart(self, upload) -> str:
        """A new multipart upload for ``upload``'s target; its id."""
        key = self._upload_place(upload).key
        return self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]

    @answered
    def send_part(self, upload, number: int, data) -> str:
        """Send part ``number`` (bytes or a file) of ``upload``; its ETag."""
        answer = self.client.upload_part(Bucket=self.bucket, Key=self._upload_place(upload).key,
                                         UploadId=upload.multipart, PartNumber=number, Body=data)
        return answer["ETag"]

    @answered
    def place_upload(self, upload) -> dict:
        place = self._upload_place(upload)
        self._check_target(place, upload.overwrite)
        with open(upload.data_path, "rb") as rest:
            # streamed from the staged file (at most a part and a chunk)
            self._place(upload, place, rest, os.fstat(rest.fileno()).st_size)
        return self._entry_json(place, self._existing(place))

    def _place(self, upload, place: Place, rest, size: int) -> None:
        if not upload.multipart:
            self._put_new(place.key, rest, place.display, overwrite=upload.overwrite)
        else:
            parts = list(upload.parts)
            if size:
                number = len(parts) + 1
                etag = self.client.upload_part(Bucket=self.bucket, Key=place.key, UploadId=upload.multipart,
                                               PartNumber=number, Body=rest)["ETag"]
                parts.append({"PartNumber": number, "ETag": etag})
            condition = {} if upload.overwrite else {"IfNoneMatch": "*"}
            try:
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=place.key, UploadId=upload.multipart,
                    MultipartUpload={"Parts": parts}, **condition,
                )
            except ClientError as error:
                if _code(error) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    raise Conflict(f"{place.display} already exists") from None
                raise

    def discard_upload(self, meta: dict) -> None:
        if not meta.get("multipart"):
            return
        try:
            place = self.place(meta["domain_user"], meta["domain"], meta["path"])
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=place.key, UploadId=meta["multipart"])
        except (ClientError, BotoCoreError, KarvdashError, KeyError):
            pass  # gone already, or the bucket's lifecycle rules will end it

    def clean_up(self, older_than: float) -> None:
        """Nothing is set aside in a bucket."""
