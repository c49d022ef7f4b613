"""karvdashctl without a dashboard: where it connects, remote paths, exit
codes, and what every command asks the API and prints (a recording client
stands in for the dashboard; tests/integration runs them for real)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from karvdash_hub.cli import connection, main
from karvdash_hub.cli.client import APIProblem, DashboardClient
from karvdash_hub.cli.commands import UsageProblem
from karvdash_hub.cli.connection import ConnectionProblem, find_connection
from karvdash_hub.cli.filecommands import split_remote


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


def test_in_a_pod_the_mounted_settings_win_over_the_servers_own_token(home):
    """A server's token may only report activity: karvdashctl in a notebook
    pod uses the settings the webhook mounts, with their dashboard token."""
    write_config(home / "system.ini", url="http://kd-proxy.karvdash.svc:80/services/karvdash/api/", token="ns")
    found = find_connection(
        environ={"JUPYTERHUB_API_TOKEN": "server-token", "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api"}
    )
    assert (found.base_url, found.token) == ("http://kd-proxy.karvdash.svc:80/services/karvdash/", "ns")


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


ALL_COMMANDS = [
    "ls", "upload", "download", "mkdir", "mv", "rm",
    "list_services", "create_service", "exec_service", "delete_service",
    "list_templates", "add_template", "get_template", "remove_template",
    "list_datasets", "add_dataset", "get_dataset", "remove_dataset",
    "list_images", "get_image", "add_image", "remove_image",
]


def test_every_command_has_help(capsys):
    assert [c.name for c in main.COMMANDS] == ALL_COMMANDS
    for command in ALL_COMMANDS:
        with pytest.raises(SystemExit) as done:
            main.parser().parse_args([command, "--help"])
        assert done.value.code == 0
        assert f"usage: karvdashctl {command}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main.parser().parse_args(["bogus"])
    assert done.value.code == 2


class RecordingClient:
    """Answers API requests from a table and records them."""

    def __init__(self, answers: dict):
        self.answers = answers
        self.calls = []

    def request(self, method, path, *, json=None, **kwargs):
        self.calls.append((method, path, json))
        answer = self.answers[(method, path)]
        if isinstance(answer, Exception):
            raise answer
        return answer


SERVICE = {"name": "web", "status": "ready", "template": "hello", "created": "2026-01-01T00:00:00Z",
           "url": "https://web-a.example.org"}
TEMPLATE = {"id": "hello", "name": "Hello", "singleton": False, "custom": True,
            "variables": [{"name": "NAME"}, {"name": "MESSAGE"}], "data": "kind: Template"}
DATASET = {"name": "climate", "type": "s3-remote", "bucket": "data", "endpoint": "https://s3.example.org",
           "yaml": "kind: Dataset\n"}
IMAGES = {"registry": "r.example.org", "images": [{"name": "team/app", "tags": ["1.0", "2.0"]}]}
IMAGE = {"name": "team/app", "digests": [{"digest": "sha256:" + "a" * 64, "size": 1234, "tags": ["1.0", "2.0"]}]}
PUSHED = {"name": "team/app", "tag": "3.0", "digest": "sha256:" + "b" * 64, "image": "r.example.org/team/app:3.0"}


@pytest.mark.parametrize(
    "argv, answers, calls, stdout, code",
    [
        (["list_services"], {("GET", "services"): [SERVICE]}, [("GET", "services", None)],
         "name  status  template  created               url\n"
         "web   ready   hello     2026-01-01T00:00:00Z  https://web-a.example.org\n", 0),
        (["create_service", "redis", "NAME=cache", "MAXMEMORY=1 gb"],
         {("POST", "services"): {**SERVICE, "name": "cache", "url": "", "credentials": {"PASSWORD": "s3cret"}}},
         [("POST", "services", {"id": "redis", "NAME": "cache", "MAXMEMORY": "1 gb"})],
         "created cache\nPASSWORD=s3cret (generated; shown only now)\n", 0),
        (["exec_service", "-a", "web", "--", "ls", "-l"],
         {("POST", "services/web"): [{"pod": "web-1", "output": "a\n", "exit_code": 0},
                                     {"pod": "web-2", "output": "b\n", "exit_code": 3}]},
         [("POST", "services/web", {"command": ["ls", "-l"], "all_pods": True})],
         "--- web-1\na\n--- web-2\nb\n", 3),
        # a command that failed without an exit code (it could not start): exit 1
        (["exec_service", "web", "nothing"],
         {("POST", "services/web"): [{"pod": "web-1", "output": "", "exit_code": None, "error": "not found"}]},
         [("POST", "services/web", {"command": ["nothing"], "all_pods": False})], "\n", 1),
        (["delete_service", "we b"], {("DELETE", "services/we%20b"): None}, [("DELETE", "services/we%20b", None)],
         "removed we b\n", 0),
        (["list_templates"], {("GET", "templates"): [TEMPLATE]}, [("GET", "templates", None)],
         "id     singleton  custom  name   variables\nhello  no         yes     Hello  NAME MESSAGE\n", 0),
        (["get_template", "hello"], {("GET", "templates/hello"): TEMPLATE}, [("GET", "templates/hello", None)],
         "kind: Template\n", 0),
        (["remove_template", "hello"], {("DELETE", "templates/hello"): None}, [("DELETE", "templates/hello", None)],
         "removed template hello\n", 0),
        (["list_datasets"], {("GET", "datasets"): [DATASET]}, [("GET", "datasets", None)],
         "name     type       bucket  endpoint\nclimate  s3-remote  data    https://s3.example.org\n", 0),
        (["add_dataset", "archive", "name=a", "url=https://example.org/a.tar", "readonly=Yes"],
         {("POST", "datasets"): {"name": "a-x1y2"}},
         [("POST", "datasets", {"type": "archive", "name": "a", "url": "https://example.org/a.tar", "readonly": True})],
         "added dataset a-x1y2 (mounted at /mnt/datasets/a-x1y2)\n", 0),
        (["get_dataset", "climate"], {("GET", "datasets/climate"): DATASET}, [("GET", "datasets/climate", None)],
         "kind: Dataset\n", 0),
        (["remove_dataset", "climate"], {("DELETE", "datasets/climate"): None},
         [("DELETE", "datasets/climate", None)], "removed dataset climate\n", 0),
        (["list_images"], {("GET", "images"): IMAGES}, [("GET", "images", None)],
         "name      tags\nteam/app  1.0 2.0\n", 0),
        (["get_image", "team/app"], {("GET", "images/team/app"): IMAGE}, [("GET", "images/team/app", None)],
         f"digest               size  tags\nsha256:{'a' * 12}  1234  1.0 2.0\n", 0),
        (["add_image", "/private/img/app.tar", "team/app:3.0"], {("POST", "images"): PUSHED},
         [("POST", "images", {"domain": "private", "path": "img/app.tar", "name": "team/app", "tag": "3.0"})],
         f"pushed r.example.org/team/app:3.0 (sha256:{'b' * 64})\n", 0),
        (["remove_image", "team/app:1.0"], {("DELETE", "images/team/app:1.0"): None},
         [("DELETE", "images/team/app:1.0", None)], "removed team/app:1.0\n", 0),
        (["--json", "delete_service", "web"], {("DELETE", "services/web"): None}, [("DELETE", "services/web", None)],
         '{\n  "name": "web"\n}\n', 0),
        (["get_image", "team/none"], {("GET", "images/team/none"): APIProblem(404, "no image team/none")},
         [("GET", "images/team/none", None)], "", 5),
        (["create_service", "hello", "id=x"], {}, [], "", 2),
        (["create_service", "hello", "NAME"], {}, [], "", 2),
        (["add_dataset", "s3-remote", "type=x"], {}, [], "", 2),
        (["remove_image", "team/app"], {}, [], "", 2),
        (["add_image", "private/"], {}, [], "", 2),
    ],
)
def test_commands_ask_the_api_and_print(monkeypatch, capsys, argv, answers, calls, stdout, code):
    client = RecordingClient(answers)
    monkeypatch.setattr(main, "DashboardClient", lambda connection: client)
    assert main.main(["--url", "http://127.0.0.1:1/services/karvdash/", "--token", "t", *argv]) == code
    assert client.calls == calls
    assert capsys.readouterr().out == stdout


def test_an_exec_without_an_exit_code_says_why_on_stderr(monkeypatch, capsys):
    results = [{"pod": "web-1", "output": "a\n", "exit_code": 0, "error": None},
               {"pod": "web-2", "output": "", "exit_code": None, "error": "executable file not found"}]
    monkeypatch.setattr(main, "DashboardClient", lambda connection: RecordingClient({("POST", "services/web"): results}))
    assert main.main(["--url", "http://127.0.0.1:1/services/karvdash/", "--token", "t", "exec_service", "-a", "web",
                      "nothing"]) == 1
    seen = capsys.readouterr()
    assert (seen.out, seen.err) == ("--- web-1\na\n--- web-2\n\n", "karvdashctl: web-2: executable file not found\n")


def test_add_template_sends_the_file(monkeypatch, capsys, tmp_path):
    template = tmp_path / "web.template.yaml"
    template.write_text("kind: Template\nname: Web\n")
    client = RecordingClient({("POST", "templates"): {"id": "web", "name": "Web"}})
    monkeypatch.setattr(main, "DashboardClient", lambda connection: client)
    assert main.main(["--url", "http://127.0.0.1:1/", "--token", "t", "add_template", str(template)]) == 0
    assert client.calls == [("POST", "templates", {"data": "kind: Template\nname: Web\n"})]
    assert capsys.readouterr().out == "added template web (Web)\n"
    template.write_bytes(b"\xff\xfe")
    assert main.main(["--url", "http://127.0.0.1:1/", "--token", "t", "add_template", str(template)]) == 2
    assert "is not UTF-8 text" in capsys.readouterr().err


def test_the_cli_docs_describe_every_command():
    text = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    for command in main.COMMANDS:
        assert f"`karvdashctl {command.name}" in text, command.name
    for code in range(8):
        assert f"\n| {code} | " in text


def answer(status: int, body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code, response._content = status, body
    return response


class FakeSession:
    """A requests session answering from a table of URLs."""

    def __init__(self, answers: dict):
        self.answers = answers
        self.headers = {}
        self.urls = []

    def request(self, method, url, **kwargs):
        self.urls.append(url)
        return self.answers.get(url) or answer(404, b"<html>404: Not Found</html>")


def test_the_hubs_address_finds_the_dashboard_under_it():
    listing = b'{"name": "", "type": "folder", "entries": []}'
    session = FakeSession({
        "http://127.0.0.1:8000/services/karvdash/api/": answer(200, b'{"user": "alice"}'),
        "http://127.0.0.1:8000/services/karvdash/api/files/private/": answer(200, listing),
    })
    connection = find_connection("http://127.0.0.1:8000", "t", environ={})
    client = DashboardClient(connection, session=session)
    assert client.files("private", "")["type"] == "folder"
    assert client.connection.base_url == "http://127.0.0.1:8000/services/karvdash/"
    client.files("private", "")
    # looked for once
    assert session.urls == [
        "http://127.0.0.1:8000/api/",
        "http://127.0.0.1:8000/services/karvdash/api/",
        "http://127.0.0.1:8000/services/karvdash/api/files/private/",
        "http://127.0.0.1:8000/services/karvdash/api/files/private/",
    ]


def test_a_dashboard_address_is_used_as_it_is():
    session = FakeSession({"https://example.org/services/karvdash/api/files/private/": answer(200, b"{}")})
    client = DashboardClient(find_connection("https://example.org/services/karvdash", "t", environ={}), session=session)
    client.files("private", "")
    assert session.urls == ["https://example.org/services/karvdash/api/files/private/"]


def test_an_address_with_nothing_there_stays_a_404():
    session = FakeSession({})
    client = DashboardClient(find_connection("http://127.0.0.1:8000/", "t", environ={}), session=session)
    with pytest.raises(APIProblem) as refused:
        client.files("private", "")
    assert refused.value.status == 404
    assert client.connection.base_url == "http://127.0.0.1:8000/"


def test_a_reader_that_goes_away_ends_the_command_quietly():
    # karvdashctl list_services | head -1: the pipe closes under the output
    script = (
        "import sys\n"
        "from karvdash_hub.cli import main\n"
        "class Client:\n"
        "    def request(self, method, path, **kwargs):\n"
        f"        return [{SERVICE!r}] * 20000\n"
        "main.DashboardClient = lambda connection: Client()\n"
        "sys.argv = ['karvdashctl', '--url', 'http://127.0.0.1:1/services/karvdash/', '--token', 't', 'list_services']\n"
        "main.run()\n"
    )
    done = subprocess.run(
        ["/bin/sh", "-c", f'"{sys.executable}" -c "$0" | head -1', script],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2],
    )
    assert done.stdout.startswith("name  status")
    assert done.stderr == ""
