"""Revoking an approved account while its server runs, on a real hub in
local mode: the server stops at once and its owner cannot start it again."""

from __future__ import annotations

import time

import pytest
import requests

from tests.hubprocess import start_hub

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    running = start_hub(tmp_path_factory.mktemp("hub"))
    yield running
    running.stop()


def wait_until(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)
    return value


def process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            # a zombie has exited; only its exit status is left to collect
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def status(hub, token: str) -> int:
    answer = requests.get(
        hub.url + "/user/hana/api/status",
        headers={"Authorization": f"token {token}"},
        allow_redirects=False,
        timeout=30,
    )
    return answer.status_code


def test_revoking_a_running_users_account_stops_their_server(hub):
    hub.create_user("hana", "hana-password-1")
    session = hub._sessions["hana"]
    token = hub.token_for("hana")
    admin = hub.admin_session()
    admin_token = hub.token_for("admin", hub.admin_password)

    started = hub.api("POST", "/users/hana/server", token=token, json={"profile": "jupyter"})
    assert started.status_code in (201, 202), started.text

    def server():
        return hub.api("GET", "/users/hana", token=admin_token).json()["servers"].get("", {})

    running = wait_until(lambda: (s := server()).get("ready") and s, "hana's server", timeout=120)
    pid = running["state"]["pid"]
    assert process_alive(pid)
    assert status(hub, token) == 200
    # the admin reaches any running server: this answer depends only on the server, not on hana's token
    assert status(hub, admin_token) == 200

    revoked = admin.post(
        f"{hub.url}/hub/authorize/hana", data={"_xsrf": admin.cookies.get("_xsrf")}, allow_redirects=False, timeout=60
    )
    assert revoked.status_code == 302
    assert "karvdash-deactivated" in hub.api("GET", "/users/hana", token=admin_token).json()["groups"]

    # stopped before the revoke answered: no server, no process, no route
    assert server() == {}
    wait_until(lambda: not process_alive(pid), f"server process {pid} to exit", timeout=10)
    assert status(hub, admin_token) != 200
    assert status(hub, token) != 200

    # and hana cannot start it again, with her token, her cookie or a new login
    assert hub.api("POST", "/users/hana/server", token=token, json={"profile": "jupyter"}).status_code == 403
    again = session.post(f"{hub.hub_api}/users/hana/server", json={"profile": "jupyter"}, timeout=30)
    assert again.status_code in (401, 403), again.status_code
    with pytest.raises(AssertionError):
        hub.login("hana", "hana-password-1")
    assert server() == {}
    assert status(hub, admin_token) != 200
