"""The Files API's newer endpoints on a real hub: empty new files, one zip
of several paths, and inline answers for previews (only for types that run
no scripts, always sandboxed); on folders and on an S3 file domain."""

from __future__ import annotations

import io
import uuid
import zipfile

import pytest

from tests.integration.dashboardsession import (
    ACCESS,
    FILES_READ,
    DashboardAPI,
    ensure_user,
    files_root,
    private_folder,
)
from tests.s3files import start_files_hub

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub(request, tmp_path_factory, file_domain):
    running = start_files_hub(request, tmp_path_factory, file_domain, timeout=240)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def alice(hub):
    ensure_user(hub, "alice")
    return DashboardAPI(hub, hub.token_for("alice"))


@pytest.fixture(scope="module")
def bob(hub):
    ensure_user(hub, "bob")
    return DashboardAPI(hub, hub.token_for("bob"))


@pytest.fixture
def folder(hub, alice):
    """A fresh folder of alice's private domain: (its name, its path on disk)."""
    name = "t" + uuid.uuid4().hex[:8]
    path = private_folder(hub, "alice") / name
    path.mkdir(parents=True)
    return name, path


def assert_error(response, status: int, text: str = "") -> None:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["status"] == status and text in body["message"], body


# --- new empty files -----------------------------------------------------------------


def test_a_new_empty_file(hub, alice, folder):
    name, path = folder
    created = alice("POST", f"files/private/{name}/notes.md", json={"type": "file"})
    assert created.status_code == 201, created.text
    assert {k: created.json()[k] for k in ("name", "type", "size", "domain", "path")} == {
        "name": "notes.md", "type": "file", "size": 0, "domain": "private", "path": f"{name}/notes.md"
    }
    assert (path / "notes.md").read_bytes() == b""
    (path / "notes.md").write_text("kept")
    assert_error(alice("POST", f"files/private/{name}/notes.md", json={"type": "file"}), 409, "already exists")
    assert (path / "notes.md").read_text() == "kept"
    assert_error(alice("POST", f"files/private/{name}/missing/x.txt", json={"type": "file"}), 404)
    assert_error(alice("POST", f"files/private/{name}/x", json={"type": "link"}), 400, '{"type": "file"}')
    assert_error(alice("POST", f"files/private/{name}/%2e%2e%2fx", json={"type": "file"}), 400)
    assert sorted(p.name for p in path.iterdir()) == ["notes.md"]


def test_a_new_file_needs_the_write_scope(hub, alice, folder):
    name, path = folder
    read_only = DashboardAPI(hub, hub.token_for("alice", scopes=[ACCESS, FILES_READ]))
    assert_error(read_only("POST", f"files/private/{name}/x.txt", json={"type": "file"}), 403)
    assert list(path.iterdir()) == []


# --- a zip of several paths ----------------------------------------------------------


def zip_names(response) -> list[str]:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
        return archive.namelist()


@pytest.fixture
def tree(folder):
    name, path = folder
    (path / "docs" / "inner").mkdir(parents=True)
    (path / "docs" / "inner" / "deep.txt").write_text("deep")
    (path / "a.txt").write_text("a")
    (path / "b.csv").write_text("b")
    return name, path


def test_several_paths_as_one_zip_by_query(alice, tree):
    name, _ = tree
    response = alice("GET", "download-zip/private", params=[("path", f"{name}/a.txt"), ("path", f"{name}/docs")])
    assert zip_names(response) == ["a.txt", "docs/", "docs/inner/deep.txt"]
    assert response.headers["Content-Disposition"].startswith(f'attachment; filename="{name}.zip"')
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.read("docs/inner/deep.txt") == b"deep"


def test_several_paths_as_one_zip_by_json_and_by_form(alice, tree):
    name, _ = tree
    paths = [f"{name}/a.txt", f"{name}/b.csv"]
    assert zip_names(alice("POST", "download-zip/private", json={"paths": paths})) == ["a.txt", "b.csv"]
    assert zip_names(alice("POST", "download-zip/private", data={"path": paths})) == ["a.txt", "b.csv"]


def test_paths_of_different_folders_make_a_zip_named_after_the_domain(hub, alice, tree):
    name, path = tree
    (files_root(hub) / "shared" / "s.txt").write_text("s")
    response = alice("GET", "download-zip/private", params=[("path", f"{name}/a.txt"), ("path", f"{name}/docs/inner")])
    assert zip_names(response) == ["a.txt", "inner/", "inner/deep.txt"]
    across = alice("GET", "download-zip/private", params=[("path", f"{name}/a.txt"), ("path", f"{name}/docs/inner/deep.txt")])
    assert across.headers["Content-Disposition"].startswith('attachment; filename="alice.zip"')
    shared = alice("GET", "download-zip/shared", params=[("path", "s.txt")])
    assert zip_names(shared) == ["s.txt"]
    assert shared.headers["Content-Disposition"].startswith('attachment; filename="s.txt.zip"')


def test_a_zip_refuses_bad_paths_with_a_clear_error(alice, bob, tree):
    name, path = tree
    (path / "docs" / "a.txt").write_text("another a")
    assert_error(alice("GET", "download-zip/private"), 400, "give the paths")
    assert_error(alice("POST", "download-zip/private", json={"paths": "a.txt"}), 400, "give the paths")
    assert_error(alice("POST", "download-zip/private", data=b"{", headers={"Content-Type": "application/json"}), 400)
    assert_error(alice("GET", "download-zip/private", params={"path": f"{name}/missing"}), 404, "does not exist")
    assert_error(alice("GET", "download-zip/private", params={"path": "../bob/x"}), 400)
    assert_error(alice("GET", "download-zip/private", params={"path": ""}), 400, "top folder")
    assert_error(alice("GET", "download-zip/nodomain", params={"path": "a"}), 404)
    assert_error(
        alice("GET", "download-zip/private", params=[("path", f"{name}/a.txt"), ("path", f"{name}/docs/a.txt")]),
        400,
        "two of the paths are named a.txt",
    )
    # bob's private domain is his own: alice's paths are not there
    assert_error(bob("GET", "download-zip/private", params={"path": f"{name}/a.txt"}), 404)


def test_a_zip_needs_the_read_scope(hub, tree):
    name, _ = tree
    no_files = DashboardAPI(hub, hub.token_for("alice", scopes=[ACCESS]))
    assert_error(no_files("GET", "download-zip/private", params={"path": f"{name}/a.txt"}), 403)
    read_only = DashboardAPI(hub, hub.token_for("alice", scopes=[ACCESS, FILES_READ]))
    assert zip_names(read_only("GET", "download-zip/private", params={"path": f"{name}/a.txt"})) == ["a.txt"]
    assert_error(DashboardAPI(hub)("GET", "download-zip/private", params={"path": f"{name}/a.txt"}), 401)


# --- inline answers for previews -------------------------------------------------------


@pytest.mark.parametrize(
    "file, content_type",
    [("p.png", "image/png"), ("p.jpg", "image/jpeg"), ("p.pdf", "application/pdf"), ("p.txt", "text/plain")],
)
def test_safe_types_come_inline_and_sandboxed_when_asked(alice, folder, file, content_type):
    name, path = folder
    (path / file).write_bytes(b"data")
    inline = alice("GET", f"download/private/{name}/{file}", params={"inline": "1"})
    assert inline.status_code == 200
    assert inline.headers["Content-Type"].split(";")[0] == content_type
    assert inline.headers["Content-Disposition"] == f"inline; filename=\"{file}\"; filename*=UTF-8''{file}"
    assert inline.headers["Content-Security-Policy"].split(";")[0] == "sandbox"
    assert "default-src 'none'" in inline.headers["Content-Security-Policy"]
    assert inline.headers["X-Content-Type-Options"] == "nosniff"
    # a range of it too (text previews read the start)
    part = alice("GET", f"download/private/{name}/{file}", params={"inline": "1"}, headers={"Range": "bytes=0-1"})
    assert (part.status_code, part.content) == (206, b"da")
    plain = alice("GET", f"download/private/{name}/{file}")
    assert plain.headers["Content-Disposition"].startswith("attachment;")
    assert "Content-Security-Policy" not in plain.headers


@pytest.mark.parametrize("file", ["page.html", "page.htm", "pic.svg", "doc.xhtml", "feed.xml", "data.csv", "blob.bin", "script.js"])
def test_types_that_could_run_scripts_stay_attachments(alice, folder, file):
    name, path = folder
    (path / file).write_text("<script>alert(1)</script>")
    response = alice("GET", f"download/private/{name}/{file}", params={"inline": "1"})
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- large folders, a page at a time ------------------------------------------------------


def listed(api, name: str, **params) -> list[dict]:
    """Every page of alice's folder ``name`` with ``params``, each checked."""
    pages, cursor = [], None
    while True:
        answer = api("GET", f"files/private/{name}", params={**params, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["type"] == "folder" and body["path"] == name and body["limit"] == int(params["limit"])
        assert len(body["entries"]) <= int(params["limit"])
        pages.append(body["entries"])
        cursor = body["next"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "the cursor never ends"


@pytest.fixture
def many(folder):
    """A folder of 23 files of growing sizes and 3 folders."""
    name, path = folder
    for i in range(23):
        (path / f"file-{i:02d}.txt").write_bytes(b"x" * (i * 7 % 23))
    for sub in ("Zed", "alpha", "mid"):
        (path / sub).mkdir()
    return name, path


def test_a_folder_comes_a_page_at_a_time_folders_first_each_entry_once(alice, many):
    name, _ = many
    pages = listed(alice, name, limit="5")
    assert [len(page) for page in pages] == [5, 5, 5, 5, 5, 1]
    names = [e["name"] for page in pages for e in page]
    assert names == ["Zed", "alpha", "mid"] + [f"file-{i:02d}.txt" for i in range(23)]
    sizes = {e["name"]: (e["type"], e["size"]) for page in pages for e in page}
    assert sizes["file-03.txt"] == ("file", 21) and sizes["mid"] == ("folder", 0)
    # the answer without paging keeps its shape: every entry, no cursor
    whole = alice("GET", f"files/private/{name}").json()
    assert [e["name"] for e in whole["entries"]] == names and "next" not in whole


def test_pages_sorted_and_filtered_on_the_server(alice, many):
    name, _ = many
    by_size = [e for page in listed(alice, name, limit="4", sort="size", order="desc") for e in page]
    assert [e["name"] for e in by_size[:3]] == ["mid", "alpha", "Zed"]
    files_by_size = [(e["size"], e["name"]) for e in by_size[3:]]
    assert files_by_size == sorted(files_by_size, reverse=True)
    by_time = [e for page in listed(alice, name, limit="7", sort="modified") for e in page]
    assert len(by_time) == 26
    assert [(e["type"] != "folder", e["modified"], e["name"]) for e in by_time] == sorted(
        (e["type"] != "folder", e["modified"], e["name"]) for e in by_time)
    filtered = listed(alice, name, limit="2", filter="FILE-1")
    assert [e["name"] for page in filtered for e in page] == [f"file-{i}.txt" for i in range(10, 20)]
    assert listed(alice, name, limit="2", filter="nothing like it") == [[]]


def test_entries_made_between_pages_are_not_shown_twice(alice, many):
    name, path = many
    first = alice("GET", f"files/private/{name}", params={"limit": "10"}).json()
    assert first["entries"][-1]["name"] == "file-06.txt"
    (path / "file-00.txt").unlink()
    (path / "file-06b.txt").write_bytes(b"new")
    rest = alice("GET", f"files/private/{name}", params={"limit": "100", "cursor": first["next"]}).json()
    assert [e["name"] for e in rest["entries"]][:2] == ["file-06b.txt", "file-07.txt"]
    assert len(rest["entries"]) == 17 and rest["next"] is None


@pytest.mark.parametrize(
    "params, words",
    [
        ({"limit": "0"}, "limit must be from 1 to 1000"),
        ({"limit": "1001"}, "limit must be from 1 to 1000"),
        ({"limit": "ten"}, "limit must be a whole number"),
        ({"limit": "9" * 5000}, "limit must be from 1 to 1000"),
        ({"limit": ["1", "2"]}, "give limit once"),
        ({"sort": "owner", "limit": "5"}, "sort must be name or modified or size"),
        ({"order": "sideways"}, "order must be asc or desc"),
        ({"filter": "\x07"}, "printable"),
        ({"cursor": "garbage!"}, "cursor is not one this listing gave"),
        ({"cursor": "W10"}, "cursor is not one this listing gave"),  # "[]"
    ],
)
def test_bad_listing_values_are_a_clear_400(alice, many, params, words):
    name, _ = many
    assert_error(alice("GET", f"files/private/{name}", params=params), 400, words)


def test_a_listing_value_that_is_not_utf8_is_a_clear_400(alice, many):
    name, _ = many
    assert_error(alice("GET", f"files/private/{name}?limit=5&filter=%ff"), 400, "filter must be UTF-8 text")


def test_a_cursor_lists_nothing_but_the_folder_it_came_from(hub, alice, bob, many):
    name, _ = many
    cursor = alice("GET", f"files/private/{name}", params={"limit": "2"}).json()["next"]
    assert alice("GET", f"files/private/{name}", params={"cursor": cursor}).status_code == 200
    # another folder, the other domain, another order or filter: refused
    assert_error(alice("GET", f"files/private/{name}/mid", params={"cursor": cursor}), 400, "another listing")
    assert_error(alice("GET", "files/private/", params={"cursor": cursor}), 400, "another listing")
    assert_error(alice("GET", f"files/private/{name}", params={"cursor": cursor, "order": "desc"}), 400,
                 "another listing")
    # bob's own private folder of that name: his, never alice's, and alice's cursor is not his
    (private_folder(hub, "bob") / name).mkdir(parents=True)
    assert_error(bob("GET", f"files/private/{name}", params={"cursor": cursor}), 400, "another listing")
    assert bob("GET", f"files/private/{name}", params={"limit": "5"}).json()["entries"] == []
    # a path that leaves the domain stays refused, cursor or not
    assert alice("GET", f"files/private/{name}/..%2f..", params={"cursor": cursor}).status_code == 400
