"""The accounts in the hub's database: NativeAuthenticator's ``users_info``
table, queried one page at a time, with an index on the email address so
that a sign-up's uniqueness check is one indexed look-up whatever the number
of accounts, and a search index (``search``) for the Sign-ups page's search.

Runs on the hub's own SQLAlchemy session (the handlers' ``self.db``); every
function is one short query or one transaction.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import bcrypt
from jupyterhub import orm
from jupyterhub.roles import assign_default_roles
from jupyterhub.utils import new_token
from nativeauthenticator.orm import UserInfo
from sqlalchemy import Index, func, insert, inspect, select, text
from sqlalchemy.orm import Session

from karvdash_hub.core.errors import KarvdashError

from . import search
from .imports import ImportRow, Refusal, email_problem
from .listing import Listing, select_count, select_page

# lower(email): the uniqueness check is case-insensitive and must use it
# (with the name, it also orders the Sign-ups page by email); username:
# every login and sign-up finds an account by name. Defined on the
# table, so a new database gets them with the table; older ones get them
# from ensure_indexes
EMAIL_INDEX = Index("ix_users_info_email_lower", func.lower(UserInfo.email), UserInfo.username)
USERNAME_INDEX = Index("ix_users_info_username", UserInfo.username)
# an imported account's password is a hash of a random secret nobody keeps
# (one per import): nobody can log in until an administrator sets a
# password. Its cost is bcrypt's lowest: there is no guessable password to
# protect, and the import must not hold the hub for a hash's time
LOCKED_ROUNDS = 4


def ensure_indexes(db: Session) -> str:
    """Create the email and username indexes the database lacks, and the
    search index (at start-up); returns which search index it has."""
    engine = db.get_bind()
    present = _index_names(engine)
    for index in (EMAIL_INDEX, USERNAME_INDEX):
        if index.name not in present:
            with engine.begin() as connection:
                index.create(connection)
    return search.ensure_search_index(engine)


def _index_names(engine) -> set[str]:
    if engine.dialect.name == "sqlite":
        # SQLAlchemy's reflection skips SQLite's indexes on expressions
        with engine.connect() as connection:
            return set(connection.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :table"),
                {"table": UserInfo.__tablename__}).scalars())
    return {index["name"] for index in inspect(engine).get_indexes(UserInfo.__tablename__)}


class ApprovedNames(AbstractSet):
    """The approved accounts' names, and ``extra`` names, as a set whose
    ``in`` is one indexed query (NativeAuthenticator asks whether a new name
    is in it at every sign-up; its own answer queries every account)."""

    def __init__(self, db: Session, extra: set[str]):
        self.db = db
        self.extra = extra

    def _approved(self):
        return select(UserInfo.username).where(UserInfo.is_authorized.is_(True))

    def __contains__(self, name) -> bool:
        if name in self.extra:
            return True
        return self.db.execute(self._approved().where(UserInfo.username == name).limit(1)).first() is not None

    def _all(self) -> set[str]:
        return set(self.db.execute(self._approved()).scalars()) | self.extra

    def __iter__(self):
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def email_owner(db: Session, email: str) -> str | None:
    """The name of the account with ``email`` (any case), or None."""
    wanted = email.strip().lower()
    if not wanted:
        return None
    return db.execute(select(UserInfo.username).where(func.lower(UserInfo.email) == wanted).limit(1)).scalar()


def email_taken(db: Session, email: str, *, besides: str = "") -> bool:
    owner = email_owner(db, email)
    return owner is not None and owner != besides


def account_json(info) -> dict:
    """An account as the API shows it, from a ``UserInfo`` or a page's row."""
    return {
        "name": info.username,
        "email": info.email or "",
        "state": "approved" if info.is_authorized else "pending",
        # the sign-up order: the table keeps no date
        "created": info.id,
    }


@dataclass(frozen=True)
class Page:
    listing: Listing
    total: int
    accounts: list

    def as_json(self) -> dict:
        listing = self.listing
        following = listing.offset + listing.limit
        return {
            "total": self.total,
            "offset": listing.offset,
            "limit": listing.limit,
            "search": listing.search,
            "sort": listing.sort,
            "order": listing.order,
            "state": listing.state,
            "next_offset": following if following < self.total else None,
            "accounts": [account_json(info) for info in self.accounts],
        }


def page(db: Session, listing: Listing) -> Page:
    """One page of accounts (rows of the listing's columns) and their total."""
    # a search reads all its matches whatever the order (every row without
    # the search index): the count comes in the same read
    counted = bool(listing.search)
    fts = search.kind(db) == search.FTS5
    # on the session's connection, without the ORM: the statements select
    # columns, not objects, and the ORM's layer costs more than either query
    connection = db.connection()
    accounts = connection.execute(select_page(listing, counted=counted, fts=fts)).all()
    if counted and accounts:
        total = accounts[0].total
    elif counted and listing.offset == 0:
        total = 0
    else:
        # (a page past the last has no row to carry the count)
        total = connection.execute(select_count(listing, fts=fts)).scalar_one()
    return Page(listing, total, accounts)


def find(db: Session, username: str) -> UserInfo:
    info = UserInfo.find(db, username)
    if info is None:
        raise KarvdashError(404, f"There is no account named {username}.")
    return info


def set_email(db: Session, username: str, email: str) -> UserInfo:
    """Give ``username`` the address ``email`` (valid, no other account's)."""
    info = find(db, username)
    email = email.strip()
    problem = email_problem(email)
    if problem:
        raise KarvdashError(400, problem)
    if email_taken(db, email, besides=username):
        raise KarvdashError(409, "Another account has this email address.")
    info.email = email
    db.commit()
    return info


def end_browser_sessions(db: Session, user: orm.User) -> int:
    """Log ``user`` out everywhere: a new cookie id invalidates every hub
    login cookie, and the tokens of browser logins (the dashboard's and the
    servers' OAuth logins, which carry a login session id) are deleted. The
    API tokens the user made, and their servers' own, stay. Returns how many
    tokens went."""
    user.cookie_id = new_token()
    ended = 0
    for token in list(user.api_tokens):
        if token.session_id:
            db.delete(token)
            ended += 1
    db.commit()
    return ended


def _locked_password() -> bytes:
    return bcrypt.hashpw(secrets.token_bytes(32), bcrypt.gensalt(rounds=LOCKED_ROUNDS))


@dataclass(frozen=True)
class ImportReport:
    created: list[ImportRow]
    refused: list[Refusal]
    approved: bool

    def as_json(self) -> dict:
        return {
            "created": [{"name": row.username, "email": row.email, "admin": row.admin} for row in self.created],
            "refused": [refusal.as_json() for refusal in sorted(self.refused, key=lambda r: r.line)],
            "state": "approved" if self.approved else "pending",
        }


def import_accounts(db: Session, rows: list[ImportRow], refused: list[Refusal], *, approved: bool) -> ImportReport:
    """Create the accounts of ``rows`` in one transaction, refusing those
    whose name or email an account has already (two queries for the whole
    import). Rows with ``admin`` make hub administrators."""
    refused = list(refused)
    names = [row.username for row in rows]
    existing_names: set[str] = set()
    existing_emails: set[str] = set()
    # in slices: a database takes only so many parameters in one IN (...)
    for start in range(0, len(rows), 500):
        batch = rows[start:start + 500]
        existing_names |= set(db.execute(select(UserInfo.username).where(
            UserInfo.username.in_([row.username for row in batch]))).scalars())
        existing_emails |= set(db.execute(select(func.lower(UserInfo.email)).where(
            func.lower(UserInfo.email).in_([row.email.lower() for row in batch]))).scalars())
    hub_users = set(db.execute(select(orm.User.name).where(orm.User.name.in_(names))).scalars()) if names else set()
    created = []
    admins = []
    values = []
    locked = _locked_password()
    try:
        for row in rows:
            if row.username in existing_names:
                refused.append(Refusal(row.line, row.username, f"The username {row.username!r} is taken."))
                continue
            if row.email.lower() in existing_emails:
                refused.append(Refusal(row.line, row.username, "An account with this email address exists already."))
                continue
            values.append({
                "username": row.username, "email": row.email, "password": locked, "is_authorized": approved,
                "otp_secret": base64.b32encode(os.urandom(10)).decode(),  # as UserInfo() makes one
            })
            if row.admin and row.username not in hub_users:
                user = orm.User(name=row.username, admin=True)
                db.add(user)
                admins.append(user)
            created.append(row)
        if values:
            # one INSERT of many rows, not an ORM object per account
            db.execute(insert(UserInfo), values)
        db.commit()
    except Exception:
        db.rollback()
        raise
    for user in admins:
        assign_default_roles(db, entity=user)
    if admins:
        db.commit()
    return ImportReport(created, refused, approved)
