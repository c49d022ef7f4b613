"""bench/run_all.py: the targets read from each benchmark's report, and the
summary's table."""

from __future__ import annotations

import pytest

from bench.run_all import (
    BENCHMARKS,
    HUB_PAGES,
    QUIET_PERCENT,
    QUIET_UNWRITTEN,
    Target,
    markdown,
    settle,
    targets,
    unwritten_bytes,
)


def hub_report(p99: float) -> dict:
    results = {name: {"p99_vs_reference": p99} for name in HUB_PAGES}
    plain = {"users": 5021, "results": {"hub-users-api": {"p99_vs_reference": 2.4}}, "users_api_vs_plain": {"p99": 0.97}}
    return {"users": 10000, "accounts": 10041, "signup_p50_at_n_vs_n_tenth": 0.98, "results": results, "plain": plain}


def spawn_row(n: int, failures: int, plain_failures: int, vs_plain: float, vs_patient: float) -> dict:
    return {"n": n, "karvdash": {"failures": failures}, "plain": {"failures": plain_failures},
            "ratios": {"wall_s_vs_plain": vs_plain, "wall_s_vs_patient": vs_patient}}


REPORTS = {
    "spawn-local": {"results": [spawn_row(1, 0, 0, 1.05, 1.02), spawn_row(30, 0, 19, 0.4, 0.93)]},
    "spawn-kube": {"results": [{"n": 100, "karvdash": {"failures": 0}, "ratios": {"wall_s": 1.12}}]},
    "hub-scale": hub_report(1.5),
    "files": {"results": {
        "upload": {"proxy": {"dashboard_vs_raw": 2.2}, "ingress": {"dashboard_vs_raw": 1.55},
                   "direct": {"dashboard_vs_raw": 1.14}},
        "download": {"proxy": {"dashboard_vs_raw": 2.2}, "ingress": {"dashboard_vs_raw": 1.55},
                     "direct": {"dashboard_vs_raw": 1.14},
                     "nginx_static": {"vs_raw": 1.08, "dashboard_direct_vs_nginx_static": 1.06},
                     "curl": {"nginx_static_vs_raw": 1.7, "dashboard_direct_vs_raw": 1.72}}}},
    "listing": {"small": 100, "large": 100000, "ratios": {"first_page_large_vs_small": 0.97}},
    "webhook-closed": {"goal": {"ratio": 0.94}},
    "webhook-open": {"goal": {"ratio": 1.3}},
    "idle-memory": {"results": {"idle": {"ratios": {"rss": {"dashboard_vs_hub": 0.6}}}}},
    "load": {"dashboard_vs_jupyter": {"operations_per_s": 19.1}, "results": {"dashboard": {"errors": 2}}},
    "load-chart": {"dashboard_vs_jupyter": {"operations_per_s": 1.4}, "results": {"dashboard": {"errors": 0}}},
}


def test_every_benchmark_gives_its_targets_with_the_bounds():
    found = {t.what: (t.measured, t.bound, t.met) for t in targets(REPORTS)}
    assert found == {
        "local spawn, 1 at once: failures": (0, 0, True),
        "local spawn, 1 at once: wall time / plain JupyterHub": (1.05, 1.1, True),
        "local spawn, 1 at once: wall time / JupyterHub without timeouts": (1.02, 1.1, True),
        # plain JupyterHub failed most starts: its wall time is no floor
        "local spawn, 30 at once: failures": (0, 0, True),
        "local spawn, 30 at once: wall time / JupyterHub without timeouts": (0.93, 1.1, True),
        "Kubernetes spawn, 100 at once: failures": (0, 0, True),
        "Kubernetes spawn, 100 at once: wall time / plain KubeSpawner": (1.12, 1.1, False),
        **{f"{name} at 10041 accounts: p99 / /hub/api": (1.5, 2.0, True) for name in HUB_PAGES},
        "sign-up POST at 10000 accounts / at a tenth": (0.98, 1.2, True),
        # JupyterHub's own users API beside it, stated
        "hub-users-api on plain JupyterHub with 5021 users: p99 / its /hub/api": (2.4, None, None),
        "hub-users-api: p99 / plain JupyterHub's": (0.97, None, None),
        "download through the chart's front door / raw copy": (1.55, 1.5, False),
        "download straight at the dashboard / raw copy": (1.14, 1.2, True),
        # local mode's proxy: what it costs, stated beside the targets
        "download through local mode's proxy / raw copy (the proxy's cost)": (2.2, None, None),
        # the floor of any server for the same client, stated
        "download from nginx sending the file itself / raw copy (any server's floor)": (1.08, None, None),
        "download straight at the dashboard / from nginx sending the file itself": (1.06, None, None),
        "download with curl from nginx sending the file itself / raw copy": (1.7, None, None),
        "download with curl straight at the dashboard / raw copy": (1.72, None, None),
        "upload through the chart's front door / raw copy": (1.55, 1.5, False),
        "upload straight at the dashboard / raw copy": (1.14, 1.5, True),
        "upload through local mode's proxy / raw copy (the proxy's cost)": (2.2, None, None),
        "first page of 100000 entries / of 100": (0.97, 2.0, True),
        "webhook mutate req/s / allow-all reference": (0.94, 0.8, True),
        "webhook mutate p99 / allow-all reference at 200 req/s": (1.3, 1.2, False),
        "dashboard idle RSS / the hub's": (0.6, 0.6, True),
        "load through local mode's proxy: operations/s / jupyter-server's": (19.1, 1.5, True),
        "load through local mode's proxy: errors": (2, 0, False),
        "load through the chart's front door: operations/s / jupyter-server's": (1.4, 1.5, False),
        "load through the chart's front door: errors": (0, 0, True),
    }


def test_a_files_report_without_the_front_door_has_no_front_door_target():
    results = {op: {way: {"dashboard_vs_raw": 1.0} for way in ("proxy", "direct")} for op in ("download", "upload")}
    found = [t.what for t in targets({"files": {"results": results}})]
    assert found and not any("front door" in what for what in found)


def test_a_missing_report_adds_no_target():
    assert targets({}) == []
    only = targets({"listing": REPORTS["listing"]})
    assert [t.what for t in only] == ["first page of 100000 entries / of 100"]


@pytest.mark.parametrize("measured, at_most, met", [
    (2.0, True, True), (2.01, True, False), (0.8, False, True), (0.79, False, False), (None, True, None),
])
def test_a_bound_holds_in_its_direction(measured, at_most, met):
    assert Target("x", measured, 2.0 if at_most else 0.8, at_most).met is met


def test_the_summary_table_marks_what_was_missed_and_lists_every_run():
    found = [Target("a", 1.0, 2.0), Target("b", 0.5, 0.8, at_most=False), Target("c", 2.2, None)]
    runs = [{"name": "listing", "args": ["--rounds", "3"], "seconds": 12.5, "settled_seconds": 4.0,
             "loadavg_before": 1.1, "loadavg_after": 1.4, "returncode": 0}]
    table = markdown(found, runs, "2 cores").splitlines()
    assert "| a | 1.0 | <= 2 | yes |" in table
    assert "| b | 0.5 | >= 0.8 | **no** |" in table
    assert "| c | 2.2 | stated | - |" in table
    assert "| listing | `--rounds 3` | 4.0 | 12.5 | 1.1 | 1.4 | 0 |" in table


class Clock:
    """A clock that each busy reading moves on by its sample's two seconds."""

    def __init__(self, readings):
        self.now, self.readings = 0.0, iter(readings)

    def __call__(self):
        return self.now

    def busy(self):
        self.now += 2.0
        return next(self.readings)


def test_settle_waits_until_the_machine_is_quiet():
    clock = Clock([95.0, 60.0, QUIET_PERCENT - 1, 99.0])
    assert settle(clock.busy, lambda: 0, limit=120, clock=clock) == (6.0, QUIET_PERCENT - 1, 0)


def test_settle_waits_until_the_disk_has_the_page_cache():
    clock = Clock([1.0] * 10)
    unwritten = iter([2 * QUIET_UNWRITTEN, QUIET_UNWRITTEN + 1, QUIET_UNWRITTEN, 0])
    assert settle(clock.busy, lambda: next(unwritten), limit=120, clock=clock) == (6.0, 1.0, QUIET_UNWRITTEN)


def test_settle_gives_up_at_its_limit():
    clock = Clock([99.0] * 100)
    waited, busy, _ = settle(clock.busy, lambda: 0, limit=10, clock=clock)
    assert waited == 10.0 and busy == 99.0


def test_unwritten_bytes_are_dirty_and_writeback_pages(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nDirty:              2048 kB\n"
                       "Writeback:          1024 kB\nWritebackTmp:         7 kB\n")
    assert unwritten_bytes(meminfo) == 3072 * 1024
    assert unwritten_bytes() >= 0


def test_every_benchmark_names_a_script_of_bench():
    from bench.run_all import ROOT
    assert len({b.name for b in BENCHMARKS}) == len(BENCHMARKS)
    for benchmark in BENCHMARKS:
        assert (ROOT / "bench" / benchmark.script).is_file(), benchmark.name
