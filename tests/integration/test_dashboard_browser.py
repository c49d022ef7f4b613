"""The Files page in a real browser (Debian chromium through Playwright):
browse, upload with progress, download, rename, move, delete, sort,
without full page reloads."""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect

from tests.integration.dashboardsession import dashboard_url, ensure_user, files_root, log_in_page, private_folder

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture
def alice_page(page, hub):
    ensure_user(hub, "alice")
    log_in_page(page, hub, "alice")
    return page


@pytest.fixture
def home(hub):
    folder = private_folder(hub, "alice")
    folder.mkdir(parents=True, exist_ok=True)
    for child in folder.iterdir():
        if child.is_dir():
            import shutil

            shutil.rmtree(child)
        else:
            child.unlink()
    return folder


def row(page, name):
    return page.locator(f'#files-table tbody tr[data-name="{name}"]')


def open_files(page, hub, path="files/private/"):
    page.goto(dashboard_url(hub, path))
    expect(page.locator("#files-loading")).to_be_hidden()
    # a marker that a full page load would wipe out
    page.evaluate("window.__noReload = true")


def assert_no_reload(page):
    assert page.evaluate("window.__noReload === true"), "the page reloaded"


def row_action(page, name, action):
    row(page, name).locator(".row-actions").click()
    row(page, name).locator(f'[data-action="{action}"]').click()


def test_browse_folders_with_breadcrumb_and_history(alice_page, hub, home):
    page = alice_page
    (home / "projects" / "deep").mkdir(parents=True)
    (home / "projects" / "deep" / "notes.txt").write_text("n")
    (home / "top.txt").write_text("t")
    open_files(page, hub)
    expect(page.locator("#nav-files")).to_have_class(re.compile("active"))
    expect(page.locator("#breadcrumb")).to_have_text("Private")
    expect(row(page, "projects")).to_be_visible()
    row(page, "projects").locator("a.file-link").click()
    expect(row(page, "deep")).to_be_visible()
    row(page, "deep").locator("a.file-link").click()
    expect(row(page, "notes.txt")).to_be_visible()
    expect(page.locator("#breadcrumb li")).to_have_text(["Private", "projects", "deep"])
    assert page.url.endswith("/services/karvdash/files/private/projects/deep/")
    page.locator("#breadcrumb a", has_text="projects").click()
    expect(row(page, "deep")).to_be_visible()
    page.go_back()
    expect(row(page, "notes.txt")).to_be_visible()
    assert_no_reload(page)
    page.click("#domain-shared")
    expect(page.locator("#breadcrumb")).to_have_text("Shared")


def test_new_folder_and_flash_message(alice_page, hub, home):
    page = alice_page
    open_files(page, hub)
    page.click("#new-folder-button")
    page.fill("#karvdash-dialog-input", "reports")
    page.click(".karvdash-dialog-confirm")
    expect(row(page, "reports")).to_be_visible()
    expect(page.locator(".karvdash-flash-message").last).to_contain_text("Folder reports created")
    assert (home / "reports").is_dir()
    # an existing name is refused with a message
    page.click("#new-folder-button")
    page.fill("#karvdash-dialog-input", "reports")
    page.click(".karvdash-dialog-confirm")
    expect(page.locator(".karvdash-flash-message.alert-danger").last).to_contain_text("already exists")
    assert_no_reload(page)


def test_upload_many_files_with_progress(alice_page, hub, home, tmp_path):
    page = alice_page
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(40 * 1024 * 1024))  # three chunks of 16 MiB
    small = tmp_path / "small.txt"
    small.write_text("small file")
    open_files(page, hub)
    # record every value the progress bars show
    page.evaluate(
        """() => {
        window.__progress = [];
        new MutationObserver((changes) => {
          for (const change of changes) {
            const value = change.target.getAttribute && change.target.getAttribute("aria-valuenow");
            if (value !== null && value !== undefined) window.__progress.push(Number(value));
          }
        }).observe(document.getElementById("uploads"), {attributes: true, subtree: true, attributeFilter: ["aria-valuenow"]});
      }"""
    )
    page.set_input_files("#upload-input", [str(big), str(small)])
    expect(row(page, "big.bin")).to_be_visible(timeout=120_000)
    expect(row(page, "small.txt")).to_be_visible()
    expect(page.locator(".karvdash-flash-message").last).to_contain_text("2 files uploaded")
    progress = page.evaluate("window.__progress")
    assert progress[-1] == 100 or 100 in progress
    assert any(0 < value < 100 for value in progress), progress
    assert (home / "big.bin").read_bytes() == big.read_bytes()
    assert (home / "small.txt").read_text() == "small file"
    assert os.listdir(files_root(hub) / "uploads" / "staged") == []
    assert_no_reload(page)


def test_upload_over_an_existing_file_asks_first(alice_page, hub, home, tmp_path):
    page = alice_page
    (home / "same.txt").write_text("old")
    new = tmp_path / "same.txt"
    new.write_text("new")
    open_files(page, hub)
    page.set_input_files("#upload-input", [str(new)])
    expect(page.locator(".karvdash-dialog")).to_contain_text("already exists")
    page.click(".karvdash-dialog .btn-secondary")  # cancel: keep the old one
    expect(page.locator('.karvdash-upload[data-state="failed"]')).to_contain_text("skipped")
    assert (home / "same.txt").read_text() == "old"
    page.set_input_files("#upload-input", [str(new)])
    page.click(".karvdash-dialog-confirm")
    expect(page.locator(".karvdash-flash-message").last).to_contain_text("1 file uploaded")
    assert (home / "same.txt").read_text() == "new"


def test_download_a_file_and_a_folder(alice_page, hub, home):
    page = alice_page
    (home / "data.csv").write_text("a,b\n1,2\n")
    (home / "bundle").mkdir()
    (home / "bundle" / "x.txt").write_text("x")
    open_files(page, hub)
    with page.expect_download() as info:
        row(page, "data.csv").locator("a.file-link").click()
    download = info.value
    assert download.suggested_filename == "data.csv"
    assert open(download.path()).read() == "a,b\n1,2\n"
    with page.expect_download() as info:
        row_action(page, "bundle", "download")
    assert info.value.suggested_filename == "bundle.zip"
    import zipfile

    with zipfile.ZipFile(info.value.path()) as archive:
        assert archive.read("bundle/x.txt") == b"x"
    assert_no_reload(page)


def test_rename_and_move(alice_page, hub, home):
    page = alice_page
    (home / "draft.txt").write_text("d")
    (home / "archive").mkdir()
    open_files(page, hub)
    row_action(page, "draft.txt", "rename")
    page.fill("#karvdash-dialog-input", "final.txt")
    page.click(".karvdash-dialog-confirm")
    expect(row(page, "final.txt")).to_be_visible()
    expect(row(page, "draft.txt")).to_have_count(0)
    assert (home / "final.txt").read_text() == "d"
    row_action(page, "final.txt", "move")
    page.select_option("#move-domain", "private")
    page.fill("#karvdash-dialog-input", "archive")
    page.click(".karvdash-dialog-confirm")
    expect(row(page, "final.txt")).to_have_count(0)
    assert (home / "archive" / "final.txt").read_text() == "d"
    assert_no_reload(page)


def test_delete_asks_for_confirmation(alice_page, hub, home):
    page = alice_page
    (home / "old").mkdir()
    (home / "old" / "inside.txt").write_text("i")
    open_files(page, hub)
    row_action(page, "old", "delete")
    expect(page.locator(".karvdash-dialog")).to_contain_text("everything in it")
    page.click(".karvdash-dialog .btn-secondary")
    expect(page.locator(".karvdash-dialog")).to_have_count(0)
    assert (home / "old" / "inside.txt").exists()
    row_action(page, "old", "delete")
    page.click(".karvdash-dialog-confirm")
    expect(row(page, "old")).to_have_count(0)
    expect(page.locator(".karvdash-flash-message").last).to_contain_text("old deleted")
    assert not (home / "old").exists()
    assert_no_reload(page)


def test_a_click_during_the_dialogs_fade_in_is_not_lost(alice_page, hub, home):
    """Bootstrap ignores hide() while a modal fades in; a person who clicks
    Delete at once must still get the file deleted."""
    page = alice_page
    (home / "quick.txt").write_text("q")
    open_files(page, hub)
    row_action(page, "quick.txt", "delete")
    # clicked before Bootstrap's shown event, i.e. while it fades in
    state = page.evaluate(
        """() => {
        const dialog = document.querySelector(".karvdash-dialog");
        const state = dialog.dataset.state || "fading in";
        dialog.querySelector(".karvdash-dialog-confirm").click();
        return state;
      }"""
    )
    assert state == "fading in"
    expect(row(page, "quick.txt")).to_have_count(0)
    expect(page.locator(".karvdash-flash-message").last).to_contain_text("quick.txt deleted")
    expect(page.locator(".karvdash-dialog")).to_have_count(0)
    assert not (home / "quick.txt").exists()
    # Cancel at once keeps the file, and the next dialog opens normally
    (home / "kept.txt").write_text("k")
    open_files(page, hub)
    row_action(page, "kept.txt", "delete")
    page.evaluate("document.querySelector('.karvdash-dialog .karvdash-dialog-cancel.btn-secondary').click()")
    expect(page.locator(".karvdash-dialog")).to_have_count(0)
    row_action(page, "kept.txt", "rename")
    page.fill("#karvdash-dialog-input", "still.txt")
    page.click(".karvdash-dialog-confirm")
    expect(row(page, "still.txt")).to_be_visible()
    assert (home / "still.txt").read_text() == "k"


def test_no_image_or_template_actions_without_a_registry_or_kubernetes(alice_page, hub, home):
    page = alice_page
    (home / "app.tar").write_bytes(b"x")
    (home / "web.template.yaml").write_text("kind: Template\n")
    open_files(page, hub)
    for name in ("app.tar", "web.template.yaml"):
        row(page, name).locator(".row-actions").click()
        expect(row(page, name).locator(".dropdown-item")).to_have_text(["Download", "Rename", "Move", "Delete"])
        page.keyboard.press("Escape")


def test_sort_by_column(alice_page, hub, home):
    page = alice_page
    (home / "b.bin").write_bytes(b"x" * 300)
    (home / "a.bin").write_bytes(b"x" * 20)
    (home / "c.bin").write_bytes(b"x" * 1000)
    (home / "zfolder").mkdir()
    open_files(page, hub)
    names = page.locator("#files-table tbody tr")
    expect(names).to_have_count(4)
    assert [r.get_attribute("data-name") for r in names.all()] == ["zfolder", "a.bin", "b.bin", "c.bin"]
    # the page asks the server for each order: every check waits for the rows it names
    page.click('th[data-sort="size"]')
    expect_rows(names, ["zfolder", "a.bin", "b.bin", "c.bin"])
    page.click('th[data-sort="size"]')
    expect(page.locator('th[data-sort="size"]')).to_have_attribute("aria-sort", "descending")
    expect_rows(names, ["zfolder", "c.bin", "b.bin", "a.bin"])
    page.click('th[data-sort="name"]')
    expect_rows(names, ["zfolder", "a.bin", "b.bin", "c.bin"])
    page.click('th[data-sort="name"]')
    expect_rows(names, ["zfolder", "c.bin", "b.bin", "a.bin"])


def expect_rows(rows, names: list[str]) -> None:
    """The table's rows are exactly ``names``, in that order (waited for)."""
    expect(rows).to_have_count(len(names))
    for index, name in enumerate(names):
        expect(rows.nth(index)).to_have_attribute("data-name", name)


def test_docs_from_the_user_menu(alice_page, hub):
    page = alice_page
    open_files(page, hub)
    page.click("#karvdash-user-menu-toggle")
    page.get_by_role("link", name="Documentation").click()
    expect(page.locator("#docs-body h1").first).to_have_text("User guide")
    page.locator("#docs-menu").get_by_role("link", name="API reference").click()
    expect(page.locator("#endpoint-table")).to_contain_text("/uploads/{id}")
