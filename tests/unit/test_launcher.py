"""karvdash-hub's launcher: one hub per state folder, the address it prints,
and the internal ports local mode chooses."""

import json
import os
import socket

import pytest
from traitlets.config import Config

from karvdash_hub.hub.config import configure
from karvdash_hub.hub.launcher import (
    LOCK_FILE,
    AlreadyRunning,
    HubLock,
    address_options,
    login_lines,
    public_url,
    runs_the_hub,
)


# --- the lock ---------------------------------------------------------------------------


def test_a_second_lock_on_the_same_state_names_the_first_hub(tmp_path):
    first = HubLock.take(tmp_path / "state", "http://127.0.0.1:8010/")
    try:
        with pytest.raises(AlreadyRunning) as refused:
            HubLock.take(tmp_path / "state", "http://127.0.0.1:8020/")
        assert str(refused.value) == f"already running at http://127.0.0.1:8010/ (pid {os.getpid()})"
        # the refused start left the file as it was
        assert json.loads((tmp_path / "state" / LOCK_FILE).read_text()) == {
            "pid": os.getpid(), "url": "http://127.0.0.1:8010/"}
    finally:
        first.release()


def test_the_lock_is_free_again_when_its_hub_ends(tmp_path):
    HubLock.take(tmp_path, "http://127.0.0.1:8010/").release()
    HubLock.take(tmp_path, "http://127.0.0.1:8011/").release()


def test_the_file_of_a_dead_hub_is_taken_over(tmp_path):
    # what a hub killed with SIGKILL leaves: its pid in the file, no lock held
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 2**22 + 1, "url": "http://127.0.0.1:8000/"}))
    lock = HubLock.take(tmp_path, "http://127.0.0.1:8030/")
    try:
        assert json.loads((tmp_path / LOCK_FILE).read_text()) == {"pid": os.getpid(), "url": "http://127.0.0.1:8030/"}
    finally:
        lock.release()


def test_the_lock_file_is_the_owners_only(tmp_path):
    lock = HubLock.take(tmp_path / "new-state", "http://127.0.0.1:8000/")
    try:
        assert (tmp_path / "new-state").stat().st_mode & 0o777 == 0o700
        assert (tmp_path / "new-state" / LOCK_FILE).stat().st_mode & 0o777 == 0o600
    finally:
        lock.release()


# --- the address ------------------------------------------------------------------------


def test_the_address_is_local_modes_default_unless_told():
    assert public_url([]) == "http://127.0.0.1:8000/"
    assert public_url(["--port", "8010"]) == "http://127.0.0.1:8010/"
    assert public_url(["--debug", "--port=8010"]) == "http://127.0.0.1:8010/"
    assert public_url(["--JupyterHub.port=8011", "--JupyterHub.ip=127.0.0.2"]) == "http://127.0.0.2:8011/"
    assert public_url(["--base-url", "/lab/"]) == "http://127.0.0.1:8000/lab/"
    assert public_url(["--ssl-cert", "/x.pem"]) == "https://127.0.0.1:8000/"
    assert public_url(["--ip", "::1"]) == "http://[::1]:8000/"


def test_a_wildcard_address_is_reached_on_loopback():
    assert public_url(["--ip", "0.0.0.0"]) == "http://127.0.0.1:8000/"
    assert public_url(["--ip="]) == "http://127.0.0.1:8000/"


def test_the_values_files_jupyterhub_section_counts_under_the_command_line():
    config = {"JupyterHub": {"port": 9000, "base_url": "/hub-a", "db_url": "sqlite://"}}
    assert public_url([], config) == "http://127.0.0.1:9000/hub-a/"
    assert public_url(["--port", "9001"], config) == "http://127.0.0.1:9001/hub-a/"


def test_only_address_options_are_picked_from_the_command_line():
    assert address_options(["--debug", "--port", "8010", "--JupyterHub.hub_port=9", "--log-level=DEBUG"]) == {
        "port": "8010"}


def test_subcommands_and_informational_options_do_not_run_the_hub():
    assert runs_the_hub([]) and runs_the_hub(["--port", "8010", "--debug"])
    assert not runs_the_hub(["upgrade-db"])
    assert not runs_the_hub(["--help-all"]) and not runs_the_hub(["--version"])


# --- what is printed --------------------------------------------------------------------


def test_a_password_generated_by_this_start_is_printed_with_the_address(state_env, tmp_path):
    from karvdash_hub.core.settings import load_settings

    settings = load_settings()
    started = os.stat(tmp_path).st_mtime - 1
    (tmp_path / "admin-password").write_text("first-password\n")
    assert login_lines(settings, "http://127.0.0.1:8000/", started) == [
        "karvdash-hub: log in at http://127.0.0.1:8000/ as 'admin' with password first-password",
        f"karvdash-hub: (generated once, kept in {tmp_path / 'admin-password'}, readable by you only)",
    ]
    # a later start says where it is
    later = (tmp_path / "admin-password").stat().st_mtime + 1
    assert login_lines(settings, "http://127.0.0.1:8000/", later) == [
        f"karvdash-hub: log in at http://127.0.0.1:8000/ as 'admin'; the password is in {tmp_path / 'admin-password'}"]


def test_single_sign_on_prints_the_address_alone(state_env):
    from karvdash_hub.core.settings import load_settings

    state_env.setenv("KARVDASH_AUTHENTICATOR", "oauth")
    assert login_lines(load_settings(), "http://127.0.0.1:8000/", 0) == ["karvdash-hub: log in at http://127.0.0.1:8000/"]


# --- internal ports ---------------------------------------------------------------------


def test_local_mode_picks_free_internal_ports(state_env):
    c = Config()
    configure(c)
    hub_port = c.JupyterHub.hub_port
    api_port = int(c.ConfigurableHTTPProxy.api_url.rsplit(":", 1)[1])
    assert c.ConfigurableHTTPProxy.api_url.startswith("http://127.0.0.1:")
    assert hub_port not in (8081, 8001) and api_port not in (8081, 8001) and hub_port != api_port
    for port in (hub_port, api_port):
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # free: nothing listens there


def test_internal_ports_the_deployment_set_are_kept(state_env):
    c = Config()
    c.JupyterHub.hub_port = 8081
    c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:8001"
    configure(c)
    assert c.JupyterHub.hub_port == 8081 and c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8001"


def test_kubernetes_mode_keeps_jupyterhubs_ports(state_env):
    state_env.setenv("KARVDASH_MODE", "kubernetes")
    state_env.setenv("KARVDASH_INGRESS_URL", "https://lab.example.org")
    c = Config()
    configure(c)
    # the chart's Services point at JupyterHub's defaults
    assert "hub_port" not in c.JupyterHub and "api_url" not in c.ConfigurableHTTPProxy



def test_the_hub_waits_long_enough_for_a_first_dashboard_start(state_env):
    from karvdash_hub.core.settings import load_settings
    from karvdash_hub.hub.service import service_spec

    # JupyterHub's own 30 s: a hub on a busy machine stopped before its dashboard answered
    assert service_spec(load_settings(), {})["timeout"] >= 120


async def test_the_proxy_tells_the_launcher_once_when_the_routes_are_set(monkeypatch):
    from jupyterhub.proxy import ConfigurableHTTPProxy

    from karvdash_hub.hub.readiness import AnnouncingProxy

    checks = []

    async def check_routes(self, *args, **kwargs):
        checks.append(args)

    monkeypatch.setattr(ConfigurableHTTPProxy, "check_routes", check_routes)
    read_end, write_end = os.pipe()
    proxy = AnnouncingProxy(ready_fd=write_end)
    await proxy.check_routes({}, {})
    # told once, and the pipe closed: the launcher reads one byte, then the end
    assert os.read(read_end, 10) == b"1" and os.read(read_end, 10) == b""
    await proxy.check_routes({}, {})  # the hub checks the routes again later
    assert len(checks) == 2 and proxy.ready_fd == -1
    os.close(read_end)


def test_in_a_cluster_the_password_is_printed_without_an_address(state_env, tmp_path):
    from karvdash_hub.core.settings import load_settings

    (tmp_path / "admin-password").write_text("cluster-password\n")
    assert login_lines(load_settings(), "", 0) == [
        "karvdash-hub: log in as 'admin' with password cluster-password",
        f"karvdash-hub: (generated once, kept in {tmp_path / 'admin-password'}, readable by you only)",
    ]
