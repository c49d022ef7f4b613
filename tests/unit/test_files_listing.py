"""A folder listing one page at a time: the query parameters and cursors of
karvdash_hub.files.listing (pure), the page chosen among candidates, the
S3 listing's entries of one level, a local folder's pages (only the page's
entries looked at; large folders from their name index, on real SQLite),
and karvdashctl ls following the cursor."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from itertools import chain
from pathlib import PurePosixPath

import pytest
import requests

from karvdash_hub.cli import main
from karvdash_hub.cli.client import DashboardClient
from karvdash_hub.cli.connection import find_connection
from karvdash_hub.files import operations
from karvdash_hub.files.domains import FileDomains
from karvdash_hub.files.listing import (
    FOLDER,
    MAX_LIMIT,
    OTHER,
    BadListing,
    Position,
    Query,
    encode_cursor,
    listing_id,
    parse_query,
    select_page,
)
from karvdash_hub.files.nameindex import NameIndex
from karvdash_hub.files.operations import DomainFolder, ensure_folders
from karvdash_hub.files.s3storage import level_entries

# --- parameters ------------------------------------------------------------------------


def test_no_paging_parameter_asks_for_every_entry_in_the_old_order():
    assert parse_query({}) == Query(paged=False, limit=100, sort="name", order="asc", filter="")


def test_limit_or_cursor_asks_for_a_page():
    assert parse_query({"limit": "5"}) == Query(paged=True, limit=5)
    assert parse_query({"limit": str(MAX_LIMIT), "sort": "size", "order": "desc", "filter": "Rep"}) == Query(
        paged=True, limit=MAX_LIMIT, sort="size", order="desc", filter="Rep"
    )
    cursor = encode_cursor(Position(OTHER, 0, "b"), "some-listing")
    query = parse_query({"cursor": cursor})
    assert (query.paged, query.limit, query.after, query.cursor_of) == (True, 100, Position(OTHER, 0, "b"), "some-listing")


@pytest.mark.parametrize(
    "arguments, words",
    [
        ({"limit": "0"}, "limit must be from 1 to 1000"),
        ({"limit": "1001"}, "limit must be from 1 to 1000"),
        ({"limit": "-1"}, "whole number"),
        ({"limit": "1e3"}, "whole number"),
        ({"limit": ""}, "whole number"),
        ({"limit": "\u0661\u0660"}, "whole number"),  # Arabic-Indic digits pass isdigit()
        ({"limit": "9" * 5000}, "limit must be from 1 to 1000, not 9999"),
        ({"limit": "0" * 5000 + "1"}, "limit must be from 1 to 1000"),
        ({"sort": "owner"}, "sort must be name or modified or size"),
        ({"order": "up"}, "order must be asc or desc"),
        ({"filter": "x" * 256}, "at most 255 bytes"),
        ({"filter": "a\x00b"}, "printable"),
        ({"filter": "a\u202eb"}, "printable"),
    ],
)
def test_bad_parameters_are_a_clear_400(arguments, words):
    with pytest.raises(BadListing) as refused:
        parse_query(arguments)
    assert refused.value.status == 400 and words in refused.value.message


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64 at all!",
        "x" * 3000,
        "é",
        _b64("not json"),
        _b64("{}"),
        _b64('[1, "id", 1, 0]'),
        _b64('[2, "id", 1, 0, "b"]'),  # another version
        _b64('[1, "id", 7, 0, "b"]'),  # no such group
        _b64('[1, "id", 1, "0", "b"]'),
        _b64('[1, "id", 1, true, "b"]'),
        _b64('[1, "id", 1, 0, ""]'),
        _b64('[1, null, 1, 0, "b"]'),
        _b64('[1, "id", 1, 0, ["b"]]'),
    ],
)
def test_a_cursor_not_made_by_a_listing_is_a_400(cursor):
    with pytest.raises(BadListing) as refused:
        parse_query({"cursor": cursor})
    assert refused.value.status == 400 and "cursor" in refused.value.message


def test_a_cursor_only_goes_on_with_the_listing_that_made_it():
    base = Query(paged=True, limit=2)
    mine = listing_id("private", "alice", "data", base)
    cursor = encode_cursor(Position(OTHER, 0, "b"), mine)
    assert parse_query({"cursor": cursor}).listing("private", "alice", "data") == mine
    # another folder, another owner's private folder, the shared domain, another order or filter
    for domain, owner, path, arguments in [
        ("private", "alice", "other", {}),
        ("private", "bob", "data", {}),
        ("shared", None, "data", {}),
        ("private", "alice", "data/..", {}),
        ("private", "alice", "data", {"sort": "size"}),
        ("private", "alice", "data", {"order": "desc"}),
        ("private", "alice", "data", {"filter": "b"}),
    ]:
        with pytest.raises(BadListing, match="another listing"):
            parse_query({"cursor": cursor, **arguments}).listing(domain, owner, path)


# --- choosing a page ---------------------------------------------------------------------

ROWS = [
    (OTHER, 30, "b.txt"), (FOLDER, 0, "zeta"), (OTHER, 10, "A.txt"), (OTHER, 10, "c.csv"),
    (FOLDER, 0, "Alpha"), (OTHER, 20, "report.PDF"), (OTHER, 0, "empty"), (FOLDER, 0, "m"),
]


def candidates(rows=ROWS, by_value=False):
    # an iterator: a page is chosen reading it once; by name, storages give no value
    return iter([(group, value if by_value else 0, name, f"item {name}") for group, value, name in rows])


def every_page(query: Query, rows=ROWS) -> list[list[str]]:
    pages, after = [], None
    while True:
        chosen, after = select_page(candidates(rows, query.needs_stat), Query(**{**query.__dict__, "after": after}))
        pages.append([c[2] for c in chosen])
        assert all(c[3] == f"item {c[2]}" for c in chosen)
        if after is None:
            return pages
        assert len(pages) <= len(rows), "the cursor never ends"


def test_pages_cover_every_entry_once_folders_first_then_by_name():
    assert every_page(Query(paged=True, limit=3)) == [
        ["Alpha", "m", "zeta"], ["A.txt", "b.txt", "c.csv"], ["empty", "report.PDF"],
    ]
    assert every_page(Query(paged=True, limit=8)) == [["Alpha", "m", "zeta", "A.txt", "b.txt", "c.csv", "empty",
                                                        "report.PDF"]]


def test_descending_keeps_folders_first():
    assert every_page(Query(paged=True, limit=3, order="desc")) == [
        ["zeta", "m", "Alpha"], ["report.PDF", "empty", "c.csv"], ["b.txt", "A.txt"],
    ]


def test_by_size_or_time_a_name_breaks_ties():
    assert list(chain(*every_page(Query(paged=True, limit=2, sort="size")))) == [
        "Alpha", "m", "zeta", "empty", "A.txt", "c.csv", "report.PDF", "b.txt",
    ]
    assert list(chain(*every_page(Query(paged=True, limit=2, sort="size", order="desc")))) == [
        "zeta", "m", "Alpha", "b.txt", "report.PDF", "c.csv", "A.txt", "empty",
    ]


def test_the_filter_is_a_substring_in_any_case():
    assert every_page(Query(paged=True, limit=2, filter="T")) == [["zeta", "A.txt"], ["b.txt", "empty"], ["report.PDF"]]
    assert every_page(Query(paged=True, limit=2, filter="nothing")) == [[]]


def test_without_paging_every_entry_comes_in_order():
    chosen, after = select_page(candidates(by_value=True), Query(sort="size", order="desc"))
    assert [c[2] for c in chosen] == ["zeta", "m", "Alpha", "b.txt", "report.PDF", "c.csv", "A.txt", "empty"]
    assert after is None


def test_entries_added_or_removed_between_pages_neither_repeat_nor_go_missing():
    first, after = select_page(candidates(), Query(paged=True, limit=4))
    assert [c[2] for c in first] == ["Alpha", "m", "zeta", "A.txt"]
    changed = [r for r in ROWS if r[2] != "c.csv"] + [(OTHER, 0, "0-before.txt"), (OTHER, 0, "d-after.txt")]
    rest, after = select_page(candidates(changed), Query(paged=True, limit=10, after=after))
    assert [c[2] for c in rest] == ["b.txt", "d-after.txt", "empty", "report.PDF"] and after is None


def test_the_last_full_page_says_there_is_no_next():
    chosen, after = select_page(candidates(ROWS[:3]), Query(paged=True, limit=3))
    assert len(chosen) == 3 and after is None


# --- S3: the entries of one level ---------------------------------------------------------

WHEN = datetime(2026, 1, 2, tzinfo=UTC)


def test_s3_level_entries_hide_markers_and_files_shadowed_by_folders():
    prefix = "private/alice/"
    pages = [
        {"CommonPrefixes": [{"Prefix": prefix + "ab-c/"}],
         "Contents": [{"Key": prefix, "Size": 0, "LastModified": WHEN},
                      {"Key": prefix + "ab", "Size": 1, "LastModified": WHEN},
                      {"Key": prefix + "ab-c", "Size": 2, "LastModified": WHEN}]},
        {"CommonPrefixes": [{"Prefix": prefix + "ab/"}, {"Prefix": prefix + "z/"}],
         "Contents": [{"Key": prefix + "x.txt", "Size": 3, "LastModified": WHEN}]},
    ]
    found = {name: (row["type"], row["size"]) for name, row in level_entries(pages, prefix)}
    assert found == {"ab-c": ("folder", 0), "ab": ("folder", 0), "z": ("folder", 0), "x.txt": ("file", 3)}


# --- a local folder, one page at a time ---------------------------------------------------


@pytest.fixture
def private(tmp_path) -> DomainFolder:
    root = tmp_path / "files"
    domains = FileDomains(scheme="file", server="", export_path=str(root), root=root)
    ensure_folders(domains, "alice")
    return DomainFolder.for_user(domains, "private", "alice")


class CountingScan:
    """os.scandir whose entries count the stat() calls made on them."""

    stats = 0

    def __init__(self, real):
        self.real = real

    def __enter__(self):
        self.scan = self.real.__enter__()
        return (CountingEntry(entry) for entry in self.scan)

    def __exit__(self, *exc):
        return self.real.__exit__(*exc)


class CountingEntry:
    def __init__(self, entry):
        self.entry, self.name, self.path = entry, entry.name, entry.path

    def is_symlink(self):
        return self.entry.is_symlink()

    def is_dir(self, **kwargs):
        return self.entry.is_dir(**kwargs)

    def stat(self, **kwargs):
        CountingScan.stats += 1
        return self.entry.stat(**kwargs)


def test_a_local_page_by_name_looks_only_at_its_own_entries(private, monkeypatch, tmp_path):
    for i in range(50):
        (private.root / f"f{i:02d}").write_bytes(b"x" * i)
    (private.root / "sub").mkdir()
    (private.root / ".trash-1").mkdir()
    os.symlink(tmp_path, private.root / "away")
    real_scandir = os.scandir
    monkeypatch.setattr(operations.os, "scandir", lambda path: CountingScan(real_scandir(path)))
    CountingScan.stats = 0
    rows, after = operations.list_page(private, private.root, Query(paged=True, limit=5))
    assert [(r.name, r.type, r.size) for r in rows] == [
        ("sub", "folder", 0), ("away", "link", 0), ("f00", "file", 0), ("f01", "file", 1), ("f02", "file", 2),
    ]
    # the page's four entries that are no link (the link's own look is not a DirEntry stat)
    assert CountingScan.stats == 4
    assert after == Position(OTHER, 0, "f02")
    # by size every entry is looked at, and the largest come first
    CountingScan.stats = 0
    rows, _ = operations.list_page(private, private.root, Query(paged=True, limit=2, sort="size", order="desc"))
    assert [r.name for r in rows] == ["sub", "f49"] and CountingScan.stats == 51


def test_a_local_folder_pages_through_describe_with_cursors(private):
    for name in ("b", "a", "C", "d"):
        (private.root / name).write_text(name)
    (private.root / "dir").mkdir()
    seen, arguments = [], {"limit": "2", "filter": "d"}
    answer = operations.describe(private, PurePosixPath(), private.root, parse_query(arguments))
    assert answer["entries"][0]["name"] == "dir" and answer["limit"] == 2 and answer["filter"] == "d"
    seen += [e["name"] for e in answer["entries"]]
    assert answer["next"] is None and seen == ["dir", "d"]
    seen, arguments = [], {"limit": "2"}
    while True:
        answer = operations.describe(private, PurePosixPath(), private.root, parse_query(arguments))
        seen += [e["name"] for e in answer["entries"]]
        if not answer["next"]:
            break
        assert len(seen) <= 10, "the cursor never ends"
        arguments = {"limit": "2", "cursor": answer["next"]}
    assert seen == ["dir", "C", "a", "b", "d"]
    # the cursor of the top folder does not list a sub-folder
    first = operations.describe(private, PurePosixPath(), private.root, parse_query({"limit": "1"}))
    with pytest.raises(BadListing, match="another listing"):
        operations.describe(private, PurePosixPath("dir"), private.root / "dir", parse_query({"cursor": first["next"]}))


def test_without_paging_the_answer_keeps_its_old_shape(private):
    (private.root / "a").write_text("a")
    answer = operations.describe(private, PurePosixPath(), private.root, Query())
    assert set(answer) == {"name", "type", "size", "modified", "domain", "path", "entries"}
    assert [e["name"] for e in answer["entries"]] == ["a"]


# --- karvdashctl ls -------------------------------------------------------------------------


class PagedSession:
    """A dashboard that answers a folder of five files two at a time."""

    NAMES = ("a", "b", "c", "d", "e")

    def __init__(self):
        self.headers = {}
        self.asked = []

    def request(self, method, url, params=None, **kwargs):
        self.asked.append(dict(params or {}))
        start = int(params.get("cursor", "0")) if params else 0
        limit = int(params["limit"]) if params and "limit" in params else len(self.NAMES)
        names = self.NAMES[start:start + min(limit, 2)]
        following = start + len(names)
        body = {"name": "data", "type": "folder", "size": 0, "modified": 0, "domain": "private", "path": "data",
                "entries": [{"name": n, "type": "file", "size": 1, "modified": 0} for n in names],
                "next": str(following) if following < len(self.NAMES) else None, "limit": limit,
                "sort": "name", "order": "asc", "filter": ""}
        response = requests.Response()
        response.status_code, response._content = 200, json.dumps(body).encode()
        return response


@pytest.mark.parametrize("as_json", [False, True])
def test_ls_follows_the_cursor_to_the_last_page(monkeypatch, capsys, as_json):
    session = PagedSession()
    connection = find_connection("http://127.0.0.1:1/services/karvdash/", "t", environ={})
    monkeypatch.setattr(main, "DashboardClient", lambda c: DashboardClient(connection, session=session))
    argv = ["--url", "http://127.0.0.1:1/services/karvdash/", "--token", "t", *(["--json"] if as_json else []),
            "ls", "private/data", "--sort", "size", "-r", "--filter", "x"]
    assert main.main(argv) == 0
    assert [a.get("cursor") for a in session.asked] == [None, "2", "4"]
    assert all(a["sort"] == "size" and a["order"] == "desc" and a["filter"] == "x" for a in session.asked)
    out = capsys.readouterr().out
    if as_json:
        listing = json.loads(out)
        assert [e["name"] for e in listing["entries"]] == list(PagedSession.NAMES)
        assert "next" not in listing and "limit" not in listing
    else:
        assert [line.split()[-1] for line in out.splitlines()[1:]] == list(PagedSession.NAMES)


# --- the name index of large folders --------------------------------------------------------


def pages_of(private, path, index, **arguments) -> list[str]:
    names, query = [], parse_query({"limit": "4", **arguments})
    while True:
        rows, after = operations.list_page(private, path, query, index)
        names += [r.name for r in rows]
        if after is None:
            return names
        assert len(names) <= 100, "the cursor never ends"
        query = replace(query, after=after)


@pytest.fixture
def indexed(private, tmp_path):
    folder = private.root / "big"
    folder.mkdir()
    for i in range(20):
        (folder / f"f{i:02d}").write_bytes(b"x" * i)
    for name in ("Sub", "sub2"):
        (folder / name).mkdir()
    (folder / ".trash-x").mkdir()
    return folder, NameIndex(tmp_path / "index.sqlite3", index_from=10, settled=0)


def test_a_large_folder_once_read_is_paged_from_its_index(private, indexed, monkeypatch):
    folder, index = indexed
    expected = ["Sub", "sub2"] + [f"f{i:02d}" for i in range(20)]
    query = parse_query({"limit": "4"})
    assert index.page(os.stat(folder), query) is None
    assert pages_of(private, folder, index) == expected  # read whole, then indexed
    assert [c[2] for c in index.page(os.stat(folder), query)] == expected[:5]
    # from now on the folder is not read whole: its pages come from the index
    real_scandir = os.scandir
    monkeypatch.setattr(operations.os, "scandir", lambda path: pytest.fail(f"read {path} whole"))
    assert pages_of(private, folder, index) == expected
    assert pages_of(private, folder, index, order="desc") == ["sub2", "Sub"] + expected[:1:-1]
    rows, _ = operations.list_page(private, folder, query, index)
    assert [(r.name, r.type, r.size) for r in rows][1:3] == [("sub2", "folder", 0), ("f00", "file", 0)]
    # a change of the folder makes the index stale: read whole again (and the new name is there)
    monkeypatch.setattr(operations.os, "scandir", real_scandir)
    (folder / "f05").unlink()
    (folder / "a-new").write_text("new")
    assert index.page(os.stat(folder), query) is None
    assert pages_of(private, folder, index) == ["Sub", "sub2", "a-new"] + [n for n in expected[2:] if n != "f05"]
    # a size changing needs no new index: rows are looked at when sent
    (folder / "f00").write_bytes(b"grown")
    rows, _ = operations.list_page(private, folder, query, index)
    assert [(r.name, r.size) for r in rows if r.name == "f00"] == [("f00", 5)]


def test_small_busy_or_linked_folders_are_not_indexed(private, indexed, tmp_path):
    folder, index = indexed
    query = parse_query({"limit": "4"})
    small = NameIndex(tmp_path / "small.sqlite3", index_from=100, settled=0)
    operations.list_page(private, folder, query, small)
    assert small.page(os.stat(folder), query) is None
    busy = NameIndex(tmp_path / "busy.sqlite3", index_from=10, settled=3600)
    operations.list_page(private, folder, query, busy)
    assert busy.page(os.stat(folder), query) is None
    os.symlink(folder / "f01", folder / "link")
    operations.list_page(private, folder, query, index)
    assert index.page(os.stat(folder), query) is None
    # filtered or not by name: the index is not asked
    assert not index.usable(parse_query({"limit": "4", "filter": "f"}))
    assert not index.usable(parse_query({"limit": "4", "sort": "size"}))
    assert not index.usable(parse_query({}))


def test_an_unreadable_index_only_means_reading_the_folder_whole(private, indexed, tmp_path):
    folder, _ = indexed
    broken = tmp_path / "broken.sqlite3"
    broken.write_bytes(b"not a database" * 100)
    index = NameIndex(broken, index_from=10, settled=0)
    assert pages_of(private, folder, index)[:3] == ["Sub", "sub2", "f00"]
