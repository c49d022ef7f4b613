"""Path safety and file operations of karvdash_hub.files.operations, on real folders."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from karvdash_hub.files import operations as files
from karvdash_hub.files.domains import FileDomains
from karvdash_hub.files.operations import (
    BadPath,
    Conflict,
    DomainFolder,
    NotFound,
    OutsideDomain,
    clean_relative_path,
    ensure_folders,
)


@pytest.fixture
def domains(tmp_path) -> FileDomains:
    root = tmp_path / "files"
    domains = FileDomains(scheme="file", server="", export_path=str(root), root=root)
    ensure_folders(domains, "alice")
    return domains


@pytest.fixture
def private(domains) -> DomainFolder:
    return DomainFolder.for_user(domains, "private", "alice")


@pytest.fixture
def shared(domains) -> DomainFolder:
    return DomainFolder.for_user(domains, "shared", "alice")


# --- clean_relative_path -------------------------------------------------------------

BAD_PATHS = {
    "..": "cannot contain . or ..",
    "../bob": "cannot contain . or ..",
    "a/../../bob": "cannot contain . or ..",
    "a/./b": "cannot contain . or ..",
    "/etc/passwd": "must be relative",
    "//etc": "must be relative",
    "a\0b": "NUL",
    "a\nb": "control characters",
    "..\\..\\etc": "backslash",
    "%2e%2e/etc": "encoded",
    "a%2Fb": "encoded",
    "x%5c..": "encoded",
    "x%00": "encoded",
    "n" * 256: "longer than 255 bytes",
    "é" * 128: "longer than 255 bytes",  # 256 bytes in UTF-8
    "/".join(["d" * 200] * 21): "longer than 4096 bytes",
}


@pytest.mark.parametrize("path", BAD_PATHS)
def test_bad_paths_are_refused_with_the_reason(path):
    with pytest.raises(BadPath) as refused:
        clean_relative_path(path)
    assert BAD_PATHS[path] in refused.value.message
    assert refused.value.status == 400


@pytest.mark.parametrize(
    "path, parts",
    [
        ("", ()),
        ("a", ("a",)),
        ("a/b/", ("a", "b")),
        ("a//b", ("a", "b")),
        ("..a/b..", ("..a", "b..")),
        ("100% sure.txt", ("100% sure.txt",)),
        ("n" * 255, ("n" * 255,)),
        ("données/été.csv", ("données", "été.csv")),
    ],
)
def test_good_paths_keep_their_parts(path, parts):
    assert clean_relative_path(path).parts == parts


DECEPTIVE_NAMES = {
    "a\u2215b": "U+2215 (DIVISION SLASH): it looks like a /",
    "a\uff0fb": "U+FF0F (FULLWIDTH SOLIDUS)",
    "a\u2044b": "U+2044 (FRACTION SLASH)",
    "a\u29f8b": "U+29F8 (BIG SOLIDUS)",
    "a\uff3cb": "U+FF3C (FULLWIDTH REVERSE SOLIDUS)",
    "invoice\u202efdp.exe": "U+202E (RIGHT-TO-LEFT OVERRIDE): an invisible or text-direction character",
    "\u202aa": "U+202A",
    "\u202ba": "U+202B",
    "\u202ca": "U+202C",
    "\u202da": "U+202D",
    "a\u2066b": "U+2066",
    "a\u2067b": "U+2067",
    "a\u2068b": "U+2068",
    "a\u2069b": "U+2069",
    "a\u200bb": "U+200B (ZERO WIDTH SPACE)",
    "a\u200cb": "U+200C",
    "a\u200db": "U+200D",
    "a\u2060b": "U+2060 (WORD JOINER)",
    "\ufeffa": "U+FEFF",
    "a\u0085b": "U+0085",  # a C1 control
    "a\u2028b": "U+2028 (LINE SEPARATOR)",
}


@pytest.mark.parametrize("name", DECEPTIVE_NAMES)
def test_new_names_that_show_as_another_are_refused(name):
    with pytest.raises(BadPath) as refused:
        clean_relative_path(f"folder/{name}", new=True)
    assert DECEPTIVE_NAMES[name] in refused.value.message
    assert refused.value.status == 400


def test_existing_names_are_found_as_they_are_on_disk():
    # a file named by a notebook is still reachable, to open, move or delete it
    assert clean_relative_path("a\u200bb/e\u0301.txt").parts == ("a\u200bb", "e\u0301.txt")


def test_a_new_name_is_stored_in_nfc_and_any_script_is_welcome():
    assert clean_relative_path("d/e\u0301te\u0301.csv", new=True).parts == ("d", "\u00e9t\u00e9.csv")
    # only the new name: the folders on the way are found as they are
    assert clean_relative_path("e\u0301/x", new=True).parts == ("e\u0301", "x")
    for name in ("数据", "Ελληνικά", "Данные", "بيانات", "データ", "🙂 notes"):
        assert clean_relative_path(name, new=True).parts == (name,)


# --- resolving inside a domain -------------------------------------------------------


def test_domains_are_the_users_private_folder_and_shared(domains, private, shared):
    assert private.root == (domains.root / "private" / "alice").resolve()
    assert shared.root == (domains.root / "shared").resolve()
    assert private.owner == "alice" and shared.owner is None


@pytest.mark.parametrize("username", ["..", ".", "a/b", "a\\b", "x\n", ""])
def test_a_user_name_that_is_a_path_gets_no_private_folder(domains, username):
    with pytest.raises(OutsideDomain):
        DomainFolder.for_user(domains, "private", username)
    assert sorted(os.listdir(domains.root / "private")) == ["alice"]


def test_unknown_and_uploads_domains_are_not_browsable(domains):
    for name in ("uploads", "private/bob", "bob", ""):
        with pytest.raises(NotFound):
            DomainFolder.for_user(domains, name, "alice")


def test_a_symlink_out_of_the_domain_is_refused_for_reading_and_passing_through(domains, private, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("no")
    os.symlink(outside, private.root / "escape")
    os.symlink(domains.root / "private", private.root / "others")
    with pytest.raises(OutsideDomain):
        private.resolve("escape")
    with pytest.raises(OutsideDomain):
        private.locate("escape/secret")
    with pytest.raises(OutsideDomain):
        private.resolve("others/bob")
    # the link itself can be removed: that touches nothing outside
    assert private.locate("escape") == private.root / "escape"
    files.delete(private, private.locate("escape"))
    assert (outside / "secret").read_text() == "no"


def test_a_symlink_inside_the_domain_is_followed_for_reading_only(private):
    (private.root / "real").mkdir()
    (private.root / "real" / "f.txt").write_text("x")
    os.symlink("real", private.root / "alias")
    assert private.resolve("alias/f.txt") == private.root / "real" / "f.txt"
    files.delete(private, private.locate("alias"))
    assert (private.root / "real" / "f.txt").exists()


def test_the_private_root_of_another_user_is_never_reached(domains, private):
    ensure_folders(domains, "bob")
    (domains.root / "private" / "bob" / "mine").write_text("bob's")
    for path in ("../bob/mine", "bob/mine"):
        try:
            location = private.resolve(path)
        except (BadPath, OutsideDomain):
            continue
        assert not location.exists()


# --- listing -------------------------------------------------------------------------


def test_listing_shows_folders_first_with_sizes_and_hides_trash(private, tmp_path):
    (private.root / "b.txt").write_bytes(b"12345")
    (private.root / "a-folder").mkdir()
    (private.root / "A.txt").write_bytes(b"")
    (private.root / ".trash-0123").mkdir()
    os.symlink(tmp_path, private.root / "out")
    entries = files.list_folder(private, private.root)
    assert [(e.name, e.type, e.size) for e in entries] == [
        ("a-folder", "folder", 0),
        ("A.txt", "file", 0),
        ("b.txt", "file", 5),
        ("out", "link", 0),
    ]


def test_listing_a_file_or_nothing_is_refused(private):
    (private.root / "f").write_text("x")
    with pytest.raises(BadPath):
        files.list_folder(private, private.root / "f")
    with pytest.raises(NotFound):
        files.list_folder(private, private.root / "missing")


def test_walk_files_gives_archive_names_and_skips_escapes(private, tmp_path):
    (private.root / "top" / "sub").mkdir(parents=True)
    (private.root / "top" / "empty").mkdir()
    (private.root / "top" / "a.txt").write_text("a")
    (private.root / "top" / "sub" / "b.txt").write_text("b")
    (tmp_path / "secret").write_text("s")
    os.symlink(tmp_path / "secret", private.root / "top" / "leak")
    os.symlink(private.root / "top", private.root / "top" / "loop")
    walked = [(str(real) if real else None, name) for real, name in files.walk_files(private, private.root / "top")]
    assert walked == [
        (str(private.root / "top" / "a.txt"), "a.txt"),
        (None, "empty/"),
        (str(private.root / "top" / "sub" / "b.txt"), "sub/b.txt"),
    ]


# --- changing ------------------------------------------------------------------------


def test_make_folder_refuses_existing_names_and_missing_parents(private):
    entry = files.make_folder(private, private.locate("new"))
    assert (entry.name, entry.type) == ("new", "folder")
    with pytest.raises(Conflict):
        files.make_folder(private, private.locate("new"))
    with pytest.raises(NotFound):
        files.make_folder(private, private.locate("missing/new"))


def test_delete_is_recursive_but_never_the_domain_root(private):
    (private.root / "d" / "e").mkdir(parents=True)
    (private.root / "d" / "e" / "f").write_text("x")
    files.delete(private, private.locate("d"))
    assert not (private.root / "d").exists()
    with pytest.raises(BadPath):
        files.delete(private, private.locate(""))
    with pytest.raises(NotFound):
        files.delete(private, private.locate("d"))
    assert private.root.is_dir()


def test_move_renames_and_crosses_domains(private, shared):
    (private.root / "a.txt").write_text("a")
    entry = files.move(private, private.locate("a.txt"), shared, shared.locate("b.txt"))
    assert entry.name == "b.txt"
    assert (shared.root / "b.txt").read_text() == "a"
    assert not (private.root / "a.txt").exists()


def test_move_refuses_an_existing_target_unless_overwrite(private):
    (private.root / "a").write_text("new")
    (private.root / "b").write_text("old")
    with pytest.raises(Conflict):
        files.move(private, private.locate("a"), private, private.locate("b"))
    assert (private.root / "b").read_text() == "old" and (private.root / "a").exists()
    files.move(private, private.locate("a"), private, private.locate("b"), overwrite=True)
    assert (private.root / "b").read_text() == "new" and not (private.root / "a").exists()


def test_move_refuses_an_existing_empty_folder_without_overwrite(private):
    # plain rename(2) would silently replace an empty folder
    (private.root / "src").mkdir()
    (private.root / "src" / "f").write_text("x")
    (private.root / "dst").mkdir()
    with pytest.raises(Conflict):
        files.move(private, private.locate("src"), private, private.locate("dst"))
    assert (private.root / "src" / "f").exists()


def test_overwrite_replaces_a_full_folder_and_a_file_by_a_folder(domains, private):
    trash = files.trash_folder(domains)
    (private.root / "src").mkdir()
    (private.root / "src" / "new").write_text("n")
    (private.root / "dst").mkdir()
    (private.root / "dst" / "old").write_text("o")
    files.move(private, private.locate("src"), private, private.locate("dst"), overwrite=True, trash=trash)
    assert sorted(os.listdir(private.root / "dst")) == ["new"]
    (private.root / "file").write_text("f")
    files.move(private, private.locate("dst"), private, private.locate("file"), overwrite=True, trash=trash)
    assert (private.root / "file" / "new").read_text() == "n"
    files.wait_for_deletions()
    assert os.listdir(trash) == []
    assert [p for p in os.listdir(private.root) if p.startswith(".trash-")] == []


def test_move_refuses_a_folder_into_itself_and_the_domain_root(private):
    (private.root / "d").mkdir()
    with pytest.raises(BadPath):
        files.move(private, private.locate("d"), private, private.locate("d/inner"))
    with pytest.raises(BadPath):
        files.move(private, private.locate(""), private, private.locate("x"))
    with pytest.raises(Conflict):
        files.move(private, private.locate("d"), private, private.locate(""), overwrite=True)


def test_move_to_a_missing_folder_or_from_nothing_is_not_found(private):
    (private.root / "a").write_text("a")
    with pytest.raises(NotFound):
        files.move(private, private.locate("a"), private, private.locate("no/where"))
    with pytest.raises(NotFound):
        files.move(private, private.locate("missing"), private, private.locate("x"))


def test_rename_no_replace_never_replaces(tmp_path):
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    with pytest.raises(FileExistsError):
        files.rename_no_replace(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "b").read_text() == "b"
    files.rename_no_replace(tmp_path / "a", tmp_path / "c")
    assert (tmp_path / "c").read_text() == "a" and not (tmp_path / "a").exists()


def test_place_file_over_a_link_replaces_the_link_not_its_target(private, tmp_path):
    target = tmp_path / "outside.txt"
    target.write_text("keep")
    os.symlink(target, private.root / "link")
    staged = tmp_path / "staged"
    staged.write_text("new")
    files.place_file(staged, private.locate("link"), overwrite=True)
    assert target.read_text() == "keep"
    assert not (private.root / "link").is_symlink()
    assert (private.root / "link").read_text() == "new"


def large_file(path: Path, content: bytes) -> None:
    """A file of FREE_AFTER_REPLACE bytes (sparse) that starts with ``content``."""
    path.write_bytes(content)
    os.truncate(path, files.FREE_AFTER_REPLACE)


def test_a_large_replaced_file_is_freed_after_the_replace_not_by_it(domains, private, tmp_path, monkeypatch):
    trash = files.trash_folder(domains)
    large_file(private.root / "big.bin", b"old")
    staged = tmp_path / "staged"
    staged.write_bytes(b"new")
    later = []
    monkeypatch.setattr(files, "delete_later", later.append)
    with open(private.root / "big.bin", "rb") as old:
        files.place_file(staged, private.locate("big.bin"), overwrite=True, trash=trash)
        assert (private.root / "big.bin").read_bytes() == b"new"
        # the old file's blocks are still held, by one link in the trash
        assert os.fstat(old.fileno()).st_nlink == 1
        [kept] = later
        assert kept.parent == trash and kept.name.startswith(files.TRASH_PREFIX)
        assert kept.read_bytes().startswith(b"old")
    assert [p for p in os.listdir(private.root) if p.startswith(files.TRASH_PREFIX)] == []


def test_the_deletion_thread_frees_the_replaced_file(domains, private, tmp_path):
    trash = files.trash_folder(domains)
    large_file(private.root / "big.bin", b"old")
    staged = tmp_path / "staged"
    staged.write_bytes(b"new")
    with open(private.root / "big.bin", "rb") as old:
        files.place_file(staged, private.locate("big.bin"), overwrite=True, trash=trash)
        files.wait_for_deletions()
        assert os.fstat(old.fileno()).st_nlink == 0
    assert os.listdir(trash) == []
    assert (private.root / "big.bin").read_bytes() == b"new"


def test_a_small_replaced_file_or_one_with_other_links_is_freed_by_the_replace(domains, private, tmp_path, monkeypatch):
    trash = files.trash_folder(domains)
    later = []
    monkeypatch.setattr(files, "delete_later", later.append)
    (private.root / "small.txt").write_bytes(b"old")
    large_file(private.root / "linked.bin", b"old")
    os.link(private.root / "linked.bin", tmp_path / "other-link")
    for name in ("small.txt", "linked.bin"):
        staged = tmp_path / "staged"
        staged.write_bytes(b"new")
        files.place_file(staged, private.locate(name), overwrite=True, trash=trash)
        assert (private.root / name).read_bytes() == b"new"
    assert later == [] and os.listdir(trash) == []
    assert os.stat(tmp_path / "other-link").st_nlink == 1


def test_a_replace_that_fails_keeps_the_old_file_and_no_second_link(domains, private, tmp_path, monkeypatch):
    trash = files.trash_folder(domains)
    large_file(private.root / "big.bin", b"old")
    staged = tmp_path / "staged"
    staged.write_bytes(b"new")

    def refused(source, target):
        raise PermissionError(13, "refused")

    monkeypatch.setattr(files, "_rename", refused)
    with pytest.raises(PermissionError):
        files.place_file(staged, private.locate("big.bin"), overwrite=True, trash=trash)
    assert (private.root / "big.bin").read_bytes().startswith(b"old")
    assert os.stat(private.root / "big.bin").st_nlink == 1
    assert os.listdir(trash) == [] and staged.read_bytes() == b"new"


def test_without_hard_links_the_replace_frees_the_file_itself(domains, private, tmp_path, monkeypatch):
    trash = files.trash_folder(domains)
    large_file(private.root / "big.bin", b"old")
    staged = tmp_path / "staged"
    staged.write_bytes(b"new")

    def no_links(*args, **kwargs):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(files.os, "link", no_links)
    files.place_file(staged, private.locate("big.bin"), overwrite=True, trash=trash)
    assert (private.root / "big.bin").read_bytes() == b"new"
    assert os.listdir(trash) == []


def test_display_names_the_domain(private):
    assert private.display(PurePosixPath("a/b")) == "private/a/b"
    assert private.display(PurePosixPath()) == "private/"
    assert private.relative(private.root / "a" / "b") == PurePosixPath("a/b")
    assert Path(private.locate("x")) == private.root / "x"


# --- folder downloads ----------------------------------------------------------------


def test_a_folder_zip_leaves_out_files_deleted_while_it_is_made(private):
    import io
    import zipfile

    from karvdash_hub.files import downloads

    (private.root / "d").mkdir()
    for name in ("a.bin", "b.bin", "c.bin"):
        (private.root / "d" / name).write_bytes(name.encode() * 1000)
    archive = iter(downloads.build_zip(private, [(private.root / "d", "d")]))
    data = b""
    while b"d/a.bin" not in data:  # into the first file: the folder is listed
        data += next(archive)
    (private.root / "d" / "b.bin").unlink()
    data += b"".join(archive)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None
        assert sorted(z.namelist()) == ["d/", "d/a.bin", "d/c.bin"]
        assert z.read("d/c.bin") == b"c.bin" * 1000


def test_a_file_deleted_while_it_is_read_still_arrives_whole(private):
    import io
    import zipfile

    from karvdash_hub.files import downloads

    (private.root / "d").mkdir()
    (private.root / "d" / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    expected = (private.root / "d" / "big.bin").read_bytes()
    archive = downloads.build_zip(private, [(private.root / "d", "d")])
    data = downloads.next_batch(archive)  # into the file
    (private.root / "d" / "big.bin").unlink()
    while batch := downloads.next_batch(archive):
        data += batch
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.read("d/big.bin") == expected
