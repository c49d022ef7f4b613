"""Safe paths inside a file domain, and the operations people do on them.

Every path a person sends (in a URL, a form or a JSON body) goes through
:func:`clean_relative_path` and :meth:`DomainFolder.resolve` before anything
touches the disk: the path must be relative, without ``.``/``..`` parts,
NUL or control characters, backslashes, encoded separators or over-long
names, and after following symlinks it must still be inside the domain.

A name that is to be created (a new folder, a move's or an upload's target)
is also held to :func:`check_new_name`: stored in NFC, and without the
characters that make a name look like another (look-alike slashes,
text-direction controls, invisible characters). Existing names are found as
they are on the disk, whatever their form.

The operations here are plain blocking functions on local folders; the
dashboard runs them in an executor so its event loop never waits on a disk.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import secrets
import shutil
import stat
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from karvdash_hub.core.errors import KarvdashError

from .domains import PRIVATE, SHARED, UPLOADS, FileDomains, is_path_within
from .listing import (
    EVERY_ENTRY,
    FOLDER,
    OTHER,
    Position,
    Query,
    cut_page,
    page_json,
    select_page,
)

# Domains a person browses; ``uploads`` is the dashboard's own.
BROWSABLE_DOMAINS = (PRIVATE, SHARED)
DOMAIN_TITLES = {PRIVATE: "Private", SHARED: "Shared"}

# Linux limits (NAME_MAX, PATH_MAX), counted in UTF-8 bytes.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
# Separators, dots and NUL that arrive still percent-encoded mean a client
# encoded twice: refuse them rather than create a file named "%2e%2e".
ENCODED_RESIDUE = re.compile(r"%(2e|2f|5c|00)", re.IGNORECASE)
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
TRASH_PREFIX = ".trash-"
# Where what a replace put aside is deleted, after the answer: freeing a
# large file's blocks takes the disk a while (0.7 s per GiB on ext4 mounted
# with discard), and the new file is in its place already. One thread: the
# deletions wait in line rather than compete for the disk.
_DELETIONS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="karvdash-delete")
# a replaced file this large keeps a second link until the deletion thread
# frees it; a smaller one is freed by the replace itself
FREE_AFTER_REPLACE = 16 * 1024 * 1024
# look like / or \\ on screen, so a name holding one reads as a path
LOOKALIKE_SEPARATORS = frozenset(
    "\u1735\u2044\u2215\u2216\u2571\u2572\u27cb\u27cd\u29f5\u29f8\u29f9\u2f03\u3033\ufe68\uff0f\uff3c"
)
# Unicode categories a new name may not hold: controls (C0 and C1), format
# characters (text-direction overrides and isolates, zero-width characters,
# the BOM), line and paragraph separators, lone surrogates
REFUSED_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs"}


class FileError(KarvdashError):
    """A file operation was refused; each kind has its own status."""

    status = 400

    def __init__(self, message: str):
        super().__init__(type(self).status, message)


class BadPath(FileError):
    status = 400


class OutsideDomain(FileError):
    status = 403


class NotFound(FileError):
    status = 404


class Conflict(FileError):
    status = 409


def clean_relative_path(path: str, *, new: bool = False) -> PurePosixPath:
    """Check a path inside a domain as a person sent it (already URL-decoded
    once) and return it as parts; ``""`` is the domain's top folder. With
    ``new``, the last part names something to create: it is checked with
    :func:`check_new_name` and returned in NFC."""
    if not isinstance(path, str):
        raise BadPath("a path must be text")
    if "\0" in path:
        raise BadPath("a path cannot contain a NUL character")
    if CONTROL_CHARACTERS.search(path):
        raise BadPath("a path cannot contain control characters")
    if "\\" in path:
        raise BadPath("a path cannot contain a backslash")
    if ENCODED_RESIDUE.search(path):
        raise BadPath("a path cannot contain encoded dots, slashes or NUL (%2e, %2f, %5c, %00)")
    if path.startswith("/"):
        raise BadPath("a path inside a domain must be relative (no leading /)")
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise BadPath(f"a path cannot be longer than {MAX_PATH_BYTES} bytes")
    parts = [part for part in path.split("/") if part]
    for part in parts:
        check_name(part)
    if new and parts:
        parts[-1] = check_new_name(parts[-1])
    return PurePosixPath(*parts)


def check_name(name: str) -> str:
    """Check one file or folder name (no separators)."""
    if not name:
        raise BadPath("a name cannot be empty")
    if name in (".", ".."):
        raise BadPath("a path cannot contain . or .. parts")
    if "/" in name or "\\" in name:
        raise BadPath("a name cannot contain / or \\")
    if "\0" in name or CONTROL_CHARACTERS.search(name):
        raise BadPath("a name cannot contain NUL or control characters")
    if ENCODED_RESIDUE.search(name):
        raise BadPath("a name cannot contain encoded dots, slashes or NUL (%2e, %2f, %5c, %00)")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise BadPath(f"a name cannot be longer than {MAX_NAME_BYTES} bytes")
    return name


def check_new_name(name: str) -> str:
    """A name to create, in NFC (the form most systems type and show), if it
    shows as what it is: any letter of any script, but no look-alike of a
    slash, no text-direction control and no invisible character."""
    name = check_name(unicodedata.normalize("NFC", name))
    for character in name:
        if character in LOOKALIKE_SEPARATORS:
            raise BadPath(f"a name cannot contain {describe_character(character)}: it looks like a / or \\")
        if unicodedata.category(character) in REFUSED_CATEGORIES:
            raise BadPath(
                f"a name cannot contain {describe_character(character)}: an invisible or "
                "text-direction character makes a name show as another"
            )
    return name


def describe_character(character: str) -> str:
    """``U+202E (RIGHT-TO-LEFT OVERRIDE)``, for messages."""
    code = f"U+{ord(character):04X}"
    name = unicodedata.name(character, "")
    return f"{code} ({name})" if name else code


@dataclass(frozen=True)
class Entry:
    """One row of a folder listing."""

    name: str
    type: str  # "file", "folder" or "link" (a symlink leading out of the domain or nowhere)
    size: int
    modified: float

    def to_json(self) -> dict:
        return {"name": self.name, "type": self.type, "size": self.size, "modified": self.modified}


@dataclass(frozen=True)
class DomainFolder:
    """The top folder of one domain as seen by one user (``owner`` is whose
    private folder it is; ``None`` for the shared domain)."""

    domain: str
    owner: str | None
    root: Path

    @classmethod
    def for_user(cls, domains: FileDomains, domain: str, username: str) -> DomainFolder:
        """The domain as ``username`` sees it; creates nothing (see :func:`open_domain_folder`)."""
        if domain not in BROWSABLE_DOMAINS:
            raise NotFound(f"no file domain {domain!r}; domains are {', '.join(BROWSABLE_DOMAINS)}")
        owner = username if domain == PRIVATE else None
        if owner is not None:
            # the name becomes a folder: an OAuth user name must not be a path
            try:
                check_name(owner)
            except BadPath:
                raise OutsideDomain(f"the user name {owner!r} cannot name a private folder") from None
        return cls(domain=domain, owner=owner, root=Path(os.path.realpath(domains.local_path(domain, owner))))

    def locate(self, path: str | PurePosixPath) -> Path:
        """Where ``path`` is, for changing it: every folder on the way has its
        symlinks followed and must stay inside the domain; the last part is
        not followed (deleting or moving a link acts on the link)."""
        relative = path if isinstance(path, PurePosixPath) else clean_relative_path(path)
        if not relative.parts:
            return self.root
        parent = os.path.realpath(self.root / relative.parent)
        if not is_path_within(parent, str(self.root)):
            raise OutsideDomain(f"{self.display(relative)} leads outside the {self.domain} domain")
        return Path(parent) / relative.name

    def resolve(self, path: str | PurePosixPath) -> Path:
        """Where ``path`` really is, for reading it: every symlink followed,
        and the result must still be inside the domain."""
        location = self.locate(path)
        real = os.path.realpath(location)
        if not is_path_within(real, str(self.root)):
            raise OutsideDomain(f"{self.display(self.relative(location))} leads outside the {self.domain} domain")
        return Path(real)

    def relative(self, location: Path) -> PurePosixPath:
        return PurePosixPath(os.path.relpath(location, self.root)) if location != self.root else PurePosixPath()

    def display(self, relative: PurePosixPath | str) -> str:
        text = str(relative)
        return f"{self.domain}/{text}" if text not in ("", ".") else f"{self.domain}/"


# --- the domains' folders on disk ----------------------------------------------------


def ensure_folders(domains: FileDomains, username: str | None = None) -> None:
    """Create the shared folders and, given a user, that user's private folder."""
    for domain in (SHARED, UPLOADS):
        domains.local_path(domain).mkdir(parents=True, exist_ok=True)
    # uploads hold other users' partial files: only the hub's account reads them
    os.chmod(domains.local_path(UPLOADS), 0o700)
    if username:
        domains.local_path(PRIVATE, username).mkdir(parents=True, exist_ok=True)


def delete_private(domains: FileDomains, username: str) -> bool:
    """Delete the private folder of a deleted user; False if there was none.
    Blocking (a whole tree): call it in an executor."""
    folder = domains.local_path(PRIVATE, username)
    # a user name is one path component; refuse anything that is not
    if folder.parent != domains.root / PRIVATE or folder.name != username or folder.is_symlink():
        raise ValueError(f"refusing to delete {folder}")
    if not folder.exists():
        return False
    shutil.rmtree(folder)
    return True


def open_domain_folder(domains: FileDomains, domain: str, username: str) -> DomainFolder:
    """The domain as ``username`` sees it, their private folder made on first use."""
    folder = DomainFolder.for_user(domains, domain, username)
    folder.root.mkdir(parents=True, exist_ok=True)
    return folder


# --- reading -------------------------------------------------------------------------


def open_for_reading(folder: DomainFolder, relative: PurePosixPath, what: str = "a file") -> int:
    """A descriptor of the file ``relative`` in ``folder``, for features that
    read a user's file (image archives, templates).

    The last part is opened without following a link, and what was opened
    is checked to be a file inside the domain: a link swapped in after the
    path was checked cannot make the dashboard read anything else.
    """
    if not relative.parts:
        raise BadPath(f"give the path of {what}")
    location = folder.resolve(relative)
    try:
        descriptor = os.open(location, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"{folder.display(relative)} does not exist") from None
    except OSError as error:
        raise BadPath(f"cannot open {folder.display(relative)}: {error.strerror}") from None
    real = os.path.realpath(f"/proc/self/fd/{descriptor}")
    if not is_path_within(real, str(folder.root)):
        os.close(descriptor)
        raise OutsideDomain(f"{folder.display(relative)} leads outside the {folder.domain} domain")
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise BadPath(f"{folder.display(relative)} is a folder, not {what}")
    return descriptor


def read_text(folder: DomainFolder, relative: PurePosixPath, what: str, limit: int) -> str:
    """The UTF-8 text of a small file of the domain (``what`` names it in errors)."""
    with os.fdopen(open_for_reading(folder, relative, what), "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise BadPath(f"{what} is at most {limit // 1024} KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPath(f"{what} is not UTF-8 text") from None


def entry_for(folder: DomainFolder, path: Path, name: str | None = None) -> Entry:
    """The listing row of ``path`` (not following a symlink out of the domain)."""
    name = name if name is not None else (path.name or folder.domain)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise NotFound(f"{name} does not exist") from None
    if stat.S_ISLNK(info.st_mode):
        real = os.path.realpath(path)
        if not is_path_within(real, str(folder.root)) or not os.path.exists(real):
            return Entry(name, "link", 0, info.st_mtime)
        info = os.stat(real)
    kind = "folder" if stat.S_ISDIR(info.st_mode) else "file"
    return Entry(name, kind, info.st_size if kind == "file" else 0, info.st_mtime)


def entry_json(folder: DomainFolder, location: Path, entry: Entry) -> dict:
    """An entry as the API shows it: with its domain and its path there."""
    relative = folder.relative(location)
    return {**entry.to_json(), "domain": folder.domain, "path": str(relative) if relative.parts else ""}


def describe(folder: DomainFolder, relative: PurePosixPath, location: Path, query: Query = EVERY_ENTRY,
             index=None) -> dict:
    """``relative`` (found at ``location``) as the API shows it; a folder
    with its entries: all of them, or the page ``query`` asks for (from
    ``index``, a ``nameindex.NameIndex``, when it has the folder)."""
    entry = entry_for(folder, location, relative.name or folder.domain)
    result = entry_json(folder, location, entry)
    if entry.type == "folder":
        path = str(relative) if relative.parts else ""
        result["path"] = path
        listing = query.listing(folder.domain, folder.owner, path)
        rows, following = list_page(folder, location, query, index)
        entries = [row.to_json() for row in rows]
        result.update(page_json(entries, query, following, listing) if query.paged else {"entries": entries})
    return result


def list_folder(folder: DomainFolder, path: Path) -> list[Entry]:
    """Rows of a folder, folders first, then by name."""
    return list_page(folder, path, EVERY_ENTRY)[0]


@dataclass
class Tally:
    """What reading a folder whole found: its entries, and its links."""

    entries: int = 0
    links: int = 0


def list_page(folder: DomainFolder, path: Path, query: Query, index=None) -> tuple[list[Entry], Position | None]:
    """The rows ``query`` asks for, and where the next page starts. Only
    the rows of the page are looked at (``stat``) when they are ordered by
    name: the rest is known from the folder's own entries, or from
    ``index`` (which learns large folders as they are read)."""
    if not path.exists():
        raise NotFound(f"{folder.display(folder.relative(path))} does not exist")
    if not path.is_dir():
        raise BadPath(f"{folder.display(folder.relative(path))} is not a folder")
    indexed = index is not None and index.usable(query)
    info = os.stat(path) if indexed else None
    chosen = index.page(info, query) if indexed else None
    if chosen is not None:
        chosen, following = cut_page(chosen, query)
        return [row for row in (_named_entry(folder, path, c[2]) for c in chosen) if row is not None], following
    tally = Tally()
    with os.scandir(path) as scan:
        chosen, following = select_page(_candidates(folder, scan, query, tally), query)
    if indexed and index.worth_indexing(info, tally.entries, tally.links):
        index.build(path, info)
    rows = []
    for candidate in chosen:
        item = candidate[3]
        try:
            rows.append(item if isinstance(item, Entry) else _scan_entry(folder, item))
        except FileNotFoundError:
            continue  # removed since the folder was read
    return rows, following


def _named_entry(folder: DomainFolder, path: Path, name: str) -> Entry | None:
    try:
        return entry_for(folder, path / name, name)
    except NotFound:
        return None  # removed since the index was read


def _candidates(folder: DomainFolder, scan, query: Query, tally: Tally):
    """Every entry of a folder as the listing orders it: by name and the
    kind the folder records, without a ``stat``, unless the order needs
    sizes or times; links always (their kind is their target's)."""
    needs_stat = query.needs_stat
    wanted = query.filter.casefold()
    for item in scan:
        name = item.name
        if name.startswith(TRASH_PREFIX):
            continue
        tally.entries += 1
        if wanted and wanted not in name.casefold():
            continue
        try:
            if not item.is_symlink():
                if not needs_stat:
                    yield (FOLDER if item.is_dir(follow_symlinks=False) else OTHER, 0, name, item)
                    continue
            else:
                tally.links += 1
            entry = _scan_entry(folder, item)
        except FileNotFoundError:
            continue  # removed while listing
        value = 0 if not needs_stat else entry.modified if query.sort == "modified" else entry.size
        yield (FOLDER if entry.type == "folder" else OTHER, value, name, entry)


def _scan_entry(folder: DomainFolder, item: os.DirEntry) -> Entry:
    if item.is_symlink():
        return entry_for(folder, Path(item.path), item.name)
    info = item.stat(follow_symlinks=False)
    if stat.S_ISDIR(info.st_mode):
        return Entry(item.name, "folder", 0, info.st_mtime)
    return Entry(item.name, "file", info.st_size, info.st_mtime)


def walk_files(folder: DomainFolder, top: Path):
    """(real path, name relative to ``top``) of every file below ``top``, and
    (None, "name/") for empty folders, for a folder download. Links to
    folders are not followed (no loops); links to files outside the domain
    are left out."""
    for current, dirs, files in os.walk(top, followlinks=False):
        current_path = Path(current)
        dirs[:] = sorted(name for name in dirs if not (current_path / name).is_symlink())
        for name in sorted(files):
            candidate = current_path / name
            real = os.path.realpath(candidate)
            if not is_path_within(real, str(folder.root)) or not os.path.isfile(real):
                continue
            yield Path(real), str(candidate.relative_to(top))
        if not files and not dirs and current_path != top:
            yield None, str(current_path.relative_to(top)) + "/"


# --- changing ------------------------------------------------------------------------


def check_target(folder: DomainFolder, target: Path, overwrite: bool) -> None:
    """Whether a file may be placed at ``target``: its folder exists, a file
    there only with ``overwrite``, never over a folder."""
    display = folder.display(folder.relative(target))
    if not target.parent.is_dir():
        raise NotFound(f"folder {folder.display(folder.relative(target.parent))} does not exist")
    if os.path.lexists(target):
        if os.path.isdir(target) and not os.path.islink(target):
            raise Conflict(f"{display} is a folder")
        if not overwrite:
            raise Conflict(f"{display} already exists")


def make_folder(folder: DomainFolder, path: Path) -> Entry:
    _require_parent(folder, path)
    try:
        os.mkdir(path)
    except FileExistsError:
        raise Conflict(f"{folder.display(folder.relative(path))} already exists") from None
    return entry_for(folder, path)


def make_file(folder: DomainFolder, path: Path) -> Entry:
    """A new empty file; an existing name (even a dangling link) is a Conflict."""
    _require_parent(folder, path)
    try:
        # O_EXCL never follows a link: nothing outside the domain is created
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
    except FileExistsError:
        raise Conflict(f"{folder.display(folder.relative(path))} already exists") from None
    return entry_for(folder, path)


def delete(folder: DomainFolder, path: Path) -> None:
    """Delete a file, a link or a whole folder."""
    if path == folder.root:
        raise BadPath(f"the top folder of the {folder.domain} domain cannot be deleted")
    if not os.path.lexists(path):
        raise NotFound(f"{folder.display(folder.relative(path))} does not exist")
    if _is_real_folder(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def move(
    source_folder: DomainFolder,
    source: Path,
    target_folder: DomainFolder,
    target: Path,
    *,
    overwrite: bool = False,
    trash: Path | None = None,
) -> Entry:
    """Rename or move ``source`` to ``target`` (maybe in another domain).

    An existing target is refused unless ``overwrite``; then it is replaced
    as a whole (a folder by a folder too), moved aside first so that a
    failure never leaves neither of the two.
    """
    if source == source_folder.root:
        raise BadPath(f"the top folder of the {source_folder.domain} domain cannot be moved")
    if not os.path.lexists(source):
        raise NotFound(f"{source_folder.display(source_folder.relative(source))} does not exist")
    if target == target_folder.root:
        raise Conflict(f"{target_folder.display('')} is the top folder of the domain")
    if source == target:
        return entry_for(target_folder, target)
    if _is_real_folder(source) and is_path_within(str(target), str(source)):
        raise BadPath("a folder cannot be moved into itself")
    _require_parent(target_folder, target)
    place_file(source, target, overwrite=overwrite, trash=trash, display=target_folder.display(target_folder.relative(target)))
    return entry_for(target_folder, target)


def place_file(source: Path, target: Path, *, overwrite: bool, trash: Path | None = None, display: str = "") -> None:
    """Move ``source`` to ``target`` in one step: the target appears whole
    or not at all. Without ``overwrite`` an existing target is a Conflict."""
    display = display or target.name
    if not overwrite:
        try:
            try:
                rename_no_replace(source, target)
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
                staged = _copy_beside(source, target)
                try:
                    rename_no_replace(staged, target)
                except BaseException:
                    delete_quietly(staged)
                    raise
                delete_quietly(source)
        except FileExistsError:
            raise Conflict(f"{display} already exists") from None
        return
    if os.path.lexists(target) and (_is_real_folder(target) or _is_real_folder(source)):
        # rename() cannot replace a folder, nor a file by a folder: move the old one aside first
        aside = _aside_path(target, trash)
        os.rename(target, aside)
        try:
            _rename(source, target)
        except BaseException:
            os.rename(aside, target)
            raise
        delete_later(aside)
        return
    kept = _link_replaced(target, trash)
    try:
        _rename(source, target)
    except BaseException:
        if kept is not None:
            delete_quietly(kept)
        raise
    if kept is not None:
        delete_later(kept)


def _link_replaced(target: Path, trash: Path | None) -> Path | None:
    """A second link to a large file about to be replaced, so that the
    replace does not free its blocks; None when there is nothing to keep."""
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size < FREE_AFTER_REPLACE or info.st_nlink > 1:
        return None
    kept = _aside_path(target, trash)
    try:
        os.link(target, kept, follow_symlinks=False)
    except OSError:
        # a file system without hard links: the replace frees the blocks itself
        return None
    return kept


def _rename(source: Path, target: Path) -> None:
    try:
        os.replace(source, target)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        staged = _copy_beside(source, target)
        os.replace(staged, target)
        delete_quietly(source)


def _copy_beside(source: Path, target: Path) -> Path:
    """Copy ``source`` next to ``target`` under a hidden name (for a move to
    another file system, e.g. a domain on its own mount)."""
    staged = target.with_name(f"{TRASH_PREFIX}{secrets.token_hex(8)}")
    if _is_real_folder(source):
        shutil.copytree(source, staged, symlinks=True)
    else:
        shutil.copy2(source, staged, follow_symlinks=False)
    return staged


def _aside_path(target: Path, trash: Path | None) -> Path:
    name = f"{TRASH_PREFIX}{secrets.token_hex(8)}"
    if trash is not None and os.stat(trash).st_dev == os.stat(target.parent).st_dev:
        return trash / name
    return target.parent / name


def _is_real_folder(path: Path) -> bool:
    """A folder itself, not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def delete_later(path: Path) -> None:
    """Delete ``path`` (put aside by a replace) on the deletion thread."""
    _DELETIONS.submit(delete_quietly, path)


def wait_for_deletions() -> None:
    """Return once everything handed to :func:`delete_later` so far is deleted."""
    _DELETIONS.submit(lambda: None).result()


def delete_quietly(path: Path) -> None:
    if _is_real_folder(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _require_parent(folder: DomainFolder, path: Path) -> None:
    parent = path.parent
    if not parent.is_dir():
        raise NotFound(f"folder {folder.display(folder.relative(parent))} does not exist")


# --- renaming without replacing ------------------------------------------------------

_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def rename_no_replace(source: Path, target: Path) -> None:
    """rename(2) that fails with FileExistsError instead of replacing.

    Uses Linux's renameat2(RENAME_NOREPLACE), so no other process can slip a
    file in between a check and the rename; file systems without it (some
    NFS servers) fall back to a check just before renaming.
    """
    if _renameat2 is not None:
        result = _renameat2(
            _AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE
        )
        if result == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), str(target))
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, "File exists", str(target))
    os.rename(source, target)


def trash_folder(domains: FileDomains) -> Path:
    """Where replaced folders wait to be deleted (inside ``uploads``, never mounted in pods)."""
    path = domains.local_path(UPLOADS) / "trash"
    path.mkdir(parents=True, exist_ok=True)
    return path
