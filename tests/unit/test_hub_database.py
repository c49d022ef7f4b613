"""The hub's SQLite database in write-ahead-log mode (hubDatabaseWAL)."""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing

from traitlets.config import Config

from karvdash_hub.hub import database
from karvdash_hub.hub.config import configure


def mode_in_file(path) -> str:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("PRAGMA journal_mode").fetchone()[0]


def test_the_file_of_an_sqlite_url(tmp_path):
    assert database.sqlite_path(f"sqlite:///{tmp_path}/hub.sqlite") == tmp_path / "hub.sqlite"
    assert str(database.sqlite_path("sqlite:///relative.sqlite")) == "relative.sqlite"
    assert database.sqlite_path("sqlite:///:memory:") is None
    assert database.sqlite_path("sqlite://") is None
    assert database.sqlite_path("postgresql://hub@db.example.org/hub") is None
    assert database.sqlite_path("mysql+pymysql://hub@db.example.org/hub") is None


def test_a_new_database_starts_in_wal_mode_and_keeps_it(tmp_path):
    path = tmp_path / "hub.sqlite"
    assert database.set_journal_mode(path, True) == "wal"
    # kept in the file: a connection that sets nothing finds it
    assert mode_in_file(path) == "wal"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE t (v TEXT)")
        db.execute("INSERT INTO t VALUES ('kept')")
    assert database.set_journal_mode(path, True) == "wal"
    assert database.set_journal_mode(path, False) == "delete"
    assert mode_in_file(path) == "delete"
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT v FROM t").fetchall() == [("kept",)]


def test_a_database_another_process_holds_keeps_its_mode_with_a_warning(tmp_path, monkeypatch, caplog):
    path = tmp_path / "hub.sqlite"
    database.set_journal_mode(path, False)
    monkeypatch.setattr(database, "LOCK_TIMEOUT", 0.1)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with caplog.at_level(logging.WARNING, logger="JupyterHub"):
            database.configure_journal(f"sqlite:///{path}", True)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "keeps its journal mode" in caplog.text
    assert mode_in_file(path) == "delete"


def test_configure_puts_the_hubs_database_in_wal_mode_unless_turned_off(state_env, tmp_path):
    configure(Config())
    assert mode_in_file(tmp_path / "jupyterhub.sqlite") == "wal"
    state_env.setenv("KARVDASH_HUB_DATABASE_WAL", "false")
    configure(Config())
    assert mode_in_file(tmp_path / "jupyterhub.sqlite") == "delete"


def test_configure_leaves_another_database_alone(state_env, tmp_path):
    c = Config()
    c.JupyterHub.db_url = "postgresql://hub@db.example.org/hub"
    configure(c)
    assert not (tmp_path / "jupyterhub.sqlite").exists()
