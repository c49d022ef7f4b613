"""The hub's pages in the project's layout (Sign-ups, change password,
Token, Servers), dashboard tokens on the hub's token API, and where login
lands."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from bs4 import BeautifulSoup
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from jupyterhub._data import DATA_FILES_PATH
from traitlets.config import Config

from karvdash_hub.accounts.imports import Refusal
from karvdash_hub.accounts.listing import Listing
from karvdash_hub.accounts.store import ImportReport, Page
from karvdash_hub.core.scopes import ACCESS_SCOPE, custom_scopes
from karvdash_hub.dashboard.pages import PageUser
from karvdash_hub.hub.config import configure
from karvdash_hub.hub.tokens import with_dashboard_access
from karvdash_hub.theme.signups import ACTIONS_FORM, actions_form, signup_rows
from karvdash_hub.theme.variables import token_presets

FILES_READ = "custom:karvdash:files:read"
FILES_WRITE = "custom:karvdash:files:write"


@pytest.fixture
def hub_config(tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("KARVDASH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("KARVDASH_STATE_DIR", str(tmp_path / "state"))
    c = Config()
    configure(c)
    return c


def render(c: Config, name: str, user="admin", **variables) -> BeautifulSoup:
    """A hub page as JupyterHub renders it with the configured templates."""
    jupyterhub_templates = str(Path(DATA_FILES_PATH) / "templates")
    loader = ChoiceLoader([
        PrefixLoader({"templates": FileSystemLoader([jupyterhub_templates])}, "/"),
        FileSystemLoader([*c.JupyterHub.template_paths, jupyterhub_templates]),
    ])
    environment = Environment(loader=loader, autoescape=True)
    html = environment.get_template(name).render(
        base_url="/hub/", prefix="/", user=PageUser(user) if isinstance(user, str) else user, login_url="/hub/login", logout_url="/hub/logout",
        static_url=lambda path, **_: f"/hub/static/{path}", version_hash="", services=[], parsed_scopes={"admin-ui"},
        xsrf_token="x", xsrf="x", announcement="", no_spawner_check=True,
        **{**c.JupyterHub.template_vars, **variables},
    )
    return BeautifulSoup(html, "html.parser")


def info(name, approved, number=1):
    return SimpleNamespace(username=name, email=f"{name}@example.org", is_authorized=approved, id=number)


def signups(users, total=None, **listing):
    """The Sign-ups page's variables for one page of ``users``."""
    chosen = Listing(**listing)
    return {"page": Page(chosen, len(users) if total is None else total, users), "listing": chosen,
            "signup_rows": signup_rows, "signup_actions_form": actions_form}


def targets(row) -> list[str]:
    """Where a row's forms and buttons post: the email form's action, then
    each action button's own address (in the page's actions form)."""
    return ([form["action"] for form in row.select("form")]
            + [button["formaction"] for button in row.select("button[formaction]")])


def test_sign_ups_offer_no_revoke_on_the_own_row_and_show_one_message(hub_config):
    users = [info("admin", True), info("bob", True), info("carl", False)]
    page = render(hub_config, "authorization-area.html", **signups(users), alert="alert-success", result_message="bob is approved and can log in.")
    buttons = {row["id"]: [b.get_text(strip=True) for b in row.select("td.text-end button")] for row in page.select("#signups tbody tr")}
    assert buttons == {"admin": [], "bob": ["Revoke"], "carl": ["Approve", "Discard"]}
    message = page.select(".karvdash-flash-message")
    assert [m.get_text(strip=True) for m in message] == ["bob is approved and can log in."]
    assert "alert-success" in message[0]["class"]
    # an administrator can still revoke another administrator's approval
    other = render(hub_config, "authorization-area.html", user="root", **signups(users))
    assert other.select_one("tr#admin td.text-end button").get_text(strip=True) == "Revoke"
    assert other.select(".karvdash-flash-message") == []


def test_sign_ups_page_links_keep_the_listing_and_page_on(hub_config):
    users = [info(f"u{n}", n % 2 == 0, n) for n in range(20, 40)]
    page = render(hub_config, "authorization-area.html", **signups(users, total=95, search="u", sort="email", order="desc", limit=20, offset=20))
    assert page.select_one("#signups-count").get_text(strip=True) == "21–40 of 95 accounts"
    assert page.select_one("#page-number").get_text(strip=True) == "Page 2 of 5"
    assert page.select_one("#page-previous")["href"] == "?search=u&sort=email&order=desc&limit=20"
    assert page.select_one("#page-next")["href"] == "?search=u&sort=email&order=desc&limit=20&offset=40"
    # the current sort column turns around, another starts ascending, both from the first page
    assert page.select_one("#sort-email")["href"] == "?search=u&sort=email&limit=20"
    assert page.select_one("#sort-email")["aria-sort"] == "descending"
    assert page.select_one("#sort-created")["href"] == "?search=u&sort=created&limit=20"
    # every form comes back to this page
    assert targets(page.select_one("tr#u21")) == [
        "/hub/authorize/u21/email?search=u&sort=email&order=desc&limit=20&offset=20",
        "/hub/authorize/u21?search=u&sort=email&order=desc&limit=20&offset=20",
        "/hub/discard/u21?search=u&sort=email&order=desc&limit=20&offset=20",
    ]
    assert page.select_one("tr#u21 input[name=email]")["value"] == "u21@example.org"
    assert page.select_one("#search-input")["value"] == "u"


def test_sign_up_rows_escape_what_an_account_holds_and_carry_the_xsrf_token(hub_config):
    odd = SimpleNamespace(username='x<"&y', email='a"<b>&\'@example.org', is_authorized=False, id=7)
    page = render(hub_config, "authorization-area.html", **signups([odd, info("bob", True, 8)], search="a&b"))
    row = page.select_one("#signups tbody tr")
    assert row["id"] == 'x<"&y' and row["data-approved"] == "no"
    assert row.select_one("td").get_text() == 'x<"&y'
    assert row.select_one("input[name=email]")["value"] == 'a"<b>&\'@example.org'
    assert row.select_one("input[name=email]")["aria-label"] == 'Email of x<"&y'
    assert targets(row) == [
        "/hub/authorize/x%3C%22%26y/email?search=a%26b", "/hub/authorize/x%3C%22%26y?search=a%26b",
        "/hub/discard/x%3C%22%26y?search=a%26b"]
    assert row.select("button")[2]["onclick"] == "return confirm('Discard the sign-up of x<\"&y?');"
    assert row.select_one("a")["href"] == "/hub/change-password/x%3C%22%26y?search=a%26b"
    # every email form posts the XSRF token, and every action button posts
    # the page's actions form, which has it (and nothing else to send)
    forms = page.select("#signups tbody form")
    assert len(forms) == 2 and all(f.select_one("input[name=_xsrf]")["value"] == "x" for f in forms)
    buttons = page.select("#signups tbody button[formaction]")
    assert len(buttons) == 3 and {b["form"] for b in buttons} == {ACTIONS_FORM}
    actions = page.select_one(f"form#{ACTIONS_FORM}")
    assert actions["method"] == "post" and actions.has_attr("hidden")
    assert [(i["name"], i["value"]) for i in actions.select("input")] == [("_xsrf", "x")]
    assert [tr["id"] for tr in page.select("#signups tbody tr")] == ['x<"&y', "bob"]


def test_sign_ups_last_page_and_no_match(hub_config):
    last = render(hub_config, "authorization-area.html", **signups([info("zed", True, 9)], total=51, offset=50))
    assert "disabled" in last.select_one("#page-next").parent["class"]
    assert "disabled" not in last.select_one("#page-previous").parent["class"]
    none = render(hub_config, "authorization-area.html", **signups([], search="nobody"))
    assert none.select_one("#signups-count").get_text(strip=True) == "No accounts match."
    assert none.select_one("#page-number").get_text(strip=True) == "Page 1 of 1"


def test_an_import_report_lists_the_refused_rows(hub_config):
    report = ImportReport(created=[], refused=[Refusal(3, "Bob", "capitals"), Refusal(1, "", "no email")], approved=False)
    page = render(hub_config, "authorization-area.html", **signups([]), report=report)
    rows = [[cell.get_text() for cell in row.select("td")] for row in page.select("#import-refused tbody tr")]
    assert rows == [["1", "", "no email"], ["3", "Bob", "capitals"]]


def test_logo_and_favicon_on_every_page(tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("KARVDASH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("KARVDASH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KARVDASH_DASHBOARD_LOGO", "https://cdn.example.org/lab.svg")
    (tmp_path / "icon.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(16))
    monkeypatch.setenv("KARVDASH_DASHBOARD_FAVICON", str(tmp_path / "icon.png"))
    c = Config()
    configure(c)
    for name in ("login.html", "token.html", "authorization-area.html"):
        page = render(c, name, **signups([]))
        assert page.select_one("#karvdash-brand #karvdash-logo")["src"] == "https://cdn.example.org/lab.svg"
        assert [link["href"] for link in page.select("link[rel=icon]")] == ["/hub/theme/favicon"]
    # without them: the title alone, and JupyterHub's icon
    plain = render(hub_config_without_images(tmp_path, monkeypatch), "login.html")
    assert plain.select("#karvdash-logo") == []
    assert [link["href"] for link in plain.select("link[rel=icon]")] == ["/hub/static/favicon.ico"]


def hub_config_without_images(tmp_path, monkeypatch):
    monkeypatch.delenv("KARVDASH_DASHBOARD_LOGO")
    monkeypatch.delenv("KARVDASH_DASHBOARD_FAVICON")
    c = Config()
    configure(c)
    return c


@pytest.mark.parametrize("alert, kind", [("alert-info", "alert-success"), ("alert-success", "alert-success"), ("alert-danger", "alert-danger")])
def test_hub_notices_are_green_when_they_went_well(hub_config, alert, kind):
    page = render(hub_config, "signup.html", alert=alert, result_message="Your information has been sent to the admin.")
    message = page.select_one("#signup-message")
    assert kind in message["class"] and "karvdash-flash-message" in message["class"]


def test_the_layout_turns_success_green(hub_config):
    style = render(hub_config, "signup.html").find("style").get_text()
    assert "--bs-success: #198754" in style and "--bs-success-bg-subtle: #d1e7dd" in style


@pytest.mark.parametrize(
    "name, fields",
    [
        ("change-password.html", ["old_password", "new_password", "new_password_confirmation"]),
        ("change-password-admin.html", ["new_password", "new_password_confirmation"]),
    ],
)
def test_password_pages_are_bootstrap_5_with_a_toggle_per_field(hub_config, name, fields):
    page = render(hub_config, name, user_name="erin", alert="alert-success", result_message="Your password has been changed successfully!")
    assert page.select_one("#karvdash-brand") is not None
    assert [f["name"] for f in page.select("#change-password-form input[type=password]")] == fields
    assert [b["aria-controls"] for b in page.select(".karvdash-show-password")] == [f + "_input" for f in fields]
    assert page.select(".input-group-addon, .col-xs-6, .btn-jupyter, #eye") == []
    assert "alert-success" in page.select_one("#change-password-message")["class"]


def test_token_page_offers_the_dashboard_presets(hub_config):
    page = render(hub_config, "token.html", token_expires_in_options_html="", api_tokens=[], oauth_clients=[])
    presets = {b["id"]: b["data-scopes"].split() for b in page.select(".karvdash-token-preset")}
    assert presets == {
        "token-preset-files-read": [ACCESS_SCOPE, FILES_READ],
        "token-preset-files": [ACCESS_SCOPE, FILES_READ, FILES_WRITE],
        "token-preset-dashboard": [ACCESS_SCOPE, *custom_scopes()],
    }
    # the ids JupyterHub's token.js reads
    for id in ("request-token-form", "token-note", "token-expiration-seconds", "token-scopes", "token-result", "token-area"):
        assert page.select_one(f"#{id}") is not None, id
    assert [p[0] for p in token_presets()] == ["files-read", "files", "dashboard"]


@pytest.mark.parametrize(
    "asked, given",
    [
        ([FILES_READ], [FILES_READ, ACCESS_SCOPE]),
        ([ACCESS_SCOPE, FILES_READ], [ACCESS_SCOPE, FILES_READ]),
        (["access:services", FILES_WRITE], ["access:services", FILES_WRITE]),
        (["read:users:name!user=amy"], ["read:users:name!user=amy"]),
        ([], []),
    ],
)
def test_a_dashboard_scope_comes_with_the_access_scope(asked, given):
    assert with_dashboard_access(asked) == given


def test_the_token_api_route_is_the_hubs_own_with_the_access_scope(hub_config):
    from jupyterhub.apihandlers.users import UserTokenListAPIHandler

    from karvdash_hub.hub.tokens import DashboardTokenListHandler, token_handlers

    assert token_handlers() == [(r"/api/users/([^/]+)/tokens", DashboardTokenListHandler)]
    assert issubclass(DashboardTokenListHandler, UserTokenListAPIHandler)


def test_servers_page_describes_profile_and_size(hub_config):
    from karvdash_hub.hub.deployment import current

    profiles = current().profiles
    started = SimpleNamespace(isoformat=lambda: "2026-01-02T03:04:05")

    def spawner(name, options, active):
        return SimpleNamespace(
            name=name, user_options=options, karvdash_profiles=profiles, ready=active, pending=None, active=active,
            orm_spawner=SimpleNamespace(started=started), last_activity=started,
        )

    default = spawner("", {}, False)
    # a stopped named server is only the hub's database record
    stopped = SimpleNamespace(
        name="own", user_options={"profile": "jupyter", "image--unlisted-choice": "registry.example/lab:1", "resources": "small"},
        started=None, last_activity=None,
    )
    spawners = [default, spawner("exp", {"profile": "jupyter", "image": "scipy", "resources": "small"}, True), stopped]
    user = SimpleNamespace(
        name="sam", escaped_name="sam", json_escaped_name="sam",
        all_spawners=lambda include_default=True: spawners, server_url=lambda name="": f"/user/sam/{name}/" if name else "/user/sam/",
    )
    page = render(hub_config, "home.html", user=user, default_server=default, allow_named_servers=True, named_server_limit_per_user=0, invalid_server_names=[])
    rows = {row["data-server-name"]: row for row in page.select("tr.karvdash-server")}
    assert [(name, row["data-state"]) for name, row in rows.items()] == [("", "stopped"), ("exp", "ready"), ("own", "stopped")]
    jupyter = next(p for p in profiles if p.slug == "jupyter")
    small = jupyter.profile_options["resources"]["choices"]["small"]["display_name"]
    assert rows["exp"].select_one(".server-profile").get_text(" ", strip=True) == "Jupyter Image: SciPy (Python)"
    assert rows["exp"].select_one(".server-size").get_text(strip=True) == small
    assert rows["exp"].select_one(".server-started")["data-time"] == "2026-01-02T03:04:05Z"
    assert rows["own"].select_one(".server-started")["data-time"] == ""
    assert rows["own"].select_one(".server-profile").get_text(" ", strip=True) == "Jupyter Image: registry.example/lab:1"
    assert rows["own"].select_one(".server-size").get_text(strip=True) == small
    assert rows["own"].select_one(".server-activity")["data-time"] == ""
    assert [b["data-action"] for b in rows["exp"].select("[data-action]")] == ["stop"]
    assert [b["data-action"] for b in rows["own"].select("[data-action]")] == ["start", "delete"]
    assert rows["own"].select_one("[data-action=start]")["href"] == "/hub/spawn/sam/own"
    # the default server is started and stopped, never deleted
    assert [b["data-action"] for b in rows[""].select("[data-action]")] == ["start"]
    assert page.select_one("#new-server-form") is not None


def test_login_lands_on_the_dashboard_home(hub_config):
    assert hub_config.JupyterHub.default_url == "/services/karvdash/"


def test_a_deployments_own_landing_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("KARVDASH_STATE_DIR", str(tmp_path / "state"))
    c = Config()
    c.JupyterHub.default_url = "/hub/home"
    configure(c)
    assert c.JupyterHub.default_url == "/hub/home"


async def test_a_start_with_the_defaults_keeps_the_choice_for_a_stopped_server(tmp_path):
    from karvdash_hub.core.paths import SHIPPED_PROFILES_DIR
    from karvdash_hub.core.settings import load_settings
    from karvdash_hub.hub import deployment
    from karvdash_hub.hub.localspawner import KarvdashLocalSpawner
    from karvdash_hub.hub.profiles import load_profiles

    settings = load_settings(environ={"KARVDASH_STATE_DIR": str(tmp_path)})
    deployment.activate(deployment.Deployment(settings=settings, profiles=load_profiles([SHIPPED_PROFILES_DIR])))
    user = SimpleNamespace(name="sam", groups=[], admin=False, url="/user/sam/", escaped_name="sam")
    spawner = KarvdashLocalSpawner(user=user, _deprecated_db_session=None)
    spawner.orm_spawner = SimpleNamespace(user_options={}, server=None, state=None, name="", display_name="")
    await spawner.apply_profile({})
    # what the hub stores is what the Servers page shows once the server is stopped
    assert spawner.orm_spawner.user_options == {"profile": "jupyter", "image": "scipy", "resources": "small"}


def test_the_cookie_login_of_the_accounts_pages_overrides_the_check_jupyterhub_calls():
    # the override would silently do nothing if JupyterHub renamed its check
    import inspect

    from jupyterhub.handlers.base import BaseHandler

    from karvdash_hub.hub.accountpages import AccountsAPIBase, SignUpsPage
    from karvdash_hub.hub.cookielogin import CookieLoginWithoutReloads

    assert "_user_for_cookie" in vars(BaseHandler)
    assert "self._user_for_cookie(self.hub.cookie_name)" in inspect.getsource(BaseHandler.get_current_user_cookie)
    for handler in (SignUpsPage, AccountsAPIBase):
        assert handler._user_for_cookie is CookieLoginWithoutReloads._user_for_cookie
