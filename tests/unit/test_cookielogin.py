"""The hub pages' login check by cookie (karvdash_hub/hub/cookielogin.py):
JupyterHub's own check the first time, no query after it, and never a user
whose cookie id was replaced or who was deleted."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from jupyterhub import orm
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.utils import new_token
from sqlalchemy import event

from karvdash_hub.hub import cookielogin
from karvdash_hub.hub.cookielogin import CookieLoginWithoutReloads


class JupyterHubCheck:
    """JupyterHub's cookie check itself (its methods, unchanged) on a real
    database, with the signed cookie's value given as it is."""

    _user_for_cookie = BaseHandler._user_for_cookie
    _user_from_orm = BaseHandler._user_from_orm
    cookie_max_age_days = 14
    hub = SimpleNamespace(base_url="/hub/")
    log = logging.getLogger("test")

    def __init__(self, db):
        self.db = db
        self.users = {}
        self.cleared = []
        self.activity = 0

    def get_secure_cookie(self, name, value=None, max_age_days=None):
        return value.encode() if value else None

    def get_cookie(self, name):
        return None

    def clear_cookie(self, name, path=None):
        self.cleared.append(name)

    def _record_activity(self, user):
        self.activity += 1
        return False


class Handler(CookieLoginWithoutReloads, JupyterHubCheck):
    pass


class Users(dict):
    """JupyterHub's UserDict as far as the check uses it: the wrapper of an
    ORM user, by id, kept for the hub's life (and with it the ORM user in
    the session, whose identity map holds only what is referred to)."""

    def __getitem__(self, orm_user):
        return self.setdefault(orm_user.id, SimpleNamespace(orm_user=orm_user, name=orm_user.name))


@pytest.fixture
def db():
    session = orm.new_session_factory("sqlite:///:memory:")()
    session.add_all([orm.User(name="ann", cookie_id="ann-cookie"), orm.User(name="bob", cookie_id="bob-cookie")])
    session.commit()
    cookielogin._USER_OF_COOKIE.clear()
    session.hub_users = Users()
    yield session
    cookielogin._USER_OF_COOKIE.clear()
    session.close()


def login(db, cookie):
    """The user the check finds for ``cookie``, and the SQL it ran."""
    handler = Handler(db)
    handler.users = db.hub_users
    seen = []

    def record(conn, cursor, statement, *_):
        # (not the pool's check of a connection it hands out)
        if statement != "SELECT 1":
            seen.append(statement)

    event.listen(db.get_bind(), "before_cursor_execute", record)
    try:
        found = handler._user_for_cookie("jupyterhub-hub-login", cookie)
    finally:
        event.remove(db.get_bind(), "before_cursor_execute", record)
    return (found.name if found else None), len(seen), handler


def test_a_cookie_seen_once_finds_its_user_with_no_query(db):
    assert login(db, "ann-cookie")[:2] == ("ann", 1)
    name, queries, handler = login(db, "ann-cookie")
    assert (name, queries) == ("ann", 0)
    # what JupyterHub does with a user it found still happens
    assert handler.activity == 1
    assert login(db, "bob-cookie")[:2] == ("bob", 1)


def test_a_replaced_cookie_id_is_refused_and_the_new_one_found(db):
    login(db, "ann-cookie")
    ann = db.query(orm.User).filter_by(name="ann").one()
    # a password change, a revoke, a deactivation
    ann.cookie_id = new_token()
    db.commit()
    name, queries, handler = login(db, "ann-cookie")
    assert (name, queries) == (None, 1)
    assert handler.cleared == ["jupyterhub-hub-login"]
    assert login(db, ann.cookie_id)[:2] == ("ann", 1)
    assert login(db, ann.cookie_id)[:2] == ("ann", 0)


def test_a_deleted_user_is_refused(db):
    login(db, "bob-cookie")
    db.delete(db.query(orm.User).filter_by(name="bob").one())
    # deleted in the session, not yet committed
    assert login(db, "bob-cookie")[0] is None
    db.commit()
    assert login(db, "bob-cookie")[:2] == (None, 1)


def test_a_cookie_another_user_now_has_finds_that_user(db):
    login(db, "ann-cookie")
    ann, bob = (db.query(orm.User).filter_by(name=n).one() for n in ("ann", "bob"))
    ann.cookie_id = new_token()
    db.flush()
    bob.cookie_id = "ann-cookie"
    db.commit()
    assert login(db, "ann-cookie")[0] == "bob"


def test_no_cookie_and_a_bad_one_are_jupyterhubs_answer(db):
    assert login(db, None)[:2] == (None, 0)
    name, queries, handler = login(db, "never-issued")
    assert (name, queries) == (None, 1)
    assert handler.cleared == ["jupyterhub-hub-login"]


def test_what_it_remembers_is_bounded(db, monkeypatch):
    monkeypatch.setattr(cookielogin, "REMEMBERED", 2)
    login(db, "ann-cookie")
    login(db, "bob-cookie")
    assert len(cookielogin._USER_OF_COOKIE) == 2
    ann = db.query(orm.User).filter_by(name="ann").one()
    ann.cookie_id = "ann-new"
    db.commit()
    login(db, "ann-new")
    assert cookielogin._USER_OF_COOKIE == {"ann-new": ann.id}
