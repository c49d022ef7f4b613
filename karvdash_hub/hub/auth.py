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
from pathlib import Path

import bcrypt
from jupyterhub import orm
from jupyterhub.handlers.login import LoginHandler
from jupyterhub.scopes import needs_scope
from jupyterhub.utils import new_token
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.handlers import LocalBase, SignUpHandler
from nativeauthenticator.orm import UserInfo
from oauthenticator.generic import GenericOAuthenticator
from tornado import web
from traitlets import Instance, default

from karvdash_hub.core.settings import USERNAME_PATTERN, KarvdashConfig
from karvdash_hub.services.ingressauth import DEACTIVATED_GROUP

from . import deployment

EMAIL = re.compile(r"^[A-Za-z0-9.+_-]+@[A-Za-z0-9._-]+\.[A-Za-z]{2,}$")
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
            if info is not None and not info.is_authorized and info.is_valid_password(password):
                login_error = "Your account waits for an administrator's approval."
            else:
                login_error = "Wrong username or password."
        return super()._render(login_error=login_error, username=username, **kwargs)


class KarvdashSignUpHandler(SignUpHandler):
    """Sign-up that names the problem and keeps what the person typed."""

    async def post(self):
        if not self.authenticator.enable_signup:
            raise web.HTTPError(404)
        username = self.get_body_argument("username", "", strip=True)
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


class ToggleAuthorizationHandler(LocalBase):
    """Approve or revoke an account: POST only, so a link cannot do it.

    Revoking deactivates at once, not at the next login: the user's servers
    stop, their API tokens and login cookies stop working, and they join the
    hub group that protected services refuse. Approving again undoes the group.
    """

    @needs_scope("admin:users")
    async def post(self, username):
        info = self.authenticator.get_user(username)
        if info is None:
            raise web.HTTPError(404, f"No sign-up named {username}")
        if info.is_authorized and username == self.current_user.name:
            raise web.HTTPError(400, "You cannot revoke your own account")
        info = UserInfo.change_authorization(self.db, username)
        user = self.users.get(username)
        if user is not None:
            if info.is_authorized:
                self._set_deactivated(user, False)
            else:
                await self._deactivate(user)
        self.redirect(self.hub.base_url + "authorize#" + username)

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


class DiscardHandler(LocalBase):
    """Discard a sign-up that was never approved: POST only."""

    @needs_scope("admin:users")
    async def post(self, username):
        info = self.authenticator.get_user(username)
        if info is not None and not info.is_authorized:
            self.authenticator.delete_user(type("User", (), {"name": username}))
            if self.users.get(username) is not None:
                self.users.delete(username)
        self.redirect(self.hub.base_url + "authorize")


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

    def signup_problem(self, username: str, email: str, password: str, confirmation: str) -> str:
        """What is wrong with a sign-up, in words for the person ('' if nothing)."""
        normalized = self.normalize_username(username)
        if not username:
            return "Choose a username."
        if not re.match(self.username_pattern, normalized):
            return "A username has 1 to 32 characters, lowercase letters and digits only."
        if self.user_exists(normalized):
            return f"The username {normalized!r} is taken; choose another."
        if not EMAIL.match(email or ""):
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
        wanted = email.strip().lower()
        return any((info.email or "").lower() == wanted for info in UserInfo.all_users(self.db))

    def create_user(self, username, password, **kwargs):
        email = kwargs.get("email") or ""
        if self.email_taken(email):
            return None
        return super().create_user(username, password, **kwargs)

    def get_handlers(self, app):
        replaced = {
            r"/login": KarvdashLoginHandler,
            r"/signup": KarvdashSignUpHandler,
            r"/authorize/([^/]*)": ToggleAuthorizationHandler,
            r"/discard/([^/]*)": DiscardHandler,
        }
        return [(path, replaced.get(path, handler)) for path, handler in super().get_handlers(app)]


class KarvdashOAuthenticator(GenericOAuthenticator):
    """Single sign-on through an OAuth2 / OpenID Connect provider.

    Provider settings are GenericOAuthenticator's own traits; usernames from
    the provider must still be lowercase letters and digits, because they
    name folders and namespaces.
    """

    @default("username_pattern")
    def _default_username_pattern(self):
        return USERNAME_PATTERN

