"""Accounts: sign-up with admin approval (default) or single sign-on.

:class:`KarvdashAuthenticator` is NativeAuthenticator with the original's
rules (usernames of lowercase letters and digits, a unique email), one clear
message per sign-up mistake, an administrator account created at start-up,
and approval actions that change state only on POST (with the XSRF check)
instead of on a GET link.
"""

from __future__ import annotations

import os
import re
import secrets
import unicodedata
from pathlib import Path

import bcrypt
from jupyterhub import orm
from jupyterhub.handlers.login import LoginHandler
from jupyterhub.scopes import needs_scope
from jupyterhub.utils import new_token
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.handlers import SignUpHandler
from nativeauthenticator.orm import UserInfo
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthCallbackHandler
from tornado import web
from traitlets import Instance, default

from karvdash_hub.accounts import store as accounts
from karvdash_hub.accounts.imports import email_problem
from karvdash_hub.core.settings import USERNAME_PATTERN, KarvdashConfig
from karvdash_hub.migration import passwords
from karvdash_hub.services.ingressauth import DEACTIVATED_GROUP

from . import deployment
from .accountpages import SignUpsPage, account_handlers
from .theme import theme_handlers
from .tokens import token_handlers

ADMIN_PASSWORD_FILE = "admin-password"


def admin_password(settings: KarvdashConfig) -> tuple[str, Path | None, bool]:
    """The administrator's initial password: (password, file, newly generated).

    From ``adminPassword`` if set; otherwise generated once and kept in
    ``<stateDir>/admin-password``, readable by the hub's OS user only.
    """
    if settings.adminPassword:
        return settings.adminPassword, None, False
    path = Path(settings.stateDir) / ADMIN_PASSWORD_FILE
    try:
        return path.read_text().strip(), path, False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(15)
    # O_EXCL: two processes starting at once must not write two passwords
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password, path, True


class KarvdashLoginHandler(LoginHandler):
    """The hub's own login handler, telling apart a sign-up that waits for
    approval from a wrong password."""

    def _render(self, login_error=None, username=None, **kwargs):
        # only the hub's answer to a failed login; other errors (an expired
        # form, say) keep their own words
        if login_error == "Invalid username or password" and self.request.method == "POST":
            info = self.authenticator.get_user(username or "")
            password = self.get_body_argument("password", "", strip=False)
            if info is not None and not info.is_authorized and passwords.matches(info, password):
                login_error = "Your account waits for an administrator's approval."
            else:
                login_error = "Wrong username or password."
        return super()._render(login_error=login_error, username=username, **kwargs)


class KarvdashSignUpHandler(SignUpHandler):
    """Sign-up that names the problem and keeps what the person typed."""

    async def post(self):
        if not self.authenticator.enable_signup:
            raise web.HTTPError(404)
        # as typed: a name with spaces around it is refused, not trimmed into another
        username = self.get_body_argument("username", "", strip=False)
        email = self.get_body_argument("email", "", strip=True)
        password = self.get_body_argument("signup_password", "", strip=False)
        confirmation = self.get_body_argument("signup_password_confirmation", "", strip=False)
        problem = self.authenticator.signup_problem(username, email, password, confirmation)
        if problem:
            self.set_status(400)
            html = await self.render_template(
                "signup.html",
                ask_email=True,
                alert="alert-danger",
                result_message=problem,
                username=username,
                email=email,
                tos=self.authenticator.tos,
                recaptcha_key=self.authenticator.recaptcha_key,
                two_factor_auth=self.authenticator.allow_2fa,
            )
            self.finish(html)
            return
        await super().post()


# What the Sign-ups page says after an action (the redirect names it, so a
# reload says it again but does it again never).
SIGNUP_ACTIONS = {
    "approved": "{user} is approved and can log in.",
    "revoked": "{user}'s approval is revoked: their servers are stopped and their tokens and logins no longer work.",
    "discarded": "The sign-up of {user} is discarded.",
    "email": "{user}'s email address is changed.",
    "password": "{user}'s password is set, and every browser logged in as {user} is logged out.",
}


# the Sign-ups page, one page of accounts at a time (accountpages.py)
SignUpsBase = SignUpsPage


class SignUpsHandler(SignUpsBase):
    @needs_scope("admin:users")
    async def get(self):
        action = self.get_query_argument("done", "")
        username = self.get_query_argument("user", "")
        message = SIGNUP_ACTIONS[action].format(user=username) if action in SIGNUP_ACTIONS and username else ""
        await self.render_signups(alert="alert-success" if message else "", message=message)


class ToggleAuthorizationHandler(SignUpsBase):
    """Approve or revoke an account: POST only, so a link cannot do it.

    Revoking deactivates at once, not at the next login: the user's servers
    stop, their API tokens and login cookies stop working, and they join the
    hub group that protected services refuse. Approving again undoes the group.
    """

    @needs_scope("admin:users")
    async def post(self, username):
        info = self.authenticator.get_user(username)
        if info is None:
            return await self.refuse(404, f"There is no sign-up named {username}.")
        if info.is_authorized and username == self.current_user.name:
            return await self.refuse(400, "You cannot revoke your own account: another administrator has to.")
        info = UserInfo.change_authorization(self.db, username)
        user = self.users.get(username)
        if user is not None:
            if info.is_authorized:
                self._set_deactivated(user, False)
            else:
                await self._deactivate(user)
        self.done("approved" if info.is_authorized else "revoked", username)

    async def _deactivate(self, user) -> None:
        self._set_deactivated(user, True)
        for token in list(user.orm_user.api_tokens):
            self.db.delete(token)
        # a new cookie id invalidates every login cookie the user holds
        user.orm_user.cookie_id = new_token()
        self.db.commit()
        for name, spawner in list(user.spawners.items()):
            if spawner.active:
                await self.stop_single_user(user, name)
        self.log.info("Deactivated %s: servers stopped, tokens and cookies revoked", user.name)

    def _set_deactivated(self, user, deactivated: bool) -> None:
        group = orm.Group.find(self.db, DEACTIVATED_GROUP)
        if group is None:
            group = orm.Group(name=DEACTIVATED_GROUP)
            self.db.add(group)
        members = group.users
        if deactivated and user.orm_user not in members:
            members.append(user.orm_user)
        elif not deactivated and user.orm_user in members:
            members.remove(user.orm_user)
        self.db.commit()


class DiscardHandler(SignUpsBase):
    """Discard a sign-up that was never approved: POST only."""

    @needs_scope("admin:users")
    async def post(self, username):
        info = self.authenticator.get_user(username)
        if info is None:
            return await self.refuse(404, f"There is no sign-up named {username}.")
        if info.is_authorized:
            return await self.refuse(400, f"{username} is approved: revoke the approval before discarding the account.")
        self.authenticator.delete_user(type("User", (), {"name": username}))
        if self.users.get(username) is not None:
            self.users.delete(username)
        self.done("discarded", username)


class KarvdashAuthenticator(NativeAuthenticator):
    """Hub accounts with sign-up, admin approval and password change."""

    karvdash_settings = Instance(KarvdashConfig, help="The deployment settings.")

    @default("karvdash_settings")
    def _default_karvdash_settings(self):
        return deployment.current().settings

    @default("username_pattern")
    def _default_username_pattern(self):
        return USERNAME_PATTERN

    @default("ask_email_on_signup")
    def _default_ask_email(self):
        return True

    @default("check_common_password")
    def _default_check_common(self):
        return True

    @default("minimum_password_length")
    def _default_min_length(self):
        return self.karvdash_settings.minimumPasswordLength

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # a sign-up's email check and a login's account are one look-up in these
        accounts.ensure_indexes(self.db)
        self.ensure_admin_account()

    def ensure_admin_account(self) -> None:
        """Create the administrator's account on first start (approved)."""
        name = self.karvdash_settings.adminUsername
        self.admin_users = set(self.admin_users) | {name}
        if self.get_user(name) is not None:
            return
        password, path, generated = admin_password(self.karvdash_settings)
        info = UserInfo(username=name, password=bcrypt.hashpw(password.encode(), bcrypt.gensalt()), is_authorized=True)
        self.db.add(info)
        self.db.commit()
        where = f" (stored in {path})" if path else ""
        self.log.info("Created the administrator account %r%s", name, where)

    async def authenticate(self, handler, data):
        # An account brought over from Karvdash keeps its Django hash until
        # its first successful login, when it gets the bcrypt hash instead
        # (NativeAuthenticator's check cannot read a Django hash).
        info = self.get_user(data.get("username", ""))
        if info is not None and passwords.is_django_hash(info.password):
            if not info.is_authorized or not passwords.upgrade(self.db, info, data.get("password", "")):
                self.add_login_attempt(info.username)
                return None
            self.log.info("Password of %s, migrated from Karvdash, re-hashed", info.username)
        return await super().authenticate(handler, data)

    def signup_problem(self, username: str, email: str, password: str, confirmation: str) -> str:
        """What is wrong with a sign-up, in words for the person ('' if nothing).

        The name must be exactly what the account is called: nothing is
        trimmed or lowered on the way (tornado turns NUL and other control
        characters of a form into spaces)."""
        normalized = self.normalize_username(username)
        if not username.strip():
            return "Choose a username."
        if any(character.isspace() or unicodedata.category(character).startswith("C") for character in username):
            return "A username cannot contain spaces or control characters (nor start or end with them)."
        if username != username.lower():
            return f"A username has lowercase letters and digits only: {username!r} has capitals."
        if normalized != username or not re.match(self.username_pattern, username):
            return "A username has 1 to 32 characters, lowercase letters and digits only."
        if self.user_exists(normalized):
            return f"The username {normalized!r} is taken; choose another."
        if email_problem(email or ""):
            return "Enter a valid email address."
        if self.email_taken(email):
            return "An account with this email address exists already."
        if password != confirmation:
            return "The password and its confirmation do not match."
        if len(password) < self.minimum_password_length:
            return f"The password needs at least {self.minimum_password_length} characters."
        if self.check_common_password and self.is_password_common(password):
            return "This password is too common; choose another."
        return ""

    def email_taken(self, email: str) -> bool:
        return accounts.email_taken(self.db, email)

    def get_authed_users(self):
        return accounts.ApprovedNames(self.db, set(self.allowed_users) | set(self.admin_users))

    def create_user(self, username, password, **kwargs):
        email = kwargs.get("email") or ""
        if self.email_taken(email):
            return None
        return super().create_user(username, password, **kwargs)

    def get_handlers(self, app):
        replaced = {
            r"/login": KarvdashLoginHandler,
            r"/signup": KarvdashSignUpHandler,
            r"/authorize": SignUpsHandler,
            r"/authorize/([^/]*)": ToggleAuthorizationHandler,
            r"/discard/([^/]*)": DiscardHandler,
        }
        native = [(path, replaced.get(path, handler)) for path, handler in super().get_handlers(app)]
        # ours first: the admin password page replaces NativeAuthenticator's
        return [*token_handlers(), *theme_handlers(), *account_handlers(), *native]


class LoginRefused(web.HTTPError):
    """The provider vouched for the person, but this hub does not let them in."""

    def __init__(self, reason: str, username: str = "", groups: list[str] | None = None):
        super().__init__(403, reason)
        self.reason_text = reason
        self.username = username
        self.groups = groups


class KarvdashOAuthCallbackHandler(OAuthCallbackHandler):
    """The provider's callback: a refused login gets a page that says why,
    instead of a bare 403."""

    async def get(self):
        try:
            await super().get()
        except LoginRefused as refused:
            await self._refuse(refused)
        except web.HTTPError as error:
            # login_user gave no user (a blocked name, say): the same page
            if error.status_code != 403:
                raise
            await self._refuse(LoginRefused(self.authenticator.custom_403_message))

    async def _refuse(self, refused: LoginRefused) -> None:
        self.set_status(403)
        html = await self.render_template(
            "login-refused.html",
            refusal=refused.reason_text,
            refused_username=refused.username,
            provider_groups=refused.groups,
            login_service=self.authenticator.login_service,
        )
        self.finish(html)


class KarvdashOAuthenticator(GenericOAuthenticator):
    """Single sign-on through an OAuth2 / OpenID Connect provider.

    Provider settings are GenericOAuthenticator's own traits (groups:
    ``manage_groups``, ``auth_state_groups_key``, ``allowed_groups``,
    ``admin_groups``); usernames from the provider must still be lowercase
    letters and digits, because they name folders and namespaces. A person
    the hub refuses sees why (``login-refused.html``).
    """

    callback_handler = KarvdashOAuthCallbackHandler

    def get_handlers(self, app):
        return [*token_handlers(), *theme_handlers(), *super().get_handlers(app)]

    @default("username_pattern")
    def _default_username_pattern(self):
        return USERNAME_PATTERN

    # JupyterHub compiles username_pattern only when it is set, not for a
    # default: without this, validate_username lets every name through.
    @default("username_regex")
    def _default_username_regex(self):
        return re.compile(self.username_pattern)

    async def authenticate(self, handler, data=None, **kwargs):
        auth_model = await super().authenticate(handler, data, **kwargs)
        name = self.normalize_username(auth_model["name"])
        if not self.validate_username(name):
            self.log.warning("Refused %r: not a username of this hub", name)
            raise LoginRefused(
                f"{self.login_service} names your account {name!r}, but names on this hub are "
                "1 to 32 lowercase letters and digits: ask an administrator to check the hub's username_claim.",
                username=name,
                groups=auth_model.get("groups"),
            )
        return auth_model

    async def check_allowed(self, username, auth_model):
        if await super().check_allowed(username, auth_model):
            return True
        groups = (auth_model or {}).get("groups")
        self.log.warning("Refused %s (groups %s): not allowed on this hub", username, groups)
        raise LoginRefused(self.refusal_reason(), username=username, groups=groups)

    def refusal_reason(self) -> str:
        """Why a person the provider vouched for may not use this hub."""
        wanted = set(self.allowed_groups) | set(self.admin_groups) if self.manage_groups else set()
        if wanted:
            return f"Your account is not in a group allowed on this hub: {', '.join(sorted(wanted))}."
        return self.custom_403_message

