"""The dashboard as its own process (as in the chart's Deployment): the hub
only proxies to ``dashboardURL`` and shares ``dashboardAPIToken``; the
dashboard gets the same settings and the ``JUPYTERHUB_*`` variables."""

from __future__ import annotations

import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing

import pytest
import requests

from tests.hubprocess import free_port, hub_environment, start_hub
from tests.integration.dashboardsession import PASSWORD, DashboardAPI, browser_session, ensure_user, private_folder

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    state = tmp_path_factory.mktemp("hub")
    port = free_port()
    token = secrets.token_hex(24)
    settings = {"KARVDASH_DASHBOARD_URL": f"http://127.0.0.1:{port}", "KARVDASH_DASHBOARD_API_TOKEN": token}
    hub = start_hub(state, env=settings)
    environment = {
        **hub_environment(state, settings),
        "JUPYTERHUB_SERVICE_NAME": "karvdash",
        "JUPYTERHUB_SERVICE_PREFIX": "/services/karvdash/",
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_API_URL": hub.url + "/hub/api",
        "JUPYTERHUB_API_TOKEN": token,
        "JUPYTERHUB_CLIENT_ID": "service-karvdash",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": "/services/karvdash/oauth_callback",
    }
    log = open(state / "dashboard.log", "wb")
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "karvdash_hub.dashboard"], env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    wait_until_listening(f"http://127.0.0.1:{port}/services/karvdash/api/openapi.json", dashboard)
    yield hub, dashboard
    dashboard.send_signal(signal.SIGTERM)
    dashboard.wait(timeout=30)
    log.close()
    hub.stop()


def test_the_hub_does_not_start_it(deployment):
    hub, dashboard = deployment
    model = hub.api("GET", "/services/karvdash", token=hub.token_for(hub.admin)).json()
    assert model["command"] == [] or not model["command"]
    assert model["pid"] == 0


def test_tokens_and_logins_work_through_the_hubs_proxy(deployment):
    hub, dashboard = deployment
    ensure_user(hub, "dora")
    api = DashboardAPI(hub, hub.token_for("dora"))
    assert api("POST", "files/private/standalone", json={"type": "folder"}).status_code == 201
    assert (private_folder(hub, "dora") / "standalone").is_dir()
    session = browser_session(hub, "dora", PASSWORD)
    listing = DashboardAPI(hub, session=session)("GET", "files/private/")
    assert "standalone" in [e["name"] for e in listing.json()["entries"]]


def test_the_hub_checks_the_dashboards_token_with_one_round_of_hashing(deployment):
    # a token the hub stretches as a password (16384 rounds) costs its event
    # loop 3 to 5 ms on each of the dashboard's calls
    hub, dashboard = deployment
    with closing(sqlite3.connect(hub.state_dir / "jupyterhub.sqlite")) as db:
        [(hashed,)] = db.execute(
            "SELECT api_tokens.hashed FROM api_tokens JOIN services ON api_tokens.service_id = services.id"
            " WHERE services.name = 'karvdash'"
        ).fetchall()
    assert hashed.split(":")[:2] == ["sha512", "1"]


def wait_until_listening(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.3)
    raise AssertionError(f"nothing listens at {url}")


def test_it_stops_cleanly_on_sigterm(tmp_path):
    port = free_port()
    environment = {
        **hub_environment(tmp_path),
        "JUPYTERHUB_SERVICE_PREFIX": "/services/karvdash/",
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
        "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
        "JUPYTERHUB_API_TOKEN": "x" * 40,
        "JUPYTERHUB_CLIENT_ID": "service-karvdash",
    }
    process = subprocess.Popen([sys.executable, "-m", "karvdash_hub.dashboard"], env=environment, stderr=subprocess.PIPE)
    wait_until_listening(f"http://127.0.0.1:{port}/services/karvdash/api/openapi.json", process)
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors.decode()
    assert b"karvdash dashboard stopped" in errors


def test_missing_hub_variables_are_named(tmp_path):
    environment = {k: v for k, v in hub_environment(tmp_path).items() if not k.startswith("JUPYTERHUB_")}
    done = subprocess.run(
        [sys.executable, "-m", "karvdash_hub.dashboard"], env=environment, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "JUPYTERHUB_SERVICE_PREFIX, JUPYTERHUB_API_URL, JUPYTERHUB_API_TOKEN not set" in done.stderr
