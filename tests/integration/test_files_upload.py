"""Big and broken uploads on a real hub: a file over 1 GiB goes up and
comes back with the dashboard's peak memory (VmHWM) not growing with the
file; an upload cut off midway shows nothing and resumes; abandoned
uploads are cleaned up by the service on its own; on folders and on an S3
file domain (where the bytes leave in the parts of a multipart upload while
they arrive)."""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import time
from urllib.parse import urlsplit

import pytest

from tests.integration.dashboardsession import (
    SERVICE,
    DashboardAPI,
    dashboard_pid,
    ensure_user,
    is_s3,
    peak_rss_kib,
    private_folder,
    staging_folder,
)
from tests.s3files import start_files_hub

pytestmark = pytest.mark.integration

GIB = 1024**3
MIB = 1024**2
LARGE = GIB + 3 * MIB + 7
CHUNK = 64 * MIB
# A service that buffered a chunk (or the file) would grow by at least CHUNK.
MEMORY_ALLOWANCE_KIB = 32 * 1024


@pytest.fixture(scope="module")
def hub(request, tmp_path_factory, file_domain):
    # a short expiry, so the service's own clean-up can be watched (every 15 s)
    running = start_files_hub(request, tmp_path_factory, file_domain, env={"KARVDASH_UPLOAD_EXPIRY": "60"})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def alice(hub):
    ensure_user(hub, "alice")
    return DashboardAPI(hub, hub.token_for("alice"))


def write_source(path, size: int) -> str:
    """A file of ``size`` bytes where every MiB differs; returns its sha256."""
    block = bytearray(os.urandom(MIB))
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        written = 0
        index = 0
        while written < size:
            struct.pack_into("<Q", block, 0, index)
            piece = bytes(block[: min(MIB, size - written)])
            f.write(piece)
            digest.update(piece)
            written += len(piece)
            index += 1
    return digest.hexdigest()


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while piece := f.read(8 * MIB):
            digest.update(piece)
    return digest.hexdigest()


def upload(api: DashboardAPI, source, target: str, chunk: int = CHUNK, on_chunk=None) -> dict:
    size = os.path.getsize(source)
    started = api("POST", "uploads", json={"domain": "private", "path": target, "size": size})
    assert started.status_code == 201, started.text
    upload_id, offset = started.json()["id"], 0
    with open(source, "rb") as f:
        while True:
            data = f.read(chunk)
            answer = api("PUT", f"uploads/{upload_id}", data=data, headers={"Upload-Offset": str(offset)})
            assert answer.status_code in (200, 201), answer.text
            offset = answer.json()["offset"]
            if answer.json()["complete"]:
                return answer.json()
            if on_chunk:
                on_chunk(offset)


def test_a_file_over_a_gib_goes_up_and_down_in_constant_memory(hub, alice, tmp_path):
    pid = dashboard_pid(hub)
    # warm up: the first requests import and allocate what every request
    # needs (a bucket's multipart upload too: more than two parts)
    small = tmp_path / "small.bin"
    write_source(small, 20 * MIB)
    upload(alice, small, "warm-up.bin", chunk=4 * MIB)
    with alice("GET", "download/private/warm-up.bin", stream=True) as response:
        for _ in response.iter_content(MIB):
            pass
    baseline = peak_rss_kib(pid)

    source = tmp_path / "large.bin"
    expected = write_source(source, LARGE)
    target = private_folder(hub, "alice") / "large.bin"

    def nothing_visible_yet(offset):
        assert not target.exists()
        names = [e["name"] for e in alice("GET", "files/private/").json()["entries"]]
        assert "large.bin" not in names

    done = upload(alice, source, "large.bin", on_chunk=nothing_visible_yet)
    assert done["entry"]["size"] == LARGE
    after_upload = peak_rss_kib(pid)
    source.unlink()  # room for the download
    assert sha256_of(target) == expected

    digest = hashlib.sha256()
    received = 0
    with alice("GET", "download/private/large.bin", stream=True) as response:
        assert int(response.headers["Content-Length"]) == LARGE
        for piece in response.iter_content(MIB):
            digest.update(piece)
            received += len(piece)
    assert (received, digest.hexdigest()) == (LARGE, expected)
    after_download = peak_rss_kib(pid)

    print(f"dashboard VmHWM: {baseline} KiB before, {after_upload} after upload, {after_download} after download")
    assert after_upload - baseline < MEMORY_ALLOWANCE_KIB
    assert after_download - baseline < MEMORY_ALLOWANCE_KIB
    target.unlink()


def send_partial_chunk(hub, upload_id: str, token: str, offset: int, claimed: int, data: bytes) -> None:
    """A PUT that announces ``claimed`` bytes, sends ``data`` and hangs up."""
    parts = urlsplit(hub.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as s:
        head = (
            f"PUT {SERVICE}api/uploads/{upload_id} HTTP/1.1\r\n"
            f"Host: {parts.netloc}\r\nAuthorization: token {token}\r\n"
            f"Upload-Offset: {offset}\r\nContent-Length: {claimed}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        s.sendall(head.encode() + data)
        time.sleep(1)


# a chunk announced as 10 MiB is received by the kernel (splice), one of 3.5 MiB by Tornado
@pytest.mark.parametrize("claimed", [10 * MIB, 3 * MIB + MIB // 2])
def test_an_interrupted_upload_shows_nothing_and_resumes(hub, alice, tmp_path, claimed):
    name = f"cut-{claimed}.bin"
    source = tmp_path / name
    size = 10 * MIB
    expected = write_source(source, size)
    content = source.read_bytes()
    started = alice("POST", "uploads", json={"domain": "private", "path": name, "size": size}).json()
    token = alice.session.headers["Authorization"].split()[1]
    send_partial_chunk(hub, started["id"], token, 0, claimed, content[: 3 * MIB + 12345])

    # what reached the disk stays staged; nothing is at the target
    deadline = time.monotonic() + 20
    while True:
        offset = alice("GET", f"uploads/{started['id']}").json()["offset"]
        if offset >= 2 * MIB or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert 2 * MIB <= offset <= 3 * MIB + 12345
    assert not (private_folder(hub, "alice") / name).exists()
    assert name not in [e["name"] for e in alice("GET", "files/private/").json()["entries"]]
    staged = staging_folder(hub) / f"{started['id']}.part"
    assert staged.stat().st_size == offset

    rest = alice("PUT", f"uploads/{started['id']}", data=content[offset:], headers={"Upload-Offset": str(offset)})
    assert rest.status_code == 201 and rest.json()["complete"] is True
    assert sha256_of(private_folder(hub, "alice") / name) == expected
    assert not staged.exists()


def test_abandoned_uploads_are_removed_by_the_service(hub, alice):
    started = alice("POST", "uploads", json={"domain": "private", "path": "gone.bin", "size": 100}).json()
    assert alice("PUT", f"uploads/{started['id']}", data=b"x" * 10, headers={"Upload-Offset": "0"}).status_code == 200
    staged = staging_folder(hub)
    old = time.time() - 3600
    for suffix in ("part", "json"):
        os.utime(staged / f"{started['id']}.{suffix}", (old, old))
    deadline = time.monotonic() + 40
    while (staged / f"{started['id']}.part").exists() and time.monotonic() < deadline:
        time.sleep(1)
    assert not (staged / f"{started['id']}.part").exists()
    assert not (staged / f"{started['id']}.json").exists()
    assert alice("GET", f"uploads/{started['id']}").status_code == 404
    assert not (private_folder(hub, "alice") / "gone.bin").exists()


# a bucket has no renames: the next test is the one for S3
@pytest.mark.parametrize("file_domain", ["local"], indirect=True, scope="module")
def test_a_finished_upload_is_the_staged_file_moved_into_place(hub, alice):
    first, last = os.urandom(MIB), os.urandom(MIB // 2 + 3)
    size = len(first) + len(last)
    started = alice("POST", "uploads", json={"domain": "private", "path": "renamed.bin", "size": size}).json()
    staged = staging_folder(hub) / f"{started['id']}.part"
    target = private_folder(hub, "alice") / "renamed.bin"
    assert alice("PUT", f"uploads/{started['id']}", data=first, headers={"Upload-Offset": "0"}).status_code == 200
    assert not target.exists()
    staged_inode = staged.stat().st_ino
    done = alice("PUT", f"uploads/{started['id']}", data=last, headers={"Upload-Offset": str(len(first))})
    assert done.status_code == 201 and done.json()["complete"] is True, done.text
    assert target.read_bytes() == first + last
    assert target.stat().st_ino == staged_inode and not staged.exists()
    target.unlink()


def test_a_name_created_during_an_upload_is_kept_and_the_upload_retries_with_overwrite(hub, alice):
    first, last = os.urandom(MIB), os.urandom(MIB // 2 + 3)
    size = len(first) + len(last)
    started = alice("POST", "uploads", json={"domain": "private", "path": "raced.bin", "size": size}).json()
    staged = staging_folder(hub) / f"{started['id']}.part"
    target = private_folder(hub, "alice") / "raced.bin"
    answer = alice("PUT", f"uploads/{started['id']}", data=first, headers={"Upload-Offset": "0"})
    assert answer.status_code == 200 and answer.json()["complete"] is False
    assert not target.exists()
    staged_inode = None if is_s3(hub) else staged.stat().st_ino

    # someone else creates the name before the last chunk arrives
    target.write_bytes(b"created meanwhile")
    refused = alice("PUT", f"uploads/{started['id']}", data=last, headers={"Upload-Offset": str(len(first))})
    assert refused.status_code == 409, refused.text
    assert "raced.bin" in refused.json()["message"]
    assert target.read_bytes() == b"created meanwhile"
    kept = alice("GET", f"uploads/{started['id']}").json()
    assert (kept["offset"], kept["overwrite"]) == (size, False)

    assert alice("PATCH", f"uploads/{started['id']}", json={"overwrite": True}).status_code == 200
    done = alice("PUT", f"uploads/{started['id']}", data=b"", headers={"Upload-Offset": str(size)})
    assert done.status_code == 201 and done.json()["complete"] is True, done.text
    assert target.read_bytes() == first + last
    if staged_inode is not None:
        # placed by rename: the finished file is the staged one
        assert target.stat().st_ino == staged_inode
    assert not staged.exists()
    target.unlink()


# folders stage the whole file and rename it: see the test above
@pytest.mark.parametrize("file_domain", ["s3"], indirect=True, scope="module")
def test_an_upload_to_a_bucket_sends_its_parts_while_they_arrive(hub, alice):
    from karvdash_hub.files.s3storage import PART_SIZE

    data = os.urandom(2 * PART_SIZE + MIB + 5)
    started = alice("POST", "uploads", json={"domain": "private", "path": "parts.bin", "size": len(data)}).json()
    target = private_folder(hub, "alice") / "parts.bin"
    home = private_folder(hub, "alice")
    offset = 0
    for piece in (3 * MIB, 6 * MIB, 7 * MIB + MIB // 2):
        answer = alice("PUT", f"uploads/{started['id']}", data=data[offset:offset + piece],
                       headers={"Upload-Offset": str(offset)})
        assert answer.status_code == 200 and answer.json()["complete"] is False, answer.text
        offset += piece
    # two parts have left; only what follows them waits on the disk, and nothing shows yet
    assert [u["Key"] for u in home.multipart_uploads()] == [target.key]
    staged = staging_folder(hub) / f"{started['id']}.{2 * PART_SIZE}.part"
    assert staged.stat().st_size == offset - 2 * PART_SIZE
    assert not (staging_folder(hub) / f"{started['id']}.part").exists()
    assert not target.exists()
    assert alice("GET", f"uploads/{started['id']}").json()["offset"] == offset
    done = alice("PUT", f"uploads/{started['id']}", data=data[offset:], headers={"Upload-Offset": str(offset)})
    assert done.status_code == 201 and done.json()["entry"]["size"] == len(data), done.text
    assert target.read_bytes() == data
    assert home.multipart_uploads() == [] and not staged.exists()
    cancelled = alice("POST", "uploads", json={"domain": "private", "path": "dropped.bin", "size": len(data)}).json()
    alice("PUT", f"uploads/{cancelled['id']}", data=data[:PART_SIZE + 1], headers={"Upload-Offset": "0"})
    assert len(home.multipart_uploads()) == 1
    assert alice("DELETE", f"uploads/{cancelled['id']}").status_code == 204
    # a cancelled upload leaves no parts behind in the bucket
    assert home.multipart_uploads() == []
    target.unlink()


def test_an_upload_being_sent_is_not_changed_meanwhile(hub, alice):
    size = 4 * MIB
    started = alice("POST", "uploads", json={"domain": "private", "path": "busy.bin", "size": size}).json()
    token = alice.session.headers["Authorization"].split()[1]
    parts = urlsplit(hub.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as s:
        s.sendall((
            f"PUT {SERVICE}api/uploads/{started['id']} HTTP/1.1\r\n"
            f"Host: {parts.netloc}\r\nAuthorization: token {token}\r\n"
            f"Upload-Offset: 0\r\nContent-Length: {size}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode() + b"x" * MIB)
        deadline = time.monotonic() + 20
        while alice("GET", f"uploads/{started['id']}").json()["offset"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        # its record is the sender's while bytes arrive (a bucket's parts are written in it)
        refused = alice("PATCH", f"uploads/{started['id']}", json={"overwrite": True})
        assert refused.status_code == 409 and "sending this upload" in refused.json()["message"], refused.text
        assert alice("DELETE", f"uploads/{started['id']}").status_code == 409
    deadline = time.monotonic() + 20
    while alice("PATCH", f"uploads/{started['id']}", json={"overwrite": True}).status_code == 409:
        assert time.monotonic() < deadline, "the upload stayed busy after its sender hung up"
        time.sleep(0.2)
    assert alice("GET", f"uploads/{started['id']}").json()["overwrite"] is True
    assert alice("DELETE", f"uploads/{started['id']}").status_code == 204
