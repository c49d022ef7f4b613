"""The accounts' queries on a real SQLite database of the hub's schema: the
indexes made at start-up for a database that has none, and the look-ups
that use them, and the statements a page of accounts takes; the search
index kept in step with every change, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from jupyterhub.orm import Base
from nativeauthenticator.orm import UserInfo
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.orm import Session

from karvdash_hub.accounts import search as search_index
from karvdash_hub.accounts import store
from karvdash_hub.accounts.imports import ImportRow
from karvdash_hub.accounts.listing import Listing, select_count, select_page
from tests.postgres import binaries, start_postgres

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


# --- the search index ------------------------------------------------------------------


SEARCHES = ["user1", "USER1", "dept2", "example.org", "r07@d", "ann", "er1", "u", "50%_", "zzz", '"x']


def matches(db, search: str, fts: bool) -> tuple[int, list[str]]:
    listing = Listing(search=search, limit=500)
    rows = db.execute(select_page(listing, fts=fts)).all()
    total = db.execute(select_count(listing, fts=fts)).scalar_one()
    return total, [row.username for row in rows]


def assert_index_in_step(db) -> None:
    """Every search finds, through the index, what reading every row finds."""
    for search in SEARCHES:
        assert matches(db, search, fts=True) == matches(db, search, fts=False), search


def test_a_search_finds_in_the_index_what_every_row_has_after_every_change(db):
    assert store.ensure_indexes(db) == search_index.FTS5
    rows = [ImportRow(i, f"user{i:02d}", f"User{i:02d}@Dept{i % 3}.example.org") for i in range(30)]
    store.import_accounts(db, rows, [], approved=False)  # one INSERT of many rows
    db.add(UserInfo(username="ann", email="Ann.Smith@Lab.example.org", password=b"x"))  # the sign-up form's way
    db.commit()
    assert matches(db, "smith@lab", fts=True) == (1, ["ann"])
    assert_index_in_step(db)
    store.set_email(db, "user07", "R07@dept9.example.org")
    assert matches(db, "r07@dept9", fts=True) == (1, ["user07"])
    assert matches(db, "user07@dept1", fts=True) == (0, [])
    # a rename (as the hub's admin API renames a user) and a deletion (a discarded sign-up)
    db.execute(text("UPDATE users_info SET username = 'renamed1' WHERE username = 'user12'"))
    db.delete(UserInfo.find(db, "user13"))
    db.execute(text("DELETE FROM users_info WHERE username = 'user14'"))
    db.commit()
    assert matches(db, "renamed", fts=True) == (1, ["renamed1"])
    # (renamed1 keeps the email User12@...)
    assert matches(db, "user1", fts=True)[1] == ["renamed1", "user10", "user11", "user15", "user16", "user17",
                                                 "user18", "user19"]
    assert_index_in_step(db)
    # and the page the hub shows comes from the index
    page, statements = statements_of(db, store.page, db, Listing(search="dept2"))
    assert page.total == 9 and any("MATCH" in s for s in statements)  # (user14 went)


def test_a_start_fills_an_index_left_out_of_step(db):
    store.import_accounts(db, [ImportRow(1, "ann", "ann@example.org")], [], approved=True)
    assert store.ensure_indexes(db) == search_index.FTS5
    # an index that missed changes (its triggers gone, as a hub without them would leave it)
    for name in ("users_info_search_insert", "users_info_search_update", "users_info_search_delete"):
        db.execute(text(f"DROP TRIGGER {name}"))
    db.commit()
    store.import_accounts(db, [ImportRow(1, "bob", "bob@example.org")], [], approved=True)
    store.set_email(db, "ann", "anna@example.org")
    assert matches(db, "bob", fts=True) == (0, [])
    assert store.ensure_indexes(db) == search_index.FTS5
    assert matches(db, "bob", fts=True) == (1, ["bob"])
    assert matches(db, "anna@", fts=True) == (1, ["ann"])
    assert_index_in_step(db)


def test_a_search_index_on_postgresql_gives_the_same_accounts(tmp_path):
    if binaries() is None:
        pytest.skip("PostgreSQL not installed: run make postgresql")
    server = start_postgres()
    try:
        engine = create_engine(server.url().replace("postgresql://", "postgresql+psycopg://"))
        Base.metadata.create_all(engine)
        with Session(engine) as pg:
            rows = [ImportRow(i, f"user{i:02d}", f"User{i:02d}@Dept{i % 3}.example.org") for i in range(30)]
            store.import_accounts(pg, rows, [], approved=False)
            assert store.ensure_indexes(pg) == search_index.PG_TRGM
            assert search_index.kind(pg) == search_index.PG_TRGM
            found = {s: matches(pg, s, fts=False) for s in SEARCHES}
            assert found["user1"] == (10, [f"user1{i}" for i in range(10)])
            assert found["USER1"] == found["user1"] and found["zzz"] == (0, [])
            # the page uses the trigram index (the planner prefers reading 30 rows, unless told not to)
            pg.execute(text("SET enable_seqscan = off"))
            listing = Listing(search="dept2")
            statement = select_page(listing).compile(engine, compile_kwargs={"literal_binds": True})
            shown = " ".join(pg.execute(text(f"EXPLAIN {statement}")).scalars())
            assert "ix_users_info_email_trgm" in shown and "ix_users_info_username_trgm" in shown
            assert store.page(pg, listing).total == 10
            store.ensure_indexes(pg)  # the next start finds them
        # the same accounts as SQLite finds, with its index
        sqlite_engine = create_engine(f"sqlite:///{tmp_path / 'same.sqlite'}")
        Base.metadata.create_all(sqlite_engine)
        with Session(sqlite_engine) as lite:
            store.import_accounts(lite, rows, [], approved=False)
            store.ensure_indexes(lite)
            assert {s: matches(lite, s, fts=True) for s in SEARCHES} == found
        sqlite_engine.dispose()
        engine.dispose()
    finally:
        server.stop()


# --- the login check by cookie of the hub's pages ----------------------------------------


def test_a_cookie_login_finds_its_user_in_one_query_with_the_same_roles_and_groups(db):
    from jupyterhub import orm

    from karvdash_hub.hub.cookielogin import _load_on_first_read

    admin_role, staff = orm.Role(name="admin", scopes=["admin:users"]), orm.Group(name="staff")
    user = orm.User(name="ann", cookie_id="c00k1e", roles=[admin_role], groups=[staff])
    db.add_all([admin_role, staff, user])
    db.commit()

    def find():
        return db.query(orm.User).filter(orm.User.cookie_id == "c00k1e").first()

    # as JupyterHub finds it: the user, then its roles, groups (and theirs) and shares
    assert len(statements_of(db, find)[1]) == 6
    event.listen(db, "do_orm_execute", _load_on_first_read)
    try:
        found, statements = statements_of(db, find)
        assert found is user and len(statements) == 1
        # a session that has not read them yet loads them when they are read
        db.expire_all()
        found, statements = statements_of(db, find)
        assert len(statements) == 1
        assert ([r.name for r in found.roles], [g.name for g in found.groups], found.shared_with_me) == (
            ["admin"], ["staff"], [])
        found.roles.remove(admin_role)
        db.commit()
        assert find().roles == []
    finally:
        event.remove(db, "do_orm_execute", _load_on_first_read)
    assert find().roles == []
