"""The benchmarks still run: a short run of each, not timed, checking the
shape of its report (the figures of docs/benchmarks.md come from the full
runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kube.fixtures import require_control_plane

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
    # the plain JupyterHub beside it holds as many users as the hub does
    # (the administrator and the approved half, not the pending)
    plain = report["plain"]
    assert plain["users"] == plain["karvdash_users"] > 25
    assert set(plain["results"]) == {"reference", "hub-users-api"}
    assert all(figures["requests"] >= 1 and figures["p99_vs_reference"] > 0 for figures in plain["results"].values())
    assert plain["users_api_vs_plain"]["p99"] > 0


def run_bench(script: str, *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args, "--json"],
        capture_output=True, text=True, timeout=600, cwd=ROOT, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_files_bench_compares_both_servers_reached_the_same_way():
    """Every way, the chart's front door (nginx from the chart's Ingresses) too."""
    require_control_plane()  # (its helm renders the chart)
    report = run_bench("files_bench.py", "--size-mib", "2", "--entries", "20", "--repeat", "1")
    assert report["ways"] == ["proxy", "ingress", "direct"]
    assert set(report["results"]) == {"list", "upload", "download"}
    for operation, figures in report["results"].items():
        assert figures["raw_seconds"] > 0 and figures["rounds"] == 1, operation
        for way in report["ways"]:
            row = figures[way]
            assert row["dashboard_seconds"] > 0 and row["jupyter_seconds"] > 0, (operation, way)
            assert row["dashboard_vs_jupyter"] == pytest.approx(
                row["dashboard_seconds"] / row["jupyter_seconds"], rel=0.01, abs=0.002), (operation, way)
            # one round: its own ratio is the ratio of the medians
            assert row["dashboard_vs_raw"] == pytest.approx(
                row["dashboard_seconds"] / figures["raw_seconds"], rel=0.01, abs=0.002), (operation, way)
    assert report["results"]["download"]["ingress"]["dashboard_mib_s"] > 0
    # the client's floor: nginx sending the same file itself
    floor = report["results"]["download"]["nginx_static"]
    assert floor["seconds"] > 0
    assert floor["vs_raw"] == pytest.approx(floor["seconds"] / report["results"]["download"]["raw_seconds"],
                                            rel=0.01, abs=0.002)
    # and curl's own cost beside, from the same two servers
    curl = report["results"]["download"]["curl"]
    assert curl["nginx_static_seconds"] > 0 and curl["dashboard_direct_seconds"] > 0
    assert curl["dashboard_direct_vs_raw"] == pytest.approx(
        curl["dashboard_direct_seconds"] / report["results"]["download"]["raw_seconds"], rel=0.01, abs=0.002)
    assert len(report["machine"]["loadavg"]) == 3


@pytest.mark.parametrize("front_door", ["proxy", "chart"])
def test_load_bench_runs_the_mix_against_both_servers_without_errors(front_door):
    if front_door == "chart":
        require_control_plane()  # (its helm renders the chart)
    report = run_bench("load.py", "--clients", "4", "--seconds", "2", "--rounds", "1", "--warmup", "0.5",
                       "--front-door", front_door)
    assert report["front_door"] == front_door
    assert set(report["results"]) == {"dashboard", "jupyter-server"}
    for name, figures in report["results"].items():
        # every kind of the mix was done, and nothing failed
        assert figures["errors"] == 0, (name, figures["error_kinds"])
        assert figures["operations"] >= 3 and figures["operations_per_s"] > 0, name
        assert all(kind["operations"] >= 1 for kind in figures["by_kind"].values()), (name, figures["by_kind"])
        assert set(figures["by_kind"]) == {"list", "download", "upload"}, name
        assert figures["p99_ms"] >= figures["p50_ms"] > 0, name
        assert figures["client_cores"] >= 0 and "proxy" in figures["server_cores"], name
        # the chart's nginx is counted with its workers, where it does its work
        assert ("nginx" in figures["server_cores"]) == (front_door == "chart"), name
    assert report["dashboard_vs_jupyter"]["operations_per_s"] > 0


@pytest.mark.parametrize("mode, args", [
    ("closed", ("--concurrency", "2")),
    ("open", ("--rate", "40", "--connections", "4")),
])
def test_webhook_bench_measures_every_target_against_the_reference(mode, args):
    report = run_bench("webhook_latency.py", "--seconds", "0.5", "--rounds", "1", *args)
    assert report["mode"] == mode
    assert set(report["results"]) == {"reference", "validate-pod", "validate-deployment", "mutate-pod"}
    ratio = "rps_vs_reference" if mode == "closed" else "p99_vs_reference"
    for name, figures in report["results"].items():
        assert figures["errors"] == 0 and figures["requests"] >= 1, name
        assert figures["p99_ms"] >= figures["p50_ms"] > 0, name
        assert figures["p50_vs_reference"] > 0 and figures[ratio] > 0, name
    if mode == "open":
        # every request sent on the schedule was answered: 40 req/s for 0.5 s
        assert all(figures["requests"] == 20 for figures in report["results"].values())
        assert all(figures["p99_median_round_vs_reference"] > 0 for figures in report["results"].values())
    assert report["goal"]["ratio"] == report["results"]["mutate-pod"][ratio]
    assert isinstance(report["goal"]["met"], bool)
    assert len(report["loadavg"]["before"]) == 3


@pytest.mark.kube
def test_spawn_storm_bench_on_kubernetes_starts_every_user_on_both_hubs():
    require_control_plane()
    report = run_bench("spawn_scale.py", "--mode", "kube", "--users", "3", "--timeout", "300")
    assert report["mode"] == "kube"
    [row] = report["results"]
    assert row["n"] == 3
    for arm in ("plain", "karvdash"):
        figures = row[arm]
        assert (figures["ready"], figures["failures"]) == (3, 0), (arm, figures)
        assert figures["wall_s"] >= figures["median_ready_s"] >= figures["first_ready_s"] > 0, (arm, figures)
        assert figures["hub_cpu_s"] > 0 and figures["hub_peak_rss_mib"] > 0, (arm, figures)
    assert row["ratios"]["wall_s"] == pytest.approx(row["karvdash"]["wall_s"] / row["plain"]["wall_s"], abs=0.01)
    assert set(row["ratios"]) == {"wall_s", "hub_cpu_s", "hub_peak_rss_mib"}
    assert report["node_errors"] == []


def test_spawn_storm_bench_in_local_mode_starts_every_user_on_both_hubs():
    # one user's storm is repeated --rounds-of-one times, larger ones --rounds times
    report = run_bench("spawn_scale.py", "--users", "1", "2", "--arms", "plain", "karvdash", "--spawn-concurrency", "1",
                       "--rounds", "1", "--rounds-of-one", "2")
    assert report["mode"] == "local"
    assert report["arms"] == ["plain", "karvdash"]
    assert "karvdash_hub.hub.singleuser" in report["server_command"]
    assert [row["n"] for row in report["results"]] == [1, 2]
    for row, rounds in zip(report["results"], (2, 1)):
        n = row["n"]
        # each round every hub stormed, and each arm's figures are the rounds' median
        assert [sorted(figures) for figures in row["rounds"]] == [["karvdash", "plain"]] * rounds, n
        walls = [figures["karvdash"]["wall_s"] for figures in row["rounds"]]
        assert row["karvdash"]["wall_s"] == pytest.approx(sum(walls) / rounds), n
        for arm in ("plain", "karvdash"):
            figures = row[arm]
            assert (figures["ready"], figures["failures"]) == (n, 0), (arm, figures)
            assert figures["wall_s"] >= figures["median_ready_s"] >= figures["first_ready_s"] > 0, (arm, figures)
            assert figures["hub_cpu_s"] > 0 and figures["hub_peak_rss_mib"] > 0, (arm, figures)
            assert figures["server_cpu_s_per_start"] > 0, (arm, figures)
        assert set(row["ratios"]) == {"wall_s_vs_plain", "hub_cpu_s_vs_plain", "hub_peak_rss_mib_vs_plain"}
        assert row["ratios"]["wall_s_vs_plain"] == pytest.approx(
            row["karvdash"]["wall_s"] / row["plain"]["wall_s"], abs=0.01)


def test_listing_bench_reports_both_folders_the_peer_and_memory():
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "listing_bench.py"), "--small", "20", "--large", "2500",
         "--rounds", "1", "--settle", "0.5", "--json"],
        capture_output=True, text=True, timeout=600, cwd=ROOT, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert (report["small"], report["large"], report["page"]) == (20, 2500, 100)
    assert {"first-page-small", "first-page-large", "first-page-large-indexing", "later-page-large",
            "first-page-by-size-large", "unpaged-large", "jupyter-small", "jupyter-large",
            "raw-scandir-large"} <= set(report["results"])
    for name, figures in report["results"].items():
        assert figures["runs"] >= 1 and figures["median_ms"] > 0, name
    assert set(report["ratios"]) >= {"first_page_large_vs_small", "first_page_large_vs_jupyter_large"}
    assert all(value > 0 for value in report["ratios"].values())
    for when in ("before", "after_paged", "after_unpaged", "after_unpaged_settled"):
        assert report["dashboard_memory"][when]["rss_mib"] > 0, when
    assert len(report["machine"]["loadavg"]) == 3


def test_idle_memory_bench_reads_every_process_of_both_hubs():
    report = run_bench("idle_memory.py", "--settle", "1", "--samples", "1", "--after-use")
    assert set(report["results"]) == {"idle", "after_use"}
    for phase in report["results"].values():
        for kind in ("rss", "pss"):
            assert set(phase[kind]["ours"]) == {"hub", "dashboard", "supervisor", "proxy"}, kind
            assert set(phase[kind]["plain"]) == {"hub", "proxy"}, kind
            assert all(mib > 0 for side in phase[kind].values() for mib in side.values()), (kind, phase[kind])
            ratios = phase["ratios"][kind]
            assert ratios["dashboard_vs_hub"] == pytest.approx(
                phase[kind]["ours"]["dashboard"] / phase[kind]["ours"]["hub"], abs=0.01), kind
            assert ratios["ours_total_vs_plain_total"] == pytest.approx(
                ratios["ours_total_mib"] / ratios["plain_total_mib"], abs=0.01), kind
    assert len(report["machine"]["loadavg"]) == 3


def test_the_runner_of_every_benchmark_writes_each_report_and_the_summary(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run_all.py"), "--quick", "--only", "idle-memory", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=ROOT, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    assert json.loads((tmp_path / "idle-memory.json").read_text())["results"]["idle"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    [run] = summary["runs"]
    assert (run["name"], run["returncode"], run["args"]) == ("idle-memory", 0, ["--settle", "5", "--samples", "1"])
    [target] = summary["targets"]
    assert target["what"] == "dashboard idle RSS / the hub's" and target["measured"] > 0
    assert "| dashboard idle RSS / the hub's |" in (tmp_path / "summary.md").read_text()
