"""The upload staging area: ownership, offsets, expiry, and placing a finished upload."""

from __future__ import annotations

import os
import time

import pytest

from karvdash_hub.files import operations, storage
from karvdash_hub.files.domains import UPLOADS, FileDomains
from karvdash_hub.files.operations import Conflict, NotFound, ensure_folders, place_file
from karvdash_hub.files.storage import LocalStorage
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


# --- finishing: the staged file moves into place by one rename ----------------------------


@pytest.fixture
def domains(tmp_path) -> FileDomains:
    root = tmp_path / "files"
    domains = FileDomains(scheme="file", server="", export_path=str(root), root=root)
    ensure_folders(domains, "alice")
    return domains


@pytest.fixture
def domain_store(domains) -> UploadStore:
    return UploadStore(domains.local_path(UPLOADS) / "staged", expiry=3600, storage=LocalStorage(domains))


def staged_upload(domains, store, content: bytes, path="b.bin", overwrite=False):
    upload = store.start(owner="alice", domain="private", domain_user="alice", path=path,
                         size=len(content), overwrite=overwrite)
    with open(upload.data_path, "ab") as f:
        f.write(content)
    return upload


def test_finish_places_the_staged_file_itself_not_a_copy(domains, domain_store):
    upload = staged_upload(domains, domain_store, b"payload")
    staged_inode = os.stat(upload.data_path).st_ino
    entry = domain_store.finish(upload)
    target = domains.local_path("private", "alice") / "b.bin"
    assert os.stat(target).st_ino == staged_inode
    assert target.read_bytes() == b"payload" and entry["size"] == 7
    assert not upload.data_path.exists() and not upload.meta_path.exists()


def test_an_upload_over_a_large_file_leaves_its_freeing_to_the_deletion_thread(domains, domain_store, monkeypatch):
    target = domains.local_path("private", "alice") / "b.bin"
    target.write_bytes(b"old")
    os.truncate(target, operations.FREE_AFTER_REPLACE)
    later = []
    monkeypatch.setattr(operations, "delete_later", later.append)
    upload = staged_upload(domains, domain_store, b"payload", overwrite=True)
    domain_store.finish(upload)
    assert target.read_bytes() == b"payload"
    # put aside in the dashboard's trash, which the clean-up empties after a crash
    [kept] = later
    assert kept.parent == operations.trash_folder(domains)
    assert kept.read_bytes().startswith(b"old")


def test_a_name_created_after_the_check_is_never_replaced(domains, domain_store, monkeypatch):
    # another process creates the target between finish's check and its rename:
    # only the no-replace rename itself can refuse then
    upload = staged_upload(domains, domain_store, b"uploaded bytes")
    target = domains.local_path("private", "alice") / "b.bin"
    real_check = storage.check_target

    def check_then_someone_creates(folder, location, overwrite):
        real_check(folder, location, overwrite)
        target.write_bytes(b"created meanwhile")

    monkeypatch.setattr(storage, "check_target", check_then_someone_creates)
    staged_inode = os.stat(upload.data_path).st_ino
    with pytest.raises(Conflict):
        domain_store.finish(upload)
    assert target.read_bytes() == b"created meanwhile"
    # the upload is kept whole, to retry with overwrite
    again = domain_store.get(upload.id, "alice")
    assert again.offset() == len(b"uploaded bytes")
    again.overwrite = True
    domain_store.save(again)
    monkeypatch.setattr(storage, "check_target", real_check)
    domain_store.finish(domain_store.get(upload.id, "alice"))
    assert target.read_bytes() == b"uploaded bytes"
    assert os.stat(target).st_ino == staged_inode


def test_a_name_created_during_the_upload_is_a_conflict_and_the_upload_stays(domains, domain_store):
    upload = staged_upload(domains, domain_store, b"uploaded bytes")
    target = domains.local_path("private", "alice") / "b.bin"
    target.write_bytes(b"created meanwhile")
    with pytest.raises(Conflict) as refused:
        domain_store.finish(upload)
    assert refused.value.status == 409
    assert target.read_bytes() == b"created meanwhile"
    assert domain_store.get(upload.id, "alice").offset() == len(b"uploaded bytes")


def test_place_file_without_overwrite_never_replaces(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    source.write_bytes(b"new")
    target.write_bytes(b"old")
    with pytest.raises(Conflict):
        place_file(source, target, overwrite=False)
    assert (source.read_bytes(), target.read_bytes()) == (b"new", b"old")
    inode = os.stat(source).st_ino
    place_file(source, target, overwrite=True)
    assert target.read_bytes() == b"new" and os.stat(target).st_ino == inode and not source.exists()


# --- the staged file's writer: synced behind the writes ------------------------------------


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_staged_file_is_synced_behind_the_writes_and_whole_at_the_end(tmp_path):
    path = tmp_path / "staged"
    path.touch()
    before = open_descriptors()
    writer = storage.DescriptorWriter(path)
    piece = os.urandom(storage.SYNC_BEHIND // 4)
    for index in range(3):
        assert writer.write(piece, index * len(piece)) == len(piece)
    assert writer.syncing is None  # not yet SYNC_BEHIND bytes
    writer.write(piece, 3 * len(piece))
    running = writer.syncing
    assert running is not None  # started behind the writes, not waited for
    writer.write(piece, 4 * len(piece))
    assert writer.syncing is running or running.done()
    writer.sync()
    assert running.done() and writer.syncing is None
    writer.close()
    assert path.read_bytes() == piece * 5
    assert open_descriptors() == before


def test_a_writer_closed_while_its_sync_runs_closes_the_file_after_it(tmp_path, monkeypatch):
    import threading

    path = tmp_path / "staged"
    path.touch()
    before = open_descriptors()
    release, started = threading.Event(), threading.Event()
    real_fdatasync = os.fdatasync

    def slow_fdatasync(descriptor):
        started.set()
        release.wait(10)
        real_fdatasync(descriptor)  # the descriptor is still open here

    monkeypatch.setattr(os, "fdatasync", slow_fdatasync)
    writer = storage.DescriptorWriter(path)
    writer.write(b"x" * storage.SYNC_BEHIND, 0)
    running = writer.syncing
    assert started.wait(10)
    writer.close()  # returns at once: the sync still holds the descriptor
    assert open_descriptors() == before + 1
    release.set()
    running.result(timeout=10)
    deadline = time.monotonic() + 10
    while open_descriptors() != before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert open_descriptors() == before


def test_a_failed_sync_behind_the_writes_fails_the_final_sync(tmp_path, monkeypatch):
    path = tmp_path / "staged"
    path.touch()

    # a disk that fails cannot be had here: its fdatasync is stood in for
    def failing_fdatasync(descriptor):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing_fdatasync)
    writer = storage.DescriptorWriter(path)
    writer.write(b"x" * storage.SYNC_BEHIND, 0)
    writer.syncing.exception(timeout=10)
    # a later fsync may succeed although those pages never reached the disk
    with pytest.raises(OSError, match="Input/output error"):
        writer.sync()
    writer.close()
