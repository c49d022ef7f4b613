"""A traversal corpus against every file operation of the dashboard, through
the hub's proxy and straight at the service (as a pod in the cluster could):
each attempt is a clear 4xx and nothing anywhere on disk (or in the bucket,
for an S3 file domain) changes. A bucket has no symlinks: the attempts
through one run on folders only."""

from __future__ import annotations

import http.client
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.integration.dashboardsession import (
    SERVICE,
    ensure_user,
    files_root,
    is_s3,
    private_folder,
)
from tests.s3files import start_files_hub

pytestmark = pytest.mark.integration

# Raw URL text after /api/<files|download>/private/ (sent unnormalised).
URL_CORPUS = [
    "../bob/secret",
    "../../shared/keep.txt",
    "sub/../../bob/secret",
    "..%2fbob%2fsecret",
    "..%2Fbob%2Fsecret",
    "%2e%2e/bob/secret",
    "%2E%2E%2Fbob%2Fsecret",
    "%252e%252e/bob/secret",
    "%252e%252e%252fbob%252fsecret",
    "..%252fbob",
    "%2fetc%2fpasswd",
    "/etc/passwd",
    "//etc/passwd",
    "escape/secret",
    "escape/new",
    "a%00b",
    "a%2500b",
    "%c0%ae%c0%ae/bob/secret",
    "..%5c..%5cbob%5csecret",
    "a%0ab",
    "n" * 300,
    "/".join(["d" * 250] * 17),
]
# Percent-encoding that is not UTF-8: configurable-http-proxy cannot decode
# it, so the hub's proxy command refuses it with 400 before routing; the
# dashboard, asked directly, answers 400 too.
PROXY_MALFORMED = {"%c0%ae%c0%ae/bob/secret"}
# Paths that are fine as text but lead outside through a symlink when read.
READ_ONLY_CORPUS = ["escape", "escape/"]
# Text paths inside JSON bodies (move targets, upload targets).
BODY_CORPUS = [
    "../bob/secret",
    "../../shared/x",
    "/etc/passwd",
    "escape/x",
    "a\u0000b",
    "a\nb",
    "n" * 300,
    "..\\x",
    "%2e%2e/x",
    "%2e%2e%2fx",
    "./x",
    "a/./b",
]
DOMAIN_CORPUS = ["..%2fprivate%2fbob", "uploads", "uploads%2fstaged", "..", "%2e%2e", "private%2f..%2fbob"]


@pytest.fixture(scope="module")
def hub(request, tmp_path_factory, file_domain):
    running = start_files_hub(request, tmp_path_factory, file_domain)
    yield running
    running.stop()


def snapshot(*roots: Path) -> dict:
    seen = {}
    for root in roots:
        if hasattr(root, "keys"):  # an S3 prefix: its objects, their sizes and ETags
            seen.update({f"s3:{key}": state for key, state in root.keys().items()})
            continue
        for current, dirs, files in os.walk(root):
            for name in dirs + files:
                path = Path(current) / name
                info = os.lstat(path)
                seen[str(path)] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return seen


@pytest.fixture(scope="module")
def world(hub, tmp_path_factory):
    ensure_user(hub, "alice")
    ensure_user(hub, "bob")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret").write_text("outside secret")
    alice = private_folder(hub, "alice")
    bob = private_folder(hub, "bob")
    alice.mkdir(parents=True, exist_ok=True)
    bob.mkdir(parents=True, exist_ok=True)
    (alice / "sub").mkdir(exist_ok=True)
    (alice / "mine.txt").write_text("alice")
    (bob / "secret").write_text("bob's secret")
    (files_root(hub) / "shared" / "keep.txt").write_text("shared")
    if not is_s3(hub) and not (alice / "escape").is_symlink():
        os.symlink(outside, alice / "escape")
    token = hub.token_for("alice")
    service = hub.api("GET", "/services/karvdash", token=hub.token_for(hub.admin)).json()["url"]
    return {"token": token, "outside": outside, "targets": {"proxy": hub.url, "service": service}}


def raw_request(base: str, method: str, path: str, token: str, body: bytes | None = None, headers=None):
    """Send ``path`` byte for byte (no client-side normalisation)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    all_headers = {"Authorization": f"token {token}", **(headers or {})}
    if body is not None:
        all_headers["Content-Type"] = "application/json"
    connection.putrequest(method, path, skip_accept_encoding=True)
    for key, value in all_headers.items():
        connection.putheader(key, value)
    if body is not None:
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def check_refused(target: str, status: int, data: bytes, what: str) -> None:
    assert 400 <= status < 500, f"{what}: {status} {data[:200]!r}"
    if target == "service" and data:
        body = json.loads(data)
        assert body["status"] == status and body["message"], what


def roots_of(hub, world) -> tuple:
    """What must not change: the file domains (and the local staging folder
    of an S3 domain) and the folder outside them."""
    roots = (files_root(hub), world["outside"])
    return roots + ((Path(hub.state_dir) / "files",) if is_s3(hub) else ())


URL_OPERATIONS = [
    ("GET", "files", None),
    ("POST", "files", {"type": "folder"}),
    ("PATCH", "files", {"path": "moved"}),
    ("DELETE", "files", None),
    ("GET", "download", None),
    ("HEAD", "download", None),
]


@pytest.mark.parametrize("target", ["proxy", "service"])
def test_traversal_in_urls_is_refused_and_touches_nothing(hub, world, target):
    roots = roots_of(hub, world)
    before = snapshot(*roots)
    base = world["targets"][target]
    tried = 0
    for method, kind, body in URL_OPERATIONS:
        corpus = URL_CORPUS + (READ_ONLY_CORPUS if method in ("GET", "HEAD") else [])
        for bad in corpus:
            path = f"{SERVICE}api/{kind}/private/{bad}"
            data = json.dumps(body).encode() if body is not None else None
            status, answer = raw_request(base, method, path, world["token"], data)
            tried += 1
            if target == "proxy" and bad in PROXY_MALFORMED:
                # the proxy refuses percent-encoding that is not UTF-8 before routing
                assert status == 400, status
                continue
            check_refused(target, status, answer if method != "HEAD" else b"", f"{method} {path[:120]}")
        for domain in DOMAIN_CORPUS:
            path = f"{SERVICE}api/{kind}/{domain}/secret"
            data = json.dumps(body).encode() if body is not None else None
            status, answer = raw_request(base, method, path, world["token"], data)
            check_refused(target, status, answer if method != "HEAD" else b"", f"{method} {path}")
    assert tried > 100
    assert snapshot(*roots) == before


@pytest.mark.parametrize("target", ["proxy", "service"])
def test_traversal_in_bodies_is_refused_and_touches_nothing(hub, world, target):
    roots = roots_of(hub, world)
    before = snapshot(*roots)
    base = world["targets"][target]
    for bad in BODY_CORPUS:
        for domain in ("private", "shared"):
            move = json.dumps({"path": bad, "domain": domain, "overwrite": True}).encode()
            status, answer = raw_request(base, "PATCH", f"{SERVICE}api/files/private/mine.txt", world["token"], move)
            check_refused(target, status, answer, f"move to {bad!r}")
            upload = json.dumps({"domain": domain, "path": bad, "size": 1, "overwrite": True}).encode()
            status, answer = raw_request(base, "POST", f"{SERVICE}api/uploads", world["token"], upload)
            check_refused(target, status, answer, f"upload to {bad!r}")
    for domain in ("../private/bob", "uploads", "private/bob", ""):
        move = json.dumps({"path": "x", "domain": domain}).encode()
        status, answer = raw_request(base, "PATCH", f"{SERVICE}api/files/private/mine.txt", world["token"], move)
        check_refused(target, status, answer, f"move to domain {domain!r}")
        upload = json.dumps({"domain": domain, "path": "x", "size": 1}).encode()
        status, answer = raw_request(base, "POST", f"{SERVICE}api/uploads", world["token"], upload)
        check_refused(target, status, answer, f"upload to domain {domain!r}")
    assert snapshot(*roots) == before


@pytest.mark.parametrize("target", ["proxy", "service"])
def test_acting_as_someone_else_without_being_admin_is_refused(hub, world, target):
    base = world["targets"][target]
    for who in ("bob", "../bob", "bob%2f..%2falice", "admin"):
        status, answer = raw_request(base, "GET", f"{SERVICE}api/files/private/?as={who}", world["token"])
        check_refused(target, status, answer, f"as={who}")
        assert b"bob's secret" not in answer


# a bucket has no symlinks
@pytest.mark.parametrize("file_domain", ["local"], indirect=True, scope="module")
def test_the_symlink_itself_can_be_listed_but_not_followed(hub, world):
    status, answer = raw_request(world["targets"]["service"], "GET", f"{SERVICE}api/files/private/", world["token"])
    assert status == 200
    entries = {e["name"]: e["type"] for e in json.loads(answer)["entries"]}
    assert entries["escape"] == "link"
    assert (world["outside"] / "secret").read_text() == "outside secret"
