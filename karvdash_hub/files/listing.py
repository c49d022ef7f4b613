"""Which entries of a folder a listing shows: the query parameters of
``GET api/files/<domain>/<path>`` (``limit``, ``cursor``, ``sort``,
``order``, ``filter``), checked, and the choice of one page among a
folder's entries.

Pure: :func:`parse_query` turns query arguments into a :class:`Query` (or a
400 naming the bad one); :func:`select_page` picks one page from candidates
that the storages (folders, S3) produce as they read a folder, keeping only
the page's rows while it reads; :func:`encode_cursor` makes the cursor of
the next page.

The order: folders first, then the rest; in each group by ``sort``
(``name``, ``modified`` or ``size``; a name breaks ties), ascending or
descending. Names compare by code point (the order of their UTF-8 bytes, as
S3 lists keys). A cursor is the position of the last row sent (its group,
its sort value and its name): the next page starts after it, so rows never
repeat or go missing when others are added or removed meanwhile, and
reading on costs no more than the first page. A cursor names its listing
(folder, owner, sort, order, filter) only as a digest it is checked
against: it cannot point a listing anywhere but the folder of the URL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from karvdash_hub.core.errors import KarvdashError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_FILTER_BYTES = 255  # a name's own limit: a longer filter matches nothing
MAX_CURSOR = 2048
SORTS = ("name", "modified", "size")
ORDERS = ("asc", "desc")
PARAMETERS = ("limit", "cursor", "sort", "order", "filter")
CURSOR_VERSION = 1

FOLDER, OTHER = 0, 1


class BadListing(KarvdashError):
    """A listing parameter that cannot be used: always a 400."""

    def __init__(self, message: str):
        super().__init__(400, message)


@dataclass(frozen=True)
class Position:
    """Where a page ended: the last row's group, sort value and name."""

    group: int
    value: float
    name: str


@dataclass(frozen=True)
class Query:
    """One listing: all rows (``paged`` false, the answer of clients that
    know no paging) or one page of ``limit`` rows after ``after``."""

    paged: bool = False
    limit: int = DEFAULT_LIMIT
    sort: str = "name"
    order: str = "asc"
    filter: str = ""
    after: Position | None = None
    cursor_of: str | None = None  # the listing id the cursor carried

    def listing(self, domain: str, owner: str | None, path: str) -> str:
        """This listing's id for the folder ``path`` of ``domain`` (of
        ``owner``), once its cursor, if any, is found to be this listing's."""
        listing = listing_id(domain, owner, path, self)
        if self.cursor_of is not None and self.cursor_of != listing:
            raise BadListing("cursor belongs to another listing (another folder, sort, order or filter)")
        return listing

    def matches(self, name: str) -> bool:
        """Whether a name passes the filter (a substring, any case)."""
        return not self.filter or self.filter.casefold() in name.casefold()

    @property
    def needs_stat(self) -> bool:
        """Whether ordering needs every entry's size or time, not only its name."""
        return self.sort != "name"


# One entry as a storage found it: (group, sort value, name, item), where
# the item is what the storage needs to make the row (a directory entry, an
# S3 listing row). A plain tuple, which orders itself ascending (names are
# unique in a folder, so items never compare): a folder of 100,000 entries
# makes 100,000 of them.
Candidate = tuple[int, float, str, object]


# the answer of clients that know no paging: every entry, folders first, then by name
EVERY_ENTRY = Query()


def listing_id(domain: str, owner: str | None, path: str, query: Query) -> str:
    """The digest a cursor carries of the listing it belongs to."""
    text = json.dumps([domain, owner, path, query.sort, query.order, query.filter])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _limit(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit():
        raise BadListing(f"limit must be a whole number from 1 to {MAX_LIMIT}, not {raw[:40]!r}")
    # a long number is out of range, and int() refuses over 4300 digits
    value = int(raw) if len(raw) <= len(str(MAX_LIMIT)) else MAX_LIMIT + 1
    if not 1 <= value <= MAX_LIMIT:
        raise BadListing(f"limit must be from 1 to {MAX_LIMIT}, not {raw[:40]}")
    return value


def _choice(name: str, raw: str, allowed: tuple[str, ...]) -> str:
    if raw not in allowed:
        raise BadListing(f"{name} must be {' or '.join(allowed)}, not {raw[:40]!r}")
    return raw


def _filter(raw: str) -> str:
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_FILTER_BYTES:
        raise BadListing(f"filter must be at most {MAX_FILTER_BYTES} bytes")
    if any(not character.isprintable() for character in raw):
        raise BadListing("filter must be printable text (no control or invisible characters)")
    return raw


def parse_query(arguments: Mapping[str, str]) -> Query:
    """A :class:`Query` from the query arguments (each once, as text). Any
    of ``limit`` and ``cursor`` asks for a page; a cursor is checked to be
    this listing's by :meth:`Query.listing` once the folder is known."""
    query = Query(
        paged="limit" in arguments or "cursor" in arguments,
        limit=_limit(arguments["limit"]) if "limit" in arguments else DEFAULT_LIMIT,
        sort=_choice("sort", arguments.get("sort") or "name", SORTS),
        order=_choice("order", arguments.get("order") or "asc", ORDERS),
        filter=_filter(arguments.get("filter", "")),
    )
    if "cursor" not in arguments:
        return query
    cursor_of, after = decode_cursor(arguments["cursor"])
    return replace(query, after=after, cursor_of=cursor_of)


def encode_cursor(position: Position, listing: str) -> str:
    """The cursor of the page after ``position`` of the listing ``listing``."""
    text = json.dumps([CURSOR_VERSION, listing, position.group, position.value, position.name])
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def decode_cursor(raw: str) -> tuple[str, Position]:
    """The listing a cursor was made by (its id), and the position it holds."""
    problem = "cursor is not one this listing gave (ask for the first page again)"
    if not raw or len(raw) > MAX_CURSOR or not raw.isascii():
        raise BadListing(problem)
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
        version, owner, group, value, name = json.loads(text)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadListing(problem) from None
    valid = (
        version == CURSOR_VERSION
        and group in (FOLDER, OTHER)
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
        and isinstance(name, str)
        and name
    )
    if not valid or not isinstance(owner, str):
        raise BadListing(problem)
    return owner, Position(group, float(value), name)


def _descending(candidate: Candidate) -> tuple:
    # the largest first: folders (-0) before the rest (-1), then value and name downwards
    return (-candidate[0], candidate[1], candidate[2])


def select_page(candidates: Iterable[Candidate], query: Query) -> tuple[list[Candidate], Position | None]:
    """The rows of one page in order, and the position to go on from (None
    on the last page). Reads ``candidates`` once, keeping at most
    ``limit + 1`` of them; without paging, every candidate, in order."""
    if query.filter:
        candidates = (c for c in candidates if query.matches(c[2]))
    descending = query.order == "desc"
    after = query.after
    if after is not None:
        if descending:
            edge = (-after.group, after.value, after.name)
            candidates = (c for c in candidates if _descending(c) < edge)
        else:
            edge = (after.group, after.value, after.name)
            candidates = (c for c in candidates if c[:3] > edge)
    key = _descending if descending else None
    if not query.paged:
        return sorted(candidates, key=key, reverse=descending), None
    if descending:
        rows = heapq.nlargest(query.limit + 1, candidates, key=key)
    else:
        rows = heapq.nsmallest(query.limit + 1, candidates)
    return cut_page(rows, query)


def cut_page(rows: list[Candidate], query: Query) -> tuple[list[Candidate], Position | None]:
    """The first ``limit`` of ``limit + 1`` rows in order, and the position
    after them if there were more."""
    if len(rows) <= query.limit:
        return rows, None
    last = rows[query.limit - 1]
    return rows[: query.limit], Position(last[0], last[1], last[2])


def page_json(entries: list[dict], query: Query, following: Position | None, listing: str) -> dict:
    """What a paged answer adds to the folder's own fields."""
    return {
        "entries": entries,
        "next": encode_cursor(following, listing) if following else None,
        "limit": query.limit,
        "sort": query.sort,
        "order": query.order,
        "filter": query.filter,
    }
