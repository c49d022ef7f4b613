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
"""

from __future__ import annotations

from jupyterhub import orm
from sqlalchemy import event
from sqlalchemy.orm import lazyload

# the user's relationships that JupyterHub loads with every query of users
_ON_FIRST_READ = (lazyload(orm.User.roles), lazyload(orm.User.groups), lazyload(orm.User.shared_with_me))


def _load_on_first_read(state) -> None:
    if state.is_select and state.bind_mapper is not None and state.bind_mapper.class_ is orm.User:
        state.statement = state.statement.options(*_ON_FIRST_READ)


class CookieLoginWithoutReloads:
    """For a hub handler: its login cookie's user found with one query."""

    def _user_for_cookie(self, cookie_name, cookie_value=None):
        event.listen(self.db, "do_orm_execute", _load_on_first_read)
        try:
            return super()._user_for_cookie(cookie_name, cookie_value)
        finally:
            event.remove(self.db, "do_orm_execute", _load_on_first_read)
