"""The search index of the accounts: a search (a substring of a name or an
email, in any case) finds its few accounts in an index instead of reading
every row.

- SQLite: an FTS5 table with the trigram tokenizer (``users_info_search``:
  the id, name and email of every account) that triggers on ``users_info``
  keep in step with every insert, delete and change of a name or an email,
  whoever writes (the sign-up form, an import, a migration, a deletion). A
  trigram phrase query is a case-insensitive substring match; a search of
  fewer than three characters has no trigram and reads every row as before.
- PostgreSQL: pg_trgm GIN indexes on the name and the lower-cased email,
  which the search's own ``LIKE`` uses as it is.
- Another database (MySQL), or one that lacks the module or the extension:
  no index, the search reads every row (the same results).

:func:`ensure_search_index` runs at start-up and says which one the
database has; the statements are built by ``listing`` (pure).
"""

from __future__ import annotations

import logging
import weakref

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    literal_column,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

FTS5 = "fts5"
PG_TRGM = "pg_trgm"
# a trigram index answers a search of at least this many characters
MIN_INDEXED = 3

# the FTS5 table, for building statements (not in the ORM's metadata: the
# hub's create_all must not make it)
SEARCH_TABLE = Table(
    "users_info_search", MetaData(),
    Column("rowid", Integer, primary_key=True), Column("name", String), Column("email", String),
)
_TRIGGERS = {
    "users_info_search_insert": "AFTER INSERT ON users_info BEGIN "
    "INSERT INTO users_info_search(rowid, name, email) VALUES (new.id, new.username, new.email); END",
    "users_info_search_delete": "AFTER DELETE ON users_info BEGIN "
    "DELETE FROM users_info_search WHERE rowid = old.id; END",
    "users_info_search_update": "AFTER UPDATE OF id, username, email ON users_info BEGIN "
    "DELETE FROM users_info_search WHERE rowid = old.id; "
    "INSERT INTO users_info_search(rowid, name, email) VALUES (new.id, new.username, new.email); END",
}
_PG_INDEXES = {
    "ix_users_info_username_trgm": "users_info USING gin (username gin_trgm_ops)",
    "ix_users_info_email_trgm": "users_info USING gin (lower(email) gin_trgm_ops)",
}

# engine -> the index its database has (FTS5, PG_TRGM or ''), from ensure_search_index
_kinds: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def phrase(search: str) -> str:
    """An FTS5 query of one phrase: the search as a substring, its quotes doubled."""
    return '"' + search.replace('"', '""') + '"'


def uses_index(search: str) -> bool:
    return len(search) >= MIN_INDEXED


def matching_ids(search: str):
    """The ids of the accounts whose name or email contains ``search`` (FTS5)."""
    return select(SEARCH_TABLE.c.rowid).where(literal_column(SEARCH_TABLE.name).op("MATCH")(phrase(search)))


def kind(db: Session) -> str:
    """The search index of the session's database ('' when there is none or
    start-up did not make it: the search then reads every row)."""
    return _kinds.get(db.get_bind(), "")


def ensure_search_index(engine: Engine) -> str:
    """Make the database's search index (at start-up); returns which one."""
    dialect = engine.dialect.name
    made = ""
    if dialect == "sqlite":
        made = _ensure_fts5(engine)
    elif dialect == "postgresql":
        made = _ensure_pg_trgm(engine)
    if not made:
        log.info("Accounts: a search reads every row (no search index on %s)", dialect)
    _kinds[engine] = made
    return made


def _ensure_fts5(engine: Engine) -> str:
    try:
        # filled again at every start, in one transaction with the
        # triggers: an index left behind by a start without them (or by an
        # older hub) can never be out of step
        with engine.begin() as connection:
            connection.execute(text(
                "CREATE VIRTUAL TABLE IF NOT EXISTS users_info_search USING fts5(name, email, tokenize='trigram')"))
            for name, body in _TRIGGERS.items():
                connection.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
                connection.execute(text(f"CREATE TRIGGER {name} {body}"))
            connection.execute(text("DELETE FROM users_info_search"))
            connection.execute(text(
                "INSERT INTO users_info_search(rowid, name, email) SELECT id, username, email FROM users_info"))
    except DBAPIError as error:
        # no FTS5 or no trigram tokenizer in this SQLite: writes must not
        # reach a table it cannot open, so the triggers go
        log.warning("Accounts: no FTS5 trigram index (%s)", error.orig)
        with engine.begin() as connection:
            for name in _TRIGGERS:
                connection.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
        return ""
    return FTS5


def _ensure_pg_trgm(engine: Engine) -> str:
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
            for name, definition in _PG_INDEXES.items():
                connection.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}"))
    except DBAPIError as error:
        # the extension is not installed, or the hub's role may not create it
        log.warning("Accounts: no pg_trgm search index (%s)", error.orig)
        return ""
    return PG_TRGM
