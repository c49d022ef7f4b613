"""Non-Jupyter apps are reachable only through the hub's login.

A real karvdash-hub in local mode with an admin profile whose app is
``python3 -m http.server``: the profile loader wraps it in
jupyter-standaloneproxy, as the pod's sidecar does in Kubernetes.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.hubprocess import start_hub

pytestmark = pytest.mark.integration

PASSWORD = "apps-test-password"
WEB_APP_PROFILE = """\
display_name: Static files
description: A web app without its own login.
app:
  command: [python3, -m, http.server, --bind, 127.0.0.1, "{port}"]
  port: 8080
local:
  available: true
"""


@pytest.fixture(scope="module")
def apps_hub(tmp_path_factory):
    state = tmp_path_factory.mktemp("apps-hub")
    (state / "profiles").mkdir()
    (state / "profiles" / "static.yaml").write_text(WEB_APP_PROFILE)
    hub = start_hub(state)
    hub.create_user("alice", PASSWORD)
    hub.create_user("bob", PASSWORD)
    yield hub
    hub.stop()


def wait_ready(hub, user, token, server, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = hub.api("GET", f"/users/{user}", token).json()["servers"].get(server) or {}
        if model.get("ready"):
            return model
        time.sleep(0.3)
    raise AssertionError(f"{user}/{server} not ready:\n{hub.log()[-3000:]}")


def test_app_needs_the_hub_login(apps_hub):
    token = apps_hub.token_for("alice", PASSWORD)
    response = apps_hub.api("POST", "/users/alice/servers/web", token, json={"user_options": {"profile": "static"}})
    assert response.status_code in (201, 202), response.text
    model = wait_ready(apps_hub, "alice", token, "web")
    assert model["user_options"] == {"profile": "static"}
    url = f"{apps_hub.url}/user/alice/web/"

    anonymous = requests.get(url, allow_redirects=False, timeout=30)
    assert anonymous.status_code == 302
    assert "/hub/api/oauth2/authorize" in anonymous.headers["Location"]

    owner = apps_hub.login("alice", PASSWORD).get(url, timeout=30)
    assert owner.status_code == 200
    assert "Directory listing for /" in owner.text  # http.server's page, through the proxy

    other = apps_hub.login("bob", PASSWORD).get(url, timeout=30)
    assert other.status_code == 403
    assert "Directory listing" not in other.text

    assert "unhandled user_options" not in apps_hub.log()
    assert apps_hub.api("DELETE", "/users/alice/servers/web", token).status_code in (202, 204)
