"""What a download is made of: HTTP ranges of a file, the ``Content-Disposition``
of a name, and folders as stored zip archives streamed in pieces."""

from __future__ import annotations

import re
from urllib.parse import quote

from zipstream import ZIP_STORED, ZipStream

from .operations import DomainFolder, walk_files

# how much a download reads and sends at a time
CHUNK = 1024 * 1024
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
    for real, relative in walk_files(folder, top):
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
