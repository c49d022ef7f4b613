"""Services and templates through a real hub and dashboard (local mode):
the templates pages and API, the services API's answer without
Kubernetes, and the ingress-auth endpoint's answers for the owner, another
user, an anonymous request and a revoked, deactivated or deleted account.

Instances themselves need Kubernetes: tests/integration/test_instances_kube.py
covers them on the real control plane.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from karvdash_hub.services.ingressauth import COOKIE_NAME, DEACTIVATED_GROUP, USER_CACHE_SECONDS, HubUserLookup
from tests.hubprocess import start_hub
from tests.integration.dashboardsession import (
    PASSWORD,
    DashboardAPI,
    browser_session,
    dashboard_url,
    ensure_user,
    log_in_page,
    private_folder,
)

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    # the ingress domain only names hosts here; nothing is sent to it
    running = start_hub(tmp_path_factory.mktemp("hub"), env={"KARVDASH_INGRESS_URL": "http://example.test"})
    yield running
    running.stop()


def service_cookie(hub, username: str) -> str:
    """The domain cookie the sign-in page gives ``username``."""
    session = browser_session(hub, username, PASSWORD)
    response = session.get(
        dashboard_url(hub, "ingress-auth/signin"),
        params={"rd": "http://web-alice.example.test/page"},
        allow_redirects=False,
        timeout=60,
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "http://web-alice.example.test/page"
    header = response.headers["Set-Cookie"]
    assert "Domain=example.test" in header and "HttpOnly" in header and "SameSite=Lax" in header
    return re.search(rf"{COOKIE_NAME}=\"?([^;\"]+)", header).group(1)


def check(hub, owner: str, cookie: str | None) -> requests.Response:
    headers = {"Cookie": f"{COOKIE_NAME}={cookie}"} if cookie else {}
    return requests.get(dashboard_url(hub, f"ingress-auth/check/{owner}/web"), headers=headers, timeout=60)


def test_ingress_auth_answers(hub):
    for name in ("alice", "bob", "carol"):
        ensure_user(hub, name)
    alice, bob, carol = (service_cookie(hub, n) for n in ("alice", "bob", "carol"))

    owner = check(hub, "alice", alice)
    assert (owner.status_code, owner.text, owner.headers["X-Auth-Request-User"]) == (200, "owner", "alice")
    other = check(hub, "alice", bob)
    assert (other.status_code, other.text) == (403, "this service belongs to another user")
    anonymous = check(hub, "alice", None)
    assert (anonymous.status_code, anonymous.text) == (401, "not signed in")
    forged = check(hub, "alice", alice[:-4] + "AAAA")
    assert forged.status_code == 401
    # the sign-in page never sends a browser off the ingress domain
    session = browser_session(hub, "bob", PASSWORD)
    away = session.get(dashboard_url(hub, "ingress-auth/signin"), params={"rd": "https://evil.example.org/"},
                       allow_redirects=False, timeout=60)
    assert away.status_code == 302 and away.headers["Location"] == "/services/karvdash/services"

    # a deleted account loses access at once (after the lookup's 2 s cache at most)
    assert check(hub, "carol", carol).status_code == 200
    admin = hub.admin_session()
    assert admin.delete(f"{hub.hub_api}/users/carol", timeout=30).status_code == 204
    time.sleep(USER_CACHE_SECONDS + 0.1)
    gone = check(hub, "carol", carol)
    assert (gone.status_code, gone.text) == (401, "no account carol")


def test_revoking_an_account_on_the_sign_ups_page_refuses_its_services_at_once(hub):
    """The hub's Sign-ups page puts a revoked account into the deactivated
    group; the dashboard's own token must be allowed to read groups, or the
    check lets the still valid service cookie through."""
    ensure_user(hub, "ivan")
    cookie = service_cookie(hub, "ivan")
    assert check(hub, "ivan", cookie).status_code == 200
    admin = hub.admin_session()

    def toggle():
        response = admin.post(f"{hub.url}/hub/authorize/ivan", data={"_xsrf": admin.cookies.get("_xsrf")},
                              allow_redirects=False, timeout=30)
        assert response.status_code == 302

    toggle()
    time.sleep(USER_CACHE_SECONDS + 0.1)
    refused = check(hub, "ivan", cookie)
    assert (refused.status_code, refused.text) == (403, "the account ivan is deactivated")
    # approved again: the same cookie works again
    toggle()
    time.sleep(USER_CACHE_SECONDS + 0.1)
    assert check(hub, "ivan", cookie).status_code == 200


async def test_deactivated_accounts_are_refused_by_the_hub_lookup(hub):
    """Deactivation is membership of the hub group the dashboard checks; the
    lookup reads it from the hub's REST API (needs read:users:groups)."""
    ensure_user(hub, "dave")
    token = hub.token_for(hub.admin, scopes=["read:users:name", "read:users:groups"])
    admin = hub.admin_session()
    admin.post(f"{hub.hub_api}/groups/{DEACTIVATED_GROUP}", timeout=30)
    lookup = HubUserLookup(hub.hub_api, token, ttl=0)
    assert (await lookup("dave")).deactivated is False
    response = admin.post(f"{hub.hub_api}/groups/{DEACTIVATED_GROUP}/users", json={"users": ["dave"]}, timeout=30)
    assert response.status_code == 200
    assert (await lookup("dave")).deactivated is True
    assert (await lookup("admin")).admin is True
    assert await lookup("nobody") is None


def test_templates_api_and_services_without_kubernetes(hub):
    ensure_user(hub, "erin")
    token = hub.token_for("erin")
    api = DashboardAPI(hub, token=token)
    listed = api("GET", "templates")
    assert listed.status_code == 200
    ids = [t["id"] for t in listed.json()]
    assert {"jupyter", "zeppelin", "hello-kubernetes", "minio"} <= set(ids)
    minio = next(t for t in listed.json() if t["id"] == "minio")
    assert minio["custom"] is False and minio["auth"] is True
    secret = next(v for v in minio["variables"] if v["name"] == "ROOT_PASSWORD")
    assert secret == {"name": "ROOT_PASSWORD", "default": "", "help": secret["help"], "label": "Secret key",
                      "secret": True}
    one = api("GET", "templates/hello-kubernetes")
    assert one.status_code == 200 and one.json()["data"].startswith("kind: Template")
    download = api("GET", "templates/hello-kubernetes", params={"download": "1"})
    assert download.headers["Content-Disposition"] == 'attachment; filename="hello-kubernetes.template.yaml"'
    assert api("GET", "templates/nothing-here").status_code == 404
    assert api("DELETE", "templates/jupyter").status_code == 403
    assert api("GET", "services").status_code == 503
    created = api("POST", "services", json={"id": "hello-kubernetes", "NAME": "x"})
    assert created.status_code == 503
    assert api("POST", "services", json={"id": "nothing-here"}).status_code == 404
    assert api("POST", "services", json={"NAME": "x"}).status_code == 400


def test_templates_page_in_the_browser(page, hub):
    ensure_user(hub, "frank")
    log_in_page(page, hub, "frank")
    page.goto(dashboard_url(hub, "templates"))
    row = page.locator("tr[data-template=minio]")
    row.wait_for()
    assert row.locator("td").nth(0).inner_text() == "MinIO"
    assert page.locator("tr[data-template=redis] td").nth(3).inner_text() == "—"
    assert page.locator("#nav-templates").get_attribute("aria-current") == "page"
    # no delete button for shipped templates
    assert page.locator("[data-action=delete]").count() == 0
    page.goto(dashboard_url(hub, "services/new/minio"))
    assert page.locator("#var-NAME").input_value() == "minio"
    assert len(page.locator("#var-ROOT_PASSWORD").input_value()) >= 20
    page.goto(dashboard_url(hub, "services"))
    assert "need Kubernetes" in page.locator("#services-unavailable").inner_text()


def test_an_administrator_acting_as_a_user_keeps_acting_on_the_templates_page(hub):
    ensure_user(hub, "frank")
    admin = browser_session(hub, hub.admin, hub.admin_password)
    page = admin.get(dashboard_url(hub, "templates"), params={"as": "frank"}, timeout=60)
    assert page.status_code == 200
    assert "You are acting as <strong>frank</strong>" in page.text
    assert 'href="/services/karvdash/api/templates/minio?download=1&amp;as=frank"' in page.text
    own = admin.get(dashboard_url(hub, "templates"), timeout=60)
    assert 'id="acting-as"' not in own.text and 'href="/services/karvdash/api/templates/minio?download=1"' in own.text
    refused = browser_session(hub, "frank", PASSWORD).get(dashboard_url(hub, "templates"), params={"as": "admin"},
                                                          timeout=60)
    assert refused.status_code == 403


def test_karvdashctl_template_and_service_commands(hub, tmp_path):
    ensure_user(hub, "gina")
    token = hub.token_for("gina")
    command = [str(Path(sys.executable).parent / "karvdashctl"), "--url", dashboard_url(hub), "--token", token]

    def ctl(*args):
        return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})

    listed = ctl("list_templates")
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[:3] == ["argo", "yes", "no"] for line in listed.stdout.splitlines())
    shown = ctl("get_template", "hello-kubernetes")
    assert shown.returncode == 0 and shown.stdout.startswith("kind: Template\nname: Hello Kubernetes\n")
    refused = ctl("remove_template", "jupyter")
    assert refused.returncode == 4 and "cannot be deleted (403)" in refused.stderr
    missing = ctl("get_template", "nothing-here")
    assert missing.returncode == 5
    usage = ctl("create_service", "hello-kubernetes", "NAME")
    assert usage.returncode == 2 and "give variables as NAME=value" in usage.stderr
    local = ctl("create_service", "hello-kubernetes", "NAME=web")
    assert local.returncode == 1 and "services need Kubernetes" in local.stderr


# --- the New service flow on the real control plane -------------------------------------------

KUBE_HUB_NAMESPACE = "karvdash-browser-test"


@pytest.fixture(scope="module")
def kube_hub(kube_cluster, tmp_path_factory):
    from kubernetes import client as sync_client
    from kubernetes.client.rest import ApiException

    from tests.kube.fixtures import new_api_client

    api = new_api_client(kube_cluster.kubeconfig)
    try:
        sync_client.CoreV1Api(api).create_namespace({"metadata": {"name": KUBE_HUB_NAMESPACE}})
    except ApiException as error:
        if error.status != 409:
            raise
    # the chart installs the Template CRD
    crd = Path(__file__).resolve().parents[2] / "chart" / "karvdash-hub" / "crds" / "template-crd.yaml"
    kube_cluster.kubectl("apply", "-f", str(crd))
    kube_cluster.kubectl("wait", "--for=condition=established", "--timeout=60s", "crd/templates.karvdash.io")
    kubeconfig = str(kube_cluster.kubeconfig)
    running = start_hub(
        tmp_path_factory.mktemp("kube-hub"),
        env={
            "KARVDASH_MODE": "kubernetes",
            "KARVDASH_INGRESS_URL": "https://example.test",
            "KARVDASH_HUB_NAMESPACE": KUBE_HUB_NAMESPACE,
            "KARVDASH_KUBECONFIG": kubeconfig,
            "KUBECONFIG": kubeconfig,
        },
    )
    yield running, api
    running.stop()
    api.close()


@pytest.mark.kube
@pytest.mark.browser
def test_new_service_flow_in_the_browser(page, kube_hub):
    from kubernetes import client as sync_client

    from karvdash_hub.core.settings import load_settings
    from karvdash_hub.namespaces import objects

    hub, api = kube_hub
    ensure_user(hub, "hank")
    # the namespace the spawner makes at the first server start
    settings = load_settings(environ={"KARVDASH_MODE": "kubernetes", "KARVDASH_INGRESS_URL": "https://example.test"})
    core = sync_client.CoreV1Api(api)
    core.create_namespace(objects.namespace(settings, "hank"))
    try:
        log_in_page(page, hub, "hank")
        page.goto(dashboard_url(hub, "services"))
        page.locator("#services-empty").wait_for()
        page.click("#new-service-button")
        page.click("#new-service-menu [data-template=hello-kubernetes]")
        page.wait_for_url("**/services/new/hello-kubernetes")
        assert page.locator("#var-NAME").input_value() == "hello"
        assert page.locator("#help-MESSAGE").inner_text() == "Text shown on the page"
        # a bad name is refused with the engine's message, and nothing is made
        page.fill("#var-NAME", "Bad Name")
        page.click("#create-service")
        page.locator("#karvdash-flash").get_by_text("NAME: must be lowercase letters").wait_for()
        page.fill("#var-NAME", "greeter")
        page.fill("#var-MESSAGE", "Hello: {from: the browser}")
        page.click("#create-service")
        page.wait_for_url("**/services?created=greeter")
        row = page.locator("tr[data-name=greeter]")
        row.wait_for()
        link = row.locator("td").nth(0).locator("a")
        assert link.get_attribute("href") == "https://greeter-hank.example.test"
        assert row.locator("td").nth(1).inner_text() == "Hello Kubernetes"
        deployment = sync_client.AppsV1Api(api).read_namespaced_deployment("greeter", "karvdash-hank")
        assert deployment.spec.template.spec.containers[0].env[0].value == "Hello: {from: the browser}"

        # the status turns ready once kwok has run the pod (the page refreshes itself)
        row.locator(".badge", has_text="ready").wait_for(timeout=60_000)

        api_client = DashboardAPI(hub, token=hub.token_for("hank"))
        again = api_client("POST", "services", json={"id": "hello-kubernetes", "NAME": "greeter"})
        assert again.status_code == 201 and again.json()["name"].startswith("greeter-")
        assert "credentials" not in again.json()
        assert api_client("DELETE", "services/" + again.json()["name"]).status_code == 204
        # a credential left out is generated and shown once; the Secret holds it
        redis = api_client("POST", "services", json={"id": "redis", "NAME": "cache"})
        assert redis.status_code == 201 and redis.json()["values"] == {"NAME": "cache"}
        password = redis.json()["credentials"]["PASSWORD"]
        secret = core.read_namespaced_secret("cache-credentials", "karvdash-hank")
        assert base64.b64decode(secret.data["password"]).decode() == password and len(password) >= 20
        assert api_client("POST", "services", json={"id": "redis", "NAME": "x", "PASSWORD": ""}).status_code == 400
        assert api_client("POST", "services", json={"id": "argo", "NAME": "a1"}).status_code == 201
        conflict = api_client("POST", "services", json={"id": "argo", "NAME": "a2"})
        assert conflict.status_code == 409 and "allows one service per user" in conflict.json()["message"]
        ran = api_client("POST", "services/cache", json={"command": "id"})
        assert ran.status_code == 400
        for name in ("cache", "a1"):
            assert api_client("DELETE", "services/" + name).status_code == 204
        assert api_client("DELETE", "services/cache").status_code == 404

        row.locator("[data-action=remove]").click()
        page.locator(".karvdash-dialog-confirm").click()
        page.locator("#karvdash-flash").get_by_text("Removed greeter.").wait_for()
        page.locator("#services-empty").wait_for()
        assert api_client("GET", "services").json() == []
    finally:
        core.delete_namespace("karvdash-hank")


@pytest.mark.kube
@pytest.mark.browser
def test_add_template_from_files_in_the_browser(page, kube_hub):
    """Files' row action "Add template" on *.template.yaml files, with its
    flash messages; the Templates page then deletes it after confirmation."""
    from kubernetes import client as sync_client

    from karvdash_hub.core.settings import load_settings
    from karvdash_hub.namespaces import objects

    hub, api = kube_hub
    ensure_user(hub, "iris")
    settings = load_settings(environ={"KARVDASH_MODE": "kubernetes", "KARVDASH_INGRESS_URL": "https://example.test"})
    core = sync_client.CoreV1Api(api)
    core.create_namespace(objects.namespace(settings, "iris"))
    folder = private_folder(hub, "iris")
    folder.mkdir(parents=True, exist_ok=True)
    shipped = (Path(__file__).resolve().parents[2] / "service_templates" / "hello-kubernetes.template.yaml").read_text()
    (folder / "greeter.template.yaml").write_text(shipped.replace("name: Hello Kubernetes\n", "name: My Greeter\n", 1))
    (folder / "broken.template.yaml").write_text("kind: Template\nname: Broken\n")
    (folder / "notes.txt").write_text("n")
    flash = page.locator(".karvdash-flash-message")

    def actions(name):
        row = page.locator(f'#files-table tbody tr[data-name="{name}"]')
        row.locator(".row-actions").click()
        return row.locator(".dropdown-item")

    try:
        log_in_page(page, hub, "iris")
        page.goto(dashboard_url(hub, "files/private/"))
        # no registry here: no "Add image"; only template files offer "Add template"
        expect(actions("notes.txt")).to_have_text(["Download", "Rename", "Move", "Delete"])
        page.keyboard.press("Escape")
        expect(actions("greeter.template.yaml")).to_have_text(["Download", "Add template", "Rename", "Move", "Delete"])
        page.click('tr[data-name="greeter.template.yaml"] [data-action="add-template"]')
        expect(flash.last).to_have_text("Added the template My Greeter: start services from it on the Templates page.")
        actions("broken.template.yaml")
        page.click('tr[data-name="broken.template.yaml"] [data-action="add-template"]')
        expect(page.locator(".karvdash-flash-message.alert-danger")).to_have_text(
            "broken.template.yaml: not a valid template: Template: 'variables' is a required property")

        api_client = DashboardAPI(hub, token=hub.token_for("iris"))
        mine = [t for t in api_client("GET", "templates").json() if t["custom"]]
        assert [(t["name"], t["source"]) for t in mine] == [("My Greeter", "user")]
        assert api_client("GET", "templates/" + mine[0]["id"]).json()["data"] == (folder / "greeter.template.yaml").read_text()
        # only a file of one's own domains, ending in .template.yaml
        refused = api_client("POST", "templates", json={"domain": "private", "path": "notes.txt"})
        assert (refused.status_code, refused.json()["message"]) == (400, "template files end with .template.yaml")
        (folder / "escape.template.yaml").symlink_to(private_folder(hub, "hank") / "x.template.yaml")
        escape = api_client("POST", "templates", json={"domain": "private", "path": "escape.template.yaml"})
        assert (escape.status_code, escape.json()["message"]) == (
            403, "private/escape.template.yaml leads outside the private domain")

        # the Templates page's own "Add template" takes a file of this computer
        page.goto(dashboard_url(hub, "templates"))
        uploaded = folder.parent / "uploaded.template.yaml"
        uploaded.write_text(shipped.replace("name: Hello Kubernetes\n", "name: Uploaded One\n", 1))
        page.set_input_files("#template-upload", str(uploaded))
        expect(flash.last).to_have_text("Added the template Uploaded One.")
        expect(page.locator("tr[data-template=uploaded-one] td").first).to_have_text("Uploaded One")
        page.set_input_files("#template-upload", str(folder / "broken.template.yaml"))
        expect(page.locator(".karvdash-flash-message.alert-danger")).to_have_text(
            "broken.template.yaml: not a valid template: Template: 'variables' is a required property")
        assert api_client("DELETE", "templates/uploaded-one").status_code == 204

        page.goto(dashboard_url(hub, "templates"))
        page.click(f"tr[data-template={mine[0]['id']}] [data-action=delete]")
        page.click(".karvdash-dialog-confirm")
        expect(flash.last).to_have_text("Deleted the template My Greeter.")
        expect(page.locator(f"tr[data-template={mine[0]['id']}]")).to_have_count(0)
        assert [t for t in api_client("GET", "templates").json() if t["custom"]] == []
    finally:
        core.delete_namespace("karvdash-iris")
