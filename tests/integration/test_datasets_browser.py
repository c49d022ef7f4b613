"""The Datasets page and API through a real hub in kubernetes mode against
the test control plane, with Debian's chromium: add an S3 dataset with the
form, see it listed, a taken name suffixed, the YAML download without
credentials, another user seeing nothing, deletion; disabled types hidden.

The hub runs in kubernetes mode (KarvdashSpawner, no server is started
here) and its dashboard reaches the cluster with the admin kubeconfig
(``kubeconfig`` setting). User namespaces are made as the spawner makes
them, since no server is spawned; the Dataset CRD is the test stand-in.
"""

from __future__ import annotations

import base64
import uuid

import pytest
import yaml
from kubernetes import client
from playwright.sync_api import expect

from karvdash_hub.core.settings import load_settings
from karvdash_hub.namespaces import objects
from tests.hubprocess import start_hub
from tests.integration.dashboardsession import DashboardAPI, dashboard_url, ensure_user, log_in_page
from tests.integration.test_chart_kube import install_crds
from tests.integration.test_images_browser import karvdashctl

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.kube]


@pytest.fixture(scope="module")
def people():
    suffix = uuid.uuid4().hex[:6]
    return f"dsalice{suffix}", f"dsbob{suffix}"


@pytest.fixture(scope="module")
def hub(kube_cluster, kube_api_client, tmp_path_factory, people):
    install_crds(kube_cluster, kube_api_client)
    state = tmp_path_factory.mktemp("hub")
    env = {
        "KUBECONFIG": str(kube_cluster.kubeconfig),
        "KARVDASH_MODE": "kubernetes",
        "KARVDASH_KUBECONFIG": str(kube_cluster.kubeconfig),
        # names hosts only; nothing is sent there
        "KARVDASH_INGRESS_URL": "http://example.test",
        "KARVDASH_DATASETS_AVAILABLE": "true",
        "KARVDASH_DISABLED_DATASET_TEMPLATES": "archive",
    }
    running = start_hub(state, env=env, args=["--ip=127.0.0.1"])
    core = client.CoreV1Api(kube_api_client)
    settings = load_settings(environ={"KARVDASH_STATE_DIR": str(state)})
    for name in people:
        core.create_namespace(objects.namespace(settings, name))
    yield running
    running.stop()
    for name in people:
        core.delete_namespace(settings.user_namespace(name))


def test_add_list_download_and_delete_in_the_browser(page, hub, people, kube_api_client):
    alice, bob = people
    ensure_user(hub, alice)
    ensure_user(hub, bob)
    log_in_page(page, hub, alice)
    page.goto(dashboard_url(hub, "datasets"))
    expect(page.locator("#datasets-empty")).to_be_visible()
    page.click("#add-dataset-button")
    # archive is disabled on this deployment
    expect(page.locator("#add-dataset-menu a")).to_have_text(
        ["S3 (your MinIO service)", "S3 (remote)", "H3 (your Redis service)", "H3 (remote)"])
    page.click("#add-s3-remote")
    expect(page.locator("h1")).to_have_text("Add dataset: S3 (remote)")

    def fill(bucket: str):
        page.fill("#field-name", "climate")
        page.fill("#field-endpoint", "https://s3.example.org")
        page.fill("#field-bucket", bucket)
        page.fill("#field-accessKeyID", "AKIABROWSER")
        page.fill("#field-secretAccessKey", "browser-secret-value")
        page.click("#create-dataset")

    # a mistake is named and nothing is created
    fill("Bad_Bucket")
    expect(page.locator(".karvdash-flash-message.alert-danger")).to_have_text(
        "bucket: 'Bad_Bucket' is not a bucket name (3 to 63 lowercase letters, digits, '.' and '-')")
    fill("climate-data")
    expect(page.locator(".karvdash-flash-message")).to_contain_text("Added the dataset climate.")
    row = page.locator("#datasets-table tbody tr[data-name='climate']")
    expect(row.locator("td")).to_have_text(["climate", "S3 (remote)", "https://s3.example.org", "climate-data", "Delete"])

    # the same name again gets a suffix
    page.goto(dashboard_url(hub, "datasets/new/s3-remote"))
    fill("climate-data")
    expect(page.locator(".karvdash-flash-message")).to_contain_text("Added the dataset climate-")
    expect(page.locator("#datasets-table tbody tr")).to_have_count(2)
    suffixed = page.locator("#datasets-table tbody tr").nth(1).get_attribute("data-name")
    assert suffixed.startswith("climate-") and len(suffixed) == len("climate-") + 4

    # the YAML download names the Secret and holds no credential
    href = row.locator("a.dataset-name").get_attribute("href")
    download = page.request.get(hub.url + href)
    assert download.headers["content-disposition"] == 'attachment; filename="climate.yaml"'
    assert "AKIABROWSER" not in download.text() and "browser-secret-value" not in download.text()
    assert yaml.safe_load(download.text())["spec"]["local"] == {
        "type": "COS", "endpoint": "https://s3.example.org", "bucket": "climate-data",
        "secret-name": "karvdash-dataset-climate"}
    secret = client.CoreV1Api(kube_api_client).read_namespaced_secret("karvdash-dataset-climate", f"karvdash-{alice}")
    assert base64.b64decode(secret.data["secretAccessKey"]).decode() == "browser-secret-value"

    # bob sees none of it and cannot remove it
    bob_api = DashboardAPI(hub, token=hub.token_for(bob))
    assert bob_api("GET", "datasets").json() == []
    assert bob_api("GET", "datasets/climate").status_code == 404
    assert bob_api("DELETE", "datasets/climate").status_code == 404
    refused = bob_api("POST", "datasets", json={"type": "archive", "name": "a", "url": "https://example.org/a.tar"})
    assert (refused.status_code, refused.json()["message"]) == (400, "dataset type archive is disabled on this deployment")

    row.locator("[data-action='delete']").click()
    page.click(".karvdash-dialog-confirm")
    expect(page.locator(".karvdash-flash-message").last).to_have_text("Deleted climate.")
    expect(page.locator("#datasets-table tbody tr")).to_have_count(1)
    alice_api = DashboardAPI(hub, token=hub.token_for(alice))
    assert [d["name"] for d in alice_api("GET", "datasets").json()] == [suffixed]


def test_api_types_and_scopes(hub, people):
    alice, _ = people
    ensure_user(hub, alice)
    api = DashboardAPI(hub, token=hub.token_for(alice))
    types = api("GET", "dataset-types").json()
    assert [t["id"] for t in types] == ["s3-local", "s3-remote", "h3-local", "h3-remote"]
    assert types[0]["services"] == [] and types[0]["service_template"] == "minio"
    reader = DashboardAPI(hub, token=hub.token_for(alice, scopes=[
        "access:services!service=karvdash", "custom:karvdash:datasets:read"]))
    assert reader("GET", "datasets").status_code == 200
    denied = reader("POST", "datasets", json={"type": "s3-remote", "name": "x"})
    assert (denied.status_code, denied.json()["message"]) == (
        403, "this needs the scope custom:karvdash:datasets:write, which your token does not have")
    bad = api("POST", "datasets", json={"type": "h3-remote", "name": "fast", "storageUri": "redis://:pw@r.example.org",
                                        "bucket": "b01"})
    assert (bad.status_code, bad.json()) == (400, {
        "status": 400,
        "message": "storageUri: must not contain a user name or password (Datashim would keep them in clear)"})
    made = api("POST", "datasets", json={"type": "h3-remote", "name": "fast", "storageUri": "redis://r.example.org:6379",
                                         "bucket": "b01"})
    assert made.status_code == 201 and made.headers["Location"] == "/services/karvdash/api/datasets/fast"
    one = api("GET", "datasets/fast").json()
    assert (one["type"], one["endpoint"]) == ("h3-remote", "redis://r.example.org:6379")
    assert one["yaml"].startswith("apiVersion: datashim.io/v1alpha1\nkind: Dataset\n")
    assert api("DELETE", "datasets/fast").status_code == 204
    assert api("GET", "datasets/fast").status_code == 404


def test_karvdashctl_dataset_commands(hub, people):
    alice, _ = people
    ensure_user(hub, alice)
    token = hub.token_for(alice)
    missing = karvdashctl(hub, token, "add_dataset", "s3-remote", "name=cli", "endpoint=https://s3.example.org",
                          "bucket=cli-data")
    # no terminal to ask for the keys: the dashboard names what is missing
    assert (missing.returncode, missing.stderr) == (7, "karvdashctl: accessKeyID: is required (400)\n")
    added = karvdashctl(hub, token, "add_dataset", "s3-remote", "name=cli", "endpoint=https://s3.example.org",
                        "bucket=cli-data", "accessKeyID=AKIACLI", "secretAccessKey=cli-secret", "readonly=true")
    assert (added.returncode, added.stdout) == (0, "added dataset cli (mounted at /mnt/datasets/cli)\n")
    listed = karvdashctl(hub, token, "list_datasets")
    assert [line.split() for line in listed.stdout.splitlines()][:2] == [
        ["name", "type", "bucket", "endpoint"], ["cli", "s3-remote", "cli-data", "https://s3.example.org"]]
    shown = karvdashctl(hub, token, "get_dataset", "cli")
    assert yaml.safe_load(shown.stdout)["spec"]["local"] == {
        "type": "COS", "endpoint": "https://s3.example.org", "bucket": "cli-data", "readonly": "true",
        "secret-name": "karvdash-dataset-cli"}
    assert "cli-secret" not in shown.stdout and "AKIACLI" not in shown.stdout
    assert karvdashctl(hub, token, "add_dataset", "s3-remote", "type=x").returncode == 2
    removed = karvdashctl(hub, token, "remove_dataset", "cli")
    assert (removed.returncode, removed.stdout) == (0, "removed dataset cli\n")
    gone = karvdashctl(hub, token, "get_dataset", "cli")
    assert (gone.returncode, gone.stderr) == (5, "karvdashctl: no dataset named cli (404)\n")
