"""What every dashboard handler shares: hub login, scope checks, acting as
another user (admins), errors, and running blocking work off the loop.

Errors: handlers and the packages below raise
:class:`~karvdash_hub.core.errors.KarvdashError`; this module is the one
place that turns it into the API's ``{"status", "message"}`` answer (or the
error page), without a traceback in the log.

Authentication: a hub API token (``Authorization: token ...``) or the
dashboard's OAuth cookie; with the cookie, a request that changes anything
(and any ``fetch``) must carry the ``_xsrf`` token in ``X-XSRFToken``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from http import HTTPStatus
from urllib.parse import urlencode

from jupyterhub.services.auth import HubOAuthenticated, UserNotAllowed, check_scopes
from tornado import web

from karvdash_hub.core.errors import KarvdashError
from karvdash_hub.core.scopes import scope
from karvdash_hub.core.settings import USERNAME_PATTERN

from .context import DashboardContext

log = logging.getLogger("karvdash.dashboard")


USERNAME = re.compile(USERNAME_PATTERN)
# a route's group for a service, template or dataset name (a DNS label)
NAME = r"([a-z0-9][-a-z0-9]{0,62})"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class DashboardHandler(HubOAuthenticated, web.RequestHandler):
    """Base of every page and API handler of the dashboard."""

    def initialize(self, context: DashboardContext):
        self.context = context
        self.hub_auth = context.hub_auth

    async def prepare(self):
        # the mixin's get_current_user() blocks on a thread: ask the hub asynchronously
        model = await self.hub_auth.get_user(self, sync=False)
        if model and model.get("kind", "user") != "user":
            raise KarvdashError(403, "the dashboard works for users; services have no files or namespaces here")
        if model:
            try:
                model = self.check_hub_user(model)
            except UserNotAllowed:
                raise KarvdashError(403, f"{model.get('name')} may not use the dashboard (missing access scope)") from None
        self._hub_auth_user_cache = model
        self.current_user = model

    def get_current_user(self):
        return getattr(self, "_hub_auth_user_cache", None)

    # --- who and what ------------------------------------------------------------------

    @property
    def username(self) -> str:
        return self.current_user["name"]

    @property
    def is_admin(self) -> bool:
        return bool(self.current_user.get("admin"))

    def has_scope(self, feature: str, action: str) -> bool:
        return bool(check_scopes({scope(feature, action)}, set(self.current_user.get("scopes", []))))

    def require_scope(self, feature: str, action: str) -> None:
        if not self.has_scope(feature, action):
            raise KarvdashError(403, f"this needs the scope {scope(feature, action)}, which your token does not have")

    async def acting_user(self) -> str:
        """Whose files (and later services) this request works on.

        Normally the requester. An admin may add ``?as=<user>`` to act as that
        user; nobody else may, and every such request is logged.
        """
        if getattr(self, "_acting_user", None):
            return self._acting_user
        target = self.get_query_argument("as", "")
        if not target or target == self.username:
            self._acting_user = self.username
            return self.username
        if not self.is_admin:
            raise KarvdashError(403, "only administrators may act as another user")
        if not USERNAME.match(target) or await self.context.stores.hub_users(target) is None:
            raise KarvdashError(404, f"no user {target!r}")
        log.warning("%s acts as %s: %s %s", self.username, target, self.request.method, self.request.path)
        self._acting_user = target
        return target

    # --- doing -------------------------------------------------------------------------

    async def blocking(self, function, *args, **kwargs):
        """Run disk work in the thread pool; the event loop keeps serving."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(function, *args, **kwargs))

    def error_message(self, status_code: int, exc_info) -> str:
        error = exc_info[1] if exc_info else None
        if isinstance(error, KarvdashError):
            return error.message
        if isinstance(error, web.HTTPError) and error.log_message:
            return error.log_message % error.args if error.args else error.log_message
        return HTTPStatus(status_code).phrase if status_code in HTTPStatus._value2member_map_ else "error"

    def _handle_request_exception(self, e):
        # refusals carry their own status: answer them, don't log a traceback
        if isinstance(e, KarvdashError):
            if not self._finished:
                self.send_error(e.status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)

    def log_exception(self, typ, value, tb):
        if isinstance(value, KarvdashError):
            return
        super().log_exception(typ, value, tb)


class APIHandler(DashboardHandler):
    """JSON in, JSON out; every error is ``{"status": <code>, "message": ...}``."""

    async def prepare(self):
        await super().prepare()
        if self.current_user is None:
            if self.request.method in WRITE_METHODS and self.get_cookie(self.hub_auth.cookie_name):
                raise KarvdashError(403, "XSRF check failed: send the _xsrf cookie's value in the X-XSRFToken header")
            raise KarvdashError(401, "authentication required: log in, or send a hub API token in the Authorization header")

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")

    def get_login_url(self):
        raise KarvdashError(401, "authentication required")

    def json_body(self) -> dict:
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except ValueError:
            raise KarvdashError(400, "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise KarvdashError(400, "the body must be a JSON object")
        return body

    def write_json(self, value, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(value))

    def write_error(self, status_code: int, **kwargs):
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        body = {"status": status_code, "message": self.error_message(status_code, kwargs.get("exc_info"))}
        extra = getattr(kwargs.get("exc_info", (None, None))[1], "extra", None)
        if extra:
            body.update(extra)
        self.finish(json.dumps(body))


class PageHandler(DashboardHandler):
    """An HTML page in the hub's look; anonymous people go to the hub's login."""

    async def prepare(self):
        await super().prepare()
        if self.current_user is None:
            if self.request.method in ("GET", "HEAD"):
                self.redirect(self.get_login_url())
                return
            raise web.HTTPError(403)

    @property
    def acting_as(self) -> str:
        """The user an administrator acts as on this page, or "" (the page
        shows a banner, and its links and API calls keep ``?as=``)."""
        acting = getattr(self, "_acting_user", None)
        return acting if acting and self.current_user and acting != self.username else ""

    def page_url(self, path: str, **query) -> str:
        """A dashboard address that keeps acting as the same user."""
        query = {key: value for key, value in {**query, "as": self.acting_as}.items() if value not in ("", None)}
        return self.context.url(path) + (f"?{urlencode(query)}" if query else "")

    def render_page(self, name: str, **variables) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(
            self.context.pages.render(
                name,
                user=self.current_user,
                xsrf_token=self.xsrf_token.decode("ascii"),
                karvdash_static=self.static_url,
                karvdash_service_prefix=self.context.prefix,
                karvdash_url=self.page_url,
                acting_as=self.acting_as,
                **variables,
            )
        )

    def write_error(self, status_code: int, **kwargs):
        message = self.error_message(status_code, kwargs.get("exc_info"))
        try:
            self.render_page("dashboard-error.html", status_code=status_code, message=message)
        except Exception:  # noqa: BLE001 - never fail while reporting a failure
            log.exception("cannot render the error page")
            self.finish(f"{status_code}: {message}")


