"""How features read a user's file (image archives, templates): only a
regular file inside the domain, whatever links are in the way."""

from __future__ import annotations

import os
from pathlib import PurePosixPath

import pytest

from karvdash_hub.files.domains import FileDomains
from karvdash_hub.files.operations import BadPath, DomainFolder, NotFound, OutsideDomain, ensure_folders, open_for_reading


@pytest.fixture
def domains(tmp_path) -> FileDomains:
    root = tmp_path / "files"
    domains = FileDomains(scheme="file", server="", export_path=str(root), root=root)
    ensure_folders(domains, "alice")
    ensure_folders(domains, "bob")
    return domains


@pytest.fixture
def alice(domains) -> DomainFolder:
    return DomainFolder.for_user(domains, "private", "alice")


def read(descriptor: int) -> bytes:
    with os.fdopen(descriptor, "rb") as f:
        return f.read()


def test_a_file_of_the_domain_is_opened(alice):
    (alice.root / "images").mkdir()
    (alice.root / "images" / "app.tar").write_bytes(b"archive")
    assert read(open_for_reading(alice, PurePosixPath("images/app.tar"))) == b"archive"


def test_a_link_inside_the_domain_is_followed(alice):
    (alice.root / "real.tar").write_bytes(b"real")
    (alice.root / "alias.tar").symlink_to("real.tar")
    assert read(open_for_reading(alice, PurePosixPath("alias.tar"))) == b"real"


@pytest.mark.parametrize(
    "path, error, message",
    [
        ("", BadPath, "give the path of an image archive"),
        ("missing.tar", NotFound, "private/missing.tar does not exist"),
        ("folder.tar", BadPath, "private/folder.tar is a folder, not an image archive"),
        ("escape.tar", OutsideDomain, "private/escape.tar leads outside the private domain"),
    ],
)
def test_refusals_name_the_file(alice, domains, path, error, message):
    (alice.root / "folder.tar").mkdir()
    secret = DomainFolder.for_user(domains, "private", "bob").root / "secret.tar"
    secret.write_bytes(b"bob's")
    (alice.root / "escape.tar").symlink_to(secret)
    with pytest.raises(error) as refused:
        open_for_reading(alice, PurePosixPath(path), "an image archive")
    assert refused.value.message == message


def test_a_link_swapped_in_after_the_check_is_not_followed(alice, domains, monkeypatch):
    """The path is checked, then a link replaces the file before it is
    opened: the open refuses the link instead of reading bob's file."""
    secret = DomainFolder.for_user(domains, "private", "bob").root / "secret.tar"
    secret.write_bytes(b"bob's")
    checked = alice.root / "app.tar"
    monkeypatch.setattr(DomainFolder, "resolve", lambda self, path: checked)
    checked.symlink_to(secret)
    with pytest.raises(BadPath) as refused:
        open_for_reading(alice, PurePosixPath("app.tar"))
    assert refused.value.message == "cannot open private/app.tar: Too many levels of symbolic links"
