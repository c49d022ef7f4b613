"""The dashboard of a hub in local mode comes back by itself when its
process dies, the hub's admin page says whether it answers, and stopping the
hub leaves none of its processes behind."""

from __future__ import annotations

import re
import signal
import sys
import time

import psutil
import pytest
import requests
from playwright.sync_api import expect

from tests.integration.test_hub_flows import log_in

pytestmark = pytest.mark.integration

SUPERVISOR_MODULE = "karvdash_hub.dashboard.supervisor"


def health(hub) -> dict | None:
    try:
        response = requests.get(hub.url + "/services/karvdash/health", timeout=5)
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 200 else None


def wait_for_health(hub, timeout: float, other_than: int | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = health(hub)
        if answer and answer["pid"] != other_than:
            return answer
        time.sleep(0.2)
    raise AssertionError(f"the dashboard did not answer in {timeout} s:\n{hub.log()[-3000:]}")


def wait_until_silent(hub, timeout: float) -> None:
    # a zombie until its suspended parent reaps it: its socket closes at once
    deadline = time.monotonic() + timeout
    while health(hub) is not None:
        assert time.monotonic() < deadline, "the killed dashboard still answers"
        time.sleep(0.2)


def supervisor_of(hub) -> psutil.Process:
    """The supervisor among the hub's own children (found by the hub's pid)."""
    children = psutil.Process(hub.process.pid).children()
    found = [p for p in children if SUPERVISOR_MODULE in p.cmdline()]
    assert len(found) == 1, [p.cmdline() for p in children]
    return found[0]


def dashboard_of(hub) -> psutil.Process:
    pid = wait_for_health(hub, 60)["pid"]
    supervisor = supervisor_of(hub)
    assert pid in [child.pid for child in supervisor.children()]
    return psutil.Process(pid)


def test_a_killed_dashboard_answers_again_without_a_hub_restart(hub):
    hub_pid = hub.process.pid
    dashboard = dashboard_of(hub)
    dashboard.kill()
    started = time.monotonic()
    answer = wait_for_health(hub, 30, other_than=dashboard.pid)
    print(f"dashboard answered again {time.monotonic() - started:.1f} s after kill -9")
    assert hub.process.poll() is None and hub.process.pid == hub_pid
    assert answer["status"] == "ok"
    assert answer["pid"] in [child.pid for child in supervisor_of(hub).children()]


@pytest.mark.browser
def test_the_admin_page_says_whether_the_dashboard_answers(hub, page):
    log_in(page, hub, "admin", hub.admin_password)
    page.goto(hub.url + "/hub/admin")
    status = page.locator("#dashboard-status")
    expect(status).to_have_attribute("data-state", "running")
    expect(status).to_contain_text("Dashboard: running")
    # JupyterHub's admin app still renders its user list below
    expect(page.locator("#react-admin-hook")).to_contain_text("admin")

    # held still, the supervisor cannot bring the killed dashboard back
    supervisor = supervisor_of(hub)
    dashboard = dashboard_of(hub)
    supervisor.suspend()
    try:
        dashboard.kill()
        wait_until_silent(hub, 10)
        page.reload()
        expect(status).to_have_attribute("data-state", "down")
        expect(status).to_have_text(re.compile(r"Dashboard: not answering since \d\d:\d\d, restarting"))
        expect(status).to_contain_text(", restarting")
    finally:
        supervisor.resume()
    wait_for_health(hub, 30, other_than=dashboard.pid)
    page.reload()
    expect(status).to_have_attribute("data-state", "running")


def test_stopping_the_hub_stops_the_supervisor_and_the_dashboard(hub):
    supervisor = supervisor_of(hub)
    processes = [supervisor, *supervisor.children(recursive=True)]
    assert len(processes) >= 2
    hub.stop()
    gone, alive = psutil.wait_procs(processes, timeout=15)
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], [p.cmdline() for p in alive]


def start_supervisor(tmp_path):
    """The supervisor of a stand-in child that writes its pid and then sleeps."""
    child = f"import os, time; open({str(tmp_path / 'pid')!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    script = (
        "import asyncio, sys; from karvdash_hub.dashboard.supervisor import supervise; "
        f"sys.exit(asyncio.run(supervise([sys.executable, '-c', {child!r}])))"
    )
    process = psutil.Popen([sys.executable, "-c", script])
    pid_file = tmp_path / "pid"
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline and process.poll() is None, "the child did not start"
        time.sleep(0.1)
    return process, psutil.Process(int(pid_file.read_text()))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_supervisor_passes_a_stop_on_and_exits_with_its_child(tmp_path, signum):
    supervisor, child = start_supervisor(tmp_path)
    assert child.ppid() == supervisor.pid
    supervisor.send_signal(signum)
    assert supervisor.wait(15) == 0
    assert not child.is_running()


def test_a_supervisor_killed_outright_takes_its_child_along(tmp_path):
    supervisor, child = start_supervisor(tmp_path)
    supervisor.kill()
    supervisor.wait(15)
    child.wait(15)
