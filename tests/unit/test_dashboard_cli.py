"""karvdashctl without a dashboard: where it connects, remote paths, exit codes."""

from __future__ import annotations

import pytest

from karvdash_hub.cli import connection, main
from karvdash_hub.cli.connection import ConnectionProblem, find_connection
from karvdash_hub.cli.filecommands import UsageProblem, split_remote


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(connection, "SYSTEM_CONFIG", tmp_path / "system.ini")
    return tmp_path


def write_config(path, url="https://example.org/services/karvdash", token="abc"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"[Karvdash]\nbase_url = {url}\ntoken = {token}\n")
    return path


def test_command_line_wins(home):
    write_config(home / ".karvdash" / "config.ini")
    found = find_connection("http://127.0.0.1:1/services/karvdash", "tok", environ={})
    assert (found.base_url, found.token, found.api_url) == (
        "http://127.0.0.1:1/services/karvdash/",
        "tok",
        "http://127.0.0.1:1/services/karvdash/api/",
    )


def test_karvdash_config_then_user_config_then_system_config(home):
    explicit = write_config(home / "explicit.ini", token="explicit")
    write_config(home / ".karvdash" / "config.ini", token="user")
    write_config(home / "system.ini", token="system")
    assert find_connection(environ={"KARVDASH_CONFIG": str(explicit)}).token == "explicit"
    assert find_connection(environ={}).token == "user"
    (home / ".karvdash" / "config.ini").unlink()
    assert find_connection(environ={}).token == "system"


def test_a_token_alone_on_the_command_line_overrides_the_file(home):
    write_config(home / ".karvdash" / "config.ini", token="file")
    found = find_connection(token="flag", environ={})
    assert (found.token, found.base_url) == ("flag", "https://example.org/services/karvdash/")


def test_notebook_environment_falls_back_to_the_proxy_path(home):
    # the hub is not reachable here: the address comes from the API URL's shape
    found = find_connection(
        environ={"JUPYTERHUB_API_TOKEN": "server-token", "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api"}
    )
    assert (found.base_url, found.token) == ("http://127.0.0.1:9/services/karvdash/", "server-token")


@pytest.mark.parametrize(
    "content, message",
    [
        ("not ini", "not a valid config file"),
        ("[Other]\nx = 1\n", "no [Karvdash] section"),
        ("[Karvdash]\nbase_url = http://x\n", "needs base_url and token"),
    ],
)
def test_bad_config_files_are_named(home, content, message):
    path = home / "bad.ini"
    path.write_text(content)
    with pytest.raises(ConnectionProblem) as refused:
        find_connection(environ={"KARVDASH_CONFIG": str(path)})
    assert message in str(refused.value)


def test_nothing_configured_says_what_to_do(home):
    with pytest.raises(ConnectionProblem, match="no dashboard configured"):
        find_connection(environ={})


def test_nothing_configured_exits_3(home, monkeypatch, capsys):
    monkeypatch.delenv("KARVDASH_CONFIG", raising=False)
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    assert main.main(["ls"]) == 3
    assert "no dashboard configured" in capsys.readouterr().err


@pytest.mark.parametrize(
    "remote, expected",
    [("private/a/b", ("private", "a/b")), ("/shared/", ("shared", "")), ("private", ("private", ""))],
)
def test_split_remote(remote, expected):
    assert split_remote(remote) == expected


@pytest.mark.parametrize("remote", ["", "/", "home/x", "privat/x", "private/../bob", "shared/./x"])
def test_remote_paths_need_a_domain(remote):
    with pytest.raises(UsageProblem):
        split_remote(remote)


@pytest.mark.parametrize(
    "status, code", [(401, 4), (403, 4), (404, 5), (409, 6), (400, 7), (413, 7), (507, 7), (500, 1), (502, 1)]
)
def test_exit_codes(status, code):
    assert main.exit_code(status) == code


def test_every_command_has_help(capsys):
    for command in ("ls", "upload", "download", "mkdir", "mv", "rm"):
        with pytest.raises(SystemExit) as done:
            main.parser().parse_args([command, "--help"])
        assert done.value.code == 0
        assert f"usage: karvdashctl {command}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main.parser().parse_args(["bogus"])
    assert done.value.code == 2
