"""The hub's SQLite database in write-ahead-log mode (``hubDatabaseWAL``).

In its default rollback-journal mode SQLite writes the journal, syncs it,
writes the database, syncs it and deletes the journal on every commit; with
the write-ahead log it appends to one file and syncs that once, as durably
(``synchronous`` stays FULL). JupyterHub commits on its event loop (each
start and stop of a server, each token, each sign-up), so when a class
starts at once every commit waits for the ones before it. The mode is kept
in the database file: it is set before JupyterHub opens the file.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from pathlib import Path

from sqlalchemy.engine import make_url

log = logging.getLogger("JupyterHub")

# seconds to wait for a lock held by another process (a hub still stopping)
LOCK_TIMEOUT = 10


def journal_mode(wal: bool) -> str:
    """SQLite's name of the journal mode ``hubDatabaseWAL`` asks for."""
    return "wal" if wal else "delete"


def sqlite_path(db_url: str) -> Path | None:
    """The file of an SQLite ``db_url``; None for another database or one in memory."""
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def set_journal_mode(path: Path, wal: bool) -> str:
    """Put the database at ``path`` (made if missing) in WAL mode, or back in
    the rollback journal's; the mode it is in now."""
    wanted = journal_mode(wal)
    # closed at once: leaving WAL mode needs the only connection
    with closing(sqlite3.connect(path, timeout=LOCK_TIMEOUT, isolation_level=None)) as db:
        [(mode,)] = db.execute("PRAGMA journal_mode").fetchall()
        if mode != wanted:
            [(mode,)] = db.execute(f"PRAGMA journal_mode={wanted}").fetchall()
    return mode


def configure_journal(db_url: str, wal: bool) -> None:
    """``set_journal_mode`` for the hub's database when it is an SQLite file;
    a database another process holds keeps its mode (only speed is at stake)."""
    path = sqlite_path(db_url)
    if path is None:
        return
    try:
        mode = set_journal_mode(path, wal)
    except sqlite3.Error as e:
        log.warning("The hub's database %s keeps its journal mode: %s", path, e)
        return
    if mode != journal_mode(wal):
        log.warning("The hub's database %s is in journal mode %s (SQLite refused the change)", path, mode)
