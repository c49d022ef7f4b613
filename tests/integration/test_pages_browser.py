"""The pages besides Files in a real browser: one look for messages, the
Sign-ups page, the change-password and Token pages in the hub's layout, the
Servers page and the dashboard's Home page, where login lands."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.hubprocess import start_hub
from tests.integration.dashboardsession import (
    ACCESS,
    FILES_READ,
    FILES_WRITE,
    PASSWORD,
    dashboard_url,
    ensure_user,
    log_in_page,
    private_folder,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

HOME = re.compile(r"/services/karvdash/(\?.*)?$")
GREEN = "rgb(209, 231, 221)"  # Bootstrap 5.3's --bs-success-bg-subtle


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    # the hub and the dashboard start in well under a minute, a loaded machine takes longer
    running = start_hub(tmp_path_factory.mktemp("hub"), timeout=180)
    yield running
    running.stop()


def new_page(browser):
    context = browser.new_context()
    context.set_default_timeout(30_000)
    return context.new_page()


def log_in(page, hub, username, password=PASSWORD, next_url=None):
    page.goto(hub.url + "/hub/login" + (f"?next={next_url}" if next_url else ""))
    page.fill("#username_input", username)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"^(?!.*/hub/login)"))


def sign_up(hub, username):
    session = requests.Session()
    session.get(hub.url + "/hub/signup", timeout=30)
    response = session.post(
        hub.url + "/hub/signup",
        data={
            "username": username,
            "email": f"{username}@example.org",
            "signup_password": PASSWORD,
            "signup_password_confirmation": PASSWORD,
            "_xsrf": session.cookies.get("_xsrf"),
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text


# --- one look ---------------------------------------------------------------------------------


def test_a_success_is_green_and_one_message_replaces_the_last(page, hub):
    ensure_user(hub, "amy")
    log_in_page(page, hub, "amy")
    page.goto(dashboard_url(hub, "files/private/"))
    expect(page.locator("#files-loading")).to_be_hidden()
    messages = page.locator(".karvdash-flash-message")
    for name in ("first", "second"):
        page.click("#new-folder-button")
        page.fill("#karvdash-dialog-input", name)
        page.click(".karvdash-dialog-confirm")
        expect(messages).to_have_count(1)
        expect(messages).to_contain_text(f"Folder {name} created")
    expect(messages).to_have_class(re.compile(r"\balert-success\b"))
    assert messages.evaluate("el => getComputedStyle(el).backgroundColor") == GREEN
    # a refusal: the success message fades out, the error stays alone
    page.click("#new-folder-button")
    page.fill("#karvdash-dialog-input", "second")
    page.click(".karvdash-dialog-confirm")
    expect(page.locator(".karvdash-flash-message.alert-danger")).to_contain_text("already exists")
    expect(messages).to_have_count(1)
    expect(page.locator(".karvdash-flash-message.alert-success")).to_have_count(0)


def test_a_sign_up_notice_is_green(page, hub):
    page.goto(hub.url + "/hub/signup")
    page.fill("#username_input", "newbie")
    page.fill("#email_input", "newbie@example.org")
    page.fill("#password_input", PASSWORD)
    page.fill("#password_confirmation_input", PASSWORD)
    page.click("#signup_submit")
    message = page.locator("#signup-message")
    expect(message).to_contain_text("sent to the admin")
    expect(message).to_have_class(re.compile(r"\balert-success\b"))
    expect(page.locator(".alert")).to_have_count(1)


# --- Sign-ups ---------------------------------------------------------------------------------


def test_sign_ups_say_what_happened_and_why_not(page, hub):
    sign_up(hub, "carl")
    sign_up(hub, "dina")
    log_in(page, hub, hub.admin, hub.admin_password)
    page.goto(hub.url + "/hub/authorize")
    # no Revoke on the administrator's own row
    own = page.locator(f"tr#{hub.admin}")
    expect(own).to_have_attribute("data-approved", "yes")
    expect(own.get_by_role("button", name="Revoke")).to_have_count(0)

    page.locator("tr#carl").get_by_role("button", name="Approve").click()
    message = page.locator("#signups-message")
    expect(message).to_have_text("carl is approved and can log in.")
    expect(message).to_have_class(re.compile(r"\balert-success\b"))
    expect(page.locator("tr#carl")).to_have_attribute("data-approved", "yes")

    page.locator("tr#carl").get_by_role("button", name="Revoke").click()
    expect(message).to_contain_text("carl's approval is revoked")
    expect(page.locator(".karvdash-flash-message")).to_have_count(1)

    # Discard asks first: a No posts nothing
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.locator("tr#dina").get_by_role("button", name="Discard").click()
    page.wait_for_timeout(500)
    expect(message).to_contain_text("carl's approval is revoked")
    expect(page.locator("tr#dina")).to_have_attribute("data-approved", "no")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr#dina").get_by_role("button", name="Discard").click()
    expect(message).to_have_text("The sign-up of dina is discarded.")
    expect(page.locator("tr#dina")).to_have_count(0)

    # refusals are the page with the reason, not a bare error page
    xsrf = page.locator("input[name=_xsrf]").first.get_attribute("value")
    for path, status, reason in [
        (f"authorize/{hub.admin}", 400, "You cannot revoke your own account"),
        ("authorize/nobody", 404, "There is no sign-up named nobody."),
        (f"discard/{hub.admin}", 400, "revoke the approval before discarding"),
    ]:
        response = page.request.post(f"{hub.url}/hub/{path}", form={"_xsrf": xsrf}, max_redirects=0)
        assert response.status == status, path
        page.set_content(response.text())
        expect(page.locator("#signups-message.alert-danger")).to_contain_text(reason)
        expect(page.locator("#signups")).to_be_visible()


# --- change password --------------------------------------------------------------------------


def test_change_password_page_in_the_hub_layout_with_a_show_toggle(page, hub):
    ensure_user(hub, "erik")
    log_in_page(page, hub, "erik")
    page.goto(hub.url + "/hub/change-password")
    expect(page.locator("#karvdash-brand")).to_be_visible()
    expect(page.locator("h1")).to_have_text("Change password for erik")
    assert page.locator(".input-group-addon, .col-xs-6, .btn-jupyter").count() == 0
    field = page.locator("#old_password_input")
    toggle = page.locator("#old_password_input + .karvdash-show-password")
    page.fill("#old_password_input", PASSWORD)
    toggle.click()
    expect(field).to_have_attribute("type", "text")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    expect(toggle).to_have_accessible_name("Hide password")
    toggle.click()
    expect(field).to_have_attribute("type", "password")
    page.fill("#new_password_input", "erik-password-2")
    page.fill("#new_password_confirmation_input", "erik-password-2")
    page.get_by_role("button", name="Change password").click()
    message = page.locator("#change-password-message")
    expect(message).to_contain_text("changed successfully")
    expect(message).to_have_class(re.compile(r"\balert-success\b"))
    hub.login("erik", "erik-password-2")


# --- tokens -----------------------------------------------------------------------------------


def test_token_presets_fill_the_scopes_and_the_token_works_with_the_dashboard(page, hub):
    ensure_user(hub, "tina")
    (private_folder(hub, "tina")).mkdir(parents=True, exist_ok=True)
    log_in_page(page, hub, "tina")
    page.goto(hub.url + "/hub/token")
    expect(page.locator("#karvdash-brand")).to_be_visible()
    page.click("#token-preset-files-read")
    expect(page.locator("#token-scopes")).to_have_value(f"{ACCESS} {FILES_READ}")
    page.click("#token-preset-files")
    expect(page.locator("#token-scopes")).to_have_value(f"{ACCESS} {FILES_READ} {FILES_WRITE}")
    page.click("#token-preset-dashboard")
    everything = page.locator("#token-scopes").input_value().split()
    assert everything[0] == ACCESS and "custom:karvdash:images:write" in everything and len(everything) == 11
    page.click("#token-preset-files-read")
    page.get_by_role("button", name="Request new API token").click()
    result = page.locator("#token-result")
    expect(result).not_to_be_empty()
    token = result.inner_text().strip()
    dashboard = hub.url + "/services/karvdash/"
    expect(page.locator("#karvdashctl-command")).to_have_text(f"karvdashctl --url {dashboard} --token {token} ls")
    expect(page.locator("#karvdashctl-config")).to_have_text(f"[Karvdash]\nbase_url = {dashboard}\ntoken = {token}")
    headers = {"Authorization": f"token {token}"}
    assert requests.get(dashboard + "api/files/private/", headers=headers, timeout=60).status_code == 200
    # read-only: no writing
    made = requests.post(dashboard + "api/files/private/new", json={"type": "folder"}, headers=headers, timeout=60)
    assert made.status_code == 403


def test_a_dashboard_scope_alone_gets_the_access_scope_with_it(hub):
    ensure_user(hub, "uma")
    private_folder(hub, "uma").mkdir(parents=True, exist_ok=True)
    token = hub.token_for("uma", PASSWORD, scopes=[FILES_READ])
    scopes = hub.api("GET", "/user", token=token).json()["scopes"]
    assert ACCESS in scopes and FILES_READ in scopes
    response = requests.get(dashboard_url(hub, "api/files/private/"), headers={"Authorization": f"token {token}"}, timeout=60)
    assert response.status_code == 200
    # other tokens are made as JupyterHub makes them
    plain = hub.token_for("uma", PASSWORD, scopes=["read:users:name!user=uma"])
    assert ACCESS not in hub.api("GET", "/user", token=plain).json()["scopes"]


# --- Servers ----------------------------------------------------------------------------------


def server_row(page, name):
    return page.locator(f'tr.karvdash-server[data-server-name="{name}"]')


def wait_for_state(page, hub, name, state):
    for _ in range(240):
        page.goto(hub.url + "/hub/home")
        if server_row(page, name).get_attribute("data-state") == state:
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"server {name!r} never got to {state}")


def test_servers_page_shows_each_server_and_stops_starts_deletes_creates(page, hub):
    ensure_user(hub, "sam")
    log_in_page(page, hub, "sam")
    page.goto(hub.url + "/hub/home")
    expect(page.locator("#nav-servers")).to_have_class(re.compile("active"))
    expect(server_row(page, "")).to_have_attribute("data-state", "stopped")

    page.fill("#new-server-name", "exp")
    page.click("#new-server-start")
    # the hub answers a start after its slow-spawn wait (10 s), then the page reloads
    expect(page.locator(".karvdash-flash-message.alert-success")).to_contain_text("Server exp is starting.", timeout=60_000)
    wait_for_state(page, hub, "exp", "ready")
    row = server_row(page, "exp")
    expect(row.locator(".server-profile")).to_contain_text("Jupyter")
    expect(row.locator(".server-profile")).to_contain_text("Image: SciPy (Python)")
    expect(row.locator(".server-size")).not_to_be_empty()
    expect(row.locator(".server-started")).not_to_be_empty()
    expect(row.locator(".server-activity")).not_to_have_text("")
    expect(row.locator("a.server-link")).to_have_attribute("href", "/user/sam/exp/")

    row.locator('[data-action="stop"]').click()
    expect(page.locator(".karvdash-flash-message.alert-success")).to_have_text(re.compile("Server exp stopped."), timeout=60_000)
    wait_for_state(page, hub, "exp", "stopped")
    # size and profile stay with a stopped server: its next start uses them
    expect(server_row(page, "exp").locator(".server-profile")).to_contain_text("Jupyter")

    server_row(page, "exp").locator('[data-action="start"]').click()
    page.wait_for_url(re.compile(r"/hub/spawn/sam/exp"))
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/user/sam/exp/"), timeout=120_000)
    wait_for_state(page, hub, "exp", "ready")
    server_row(page, "exp").locator('[data-action="stop"]').click()
    wait_for_state(page, hub, "exp", "stopped")

    server_row(page, "exp").locator('[data-action="delete"]').click()
    page.click(".karvdash-dialog-confirm")
    expect(page.locator(".karvdash-flash-message.alert-success")).to_have_text(re.compile("Server exp deleted."), timeout=60_000)
    expect(server_row(page, "exp")).to_have_count(0)
    assert "exp" not in hub.api("GET", "/users/sam?include_stopped_servers=1", token=hub.token_for(hub.admin)).json()["servers"]


def test_a_refused_server_name_says_why(page, hub):
    ensure_user(hub, "sue")
    log_in_page(page, hub, "sue")
    page.goto(hub.url + "/hub/home")
    page.evaluate("document.getElementById('new-server-name').removeAttribute('pattern')")
    page.fill("#new-server-name", "Bad Name!")
    page.click("#new-server-start")
    expect(page.locator(".karvdash-flash-message.alert-danger")).not_to_be_empty()
    expect(page.locator("#new-server-start")).to_be_enabled()


# --- Home and landing -------------------------------------------------------------------------


def test_login_lands_on_home_with_the_next_steps(browser, hub):
    hub.create_user("nora", PASSWORD)
    page = new_page(browser)
    log_in(page, hub, "nora")
    page.wait_for_url(HOME)
    expect(page.locator("h1")).to_have_text("Welcome, nora")
    expect(page.locator("#next-start-server")).to_contain_text("Start a server")
    expect(page.locator("#next-start-server")).to_have_attribute("href", "/hub/spawn/nora")
    expect(page.locator("#next-upload-files")).to_contain_text("Upload files")
    expect(page.locator("#home-usage")).to_contain_text("0 B in 0 files")
    expect(page.locator("#home-services")).to_contain_text("need Kubernetes")
    expect(page.locator("#home-datasets")).to_have_count(0)

    private_folder(hub, "nora").mkdir(parents=True, exist_ok=True)
    (private_folder(hub, "nora") / "data.bin").write_bytes(b"x" * 3000)
    token = hub.token_for("nora", PASSWORD)
    assert hub.api("POST", "/users/nora/servers/lab", token=token, json={}).status_code in (201, 202)
    for _ in range(240):
        page.goto(dashboard_url(hub))
        if page.locator('.home-server[data-server-name="lab"]').get_attribute("data-state") == "ready":
            break
        page.wait_for_timeout(500)
    row = page.locator('.home-server[data-server-name="lab"]')
    expect(row).to_have_attribute("data-state", "ready")
    expect(row.get_by_role("link", name="lab")).to_have_attribute("href", "/user/nora/lab/")
    expect(page.locator("#home-usage")).to_contain_text("2.9 KiB in 1 file")
    expect(page.locator("#home-next-steps")).to_have_count(0)
    hub.api("DELETE", "/users/nora/servers/lab", token=token, json={"remove": True})
    page.context.close()


def test_login_still_goes_where_next_says(browser, hub):
    ensure_user(hub, "olga")
    page = new_page(browser)
    log_in(page, hub, "olga", next_url="/hub/token")
    page.wait_for_url(re.compile(r"/hub/token$"))
    # an anonymous visit to a page comes back to it after login
    other = new_page(browser)
    other.goto(dashboard_url(hub, "templates"))
    other.wait_for_url(re.compile(r"/hub/login"))
    other.fill("#username_input", "olga")
    other.fill("#password_input", PASSWORD)
    other.click("#login_submit")
    other.wait_for_url(re.compile(r"/services/karvdash/templates$"))
    page.context.close()
    other.context.close()
