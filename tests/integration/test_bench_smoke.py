"""bench/hub_scale.py still runs: a short run with 50 accounts, not timed
(the figures of docs/benchmarks.md come from the full run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_hub_scale_bench_runs_and_reports_every_target():
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "hub_scale.py"), "--users", "50", "--seconds", "0.3", "--rounds", "1",
         "--signups", "2", "--json"],
        capture_output=True, text=True, timeout=600, cwd=ROOT, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    # 50 filled, 2 + 2 signed up, and the administrator
    assert report["accounts"] == 55
    assert set(report["results"]) == {
        "reference", "signups-first-page", "signups-search", "signups-sort", "accounts-api",
        "hub-admin-page", "hub-users-api", "signup-post-at-5", "signup-post-at-50",
    }
    for name, figures in report["results"].items():
        assert figures["requests"] >= 1, name
        assert figures["p50_ms"] > 0 and figures["p50_vs_reference"] > 0, name
