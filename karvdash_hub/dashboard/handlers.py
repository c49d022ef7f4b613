"""What every dashboard handler shares: hub login, scope checks, acting as
another user (admins), errors, and running blocking work off the loop.

Errors: handlers and the packages below raise
:class:`~karvdash_hub.core.errors.KarvdashError`; this module is the one
place that turns it into the API's ``{"status", "message"}`` answer (or the
error page), without a traceback in the log.

Authentication: a hub API token (``Authorization: token ...``) or the
dashboard's OAuth cookie; with the cookie, a request that changes anything
(and any ``fetch``) must carry the ``_xsrf`` token in ``X-XSRFToken``.

Bodies: every handler streams its request body (``stream_request_body``), so
that login and size are checked in ``prepare`` before a byte of the body is
read: an anonymous or oversized body is never held in memory. Small bodies
(JSON, forms) are collected up to :data:`MAX_SMALL_BODY`; uploads write
theirs to disk as it arrives.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import re
import time
from http import HTTPStatus
from urllib.parse import quote, urlencode

from jupyterhub.services.auth import HubOAuthenticated, UserNotAllowed, check_scopes
from tornado import httputil, web

from karvdash_hub.core.errors import KarvdashError
from karvdash_hub.core.scopes import scope
from karvdash_hub.core.settings import USERNAME_PATTERN

from .context import DashboardContext

log = logging.getLogger("karvdash.dashboard")


USERNAME = re.compile(USERNAME_PATTERN)
# a route's group for a service, template or dataset name (a DNS label)
NAME = r"([a-z0-9][-a-z0-9]{0,62})"
HTTP_METHODS = ("get", "head", "post", "put", "patch", "delete", "options")
# the most a JSON or form body may carry (uploads have their own limit)
MAX_SMALL_BODY = 1024 * 1024
XSRF_REFUSAL = "XSRF check failed: send the _xsrf cookie's value in the X-XSRFToken header"
# bodies whose _xsrf token is a field of the body itself (browser forms)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class LoginNeeded(Exception):
    """An anonymous visitor of a page: sent to the hub's login."""


def after_body(method):
    """Run an HTTP method only once the request body is in: a refusal found
    before it (login, size) is answered now, and the body is ready to read."""

    @functools.wraps(method)
    async def run(self, *args, **kwargs):
        await self.body_received()
        result = method(self, *args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    return run


@web.stream_request_body
class DashboardHandler(HubOAuthenticated, web.RequestHandler):
    """Base of every page and API handler of the dashboard."""

    max_body = MAX_SMALL_BODY
    # An answer found in prepare, sent once the body is in (even an empty
    # one): tornado closes the connection after an answer given before the
    # body was read, and the proxy, which keeps connections open, may
    # already be sending the next request on it (and answers that one 503).
    refusal: Exception | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in HTTP_METHODS:
            if name in cls.__dict__:
                setattr(cls, name, after_body(cls.__dict__[name]))

    def initialize(self, context: DashboardContext):
        self.context = context
        self.hub_auth = context.hub_auth

    async def prepare(self):
        self._body = bytearray()
        self._body_done = False
        # a form carries its XSRF token in its body: its login waits for
        # the (small) body; everything else logs in before reading a byte
        self._login_after_body = self.has_body() and self.content_type() in FORM_TYPES
        try:
            if not self._login_after_body:
                await self.log_in()
                await self.check_login()
            await self.start_body()
        except (web.HTTPError, KarvdashError, LoginNeeded) as refusal:
            self.refusal = refusal

    def has_body(self) -> bool:
        headers = self.request.headers
        return headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in headers

    def content_type(self) -> str:
        return self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()

    async def check_login(self) -> None:
        """Refuse (or send elsewhere) a request without the login it needs."""

    async def start_body(self) -> None:
        """Get ready for the body; by default a small one of at most ``max_body`` bytes."""
        length = self.request.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > self.max_body:
            raise KarvdashError(413, f"the body is too large: at most {self.max_body // 1024} KiB")

    def data_received(self, chunk: bytes):
        if self.refusal is not None:
            return  # read and dropped; the answer is the refusal
        if len(self._body) + len(chunk) > self.max_body:
            self.refusal = KarvdashError(413, f"the body is too large: at most {self.max_body // 1024} KiB")
            self._body = bytearray()
            return
        self._body += chunk

    async def body_received(self) -> None:
        """The body is in: answer a refusal, or make the body readable as
        tornado does for handlers that do not stream."""
        if self.refusal is not None:
            raise self.refusal
        if getattr(self, "_body_done", True):
            return
        self._body_done = True
        request = self.request
        request.body = bytes(self._body)
        self._body = bytearray()
        if self.content_type() in FORM_TYPES:
            httputil.parse_body_arguments(
                request.headers.get("Content-Type", ""), request.body, request.body_arguments, request.files,
                request.headers,
            )
            for name, values in request.body_arguments.items():
                request.arguments.setdefault(name, []).extend(values)
        if self._login_after_body:
            await self.log_in()
            await self.check_login()

    async def log_in(self):
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

    def set_location(self, *parts: str) -> None:
        """``Location`` of what the request created, at ``parts`` of the
        dashboard's address: every name percent-encoded (a header is Latin-1,
        a name any Unicode) and ``?as=`` kept when acting as someone."""
        path = self.context.url(*("/".join(quote(name, safe=":@") for name in part.split("/")) for part in parts))
        acting = getattr(self, "_acting_user", None)
        if acting and self.current_user and acting != self.username:
            path += "?" + urlencode({"as": acting})
        self.set_header("Location", path)

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
        if isinstance(e, LoginNeeded):
            if not self._finished:
                self.redirect(self.get_login_url())
            return
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

    async def check_login(self):
        if self.current_user is None:
            if await self.cookie_logs_in():
                # the login cookie is good: what failed is the XSRF check
                raise KarvdashError(403, XSRF_REFUSAL)
            raise KarvdashError(401, "authentication required: log in, or send a hub API token in the Authorization header")

    async def cookie_logs_in(self) -> bool:
        """Whether the request's login cookie holds a token the hub still
        accepts (checked without the XSRF test, which the login did)."""
        token = self.get_secure_cookie(self.hub_auth.cookie_name)
        if not token:
            return False
        model = await self.hub_auth.user_for_token(
            token.decode("ascii", "replace"), session_id=self.hub_auth.get_session_id(self), sync=False
        )
        return model is not None

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
        except RecursionError:
            raise KarvdashError(400, "the body is nested too deeply to be read as JSON") from None
        if not isinstance(body, dict):
            raise KarvdashError(400, "the body must be a JSON object")
        return body

    def write_json(self, value, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(value))

    def detached_answer(self, value, status: int) -> bytes:
        """The bytes of ``write_json``'s answer, for a connection taken over
        from Tornado (``detach``), which is closed after it."""
        body = json.dumps(value).encode()
        headers = {
            "Content-Type": "application/json; charset=UTF-8",
            "Cache-Control": "no-store",
            "Date": httputil.format_timestamp(time.time()),
            "Content-Length": str(len(body)),
            "Connection": "close",
        }
        head = f"HTTP/1.1 {status} {httputil.responses.get(status, 'Unknown')}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return (head + "\r\n").encode("latin-1") + body

    def write_error(self, status_code: int, **kwargs):
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        message = self.error_message(status_code, kwargs.get("exc_info"))
        extra = getattr(kwargs.get("exc_info", (None, None))[1], "extra", None)
        self.finish(json.dumps(self.error_body(status_code, message, extra or {})))

    def error_body(self, status_code: int, message: str, extra: dict) -> dict:
        """The error's JSON body; an API with another error shape (Karvdash
        2.x's) says so here."""
        return {"status": status_code, "message": message, **extra}


class PageHandler(DashboardHandler):
    """An HTML page in the hub's look; anonymous people go to the hub's login."""

    async def check_login(self):
        if self.current_user is None:
            if self.request.method in ("GET", "HEAD"):
                raise LoginNeeded()
            raise web.HTTPError(403)

    def set_default_headers(self):
        # after logging out, Back must not show a page from the browser's cache
        self.set_header("Cache-Control", "no-store")

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


