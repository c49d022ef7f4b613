"""The upload staging area: ownership, offsets, expiry."""

from __future__ import annotations

import os
import time

import pytest

from karvdash_hub.files.operations import NotFound
from karvdash_hub.files.uploads import UploadStore


@pytest.fixture
def store(tmp_path) -> UploadStore:
    return UploadStore(tmp_path / "uploads" / "staged", expiry=3600)


def new_upload(store, owner="alice", size=10):
    return store.create(owner=owner, domain="private", domain_user=owner, path="a/b.bin", size=size, overwrite=False)


def test_created_upload_is_empty_private_and_listed_for_its_owner_only(store):
    upload = new_upload(store)
    assert upload.offset() == 0
    assert os.stat(upload.data_path).st_mode & 0o777 == 0o600
    assert os.stat(upload.meta_path).st_mode & 0o777 == 0o600
    assert os.stat(store.folder).st_mode & 0o777 == 0o700
    assert [u.id for u in store.list("alice")] == [upload.id]
    assert store.list("bob") == []
    again = store.get(upload.id, "alice")
    assert (again.path, again.size, again.domain_user) == ("a/b.bin", 10, "alice")


def test_another_users_upload_is_as_missing_as_none(store):
    upload = new_upload(store)
    with pytest.raises(NotFound):
        store.get(upload.id, "bob")
    for bad in ("../../etc/passwd", "x", upload.id + "/..", ""):
        with pytest.raises(NotFound):
            store.get(bad, "alice")


def test_offset_is_what_reached_the_disk(store):
    upload = new_upload(store)
    with open(upload.data_path, "ab") as f:
        f.write(b"1234")
    assert upload.offset() == 4
    assert upload.to_json()["offset"] == 4


def test_save_keeps_a_changed_overwrite_flag(store):
    upload = new_upload(store)
    upload.overwrite = True
    store.save(upload)
    assert store.get(upload.id, "alice").overwrite is True


def test_remove_deletes_both_files(store):
    upload = new_upload(store)
    store.remove(upload)
    assert os.listdir(store.folder) == []
    with pytest.raises(NotFound):
        upload.offset()


def test_expire_removes_only_idle_uploads_and_not_ones_being_written(store):
    old, fresh, busy = new_upload(store), new_upload(store), new_upload(store)
    past = time.time() - 7200
    for upload in (old, busy):
        for path in (upload.data_path, upload.meta_path):
            os.utime(path, (past, past))
    store.writing.add(busy.id)
    assert store.expire() == [old.id]
    assert sorted(os.listdir(store.folder)) == sorted(
        [f"{fresh.id}.part", f"{fresh.id}.json", f"{busy.id}.part", f"{busy.id}.json"]
    )
    store.writing.discard(busy.id)
    assert store.expire(now=time.time() + 7200) and os.listdir(store.folder) == []
