"""What a download is made of: HTTP ranges of a file, the ``Content-Disposition``
of a name, and folders as stored zip archives streamed in pieces."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from zipstream import ZIP_STORED, ZipStream

from .operations import BadPath, DomainFolder, NotFound, clean_relative_path, walk_files

# how much a download reads and sends at a time
CHUNK = 1024 * 1024
SINGLE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


# Types a browser may show in the page (previews): none of them runs
# scripts. HTML, SVG and XML never are, whatever is asked.
INLINE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/avif", "application/pdf", "text/plain"}
)
# Sent with every inline answer: opened on its own, the file gets a
# sandboxed, script-less document of no origin.
INLINE_POLICY = "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
# the most paths one zip download takes
MAX_ZIP_PATHS = 10000


def content_disposition(name: str, inline: bool = False) -> str:
    """``attachment`` (or ``inline``) with the name in RFC 6266 form (UTF-8 safe)."""
    fallback = name.encode("ascii", "replace").decode().replace('"', "_").replace("\\", "_").replace("?", "_")
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def shows_inline(content_type: str) -> bool:
    """Whether a file of this type may be answered ``inline`` when asked."""
    return content_type in INLINE_TYPES


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


def build_zip(folder: DomainFolder, members: list[tuple[Path, str]]) -> Iterator[bytes]:
    """The bytes of a stored (uncompressed) zip of ``members`` (real path,
    name in the archive): a folder with everything below it, a file as
    itself. Made while it is sent, so a file deleted before its turn is left
    out and the download still completes (which is also why its size is not
    known up front)."""
    archive = ZipStream(compress_type=ZIP_STORED)
    for real, name in members:
        if not real.is_dir():
            yield from _zip_file(archive, real, name)
            continue
        archive.mkdir(name + "/")
        yield from archive.all_files()
        for inner, relative in walk_files(folder, real):
            if inner is None:
                archive.mkdir(f"{name}/{relative}")
                yield from archive.all_files()
            else:
                yield from _zip_file(archive, inner, f"{name}/{relative}")
    yield from archive.footer()


def _zip_file(archive: ZipStream, real: Path, name: str) -> Iterator[bytes]:
    """One file's entry, or nothing if it is gone."""
    try:
        descriptor = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return  # deleted since its folder was listed
    try:
        # read through the open descriptor: a deletion from now on does not
        # cut the entry short
        archive.add_path(f"/proc/self/fd/{descriptor}", name)
        yield from archive.all_files()
    finally:
        os.close(descriptor)


def zip_members(folder: DomainFolder, paths: list) -> list[tuple[Path, str]]:
    """(real path, name in the archive) of each path of ``folder`` to zip,
    each checked: inside the domain, existing, not the top folder, and no
    two with the same name."""
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise BadPath("give the paths to zip: one or more, each a path inside the domain")
    if len(paths) > MAX_ZIP_PATHS:
        raise BadPath(f"a zip takes at most {MAX_ZIP_PATHS} paths; zip their folder instead")
    members, names = [], set()
    for path in paths:
        relative = clean_relative_path(path)
        if not relative.parts:
            raise BadPath("the top folder of a domain is downloaded from its own address, not with other paths")
        real = folder.resolve(relative)
        if not real.exists():
            raise NotFound(f"{folder.display(relative)} does not exist")
        if not real.is_file() and not real.is_dir():
            raise BadPath(f"{folder.display(relative)} is neither a file nor a folder")
        if relative.name in names:
            raise BadPath(f"two of the paths are named {relative.name}: a zip needs different names")
        names.add(relative.name)
        members.append((real, relative.name))
    return members


def zip_name(paths: list[str], fallback: str) -> str:
    """The name of the zip of ``paths`` (checked by :func:`zip_members`): the
    one path's name, else the name of the folder they are all in, else ``fallback``."""
    relatives = [clean_relative_path(path) for path in paths]
    if len(relatives) == 1:
        return relatives[0].name
    parent = relatives[0].parent
    if parent.name and all(relative.parent == parent for relative in relatives):
        return parent.name
    return fallback


def next_batch(iterator) -> bytes:
    """Up to about CHUNK bytes from the zip generator (runs in the thread pool),
    joined once."""
    pieces, size = [], 0
    for piece in iterator:
        pieces.append(piece)
        size += len(piece)
        if size >= CHUNK:
            break
    return b"".join(pieces)
