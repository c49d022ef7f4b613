"""Karvdash 2.x compatibility, its pure parts: the answers' shapes, variable
names in any case, the ``all_pods`` flag, its routes in the OpenAPI
document, and karvdashctl reading Karvdash's config files and command
lines. tests/integration/test_karvdash2_api_kube.py runs the recorded
requests of Karvdash's client against a real hub."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from tornado import web

from karvdash_hub.cli import connection, main
from karvdash_hub.cli.connection import dashboard_base, find_connection
from karvdash_hub.core.settings import load_settings
from karvdash_hub.dashboard import app, docs, karvdash2api, openapi
from karvdash_hub.services import catalogue
from karvdash_hub.services import karvdash2 as k2
from karvdash_hub.services import templates as st
from karvdash_hub.services.store import Instance

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE, _ = catalogue.file_catalogue(ROOT / "service_templates", ROOT / "no-admin-templates")
HELLO = CATALOGUE["hello-kubernetes"]
REDIS = CATALOGUE["redis"]


def instance(**overrides) -> Instance:
    fields = dict(name="web", template_id="hello-kubernetes", template_name="Hello Kubernetes",
                  url="https://web-alice.example.org", created="2026-01-02T03:04:05Z",
                  values={"NAME": "web", "MESSAGE": "hi"}, status="ready", auth=True)
    return Instance(**{**fields, **overrides})


# --- variables in any case ---------------------------------------------------------------------


def test_variable_names_match_whatever_their_case():
    assert st.match_variables(HELLO, {"name": "web", "Message": "hi"}) == {"NAME": "web", "MESSAGE": "hi"}
    assert st.match_variables(HELLO, {"NAME": "web"}) == {"NAME": "web"}
    # unknown ones stay as they are, for check_values to refuse
    assert st.match_variables(HELLO, {"colour": "red"}) == {"colour": "red"}
    with pytest.raises(st.ValuesError, match="colour: is not a variable"):
        st.check_values(HELLO, st.match_variables(HELLO, {"colour": "red"}))
    # a reserved one is named as declared, and refused as such
    with pytest.raises(st.ValuesError, match="HOSTNAME: is filled in by the system"):
        st.check_values(HELLO, st.match_variables(HELLO, {"hostname": "x"}))


def test_one_variable_given_twice_is_refused():
    with pytest.raises(st.ValuesError, match="NAME: is given twice"):
        st.match_variables(HELLO, {"NAME": "a", "name": "b"})


def test_the_exact_spelling_wins_and_a_case_only_match_of_two_is_refused():
    text = HELLO.text.replace("- name: MESSAGE", "- name: message\n  default: low\n- name: MESSAGE", 1)
    template = st.parse_template(text, "twins", "user")
    assert st.match_variables(template, {"message": "a", "MESSAGE": "b"}) == {"message": "a", "MESSAGE": "b"}
    with pytest.raises(st.ValuesError, match="Message: matches MESSAGE and message"):
        st.match_variables(template, {"Message": "x"})


# --- shapes ------------------------------------------------------------------------------------


def test_a_template_as_karvdash_described_it():
    shape = k2.template_shape(HELLO)
    assert set(shape) == {"id", "name", "description", "singleton", "auth", "datasets", "variables", "filename"}
    assert (shape["id"], shape["name"], shape["filename"]) == ("hello-kubernetes", "Hello Kubernetes",
                                                              "hello-kubernetes.template.yaml")
    # every declared variable, the reserved ones too, as Karvdash listed them
    assert [v["name"] for v in shape["variables"]] == [v.name for v in HELLO.variables]
    assert {"name": "MESSAGE", "default": HELLO.form_defaults()["MESSAGE"], "help": "Text shown on the page"} in (
        [{k: v for k, v in var.items() if k != "label"} for var in shape["variables"]])
    listed = k2.template_shape(HELLO, listed=True, with_data=True)
    assert (listed["custom"], listed["data"]) == (False, HELLO.text)


def test_secret_defaults_are_not_shown_and_own_templates_have_no_file():
    password = next(v for v in k2.template_shape(REDIS)["variables"] if v["name"] == "PASSWORD")
    assert password == {**password, "default": "", "secret": True}
    own = st.parse_template(HELLO.text, "mine", "user")
    shape = k2.template_shape(own, listed=True)
    assert "filename" not in shape and shape["custom"] is True


def test_a_service_as_karvdash_listed_it():
    shape = k2.service_shape(instance(), HELLO)
    assert shape == {
        "name": "web",
        "url": "https://web-alice.example.org",
        "created": "2026-01-02T03:04:05+00:00",
        "actions": True,
        "template": {**k2.template_shape(HELLO), "values": {"NAME": "web", "MESSAGE": "hi"}},
    }


def test_a_service_without_address_or_template_and_generated_secrets():
    shape = k2.service_shape(instance(url="", created=""), None)
    assert (shape["url"], shape["created"], shape["template"]) == (None, None, None)
    made = k2.service_shape(instance(template_id="redis", values={"NAME": "cache"}), REDIS, {"PASSWORD": "s3cret"})
    assert made["template"]["values"] == {"NAME": "cache", "PASSWORD": "s3cret"}


@pytest.mark.parametrize("timestamp, shown", [
    ("2021-06-28T10:00:00Z", "2021-06-28T10:00:00+00:00"),
    ("2021-06-28T10:00:00", "2021-06-28T10:00:00+00:00"),
    ("2021-06-28T12:00:00+02:00", "2021-06-28T12:00:00+02:00"),
    ("", None),
    ("yesterday", None),
])
def test_created_times_in_pythons_isoformat(timestamp, shown):
    assert k2.created_time(timestamp) == shown


def test_an_exec_as_karvdash_answered_it():
    results = [{"pod": "web-1", "output": "a\n", "exit_code": 0}, {"pod": "web-2", "output": "b\n", "exit_code": 3}]
    assert k2.exec_shape(results) == {"result": ["a\n", "b\n"]}
    assert k2.exec_shape([]) == {"result": []}


def test_listings_and_errors():
    assert k2.listing([1]) == {"objects": [1]}
    assert k2.error_body("no") == {"error": "no"}


@pytest.mark.parametrize("value, meaning", [
    (True, True), (False, False), (1, True), (0, False), ("1", True), ("0", False),
    ("true", True), ("false", False), ("True", True), ("False", False), (None, False),
])
def test_all_pods_flags(value, meaning):
    assert k2.all_pods_flag(value) is meaning


@pytest.mark.parametrize("value", [2, -1, 1.0, "yes", "", "TRUE", [], {}])
def test_other_all_pods_values_are_refused(value):
    with pytest.raises(ValueError, match="all_pods must be"):
        k2.all_pods_flag(value)


# --- routes and the OpenAPI document -------------------------------------------------------------


def test_every_karvdash2_route_is_documented_at_its_own_base():
    settings = load_settings(environ={"KARVDASH_STATE_DIR": "/nonexistent"})
    context = SimpleNamespace(settings=settings, url=lambda *parts: "/services/karvdash/" + "/".join(parts))
    document = openapi.document(context, app.FEATURES)
    assert karvdash2api in app.FEATURES
    routes = [(p, h) for p, h in karvdash2api.handlers(context) if h is not karvdash2api.UnknownHandler]
    served = {}
    for path, item in document["paths"].items():
        if "servers" not in item:
            continue
        assert item["servers"][0]["url"] == "/services/karvdash/karvdash2/api"
        url = "karvdash2/api" + re.sub(r"\{[^}]+\}", "x1", path)
        handler = next(h for p, h in routes if re.fullmatch(p, url))
        documented = {m for m in ("get", "post", "put", "patch", "delete") if m in item}
        assert documented == {m for m in documented | {"get", "post", "delete"}
                              if getattr(handler, m) is not getattr(web.RequestHandler, m)}, path
        served[handler] = documented
    assert set(served) == {h for _, h in routes}
    # Karvdash's own paths, with their trailing slash; the dashboard's API keeps its paths
    assert {"/services/", "/services/{name}/", "/templates/", "/templates/{id}/"} <= set(document["paths"])
    assert "servers" not in document["paths"]["/services"]
    # the API reference's table shows them whole
    rows = {(r["method"], r["path"]) for r in docs.endpoint_rows(document)}
    assert {("POST", "/services/karvdash/karvdash2/api/services/{name}/"), ("POST", "/services")} <= rows


def test_karvdash2_errors_have_karvdash_shape():
    handler = karvdash2api.ServicesHandler.__new__(karvdash2api.ServicesHandler)
    assert handler.error_body(404, "no service named x", {"offset": 1}) == {"error": "no service named x"}


# --- karvdashctl with Karvdash's config files and command lines -----------------------------------


@pytest.mark.parametrize("url, base", [
    # Karvdash's own convention: the API's address; what remains is the hub's, searched under it
    ("http://karvdash.default.svc/api", "http://karvdash.default.svc/"),
    ("https://hub.example.org/api/", "https://hub.example.org/"),
    # the files mounted into pods name the dashboard's API
    ("https://hub.example.org/services/karvdash/api/", "https://hub.example.org/services/karvdash/"),
    ("https://hub.example.org/services/karvdash/karvdash2/api", "https://hub.example.org/services/karvdash/"),
    ("https://hub.example.org/services/karvdash/karvdash2/api/", "https://hub.example.org/services/karvdash/"),
    ("https://hub.example.org/services/karvdash", "https://hub.example.org/services/karvdash/"),
    ("https://hub.example.org", "https://hub.example.org/"),
    ("https://hub.example.org/apis", "https://hub.example.org/apis/"),
])
def test_an_api_address_stands_for_its_dashboard(url, base):
    assert dashboard_base(url) == base


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(connection, "SYSTEM_CONFIG", tmp_path / "system.ini")
    return tmp_path


def write(path: Path, url: str, token: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"[Karvdash]\nbase_url = {url}\ntoken = {token}\n")
    return path


def test_a_karvdash_config_file_never_leads_to_api_api(home):
    write(home / ".karvdash" / "config.ini", "http://127.0.0.1:9/services/karvdash/karvdash2/api", "Abc")
    found = find_connection(environ={})
    assert (found.api_url, found.token) == ("http://127.0.0.1:9/services/karvdash/api/", "Abc")


def test_config_option_comes_before_the_environment_and_the_usual_places(home):
    flagged = write(home / "flagged.ini", "https://a.example.org/api", "flag")
    named = write(home / "named.ini", "https://b.example.org/api", "env")
    write(home / ".karvdash" / "config.ini", "https://c.example.org/api", "user")
    found = find_connection(environ={"KARVDASH_CONFIG": str(named)}, config=str(flagged))
    assert (found.base_url, found.token, found.source) == ("https://a.example.org/", "flag", str(flagged))
    assert find_connection(environ={"KARVDASH_CONFIG": str(named)}).token == "env"
    # the command line's --url still wins over the file's address
    assert find_connection("https://d.example.org/services/karvdash/api", None, environ={}, config=str(flagged)).base_url == (
        "https://d.example.org/services/karvdash/")


def test_a_missing_config_file_is_named(home, capsys):
    assert main.main(["--config", str(home / "nothing.ini"), "list_services"]) == 3
    assert "cannot read" in capsys.readouterr().err


class Recording:
    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def request(self, method, path, *, json=None, **kwargs):
        self.calls.append((method, path, json))
        return self.answer


@pytest.mark.parametrize("argv, sent", [
    # Karvdash's command lines: the command's options without --, -a or --all-pods before the name
    (["exec_service", "web", "ls", "-l", "/"], {"command": ["ls", "-l", "/"], "all_pods": False}),
    (["exec_service", "-a", "web", "ls", "-l"], {"command": ["ls", "-l"], "all_pods": True}),
    (["exec_service", "--all-pods", "web", "cat", "--help"], {"command": ["cat", "--help"], "all_pods": True}),
    (["exec_service", "--all", "web", "--", "ls", "-a"], {"command": ["ls", "-a"], "all_pods": True}),
    # after the name, -a is the command's
    (["exec_service", "web", "-a", "x"], {"command": ["-a", "x"], "all_pods": False}),
])
def test_exec_service_takes_karvdash_command_lines(monkeypatch, argv, sent):
    client = Recording([{"pod": "web-1", "output": "", "exit_code": 0}])
    monkeypatch.setattr(main, "DashboardClient", lambda connection: client)
    assert main.main(["--url", "http://127.0.0.1:1/", "--token", "t", *argv]) == 0
    assert client.calls == [("POST", "services/web", sent)]


def test_exec_service_without_a_command_is_a_usage_error(monkeypatch, capsys):
    client = Recording(None)
    monkeypatch.setattr(main, "DashboardClient", lambda connection: client)
    assert main.main(["--url", "http://127.0.0.1:1/", "--token", "t", "exec_service", "web"]) == 2
    assert client.calls == [] and "give the command" in capsys.readouterr().err


def test_create_service_sends_variables_as_typed(monkeypatch):
    # the dashboard matches them to the template's whatever their case
    client = Recording({"name": "z", "url": ""})
    monkeypatch.setattr(main, "DashboardClient", lambda connection: client)
    assert main.main(["--url", "http://127.0.0.1:1/", "--token", "t", "create_service", "zeppelin", "name=z"]) == 0
    assert client.calls == [("POST", "services", {"id": "zeppelin", "name": "z"})]
