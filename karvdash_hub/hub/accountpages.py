"""Administrators' account management in the hub: the Sign-ups page one
page at a time (searched and sorted by the database), an account's email,
an account's password, bulk imports, and the same as a JSON API.

Pages (forms with the XSRF token, answered by the page with a message):

- ``GET /hub/authorize?search=&sort=&order=&state=&limit=&offset=``
- ``POST /hub/authorize/<name>/email`` (``email``)
- ``GET|POST /hub/change-password/<name>`` (``new_password``, ``new_password_confirmation``)
- ``POST /hub/import-accounts`` (a CSV or JSON file ``accounts``, ``state``)

API (hub token or cookie with ``X-XSRFToken``; scope ``admin:users``):

- ``GET /hub/api/accounts?...`` a page: ``total``, ``accounts``, ``next_offset``
- ``POST /hub/api/accounts?state=pending|approved`` a CSV (``text/csv``) or
  JSON import; the answer lists created and refused rows
- ``GET|PATCH /hub/api/accounts/<name>`` (``{"email": ...}``)
- ``PUT /hub/api/accounts/<name>/password`` (``{"password": ...}``)

Setting a password logs the account out of every browser
(:func:`karvdash_hub.accounts.store.end_browser_sessions`): whoever had a
session with the old password loses it; API tokens stay.
"""

from __future__ import annotations

import json
import sys
from urllib.parse import quote, urlencode

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope
from nativeauthenticator.handlers import LocalBase
from tornado import web

from karvdash_hub.accounts import store
from karvdash_hub.accounts.imports import parse_import
from karvdash_hub.accounts.listing import Listing, parse_listing
from karvdash_hub.core.errors import KarvdashError
from karvdash_hub.theme.signups import actions_form, signup_rows

from .cookielogin import CookieLoginWithoutReloads

IMPORT_STATES = {"pending": False, "approved": True}


def _arguments(handler: web.RequestHandler) -> dict[str, str]:
    """The query arguments, each given once."""
    arguments = {}
    for name, values in handler.request.query_arguments.items():
        if len(values) != 1:
            raise KarvdashError(400, f"Give {name} once.")
        arguments[name] = values[0].decode("utf-8", "replace")
    return arguments


def _import_state(raw: str) -> bool:
    if raw not in IMPORT_STATES:
        raise KarvdashError(400, f"state of imported accounts is pending or approved, not {raw!r}.")
    return IMPORT_STATES[raw]


def password_problem(authenticator, password: str, confirmation: str | None = None) -> str:
    """What is wrong with a new password, in words ('' if nothing)."""
    if confirmation is not None and password != confirmation:
        return "The password and its confirmation do not match."
    if len(password) < authenticator.minimum_password_length:
        return f"The password needs at least {authenticator.minimum_password_length} characters."
    if authenticator.check_common_password and authenticator.is_password_common(password):
        return "This password is too common; choose another."
    return ""


def set_password(handler, username: str, password: str, confirmation: str | None = None) -> int:
    """Set ``username``'s password and end their browser sessions; returns
    how many session tokens ended."""
    store.find(handler.db, username)
    problem = password_problem(handler.authenticator, password, confirmation)
    if problem:
        raise KarvdashError(400, problem)
    if not handler.authenticator.change_password(username, password):
        raise KarvdashError(400, "The password cannot be used; choose another.")
    user = handler.users.get(username)
    ended = store.end_browser_sessions(handler.db, user.orm_user) if user is not None else 0
    handler.log.info("%s set the password of %s; %d browser sessions ended", handler.current_user.name, username, ended)
    return ended


class SignUpsPage(CookieLoginWithoutReloads, LocalBase):
    """The Sign-ups page, rendered for the listing of the request's query."""

    def compute_etag(self):
        # no ETag: a page of forms made for this request is not served from
        # a cache, and Tornado's is a hash of the whole page (70 kB)
        return None

    async def render_signups(self, status: int = 200, alert: str = "", message: str = "", report=None) -> None:
        try:
            # done and user name the last action (auth.SIGNUP_ACTIONS), not the listing
            arguments = {k: v for k, v in _arguments(self).items() if k not in ("done", "user")}
            listing = parse_listing(arguments)
        except KarvdashError as error:
            listing = Listing()
            status, alert, message = error.status, "alert-danger", error.message
        self.set_status(status)
        html = await self.render_template(
            "authorization-area.html",
            ask_email=self.authenticator.ask_email_on_signup,
            page=store.page(self.db, listing),
            listing=listing,
            alert=alert,
            result_message=message,
            report=report,
            signup_rows=signup_rows,
            signup_actions_form=actions_form,
        )
        self.finish(html)

    async def refuse(self, status: int, message: str) -> None:
        """A refusal is the page with the reason, not a bare error page."""
        await self.render_signups(status, "alert-danger", message)

    def done(self, action: str, username: str) -> None:
        """Back to the page the form was on, saying what was done."""
        query = self.request.query
        done = urlencode({"done": action, "user": username})
        self.redirect(f"{self.hub.base_url}authorize?{query + '&' if query else ''}{done}#{quote(username)}")


class EmailHandler(SignUpsPage):
    @needs_scope("admin:users")
    async def post(self, username):
        try:
            store.set_email(self.db, username, self.get_body_argument("email", ""))
        except KarvdashError as error:
            return await self.refuse(error.status, error.message)
        self.done("email", username)


class AdminPasswordHandler(SignUpsPage):
    """An account's password, set by an administrator (NativeAuthenticator's
    page, with a reason for every refusal and the sessions ended)."""

    async def _form(self, username: str, status: int = 200, message: str = "") -> None:
        self.set_status(status)
        html = await self.render_template(
            "change-password-admin.html", user_name=username,
            alert="alert-danger" if message else "", result_message=message,
        )
        self.finish(html)

    @needs_scope("admin:users")
    async def get(self, username):
        if self.authenticator.get_user(username) is None:
            return await self.refuse(404, f"There is no account named {username}.")
        await self._form(username)

    @needs_scope("admin:users")
    async def post(self, username):
        if self.authenticator.get_user(username) is None:
            return await self.refuse(404, f"There is no account named {username}.")
        password = self.get_body_argument("new_password", "", strip=False)
        confirmation = self.get_body_argument("new_password_confirmation", "", strip=False)
        try:
            set_password(self, username, password, confirmation)
        except KarvdashError as error:
            return await self._form(username, error.status, error.message)
        self.done("password", username)


class ImportPageHandler(SignUpsPage):
    @needs_scope("admin:users")
    async def post(self):
        try:
            files = self.request.files.get("accounts") or []
            if len(files) != 1:
                raise KarvdashError(400, "Choose one CSV or JSON file to import.")
            upload = files[0]
            try:
                text = upload.body.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise KarvdashError(400, "The file is not UTF-8 text.") from None
            kind = "json" if upload.filename.lower().endswith(".json") or text.lstrip().startswith(("[", "{")) else "csv"
            rows, refused = parse_import(text, kind)
            approved = _import_state(self.get_body_argument("state", "pending"))
            report = store.import_accounts(self.db, rows, refused, approved=approved)
        except KarvdashError as error:
            return await self.refuse(error.status, error.message)
        message = f"Imported {len(report.created)} accounts ({report.as_json()['state']})"
        message += f"; {len(report.refused)} rows refused." if report.refused else "."
        await self.render_signups(200, "alert-warning" if report.refused else "alert-success", message, report)


# --- the API ---------------------------------------------------------------------------


class AccountsAPIBase(CookieLoginWithoutReloads, APIHandler):
    """A KarvdashError is answered as ``{"status": ..., "message": ...}``."""

    def _handle_request_exception(self, e):
        if isinstance(e, KarvdashError):
            self.log.info("%s %s: %s %s", self.request.method, self.request.path, e.status, e.message)
            self.send_error(e.status, exc_info=sys.exc_info())
            return
        super()._handle_request_exception(e)

    def write_error(self, status_code, **kwargs):
        error = kwargs.get("exc_info", (None, None))[1]
        if isinstance(error, KarvdashError):
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"status": status_code, "message": error.message, **error.extra}))
            return
        super().write_error(status_code, **kwargs)

    def json_body(self) -> dict:
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError:
            raise KarvdashError(400, "The body is not JSON.") from None
        if not isinstance(body, dict):
            raise KarvdashError(400, "The body must be a JSON object.")
        return body


class AccountsAPIHandler(AccountsAPIBase):
    def check_post_content_type(self):
        # JupyterHub lets a browser session POST JSON only; a CSV is no form
        # a page of another site can send either (and the XSRF token is checked)
        kind = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        return kind == "text/csv" or super().check_post_content_type()

    @needs_scope("admin:users")
    async def get(self):
        self.finish(store.page(self.db, parse_listing(_arguments(self))).as_json())

    @needs_scope("admin:users")
    async def post(self):
        arguments = _arguments(self)
        approved = _import_state(arguments.get("state", "pending"))
        kind = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        kinds = {"text/csv": "csv", "application/json": "json"}
        if kind not in kinds:
            raise KarvdashError(415, "Send the accounts as text/csv or application/json.")
        try:
            text = self.request.body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise KarvdashError(400, "The body is not UTF-8 text.") from None
        rows, refused = parse_import(text, kinds[kind])
        report = store.import_accounts(self.db, rows, refused, approved=approved)
        self.set_status(201 if report.created else 200)
        self.finish(report.as_json())


class AccountAPIHandler(AccountsAPIBase):
    @needs_scope("admin:users")
    async def get(self, username):
        self.finish(store.account_json(store.find(self.db, username)))

    @needs_scope("admin:users")
    async def patch(self, username):
        body = self.json_body()
        if set(body) != {"email"} or not isinstance(body["email"], str):
            raise KarvdashError(400, 'Send {"email": "<address>"}: the email is the field that can change here.')
        self.finish(store.account_json(store.set_email(self.db, username, body["email"])))


class AccountPasswordAPIHandler(AccountsAPIBase):
    @needs_scope("admin:users")
    async def put(self, username):
        body = self.json_body()
        if set(body) != {"password"} or not isinstance(body["password"], str):
            raise KarvdashError(400, 'Send {"password": "<new password>"}.')
        ended = set_password(self, username, body["password"])
        self.finish({"name": username, "sessions_ended": ended})


def account_handlers() -> list[tuple[str, type]]:
    """The routes above (NativeAuthenticator's own admin password page replaced)."""
    return [
        (r"/authorize/([^/]+)/email", EmailHandler),
        (r"/change-password/([^/]+)", AdminPasswordHandler),
        (r"/import-accounts", ImportPageHandler),
        (r"/api/accounts", AccountsAPIHandler),
        (r"/api/accounts/([^/]+)", AccountAPIHandler),
        (r"/api/accounts/([^/]+)/password", AccountPasswordAPIHandler),
    ]
