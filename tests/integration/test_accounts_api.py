"""Administrators' account management through the hub's API, on a real
hub (JupyterHub, configurable-http-proxy, SQLite): pages of accounts,
imports, an account's email and password; and the deployment's logo and
favicon, served by the hub and shown by hub and dashboard pages."""

from __future__ import annotations

import json
import sqlite3

import pytest
import requests

from tests.hubprocess import run_hub_until_exit, start_hub
from tests.integration.dashboardsession import browser_session, dashboard_url

pytestmark = pytest.mark.integration

PASSWORD = "accounts-pw-1"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    theme = tmp_path_factory.mktemp("theme")
    (theme / "logo.png").write_bytes(PNG)
    running = start_hub(tmp_path_factory.mktemp("hub"), env={
        "KARVDASH_DASHBOARD_LOGO": str(theme / "logo.png"),
        "KARVDASH_DASHBOARD_FAVICON": "https://cdn.example.org/icon.svg",
    })
    yield running
    running.stop()


@pytest.fixture(scope="module")
def token(hub):
    return hub.token_for(hub.admin)


def api(hub, method, path, token=None, **kwargs):
    return hub.api(method, "/accounts" + path, token=token, **kwargs)


def csv_import(hub, token, text, state="pending"):
    return api(hub, "POST", f"?state={state}", token, data=text, headers={"Content-Type": "text/csv"})


@pytest.fixture(scope="module")
def department(hub, token):
    """30 accounts: p00..p14 waiting, a00..a14 approved."""
    pending = "\n".join(f"p{i:02d},p{i:02d}@maths.example.org" for i in range(15))
    approved = "\n".join(f"a{i:02d},A{i:02d}@Physics.example.org" for i in range(15))
    assert csv_import(hub, token, pending).status_code == 201
    assert csv_import(hub, token, approved, "approved").status_code == 201


def names(response):
    assert response.status_code == 200, response.text
    return [account["name"] for account in response.json()["accounts"]]


def test_pages_search_sort_and_filter(hub, token, department):
    first = api(hub, "GET", "?limit=10&state=pending", token)
    body = first.json()
    assert (body["total"], body["offset"], body["limit"], body["next_offset"]) == (15, 0, 10, 10)
    assert names(first) == [f"p{i:02d}" for i in range(10)]
    assert names(api(hub, "GET", "?limit=10&offset=10&state=pending", token)) == [f"p{i:02d}" for i in range(10, 15)]
    assert api(hub, "GET", "?limit=10&offset=10&state=pending", token).json()["next_offset"] is None
    # substring of the email, in any case
    assert names(api(hub, "GET", "?search=PHYSICS.example&sort=name&order=desc&limit=3", token)) == ["a14", "a13", "a12"]
    assert names(api(hub, "GET", "?search=p1", token)) == [f"p{i}" for i in range(10, 15)]
    # sign-up order, newest first; state puts waiting accounts first
    assert names(api(hub, "GET", "?sort=created&order=desc&limit=2", token)) == ["a14", "a13"]
    assert names(api(hub, "GET", "?sort=state&limit=1", token)) == ["p00"]
    account = api(hub, "GET", "?search=a03", token).json()["accounts"][0]
    assert account == {"name": "a03", "email": "A03@Physics.example.org", "state": "approved", "created": account["created"]}
    # a wildcard is a character like any other
    assert api(hub, "GET", "?search=%25", token).json()["total"] == 0


@pytest.mark.parametrize("query, words", [
    ("?sort=password", "sort must be one of"),
    ("?limit=100000", "limit must be from 1 to 500"),
    ("?offset=-3", "offset must be a whole number"),
    ("?limit=5&limit=6", "Give limit once."),
    ("?admin=1", "Unknown parameter 'admin'"),
])
def test_bad_listing_parameters_are_400(hub, token, query, words):
    response = api(hub, "GET", query, token)
    assert response.status_code == 400
    assert words in response.json()["message"]


def test_an_import_creates_the_good_rows_and_reports_the_rest(hub, token, department):
    body = json.dumps({"accounts": [
        {"username": "imp1", "email": "imp1@example.org", "admin": True},
        {"username": "imp2", "email": "P00@maths.example.org"},   # an existing address, other case
        {"username": "p01", "email": "new-p01@example.org"},      # an existing name
        {"username": "Imp3", "email": "imp3@example.org"},
        {"username": "imp4", "email": "imp4@example.org"},
    ]})
    response = api(hub, "POST", "?state=approved", token, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    report = response.json()
    assert report["created"] == [
        {"name": "imp1", "email": "imp1@example.org", "admin": True},
        {"name": "imp4", "email": "imp4@example.org", "admin": False},
    ]
    assert [(r["line"], r["username"], r["reason"]) for r in report["refused"]] == [
        (2, "imp2", "An account with this email address exists already."),
        (3, "p01", "The username 'p01' is taken."),
        (4, "Imp3", "A username has 1 to 32 characters, lowercase letters and digits only."),
    ]
    assert api(hub, "GET", "/imp4", token).json()["state"] == "approved"
    # imp1 is a hub administrator, imp4 is not
    assert hub.api("GET", "/users/imp1", token=token).json()["admin"] is True
    # an imported account has no password anyone knows: an administrator sets one
    assert requests.post(hub.url + "/hub/login", data={"username": "imp4", "password": ""}, timeout=30).status_code != 302
    assert api(hub, "PUT", "/imp4/password", token, json={"password": PASSWORD}).status_code == 200
    hub.login("imp4", PASSWORD)


@pytest.mark.parametrize("body, content_type, status, words", [
    ("ann,ann@example.org", "text/plain", 415, "text/csv or application/json"),
    ("{", "application/json", 400, "The JSON cannot be read"),
    ("", "text/csv", 400, "no accounts"),
    ("ann,ann@example.org", "text/csv;state", 400, None),
])
def test_an_unreadable_import_changes_nothing(hub, token, body, content_type, status, words):
    before = api(hub, "GET", "?limit=1", token).json()["total"]
    query = "?state=maybe" if words is None else ""
    response = api(hub, "POST", query, token, data=body, headers={"Content-Type": content_type})
    assert response.status_code == status
    assert (words or "pending or approved") in response.json()["message"]
    assert api(hub, "GET", "?limit=1", token).json()["total"] == before


def test_email_changes_are_checked(hub, token, department):
    assert api(hub, "PATCH", "/p02", token, json={"email": " p02@new.example.org "}).json()["email"] == "p02@new.example.org"
    taken = api(hub, "PATCH", "/p03", token, json={"email": "A05@physics.EXAMPLE.org"})
    assert (taken.status_code, taken.json()["message"]) == (409, "Another account has this email address.")
    # its own address in another case is no conflict
    assert api(hub, "PATCH", "/a05", token, json={"email": "a05@physics.example.org"}).status_code == 200
    for body, status in [({"email": "not-an-address"}, 400), ({"email": 3}, 400), ({"email": "x@y.org", "admin": True}, 400), ([], 400)]:
        assert api(hub, "PATCH", "/p03", token, json=body).status_code == status, body
    assert api(hub, "PATCH", "/nobody", token, json={"email": "n@example.org"}).status_code == 404
    assert api(hub, "GET", "/p03", token).json()["email"] == "p03@maths.example.org"
    # a sign-up with an address taken in another case is refused
    session = requests.Session()
    session.get(hub.url + "/hub/signup", timeout=30)
    refused = session.post(hub.url + "/hub/signup", timeout=60, data={
        "username": "newp", "email": "P02@NEW.example.org", "signup_password": PASSWORD,
        "signup_password_confirmation": PASSWORD, "_xsrf": session.cookies.get("_xsrf")})
    assert refused.status_code == 400
    assert "An account with this email address exists already." in refused.text


def test_setting_a_password_logs_the_browsers_out_and_keeps_api_tokens(hub, token):
    hub.create_user("pwd1", PASSWORD)
    browser = browser_session(hub, "pwd1", PASSWORD)  # logged in at the hub and at the dashboard
    own_token = hub.token_for("pwd1", PASSWORD)
    assert browser.get(hub.hub_api + "/user", timeout=30).status_code == 200
    for password, words in [("short", "at least 8 characters"), ("password123", "too common")]:
        response = api(hub, "PUT", "/pwd1/password", token, json={"password": password})
        assert (response.status_code, words in response.json()["message"]) == (400, True)
    hub.login("pwd1", PASSWORD)  # nothing changed so far
    response = api(hub, "PUT", "/pwd1/password", token, json={"password": "the-new-pw-2"})
    assert response.status_code == 200
    assert response.json()["sessions_ended"] >= 1
    # the hub's login cookie and the dashboard's OAuth token of that browser
    # are gone (the dashboard's login cache forgets it within a minute)
    assert browser.get(hub.hub_api + "/user", timeout=30).status_code == 403
    tokens = hub.api("GET", "/users/pwd1/tokens", token=token).json()["api_tokens"]
    assert [t["session_id"] for t in tokens] == [None]
    # the token made for scripts still works, the new password logs in, the old one not
    assert hub.api("GET", "/user", token=own_token).status_code == 200
    hub.login("pwd1", "the-new-pw-2")
    with pytest.raises(AssertionError):
        hub.login("pwd1", PASSWORD)


def test_only_administrators_and_only_with_the_xsrf_token(hub, token):
    hub.create_user("plain1", PASSWORD)
    theirs = hub.token_for("plain1", PASSWORD)
    for method, path, kwargs in [
        ("GET", "", {}), ("POST", "", {"data": "x,x@example.org", "headers": {"Content-Type": "text/csv"}}),
        ("GET", "/plain1", {}), ("PATCH", "/plain1", {"json": {"email": "x@example.org"}}),
        ("PUT", "/admin/password", {"json": {"password": "taken-over-pw"}}),
    ]:
        assert api(hub, method, path, theirs, **kwargs).status_code == 403, (method, path)
        assert api(hub, method, path, None, **kwargs).status_code == 403, (method, path)
    # the admin's browser session without X-XSRFToken is not enough
    session = hub.admin_session()
    bare = requests.Session()
    bare.cookies.update(session.cookies)
    assert bare.patch(hub.hub_api + "/accounts/plain1", json={"email": "x@example.org"}, timeout=30).status_code == 403
    assert session.patch(hub.hub_api + "/accounts/plain1", json={"email": "plain1@new.example.org"}, timeout=30).status_code == 200
    # the page's forms: the XSRF token is needed, and an administrator
    for path, data in [("/hub/authorize/plain1/email", {"email": "x@example.org"}),
                       ("/hub/change-password/plain1", {"new_password": "taken-over-pw", "new_password_confirmation": "taken-over-pw"})]:
        assert bare.post(hub.url + path, data=data, allow_redirects=False, timeout=30).status_code == 403, path
        plain = hub.login("plain1", PASSWORD)
        plain_form = {**data, "_xsrf": plain.cookies.get("_xsrf")}
        assert plain.post(hub.url + path, data=plain_form, allow_redirects=False, timeout=30).status_code == 403, path
    assert hub.login("plain1", PASSWORD).get(hub.url + "/hub/authorize", timeout=30).status_code == 403
    assert api(hub, "GET", "/plain1", token).json()["email"] == "plain1@new.example.org"


def test_an_administrator_made_or_unmade_is_let_in_or_refused_at_the_next_page(hub, token):
    hub.create_user("promoted1", PASSWORD)
    browser = hub.login("promoted1", PASSWORD)
    assert browser.get(hub.url + "/hub/authorize", timeout=30).status_code == 403
    for admin, status in [(True, 200), (False, 403), (True, 200)]:
        response = requests.patch(f"{hub.hub_api}/users/promoted1", json={"admin": admin},
                                  headers={"Authorization": f"token {token}"}, timeout=30)
        assert response.status_code == 200, response.text
        # the same login cookie, the roles as they are now
        assert browser.get(hub.url + "/hub/authorize", timeout=30).status_code == status, admin


def test_the_signups_page_is_answered_without_a_hash_of_itself(hub):
    """No ETag: Tornado's is a SHA-1 of the whole page, computed for every
    answer of a page that is made for each request."""
    page = hub.admin_session().get(hub.url + "/hub/authorize", timeout=30)
    assert page.status_code == 200 and 'id="signups"' in page.text
    assert "ETag" not in page.headers
    # (the hub's other pages keep theirs)
    assert "ETag" in hub.admin_session().get(hub.url + "/hub/home", timeout=30).headers


def test_the_email_index_is_in_the_database(hub):
    database = sqlite3.connect(hub.state_dir / "jupyterhub.sqlite")
    try:
        plan = database.execute(
            "EXPLAIN QUERY PLAN SELECT username FROM users_info WHERE lower(email) = ? LIMIT 1", ("a@b.org",)).fetchall()
    finally:
        database.close()
    assert "ix_users_info_email_lower" in " ".join(str(row) for row in plan)


# --- logo and favicon ------------------------------------------------------------------


def test_the_logo_file_is_served_by_the_hub_to_anyone(hub):
    response = requests.get(hub.url + "/hub/theme/logo", timeout=30)
    assert response.status_code == 200
    assert response.content == PNG
    assert response.headers["Content-Type"] == "image/png"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    again = requests.get(hub.url + "/hub/theme/logo", headers={"If-None-Match": response.headers["ETag"]}, timeout=30)
    assert again.status_code == 304
    head = requests.head(hub.url + "/hub/theme/logo", timeout=30)
    assert (head.status_code, head.content, head.headers["Content-Type"]) == (200, b"", "image/png")
    # the favicon is a URL: the hub serves no file for it
    assert requests.get(hub.url + "/hub/theme/favicon", timeout=30).status_code == 404


def test_hub_and_dashboard_pages_show_logo_and_favicon(hub):
    login = requests.get(hub.url + "/hub/login", timeout=30).text
    assert 'id="karvdash-logo"' in login and 'src="/hub/theme/logo"' in login
    assert '<link rel="icon" href="https://cdn.example.org/icon.svg"' in login
    hub.create_user("logo1", PASSWORD)
    page = browser_session(hub, "logo1", PASSWORD).get(dashboard_url(hub, "files/private/"), timeout=60).text
    assert 'src="/hub/theme/logo"' in page
    assert 'href="https://cdn.example.org/icon.svg"' in page


def test_a_bad_logo_stops_start_up_with_its_name(tmp_path):
    (tmp_path / "logo.txt").write_text("a logo")
    result = run_hub_until_exit(tmp_path / "state", {"KARVDASH_DASHBOARD_LOGO": str(tmp_path / "logo.txt")})
    assert result.returncode != 0
    assert "setting dashboardLogo:" in result.stderr and "is not a PNG, JPEG, GIF, WebP, ICO or SVG image" in result.stderr


def test_the_accounts_pages_refuse_a_login_cookie_once_replaced_or_its_user_deleted(hub, token):
    """Their login check remembers a cookie it has seen (no query the next
    time): a password change, which replaces the user's cookie id, and a
    deletion must still end that browser's access to them at once."""
    for name in ("boss1", "boss2"):
        hub.create_user(name, PASSWORD)
        assert hub.api("PATCH", f"/users/{name}", token=token, json={"admin": True}).status_code == 200
    browsers = {name: hub.login(name, PASSWORD) for name in ("boss1", "boss2")}

    def answers(browser):
        page = browser.get(hub.url + "/hub/authorize", allow_redirects=False, timeout=30)
        accounts = browser.get(hub.hub_api + "/accounts?limit=1", allow_redirects=False, timeout=30)
        return page.status_code, accounts.status_code

    # what a browser that never logged in gets
    refused = answers(requests.Session())
    assert refused == (403, 403)
    for browser in browsers.values():
        # twice: the second check is the remembered one
        assert answers(browser) == (200, 200)
        assert answers(browser) == (200, 200)
    assert api(hub, "PUT", "/boss1/password", token, json={"password": "a-new-boss-pw-1"}).status_code == 200
    assert answers(browsers["boss1"]) == refused
    assert hub.api("DELETE", "/users/boss2", token=token).status_code == 204
    assert answers(browsers["boss2"]) == refused
    # a new login of boss1 works as before
    assert answers(hub.login("boss1", "a-new-boss-pw-1")) == (200, 200)
