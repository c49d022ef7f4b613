"""Downloads (files with HTTP Range, folders as a streamed zip) and
resumable chunked uploads.

Nothing here holds a whole file in memory: a download of a local file from
16 MiB up is sent by the kernel (``sendfile``, :mod:`.sendfile`), smaller
ones and S3 objects are read and sent 1 MiB at a time (the next piece is read
while one goes out). An upload's chunk from 4 MiB up to a local file is
received by the kernel (``splice``, :mod:`.splice`); smaller ones and those
to S3 write each received piece to the staged file as it arrives
(``stream_request_body``) while the socket is read on. All disk access runs
in the thread pool.
"""

from __future__ import annotations

import asyncio
import errno
import mimetypes
import sys

from tornado.iostream import StreamClosedError

from karvdash_hub.core.errors import KarvdashError
from karvdash_hub.files.downloads import (
    INLINE_POLICY,
    content_disposition,
    next_batch,
    parse_range,
    shows_inline,
    zip_name,
)
from karvdash_hub.files.interface import ChunkWriter, Found
from karvdash_hub.files.uploads import Upload

from .context import DashboardContext
from .filepages import (
    AS,
    DOMAIN,
    DOMAIN_PARAMETER,
    ENTRY,
    PATH,
    PATH_PARAMETER,
    READ,
    WRITE,
)
from .handlers import APIHandler
from .openapi import error_responses, json_body, json_response, scopes_note
from .sendfile import plain_tcp, send_file_range, send_read_range
from .splice import receive_range, send_all, take_over

# a single upload request may carry at most this much (the browser sends less)
MAX_CHUNK = 256 * 1024 * 1024
# an upload's bytes go to the disk in writes of about this size
WRITE_BATCH = 1024 * 1024
# a download at least this long is sent by the kernel (sendfile) on a connection
# closed after it; a shorter one keeps its connection, read through Python
KERNEL_FROM = 16 * 1024 * 1024
# an upload chunk at least this long is received by the kernel (splice) on a
# connection closed after it (the browser sends 16 MiB)
SPLICE_FROM = 4 * 1024 * 1024


class DownloadHandler(APIHandler):
    """GET a file (Range supported) or a folder (as ``<name>.zip``)."""

    async def head(self, domain: str, path: str | None):
        await self.get(domain, path, send_body=False)

    async def get(self, domain: str, path: str | None, send_body: bool = True):
        self.require_scope("files", "read")
        user = await self.acting_user()
        found = await self.blocking(self.context.storage.find, user, domain, path or "")
        if found.reader is None:
            archive = await self.blocking(self.context.storage.zip_paths, user, domain, [found.name], path or "")
            await self.send_zip(archive, found.name, send_body)
        else:
            await self.send_file(found, send_body, inline=self.get_query_argument("inline", "") == "1")

    async def send_file(self, found: Found, send_body: bool, inline: bool = False) -> None:
        reader, name = found.reader, found.name
        try:
            size = reader.size
            etag = reader.etag
            start, end = 0, size
            range_header = self.request.headers.get("Range")
            if_range = self.request.headers.get("If-Range")
            if range_header and (not if_range or if_range == etag):
                try:
                    wanted = parse_range(range_header, size)
                except ValueError:
                    self.set_header("Content-Range", f"bytes */{size}")
                    raise KarvdashError(416, f"the range {range_header} is outside the file ({size} bytes)") from None
                if wanted is not None:
                    start, end = wanted
                    self.set_status(206)
                    self.set_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            # a preview asks for inline; only types that cannot run scripts get it
            inline = inline and shows_inline(content_type)
            self.set_header("Content-Type", content_type)
            self.set_header("X-Content-Type-Options", "nosniff")
            self.set_header("Content-Disposition", content_disposition(name, inline=inline))
            if inline:
                self.set_header("Content-Security-Policy", INLINE_POLICY)
            self.set_header("Accept-Ranges", "bytes")
            self.set_header("ETag", etag)
            self.set_header("Last-Modified", found.last_modified)
            self.set_header("Content-Length", str(end - start))
            self.set_header("Cache-Control", "private, no-cache")
            if send_body and reader.descriptor is not None and end - start >= KERNEL_FROM and plain_tcp(
                self.request.connection.stream
            ):
                await self.send_by_kernel(reader, start, end)
                return
            if send_body and not await self.stream_range(reader, start, end):
                return  # the client went away
        finally:
            await self.blocking(reader.close)
        self.finish()

    async def send_by_kernel(self, reader, start: int, end: int) -> None:
        """Send bytes [start, end) with sendfile on the connection taken
        from Tornado (which counts only what it writes itself), closed
        after the last byte: the client's next request opens another."""
        self.set_header("Connection", "close")
        try:
            await self.flush()
        except StreamClosedError:
            return
        stream = self.detach()
        try:
            await send_file_range(stream, reader, start, end)
        finally:
            stream.close()
            self.application.log_request(self)

    async def stream_range(self, reader, start: int, end: int) -> bool:
        """Send bytes [start, end) of ``reader`` through Tornado, 1 MiB at
        a time; False if the client went away."""

        async def send(data: bytes) -> None:
            self.write(data)
            await self.flush()

        return await send_read_range(reader, start, end, send)

    async def send_zip(self, archive, name: str, send_body: bool) -> None:
        """Stream a zip made by ``build_zip`` as ``<name>.zip``, a batch at a
        time (its length is not known up front: no Content-Length)."""
        self.set_header("Content-Type", "application/zip")
        self.set_header("Content-Disposition", content_disposition(name + ".zip"))
        self.set_header("Cache-Control", "private, no-cache")
        if send_body:
            try:
                while batch := await self.blocking(next_batch, archive):
                    self.write(batch)
                    try:
                        await self.flush()
                    except StreamClosedError:
                        return
            finally:
                archive.close()  # its open file, if the client went away
        self.finish()


class ZipDownloadHandler(DownloadHandler):
    """Several paths of one domain as one streamed zip: GET with ``?path=``
    repeated, or POST with ``{"paths": [...]}`` (or form fields ``path``,
    for a browser's form when a long selection does not fit in an address)."""

    async def head(self, domain: str):
        await self.get(domain, send_body=False)

    async def get(self, domain: str, send_body: bool = True):
        await self.send_paths(domain, self.get_query_arguments("path"), send_body)

    async def post(self, domain: str):
        if self.request.headers.get("Content-Type", "").startswith("application/json"):
            paths = self.json_body().get("paths")
        else:
            paths = self.get_body_arguments("path")
        await self.send_paths(domain, paths, True)

    async def send_paths(self, domain: str, paths, send_body: bool) -> None:
        self.require_scope("files", "read")
        user = await self.acting_user()
        archive = await self.blocking(self.context.storage.zip_paths, user, domain, paths)
        await self.send_zip(archive, zip_name(paths, user if domain == "private" else domain), send_body)


class UploadListHandler(APIHandler):
    """GET the caller's unfinished uploads; POST starts one."""

    async def get(self):
        self.require_scope("files", "write")
        store = self.context.uploads
        owner = await self.acting_user()
        uploads = await self.blocking(lambda: [upload.to_json() for upload in store.list(owner)])
        self.write_json({"uploads": uploads})

    async def post(self):
        self.require_scope("files", "write")
        body = self.json_body()
        domain, path, size = body.get("domain"), body.get("path"), body.get("size")
        overwrite = body.get("overwrite", False)
        if not isinstance(domain, str) or not isinstance(path, str):
            raise KarvdashError(400, 'send {"domain": ..., "path": ..., "size": ...}')
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise KarvdashError(400, '"size" must be the whole number of bytes to send')
        if not isinstance(overwrite, bool):
            raise KarvdashError(400, '"overwrite" must be true or false')
        user = await self.acting_user()
        upload = await self.blocking(
            self.context.uploads.start,
            owner=user,
            domain=domain,
            domain_user=user,
            path=path,
            size=size,
            overwrite=overwrite,
        )
        self.set_location("api/uploads", upload.id)
        self.write_json(upload.to_json(), status=201)


class UploadHandler(APIHandler):
    """One upload: GET its state, PUT bytes at ``Upload-Offset``, PATCH
    ``{"overwrite": true}``, DELETE to cancel. An upload is its acting
    user's (an admin's ``?as=`` reaches that user's uploads).

    The body of a PUT goes straight to the staged file while it arrives. The
    request that brings the last byte moves the file into place. Login and
    the chunk's checks come before its first byte (``APIHandler.prepare``).
    """

    upload: Upload | None = None
    writer: ChunkWriter | None = None
    # the write running in the thread pool, if any: at most one per request
    write_task: asyncio.Future | None = None
    closed = False

    async def start_body(self):
        if self.request.method == "PUT":
            await self.start_chunk()
        else:
            await super().start_body()

    async def start_chunk(self):
        self.require_scope("files", "write")
        upload_id = self.path_args[0]
        store = self.context.uploads
        upload = await self.blocking(store.get, upload_id, await self.acting_user())
        offset = await self.blocking(upload.offset)
        claimed = self.request.headers.get("Upload-Offset", "")
        if not claimed.isdigit():
            raise KarvdashError(400, "send the offset of this chunk in the Upload-Offset header", offset=offset)
        if int(claimed) != offset:
            raise KarvdashError(409, f"the upload continues at byte {offset}, not {claimed}", offset=offset)
        length = self.request.headers.get("Content-Length")
        remaining = upload.size - offset
        if length is not None and (not length.isdigit() or int(length) > remaining):
            raise KarvdashError(413, f"this chunk goes past the end: {remaining} bytes remain", offset=offset)
        if upload.id in store.writing:
            raise KarvdashError(409, "another request is sending this upload", offset=offset)
        store.writing.add(upload.id)
        self.upload = upload
        self.position = offset  # the bytes before it are on the disk
        self.received = offset  # the bytes before it have arrived
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.request.connection.set_max_body_size(min(remaining, MAX_CHUNK))
        self.writer = await self.blocking(store.writer, upload)
        if (length is not None and int(length) >= SPLICE_FROM and self.writer.spliceable
                and plain_tcp(self.request.connection.stream)):
            await self.receive_by_kernel(int(length))

    async def receive_by_kernel(self, length: int):
        """Take the connection over from Tornado and have the kernel move the
        chunk's bytes from the socket into the staged file; answer as ``put``
        does, on a connection closed after the answer. A client that goes
        away keeps what reached the disk (it resumes from there)."""
        expects_continue = self.request.headers.get("Expect", "").lower() == "100-continue"
        stream = self.detach()
        buffered = take_over(stream)
        answer = None
        try:
            if expects_continue and not await send_all(stream, b"HTTP/1.1 100 Continue\r\n\r\n"):
                return
            try:
                received = await receive_range(stream, buffered, self.writer, self.position, length)
            except OSError as error:
                raise stored_error(error) from None
            self.position += received
            if received == length:
                answer = await self.chunk_answer()
        except KarvdashError as error:
            answer = self.error_body(error.status, error.message, error.extra), error.status
        except Exception:  # noqa: BLE001 - a defect: answered and logged as Tornado would
            self.log_exception(*sys.exc_info())
            answer = self.error_body(500, "Internal Server Error", {}), 500
        finally:
            self.release()
            try:
                if answer is not None:
                    await send_all(stream, self.detached_answer(*answer))
            finally:
                stream.close()
                self.set_status(answer[1] if answer else 499)
                self.application.log_request(self)

    async def data_received(self, chunk: bytes):
        if self.refusal is not None or self.upload is None:
            # a refusal drops the body; other methods have small JSON bodies
            return super().data_received(chunk)
        if self.received + len(chunk) > self.upload.size:
            raise KarvdashError(413, "the chunk goes past the end of the upload")
        self.received += len(chunk)
        self.pending.append(chunk)
        self.pending_size += len(chunk)
        if self.pending_size >= WRITE_BATCH:
            await self.hand_on()

    async def hand_on(self):
        """Start writing what has arrived, once the write before it is done:
        the socket is read while the disk writes, and at most one batch
        waits beside the one being written (memory stays bounded)."""
        await self.written()
        if not self.pending:
            return
        # the server hands on pieces of up to WRITE_BATCH: usually one, written as it is
        data = self.pending[0] if len(self.pending) == 1 else b"".join(self.pending)
        self.pending, self.pending_size = [], 0
        self.write_task = asyncio.ensure_future(self.write_all(data))
        # an error is raised by the next written(); a request gone by then has no one to tell
        self.write_task.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def write_all(self, data: bytes):
        view = memoryview(data)
        try:
            while view:
                written = await self.blocking(self.writer.write, view, self.position)
                self.position += written
                view = view[written:]
        finally:
            if self.closed:
                self.release()

    async def written(self):
        """Wait for the running write; raises what it raised."""
        if self.write_task is not None:
            try:
                await self.write_task
            except OSError as error:
                raise stored_error(error) from None
            finally:
                self.write_task = None

    def release(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.upload is not None:
            self.context.uploads.writing.discard(self.upload.id)

    def on_finish(self):
        self.release()

    def on_connection_close(self):
        # what reached the disk stays: the client resumes from there. A write
        # still running in a thread closes the file itself when it is done
        # (closing it under that thread could hand its number to another file).
        self.closed = True
        if self.write_task is None or self.write_task.done():
            self.release()
        super().on_connection_close()

    async def get(self, upload_id: str):
        self.require_scope("files", "write")
        upload = await self.blocking(self.context.uploads.get, upload_id, await self.acting_user())
        self.write_json(await self.blocking(upload.to_json))

    async def patch(self, upload_id: str):
        self.require_scope("files", "write")
        body = self.json_body()
        if not isinstance(body.get("overwrite"), bool):
            raise KarvdashError(400, 'send {"overwrite": true} or {"overwrite": false}')
        store = self.context.uploads
        upload = await self.blocking(store.get, upload_id, await self.acting_user())
        if upload.id in store.writing:
            # its record changes while parts are sent: it would be saved over
            raise KarvdashError(409, "a request is sending this upload right now; try again when it is done")
        upload.overwrite = body["overwrite"]
        await self.blocking(self.context.uploads.save, upload)
        self.write_json(await self.blocking(upload.to_json))

    async def delete(self, upload_id: str):
        self.require_scope("files", "write")
        store = self.context.uploads
        upload = await self.blocking(store.get, upload_id, await self.acting_user())
        if upload.id in store.writing:
            raise KarvdashError(409, "a request is sending this upload right now")
        await self.blocking(store.remove, upload)
        self.set_status(204)
        self.finish()

    async def put(self, upload_id: str):
        await self.hand_on()
        await self.written()
        self.write_json(*await self.chunk_answer())

    async def chunk_answer(self) -> tuple[dict, int]:
        """The answer to a chunk whose bytes are on the disk: where the upload
        goes on, or (its last byte in) the file moved into place."""
        upload = self.upload
        if self.position < upload.size:
            return {**upload.to_json(self.position), "complete": False}, 200
        await self.blocking(self.writer.sync)
        self.writer.close()
        self.writer = None
        entry = await self.blocking(self.context.uploads.finish, upload)
        return {**upload.to_json(upload.size), "complete": True, "entry": entry}, 201


def stored_error(error: OSError) -> KarvdashError:
    """A chunk's bytes that the staged file could not take, as answered."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return KarvdashError(507, "not enough space for this chunk: what arrived before it is kept")
    return KarvdashError(500, f"the chunk could not be written: {error.strerror or error}")


def handlers(context: DashboardContext) -> list:
    return [
        (rf"api/download/{DOMAIN}{PATH}", DownloadHandler),
        (rf"api/download-zip/{DOMAIN}/?", ZipDownloadHandler),
        (r"api/uploads/?", UploadListHandler),
        (r"api/uploads/([^/]+)/?", UploadHandler),
    ]


# --- OpenAPI ---------------------------------------------------------------------------------

UPLOAD = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "domain": {"type": "string"},
        "path": {"type": "string"},
        "size": {"type": "integer"},
        "offset": {"type": "integer", "description": "bytes received so far; the next chunk starts here"},
        "overwrite": {"type": "boolean"},
        "created": {"type": "number"},
        "complete": {"type": "boolean"},
        "entry": ENTRY,
    },
}
UPLOAD_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}


def openapi(context: DashboardContext) -> dict:
    file_parameters = [DOMAIN_PARAMETER, PATH_PARAMETER, AS]
    return {
        "/download/{domain}/{path}": {
            "parameters": file_parameters,
            "get": {
                "summary": "Download a file (HTTP Range supported) or a folder as a zip",
                "description": scopes_note(READ) + " Streamed; a folder arrives as `<name>.zip` (stored, not compressed).",
                "parameters": [
                    {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"}, "example": "bytes=0-1023"},
                    {
                        "name": "inline",
                        "in": "query",
                        "required": False,
                        "description": "`1`: answer `Content-Disposition: inline`, for showing the file in a page, "
                        "but only for images (PNG, JPEG, GIF, WebP, BMP, AVIF), PDF and `text/plain`; every other "
                        "type (HTML and SVG too) stays an attachment. Inline answers carry "
                        "`Content-Security-Policy: sandbox` and `X-Content-Type-Options: nosniff`.",
                        "schema": {"type": "string", "enum": ["1"]},
                    },
                ],
                "responses": {
                    "200": {"description": "The file or zip", "content": {"application/octet-stream": {}}},
                    "206": {"description": "The requested range"},
                    **error_responses(400, 401, 403, 404, 416),
                },
            },
        },
        "/download-zip/{domain}": {
            "parameters": [DOMAIN_PARAMETER, AS],
            "get": {
                "summary": "Download several files and folders of one domain as one zip",
                "description": scopes_note(READ)
                + " Streamed, stored (not compressed), like a folder download. Each path becomes an entry named "
                "after its last part (a folder with everything in it); two paths with the same name are a 400. "
                "The zip is named after the one path, or the folder the paths share.",
                "parameters": [
                    {
                        "name": "path",
                        "in": "query",
                        "required": True,
                        "description": "a path inside the domain; repeat for each",
                        "schema": {"type": "array", "items": {"type": "string"}},
                        "style": "form",
                        "explode": True,
                    }
                ],
                "responses": {
                    "200": {"description": "The zip", "content": {"application/zip": {}}},
                    **error_responses(400, 401, 403, 404),
                },
            },
            "post": {
                "summary": "Download several files and folders as one zip (a long list)",
                "description": scopes_note(READ)
                + " As GET, with the paths in the body: JSON `{\"paths\": [...]}`, or form fields `path` "
                "(with `_xsrf`, as a browser form sends them).",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["paths"],
                                "properties": {"paths": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
                            }
                        },
                        "application/x-www-form-urlencoded": {
                            "schema": {"type": "object", "properties": {"path": {"type": "array", "items": {"type": "string"}}}}
                        },
                    },
                },
                "responses": {
                    "200": {"description": "The zip", "content": {"application/zip": {}}},
                    **error_responses(400, 401, 403, 404),
                },
            },
        },
        "/uploads": {
            "get": {
                "summary": "The caller's unfinished uploads (an admin's `as`: that user's)",
                "description": scopes_note(WRITE),
                "parameters": [AS],
                "responses": {
                    "200": json_response("Uploads", {"type": "object", "properties": {"uploads": {"type": "array", "items": UPLOAD}}}),
                    **error_responses(401, 403),
                },
            },
            "post": {
                "summary": "Start an upload",
                "description": scopes_note(WRITE)
                + " The bytes are staged under `uploads/` and appear at `path` in one step when the last one "
                "arrives. An existing name is a 409 unless `overwrite` is true; a folder there is always a 409.",
                "parameters": [AS],
                "requestBody": json_body(
                    {
                        "type": "object",
                        "required": ["domain", "path", "size"],
                        "properties": {
                            "domain": {"type": "string", "enum": ["private", "shared"]},
                            "path": {"type": "string"},
                            "size": {"type": "integer", "minimum": 0},
                            "overwrite": {"type": "boolean", "default": False},
                        },
                    }
                ),
                "responses": {"201": json_response("The upload", UPLOAD), **error_responses(400, 401, 403, 404, 409, 507)},
            },
        },
        "/uploads/{id}": {
            "parameters": [UPLOAD_ID, AS],
            "get": {
                "summary": "An upload's state (the offset to continue from)",
                "description": scopes_note(WRITE),
                "responses": {"200": json_response("The upload", UPLOAD), **error_responses(401, 403, 404)},
            },
            "put": {
                "summary": "Send the next chunk",
                "description": scopes_note(WRITE)
                + " The body is the raw bytes; `Upload-Offset` must equal the upload's offset (else 409 with "
                "the right `offset`). The chunk with the last byte answers 201 with the placed file's `entry`; "
                "an empty chunk at the end retries placing it (after a 409 and a PATCH with overwrite).",
                "parameters": [{"name": "Upload-Offset", "in": "header", "required": True, "schema": {"type": "integer"}}],
                "requestBody": {"required": True, "content": {"application/octet-stream": {}}},
                "responses": {
                    "200": json_response("Chunk stored", UPLOAD),
                    "201": json_response("Upload complete; the file is in place", UPLOAD),
                    **error_responses(400, 401, 403, 404, 409, 413),
                },
            },
            "patch": {
                "summary": "Allow or forbid replacing an existing file",
                "description": scopes_note(WRITE),
                "requestBody": json_body({"type": "object", "required": ["overwrite"], "properties": {"overwrite": {"type": "boolean"}}}),
                "responses": {"200": json_response("The upload", UPLOAD), **error_responses(400, 401, 403, 404)},
            },
            "delete": {
                "summary": "Cancel an upload (its staged bytes are removed)",
                "description": scopes_note(WRITE),
                "responses": {"204": {"description": "Cancelled"}, **error_responses(401, 403, 404, 409)},
            },
        },
    }
