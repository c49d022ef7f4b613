"""Single sign-on for real: the hub in ``oauth`` mode against Dex (a real
OpenID Connect provider on loopback, tests/dex.py), logged into through the
Dex login form in headless chromium. The provider's groups become hub
groups, admins come from a group, and a person outside the allowed groups
is told why."""

from __future__ import annotations

import json
import os
import re

import pytest
from playwright.sync_api import expect

from tests.dex import Dex, DexUser, go_available, unavailable_reason
from tests.hubprocess import start_hub

pytestmark = [pytest.mark.integration, pytest.mark.browser]

OBSERVER = "sso-observer"
OBSERVER_TOKEN = "sso-observer-token-0123456789abcdef"

ALICE = DexUser("alice", "alice-dex-pw", ("staff", "physics"))
BOB = DexUser("bob", "bob-dex-pw", ("staff", "hub-admins"))
CAROL = DexUser("carol", "carol-dex-pw", ("guests",))
# in an allowed group, but a name the hub cannot use
DAVE = DexUser("dave.smith", "dave-dex-pw", ("staff",))
ERIN = DexUser("erin", "erin-dex-pw", ("staff", "hub-admins"))


@pytest.fixture(scope="module")
def sso(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        # where Go exists `make test` builds Dex, so a missing binary is a failure
        if go_available() or os.environ.get("KARVDASH_DEX_REQUIRED"):
            pytest.fail(reason)
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("sso")
    dex = Dex(work, [ALICE, BOB, CAROL, DAVE, ERIN])
    values = work / "values.yaml"
    values.write_text(
        json.dumps(
            {
                "karvdash": {"authenticator": "oauth"},
                "hub": {
                    "config": {
                        "GenericOAuthenticator": {
                            **dex.hub_config(),
                            "manage_groups": True,
                            "auth_state_groups_key": "oauth_user.groups",
                            "allowed_groups": ["staff"],
                            "admin_groups": ["hub-admins"],
                        },
                        # a token to look at users and groups through the hub's API
                        "JupyterHub": {
                            "services": [{"name": OBSERVER, "api_token": OBSERVER_TOKEN}],
                            "load_roles": [
                                {"name": OBSERVER, "scopes": ["admin:users", "admin:groups"], "services": [OBSERVER]}
                            ],
                        },
                    }
                },
            }
        )
    )
    hub = start_hub(work / "state", env={"KARVDASH_VALUES": str(values)})
    try:
        dex.start(redirect_uri=hub.url + "/hub/oauth_callback")
    except Exception:
        hub.stop()
        raise
    yield hub, dex
    dex.stop()
    hub.stop()


def api(hub, path):
    return hub.api("GET", path, token=OBSERVER_TOKEN)


def log_in_through_dex(page, hub, dex, user: DexUser):
    """The hub's login page, Dex's login form, and back to the hub."""
    page.goto(hub.url + "/hub/login")
    page.click("#sso-login")
    page.wait_for_url(re.compile("^" + re.escape(dex.issuer) + "/auth"))
    page.fill("#login", user.email)
    page.fill("#password", user.password)
    with page.expect_response(re.compile(re.escape(hub.url) + r"/hub/oauth_callback\?")) as callback:
        page.click("#submit-login")
    return callback.value


def wait_until_logged_in(page, hub):
    """Back at the hub, past its login and the provider's callback."""
    page.wait_for_url(re.compile("^" + re.escape(hub.url) + r"/(?!hub/login|hub/oauth)"))
    expect(page.locator("#karvdash-user-menu-toggle")).to_be_visible()


def test_login_through_dex_lands_logged_in(page, sso):
    hub, dex = sso
    callback = log_in_through_dex(page, hub, dex, ALICE)
    assert callback.status == 302
    wait_until_logged_in(page, hub)
    expect(page.locator("#karvdash-user-menu-toggle")).to_have_text("alice")
    model = api(hub, "/users/alice").json()
    assert model["name"] == "alice"


def test_provider_groups_become_hub_groups(page, sso):
    hub, dex = sso
    log_in_through_dex(page, hub, dex, ALICE)
    wait_until_logged_in(page, hub)
    alice = api(hub, "/users/alice").json()
    assert sorted(alice["groups"]) == ["physics", "staff"]
    assert alice["admin"] is False
    assert "alice" in api(hub, "/groups/physics").json()["users"]
    # not an administrator: no admin page
    assert page.goto(hub.url + "/hub/admin").status == 403


def test_admin_comes_from_a_group(page, sso):
    hub, dex = sso
    log_in_through_dex(page, hub, dex, BOB)
    wait_until_logged_in(page, hub)
    bob = api(hub, "/users/bob").json()
    assert bob["admin"] is True
    assert sorted(bob["groups"]) == ["hub-admins", "staff"]
    assert page.goto(hub.url + "/hub/admin").status == 200
    expect(page.locator("nav").get_by_role("link", name="Admin")).to_be_visible()


def test_each_login_brings_the_provider_groups_up_to_date(browser, sso):
    hub, dex = sso

    def log_in():
        context = browser.new_context()
        try:
            page = context.new_page()
            log_in_through_dex(page, hub, dex, ERIN)
            wait_until_logged_in(page, hub)
        finally:
            context.close()
        return api(hub, "/users/erin").json()

    erin = log_in()
    assert erin["admin"] is True and sorted(erin["groups"]) == ["hub-admins", "staff"]
    dex.replace_user(DexUser(ERIN.username, ERIN.password, ("staff", "chemistry")))
    erin = log_in()
    # out of the admin group: no longer an administrator
    assert erin["admin"] is False
    assert sorted(erin["groups"]) == ["chemistry", "staff"]
    assert "erin" not in api(hub, "/groups/hub-admins").json()["users"]


def test_user_outside_the_allowed_groups_is_told_why(page, sso):
    hub, dex = sso
    callback = log_in_through_dex(page, hub, dex, CAROL)
    assert callback.status == 403
    expect(page.locator("#refusal-reason")).to_have_text(
        "Your account is not in a group allowed on this hub: hub-admins, staff."
    )
    expect(page.locator("#refused-account")).to_contain_text("You signed in with Dex as carol")
    expect(page.locator("#refused-groups")).to_have_text("guests")
    # themed like every hub page, with a way back
    expect(page.locator("#karvdash-brand")).to_be_visible()
    expect(page.locator("#login-again")).to_have_attribute("href", re.compile(r"/hub/login"))
    # not logged in, and the hub did not create the user
    assert api(hub, "/users/carol").status_code == 404
    page.goto(hub.url + "/hub/home")
    page.wait_for_url(re.compile(re.escape(hub.url) + r"/hub/login"))


def test_unusable_username_is_told_why(page, sso):
    hub, dex = sso
    callback = log_in_through_dex(page, hub, dex, DAVE)
    assert callback.status == 403
    expect(page.locator("#refusal-reason")).to_contain_text(
        "Dex names your account 'dave.smith', but names on this hub are 1 to 32 lowercase letters and digits"
    )
    assert api(hub, "/users/dave.smith").status_code == 404


def test_logout_ends_the_hub_session(page, sso):
    hub, dex = sso
    log_in_through_dex(page, hub, dex, ALICE)
    wait_until_logged_in(page, hub)
    page.click("#karvdash-user-menu-toggle")
    page.click("#logout")
    page.wait_for_url(re.compile(re.escape(hub.url) + r"/hub/(login|logout)"))
    page.goto(hub.url + "/hub/home")
    page.wait_for_url(re.compile(re.escape(hub.url) + r"/hub/login"))
    # Dex keeps no session of its own: logging in again asks for the password
    page.click("#sso-login")
    page.wait_for_url(re.compile("^" + re.escape(dex.issuer) + "/auth"))
    expect(page.locator("#password")).to_be_visible()
