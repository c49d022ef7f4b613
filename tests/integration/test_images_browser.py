"""The Images pages and API through a real hub (local mode), dashboard and
Debian's chromium, against a real Docker registry with TLS (test CA) and
basic auth: a user pushes an archive from their files and sees its tags;
an existing name:tag is refused; only an administrator deletes a tag.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.hubprocess import start_hub
from tests.integration.dashboardsession import DashboardAPI, dashboard_url, ensure_user, log_in_page, private_folder
from tests.registry.fixtures import docker_registry  # noqa: F401 - fixture
from tests.registry.images import docker_save_archive

pytestmark = [pytest.mark.integration, pytest.mark.browser]

KARVDASHCTL = str(Path(sys.executable).parent / "karvdashctl")


@pytest.fixture(scope="module")
def hub(tmp_path_factory, docker_registry):  # noqa: F811
    running = start_hub(tmp_path_factory.mktemp("hub"), env={
        "KARVDASH_DOCKER_REGISTRY_URL": docker_registry.url_with_credentials,
        "KARVDASH_DOCKER_REGISTRY_CERT": str(docker_registry.ca_path),
    })
    yield running
    running.stop()


def archive_in_files(hub, user: str, relative: str, repo_tags: list[str], content: bytes) -> None:
    path = private_folder(hub, user) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    docker_save_archive(path, repo_tags, {"data.txt": content})


def test_push_from_files_list_tags_and_refuse_an_existing_tag(page, hub, docker_registry):  # noqa: F811
    ensure_user(hub, "alice")
    archive_in_files(hub, "alice", "images/hello.tar", ["registry.example.org/demo/hello:1.0"], b"hello\n")
    log_in_page(page, hub, "alice")
    page.goto(dashboard_url(hub, "images"))
    expect(page.locator("#registry-host")).to_have_text(docker_registry.host)
    expect(page.locator("#images-empty")).to_be_visible()

    # the Files page's "Add image" link: name and tag come from the archive
    page.goto(dashboard_url(hub, "images/add?file=private/images/hello.tar"))
    expect(page.locator("#image-file")).to_have_value("images/hello.tar")
    expect(page.locator("#image-name")).to_have_value("demo/hello")
    expect(page.locator("#image-tag")).to_have_value("1.0")
    page.click("#push-image")
    expect(page.locator(".karvdash-flash-message")).to_contain_text("Pushed demo/hello:1.0.")
    row = page.locator("#images-table tbody tr[data-name='demo/hello']")
    expect(row.locator("td").nth(1)).to_have_text("1")

    # pushing the same name:tag again is refused and changes nothing
    page.goto(dashboard_url(hub, "images/add"))
    page.fill("#image-file", "images/hello.tar")
    page.fill("#image-name", "demo/hello")
    page.fill("#image-tag", "1.0")
    page.click("#push-image")
    expect(page.locator(".karvdash-flash-message.alert-danger")).to_have_text(
        "demo/hello:1.0 exists already in the registry; choose another tag")

    # a path outside the user's folder is refused
    page.fill("#image-file", "../admin/x.tar")
    page.click("#push-image")
    expect(page.locator(".karvdash-flash-message.alert-danger").last).to_have_text("a path cannot contain . or .. parts")

    page.click("text=Cancel")
    page.click("#images-table a:text('demo/hello')")
    expect(page.locator("#image-name")).to_have_text("demo/hello")
    group = page.locator("#digests-table tbody tr")
    expect(group).to_have_count(1)
    expect(group.locator(".image-tag")).to_have_text(["1.0"])
    # a user who is not an administrator gets no delete buttons
    expect(page.locator("#digests-table [data-action='delete']")).to_have_count(0)

    api = DashboardAPI(hub, token=hub.token_for("alice"))
    refused = api("DELETE", "images/demo/hello:1.0")
    assert (refused.status_code, refused.json()) == (403, {"status": 403, "message": "only administrators may delete images"})
    listed = api("GET", "images")
    assert listed.json() == {"registry": docker_registry.host, "images": [{"name": "demo/hello", "tags": ["1.0"]}]}
    one = api("GET", "images/demo/hello:1.0").json()
    assert one["image"] == f"{docker_registry.host}/demo/hello:1.0" and one["size"] > 0
    assert api("GET", "images/demo/nothing").status_code == 404
    # this deployment has no datasets: one answer, in the API's error shape
    assert api("GET", "datasets").json() == {
        "status": 404, "message": "datasets are not enabled on this deployment (datasetsAvailable)"}
    bad = api("POST", "images", json={"domain": "private", "path": "images/missing.tar"})
    assert (bad.status_code, bad.json()["message"]) == (404, "private/images/missing.tar does not exist")
    # a link out of the user's folder is not followed
    (private_folder(hub, "alice") / "escape.tar").symlink_to(private_folder(hub, "admin") / "app.tar")
    escape = api("POST", "images", json={"domain": "private", "path": "escape.tar", "name": "x/y", "tag": "1"})
    assert (escape.status_code, escape.json()["message"]) == (403, "private/escape.tar leads outside the private domain")
    not_image = private_folder(hub, "alice") / "notes.tar"
    not_image.write_text("just text")
    refused = api("POST", "images", json={"domain": "private", "path": "notes.tar", "name": "x/y", "tag": "1"})
    assert (refused.status_code, refused.json()["message"]) == (
        400, "private/notes.tar: not an image archive (a tar file from docker save or an OCI layout)")
    assert api("GET", "images").json()["images"] == [{"name": "demo/hello", "tags": ["1.0"]}]


def test_an_administrator_deletes_one_tag_of_a_shared_digest(page, hub, docker_registry):  # noqa: F811
    archive_in_files(hub, "admin", "app.tar", ["demo/app:2.0"], b"app\n")
    api = DashboardAPI(hub, token=hub.token_for(hub.admin))
    for tag in ("2.0", "stable"):
        pushed = api("POST", "images", json={"domain": "private", "path": "app.tar", "name": "demo/app", "tag": tag})
        assert pushed.status_code == 201, pushed.text
    log_in_page(page, hub, hub.admin, hub.admin_password)
    page.goto(dashboard_url(hub, "images/view/demo/app"))
    expect(page.locator("#digests-table tbody tr .image-tag")).to_have_text(["2.0", "stable"])
    page.click("#digests-table .image-tag[data-tag='stable'] [data-action='delete']")
    page.click(".karvdash-dialog-confirm")
    expect(page.locator(".karvdash-flash-message")).to_contain_text("Deleted demo/app:stable.")
    expect(page.locator("#digests-table tbody tr .image-tag")).to_have_text(["2.0"])
    # the other tag still pulls the same image from the registry
    session = docker_registry.session()
    assert session.get(f"{docker_registry.url}/v2/demo/app/tags/list").json() == {"name": "demo/app", "tags": ["2.0"]}


def test_add_image_from_the_files_page_also_when_acting_as_the_owner(page, hub, docker_registry):  # noqa: F811
    ensure_user(hub, "dora")
    archive_in_files(hub, "dora", "builds/web.tar", ["team/web:3.1"], b"web\n")
    archive_in_files(hub, "dora", "builds/api.tar", ["team/api:0.9"], b"api\n")
    (private_folder(hub, "dora") / "builds" / "notes.txt").write_text("n")
    log_in_page(page, hub, "dora")
    page.goto(dashboard_url(hub, "files/private/builds/"))

    def actions(name):
        row = page.locator(f'#files-table tbody tr[data-name="{name}"]')
        row.locator(".row-actions").click()
        return row.locator(".dropdown-item")

    expect(actions("notes.txt")).to_have_text(["Download", "Rename", "Move", "Delete"])
    page.keyboard.press("Escape")
    expect(actions("web.tar")).to_have_text(["Download", "Add image", "Rename", "Move", "Delete"])
    page.click('tr[data-name="web.tar"] [data-action="add-image"]')
    page.wait_for_url("**/services/karvdash/images/add?file=private%2Fbuilds%2Fweb.tar")
    expect(page.locator("#image-domain")).to_have_value("private")
    expect(page.locator("#image-file")).to_have_value("builds/web.tar")
    expect(page.locator("#image-name")).to_have_value("team/web")
    expect(page.locator("#image-tag")).to_have_value("3.1")
    page.click("#push-image")
    expect(page.locator(".karvdash-flash-message")).to_have_text("Pushed team/web:3.1.")

    # an administrator acting as dora pushes dora's archive, not one of their own
    admin = page.context.browser.new_context()
    try:
        page = admin.new_page()
        log_in_page(page, hub, hub.admin, hub.admin_password)
        page.goto(dashboard_url(hub, "files/private/builds/?as=dora"))
        expect(page.locator("#acting-as")).to_contain_text("You are acting as dora")
        actions("api.tar")
        link = page.locator('tr[data-name="api.tar"] [data-action="add-image"]')
        expect(link).to_have_attribute("href", "/services/karvdash/images/add?as=dora&file=private%2Fbuilds%2Fapi.tar")
        link.click()
        expect(page.locator("#acting-as")).to_contain_text("You are acting as dora")
        expect(page.locator("#image-name")).to_have_value("team/api")
        page.click("#push-image")
        expect(page.locator(".karvdash-flash-message")).to_have_text("Pushed team/api:0.9.")
    finally:
        admin.close()
    assert "admin acts as dora: POST /services/karvdash/api/images" in hub.log()
    session = docker_registry.session()
    assert session.get(f"{docker_registry.url}/v2/team/api/tags/list").json() == {"name": "team/api", "tags": ["0.9"]}


def karvdashctl(hub, token: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([KARVDASHCTL, "--url", dashboard_url(hub), "--token", token, *args],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_karvdashctl_image_commands(hub, docker_registry):  # noqa: F811
    ensure_user(hub, "alice")
    archive_in_files(hub, "alice", "cli/tool.tar", ["tool:0.1"], b"tool\n")
    token = hub.token_for("alice")
    added = karvdashctl(hub, token, "add_image", "private/cli/tool.tar")
    assert added.returncode == 0, added.stderr
    assert re.fullmatch(rf"pushed {re.escape(docker_registry.host)}/tool:0\.1 \(sha256:[0-9a-f]{{64}}\)\n", added.stdout)
    again = karvdashctl(hub, token, "add_image", "private/cli/tool.tar")
    assert (again.returncode, again.stderr) == (
        6, "karvdashctl: tool:0.1 exists already in the registry; choose another tag (409)\n")
    renamed = karvdashctl(hub, token, "--json", "add_image", "private/cli/tool.tar", "tools/tool:0.2")
    assert renamed.returncode == 0 and json.loads(renamed.stdout)["image"] == f"{docker_registry.host}/tools/tool:0.2"
    listed = json.loads(karvdashctl(hub, token, "--json", "list_images").stdout)
    assert {"name": "tool", "tags": ["0.1"]} in listed["images"] and {"name": "tools/tool", "tags": ["0.2"]} in listed["images"]
    shown = karvdashctl(hub, token, "get_image", "tools/tool")
    assert shown.returncode == 0 and shown.stdout.splitlines()[0].split() == ["digest", "size", "tags"]
    assert shown.stdout.splitlines()[1].split()[2] == "0.2"
    refused = karvdashctl(hub, token, "remove_image", "tool:0.1")
    assert (refused.returncode, refused.stderr) == (4, "karvdashctl: only administrators may delete images (403)\n")
    assert karvdashctl(hub, token, "remove_image", "tool").returncode == 2
    removed = karvdashctl(hub, hub.token_for(hub.admin), "remove_image", "tool:0.1")
    assert (removed.returncode, removed.stdout) == (0, "removed tool:0.1\n")
    assert karvdashctl(hub, token, "get_image", "tool").stdout.splitlines() == ["digest  size  tags"]


def test_registry_images_are_offered_on_the_spawn_page(page, hub, docker_registry):  # noqa: F811
    ensure_user(hub, "carl")
    archive_in_files(hub, "carl", "spawn/lab.tar", ["team/lab:2.1"], b"lab\n")
    token = hub.token_for("carl")
    assert karvdashctl(hub, token, "add_image", "private/spawn/lab.tar").returncode == 0
    log_in_page(page, hub, "carl")
    page.goto(hub.url + "/hub/spawn")
    offered = page.locator("#karvdash-registry-images option")
    expect(offered.first).to_be_attached()
    assert f"{docker_registry.host}/team/lab:2.1" in [o.get_attribute("value") for o in offered.all()]
    free_image = page.locator("input[name='profile-option-jupyter--image--unlisted-choice']")
    expect(free_image).to_have_attribute("list", "karvdash-registry-images")
