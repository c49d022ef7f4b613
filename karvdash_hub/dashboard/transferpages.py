"""Downloads (files with HTTP Range, folders as a streamed zip) and
resumable chunked uploads.

Nothing here holds a whole file in memory: downloads read and send 1 MiB at
a time, uploads write each received piece to the staged file as it arrives
(``stream_request_body``), and all disk access runs in the thread pool.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
import shutil
from email.utils import formatdate
from urllib.parse import quote

from tornado import web
from tornado.iostream import StreamClosedError
from zipstream import ZIP_STORED, ZipStream

from karvdash_hub.files import operations as fileops
from karvdash_hub.files.operations import DomainFolder, clean_relative_path
from karvdash_hub.files.uploads import Upload

from .handlers import APIHandler, DashboardError

CHUNK = 1024 * 1024
# a single upload request may carry at most this much (the browser sends less)
MAX_CHUNK = 256 * 1024 * 1024
SINGLE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def content_disposition(name: str) -> str:
    """``attachment`` with the name in RFC 6266 form (UTF-8 safe)."""
    fallback = name.encode("ascii", "replace").decode().replace('"', "_").replace("\\", "_").replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single ``bytes=`` range; None to send the
    whole file (no range, several ranges or one we do not understand);
    raises ValueError for a range past the end (416)."""
    match = SINGLE_RANGE.match(header.strip())
    if not match:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0:
            raise ValueError("empty suffix range")
        return max(size - length, 0), size
    start = int(first)
    end = min(int(last) + 1, size) if last else size
    if start >= size or (last and int(last) < start):
        raise ValueError("range starts past the end")
    return start, end


def build_zip(folder: DomainFolder, top, name: str) -> ZipStream:
    """A stored (uncompressed) zip of ``top``, with its size known up front."""
    archive = ZipStream(compress_type=ZIP_STORED, sized=True)
    archive.mkdir(name + "/")
    for real, relative in fileops.walk_files(folder, top):
        if real is None:
            archive.mkdir(f"{name}/{relative}")
        else:
            archive.add_path(str(real), f"{name}/{relative}")
    return archive


def next_batch(iterator) -> bytes:
    """Up to about CHUNK bytes from the zip generator (runs in the thread pool)."""
    batch = bytearray()
    for piece in iterator:
        batch += piece
        if len(batch) >= CHUNK:
            break
    return bytes(batch)


class DownloadHandler(APIHandler):
    """GET a file (Range supported) or a folder (as ``<name>.zip``)."""

    async def head(self, domain: str, path: str | None):
        await self.get(domain, path, send_body=False)

    async def get(self, domain: str, path: str | None, send_body: bool = True):
        self.require_scope("files", "read")
        relative = clean_relative_path(path or "")
        user = await self.acting_user()
        folder = await self.blocking(DomainFolder.for_user, self.context.domains, domain, user)
        real = await self.blocking(folder.resolve, relative)
        if not os.path.exists(real):
            raise fileops.NotFound(f"{folder.display(relative)} does not exist")
        name = relative.name or (user if domain == "private" else domain)
        if os.path.isdir(real):
            await self.send_folder(folder, real, name, send_body)
        else:
            await self.send_file(real, name, send_body)

    async def send_file(self, real, name: str, send_body: bool) -> None:
        fd = await self.blocking(os.open, real, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            info = os.fstat(fd)
            size = info.st_size
            etag = f'"{info.st_mtime_ns:x}-{size:x}"'
            start, end = 0, size
            range_header = self.request.headers.get("Range")
            if_range = self.request.headers.get("If-Range")
            if range_header and (not if_range or if_range == etag):
                try:
                    wanted = parse_range(range_header, size)
                except ValueError:
                    self.set_header("Content-Range", f"bytes */{size}")
                    raise DashboardError(416, f"the range {range_header} is outside the file ({size} bytes)") from None
                if wanted is not None:
                    start, end = wanted
                    self.set_status(206)
                    self.set_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            self.set_header("Content-Type", content_type)
            self.set_header("X-Content-Type-Options", "nosniff")
            self.set_header("Content-Disposition", content_disposition(name))
            self.set_header("Accept-Ranges", "bytes")
            self.set_header("ETag", etag)
            self.set_header("Last-Modified", formatdate(info.st_mtime, usegmt=True))
            self.set_header("Content-Length", str(end - start))
            self.set_header("Cache-Control", "private, no-cache")
            if send_body and not await self.stream_range(fd, start, end):
                return  # the client went away
        finally:
            os.close(fd)
        self.finish()

    async def stream_range(self, fd: int, start: int, end: int) -> bool:
        """Send bytes [start, end) of ``fd``, reading the next piece from disk
        while the previous one goes out; False if the client went away."""
        loop = asyncio.get_running_loop()

        def read(position):
            return loop.run_in_executor(None, os.pread, fd, min(CHUNK, end - position), position)

        position = start
        reading = read(position) if position < end else None
        while reading is not None:
            data = await reading
            if not data:
                break  # the file shrank while we sent it
            position += len(data)
            reading = read(position) if position < end else None
            self.write(data)
            try:
                await self.flush()
            except StreamClosedError:
                if reading is not None:
                    await reading  # never close the file under a running read
                return False
        return True

    async def send_folder(self, folder: DomainFolder, real, name: str, send_body: bool) -> None:
        archive = await self.blocking(build_zip, folder, real, name)
        self.set_header("Content-Type", "application/zip")
        self.set_header("Content-Disposition", content_disposition(name + ".zip"))
        self.set_header("Content-Length", str(len(archive)))
        self.set_header("Cache-Control", "private, no-cache")
        if send_body:
            pieces = iter(archive)
            while batch := await self.blocking(next_batch, pieces):
                self.write(batch)
                try:
                    await self.flush()
                except StreamClosedError:
                    return
        self.finish()


class UploadListHandler(APIHandler):
    """GET the caller's unfinished uploads; POST starts one."""

    async def get(self):
        self.require_scope("files", "write")
        store = self.context.uploads
        uploads = await self.blocking(lambda: [upload.to_json() for upload in store.list(self.username)])
        self.write_json({"uploads": uploads})

    async def post(self):
        self.require_scope("files", "write")
        body = self.json_body()
        domain, path, size = body.get("domain"), body.get("path"), body.get("size")
        overwrite = body.get("overwrite", False)
        if not isinstance(domain, str) or not isinstance(path, str):
            raise DashboardError(400, 'send {"domain": ..., "path": ..., "size": ...}')
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise DashboardError(400, '"size" must be the whole number of bytes to send')
        if not isinstance(overwrite, bool):
            raise DashboardError(400, '"overwrite" must be true or false')
        relative = clean_relative_path(path)
        if not relative.parts:
            raise DashboardError(400, "an upload needs a file name")
        user = await self.acting_user()
        folder = await self.blocking(DomainFolder.for_user, self.context.domains, domain, user)
        target = await self.blocking(folder.locate, relative)
        await self.blocking(check_target, folder, target, overwrite)
        free = await self.blocking(lambda: shutil.disk_usage(self.context.uploads.folder.parent).free)
        if size > free:
            raise DashboardError(507, f"not enough space: {size} bytes to send, {free} free")
        upload = await self.blocking(
            self.context.uploads.create,
            owner=self.username,
            domain=folder.domain,
            domain_user=user,
            path=str(relative),
            size=size,
            overwrite=overwrite,
        )
        self.set_header("Location", self.context.url("api/uploads", upload.id))
        self.write_json(upload.to_json(), status=201)


def check_target(folder: DomainFolder, target, overwrite: bool) -> None:
    display = folder.display(folder.relative(target))
    if not target.parent.is_dir():
        raise fileops.NotFound(f"folder {folder.display(folder.relative(target.parent))} does not exist")
    if os.path.lexists(target):
        if os.path.isdir(target) and not os.path.islink(target):
            raise fileops.Conflict(f"{display} is a folder")
        if not overwrite:
            raise fileops.Conflict(f"{display} already exists")


@web.stream_request_body
class UploadHandler(APIHandler):
    """One upload: GET its state, PUT bytes at ``Upload-Offset``, PATCH
    ``{"overwrite": true}``, DELETE to cancel.

    The body of a PUT goes straight to the staged file while it arrives. The
    request that brings the last byte moves the file into place.
    """

    upload: Upload | None = None
    fd: int | None = None
    busy = False  # a write is running in the thread pool
    closed = False
    refusal: Exception | None = None

    async def prepare(self):
        try:
            await super().prepare()
            if self.request.method == "PUT":
                await self.start_chunk()
            else:
                self._body = bytearray()
        except (web.HTTPError, fileops.FileError) as refusal:
            # answer only once the body is in: a reply before it makes the
            # proxy see a reset connection (and answer 503 instead of ours)
            self.refusal = refusal
            self.request.connection.set_max_body_size(MAX_CHUNK)

    def check_refusal(self) -> None:
        if self.refusal is not None:
            raise self.refusal

    async def start_chunk(self):
        self.require_scope("files", "write")
        upload_id = self.path_args[0]
        store = self.context.uploads
        upload = await self.blocking(store.get, upload_id, self.username)
        offset = await self.blocking(upload.offset)
        claimed = self.request.headers.get("Upload-Offset", "")
        if not claimed.isdigit():
            raise DashboardError(400, "send the offset of this chunk in the Upload-Offset header", offset=offset)
        if int(claimed) != offset:
            raise DashboardError(409, f"the upload continues at byte {offset}, not {claimed}", offset=offset)
        length = self.request.headers.get("Content-Length")
        remaining = upload.size - offset
        if length is not None and (not length.isdigit() or int(length) > remaining):
            raise DashboardError(413, f"this chunk goes past the end: {remaining} bytes remain", offset=offset)
        if upload.id in store.writing:
            raise DashboardError(409, "another request is sending this upload", offset=offset)
        store.writing.add(upload.id)
        self.upload = upload
        self.position = offset
        self.pending = bytearray()
        self.request.connection.set_max_body_size(min(remaining, MAX_CHUNK))
        self.fd = await self.blocking(os.open, upload.data_path, os.O_WRONLY | os.O_NOFOLLOW)

    async def data_received(self, chunk: bytes):
        if self.refusal is not None:
            return  # read and dropped; the answer is the refusal
        if self.upload is None:
            # other methods have small JSON bodies
            if len(self._body) + len(chunk) > 64 * 1024:
                self.refusal = DashboardError(413, "the body is too large")
                return
            self._body += chunk
            return
        if self.position + len(self.pending) + len(chunk) > self.upload.size:
            raise DashboardError(413, "the chunk goes past the end of the upload")
        self.pending += chunk
        if len(self.pending) >= CHUNK:
            await self.write_pending()

    async def write_pending(self):
        data, self.pending = bytes(self.pending), bytearray()
        self.busy = True
        try:
            while data:
                written = await self.blocking(os.pwrite, self.fd, data, self.position)
                self.position += written
                data = data[written:]
        finally:
            self.busy = False
            if self.closed:
                self.release()

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.upload is not None:
            self.context.uploads.writing.discard(self.upload.id)

    def on_finish(self):
        self.release()

    def on_connection_close(self):
        # what reached the disk stays: the client resumes from there. A write
        # still running in a thread closes the file itself when it is done
        # (closing it under that thread could hand its number to another file).
        self.closed = True
        if not self.busy:
            self.release()
        super().on_connection_close()

    def json_body(self) -> dict:
        self.request.body = bytes(getattr(self, "_body", b""))
        return super().json_body()

    async def get(self, upload_id: str):
        self.check_refusal()
        self.require_scope("files", "write")
        upload = await self.blocking(self.context.uploads.get, upload_id, self.username)
        self.write_json(await self.blocking(upload.to_json))

    async def patch(self, upload_id: str):
        self.check_refusal()
        self.require_scope("files", "write")
        body = self.json_body()
        if not isinstance(body.get("overwrite"), bool):
            raise DashboardError(400, 'send {"overwrite": true} or {"overwrite": false}')
        upload = await self.blocking(self.context.uploads.get, upload_id, self.username)
        upload.overwrite = body["overwrite"]
        await self.blocking(self.context.uploads.save, upload)
        self.write_json(await self.blocking(upload.to_json))

    async def delete(self, upload_id: str):
        self.check_refusal()
        self.require_scope("files", "write")
        store = self.context.uploads
        upload = await self.blocking(store.get, upload_id, self.username)
        if upload.id in store.writing:
            raise DashboardError(409, "a request is sending this upload right now")
        await self.blocking(store.remove, upload)
        self.set_status(204)
        self.finish()

    async def put(self, upload_id: str):
        self.check_refusal()
        await self.write_pending()
        upload = self.upload
        if self.position < upload.size:
            self.write_json({**upload.to_json(self.position), "complete": False})
            return
        await self.blocking(os.fsync, self.fd)
        os.close(self.fd)
        self.fd = None
        entry = await self.blocking(self.finish_upload, upload)
        self.write_json({**upload.to_json(upload.size), "complete": True, "entry": entry}, status=201)

    def finish_upload(self, upload: Upload) -> dict:
        """Move the complete staged file to its place (blocking; thread pool)."""
        folder = DomainFolder.for_user(self.context.domains, upload.domain, upload.domain_user)
        relative = clean_relative_path(upload.path)
        target = folder.locate(relative)
        check_target(folder, target, upload.overwrite)
        os.chmod(upload.data_path, 0o644)
        fileops.place_file(upload.data_path, target, overwrite=upload.overwrite, display=folder.display(relative))
        self.context.uploads.remove(upload)
        entry = fileops.entry_for(folder, target)
        return {**entry.to_json(), "domain": folder.domain, "path": str(relative)}
