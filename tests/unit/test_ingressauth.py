"""Who may open a protected service: cookie, decision and redirect rules."""

from __future__ import annotations

import time

import pytest
from tornado.web import create_signed_value

from karvdash_hub.services import ingressauth as ia

SECRET = b"s" * 32
USERS = {
    "alice": ia.HubUser("alice"),
    "bob": ia.HubUser("bob"),
    "root": ia.HubUser("root", admin=True),
    "gone": None,
    "carol": ia.HubUser("carol", deactivated=True),
}


async def lookup(name):
    return USERS.get(name)


@pytest.mark.parametrize(
    "requester, allow_admins, status, reason",
    [
        ("alice", False, 200, "owner"),
        ("bob", False, 403, "this service belongs to another user"),
        ("root", False, 403, "this service belongs to another user"),
        ("root", True, 200, "administrator"),
        ("carol", False, 403, "the account carol is deactivated"),
        ("gone", False, 401, "no account gone"),
        (None, False, 401, "not signed in"),
    ],
)
async def test_answers(requester, allow_admins, status, reason):
    cookie = ia.cookie_value(SECRET, requester) if requester else None
    owner = "carol" if requester == "carol" else "alice"
    decision = await ia.check(cookie, owner, SECRET, lookup, allow_admins=allow_admins)
    assert (decision.status, decision.reason) == (status, reason)
    assert decision.allowed == (status == 200)


async def test_forged_and_expired_cookies_count_as_anonymous():
    assert (await ia.check("alice", "alice", SECRET, lookup)).status == 401
    other_secret = ia.cookie_value(b"x" * 32, "alice")
    assert (await ia.check(other_secret, "alice", SECRET, lookup)).status == 401
    tampered = ia.cookie_value(SECRET, "alice").replace("YWxpY2U", "Ym9iYm9i")
    assert (await ia.check(tampered, "bob", SECRET, lookup)).status == 401
    old = create_signed_value(SECRET, ia.COOKIE_NAME, "alice", clock=lambda: time.time() - 86400).decode()
    assert ia.user_from_cookie(SECRET, old) is None
    assert ia.user_from_cookie(SECRET, ia.cookie_value(SECRET, "alice")) == "alice"


@pytest.mark.parametrize(
    "target, allowed",
    [
        ("https://web-alice.example.com/path?q=1", True),
        ("http://example.com/", True),
        ("https://example.com.evil.org/", False),
        ("https://evilexample.com/", False),
        ("javascript:alert(1)", False),
        ("//web-alice.example.com/", False),
        ("https://user:pw@web-alice.example.com/", False),
        ("", False),
    ],
)
def test_sign_in_redirects_only_to_the_ingress_domain(target, allowed):
    assert (ia.safe_redirect(target, "example.com") == target) is allowed


def test_user_models_and_urls():
    assert ia.user_from_model({"name": "a", "admin": True, "groups": []}) == ia.HubUser("a", admin=True)
    assert ia.user_from_model({"name": "a", "groups": [ia.DEACTIVATED_GROUP]}).deactivated
    assert ia.cookie_domain("https://example.com") == "example.com"
    assert ia.auth_annotations_urls("https://h/check/", "https://h/signin", "alice", "web") == (
        "https://h/check/alice/web", "https://h/signin")


async def test_lookup_caches_briefly_and_shares_requests():
    calls = []
    now = [100.0]

    class Lookup(ia.HubUserLookup):
        async def _fetch(self, name):
            calls.append(name)
            return ia.HubUser(name)

    cached = Lookup("http://hub/api", "token", ttl=2.0, clock=lambda: now[0])
    import asyncio

    users = await asyncio.gather(cached("alice"), cached("alice"), cached("alice"))
    assert users == [ia.HubUser("alice")] * 3 and calls == ["alice"]
    now[0] += 1.9
    await cached("alice")
    assert calls == ["alice"]
    now[0] += 0.2
    await cached("alice")
    assert calls == ["alice", "alice"]
