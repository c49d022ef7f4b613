"""How the dashboard registers with JupyterHub: service entry, scopes, roles."""

from __future__ import annotations

import sys

from traitlets.config import Config

from karvdash_hub.core.scopes import custom_scopes, user_scopes
from karvdash_hub.core.settings import load_settings
from karvdash_hub.hub import service as hubservice

FILE_SCOPES = ["custom:karvdash:files:read", "custom:karvdash:files:write"]


def settings_for(config=None, environ=None):
    return load_settings(config=config, environ=environ if environ is not None else {"KARVDASH_STATE_DIR": "/tmp/k"})


def test_custom_scopes_cover_every_feature_with_read_and_write():
    scopes = custom_scopes()
    for feature in ("files", "services", "templates", "datasets", "images"):
        for action in ("read", "write"):
            assert scopes[f"custom:karvdash:{feature}:{action}"]["description"]
    assert len(scopes) == 10


def test_local_service_is_started_by_the_hub_with_the_same_settings(tmp_path):
    environ = {
        "KARVDASH_STATE_DIR": str(tmp_path),
        "KARVDASH_VALUES": str(tmp_path / "values.yaml"),
        "KARVDASH_ISSUES_URL": "https://issues.example.org",
        "PATH": "/usr/bin",
    }
    (tmp_path / "values.yaml").write_text("dashboardTitle: Lab\n")
    config = Config()
    config.KarvdashConfig.datasetsAvailable = True
    config.KarvdashConfig.allowedHostPathDirs = ["/data", "/scratch"]
    settings = load_settings(config=config, environ=environ)
    spec = hubservice.service_spec(settings, environ)
    assert spec["name"] == "karvdash"
    assert spec["url"].startswith("http://127.0.0.1:")
    assert spec["command"] == [sys.executable, "-m", "karvdash_hub.dashboard.supervisor"]
    assert spec["oauth_no_confirm"] is True
    assert spec["oauth_client_allowed_scopes"] == sorted(custom_scopes())
    env = spec["environment"]
    assert env["KARVDASH_VALUES"] == str(tmp_path / "values.yaml")
    assert env["KARVDASH_ISSUES_URL"] == "https://issues.example.org"
    assert env["KARVDASH_DATASETS_AVAILABLE"] == "true"
    assert "PATH" not in env
    # the service reads these back to the very same settings
    again = load_settings(environ=env)
    for name in ("dashboardTitle", "issuesURL", "datasetsAvailable", "allowedHostPathDirs", "stateDir"):
        assert getattr(again, name) == getattr(settings, name), name


def test_the_dashboard_gets_the_hubs_kubeconfig():
    environ = {"KARVDASH_STATE_DIR": "/tmp/k", "KUBECONFIG": "/etc/hub/kubeconfig", "HOME": "/root"}
    env = hubservice.service_spec(settings_for(environ=environ), environ)["environment"]
    assert env["KUBECONFIG"] == "/etc/hub/kubeconfig" and "HOME" not in env
    assert "KUBECONFIG" not in hubservice.service_spec(settings_for(), {"KARVDASH_STATE_DIR": "/tmp/k"})["environment"]


def test_a_configured_port_is_used():
    settings = settings_for(environ={"KARVDASH_STATE_DIR": "/tmp/k", "KARVDASH_DASHBOARD_PORT": "18123"})
    assert hubservice.service_spec(settings, {})["url"] == "http://127.0.0.1:18123"


def test_a_dashboard_of_its_own_is_only_proxied():
    token = "t" * 40
    settings = settings_for(
        environ={
            "KARVDASH_STATE_DIR": "/tmp/k",
            "KARVDASH_DASHBOARD_URL": "http://karvdash-dashboard:8080",
            "KARVDASH_DASHBOARD_API_TOKEN": token,
        }
    )
    spec = hubservice.service_spec(settings, {})
    assert spec["url"] == "http://karvdash-dashboard:8080"
    assert spec["api_token"] == token
    assert "command" not in spec and "environment" not in spec


def test_the_token_of_a_dashboard_of_its_own_is_stored_as_a_generated_one():
    settings = settings_for(
        environ={
            "KARVDASH_STATE_DIR": "/tmp/k",
            "KARVDASH_DASHBOARD_URL": "http://karvdash-dashboard:8080",
            "KARVDASH_DASHBOARD_API_TOKEN": "t" * 40,
        }
    )
    c = Config()
    hubservice.configure_service(c, settings)
    assert c.JupyterHub.trust_user_provided_tokens is True
    # an administrator's own choice stays
    c = Config()
    c.JupyterHub.trust_user_provided_tokens = False
    hubservice.configure_service(c, settings)
    assert c.JupyterHub.trust_user_provided_tokens is False
    # in local mode the hub makes the dashboard's token itself
    c = Config()
    hubservice.configure_service(c, settings_for())
    assert "trust_user_provided_tokens" not in c.JupyterHub


def test_configure_service_merges_with_existing_roles_scopes_and_services():
    c = Config()
    c.JupyterHub.load_roles = [
        {"name": "user", "scopes": ["self", "read:groups"]},
        {"name": "teachers", "scopes": ["admin:users"], "groups": ["teachers"]},
    ]
    c.JupyterHub.custom_scopes = {"custom:other:thing": {"description": "other"}}
    c.JupyterHub.services = [{"name": "other", "url": "http://127.0.0.1:9"}]
    hubservice.configure_service(c, settings_for())
    roles = {role["name"]: role for role in c.JupyterHub.load_roles}
    assert roles["user"]["scopes"] == ["self", "read:groups", *user_scopes()]
    assert roles["teachers"] == {"name": "teachers", "scopes": ["admin:users"], "groups": ["teachers"]}
    assert roles["server"]["scopes"][:2] == ["users:activity!user", "access:servers!server"]
    assert "access:services!service=karvdash" in roles["server"]["scopes"]
    assert set(FILE_SCOPES) <= set(roles["server"]["scopes"])
    assert roles["karvdash-dashboard"] == {
        "name": "karvdash-dashboard",
        "scopes": ["read:users:name", "read:users:groups", "read:servers"],
        "services": ["karvdash"],
    }
    assert set(c.JupyterHub.custom_scopes) == {"custom:other:thing", *custom_scopes()}
    assert [s["name"] for s in c.JupyterHub.services] == ["other", "karvdash"]


def test_configure_service_defines_the_user_role_keeping_self_and_leaves_a_given_service():
    c = Config()
    c.JupyterHub.services = [{"name": "karvdash", "url": "http://127.0.0.1:9999", "api_token": "x" * 40}]
    hubservice.configure_service(c, settings_for())
    roles = {role["name"]: role for role in c.JupyterHub.load_roles}
    assert roles["user"]["scopes"][0] == "self"
    assert set(user_scopes()) <= set(roles["user"]["scopes"])
    assert c.JupyterHub.services == [{"name": "karvdash", "url": "http://127.0.0.1:9999", "api_token": "x" * 40}]
