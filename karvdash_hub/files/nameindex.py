"""The names of large local folders, sorted, on disk: a page in name order
reads its own rows instead of every name of the folder.

A folder of 100,000 entries takes as long to read whole (``getdents``) as
a hundred requests take to answer, and only a whole read gives the first
names in order. So once a folder of at least :data:`INDEX_FROM` entries
has been listed, its names and kinds (folder or not) go into a SQLite
table beside the uploads (the dashboard's own folder, never mounted in
pods), keyed by the folder's device and inode, and valid while the
folder's change and modification times are those it was read at (adding,
removing or renaming an entry changes them). A folder changed in the last
:data:`SETTLED` seconds is not indexed: a file system's clock ticks
coarsely, and a change in the same tick as the reading would not show.
Folders holding links are not indexed either (a link's kind is its
target's, which can change without the folder changing). A page's rows
are still looked at one by one (``lstat``), so sizes and times are always
current. Any SQLite error only means the folder is read whole again.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from .listing import FOLDER, OTHER, Candidate, Query
from .operations import TRASH_PREFIX

log = logging.getLogger("karvdash.files.index")

INDEX_FROM = 2000  # entries; smaller folders are read whole faster than indexed
SETTLED = 2.0  # seconds since the folder last changed
MAX_FOLDERS = 64  # the oldest indexes go first

SCHEMA = (
    ("CREATE TABLE IF NOT EXISTS folders (id INTEGER PRIMARY KEY, device INTEGER, inode INTEGER,"
     " mtime INTEGER, ctime INTEGER, built REAL, UNIQUE (device, inode))"),
    ("CREATE TABLE IF NOT EXISTS names (folder INTEGER, grp INTEGER, name BLOB,"
     " PRIMARY KEY (folder, grp, name)) WITHOUT ROWID"),
)


class HasLink(Exception):
    """A folder with a link in it is not indexed."""


def _key(name: str) -> bytes:
    # UTF-8 (lone surrogates of undecodable names included) orders as the
    # code points do, as select_page orders names
    return name.encode("utf-8", "surrogatepass")


def _name(key: bytes) -> str:
    return key.decode("utf-8", "surrogatepass")


class NameIndex:
    def __init__(self, path: Path, *, index_from: int = INDEX_FROM, settled: float = SETTLED):
        self.path = path
        self.index_from = index_from
        self.settled = settled

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        # a cache: losing it to a crash only means reading folders whole again
        connection.execute("PRAGMA synchronous=OFF")
        for statement in SCHEMA:
            connection.execute(statement)
        return connection

    def usable(self, query: Query) -> bool:
        """Whether the index can answer ``query``: a page by name, unfiltered."""
        return query.paged and query.sort == "name" and not query.filter

    def page(self, info: os.stat_result, query: Query) -> list[Candidate] | None:
        """The candidates of the page ``query`` asks for (name order, no
        filter), ``limit + 1`` at most, from the index of the folder whose
        ``stat`` is ``info``; None when it has no valid index."""
        try:
            connection = self._connect()
        except sqlite3.Error as error:
            log.warning("the listing index %s cannot be opened: %s", self.path, error)
            return None
        try:
            found = connection.execute(
                "SELECT id FROM folders WHERE device = ? AND inode = ? AND mtime = ? AND ctime = ?",
                (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_ctime_ns),
            ).fetchone()
            if found is None:
                return None
            descending = query.order == "desc"
            sql = f"SELECT grp, name FROM names WHERE folder = ?{{after}} ORDER BY grp, name {'DESC' if descending else ''} LIMIT ?"
            if query.after is None:
                rows = connection.execute(sql.format(after=""), (found[0], query.limit + 1))
            else:
                condition = " AND (grp > ? OR (grp = ? AND name " + ("<" if descending else ">") + " ?))"
                after = query.after
                rows = connection.execute(
                    sql.format(after=condition), (found[0], after.group, after.group, _key(after.name), query.limit + 1)
                )
            return [(group, 0, _name(name), None) for group, name in rows]
        except sqlite3.Error as error:
            log.warning("the listing index %s cannot be read: %s", self.path, error)
            return None
        finally:
            connection.close()

    def worth_indexing(self, info: os.stat_result, entries: int, links: int) -> bool:
        recent = max(info.st_mtime_ns, info.st_ctime_ns) / 1e9 > time.time() - self.settled
        return entries >= self.index_from and not links and not recent

    def build(self, path: Path, info: os.stat_result) -> None:
        """Index the folder at ``path`` (``info`` its ``stat`` before it
        was read), unless it changes meanwhile or holds a link."""
        try:
            connection = self._connect()
        except sqlite3.Error as error:
            log.warning("the listing index %s cannot be opened: %s", self.path, error)
            return
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(
                "DELETE FROM names WHERE folder IN (SELECT id FROM folders WHERE device = ? AND inode = ?)",
                (info.st_dev, info.st_ino),
            )
            connection.execute("DELETE FROM folders WHERE device = ? AND inode = ?", (info.st_dev, info.st_ino))
            folder = connection.execute(
                "INSERT INTO folders (device, inode, mtime, ctime, built) VALUES (?, ?, ?, ?, ?)",
                (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_ctime_ns, time.time()),
            ).lastrowid
            with os.scandir(path) as scan:
                connection.executemany("INSERT INTO names VALUES (?, ?, ?)", _rows(folder, scan))
            now = os.stat(path)
            if (now.st_mtime_ns, now.st_ctime_ns) != (info.st_mtime_ns, info.st_ctime_ns):
                connection.execute("ROLLBACK")  # changed while it was read
                return
            connection.execute(
                "DELETE FROM names WHERE folder IN (SELECT id FROM folders ORDER BY built DESC LIMIT -1 OFFSET ?)",
                (MAX_FOLDERS,),
            )
            connection.execute(
                "DELETE FROM folders WHERE id IN (SELECT id FROM folders ORDER BY built DESC LIMIT -1 OFFSET ?)",
                (MAX_FOLDERS,),
            )
            connection.execute("COMMIT")
        except (HasLink, OSError):
            connection.execute("ROLLBACK")
        except sqlite3.Error as error:
            log.warning("the listing index %s cannot be written: %s", self.path, error)
            if connection.in_transaction:
                connection.execute("ROLLBACK")
        finally:
            connection.close()


def _rows(folder: int, scan) -> Iterator[tuple[int, int, bytes]]:
    for item in scan:
        if item.name.startswith(TRASH_PREFIX):
            continue
        if item.is_symlink():
            raise HasLink()
        yield folder, FOLDER if item.is_dir(follow_symlinks=False) else OTHER, _key(item.name)
