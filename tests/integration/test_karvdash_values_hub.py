"""A Karvdash 2.x values file starts karvdash-hub in local mode: the real
karvdash-hub command (JupyterHub, configurable-http-proxy, SQLite, the
dashboard it starts) with tests/values/karvdash-2.yaml as its one values
file (every key of Karvdash's README table, its folders pointed at
temporary ones). One warning per Karvdash key in the hub's log, and the
settings take effect in the hub and in the dashboard."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import yaml
from tornado.web import decode_signed_value

from karvdash_hub.core.karvdashvalues import map_karvdash_values
from karvdash_hub.core.settings import KarvdashConfig
from tests.hubprocess import free_port, run_hub_until_exit, start_hub
from tests.integration.dashboardsession import DashboardAPI, browser_session

pytestmark = pytest.mark.integration

KARVDASH_VALUES = Path(__file__).resolve().parents[1] / "values" / "karvdash-2.yaml"
KARVDASH_KEYS = ["stateVolumeClaim", "stateHostPath", "logsVolumeClaim", "logsHostPath", "djangoSecret", "djangoDebug",
                 "htpasswdExportDir", "dockerRegistry", "dockerRegistryNoVerify"]


def karvdash_values(tmp_path: Path) -> tuple[dict, Path]:
    """The Karvdash values file with its folders (state, logs, files) in
    ``tmp_path`` and its registry on a loopback port nothing answers."""
    values = yaml.safe_load(KARVDASH_VALUES.read_text())
    karvdash = values["karvdash"]
    karvdash["stateHostPath"] = str(tmp_path / "state")
    karvdash["logsHostPath"] = str(tmp_path / "logs")
    karvdash["filesURL"] = f"file://{tmp_path / 'files'}"
    karvdash["dockerRegistry"] = f"https://127.0.0.1:{free_port()}"
    path = tmp_path / "karvdash-values.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return values, path


@pytest.fixture(scope="module")
def karvdash_hub(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("karvdash-values")
    values, path = karvdash_values(tmp_path)
    hub = start_hub(tmp_path / "state", env={"KARVDASH_VALUES": str(path)})
    try:
        yield hub, values, tmp_path
    finally:
        hub.stop()


def test_one_warning_per_karvdash_key_in_the_hubs_log(karvdash_hub):
    hub, values, tmp_path = karvdash_hub
    log = hub.log()
    expected = map_karvdash_values(values["karvdash"], None, KarvdashConfig.class_own_traits(config=True)).warnings
    assert [warning.split()[2] for warning in expected] == KARVDASH_KEYS
    for warning in expected:
        # once: not again by the dashboard the hub started, which reads the same file
        assert log.count(warning) == 1, warning
    assert len(re.findall(r"Karvdash value \w+ ", log)) == len(KARVDASH_KEYS)
    # each names the old key and the new one
    assert "Karvdash value dockerRegistry is deprecated: it is read as dockerRegistryURL; rename it" in log
    assert "Karvdash value djangoSecret is deprecated: it is read as hub.config.JupyterHub.cookie_secret" in log
    assert "Karvdash value htpasswdExportDir no longer applies: karvdash-hub exports no htpasswd file" in log
    # logsHostPath is the hub's log file, which has them too
    log_file = (tmp_path / "logs" / "jupyterhub.log").read_text()
    for warning in expected:
        assert log_file.count(warning) == 1, warning


def test_the_settings_take_effect(karvdash_hub):
    hub, values, tmp_path = karvdash_hub
    karvdash = values["karvdash"]
    # djangoDebug: the hub logs debug messages
    assert re.search(r"^\[D \d{4}-", hub.log(), re.MULTILINE)
    # dashboardTitle and dashboardTheme on the hub's pages
    session = hub.login(hub.admin, hub.admin_password)
    page = session.get(hub.url + "/hub/home", timeout=60).text
    assert "Lab Dashboard" in page
    assert "karvdash-theme-carv" in page
    # djangoSecret: the login cookie is signed with its SHA-256
    cookie = session.cookies.get("jupyterhub-hub-login", path="/hub/").strip('"')
    secret = bytes.fromhex(hashlib.sha256(karvdash["djangoSecret"].encode()).hexdigest())
    assert decode_signed_value(secret, "jupyterhub-hub-login", cookie) is not None
    assert decode_signed_value(b"\0" * 32, "jupyterhub-hub-login", cookie) is None
    assert not (tmp_path / "state" / "jupyterhub_cookie_secret").exists()
    # the dashboard, which reads the values file itself: disabled templates and dataset types
    dashboard = browser_session(hub, hub.admin, hub.admin_password)
    api = DashboardAPI(hub, session=dashboard)
    assert api("GET", "").json()["user"] == hub.admin
    templates = api("GET", "templates")
    assert templates.status_code == 200, templates.text
    ids = {template["id"] for template in templates.json()}
    assert "nginx" in ids and not {"kafka", "neo4j"} & ids
    assert api("GET", "openapi.json").json()["info"]["title"] == "Lab Dashboard dashboard API"


def test_a_karvdash_key_and_its_new_name_set_differently_stop_start_up(tmp_path):
    values, path = karvdash_values(tmp_path)
    values["karvdash"]["dockerRegistryURL"] = "https://elsewhere.example.org"
    path.write_text(yaml.safe_dump(values))
    result = run_hub_until_exit(tmp_path / "state", {"KARVDASH_VALUES": str(path)})
    assert result.returncode != 0
    assert ("karvdash-hub: setting dockerRegistry: is Karvdash's name of dockerRegistryURL, which is set too: "
            "keep only dockerRegistryURL") in result.stderr
