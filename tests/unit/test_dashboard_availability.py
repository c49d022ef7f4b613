"""The dashboard's health endpoint and the backoff of its supervisor."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from karvdash_hub import __version__
from karvdash_hub.dashboard import app, supervisor


def test_first_restart_waits_the_initial_delay():
    assert supervisor.restart_delay(None, uptime=0.1) == supervisor.INITIAL_DELAY == 1.0


def test_restarts_double_up_to_the_maximum_while_the_dashboard_keeps_dying():
    delays, delay = [], None
    for _ in range(8):
        delay = supervisor.restart_delay(delay, uptime=2.0)
        delays.append(delay)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_minute_up_resets_the_backoff():
    assert supervisor.restart_delay(30.0, uptime=supervisor.STABLE_SECONDS - 1) == 30.0
    assert supervisor.restart_delay(30.0, uptime=supervisor.STABLE_SECONDS) == 1.0


def test_bad_settings_and_bad_arguments_are_not_restarted():
    assert supervisor.FATAL_STATUSES == {2, app.CONFIG_ERROR_STATUS}


def test_bad_settings_exit_with_the_config_error_status(monkeypatch, capsys):
    monkeypatch.setenv("KARVDASH_VALUES", "/nonexistent/values.yaml")
    with pytest.raises(SystemExit) as done:
        app.main([])
    assert done.value.code == app.CONFIG_ERROR_STATUS
    assert "karvdash-dashboard: " in capsys.readouterr().err


async def test_health_answers_without_a_login():
    context = SimpleNamespace(prefix="/services/karvdash/", hub=SimpleNamespace(api_token="t" * 32), hub_auth=SimpleNamespace(login_url="/hub/login"))
    application = app.make_app(context, features=[])
    sock, port = bind_unused_port()
    server = HTTPServer(application)
    server.add_sockets([sock])
    try:
        response = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/services/karvdash/health")
    finally:
        server.stop()
    assert response.code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert json.loads(response.body) == {"status": "ok", "version": __version__, "pid": os.getpid()}
