"""The Files page in a real browser (Debian chromium through Playwright):
drag and drop of files and folders, uploads a few at a time with progress,
speed, time left and Cancel, selection of many rows with bulk delete, move
and zip download, new empty files, previews, the name filter, keyboard use,
and long names on a phone-sized screen; on folders and on an S3 file
domain. Every test fails on a JavaScript error in the page."""

from __future__ import annotations

import re
import zipfile

import pytest
from playwright.sync_api import expect

from tests.integration.dashboardsession import (
    DashboardAPI,
    dashboard_url,
    ensure_user,
    files_root,
    log_in_page,
    private_folder,
    remove_tree,
)
from tests.s3files import start_files_hub

pytestmark = [pytest.mark.integration, pytest.mark.browser]

# a 1x1 PNG
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da63f8cfc0f01f0005000201a1d1b1fd0000000049454e44ae426082"
)
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 100 100]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def javascript_errors(page) -> list[str]:
    """Uncaught exceptions and console errors of the page's scripts, as they
    come. Chromium also logs every non-2xx answer (a 409 the page turns into
    a question, for example) as "Failed to load resource": those are answers,
    not script errors, and are left out."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    page.on(
        "console",
        lambda message: errors.append(f"console: {message.text}")
        if message.type == "error" and not message.text.startswith("Failed to load resource")
        else None,
    )
    return errors


@pytest.fixture(scope="module")
def hub(request, tmp_path_factory, file_domain):
    # a patient start: the browser tests share the machine with other work
    running = start_files_hub(request, tmp_path_factory, file_domain, timeout=240)
    yield running
    running.stop()


@pytest.fixture
def errors(page):
    found = javascript_errors(page)
    yield found
    assert found == []


@pytest.fixture
def alice_page(page, hub, errors):
    ensure_user(hub, "alice")
    log_in_page(page, hub, "alice")
    return page


@pytest.fixture
def alice(hub):
    ensure_user(hub, "alice")
    return DashboardAPI(hub, hub.token_for("alice"))


def empty(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            remove_tree(child)
        else:
            child.unlink()
    return folder


@pytest.fixture
def home(hub):
    return empty(private_folder(hub, "alice"))


@pytest.fixture
def shared(hub):
    return empty(files_root(hub) / "shared")


def row(page, name):
    return page.locator(f'#files-table tbody tr[data-name="{name}"]')


def shown_names(page) -> list[str]:
    return page.eval_on_selector_all(
        "#files-table tbody tr:not([hidden])", "rows => rows.map(r => r.dataset.name)"
    )


def open_files(page, hub, path="files/private/"):
    page.goto(dashboard_url(hub, path))
    expect(page.locator("#files-table")).to_be_visible()
    expect(page.locator("#files-loading")).to_be_hidden()
    page.evaluate("window.__noReload = true")


def assert_no_reload(page):
    assert page.evaluate("window.__noReload === true"), "the page reloaded"


def upload_row(page, name):
    return page.locator(f'.karvdash-upload[data-name="{name}"]')


class HeldChunks:
    """Chunks (PUT api/uploads/<id>) held back until the test lets them go,
    so that uploads stay in flight while the test looks at them."""

    def __init__(self, page):
        self.page = page
        self.held = []
        self.deletes = []  # ids of uploads the server answered a DELETE for
        page.route(re.compile(r".*/api/uploads/[^/?]+(\?.*)?$"), self.handle)
        page.on("response", self.answered)

    def handle(self, route):
        if route.request.method == "PUT":
            self.held.append(route)
            return
        route.continue_()

    def answered(self, response):
        if response.request.method == "DELETE" and "/api/uploads/" in response.url and response.status == 204:
            self.deletes.append(response.url.split("/api/uploads/")[1].split("?")[0])

    def until(self, condition, what):
        # Playwright hands routed requests and answers over while the test waits in it
        for _ in range(600):
            if condition():
                return
            self.page.wait_for_timeout(50)
        raise AssertionError(f"still waiting for {what}")

    def wait_for(self, count):
        self.until(lambda: len(self.held) >= count, f"{count} held chunks")

    def wait_for_deletes(self, count):
        self.until(lambda: len(self.deletes) >= count, f"{count} cancelled uploads")

    def release(self, count=None):
        routes, self.held = (self.held, []) if count is None else (self.held[:count], self.held[count:])
        for route in routes:
            try:
                route.continue_()
            except Exception:  # noqa: BLE001 - the page cancelled this request meanwhile
                pass

    def stop(self):
        self.page.unroute(re.compile(r".*/api/uploads/[^/?]+(\?.*)?$"))
        self.release()


# --- drag and drop -------------------------------------------------------------------

DROP_FILES = """(files) => {
  const transfer = new DataTransfer();
  for (const [name, text] of files) transfer.items.add(new File([text], name, {type: "text/plain"}));
  const zone = document.getElementById("files-drop-zone");
  zone.dispatchEvent(new DragEvent("dragenter", {bubbles: true, cancelable: true, dataTransfer: transfer}));
  const highlighted = zone.classList.contains("karvdash-drop-active");
  const over = new DragEvent("dragover", {bubbles: true, cancelable: true, dataTransfer: transfer});
  zone.dispatchEvent(over);
  const entry = transfer.items[0].webkitGetAsEntry();
  zone.dispatchEvent(new DragEvent("drop", {bubbles: true, cancelable: true, dataTransfer: transfer}));
  return {highlighted, accepted: over.defaultPrevented, entry: entry ? (entry.isFile ? "file" : "folder") : null,
          after: zone.classList.contains("karvdash-drop-active")};
}"""


def test_dropped_files_are_uploaded_into_the_folder_shown(alice_page, hub, home):
    page = alice_page
    (home / "inbox").mkdir()
    open_files(page, hub, "files/private/inbox/")
    result = page.evaluate(DROP_FILES, [["one.txt", "first"], ["two words.csv", "a,b\n1,2\n"]])
    # the zone lights up while files hover over it and takes the drop
    assert result["highlighted"] and result["accepted"] and not result["after"]
    expect(page.locator(".karvdash-flash-message").last).to_contain_text("2 files uploaded")
    expect(row(page, "one.txt")).to_be_visible()
    expect(row(page, "two words.csv")).to_be_visible()
    assert (home / "inbox" / "one.txt").read_text() == "first"
    assert (home / "inbox" / "two words.csv").read_text() == "a,b\n1,2\n"
    assert_no_reload(page)
    print("webkitGetAsEntry of a DataTransfer made in the page:", result["entry"])


# A dropped folder as Chromium hands it over: items whose webkitGetAsEntry()
# is a directory entry. A page cannot make real directory entries, so these
# implement the same interface (isFile, isDirectory, name, file(),
# createReader().readEntries() in batches until an empty one) over in-page
# Files, and replace the DataTransfer's items for the page's drop handler.
DROP_FOLDER = """(tree) => {
  const fileEntry = (name, text) => ({isFile: true, isDirectory: false, name,
    file: (done) => setTimeout(() => done(new File([text], name)), 0)});
  const folderEntry = (name, children) => ({isFile: false, isDirectory: true, name,
    createReader() {
      const left = children.slice();
      // one entry per call, like a long folder answered in several batches
      return {readEntries: (done) => setTimeout(() => done(left.length ? [left.shift()] : []), 0)};
    }});
  const build = ([name, value]) => typeof value === "string" ? fileEntry(name, value) : folderEntry(name, value.map(build));
  const entries = tree.map(build);
  const transfer = new DataTransfer();
  for (const [name] of tree) transfer.items.add(new File([""], name));
  const items = entries.map((entry) => ({kind: "file", webkitGetAsEntry: () => entry}));
  Object.defineProperty(transfer, "items", {value: items});
  const zone = document.getElementById("files-drop-zone");
  zone.dispatchEvent(new DragEvent("drop", {bubbles: true, cancelable: true, dataTransfer: transfer}));
}"""


def test_a_dropped_folder_is_walked_and_rebuilt_with_its_files(alice_page, hub, home):
    page = alice_page
    (home / "project").mkdir()  # an existing folder takes the dropped files too
    (home / "project" / "old.txt").write_text("old")
    open_files(page, hub)
    tree = [
        ["project", [["readme.md", "# hi"], ["src", [["main.py", "print(1)"], ["util.py", "x = 2"]]], ["empty", []]]],
        ["loose.txt", "loose"],
    ]
    page.evaluate(DROP_FOLDER, tree)
    expect(page.locator(".karvdash-flash-message").last).to_contain_text("4 files uploaded")
    expect(row(page, "loose.txt")).to_be_visible()
    assert (home / "project" / "readme.md").read_text() == "# hi"
    assert (home / "project" / "src" / "main.py").read_text() == "print(1)"
    assert (home / "project" / "src" / "util.py").read_text() == "x = 2"
    assert (home / "project" / "empty").is_dir() and not any((home / "project" / "empty").iterdir())
    assert (home / "project" / "old.txt").read_text() == "old"
    assert (home / "loose.txt").read_text() == "loose"


def test_the_add_folder_button_uploads_a_whole_folder(alice_page, hub, home, tmp_path):
    page = alice_page
    source = tmp_path / "photos"
    (source / "2024" / "june").mkdir(parents=True)
    (source / "a.txt").write_text("a")
    (source / "2024" / "june" / "b.txt").write_text("b")
    open_files(page, hub)
    page.set_input_files("#folder-input", str(source))
    expect(page.locator(".karvdash-flash-message").last).to_contain_text("2 files uploaded")
    expect(row(page, "photos")).to_be_visible()
    assert (home / "photos" / "a.txt").read_text() == "a"
    assert (home / "photos" / "2024" / "june" / "b.txt").read_text() == "b"


# --- uploads: a few at a time, progress, cancel ----------------------------------------


def test_three_uploads_run_at_once_the_rest_wait_and_one_can_be_cancelled(alice_page, hub, home, tmp_path, alice):
    page = alice_page
    names = [f"f{i}.bin" for i in range(5)]
    paths = []
    for name in names:
        paths.append(tmp_path / name)
        paths[-1].write_bytes(name.encode() * 1000)
    open_files(page, hub)
    chunks = HeldChunks(page)
    page.set_input_files("#upload-input", [str(p) for p in paths])
    chunks.wait_for(3)
    states = page.eval_on_selector_all(".karvdash-upload", "rows => rows.map(r => r.dataset.state)")
    assert sorted(states) == ["queued", "queued", "running", "running", "running"], states
    queued = page.locator('.karvdash-upload[data-state="queued"]')
    expect(queued.first.locator(".karvdash-upload-status")).to_have_text("queued")
    expect(page.locator("#uploads-total-text")).to_contain_text("3 uploading · 2 queued")
    assert len(chunks.held) == 3  # no fourth request while three run

    # cancel a running one: its request stops and the server forgets it
    running = page.locator('.karvdash-upload[data-state="running"]').first
    cancelled = running.get_attribute("data-name")
    running.locator(".karvdash-upload-cancel").click()
    expect(upload_row(page, cancelled)).to_have_attribute("data-state", "cancelled")
    page.wait_for_function("() => document.querySelectorAll('.karvdash-upload[data-state=\"running\"]').length === 3")
    chunks.wait_for(4)  # a queued one took the free place
    chunks.wait_for_deletes(1)
    assert alice("GET", f"uploads/{chunks.deletes[0]}").status_code == 404

    chunks.stop()
    expect(page.locator(".karvdash-flash-message").last).to_contain_text("4 files uploaded")
    assert sorted(p.name for p in home.iterdir()) == sorted(n for n in names if n != cancelled)
    assert [u["path"] for u in alice("GET", "uploads").json()["uploads"] if u["path"].startswith("f")] == []
    # finished and cancelled rows go away by themselves, and so does the panel
    expect(page.locator(".karvdash-upload")).to_have_count(0, timeout=15_000)
    expect(page.locator("#uploads-panel")).to_be_hidden()
    assert_no_reload(page)


def test_progress_shows_speed_and_time_left_per_file_and_in_total(alice_page, hub, home, tmp_path):
    page = alice_page
    big = tmp_path / "big.bin"
    big.write_bytes(b"\1" * (20 * 1024 * 1024))  # two chunks of at most 16 MiB
    open_files(page, hub)
    chunks = HeldChunks(page)
    page.set_input_files("#upload-input", [str(big)])
    chunks.wait_for(1)
    chunks.release()  # the first chunk arrives, the second waits
    chunks.wait_for(1)
    status = upload_row(page, "big.bin").locator(".karvdash-upload-status")
    expect(status).to_have_text(re.compile(r"^[\d.]+ (B|KiB|MiB|GiB)/s, [\d hmins]+ left$"))
    expect(upload_row(page, "big.bin").locator('[role="progressbar"]')).to_have_attribute("aria-valuenow", "80")
    expect(page.locator("#uploads-total")).to_have_attribute("aria-valuenow", "80")
    expect(page.locator("#uploads-total-text")).to_have_text(
        re.compile(r"^16 MiB of 20 MiB \(80%\) · 1 uploading · [\d.]+ \S+/s, .+ left$")
    )
    chunks.stop()
    expect(page.locator(".karvdash-flash-message").last).to_contain_text("1 file uploaded")
    assert (home / "big.bin").stat().st_size == 20 * 1024 * 1024


def test_cancel_all_stops_running_and_queued_uploads(alice_page, hub, home, tmp_path, alice):
    page = alice_page
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"c{i}.txt")
        paths[-1].write_text("c" * 100)
    open_files(page, hub)
    chunks = HeldChunks(page)
    page.set_input_files("#upload-input", [str(p) for p in paths])
    chunks.wait_for(3)
    page.click("#cancel-all-uploads")
    expect(page.locator('.karvdash-upload[data-state="cancelled"]')).to_have_count(5)
    chunks.wait_for_deletes(3)
    assert len(chunks.deletes) == 3  # the three that had started; queued ones never reached the server
    chunks.stop()
    expect(page.locator(".karvdash-upload")).to_have_count(0, timeout=15_000)
    assert list(home.iterdir()) == []
    assert [u["path"] for u in alice("GET", "uploads").json()["uploads"] if u["path"].startswith("c")] == []


def test_a_skipped_upload_leaves_no_progress_bar_behind(alice_page, hub, home, tmp_path):
    page = alice_page
    (home / "same.txt").write_text("old")
    new = tmp_path / "same.txt"
    new.write_text("new")
    open_files(page, hub)
    page.set_input_files("#upload-input", [str(new)])
    page.click(".karvdash-dialog .btn-secondary")  # keep the old one
    expect(upload_row(page, "same.txt")).to_have_attribute("data-outcome", "skipped")
    expect(upload_row(page, "same.txt")).to_have_count(0, timeout=15_000)
    expect(page.locator("#uploads-panel")).to_be_hidden()
    assert (home / "same.txt").read_text() == "old"


# --- selection and bulk actions --------------------------------------------------------


def check(page, name, **kwargs):
    row(page, name).locator(".row-select").click(**kwargs)


def test_select_with_shift_click_and_space_then_zip_them(alice_page, hub, home):
    page = alice_page
    for name in ("a.txt", "b.txt", "c.txt", "d.txt", "e.txt"):
        (home / name).write_text(name)
    (home / "folder").mkdir()
    (home / "folder" / "in.txt").write_text("in")
    open_files(page, hub)
    assert shown_names(page) == ["folder", "a.txt", "b.txt", "c.txt", "d.txt", "e.txt"]
    check(page, "a.txt")
    check(page, "d.txt", modifiers=["Shift"])
    expect(page.locator("#selection-count")).to_have_text("4 selected")
    assert page.eval_on_selector("#select-all", "box => box.indeterminate")
    # Space on a focused row toggles it
    row(page, "b.txt").focus()
    page.keyboard.press(" ")
    expect(page.locator("#selection-count")).to_have_text("3 selected")
    row(page, "b.txt").focus()
    page.keyboard.press(" ")
    row(page, "folder").focus()
    page.keyboard.press(" ")
    expect(page.locator("#selection-count")).to_have_text("5 selected")
    with page.expect_download() as info:
        page.click("#bulk-download")
    assert info.value.suggested_filename == "alice.zip"
    with zipfile.ZipFile(info.value.path()) as archive:
        assert sorted(archive.namelist()) == ["a.txt", "b.txt", "c.txt", "d.txt", "folder/", "folder/in.txt"]
        assert archive.read("folder/in.txt") == b"in"
    # select all takes every shown row, and clears them again
    page.check("#select-all")
    expect(page.locator("#selection-count")).to_have_text("6 selected")
    page.uncheck("#select-all")
    expect(page.locator("#selection-bar")).to_be_hidden()
    assert_no_reload(page)


def test_a_selection_too_long_for_an_address_downloads_through_a_form(alice_page, hub, home):
    page = alice_page
    (home / "many").mkdir()
    names = [f"{i:02d}-" + "n" * 200 + ".txt" for i in range(40)]  # some 8,600 characters of paths
    for name in names:
        (home / "many" / name).write_text(name[:2])
    open_files(page, hub, "files/private/many/")
    page.check("#select-all")
    with page.expect_request(lambda request: "/api/download-zip/private" in request.url) as sent:
        with page.expect_download() as info:
            page.click("#bulk-download")
    assert sent.value.method == "POST"
    assert info.value.suggested_filename == "many.zip"
    with zipfile.ZipFile(info.value.path()) as archive:
        assert sorted(archive.namelist()) == names
    assert_no_reload(page)


def test_bulk_delete_asks_once(alice_page, hub, home):
    page = alice_page
    for name in ("keep.txt", "junk1.txt", "junk2.txt"):
        (home / name).write_text(name)
    (home / "junkdir").mkdir()
    (home / "junkdir" / "deep.txt").write_text("d")
    open_files(page, hub)
    page.fill("#files-filter", "JUNK")
    expect(page.locator("#files-table tbody tr")).to_have_count(3)
    page.check("#select-all")
    expect(page.locator("#selection-count")).to_have_text("3 selected")
    page.evaluate("window.__dialogs = 0; new MutationObserver((m) => m.forEach((c) => c.addedNodes.forEach((n) => "
                  "n.classList && n.classList.contains('karvdash-dialog') && window.__dialogs++))).observe(document.body, {childList: true})")
    page.click("#bulk-delete")
    dialog = page.locator(".karvdash-dialog")
    expect(dialog).to_contain_text("Delete 3 items?")
    expect(dialog).to_contain_text("1 folder with everything in them")
    page.click(".karvdash-dialog-confirm")
    expect(page.locator(".karvdash-flash-message").last).to_contain_text("3 items deleted")
    assert sorted(p.name for p in home.iterdir()) == ["keep.txt"]
    assert page.evaluate("window.__dialogs") == 1


def test_bulk_move_to_a_folder_of_the_other_domain(alice_page, hub, home, shared):
    page = alice_page
    (shared / "team").mkdir()
    for name in ("m1.txt", "m2.txt", "stay.txt"):
        (home / name).write_text(name)
    open_files(page, hub)
    check(page, "m1.txt")
    check(page, "m2.txt")
    page.click("#bulk-move")
    page.select_option("#move-domain", "shared")
    page.fill("#karvdash-dialog-input", "team")
    page.click(".karvdash-dialog-confirm")
    expect(page.locator(".karvdash-flash-message").last).to_contain_text("2 items moved to shared/team")
    expect(row(page, "m1.txt")).to_have_count(0)
    assert sorted(p.name for p in (shared / "team").iterdir()) == ["m1.txt", "m2.txt"]
    assert sorted(p.name for p in home.iterdir()) == ["stay.txt"]


# --- large folders ---------------------------------------------------------------------

PAGE_SIZE = 200  # the page's own (files.js)


def test_a_large_folder_loads_a_page_at_a_time_as_one_scrolls(alice_page, hub, home):
    page = alice_page
    (home / "big").mkdir()
    names = [f"n{i:03d}.txt" for i in range(2 * PAGE_SIZE + 20)]
    for name in names:
        (home / "big" / name).write_bytes(b"")
    (home / "big" / "sub").mkdir()
    asked = []
    page.on("request", lambda request: asked.append(request.url) if "/api/files/" in request.url else None)
    open_files(page, hub, "files/private/big/")
    expect(page.locator("#files-table tbody tr")).to_have_count(PAGE_SIZE)
    assert f"limit={PAGE_SIZE}" in asked[0] and "cursor" not in asked[0]
    expect(page.locator("#files-more")).to_be_visible()
    expect(page.locator("#files-shown")).to_have_text(f"{PAGE_SIZE} shown")
    # scrolling to the end of the table brings the next page
    page.locator("#files-more").scroll_into_view_if_needed()
    expect(page.locator("#files-table tbody tr")).to_have_count(2 * PAGE_SIZE)
    assert "cursor=" in asked[1]
    # and "Show more" the last, after which there is no more to show; the click is
    # dispatched where the button is, without scrolling it into view, since
    # scrolling there would let the observer load the page first
    page.evaluate("window.scrollTo(0, 0)")
    page.locator("#files-more-button").dispatch_event("click")
    expect(page.locator("#files-table tbody tr")).to_have_count(len(names) + 1)
    expect(page.locator("#files-more")).to_be_hidden()
    assert shown_names(page) == ["sub", *names]
    # select all takes every row loaded
    page.check("#select-all")
    expect(page.locator("#selection-count")).to_have_text(f"{len(names) + 1} selected")
    assert_no_reload(page)


def test_sorting_a_column_asks_the_server_for_that_order(alice_page, hub, home):
    page = alice_page
    (home / "sizes").mkdir()
    sizes = {f"s{i:03d}.bin": (i * 37) % (PAGE_SIZE + 11) for i in range(PAGE_SIZE + 11)}
    for name, size in sizes.items():
        (home / "sizes" / name).write_bytes(b"x" * size)
    open_files(page, hub, "files/private/sizes/")
    expect(page.locator("#files-table tbody tr")).to_have_count(PAGE_SIZE)
    with page.expect_request(lambda request: "sort=size" in request.url and "order=desc" in request.url):
        page.click('th[data-sort="size"]')  # ascending
        page.click('th[data-sort="size"]')  # descending
    expect(row(page, "s000.bin")).to_have_count(0)  # the smallest is on a later page now
    page.locator("#files-more").scroll_into_view_if_needed()  # the next page, in the same order
    expect(page.locator("#files-table tbody tr")).to_have_count(len(sizes))
    expected = [name for name, _ in sorted(sizes.items(), key=lambda item: (item[1], item[0]), reverse=True)]
    assert shown_names(page) == expected
    assert_no_reload(page)


# --- new file, filter, keyboard --------------------------------------------------------


def test_new_empty_file(alice_page, hub, home):
    page = alice_page
    open_files(page, hub)
    page.click("#new-file-button")
    page.fill("#karvdash-dialog-input", "notes.md")
    page.click(".karvdash-dialog-confirm")
    expect(row(page, "notes.md")).to_be_visible()
    expect(page.locator(".karvdash-flash-message").last).to_contain_text("File notes.md created")
    assert (home / "notes.md").read_bytes() == b""
    page.click("#new-file-button")
    page.fill("#karvdash-dialog-input", "notes.md")
    page.click(".karvdash-dialog-confirm")
    expect(page.locator(".karvdash-flash-message.alert-danger").last).to_contain_text("already exists")


def test_the_filter_hides_rows_by_name_as_one_types(alice_page, hub, home):
    page = alice_page
    for name in ("Report-2024.pdf", "old_report.txt", "data.csv"):
        (home / name).write_text("x")
    (home / "Reports").mkdir()
    open_files(page, hub)
    asked = []
    page.on("request", lambda request: asked.append(request.url) if "/api/files/" in request.url else None)
    page.locator("#files-filter").press_sequentially("rEp")
    expect(page.locator("#files-table tbody tr")).to_have_count(3)
    # folders first, then names by code point (capitals first), as the server orders them
    assert shown_names(page) == ["Reports", "Report-2024.pdf", "old_report.txt"]
    # the server filtered: the page asked with the filter, once typing paused
    assert any("filter=rEp" in url for url in asked), asked
    page.locator("#files-filter").press_sequentially("ort.")
    expect(page.locator("#files-table tbody tr")).to_have_count(1)
    assert shown_names(page) == ["old_report.txt"]
    page.fill("#files-filter", "nothing like it")
    expect(page.locator("#files-no-match")).to_be_visible()
    expect(page.locator("#files-empty")).to_be_hidden()
    page.fill("#files-filter", "")
    expect(page.locator("#files-table tbody tr")).to_have_count(4)
    expect(page.locator("#files-no-match")).to_be_hidden()


def test_enter_opens_a_folder_from_the_keyboard(alice_page, hub, home):
    page = alice_page
    (home / "inner").mkdir()
    (home / "inner" / "deep.txt").write_text("d")
    open_files(page, hub)
    row(page, "inner").focus()
    page.keyboard.press("Enter")
    expect(row(page, "deep.txt")).to_be_visible()
    assert page.url.endswith("/files/private/inner/")
    assert_no_reload(page)


# --- previews --------------------------------------------------------------------------


def test_preview_of_text_shows_the_first_256_kib_and_closes_with_escape(alice_page, hub, home):
    page = alice_page
    (home / "long.log").write_text("line\n" * 60_000)  # 300,000 bytes
    (home / "page.html").write_text("<script>window.__ran = true</script><b>bold</b>")
    open_files(page, hub)
    row(page, "long.log").focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#preview-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#preview-note")).to_have_text("The first 256 KiB.")
    assert len(page.inner_text(".karvdash-preview-text")) <= 256 * 1024
    assert page.inner_text(".karvdash-preview-text").startswith("line\nline\n")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    # Escape at once, while the dialog still fades in, closes it too
    row(page, "long.log").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator(".karvdash-preview-text")).to_have_count(0)
    # HTML is shown as its text, never run
    row(page, "page.html").locator(".row-preview").click()
    expect(page.locator(".karvdash-preview-text")).to_have_text("<script>window.__ran = true</script><b>bold</b>")
    assert page.evaluate("window.__ran === undefined")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()


def test_preview_of_csv_is_a_table_of_its_first_rows(alice_page, hub, home):
    page = alice_page
    lines = ["name,comment,value", '"Smith, J","said ""hi""",1'] + [f"row{i},plain,{i}" for i in range(500)]
    (home / "table.csv").write_text("\n".join(lines) + "\n")
    open_files(page, hub)
    row(page, "table.csv").locator(".row-preview").click()
    table = page.locator(".karvdash-preview-table")
    expect(table.locator("thead th")).to_have_text(["name", "comment", "value"])
    expect(table.locator("tbody tr").first.locator("td")).to_have_text(["Smith, J", 'said "hi"', "1"])
    expect(table.locator("tbody tr")).to_have_count(200)
    expect(page.locator("#preview-note")).to_have_text("The first 200 rows.")
    page.keyboard.press("Escape")
    expect(page.locator("#preview-dialog")).to_be_hidden()


def pdf_viewer_type(page, address_end: str) -> str | None:
    """The type of the viewer Chromium put in the frame showing ``address_end``
    (the viewer replaces the frame's document: look for it among the frames)."""
    for _ in range(200):
        for frame in page.frames:
            if frame.url.endswith(address_end):
                try:
                    found = frame.evaluate("() => { const e = document.querySelector('embed'); return e && e.type; }")
                except Exception:  # noqa: BLE001 - the frame was replaced while asked
                    found = None
                if found:
                    return found
        page.wait_for_timeout(100)
    return None


def test_preview_of_an_image_and_a_pdf_come_inline_and_sandboxed(alice_page, hub, home):
    page = alice_page
    (home / "dot.png").write_bytes(PNG)
    (home / "paper.pdf").write_bytes(PDF)
    open_files(page, hub)
    with page.expect_response(re.compile(r"/api/download/private/dot\.png\?inline=1")) as info:
        row(page, "dot.png").locator(".row-preview").click()
    headers = info.value.headers
    assert headers["content-disposition"].startswith("inline;")
    assert headers["content-security-policy"].startswith("sandbox")
    assert headers["x-content-type-options"] == "nosniff"
    page.wait_for_function("() => document.querySelector('.karvdash-preview-image').naturalWidth === 1")
    page.keyboard.press("Escape")
    expect(page.locator("#preview-dialog")).to_be_hidden()
    expect(page.locator(".karvdash-preview-image")).to_have_count(0)
    with page.expect_response(re.compile(r"/api/download/private/paper\.pdf\?inline=1")) as info:
        row(page, "paper.pdf").locator(".row-preview").click()
    assert info.value.headers["content-type"] == "application/pdf"
    assert info.value.headers["content-disposition"].startswith("inline;")
    expect(page.locator("iframe.karvdash-preview-frame")).to_have_attribute("title", "paper.pdf")
    # Chromium's viewer shows it, sandbox and all
    assert pdf_viewer_type(page, "paper.pdf?inline=1") == "application/x-google-chrome-pdf"
    page.keyboard.press("Escape")
    expect(page.locator("#preview-dialog")).to_be_hidden()


# --- narrow screens ------------------------------------------------------------------

LINE_BREAKS = """(element) => {
  // the characters of the name, each with the top of its line box
  const characters = [];
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (let i = 0; i < node.length; i += 1) {
      const range = document.createRange();
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      characters.push([node.data[i], Math.round(range.getBoundingClientRect().top)]);
    }
  }
  const breaks = [];
  for (let i = 1; i < characters.length; i += 1) {
    if (characters[i][1] > characters[i - 1][1]) breaks.push(characters[i - 1][0]);
  }
  return {breaks, lines: new Set(characters.map((c) => c[1])).size};
}"""


def test_long_names_wrap_after_separators_on_a_phone(browser, hub, home):
    context = browser.new_context(viewport={"width": 375, "height": 740})
    page = context.new_page()
    found = javascript_errors(page)
    try:
        ensure_user(hub, "alice")
        log_in_page(page, hub, "alice")
        name = "quarterly_financial-statements.consolidated_with_appendices-2024.final.csv"
        (home / name).write_text("x")
        open_files(page, hub)
        link = row(page, name).locator("a.file-link")
        expect(link).to_have_text(name)
        assert link.locator("wbr").count() == 8
        wrapped = link.evaluate(LINE_BREAKS)
        assert wrapped["lines"] >= 2, wrapped
        assert set(wrapped["breaks"]) <= set("_-./"), wrapped
        # the page itself does not scroll sideways
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        context.close()
    assert found == []
