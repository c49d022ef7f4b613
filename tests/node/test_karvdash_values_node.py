"""A Karvdash 2.x values file (tests/values/karvdash-2.yaml, every key of
Karvdash's README table) installs the chart on the real node and starts
the hub, the dashboard and the webhook: each logs one warning per Karvdash
key it reads, the hub writes jupyterhub.log into the logs host folder, and
its pages carry the file's title.

What the file names that this cluster does not have is pointed at what it
has: its PersistentVolumeClaims become host folders of the test, and the
images come from the node's registry (``hub.image`` and the others, since
Karvdash's own ``image``, which the file keeps, cannot run karvdash-hub)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tests.kube.fixtures import wait_for
from tests.node.conftest import NAME, installed_chart

pytestmark = [pytest.mark.node, pytest.mark.integration]

KARVDASH_VALUES = Path(__file__).resolve().parents[1] / "values" / "karvdash-2.yaml"
HUB_KEYS = ["djangoDebug", "djangoSecret", "dockerRegistry", "dockerRegistryNoVerify", "htpasswdExportDir"]
WEBHOOK_KEYS = ["djangoDebug", "htpasswdExportDir"]


def warned(log: str) -> list[str]:
    return [line.split("Karvdash value ", 1)[1].split()[0] for line in log.splitlines() if "Karvdash value " in line]


def test_a_karvdash_values_file_starts_the_chart(real_node, hub_image, tmp_path):
    values = yaml.safe_load(KARVDASH_VALUES.read_text())
    karvdash = values["karvdash"]
    logs = tmp_path / "logs"
    logs.mkdir()
    os.chown(logs, 1000, 1000)  # the image runs as uid 1000
    # installed_chart's host folders for state and files; no claims here
    for key in ("stateHostPath", "filesURL"):
        del karvdash[key]
    karvdash.update(stateVolumeClaim="", logsVolumeClaim="", logsHostPath=str(logs))
    assert values["image"].startswith("carvicsforth/karvdash:")
    for component in ("hub", "proxy", "dashboard", "webhook"):
        values[component] = {"image": hub_image}
    with installed_chart(real_node, hub_image, tmp_path, "karvdash-values", values) as ns:
        def log_of(component):
            return real_node.kubectl("logs", "-n", ns, f"deployment/{NAME}-{component}", check=False).stdout

        def logs_with_warnings():
            found = [log_of(component) for component in ("hub", "dashboard", "webhook")]
            return found if all(warned(log) for log in found) else None

        hub_log, dashboard_log, webhook_log = wait_for(logs_with_warnings, 60, "the warnings in the logs")
        assert warned(hub_log) == HUB_KEYS, hub_log[-3000:]
        assert warned(dashboard_log) == HUB_KEYS, dashboard_log[-3000:]
        assert warned(webhook_log) == WEBHOOK_KEYS, webhook_log[-3000:]
        # djangoDebug: debug messages; logsHostPath: the hub's log file there, with the warnings
        assert "[D " in hub_log
        assert warned((logs / "jupyterhub.log").read_text()) == HUB_KEYS
        service = json.loads(real_node.kubectl("get", "service", f"{NAME}-proxy-public", "-n", ns,
                                               "-o", "json").stdout)
        ip, port = service["spec"]["clusterIP"], service["spec"]["ports"][0]["port"]

        def login_page():
            try:
                status, body = real_node.netns_http_get(f"http://{ip}:{port}/hub/login", timeout=5)
            except OSError:
                return None
            return body if status == 200 else None

        body = wait_for(login_page, 60, "/hub/login through the proxy")
        assert b"Lab Dashboard" in body and b"karvdash-theme-carv" in body
