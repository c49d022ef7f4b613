"""Accounts at scale, the pure parts: the listing parameters of the Sign-ups
page and its API, the SQL they make, and bulk imports parsed row by row."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.dialects import sqlite

from karvdash_hub.accounts.imports import (
    ImportRow,
    Refusal,
    email_problem,
    parse_import,
)
from karvdash_hub.accounts.listing import (
    MAX_LIMIT,
    Listing,
    parse_listing,
    select_count,
    select_page,
)
from karvdash_hub.core.errors import KarvdashError


def sql(statement) -> str:
    return str(statement.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))


# --- listing ---------------------------------------------------------------------------


def test_no_parameters_is_the_first_page_by_name():
    assert parse_listing({}) == Listing(search="", sort="name", order="asc", state="all", limit=50, offset=0)


def test_every_parameter_is_read():
    listing = parse_listing({"search": " Ann ", "sort": "created", "order": "desc", "state": "pending", "limit": "20", "offset": "40"})
    assert listing == Listing(search="Ann", sort="created", order="desc", state="pending", limit=20, offset=40)


@pytest.mark.parametrize("arguments, words", [
    ({"sort": "password"}, "sort must be one of name, email, created, state"),
    ({"order": "up"}, "order must be asc or desc"),
    ({"state": "gone"}, "state must be one of all, pending, approved"),
    ({"limit": "0"}, "limit must be from 1 to 500"),
    ({"limit": str(MAX_LIMIT + 1)}, "limit must be from 1 to 500"),
    ({"limit": "ten"}, "limit must be a whole number"),
    ({"offset": "-1"}, "offset must be a whole number"),
    ({"offset": "١"}, "offset must be a whole number"),  # a digit, but not 0-9
    ({"search": "x" * 129}, "at most 128 characters"),
    ({"search": "a\x00b"}, "printable"),
    ({"page": "2"}, "Unknown parameter 'page'"),
])
def test_a_bad_parameter_is_a_400_that_names_it(arguments, words):
    with pytest.raises(KarvdashError) as refused:
        parse_listing(arguments)
    assert refused.value.status == 400
    assert words in refused.value.message


def test_the_query_string_leaves_defaults_out():
    listing = Listing(search="ann", sort="email", offset=50)
    assert listing.query() == "search=ann&sort=email&offset=50"
    assert listing.query(offset=0, order="desc") == "search=ann&sort=email&order=desc"
    assert Listing().query() == ""
    with pytest.raises(TypeError):
        listing.query(page=2)


def test_a_page_is_one_limited_query_with_the_name_breaking_ties():
    text = sql(select_page(Listing(sort="state", order="desc", limit=20, offset=40)))
    assert "ORDER BY users_info.is_authorized DESC, users_info.username DESC" in text
    assert "LIMIT 20 OFFSET 40" in text
    assert "WHERE" not in text


def test_email_order_ignores_case():
    assert "ORDER BY lower(users_info.email) ASC, users_info.username ASC" in sql(select_page(Listing(sort="email")))


def test_search_is_a_substring_of_name_or_email_in_any_case():
    text = sql(select_page(Listing(search="Ann")))
    assert "WHERE users_info.username LIKE '%ann%' ESCAPE '\\'" in text
    assert "OR lower(users_info.email) LIKE '%ann%' ESCAPE '\\'" in text
    assert text.endswith("ORDER BY lower(users_info.username) ASC\n LIMIT 50 OFFSET 0")
    assert sql(select_page(Listing())).endswith("ORDER BY users_info.username ASC\n LIMIT 50 OFFSET 0")


def test_a_page_reads_the_columns_it_shows_and_a_counted_one_its_total():
    plain = sql(select_page(Listing(search="ann", state="pending")))
    assert plain.startswith("SELECT users_info.id, users_info.username, users_info.email, users_info.is_authorized \nFROM")
    counted = sql(select_page(Listing(search="ann", state="pending"), counted=True))
    assert counted.startswith("SELECT users_info.id, users_info.username, users_info.email, users_info.is_authorized, "
                              "count(*) OVER () AS total \nFROM")
    # the same filter, order and page as the plain one
    assert counted.split("\nFROM", 1)[1] == plain.split("\nFROM", 1)[1]


def test_search_wildcards_match_themselves():
    text = sql(select_count(Listing(search="50%_a\\b")))
    assert "LIKE '%50\\%\\_a\\\\b%' ESCAPE '\\'" in text


def test_state_filters_and_the_count_has_the_same_filter_without_paging():
    text = sql(select_count(Listing(search="x", state="pending", limit=5, offset=10)))
    # count(*): SQLite counts an index's entries instead of reading each row
    assert text.startswith("SELECT count(*) AS count_1 \nFROM users_info")
    assert "users_info.is_authorized IS 0 OR users_info.is_authorized IS NULL" in text
    assert "LIMIT" not in text and "ORDER BY" not in text
    assert "users_info.is_authorized IS 1" in sql(select_page(Listing(state="approved")))


def test_with_the_search_index_a_search_reads_the_matches_from_it():
    text = sql(select_page(Listing(search='Ann "x', state="approved"), fts=True))
    assert ("WHERE users_info.id IN (SELECT users_info_search.rowid \nFROM users_info_search \n"
            "WHERE users_info_search MATCH '\"Ann \"\"x\"')") in text
    assert "LIKE" not in text and "users_info.is_authorized IS 1" in text
    counted = sql(select_count(Listing(search="ann"), fts=True))
    assert "users_info_search MATCH '\"ann\"'" in counted
    # two characters have no trigram: every row is read, as without the index
    short = sql(select_page(Listing(search="an"), fts=True))
    assert "MATCH" not in short and "users_info.username LIKE '%an%'" in short
    assert sql(select_page(Listing(), fts=True)) == sql(select_page(Listing()))


# --- imports ---------------------------------------------------------------------------


def test_csv_with_a_header_spaces_and_admin_flags():
    text = "username,email,admin\nann, ann@example.org ,yes\n\nbob,bob@example.org\ncid,cid@example.org,false\n"
    rows, refused = parse_import(text, "csv")
    assert rows == [
        ImportRow(2, "ann", "ann@example.org", True),
        ImportRow(4, "bob", "bob@example.org", False),
        ImportRow(5, "cid", "cid@example.org", False),
    ]
    assert refused == []


def test_csv_without_a_header():
    rows, _ = parse_import("ann,ann@example.org\n", "csv")
    assert rows == [ImportRow(1, "ann", "ann@example.org", False)]


def test_every_bad_row_is_refused_with_its_line_and_the_rest_kept():
    text = "\n".join([
        "Ann,ann@example.org",          # 1 capitals
        "bob,not-an-address",           # 2
        "cid,cid@example.org,maybe",    # 3
        "dan,dan@example.org",          # 4 fine
        "dan,dan2@example.org",         # 5 name twice
        "eve,DAN@example.org",          # 6 email twice, in another case
        "onlyname",                     # 7
        "a" * 33 + ",long@example.org",  # 8
    ])
    rows, refused = parse_import(text, "csv")
    assert rows == [ImportRow(4, "dan", "dan@example.org", False)]
    assert [(r.line, r.username) for r in refused] == [
        (1, "Ann"), (2, "bob"), (3, "cid"), (5, "dan"), (6, "eve"), (7, ""), (8, "a" * 33)]
    reasons = {r.line: r.reason for r in refused}
    assert "lowercase letters and digits" in reasons[1]
    assert reasons[2] == "Enter a valid email address."
    assert reasons[3] == "admin is true or false, not 'maybe'."
    assert "given twice" in reasons[5] and "given twice" in reasons[6]


def test_json_objects_or_lists():
    text = json.dumps({"accounts": [
        {"username": "ann", "email": "ann@example.org", "admin": True},
        ["bob", "bob@example.org"],
        {"username": 7, "email": "x@example.org"},
        "cid",
    ]})
    rows, refused = parse_import(text, "json")
    assert rows == [ImportRow(1, "ann", "ann@example.org", True), ImportRow(2, "bob", "bob@example.org", False)]
    assert [(r.line, r.username) for r in refused] == [(3, ""), (4, "")]


def test_json_names_are_not_trimmed():
    _, refused = parse_import(json.dumps([{"username": " ann", "email": "ann@example.org"}]), "json")
    assert refused == [Refusal(1, " ann", "A username has 1 to 32 characters, lowercase letters and digits only.")]


@pytest.mark.parametrize("text, kind, status, words", [
    ("", "csv", 400, "no accounts"),
    ("\n\n", "csv", 400, "no accounts"),
    ("{", "json", 400, "The JSON cannot be read"),
    ('{"users": []}', "json", 400, "must be a list"),
    ('"ann"', "json", 400, "must be a list"),
    ('ann,"unclosed\n', "csv", 400, "The CSV cannot be read"),
    ("ann,ann@example.org", "xml", 400, "CSV or JSON"),
    ("a,a@example.org\n" * 20_001, "csv", 413, "at most 20000 accounts"),
    ("x" * (4 * 1024 * 1024 + 1), "csv", 413, "at most 4 MiB"),
])
def test_an_unreadable_import_is_refused_whole(text, kind, status, words):
    with pytest.raises(KarvdashError) as refused:
        parse_import(text, kind)
    assert refused.value.status == status
    assert words in refused.value.message


@pytest.mark.parametrize("email, good", [
    ("ann@example.org", True), ("a.b+c@dept.example.ac.uk", True),
    ("ann@example", False), ("ann@example.org\n", False), ("", False),
    ("a" * 120 + "@example.org", False),  # longer than the column
])
def test_email_addresses(email, good):
    assert (email_problem(email) == "") is good
