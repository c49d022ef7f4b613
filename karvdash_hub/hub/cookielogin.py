"""The login check by cookie of the hub's own pages, without the three
queries it wastes.

JupyterHub finds the user of a login cookie with one query by cookie id;
its user model loads the roles, groups and shares of every user a query
returns at once (``lazy="selectin"``), three more queries each time, whose
answers SQLAlchemy then drops for a user whose collections the hub's
session holds already, which is every user after their first request
(about three quarters of the check's time). :class:`CookieLoginWithoutReloads`
runs JupyterHub's check as it is and only has these collections loaded
when they are first read instead: the same user, the same checks, the same
roles and scopes.

After a user's first check it needs no query at all: the cookie id is
remembered with the user's id, and a later request with the same signed
cookie takes the user from the hub's session (where the users JupyterHub
has wrapped stay, and the only writer of users: JupyterHub runs one hub
per database) if that user still has that cookie id; a user not in it is
found by JupyterHub's check again. A password change, a revoke or a
deactivation gives the user a new cookie id (JupyterHub's logout only
clears the browser's cookie, as without this), and a deleted user is no
longer in the session: both go back to JupyterHub's check, which refuses
the cookie.
"""

from __future__ import annotations

from jupyterhub import orm
from sqlalchemy import event
from sqlalchemy.orm import Session, lazyload
from sqlalchemy.orm.util import identity_key

# the user's relationships that JupyterHub loads with every query of users
_ON_FIRST_READ = (lazyload(orm.User.roles), lazyload(orm.User.groups), lazyload(orm.User.shared_with_me))


def _load_on_first_read(state) -> None:
    if state.is_select and state.bind_mapper is not None and state.bind_mapper.class_ is orm.User:
        state.statement = state.statement.options(*_ON_FIRST_READ)


# cookie id -> the id of the user it was last the cookie id of; cleared when
# it holds more than REMEMBERED (cookie ids replaced are never asked again)
_USER_OF_COOKIE: dict[str, int] = {}
REMEMBERED = 20_000


def _known_user(db: Session, cookie_id: str) -> orm.User | None:
    """The user whose cookie id this is, as the session holds it, or None
    (not seen, replaced since, the user deleted or not in the session)."""
    user_id = _USER_OF_COOKIE.get(cookie_id)
    if user_id is None:
        return None
    user = db.identity_map.get(identity_key(orm.User, user_id))
    if user is None or user.cookie_id != cookie_id or user in db.deleted:
        del _USER_OF_COOKIE[cookie_id]
        return None
    return user


def _remember(user: orm.User) -> None:
    if len(_USER_OF_COOKIE) >= REMEMBERED:
        _USER_OF_COOKIE.clear()
    _USER_OF_COOKIE[user.cookie_id] = user.id


class CookieLoginWithoutReloads:
    """For a hub handler: its login cookie's user found with one query the
    first time, and with none after it."""

    def _user_for_cookie(self, cookie_name, cookie_value=None):
        signed = self.get_secure_cookie(cookie_name, cookie_value, max_age_days=self.cookie_max_age_days)
        known = _known_user(self.db, signed.decode("utf8", "replace")) if signed is not None else None
        if known is not None:
            # what JupyterHub's check does once it has found the user
            user = self._user_from_orm(known)
            if self._record_activity(user):
                self.db.commit()
            return user
        # (no cookie, a bad or expired one, a cookie not seen yet: JupyterHub's check)
        event.listen(self.db, "do_orm_execute", _load_on_first_read)
        try:
            user = super()._user_for_cookie(cookie_name, cookie_value)
        finally:
            event.remove(self.db, "do_orm_execute", _load_on_first_read)
        if user is not None:
            _remember(user.orm_user)
        return user
