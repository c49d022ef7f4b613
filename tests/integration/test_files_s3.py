"""What only an S3 file domain does, on the tests' real S3 server (moto on
127.0.0.1): names taken between the check and the write are refused by the
server itself, large objects are copied in parts, folders are deleted in
batches, and a server that refuses or does not answer is a clear 502."""

from __future__ import annotations

import os
from pathlib import PurePosixPath

import pytest

from karvdash_hub.core.errors import KarvdashError
from karvdash_hub.files import s3storage
from karvdash_hub.files.domains import FileDomains
from karvdash_hub.files.operations import BadPath, Conflict, NotFound
from karvdash_hub.files.s3storage import S3Storage
from karvdash_hub.files.storage import open_storage
from karvdash_hub.files.uploads import UploadStore
from karvdash_hub.hub.service import free_loopback_port
from tests.s3files import ACCESS_KEY, SECRET_KEY, S3Path

pytestmark = pytest.mark.integration
MIB = 1024**2


def domains_of(endpoint: str, bucket: str, root) -> FileDomains:
    return FileDomains(scheme="minio", server=endpoint.split("://", 1)[1], export_path=f"/{bucket}/deploy",
                       root=root, region="us-east-1")


@pytest.fixture
def storage(s3_server, tmp_path) -> S3Storage:
    bucket = s3_server.new_bucket()
    return S3Storage(domains_of(s3_server.endpoint, bucket, tmp_path), access_key=ACCESS_KEY, secret_key=SECRET_KEY)


@pytest.fixture
def home(storage) -> S3Path:
    return S3Path(storage.client, storage.bucket, "deploy/private/alice")


@pytest.fixture
def uploads(storage, tmp_path) -> UploadStore:
    store = UploadStore(tmp_path / "uploads" / "staged", expiry=3600, storage=storage)
    store.ensure_folder()
    return store


def test_the_storage_of_a_minio_url_is_s3(s3_server, tmp_path):
    from traitlets.config import Config

    from karvdash_hub.core.settings import load_settings

    settings = load_settings(config=Config({"KarvdashConfig": {
        "stateDir": str(tmp_path), "filesURL": f"minio://{s3_server.endpoint.split('://')[1]}/bucket-1",
        "filesS3AccessKey": ACCESS_KEY, "filesS3SecretKey": SECRET_KEY}}), environ={})
    assert isinstance(open_storage(FileDomains.from_settings(settings), settings), S3Storage)


def test_a_name_taken_after_the_check_is_refused_by_the_server(storage, home, uploads, monkeypatch):
    checked = storage._check_target

    def check_then_someone_writes(place, overwrite):
        checked(place, overwrite)
        storage.client.put_object(Bucket=storage.bucket, Key=place.key, Body=b"written meanwhile")

    for size in (10, s3storage.PART_SIZE + 10):  # a PutObject, then a multipart upload
        name = f"raced-{size}.bin"
        upload = uploads.start(owner="alice", domain="private", domain_user="alice", path=name, size=size,
                               overwrite=False)
        writer = uploads.writer(upload)
        writer.write(os.urandom(size), 0)
        writer.close()
        with monkeypatch.context() as patched:
            patched.setattr(storage, "_check_target", check_then_someone_writes)
            with pytest.raises(Conflict, match="already exists"):
                uploads.finish(upload)
        assert (home / name).read_bytes() == b"written meanwhile"
        # kept whole, to be placed again with overwrite
        again = uploads.get(upload.id, "alice")
        assert again.offset() == size and again.shipped == (s3storage.PART_SIZE if size > 10 else 0)
        again.overwrite = True
        uploads.save(again)
        entry = uploads.finish(again)
        assert entry["size"] == size and (home / name).stat().st_size == size
    assert home.multipart_uploads() == []


def test_a_new_folder_or_file_over_a_name_taken_meanwhile_is_refused(storage, home, monkeypatch):
    home.mkdir(parents=True)
    real_stat = storage.stat

    def stat_then_someone_writes(place):
        found = real_stat(place)
        if place.relative == PurePosixPath("late.txt"):
            storage.client.put_object(Bucket=storage.bucket, Key=place.key, Body=b"first")
        return found

    monkeypatch.setattr(storage, "stat", stat_then_someone_writes)
    with pytest.raises(Conflict):
        storage.create("alice", "private", "late.txt", "file")
    assert (home / "late.txt").read_bytes() == b"first"


def test_large_objects_move_by_a_multipart_copy(storage, home, monkeypatch):
    monkeypatch.setattr(s3storage, "MULTIPART_COPY", 6 * MIB)
    monkeypatch.setattr(s3storage, "COPY_PART", 5 * MIB)
    data = os.urandom(12 * MIB + 3)
    (home / "big.bin").write_bytes(data)
    (home / "small.bin").write_bytes(b"small")
    storage.create("alice", "private", "to", "folder")
    moved = storage.move("alice", "private", "big.bin", "shared", "big.bin", overwrite=False)
    assert (moved["domain"], moved["path"], moved["size"]) == ("shared", "big.bin", len(data))
    shared = S3Path(storage.client, storage.bucket, "deploy/shared")
    assert (shared / "big.bin").read_bytes() == data and not (home / "big.bin").exists()
    # copied in three parts (a multipart object's ETag counts its parts)
    etag = storage.client.head_object(Bucket=storage.bucket, Key="deploy/shared/big.bin")["ETag"]
    assert etag.strip('"').endswith("-3")
    storage.move("alice", "private", "small.bin", "private", "to/small.bin", overwrite=False)
    etag = storage.client.head_object(Bucket=storage.bucket, Key="deploy/private/alice/to/small.bin")["ETag"]
    assert "-" not in etag


def test_folders_are_deleted_in_batches(storage, home, monkeypatch):
    monkeypatch.setattr(s3storage, "DELETE_BATCH", 3)
    calls = []
    real = storage.client.delete_objects
    monkeypatch.setattr(storage.client, "delete_objects", lambda **kw: calls.append(kw) or real(**kw))
    for index in range(10):
        (home / "many" / f"{index}.txt").write_text(str(index))
    (home / "kept.txt").write_text("kept")
    assert storage.delete("alice", "private", "many") == "private/many"
    assert [len(call["Delete"]["Objects"]) for call in calls] == [3, 3, 3, 1]
    assert sorted(p.name for p in home.iterdir()) == ["kept.txt"]
    with pytest.raises(NotFound):
        storage.delete("alice", "private", "many")
    with pytest.raises(BadPath, match="top folder"):
        storage.delete("alice", "private", "")


def test_a_storage_that_refuses_or_does_not_answer_is_a_502(s3_server, storage, tmp_path):
    # moto takes any key: a bucket that does not exist stands for a refusal
    missing = S3Storage(domains_of(s3_server.endpoint, "no-such-bucket", tmp_path), access_key=ACCESS_KEY,
                        secret_key=SECRET_KEY)
    closed = S3Storage(domains_of(f"http://127.0.0.1:{free_loopback_port()}", "bucket-1", tmp_path),
                       access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    for broken in (missing, closed):
        with pytest.raises(KarvdashError) as refused:
            broken.describe("alice", "private", "x/y")
        assert refused.value.status == 502 and "file storage" in refused.value.message


def test_usage_adds_up_the_keys_below_the_private_folder(storage, home):
    (home / "a.bin").write_bytes(b"x" * 100)
    (home / "sub" / "b.bin").write_bytes(b"y" * 50)
    (home / "empty").mkdir(parents=True)
    S3Path(storage.client, storage.bucket, "deploy/private/alicette/c.bin").write_bytes(b"z" * 1000)
    assert storage.usage("alice").to_json() == {"bytes": 150, "files": 2, "complete": True}
    assert storage.usage("alice", max_entries=1).complete is False
    assert storage.usage("nobody").to_json() == {"bytes": 0, "files": 0, "complete": True}


def test_templates_and_image_archives_are_read_from_the_bucket(storage, home):
    (home / "t" / "web.template.yaml").write_text("kind: Template\n")
    (home / "app.tar").write_bytes(b"archive bytes")
    assert storage.read_text("alice", "private", "t/web.template.yaml", "a template", 1024) == "kind: Template\n"
    with pytest.raises(BadPath, match="at most 1 KiB"):
        (home / "big.template.yaml").write_bytes(b"x" * 2048)
        storage.read_text("alice", "private", "big.template.yaml", "a template", 1024)
    with pytest.raises(BadPath, match="is a folder"):
        storage.read_text("alice", "private", "t", "a template", 1024)
    with pytest.raises(NotFound):
        storage.read_text("alice", "private", "missing.yaml", "a template", 1024)
    with pytest.raises(BadPath):
        storage.read_text("alice", "private", "../bob/x.yaml", "a template", 1024)
    descriptor, display = storage.open_for_reading("alice", "private", "app.tar", "an image archive")
    try:
        assert display == "private/app.tar" and os.read(descriptor, 100) == b"archive bytes"
    finally:
        os.close(descriptor)
    # the copy lives only while it is open: nothing stays in the staging folder
    assert list(storage.domains.local_path("uploads").iterdir()) == []


def test_a_folder_is_never_replaced_by_what_it_holds(storage, home):
    (home / "a" / "b" / "keep.txt").write_text("keep")
    with pytest.raises(Conflict, match="cannot be replaced"):
        storage.move("alice", "private", "a/b", "private", "a", overwrite=True)
    assert (home / "a" / "b" / "keep.txt").read_text() == "keep"
    with pytest.raises(BadPath, match="into itself"):
        storage.move("alice", "private", "a", "private", "a/b/c", overwrite=True)
    # replacing another folder replaces it whole
    (home / "other" / "old.txt").write_text("old")
    moved = storage.move("alice", "private", "a", "private", "other", overwrite=True)
    assert moved["type"] == "folder"
    # (with a marker: the moved folder had none, being only the prefix of its files)
    assert sorted(home.keys()) == ["deploy/private/alice/other/", "deploy/private/alice/other/b/keep.txt"]
