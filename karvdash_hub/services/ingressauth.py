"""Who may open a protected service: the logic of the dashboard's
ingress-auth endpoint.

Ingresses of protected services carry ingress-nginx's ``auth-url`` and
``auth-signin`` annotations. For every request to such a service,
ingress-nginx asks ``auth-url`` (with the request's cookies); 2xx lets the
request through, 401 sends the browser to ``auth-signin``, 403 refuses.

A service's host (``<name>-<user>.<domain>``) does not see the hub's
cookies, so the sign-in page (behind the hub's login) sets a cookie for the
whole ingress domain that names the user, signed with the dashboard's
secret. The check then asks the hub about that user on every call (with a
cache of a few seconds at most), so a deleted or deactivated account loses
access at once, whatever its cookie says.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import quote, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.web import create_signed_value, decode_signed_value

COOKIE_NAME = "karvdash-service-auth"
# how long a sign-in lasts before the browser passes by the hub again
COOKIE_MAX_AGE_DAYS = 0.5
# The hub group of deactivated accounts: members keep their data but lose
# access to their services at once.
DEACTIVATED_GROUP = "karvdash-deactivated"
# The longest a hub answer about a user is reused.
USER_CACHE_SECONDS = 2.0
# the endpoint's paths below the dashboard's prefix
CHECK_PATH = "ingress-auth/check"
SIGNIN_PATH = "ingress-auth/signin"


@dataclass(frozen=True)
class HubUser:
    name: str
    admin: bool = False
    deactivated: bool = False


@dataclass(frozen=True)
class Decision:
    status: int
    reason: str
    user: str | None = None

    @property
    def allowed(self) -> bool:
        return 200 <= self.status < 300


# --- the cookie -----------------------------------------------------------------------------


def cookie_value(secret: bytes, username: str) -> str:
    return create_signed_value(secret, COOKIE_NAME, username).decode("ascii")


def user_from_cookie(secret: bytes, value: str | None, max_age_days: float = COOKIE_MAX_AGE_DAYS) -> str | None:
    """The user a cookie names, or None if absent, forged or expired."""
    if not value:
        return None
    decoded = decode_signed_value(secret, COOKIE_NAME, value, max_age_days=max_age_days)
    return decoded.decode("utf-8") if decoded else None


def cookie_domain(ingress_url: str) -> str:
    """The ingress domain, for which the cookie is set (all service hosts are below it)."""
    return urlsplit(ingress_url).hostname or ""


# --- the decision ----------------------------------------------------------------------------


def decide(requester: HubUser | None, owner: str, allow_admins: bool = False) -> Decision:
    if requester is None:
        return Decision(401, "not signed in")
    if requester.deactivated:
        return Decision(403, f"the account {requester.name} is deactivated", requester.name)
    if requester.name == owner:
        return Decision(200, "owner", requester.name)
    if allow_admins and requester.admin:
        return Decision(200, "administrator", requester.name)
    return Decision(403, "this service belongs to another user", requester.name)


async def check(
    cookie: str | None,
    owner: str,
    secret: bytes,
    lookup: Callable[[str], Awaitable[HubUser | None]],
    allow_admins: bool = False,
) -> Decision:
    """The answer for a request to a service of ``owner`` carrying ``cookie``."""
    name = user_from_cookie(secret, cookie)
    if name is None:
        return Decision(401, "not signed in")
    requester = await lookup(name)
    if requester is None:
        # the account is gone: its cookie is worth nothing
        return Decision(401, f"no account {name}")
    return decide(requester, owner, allow_admins)


def safe_redirect(target: str, domain: str) -> str | None:
    """``target`` if it is an http(s) URL on the ingress domain or below it,
    else None (the sign-in page must not redirect anywhere else)."""
    if not target or not domain:
        return None
    parts = urlsplit(target)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or parts.username or parts.password:
        return None
    if host == domain or host.endswith("." + domain):
        return target
    return None


# --- asking the hub --------------------------------------------------------------------------


class HubUserLookup:
    """Looks users up in the hub's REST API with the dashboard's token.

    Answers are reused for at most ``ttl`` seconds; concurrent checks of the
    same user share one request. Needs the scopes ``read:users:name`` and
    ``read:users:groups``.
    """

    def __init__(self, api_url: str, api_token: str, ttl: float = USER_CACHE_SECONDS, clock=time.monotonic):
        self.api_url = api_url.rstrip("/")
        self.api_token = api_token
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, HubUser | None]] = {}
        self._pending: dict[str, asyncio.Future] = {}

    async def __call__(self, name: str) -> HubUser | None:
        cached = self._cache.get(name)
        if cached and self.clock() - cached[0] < self.ttl:
            return cached[1]
        if name in self._pending:
            return await asyncio.shield(self._pending[name])
        future = asyncio.get_running_loop().create_future()
        self._pending[name] = future
        try:
            user = await self._fetch(name)
        except Exception as error:
            future.set_exception(error)
            future.exception()  # consumed here; waiters re-raise it
            raise
        else:
            future.set_result(user)
            self._cache[name] = (self.clock(), user)
            return user
        finally:
            del self._pending[name]

    async def _fetch(self, name: str) -> HubUser | None:
        try:
            response = await AsyncHTTPClient().fetch(
                f"{self.api_url}/users/{quote(name, safe='')}",
                headers={"Authorization": f"token {self.api_token}"},
                request_timeout=10,
            )
        except HTTPClientError as error:
            if error.code == 404:
                return None
            raise
        return user_from_model(json.loads(response.body))


def user_from_model(model: dict) -> HubUser:
    """A hub user model (``GET /hub/api/users/<name>``) as a :class:`HubUser`."""
    return HubUser(
        name=model["name"],
        admin=bool(model.get("admin")),
        deactivated=DEACTIVATED_GROUP in (model.get("groups") or []),
    )


# --- what goes on the ingresses --------------------------------------------------------------


def auth_annotations_urls(check_base: str, signin_base: str, owner: str, instance: str) -> tuple[str, str]:
    """(auth-url, auth-signin) for the ingresses of ``owner``'s ``instance``.

    ingress-nginx adds ``?rd=<the original URL>`` to auth-signin itself.
    """
    auth_url = f"{check_base.rstrip('/')}/{quote(owner, safe='')}/{quote(instance, safe='')}"
    return auth_url, signin_base
