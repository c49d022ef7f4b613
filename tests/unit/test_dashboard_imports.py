"""The dashboard starts without the libraries only some of its features use:
the Kubernetes client (services and datasets, on Kubernetes), jsonschema
(checking a template), boto3 (an S3 file domain), mistune (the docs pages).
Each costs memory the dashboard would hold idle, and jsonschema seconds of
CPU at every start. A fresh interpreter does what ``karvdash-dashboard``
does before it listens (settings, context, application) and reports the
modules it loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = ("kubernetes_asyncio", "kubernetes", "kubernetes_validate", "jsonschema", "boto3", "botocore", "mistune")

PROBE = f"""
import json, sys
from pathlib import Path
from karvdash_hub.core.paths import SHIPPED_TEMPLATES_DIR
from karvdash_hub.core.settings import load_settings
from karvdash_hub.dashboard.app import make_app, make_context
from karvdash_hub.dashboard.context import HubEnvironment
from karvdash_hub.services import catalogue

heavy = {HEAVY!r}
context = make_context(load_settings(), HubEnvironment.from_environ())
make_app(context)
report = {{"at_start": [m for m in heavy if m in sys.modules]}}
if sys.argv[2] == "check-templates":
    templates, problems = catalogue.file_catalogue(SHIPPED_TEMPLATES_DIR, Path(sys.argv[1]) / "templates", [])
    report.update(after_templates=[m for m in heavy if m in sys.modules], templates=len(templates), problems=problems)
print(json.dumps(report))
"""

HUB = {
    "JUPYTERHUB_SERVICE_PREFIX": "/services/karvdash/",
    "JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api",
    "JUPYTERHUB_API_TOKEN": "t" * 32,
    "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:2",
}
MODES = {
    "local": {},
    "kubernetes": {
        "KARVDASH_MODE": "kubernetes",
        "KARVDASH_INGRESS_URL": "https://lab.example.org",
        "KARVDASH_DASHBOARD_URL": "http://karvdash-dashboard:8080",
        "KARVDASH_DASHBOARD_API_TOKEN": "d" * 32,
    },
}


def started_dashboard(tmp_path, mode: str, then: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KARVDASH_", "JUPYTERHUB_"))}
    env.update(HUB, KARVDASH_STATE_DIR=str(tmp_path), **MODES[mode])
    result = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path), then], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_in_local_mode_the_dashboard_starts_without_them_and_loads_jsonschema_for_a_template(tmp_path):
    report = started_dashboard(tmp_path, "local", then="check-templates")
    assert report["at_start"] == []
    # the shipped templates are checked, with jsonschema loaded for it, and nothing else
    assert report["templates"] > 0 and report["problems"] == []
    assert report["after_templates"] == ["jsonschema"]


def test_on_kubernetes_the_dashboard_starts_without_them_until_a_feature_asks(tmp_path):
    assert started_dashboard(tmp_path, "kubernetes")["at_start"] == []
