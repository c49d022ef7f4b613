"""Karvdash 2.x's clients against a real hub and dashboard on the real
control plane: the requests karvdash_client sends (recorded in
karvdash2-client-requests.json) get Karvdash's answers at
``/services/karvdash/karvdash2/api/``, and karvdashctl works from a
Karvdash config file.

kwok runs no containers: an exec's command runs as a local process of kwok
(tests/kube/kwok-exec.yaml), its output brought back through the API
server's exec stream.
"""

from __future__ import annotations

import base64
import configparser
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.hubprocess import start_hub
from tests.integration.dashboardsession import ACCESS, dashboard_url, ensure_user
from tests.kube.fixtures import new_api_client, wait_for

pytestmark = [pytest.mark.kube, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
RECORDED = json.loads((Path(__file__).with_name("karvdash2-client-requests.json")).read_text())["requests"]
KARVDASHCTL = str(Path(sys.executable).parent / "karvdashctl")
HUB_NAMESPACE = "karvdash2-api-test"
INGRESS = "https://example.test"
SERVICES_READ = "custom:karvdash:services:read"


@pytest.fixture(scope="module")
def kube_hub(kube_cluster, tmp_path_factory):
    from kubernetes import client as sync_client
    from kubernetes.client.rest import ApiException

    api = new_api_client(kube_cluster.kubeconfig)
    try:
        sync_client.CoreV1Api(api).create_namespace({"metadata": {"name": HUB_NAMESPACE}})
    except ApiException as error:
        if error.status != 409:
            raise
    kube_cluster.kubectl("apply", "-f", str(ROOT / "chart" / "karvdash-hub" / "crds" / "template-crd.yaml"))
    kube_cluster.kubectl("wait", "--for=condition=established", "--timeout=60s", "crd/templates.karvdash.io")
    kubeconfig = str(kube_cluster.kubeconfig)
    running = start_hub(
        tmp_path_factory.mktemp("karvdash2-hub"),
        env={
            "KARVDASH_MODE": "kubernetes",
            "KARVDASH_INGRESS_URL": INGRESS,
            "KARVDASH_HUB_NAMESPACE": HUB_NAMESPACE,
            "KARVDASH_KUBECONFIG": kubeconfig,
            "KUBECONFIG": kubeconfig,
            # two host names to hand out: a third service with an address gets 429
            "KARVDASH_SERVICE_URL_PREFIXES": "alpha,beta",
        },
    )
    yield running, api
    running.stop()
    api.close()


@pytest.fixture
def user(kube_hub):
    """A user with the namespace the spawner makes at the first server start."""
    from kubernetes import client as sync_client

    from karvdash_hub.core.settings import load_settings
    from karvdash_hub.namespaces import objects

    hub, api = kube_hub
    created = []

    def make(name: str) -> str:
        ensure_user(hub, name)
        settings = load_settings(environ={"KARVDASH_MODE": "kubernetes", "KARVDASH_INGRESS_URL": INGRESS})
        sync_client.CoreV1Api(api).create_namespace(objects.namespace(settings, name))
        created.append(f"karvdash-{name}")
        return name

    yield make
    for namespace in created:
        sync_client.CoreV1Api(api).delete_namespace(namespace)


def base_url(hub) -> str:
    """What a Karvdash 2.x config.ini says for this hub (no trailing slash, as Karvdash's own)."""
    return dashboard_url(hub, "karvdash2/api")


def replay(hub, call: str, token: str, base: str | None = None, **fill) -> requests.Response:
    """Send one recorded request of karvdash_client as it sent it (to ``base``, a config file's base_url)."""
    recorded = next(r for r in RECORDED if r["call"] == call)
    values = {"TOKEN": token.lower(), **fill}

    def filled(text: str) -> str:
        for key, value in sorted(values.items(), key=lambda item: -len(item[0])):
            text = text.replace(f"${key}", value)
        return text

    headers = {name: filled(value) for name, value in recorded["headers"].items()}
    body = filled(recorded["body"]).encode()
    if recorded["method"] in ("POST", "PUT", "PATCH", "DELETE"):
        headers["Content-Length"] = str(len(body))
    # the session's own headers are the same four as recorded: the recorded values replace them
    response = requests.Session().request(
        recorded["method"], (base or base_url(hub)) + filled(recorded["path"]), headers=headers, data=body or None,
        timeout=120, allow_redirects=False,
    )
    return response


def karvdash_error(response: requests.Response, status: int) -> str:
    """The message of an error in Karvdash's shape: ``{"error": ...}`` and nothing else."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"], body
    return body["error"]


def direct(hub, method: str, path: str, token: str | None, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Token {token}"} if token else {}
    return requests.request(method, base_url(hub) + path, headers=headers, timeout=120, allow_redirects=False,
                            **kwargs)


def test_the_recorded_service_requests_get_karvdash_answers(kube_hub, user):
    hub, api = kube_hub
    name = user("kd2alice")
    token = hub.token_for(name)

    listed = replay(hub, "list_services", token)
    assert (listed.status_code, listed.json()) == (200, {"objects": []})

    created = replay(hub, "create_service", token)
    assert created.status_code == 201, created.text
    service = created.json()
    assert set(service) == {"name", "url", "created", "actions", "template"}
    assert (service["name"], service["url"], service["actions"]) == ("greeter", "https://alpha.example.test", True)
    assert service["created"].endswith("+00:00")
    template = service["template"]
    assert (template["id"], template["name"], template["filename"]) == (
        "hello-kubernetes", "Hello Kubernetes", "hello-kubernetes.template.yaml")
    assert {"NAME", "MESSAGE"} <= {v["name"] for v in template["variables"]}
    assert template["values"] == {"NAME": "greeter", "MESSAGE": "Hello there"}
    from kubernetes import client as sync_client

    deployment = sync_client.AppsV1Api(api).read_namespaced_deployment("greeter", f"karvdash-{name}")
    assert deployment.spec.template.spec.containers[0].env[0].value == "Hello there"

    listed = replay(hub, "list_services", token).json()["objects"]
    assert [(s["name"], s["url"], s["actions"], s["template"]["values"]) for s in listed] == [
        ("greeter", "https://alpha.example.test", True, {"NAME": "greeter", "MESSAGE": "Hello there"})]
    assert listed[0]["created"].endswith("+00:00") and listed[0]["template"]["id"] == "hello-kubernetes"

    def running():
        pods = sync_client.CoreV1Api(api).list_namespaced_pod(f"karvdash-{name}").items
        return [p for p in pods if p.status.phase == "Running"]

    wait_for(running, timeout=60, what="kwok to run the pod")
    # Karvdash's answer: the output of each pod the command ran in (ls -l / in the first, echo hi in all)
    listed = replay(hub, "exec_service", token)
    assert listed.status_code == 200 and list(listed.json()) == ["result"], listed.text
    [output] = listed.json()["result"]
    assert {"etc", "tmp"} <= {line.split()[-1] for line in output.splitlines()[1:]}, output
    echoed = replay(hub, "exec_service_all_pods", token)
    assert echoed.status_code == 200 and echoed.json() == {"result": ["hi\n"] * len(running())}, echoed.text

    removed = replay(hub, "delete_service", token)
    assert (removed.status_code, removed.content) == (204, b"")
    assert karvdash_error(replay(hub, "delete_service", token), 404) == "no service named greeter"
    assert replay(hub, "list_services", token).json() == {"objects": []}


def test_the_settings_written_into_pods_lead_karvdash_clients_here(kube_hub, user):
    """The config.ini the hub writes into a user namespace (the Secret karvdash-api), as
    Karvdash's client in an older image reads it: its base_url is this API."""
    from karvdash_hub.core.settings import load_settings
    from karvdash_hub.namespaces import objects

    hub, _ = kube_hub
    name = user("kd2hal")
    token = hub.token_for(name)
    settings = load_settings(environ={"KARVDASH_MODE": "kubernetes", "KARVDASH_INGRESS_URL": INGRESS})
    secret = objects.api_settings_secret(settings, name, token)
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(base64.b64decode(secret["data"]["config.ini"]).decode())
    written = urlsplit(ini["Karvdash"]["base_url"])
    assert f"{written.scheme}://{written.netloc}" == INGRESS
    # the client joins base_url and its paths; here the hub is on a loopback port, not at the ingress
    listed = replay(hub, "list_services", ini["Karvdash"]["token"], base=hub.url + written.path.rstrip("/"))
    assert (listed.status_code, listed.json()) == (200, {"objects": []})


def test_creating_answers_karvdash_statuses_and_takes_names_in_any_case(kube_hub, user):
    hub, _ = kube_hub
    name = user("kd2bob")
    token = hub.token_for(name)
    try:
        lower = direct(hub, "POST", "/services/", token, json={"id": "hello-kubernetes", "name": "web", "message": "hi"})
        assert lower.status_code == 201, lower.text
        assert lower.json()["template"]["values"] == {"NAME": "web", "MESSAGE": "hi"}
        assert "NAME: is given twice" in karvdash_error(
            direct(hub, "POST", "/services/", token, json={"id": "hello-kubernetes", "name": "a", "NAME": "b"}), 400)
        assert karvdash_error(direct(hub, "POST", "/services/", token, json={"id": "nothing", "NAME": "x"}), 404) == (
            "no template 'nothing'")
        assert "NAME: must be lowercase" in karvdash_error(
            direct(hub, "POST", "/services/", token, json={"id": "hello-kubernetes", "NAME": "Bad Name"}), 400)
        assert "id" in karvdash_error(direct(hub, "POST", "/services/", token, json={"NAME": "x"}), 400)
        assert "not valid JSON" in karvdash_error(direct(hub, "POST", "/services/", token, data=b"{"), 400)
        first = direct(hub, "POST", "/services/", token, json={"id": "argo", "name": "a1"})
        assert first.status_code == 201, first.text
        assert "allows one service per user" in karvdash_error(
            direct(hub, "POST", "/services/", token, json={"id": "argo", "NAME": "a2"}), 409)
        # both host names are taken (web, a1)
        assert "prefixes are taken" in karvdash_error(
            direct(hub, "POST", "/services/", token, json={"id": "hello-kubernetes", "NAME": "third"}), 429)
        # a credential left out is generated: the values hold it this once
        redis = direct(hub, "POST", "/services/", token, json={"id": "redis", "name": "cache"})
        assert redis.status_code == 201, redis.text
        assert redis.json()["url"] is None and len(redis.json()["template"]["values"]["PASSWORD"]) >= 20
        listed = {s["name"]: s for s in direct(hub, "GET", "/services/", token).json()["objects"]}
        assert "PASSWORD" not in listed["cache"]["template"]["values"]
    finally:
        for service in ("web", "a1", "cache"):
            direct(hub, "DELETE", f"/services/{service}/", token)


def test_exec_takes_karvdash_all_pods_flags(kube_hub, user):
    hub, _ = kube_hub
    token = hub.token_for(user("kd2carol"))
    # a flag that is understood gets as far as the service (there is none: 404)
    for flag in (0, 1, "0", "1", True, False, "true", "False"):
        answer = direct(hub, "POST", "/services/nothing/", token, json={"command": ["id"], "all_pods": flag})
        assert karvdash_error(answer, 404) == "no service named nothing", flag
    assert karvdash_error(direct(hub, "POST", "/services/nothing", token, json={"command": ["id"]}), 404)
    for flag in (2, "yes", [], 1.0):
        answer = direct(hub, "POST", "/services/nothing/", token, json={"command": ["id"], "all_pods": flag})
        assert "all_pods must be" in karvdash_error(answer, 400), flag
    assert "non-empty list" in karvdash_error(
        direct(hub, "POST", "/services/nothing/", token, json={"command": "ls -l"}), 400)


def test_the_recorded_template_requests_get_karvdash_answers(kube_hub, user):
    hub, _ = kube_hub
    name = user("kd2dora")
    token = hub.token_for(name)
    listed = replay(hub, "list_templates", token)
    assert listed.status_code == 200 and list(listed.json()) == ["objects"]
    by_id = {t["id"]: t for t in listed.json()["objects"]}
    hello = by_id["hello-kubernetes"]
    assert (hello["custom"], hello["filename"], hello["singleton"], by_id["argo"]["singleton"]) == (
        False, "hello-kubernetes.template.yaml", False, True)
    assert {"name", "description", "singleton", "auth", "datasets", "variables", "id"} <= set(hello)

    shown = replay(hub, "get_template", token)
    assert shown.status_code == 200
    text = (ROOT / "service_templates" / "hello-kubernetes.template.yaml").read_text()
    assert shown.json()["data"] == text and shown.json()["id"] == "hello-kubernetes"

    mine = text.replace("name: Hello Kubernetes\n", "name: My Greeter\n", 1)
    added = replay(hub, "add_template", token, TEMPLATE=json.dumps(mine)[1:-1])
    # Karvdash answered 200 here
    assert added.status_code == 200, added.text
    template_id = added.json()["id"]
    assert added.json()["name"] == "My Greeter" and "filename" not in added.json()
    listed = {t["id"]: t for t in replay(hub, "list_templates", token).json()["objects"]}
    assert listed[template_id]["custom"] is True
    started = direct(hub, "POST", "/services/", token, json={"id": template_id, "name": "mine"})
    assert started.status_code == 201 and started.json()["template"]["name"] == "My Greeter"
    assert direct(hub, "DELETE", "/services/mine/", token).status_code == 204

    removed = replay(hub, "remove_template", token, TEMPLATE_ID=template_id)
    assert (removed.status_code, removed.content) == (200, b"")
    assert karvdash_error(replay(hub, "remove_template", token, TEMPLATE_ID=template_id), 404)
    assert "cannot be deleted" in karvdash_error(replay(hub, "remove_template", token, TEMPLATE_ID="jupyter"), 403)
    assert "not a valid template" in karvdash_error(
        replay(hub, "add_template", token, TEMPLATE="kind: Template\\nname: Broken\\n"), 400)
    assert karvdash_error(direct(hub, "POST", "/templates/", token, json={"yaml": "x"}), 400)


def test_tokens_and_scopes_as_for_the_dashboards_api(kube_hub, user):
    hub, _ = kube_hub
    name = user("kd2erin")
    assert "authentication required" in karvdash_error(direct(hub, "GET", "/services/", None), 401)
    assert karvdash_error(direct(hub, "GET", "/templates/", "not-a-token"), 401)
    # the header's word in any case, as the hub reads it
    for word in ("Token", "token", "Bearer"):
        answer = requests.get(base_url(hub) + "/templates/", headers={"Authorization": f"{word} {hub.token_for(name)}"},
                              timeout=60)
        assert answer.status_code == 200, word
    # Karvdash also took ?token=; the hub does not (tokens in addresses end up in logs)
    in_url = requests.get(base_url(hub) + "/templates/", params={"token": hub.token_for(name)}, timeout=60)
    assert karvdash_error(in_url, 401)
    limited = hub.token_for(name, scopes=[ACCESS, SERVICES_READ])
    assert direct(hub, "GET", "/services/", limited).status_code == 200
    assert "custom:karvdash:services:write" in karvdash_error(
        direct(hub, "POST", "/services/", limited, json={"id": "hello-kubernetes", "NAME": "x"}), 403)
    assert "custom:karvdash:templates:read" in karvdash_error(direct(hub, "GET", "/templates/", limited), 403)
    # nothing else lives below the prefix, and it says so in Karvdash's shape
    assert "services/ and templates/" in karvdash_error(direct(hub, "GET", "/datasets/", hub.token_for(name)), 404)
    assert karvdash_error(direct(hub, "GET", "/services/Upper_Case/", hub.token_for(name)), 404)
    # another user's service is not found
    other = user("kd2frank")
    made = direct(hub, "POST", "/services/", hub.token_for(other), json={"id": "redis", "NAME": "theirs"})
    assert made.status_code == 201, made.text
    assert karvdash_error(direct(hub, "DELETE", "/services/theirs/", hub.token_for(name)), 404)
    assert direct(hub, "DELETE", "/services/theirs/", hub.token_for(other)).status_code == 204


@pytest.fixture
def ctl(kube_hub, tmp_path):
    hub, _ = kube_hub

    def run(*args, config: str):
        path = tmp_path / "config.ini"
        path.write_text(config)
        # Karvdash's --config before the command
        return subprocess.run([KARVDASHCTL, "--config", str(path), *args], capture_output=True, text=True, timeout=300,
                              env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})

    return run


def test_karvdashctl_with_a_karvdash_config_and_its_commands(kube_hub, user, ctl):
    hub, _ = kube_hub
    name = user("kd2gina")
    token = hub.token_for(name)
    # Karvdash's base_url is its API's address: here the hub's /api, the dashboard's API or its Karvdash 2.x API
    for url in (hub.url + "/api", dashboard_url(hub, "api/"), base_url(hub)):
        listed = ctl("list_templates", config=f"[Karvdash]\nbase_url = {url}\ntoken = {token}\n")
        assert listed.returncode == 0, (url, listed.stderr)
        assert any(line.split()[:1] == ["hello-kubernetes"] for line in listed.stdout.splitlines())
    config = f"[Karvdash]\nbase_url = {hub.url}/api\ntoken = {token}\n"
    created = ctl("create_service", "hello-kubernetes", "name=web", "message=Hello from karvdashctl", config=config)
    assert (created.returncode, created.stdout.strip()) == (0, "created web at https://alpha.example.test"), created.stderr
    try:
        assert "web" in ctl("list_services", config=config).stdout
        # the command's options need no --, and -a/--all-pods come before the name
        wait_for(lambda: ctl("exec_service", "web", "true", config=config).returncode == 0, timeout=60,
                 what="the service's pod to run")
        for args, printed in ((["web", "ls", "-l", "/"], "etc"), (["-a", "web", "ls", "-l"], "tmp"),
                              (["--all-pods", "web", "echo", "hi"], "hi")):
            ran = ctl("exec_service", *args, config=config)
            assert ran.returncode == 0 and printed in ran.stdout.split(), (args, ran.stdout, ran.stderr)
        # a failed command fails karvdashctl (kwok sends no exit code, only why: exit 1)
        failed = ctl("exec_service", "web", "sh", "-c", "echo out; exit 3", config=config)
        assert (failed.returncode, failed.stdout) == (1, "out\n") and "exit status 3" in failed.stderr, failed.stderr
        empty = ctl("exec_service", "web", config=config)
        assert empty.returncode == 2 and "give the command" in empty.stderr
    finally:
        removed = ctl("delete_service", "web", config=config)
    assert removed.returncode == 0 and removed.stdout.strip() == "removed web"
