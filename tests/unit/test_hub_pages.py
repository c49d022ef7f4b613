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

from karvdash_hub.core.scopes import ACCESS_SCOPE, custom_scopes
from karvdash_hub.dashboard.pages import PageUser
from karvdash_hub.hub.config import configure
from karvdash_hub.hub.tokens import with_dashboard_access
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


def info(name, approved):
    return SimpleNamespace(username=name, email=f"{name}@example.org", is_authorized=approved)


def test_sign_ups_offer_no_revoke_on_the_own_row_and_show_one_message(hub_config):
    users = [info("admin", True), info("bob", True), info("carl", False)]
    page = render(hub_config, "authorization-area.html", users=users, alert="alert-success", result_message="bob is approved and can log in.")
    buttons = {row["id"]: [b.get_text(strip=True) for b in row.select("button")] for row in page.select("#signups tbody tr")}
    assert buttons == {"admin": [], "bob": ["Revoke"], "carl": ["Approve", "Discard"]}
    message = page.select(".karvdash-flash-message")
    assert [m.get_text(strip=True) for m in message] == ["bob is approved and can log in."]
    assert "alert-success" in message[0]["class"]
    # an administrator can still revoke another administrator's approval
    other = render(hub_config, "authorization-area.html", user="root", users=users)
    assert other.select_one("tr#admin button").get_text(strip=True) == "Revoke"
    assert other.select(".karvdash-flash-message") == []


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
