"""The accounts' queries on a real SQLite database of the hub's schema: the
indexes made at start-up for a database that has none, and the look-ups
that use them, and the statements a page of accounts takes."""

from __future__ import annotations

import pytest
from jupyterhub.orm import Base
from nativeauthenticator.orm import UserInfo
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.orm import Session

from karvdash_hub.accounts import store
from karvdash_hub.accounts.imports import ImportRow
from karvdash_hub.accounts.listing import Listing, select_count

pytestmark = pytest.mark.integration


@pytest.fixture
def db(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}")
    Base.metadata.create_all(engine)
    session = Session(engine)
    yield session
    session.close()
    engine.dispose()


def indexes(db) -> set[str]:
    return set(db.execute(text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users_info'")).scalars())


def plan(db, statement) -> str:
    compiled = statement.compile(db.get_bind(), compile_kwargs={"literal_binds": True})
    return " ".join(str(row) for row in db.execute(text("EXPLAIN QUERY PLAN " + str(compiled))))


def test_an_older_database_gets_the_indexes_once(db):
    # as a hub made before them: the table without the indexes
    for name in (store.EMAIL_INDEX.name, store.USERNAME_INDEX.name):
        db.execute(text(f"DROP INDEX {name}"))
    db.commit()
    assert {store.EMAIL_INDEX.name, store.USERNAME_INDEX.name}.isdisjoint(indexes(db))
    store.ensure_indexes(db)
    store.ensure_indexes(db)  # the next start finds them
    assert {store.EMAIL_INDEX.name, store.USERNAME_INDEX.name} <= indexes(db)


def test_the_email_check_is_one_indexed_look_up_in_any_case(db):
    rows = [ImportRow(i, f"user{i}", f"User{i}@Dept.example.org") for i in range(2000)]
    store.import_accounts(db, rows, [], approved=False)
    assert store.email_owner(db, " user1234@DEPT.example.org ") == "user1234"
    assert store.email_taken(db, "USER7@dept.example.org")
    assert not store.email_taken(db, "USER7@dept.example.org", besides="user7")
    assert not store.email_taken(db, "nobody@dept.example.org")
    statement = select(UserInfo.username).where(func.lower(UserInfo.email) == "x@y.org").limit(1)
    assert f"SEARCH users_info USING INDEX {store.EMAIL_INDEX.name} (<expr>=?)" in plan(db, statement)


def test_approved_names_answer_in_with_one_query(db):
    store.import_accounts(db, [ImportRow(1, "ann", "ann@example.org")], [], approved=True)
    store.import_accounts(db, [ImportRow(1, "bob", "bob@example.org")], [], approved=False)
    names = store.ApprovedNames(db, {"root"})
    assert "ann" in names and "root" in names
    assert "bob" not in names and "nobody" not in names
    assert set(names) == {"ann", "root"} and len(names) == 2


def test_an_import_refuses_what_the_database_has(db):
    store.import_accounts(db, [ImportRow(1, "ann", "Ann@example.org")], [], approved=True)
    report = store.import_accounts(db, [
        ImportRow(1, "ann", "other@example.org"),
        ImportRow(2, "bob", "ANN@example.org"),
        ImportRow(3, "cid", "cid@example.org"),
    ], [], approved=False)
    assert [row.username for row in report.created] == ["cid"]
    assert [(r.line, r.reason) for r in report.refused] == [
        (1, "The username 'ann' is taken."), (2, "An account with this email address exists already.")]
    cid = UserInfo.find(db, "cid")
    assert (cid.email, cid.is_authorized, cid.has_2fa, len(cid.otp_secret)) == ("cid@example.org", False, False, 16)
    # nobody knows its password
    assert not cid.is_valid_password("")


def statements_of(db, call, *arguments):
    """What ``call(*arguments)`` returns, and the SQL statements it ran."""
    seen = []

    def record(conn, cursor, statement, *_):
        seen.append(statement)

    engine = db.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        return call(*arguments), seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_searched_page_and_its_count_are_one_query(db):
    rows = [ImportRow(i, f"user{i:02d}", f"User{i:02d}@Dept{i % 3}.example.org") for i in range(30)]
    store.import_accounts(db, rows, [], approved=False)
    for search, offset, total, shown in [
        ("user1", 0, 10, [f"user1{i}" for i in range(5)]),
        ("DEPT2", 5, 10, [f"user{i:02d}" for i in range(17, 30, 3)]),
        ("user1", 10, 10, []),  # past the last page: the count is asked apart
        ("nobody", 0, 0, []),
    ]:
        listing = Listing(search=search, offset=offset, limit=5)
        page, statements = statements_of(db, store.page, db, listing)
        assert (page.total, [a.username for a in page.accounts]) == (total, shown)
        assert len(statements) == (2 if page.total and not page.accounts else 1)
        assert page.total == db.execute(select_count(listing)).scalar_one()
    # an unsearched page walks the name index for its few rows; the count is apart
    page, statements = statements_of(db, store.page, db, Listing(limit=5))
    assert (page.total, len(page.accounts), len(statements)) == (30, 5, 2)
    # a page reads what it shows, never the password hash or the two-factor secret
    assert all("password" not in s and "otp_secret" not in s for s in statements)
    assert store.account_json(page.accounts[0]) == {
        "name": "user00", "email": "User00@Dept0.example.org", "state": "pending", "created": page.accounts[0].id}
