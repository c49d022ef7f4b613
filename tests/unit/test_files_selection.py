"""Empty new files, zips of several paths and inline previews, on real folders."""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from karvdash_hub.files import downloads
from karvdash_hub.files import operations as files
from karvdash_hub.files.domains import FileDomains
from karvdash_hub.files.operations import BadPath, Conflict, DomainFolder, NotFound, OutsideDomain, ensure_folders


@pytest.fixture
def private(tmp_path) -> DomainFolder:
    root = tmp_path / "files"
    domains = FileDomains(scheme="file", server="", export_path=str(root), root=root)
    ensure_folders(domains, "alice")
    return DomainFolder.for_user(domains, "private", "alice")


def test_make_file_creates_an_empty_file_once(private):
    entry = files.make_file(private, private.locate("notes.md"))
    assert (entry.name, entry.type, entry.size) == ("notes.md", "file", 0)
    assert (private.root / "notes.md").read_bytes() == b""
    (private.root / "notes.md").write_text("kept")
    with pytest.raises(Conflict, match="private/notes.md already exists"):
        files.make_file(private, private.locate("notes.md"))
    assert (private.root / "notes.md").read_text() == "kept"
    (private.root / "d").mkdir()
    with pytest.raises(Conflict):
        files.make_file(private, private.locate("d"))
    with pytest.raises(NotFound):
        files.make_file(private, private.locate("missing/x.txt"))


def test_make_file_never_creates_through_a_link(private, tmp_path):
    outside = tmp_path / "outside.txt"
    os.symlink(outside, private.root / "trap")
    with pytest.raises(Conflict):
        files.make_file(private, private.locate("trap"))
    assert not outside.exists()


def zip_of(private, paths) -> zipfile.ZipFile:
    archive = downloads.build_zip(private, downloads.zip_members(private, paths))
    data = b""
    while batch := downloads.next_batch(archive):
        data += batch
    return zipfile.ZipFile(io.BytesIO(data))


def test_a_zip_of_several_paths_has_files_and_folders_by_their_names(private):
    (private.root / "p" / "d" / "inner").mkdir(parents=True)
    (private.root / "p" / "d" / "inner" / "x.txt").write_text("x")
    (private.root / "p" / "a.txt").write_text("a")
    (private.root / "p" / "b.bin").write_bytes(b"\0" * 10)
    with zip_of(private, ["p/a.txt", "p/d", "p/b.bin"]) as archive:
        assert archive.namelist() == ["a.txt", "d/", "d/inner/x.txt", "b.bin"]
        assert archive.read("d/inner/x.txt") == b"x"
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
    assert downloads.zip_name(["p/a.txt", "p/d"], "alice") == "p"
    assert downloads.zip_name(["p/a.txt"], "alice") == "a.txt"
    assert downloads.zip_name(["p/a.txt", "top.txt"], "alice") == "alice"
    assert downloads.zip_name(["a", "b"], "shared") == "shared"


@pytest.mark.parametrize(
    "paths, error, message",
    [
        ([], BadPath, "one or more"),
        ("a.txt", BadPath, "one or more"),
        ([3], BadPath, "one or more"),
        ([""], BadPath, "top folder"),
        (["../bob/x"], BadPath, "cannot contain"),
        (["missing.txt"], NotFound, "does not exist"),
        (["a.txt", "sub/a.txt"], BadPath, "two of the paths are named a.txt"),
        (["escape"], OutsideDomain, "outside"),
    ],
)
def test_a_zip_refuses_bad_paths_with_the_reason(private, tmp_path, paths, error, message):
    (private.root / "a.txt").write_text("a")
    (private.root / "sub").mkdir()
    (private.root / "sub" / "a.txt").write_text("a")
    os.symlink(tmp_path, private.root / "escape")
    with pytest.raises(error, match=message):
        downloads.zip_members(private, paths)


def test_too_many_paths_are_refused(private):
    with pytest.raises(BadPath, match="at most"):
        downloads.zip_members(private, [f"f{i}" for i in range(downloads.MAX_ZIP_PATHS + 1)])


@pytest.mark.parametrize(
    "content_type, inline",
    [
        ("image/png", True),
        ("image/jpeg", True),
        ("application/pdf", True),
        ("text/plain", True),
        ("image/svg+xml", False),
        ("text/html", False),
        ("application/xhtml+xml", False),
        ("text/xml", False),
        ("text/csv", False),
        ("application/octet-stream", False),
    ],
)
def test_only_types_that_run_no_scripts_show_inline(content_type, inline):
    assert downloads.shows_inline(content_type) is inline


def test_inline_disposition_keeps_the_name_safe():
    assert downloads.content_disposition('a "b".png', inline=True) == (
        "inline; filename=\"a _b_.png\"; filename*=UTF-8''a%20%22b%22.png"
    )
    assert "sandbox" in downloads.INLINE_POLICY and "default-src 'none'" in downloads.INLINE_POLICY


def test_the_api_reference_documents_the_new_file_endpoints():
    from types import SimpleNamespace

    from karvdash_hub.dashboard import filepages, transferpages

    context = SimpleNamespace(url=lambda *parts: "/services/karvdash/" + "/".join(parts))
    transfers = transferpages.openapi(context)
    assert set(transfers["/download-zip/{domain}"]) == {"parameters", "get", "post"}
    assert [p["name"] for p in transfers["/download-zip/{domain}"]["get"]["parameters"]] == ["path"]
    assert "inline" in [p["name"] for p in transfers["/download/{domain}/{path}"]["get"]["parameters"]]
    post = filepages.openapi(context)["/files/{domain}/{path}"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["properties"]["type"]["enum"] == ["folder", "file"]
