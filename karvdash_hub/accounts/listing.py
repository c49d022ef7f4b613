"""Which page of accounts to show: the parameters of the Sign-ups page and
of ``GET /hub/api/accounts``, parsed and checked, and the SQL they make.

Pure: :func:`parse_listing` turns query arguments into a :class:`Listing`
(or a 400 naming the bad one); :func:`select_page` and :func:`select_count`
build the statements without running them; with ``fts``, a search of
three characters or more finds its accounts in the FTS5 search index
(``search``) instead of reading every row.

A page reads the columns the page and the API show, not whole rows (a row
also holds the password hash and the two-factor secret, which a listing
never needs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from urllib.parse import urlencode

from nativeauthenticator.orm import UserInfo
from sqlalchemy import Select, func, or_, select

from karvdash_hub.core.errors import KarvdashError

from . import search as search_index

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_SEARCH = 128  # as long as the email column

# sort key -> the column it orders by; "created" is the sign-up order (the
# table has no timestamp, its id grows with every account)
SORT_COLUMNS = {
    "name": UserInfo.username,
    "email": func.lower(UserInfo.email),
    "created": UserInfo.id,
    "state": UserInfo.is_authorized,
}
STATES = {"all": None, "pending": False, "approved": True}
# what a page shows of an account (store.account_json, the Sign-ups page)
PAGE_COLUMNS = (UserInfo.id, UserInfo.username, UserInfo.email, UserInfo.is_authorized)
ORDERS = ("asc", "desc")


@dataclass(frozen=True)
class Listing:
    search: str = ""
    sort: str = "name"
    order: str = "asc"
    state: str = "all"
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    def query(self, **changes) -> str:
        """The query string of this listing with ``changes`` (defaults left out)."""
        # (the page asks for a few of these: no asdict, which deep-copies every field)
        if changes.keys() - _DEFAULTS.keys():
            raise TypeError(f"a listing has no {sorted(changes.keys() - _DEFAULTS.keys())}")
        wanted = {name: changes.get(name, getattr(self, name)) for name in _DEFAULTS}
        return urlencode({k: v for k, v in wanted.items() if v != _DEFAULTS[k]})


_DEFAULTS = {field.name: field.default for field in fields(Listing)}


def _whole_number(name: str, raw: str, lowest: int, highest: int | None = None) -> int:
    if not raw.isascii() or not raw.isdigit():
        raise KarvdashError(400, f"{name} must be a whole number, not {raw!r}.")
    value = int(raw)
    if value < lowest or (highest is not None and value > highest):
        bound = f"from {lowest} to {highest}" if highest is not None else f"at least {lowest}"
        raise KarvdashError(400, f"{name} must be {bound}, not {value}.")
    return value


def parse_listing(arguments: Mapping[str, str]) -> Listing:
    """A :class:`Listing` from query arguments (each given once, as text)."""
    known = {"search", "sort", "order", "state", "limit", "offset"}
    unknown = sorted(set(arguments) - known)
    if unknown:
        raise KarvdashError(400, f"Unknown parameter {unknown[0]!r}; known: {', '.join(sorted(known))}.")
    search = arguments.get("search", "").strip()
    if len(search) > MAX_SEARCH or any(not c.isprintable() for c in search):
        raise KarvdashError(400, f"search must be printable text of at most {MAX_SEARCH} characters.")
    sort = arguments.get("sort", "") or "name"
    if sort not in SORT_COLUMNS:
        raise KarvdashError(400, f"sort must be one of {', '.join(SORT_COLUMNS)}, not {sort!r}.")
    order = arguments.get("order", "") or "asc"
    if order not in ORDERS:
        raise KarvdashError(400, f"order must be asc or desc, not {order!r}.")
    state = arguments.get("state", "") or "all"
    if state not in STATES:
        raise KarvdashError(400, f"state must be one of {', '.join(STATES)}, not {state!r}.")
    limit = _whole_number("limit", arguments.get("limit", "") or str(DEFAULT_LIMIT), 1, MAX_LIMIT)
    offset = _whole_number("offset", arguments.get("offset", "") or "0", 0)
    return Listing(search=search, sort=sort, order=order, state=state, limit=limit, offset=offset)


def _like_pattern(text: str) -> str:
    # the search is a substring, not a pattern: % and _ match themselves
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filtered(statement: Select, listing: Listing, fts: bool) -> Select:
    if listing.search and fts and search_index.uses_index(listing.search):
        # the same matches (a case-insensitive substring of the name or the
        # email), from the index
        statement = statement.where(UserInfo.id.in_(search_index.matching_ids(listing.search)))
    elif listing.search:
        pattern = _like_pattern(listing.search)
        # names are lowercase already (the hub's username rule): one lower() less a row
        statement = statement.where(or_(
            UserInfo.username.like(pattern, escape="\\"),
            func.lower(UserInfo.email).like(pattern, escape="\\"),
        ))
    approved = STATES[listing.state]
    if approved is not None:
        # NULL is "not approved" too (the column has a default, old rows may not)
        statement = statement.where(UserInfo.is_authorized.is_(True) if approved else or_(
            UserInfo.is_authorized.is_(False), UserInfo.is_authorized.is_(None)))
    return statement


def select_page(listing: Listing, *, counted: bool = False, fts: bool = False) -> Select:
    """The accounts of one page, in order (the name breaks ties, so pages
    never overlap; in the same direction, so that one index on the sort
    column and the name serves both directions).

    ``counted``: each row also has ``total``, the number of accounts of the
    listing in all pages (a window over the same filter), so that a search,
    which reads every row anyway, reads them once for the page and its count
    and not twice. Not for a listing an index walks: the window would read
    every row where the page needs the first few."""
    columns = [SORT_COLUMNS[listing.sort]]
    if listing.sort != "name":
        columns.append(UserInfo.username)
    elif listing.search:
        # the same order (names are lowercase), but not the name index's: a
        # search reads every row anyway, and walking that index to find the
        # few matches costs each row a second look-up
        columns = [func.lower(UserInfo.username)]
    ordering = [column.desc() if listing.order == "desc" else column.asc() for column in columns]
    shown = [*PAGE_COLUMNS, func.count().over().label("total")] if counted else PAGE_COLUMNS
    statement = _filtered(select(*shown), listing, fts)
    return statement.order_by(*ordering).limit(listing.limit).offset(listing.offset)


def select_count(listing: Listing, *, fts: bool = False) -> Select:
    """How many accounts the listing has in all pages."""
    # count(*), not of a column: SQLite counts the entries of its smallest
    # index then, without reading each row
    return _filtered(select(func.count()).select_from(UserInfo), listing, fts)
