"""Single sign-on refusals in words: who is refused and what they are told
(the browser test against a real Dex is tests/integration/test_sso_browser.py)."""

from __future__ import annotations

import asyncio

import pytest
from traitlets.config import Config

from karvdash_hub.hub.auth import KarvdashOAuthenticator, LoginRefused


def authenticator(**traits) -> KarvdashOAuthenticator:
    config = Config()
    for name, value in traits.items():
        setattr(config.GenericOAuthenticator, name, value)
    return KarvdashOAuthenticator(config=config)


def test_hub_usernames_are_enforced_without_setting_a_pattern():
    auth = authenticator()
    assert auth.validate_username("alice1")
    assert not auth.validate_username("dave.smith")
    assert not auth.validate_username("Alice")


def test_someone_outside_the_allowed_groups_is_told_which_groups_are():
    auth = authenticator(manage_groups=True, allowed_groups={"staff"}, admin_groups={"hub-admins"})
    with pytest.raises(LoginRefused) as refused:
        asyncio.run(auth.check_allowed("carol", {"name": "carol", "admin": False, "groups": ["guests"]}))
    assert refused.value.status_code == 403
    assert refused.value.reason_text == "Your account is not in a group allowed on this hub: hub-admins, staff."
    assert refused.value.groups == ["guests"]


def test_members_of_the_allowed_or_admin_groups_get_in():
    auth = authenticator(manage_groups=True, allowed_groups={"staff"}, admin_groups={"hub-admins"})
    assert asyncio.run(auth.check_allowed("alice", {"name": "alice", "admin": False, "groups": ["staff"]}))
    assert asyncio.run(auth.check_allowed("bob", {"name": "bob", "admin": True, "groups": ["hub-admins"]}))


def test_without_groups_the_refusal_is_the_configured_message():
    auth = authenticator(custom_403_message="Ask the lab for an account.")
    with pytest.raises(LoginRefused) as refused:
        asyncio.run(auth.check_allowed("carol", {"name": "carol", "admin": None}))
    assert refused.value.reason_text == "Ask the lab for an account."
