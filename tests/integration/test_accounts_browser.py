"""The administrator's Sign-ups page in a real browser (Debian chromium) on a
real hub: pages, search and sort done by the hub, an account's email and
password changed from the page, and an import of a file."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.hubprocess import start_hub

pytestmark = [pytest.mark.integration, pytest.mark.browser]

PASSWORD = "accounts-pw-1"
COUNT = 120  # u000..u119, two and a half pages


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    running = start_hub(tmp_path_factory.mktemp("hub"))
    token = running.token_for(running.admin)
    rows = "\n".join(f"u{i:03d},{'chem' if i % 2 else 'bio'}.u{i:03d}@example.org" for i in range(COUNT))
    response = running.api("POST", "/accounts?state=approved", token=token, data=rows, headers={"Content-Type": "text/csv"})
    assert response.status_code == 201, response.text
    yield running
    running.stop()


def new_page(browser):
    context = browser.new_context()
    context.set_default_timeout(30_000)
    return context.new_page()


def log_in(page, hub, username, password):
    page.goto(hub.url + "/hub/login")
    page.fill("#username_input", username)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"^(?!.*/hub/login)"))


@pytest.fixture
def admin(browser, hub):
    page = new_page(browser)
    log_in(page, hub, hub.admin, hub.admin_password)
    yield page
    page.context.close()


def row_names(page):
    return page.locator("#signups tbody tr").evaluate_all("rows => rows.map(row => row.id)")


def test_pages_search_and_sort(admin, hub):
    admin.goto(hub.url + "/hub/authorize")
    total = COUNT + 1  # and the administrator
    expect(admin.locator("#signups-count")).to_have_text(f"1–50 of {total} accounts")
    assert row_names(admin)[:3] == ["admin", "u000", "u001"]
    assert len(row_names(admin)) == 50
    admin.click("#page-next")
    expect(admin.locator("#signups-count")).to_have_text(f"51–100 of {total} accounts")
    expect(admin.locator("#page-number")).to_have_text("Page 2 of 3")
    assert row_names(admin)[0] == "u049"
    # a search starts from its first page, and keeps the sort
    admin.fill("#search-input", "U11")
    admin.click("#search-submit")
    expect(admin.locator("#signups-count")).to_have_text("1–10 of 10 accounts")
    assert row_names(admin) == [f"u{i}" for i in range(110, 120)]
    # sorting by email, then the other way round
    admin.click("#sort-email")
    expect(admin.locator("#sort-email")).to_have_attribute("aria-sort", "ascending")
    assert row_names(admin)[:2] == ["u110", "u112"]  # bio.* before chem.*
    admin.click("#sort-email")
    expect(admin.locator("#sort-email")).to_have_attribute("aria-sort", "descending")
    assert row_names(admin)[:2] == ["u119", "u117"]
    assert "search=U11" in admin.url and "order=desc" in admin.url
    # waiting accounts only: none among these
    admin.select_option("#state-input", "pending")
    admin.click("#search-submit")
    expect(admin.locator("#signups-count")).to_have_text("No accounts match.")
    # a bad address answers with the reason, not a bare error
    response = admin.goto(hub.url + "/hub/authorize?limit=9999")
    assert response.status == 400
    expect(admin.locator("#signups-message.alert-danger")).to_contain_text("limit must be from 1 to 500")


def test_edit_an_email_from_the_page(admin, hub):
    admin.goto(hub.url + "/hub/authorize?search=u007")
    row = admin.locator("tr#u007")
    row.locator("input[name=email]").fill("seven@lab.example.org")
    row.get_by_role("button", name="Save").click()
    message = admin.locator("#signups-message")
    expect(message).to_have_text("u007's email address is changed.")
    expect(message).to_have_class(re.compile(r"\balert-success\b"))
    expect(admin.locator("tr#u007 input[name=email]")).to_have_value("seven@lab.example.org")
    assert "search=u007" in admin.url  # back on the same listing
    # another account's address, in another case: refused with the reason
    admin.locator("tr#u007 input[name=email]").fill("BIO.U008@example.ORG")
    admin.locator("tr#u007").get_by_role("button", name="Save").click()
    expect(message).to_have_text("Another account has this email address.")
    expect(message).to_have_class(re.compile(r"\balert-danger\b"))
    admin.goto(hub.url + "/hub/authorize?search=u007")
    expect(admin.locator("tr#u007 input[name=email]")).to_have_value("seven@lab.example.org")


def test_set_a_password_then_log_in_with_it(admin, browser, hub):
    hub.create_user("pat", PASSWORD)
    # pat is logged in in another browser
    theirs = new_page(browser)
    log_in(theirs, hub, "pat", PASSWORD)
    admin.goto(hub.url + "/hub/authorize?search=pat")
    admin.locator("tr#pat").get_by_role("link", name="Set password").click()
    expect(admin.locator("h1")).to_have_text("Set the password of pat")
    for new, confirmation, reason in [
        ("pat-new-pw-1", "pat-new-pw-2", "The password and its confirmation do not match."),
        ("short", "short", "The password needs at least 8 characters."),
    ]:
        admin.fill("#new_password_input", new)
        admin.fill("#new_password_confirmation_input", confirmation)
        admin.click("#signup_submit")
        expect(admin.locator("#change-password-message.alert-danger")).to_have_text(reason)
    admin.fill("#new_password_input", "pat-new-pw-1")
    admin.fill("#new_password_confirmation_input", "pat-new-pw-1")
    admin.click("#signup_submit")
    expect(admin.locator("#signups-message")).to_have_text(
        "pat's password is set, and every browser logged in as pat is logged out.")
    assert "search=pat" in admin.url
    # the other browser is logged out
    theirs.goto(hub.url + "/hub/home")
    expect(theirs).to_have_url(re.compile(r"/hub/login"))
    theirs.context.close()
    # the new password logs in, the old one no longer
    person = new_page(browser)
    person.goto(hub.url + "/hub/login")
    person.fill("#username_input", "pat")
    person.fill("#password_input", PASSWORD)
    person.click("#login_submit")
    expect(person.locator("#login-main, form")).not_to_have_count(0)
    assert "/hub/login" in person.url
    log_in(person, hub, "pat", "pat-new-pw-1")
    expect(person).to_have_url(re.compile(r"/services/karvdash/"))
    person.context.close()


def test_import_a_file_from_the_page(admin, hub):
    admin.goto(hub.url + "/hub/authorize")
    admin.set_input_files("#import-file", files=[{
        "name": "people.csv", "mimeType": "text/csv",
        "buffer": b"username,email,admin\nimpa,impa@example.org,\nimpb,impb@example.org,no\nImpc,impc@example.org,\n",
    }])
    admin.click("#import-submit")
    message = admin.locator("#signups-message")
    expect(message).to_have_text("Imported 2 accounts (pending); 1 rows refused.")
    expect(admin.locator("#import-refused tbody tr")).to_have_text(re.compile(r"4\s*Impc\s*A username has 1 to 32"))
    admin.goto(hub.url + "/hub/authorize?search=imp&state=pending")
    assert row_names(admin) == ["impa", "impb"]
    expect(admin.locator("tr#impa")).to_have_attribute("data-approved", "no")
