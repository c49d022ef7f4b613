"""The Workflows entry of the navigation bar (argoURL), in the page layout
the hub's pages and the dashboard's share (karvdash_hub/templates/page.html)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from jupyterhub._data import DATA_FILES_PATH
from traitlets.config import Config

from karvdash_hub.core.settings import load_settings
from karvdash_hub.dashboard.pages import PageRenderer, PageUser
from karvdash_hub.hub.config import configure
from karvdash_hub.theme.variables import argo_link

ARGO = "https://argo.example.test/argo/"


def settings(tmp_path, **env):
    return load_settings(environ={"KARVDASH_STATE_DIR": str(tmp_path), **{f"KARVDASH_{k}": v for k, v in env.items()}})


def dashboard_page(tmp_path, user: str, **env) -> BeautifulSoup:
    """A dashboard page of ``user``, as the dashboard renders them."""
    probe = tmp_path / "probe"
    probe.mkdir(exist_ok=True)
    (probe / "probe.html").write_text('{% extends "page.html" %}')
    renderer = PageRenderer(settings(tmp_path, **env), base_url="/", hub_prefix="/hub/", extra_dirs=[probe])
    html = renderer.render("probe.html", user={"name": user, "admin": False, "scopes": []}, xsrf_token="x")
    return BeautifulSoup(html, "html.parser")


def hub_page(tmp_path, monkeypatch, user: str, **env) -> BeautifulSoup:
    """The hub's layout for ``user``, with the template paths and variables
    configure() gives JupyterHub, loaded the way JupyterHub loads templates."""
    for name in [n for n in os.environ if n.startswith("KARVDASH_")]:
        monkeypatch.delenv(name)
    for key, value in {"STATE_DIR": str(tmp_path / "state"), **env}.items():
        monkeypatch.setenv(f"KARVDASH_{key}", value)
    c = Config()
    configure(c)
    jupyterhub_templates = str(Path(DATA_FILES_PATH) / "templates")
    loader = ChoiceLoader([
        PrefixLoader({"templates": FileSystemLoader([jupyterhub_templates])}, "/"),
        FileSystemLoader([*c.JupyterHub.template_paths, jupyterhub_templates]),
    ])
    environment = Environment(loader=loader, autoescape=True)
    html = environment.get_template("page.html").render(
        base_url="/hub/", prefix="/", user=PageUser(user), login_url="/hub/login", logout_url="/hub/logout",
        static_url=lambda path, **_: f"/hub/static/{path}", version_hash="", services=[], parsed_scopes=set(),
        xsrf_token="x", announcement="", no_spawner_check=True, **c.JupyterHub.template_vars,
    )
    return BeautifulSoup(html, "html.parser")


def workflows_links(page: BeautifulSoup) -> list[dict]:
    return [
        {"href": a["href"], "target": a.get("target"), "rel": a.get("rel"), "text": a.get_text(strip=True)}
        for a in page.select("#thenavbar a")
        if a.get_text(strip=True) == "Workflows" or a.get("id") == "nav-workflows"
    ]


def test_the_link_opens_the_users_own_namespace_with_namespace_delegation(tmp_path, monkeypatch):
    env = {"ARGO_URL": ARGO, "ARGO_NAMESPACE": "argo", "MODE": "kubernetes", "INGRESS_URL": "https://hub.example.test"}
    expected = [{"href": "https://argo.example.test/argo/workflows/karvdash-alice", "target": "_blank",
                 "rel": ["noopener"], "text": "Workflows"}]
    assert workflows_links(dashboard_page(tmp_path, "alice", **env)) == expected
    assert workflows_links(hub_page(tmp_path, monkeypatch, "alice", **env)) == expected
    # another user, another namespace (namespaceTemplate)
    other = workflows_links(dashboard_page(tmp_path, "bob", NAMESPACE_TEMPLATE="lab-{username}-x", **env))
    assert [link["href"] for link in other] == ["https://argo.example.test/argo/workflows/lab-bob-x"]


def test_without_argo_namespace_the_link_is_argo_url(tmp_path, monkeypatch):
    expected = [{"href": ARGO, "target": "_blank", "rel": ["noopener"], "text": "Workflows"}]
    assert workflows_links(dashboard_page(tmp_path, "alice", ARGO_URL=ARGO)) == expected
    assert workflows_links(hub_page(tmp_path, monkeypatch, "alice", ARGO_URL=ARGO)) == expected


def test_no_link_without_argo_url(tmp_path, monkeypatch):
    for page in (dashboard_page(tmp_path, "alice"), dashboard_page(tmp_path, "alice", ARGO_NAMESPACE="argo"),
                 hub_page(tmp_path, monkeypatch, "alice")):
        assert workflows_links(page) == []
        # the rest of the navigation bar is there
        assert [a.get_text(strip=True) for a in page.select("#thenavbar a.nav-link")][:2] == ["Servers", "Files"]


@pytest.mark.parametrize("url, expected", [
    ("https://argo.example.test", "https://argo.example.test/workflows/karvdash-{username}"),
    ("https://argo.example.test/", "https://argo.example.test/workflows/karvdash-{username}"),
    ("https://example.test:8443/argo?x=1", "https://example.test:8443/argo/workflows/karvdash-{username}?x=1"),
])
def test_link_pattern(tmp_path, url, expected):
    assert argo_link(settings(tmp_path, ARGO_URL=url, ARGO_NAMESPACE="argo")) == expected
    assert argo_link(settings(tmp_path, ARGO_URL=url)) == url
    assert argo_link(settings(tmp_path, ARGO_NAMESPACE="argo")) == ""
