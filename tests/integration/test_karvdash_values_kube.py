"""A Karvdash 2.x values file through the chart to the webhook: the values
file the chart renders from tests/values/karvdash-2.yaml for the webhook
starts the real ``karvdash-webhook`` (against the tests' kube-apiserver,
with the chart's service account and webhook configurations), which logs
one warning per Karvdash key it reads and logs debug messages
(``djangoDebug``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.integration.test_chart_kube import render_chart
from tests.integration.test_webhook_kube import running_webhook

pytestmark = [pytest.mark.kube, pytest.mark.integration]

KARVDASH_VALUES = Path(__file__).resolve().parents[1] / "values" / "karvdash-2.yaml"


def test_the_webhook_reads_the_values_the_chart_renders_from_a_karvdash_file(
        kube_cluster, kube_api_client, tmp_path_factory, tmp_path):
    objects = render_chart(kube_cluster, tmp_path, yaml.safe_load(KARVDASH_VALUES.read_text()), "karvdash")
    [secret] = [o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"].endswith("-webhook-values")]
    values = tmp_path / "webhook-values.yaml"
    values.write_text(secret["stringData"]["values.yaml"])
    with running_webhook(kube_cluster, kube_api_client, tmp_path_factory, env={"KARVDASH_VALUES": str(values)},
                         chart_namespace="karvdash-values-webhook") as process:
        log = process.log.read_text()
    warnings = [line.split("Karvdash value ", 1)[1] for line in log.splitlines() if "Karvdash value " in line]
    assert [warning.split()[0] for warning in warnings] == ["djangoDebug", "htpasswdExportDir"], log
    assert warnings[0] == "djangoDebug is deprecated: it is read as debug; rename it"
    assert " DEBUG " in log
