"""A person's first hour with karvdash-hub in local mode, in a real browser:
sign up, wait for approval, log in, pick a profile, work in JupyterLab;
the admin approves and sees users; an API token from /hub/token works.

Real parts: the karvdash-hub command (JupyterHub, configurable-http-proxy,
SQLite), jupyterhub-singleuser processes, Debian's chromium.
"""

import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from tests.hubprocess import run_hub_until_exit, start_hub

pytestmark = [pytest.mark.integration, pytest.mark.browser]

THEME = {
    "KARVDASH_DASHBOARD_TITLE": "Test Lab",
    "KARVDASH_DASHBOARD_THEME": "CARV",
    "KARVDASH_ISSUES_URL": "https://issues.example.org/new",
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    running = start_hub(tmp_path_factory.mktemp("hub"), env=THEME)
    yield running
    running.stop()


def log_in(page, hub, username, password):
    page.goto(hub.url + "/hub/login")
    page.fill("#username_input", username)
    page.fill("#password_input", password)
    page.click("#login_submit")


def sign_up(page, hub, username, email, password, confirmation=None):
    page.goto(hub.url + "/hub/signup")
    page.fill("#username_input", username)
    page.fill("#email_input", email)
    page.fill("#password_input", password)
    page.fill("#password_confirmation_input", password if confirmation is None else confirmation)
    page.click("#signup_submit")


def test_sign_up_mistakes_are_named_and_keep_what_was_typed(page, hub):
    sign_up(page, hub, "carol", "carol@example.org", "carol-password-1", "carol-password-2")
    expect(page.locator("#signup-message")).to_have_text("The password and its confirmation do not match.")
    expect(page.locator("#username_input")).to_have_value("carol")
    expect(page.locator("#email_input")).to_have_value("carol@example.org")

    sign_up(page, hub, "carol_x", "carol@example.org", "carol-password-1")
    expect(page.locator("#signup-message")).to_contain_text("lowercase letters and digits only")

    sign_up(page, hub, "carol", "not-an-email@", "carol-password-1")
    # the browser's own check stops a malformed address; the hub's check is below
    sign_up(page, hub, "carol", "carol@example", "carol-password-1")
    expect(page.locator("#signup-message")).to_have_text("Enter a valid email address.")

    sign_up(page, hub, "carol", "carol@example.org", "short")
    expect(page.locator("#signup-message")).to_have_text("The password needs at least 8 characters.")

    sign_up(page, hub, "carol", "carol@example.org", "password")
    expect(page.locator("#signup-message")).to_have_text("This password is too common; choose another.")

    sign_up(page, hub, "admin", "other@example.org", "carol-password-1")
    expect(page.locator("#signup-message")).to_have_text("The username 'admin' is taken; choose another.")


def test_sign_up_approval_login_and_jupyterlab(browser, hub):
    person = browser.new_context().new_page()
    sign_up(person, hub, "bob", "bob@example.org", "bob-password-1")
    expect(person.locator(".alert")).to_contain_text("Your information has been sent to the admin")

    # the same email cannot open a second account
    sign_up(person, hub, "bobby", "BOB@example.org", "bob-password-1")
    expect(person.locator("#signup-message")).to_have_text("An account with this email address exists already.")

    log_in(person, hub, "bob", "bob-password-1")
    expect(person.locator("#login-error")).to_have_text("Your account waits for an administrator's approval.")
    log_in(person, hub, "bob", "wrong-password")
    expect(person.locator("#login-error")).to_have_text("Wrong username or password.")
    expect(person.locator("#username_input")).to_have_value("bob")

    admin = browser.new_context().new_page()
    log_in(admin, hub, "admin", hub.admin_password)
    admin.goto(hub.url + "/hub/authorize")
    row = admin.locator("tr#bob")
    expect(row).to_have_attribute("data-approved", "no")
    row.get_by_role("button", name="Approve").click()
    expect(admin.locator("tr#bob")).to_have_attribute("data-approved", "yes")

    # a plain link (GET) no longer changes anyone's approval
    response = admin.request.get(hub.url + "/hub/authorize/bob")
    assert response.status == 405
    expect_approved = admin.goto(hub.url + "/hub/authorize")
    assert expect_approved.ok
    expect(admin.locator("tr#bob")).to_have_attribute("data-approved", "yes")

    log_in(person, hub, "bob", "bob-password-1")
    # login lands on the dashboard's Home page, whose first step is a server
    person.wait_for_url(re.compile(r".*/services/karvdash/$"))
    person.click("#next-start-server")
    person.wait_for_url(re.compile(r".*/hub/spawn.*"))
    expect(person.locator("#profile-zeppelin")).to_be_disabled()
    expect(person.locator(".karvdash-profile[data-slug=zeppelin]")).to_contain_text("Not available here")
    expect(person.locator("#profile-jupyter")).to_be_checked()
    person.select_option("#profile-option-jupyter--resources", "medium")
    person.get_by_role("button", name="Start").click()

    person.wait_for_url(re.compile(r".*/user/bob/lab.*"), timeout=120_000)
    listing = person.locator(".jp-DirListing-content")
    expect(listing).to_contain_text("private", timeout=60_000)
    expect(listing).to_contain_text("shared")

    # the admin panel lists the user, with the chosen profile
    admin.goto(hub.url + "/hub/admin")
    expect(admin.get_by_text("bob", exact=True).first).to_be_visible(timeout=30_000)
    server = hub.api("GET", "/users/bob", token=hub.token_for("admin", hub.admin_password)).json()["servers"][""]
    assert server["ready"] is True
    assert server["user_options"] == {"profile": "jupyter", "image": "scipy", "resources": "medium"}

    # private and shared are the file domains: what JupyterLab writes lands there
    token = hub.token_for("bob", "bob-password-1")
    put = requests.put(
        f"{hub.url}/user/bob/api/contents/private/notes.txt",
        json={"type": "file", "format": "text", "content": "hello"},
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert put.status_code == 201, put.text
    assert (hub.state_dir / "files" / "private" / "bob" / "notes.txt").read_text() == "hello"
    person.context.close()
    admin.context.close()


def test_api_token_from_the_token_page(page, hub):
    hub.create_user("dora", "dora-password-1")
    log_in(page, hub, "dora", "dora-password-1")
    page.goto(hub.url + "/hub/token")
    page.fill("#token-note", "laptop")
    page.get_by_role("button", name="Request new API token").click()
    token = page.locator("#token-result")
    expect(token).not_to_be_empty()
    response = requests.get(hub.hub_api + "/user", headers={"Authorization": f"token {token.inner_text()}"}, timeout=30)
    assert response.status_code == 200
    assert response.json()["name"] == "dora"
    assert requests.get(hub.hub_api + "/user", headers={"Authorization": "token wrong"}, timeout=30).status_code == 403


def test_title_theme_and_user_menu_from_settings(page, hub):
    log_in(page, hub, "admin", hub.admin_password)
    page.goto(hub.url + "/hub/home")
    expect(page).to_have_title("Test Lab")
    expect(page.locator("#karvdash-brand")).to_have_text("Test Lab")
    assert "karvdash-theme-carv" in page.locator("body").get_attribute("class")
    page.click("#karvdash-user-menu-toggle")
    menu = page.locator("#karvdash-user-menu")
    expect(menu.get_by_role("link", name="Report an issue")).to_have_attribute("href", THEME["KARVDASH_ISSUES_URL"])
    expect(menu.get_by_role("link", name="Change password")).to_be_visible()
    menu.get_by_role("link", name="About").click()
    expect(page.locator("#karvdash-version")).to_have_text(re.compile(r"^\d+\.\d+\.\d+"))


def test_user_changes_password(page, hub):
    hub.create_user("erin", "erin-password-1")
    log_in(page, hub, "erin", "erin-password-1")
    page.goto(hub.url + "/hub/change-password")
    page.fill("#old_password_input", "wrong-password")
    page.fill("#new_password_input", "erin-password-2")
    page.fill("#new_password_confirmation_input", "erin-password-2")
    page.get_by_role("button", name=re.compile("change password", re.I)).click()
    expect(page.locator(".alert")).to_contain_text("current password was incorrect")
    page.fill("#old_password_input", "erin-password-1")
    page.fill("#new_password_input", "erin-password-2")
    page.fill("#new_password_confirmation_input", "erin-password-2")
    page.get_by_role("button", name=re.compile("change password", re.I)).click()
    expect(page.locator(".alert")).to_contain_text("changed successfully")
    hub.login("erin", "erin-password-2")
    with pytest.raises(AssertionError):
        hub.login("erin", "erin-password-1")


def test_a_bad_setting_stops_start_up_with_its_name(tmp_path):
    result = run_hub_until_exit(tmp_path / "state", {"KARVDASH_FILES_URL": "http://files.example.org/x"})
    assert result.returncode != 0
    assert "karvdash-hub: setting filesURL: 'http://files.example.org/x' must start with file://, nfs://, minio:// or minios://" in result.stderr
    result = run_hub_until_exit(tmp_path / "state", {"KARVDASH_MODE": "kubernetes"})
    assert result.returncode != 0
    assert "setting ingressURL: is required in kubernetes mode" in result.stderr


def test_the_hubs_database_commits_through_its_write_ahead_log(hub):
    # a user made through the API is a commit of the running hub
    token = hub.token_for(hub.admin)
    assert hub.api("POST", "/users/wal-witness", token=token).status_code == 201
    database = hub.state_dir / "jupyterhub.sqlite"
    with closing(sqlite3.connect(database)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT name FROM users WHERE name = 'wal-witness'").fetchall() == [("wal-witness",)]
    assert Path(f"{database}-wal").exists()


def test_named_servers(hub):
    hub.create_user("fred", "fred-password-1")
    token = hub.token_for("fred")
    started = hub.api("POST", "/users/fred/servers/analysis", token=token, json={"profile": "jupyter"})
    assert started.status_code in (201, 202), started.text
    import time

    for _ in range(120):
        server = hub.api("GET", "/users/fred", token=token).json()["servers"].get("analysis", {})
        if server.get("ready"):
            break
        time.sleep(0.5)
    assert server["ready"] and server["url"] == "/user/fred/analysis/"
    status = requests.get(hub.url + "/user/fred/analysis/api/status", headers={"Authorization": f"token {token}"}, timeout=30)
    assert status.status_code == 200
    assert hub.api("DELETE", "/users/fred/servers/analysis", token=token, json={"remove": True}).status_code in (202, 204)


def test_single_sign_on_is_selected_by_settings(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(
        "karvdash:\n"
        "  authenticator: oauth\n"
        "hub:\n"
        "  config:\n"
        "    GenericOAuthenticator:\n"
        "      client_id: karvdash\n"
        "      client_secret: not-used\n"
        "      login_service: Example SSO\n"
        "      authorize_url: https://sso.example.org/realms/lab/protocol/openid-connect/auth\n"
        "      token_url: https://sso.example.org/realms/lab/protocol/openid-connect/token\n"
        "      userdata_url: https://sso.example.org/realms/lab/protocol/openid-connect/userinfo\n"
    )
    sso_hub = start_hub(tmp_path / "state", env={"KARVDASH_VALUES": str(values)})
    try:
        login = requests.get(sso_hub.url + "/hub/login", timeout=30)
        assert "Sign in with Example SSO" in login.text
        assert 'id="signup-link"' not in login.text
        redirect = requests.get(sso_hub.url + "/hub/oauth_login", allow_redirects=False, timeout=30)
        assert redirect.status_code == 302
        location = redirect.headers["Location"]
        assert location.startswith("https://sso.example.org/realms/lab/protocol/openid-connect/auth?")
        assert "client_id=karvdash" in location
        # the hub's own sign-up does not exist with single sign-on
        assert requests.get(sso_hub.url + "/hub/signup", timeout=30).status_code == 404
    finally:
        sso_hub.stop()


def test_revoking_an_account_deactivates_it_at_once(hub):
    hub.create_user("gina", "gina-password-1")
    session = hub._sessions["gina"]
    token = hub.token_for("gina")
    assert hub.api("GET", "/user", token=token).status_code == 200
    admin = hub.admin_session()
    admin_token = hub.token_for("admin", hub.admin_password)

    def toggle(name):
        return admin.post(f"{hub.url}/hub/authorize/{name}", data={"_xsrf": admin.cookies.get("_xsrf")}, allow_redirects=False)

    assert toggle("gina").status_code == 302
    assert hub.api("GET", "/user", token=token).status_code == 403
    home = session.get(hub.url + "/hub/home", allow_redirects=False, timeout=30)
    assert home.status_code == 302 and "/hub/login" in home.headers["Location"]
    assert "karvdash-deactivated" in hub.api("GET", "/users/gina", token=admin_token).json()["groups"]
    with pytest.raises(AssertionError):
        hub.login("gina", "gina-password-1")

    assert toggle("gina").status_code == 302
    assert "karvdash-deactivated" not in hub.api("GET", "/users/gina", token=admin_token).json()["groups"]
    hub.login("gina", "gina-password-1")

    # the administrator cannot lock themselves out
    assert toggle("admin").status_code == 400
    hub.login("admin", hub.admin_password)
