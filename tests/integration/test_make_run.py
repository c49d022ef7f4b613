"""The first ``make run``: karvdash-hub started the way the Makefile starts
it (only --port chosen), the line that says where to log in, a second start
on the same checkout, two checkouts side by side, and local mode offering
only what works."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import requests

from tests.hubprocess import HUB_COMMAND, ROOT, free_port, start_hub_as_make_run
from tests.integration.dashboardsession import dashboard_url, log_in_page

pytestmark = pytest.mark.integration


def planned(target: str) -> list[str]:
    """The commands ``make TARGET`` would run on a fresh checkout (nothing runs)."""
    result = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_make_run_installs_what_running_needs_and_make_test_the_test_tools_too():
    run = [line for line in planned("run") if "pip install" in line]
    assert run == [".venv/bin/python -m pip install --quiet --upgrade pip", ".venv/bin/python -m pip install --quiet -e ."]
    test = [line for line in planned("test") if "pip install" in line]
    assert test == [*run, ".venv/bin/python -m pip install --quiet -e '.[test]'"]


def test_the_editable_install_is_quiet(tmp_path):
    # what `make run` installs, into a venv of its own: pip and setuptools
    # say nothing when nothing fails (setuptools warned about the template
    # and static folders and about the editable mode, 130 lines a start)
    project = tmp_path / "project"
    project.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "karvdash_hub", project / "karvdash_hub", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True, timeout=120)
    python = str(tmp_path / "venv" / "bin" / "python")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "-e", str(project)],
        capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stderr
    assert install.stdout + install.stderr == ""
    # and the installed package has its templates and static files
    found = subprocess.run([python, "-c", "import karvdash_hub.dashboard.static as s, karvdash_hub.theme.templates as t;"
                            "print(list(s.__path__)[0], list(t.__path__)[0])"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert found.stdout.split() == [str(project / "karvdash_hub/dashboard/static"),
                                    str(project / "karvdash_hub/theme/templates")]


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    announced = start_hub_as_make_run(tmp_path_factory.mktemp("checkout-a") / ".state", free_port())
    yield announced
    announced.hub.stop()


def test_the_login_page_answers_when_its_address_is_printed(first):
    url = first.hub.url + "/"
    assert first.login_status == 200
    # the address is printed once, in the login line, with the generated password
    printed = [line for line in first.lines if line.startswith("karvdash-hub:")]
    assert printed == [f"karvdash-hub: log in at {url} as 'admin' with password {first.hub.admin_password}"]
    assert first.lines[-1] == printed[0]


def test_a_second_start_on_the_same_state_refuses_in_one_line_and_touches_nothing(first):
    state = first.hub.state_dir
    proxy_pid = (state / "proxy.pid").read_text()
    # the files a start writes (the database is the first hub's to write meanwhile)
    written = ("karvdash-hub.pid", "proxy.pid", "admin-password", "jupyterhub_cookie_secret")
    names = sorted(path.name for path in state.iterdir())
    before = {name: (state / name).stat().st_mtime_ns for name in written}
    env = {"PATH": "/usr/bin:/bin", "KARVDASH_STATE_DIR": str(state)}
    second = subprocess.run([*HUB_COMMAND, "--port", str(free_port())], env=env, capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 3
    assert second.stdout == ""
    assert second.stderr == f"karvdash-hub: already running at {first.hub.url}/ (pid {first.hub.process.pid})\n"
    # the first hub, its proxy and its state are as they were
    assert requests.get(first.hub.url + "/hub/login", timeout=30).status_code == 200
    assert (state / "proxy.pid").read_text() == proxy_pid
    assert {name: (state / name).stat().st_mtime_ns for name in written} == before
    assert sorted(path.name for path in state.iterdir()) == names
    assert json.loads((state / "karvdash-hub.pid").read_text()) == {
        "pid": first.hub.process.pid, "url": first.hub.url + "/"}


def test_two_checkouts_run_side_by_side_with_their_own_port(first, tmp_path):
    # only --port differs: the hub's API, the proxy's API and the dashboard
    # take free ports of their own
    other = start_hub_as_make_run(tmp_path / "checkout-b" / ".state", free_port())
    try:
        assert other.login_status == 200
        assert requests.get(first.hub.url + "/hub/login", timeout=30).status_code == 200
        assert first.hub.admin_session().get(first.hub.hub_api + "/user", timeout=30).json()["name"] == "admin"
        assert other.hub.admin_session().get(other.hub.hub_api + "/user", timeout=30).json()["name"] == "admin"
    finally:
        other.hub.stop()
    assert requests.get(first.hub.url + "/hub/login", timeout=30).status_code == 200


@pytest.mark.browser
def test_local_mode_disables_create_and_says_why(first, page):
    hub = first.hub
    reason = "services need Kubernetes; this hub runs in local mode"
    log_in_page(page, hub, hub.admin, hub.admin_password)

    page.goto(dashboard_url(hub, "templates"))
    page.locator("tr[data-template=minio]").wait_for()
    creates = page.locator("[data-action=create]")
    assert creates.count() >= 10
    assert all(creates.nth(i).is_disabled() for i in range(creates.count()))
    assert page.locator("a[href*='services/new/']").count() == 0
    assert page.locator("#services-unavailable").inner_text() == f"Create is unavailable: {reason}."

    page.goto(dashboard_url(hub, "services/new/minio"))
    assert page.locator("#create-service").is_disabled()
    assert reason in page.locator("#services-unavailable").inner_text()

    page.goto(dashboard_url(hub, "services"))
    assert page.locator("#new-service-button").is_disabled()
    assert reason in page.locator("#services-unavailable").inner_text()
    # no registry configured: no Images entry in the navigation bar
    assert page.locator("#nav-images").count() == 0
    assert page.locator("#nav-templates").count() == 1
