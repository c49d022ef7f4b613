"""The dashboard's REST API on a real hub: every endpoint for the owner,
another user, an admin, nobody, and tokens without the scope; XSRF for
cookie logins; the OpenAPI document; pages behind the hub's login."""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlsplit
from dataclasses import dataclass

import pytest
import requests

from tests.integration.dashboardsession import (
    ACCESS,
    FILES_READ,
    FILES_WRITE,
    PASSWORD,
    DashboardAPI,
    browser_session,
    dashboard_url,
    ensure_user,
    files_root,
    private_folder,
)

pytestmark = pytest.mark.integration


@dataclass
class Actors:
    owner: DashboardAPI
    other: DashboardAPI
    admin: DashboardAPI
    anonymous: DashboardAPI
    read_only: DashboardAPI  # files:read, no files:write
    no_files: DashboardAPI  # the service, but no files scope
    no_access: DashboardAPI  # neither the service nor a files scope
    files_only: DashboardAPI  # asked for with files scopes only: the hub adds the service's access scope


@pytest.fixture(scope="module")
def actors(hub) -> Actors:
    ensure_user(hub, "alice")
    ensure_user(hub, "bob")
    return Actors(
        owner=DashboardAPI(hub, hub.token_for("alice")),
        other=DashboardAPI(hub, hub.token_for("bob")),
        admin=DashboardAPI(hub, hub.token_for(hub.admin)),
        anonymous=DashboardAPI(hub),
        read_only=DashboardAPI(hub, hub.token_for("alice", scopes=[ACCESS, FILES_READ])),
        no_files=DashboardAPI(hub, hub.token_for("alice", scopes=[ACCESS])),
        no_access=DashboardAPI(hub, hub.token_for("alice", scopes=["read:users:name!user=alice"])),
        files_only=DashboardAPI(hub, hub.token_for("alice", scopes=[FILES_READ, FILES_WRITE])),
    )


@dataclass
class Setup:
    """A folder with a file in alice's private domain, and an upload of hers."""

    folder: str
    file: str
    upload: str


@pytest.fixture
def setup(hub, actors) -> Setup:
    name = "t" + uuid.uuid4().hex[:8]
    folder = private_folder(hub, "alice") / name
    folder.mkdir(parents=True)
    (folder / "data.txt").write_text("hello")
    response = actors.owner("POST", "uploads", json={"domain": "private", "path": f"{name}/up.txt", "size": 3})
    assert response.status_code == 201, response.text
    return Setup(folder=name, file=f"{name}/data.txt", upload=response.json()["id"])


# operation -> (method, path, keyword arguments, status for the owner)
def operations(s: Setup) -> dict:
    return {
        "list": ("GET", f"files/private/{s.folder}", {}, 200),
        "mkdir": ("POST", f"files/private/{s.folder}/new", {"json": {"type": "folder"}}, 201),
        "move": ("PATCH", f"files/private/{s.file}", {"json": {"path": f"{s.folder}/moved.txt"}}, 200),
        "delete": ("DELETE", f"files/private/{s.file}", {}, 204),
        "download": ("GET", f"download/private/{s.file}", {}, 200),
        "start upload": ("POST", "uploads", {"json": {"domain": "private", "path": f"{s.folder}/new.txt", "size": 1}}, 201),
        "list uploads": ("GET", "uploads", {}, 200),
        "upload state": ("GET", f"uploads/{s.upload}", {}, 200),
        "send chunk": ("PUT", f"uploads/{s.upload}", {"data": b"abc", "headers": {"Upload-Offset": "0"}}, 201),
        "allow overwrite": ("PATCH", f"uploads/{s.upload}", {"json": {"overwrite": True}}, 200),
        "cancel upload": ("DELETE", f"uploads/{s.upload}", {}, 204),
    }


OPERATIONS = list(operations(Setup("f", "f/x", "u")))
READ_OPERATIONS = {"list", "download"}


def call(api: DashboardAPI, s: Setup, operation: str, query: dict | None = None) -> requests.Response:
    method, path, kwargs, _ = operations(s)[operation]
    return api(method, path, params=query, **kwargs)


def assert_error(response: requests.Response, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["status"] == status and isinstance(body["message"], str) and body["message"]


def assert_untouched(hub, s: Setup) -> None:
    folder = private_folder(hub, "alice") / s.folder
    assert sorted(p.name for p in folder.iterdir()) == ["data.txt"]
    assert (folder / "data.txt").read_text() == "hello"
    staged = files_root(hub) / "uploads" / "staged" / f"{s.upload}.part"
    assert staged.exists() and staged.stat().st_size == 0


@pytest.mark.parametrize("operation", OPERATIONS)
def test_owner(hub, actors, setup, operation):
    response = call(actors.owner, setup, operation)
    assert response.status_code == operations(setup)[operation][3], response.text
    folder = private_folder(hub, "alice") / setup.folder
    if operation == "mkdir":
        assert (folder / "new").is_dir()
    elif operation == "move":
        assert (folder / "moved.txt").read_text() == "hello" and not (folder / "data.txt").exists()
    elif operation == "delete":
        assert not (folder / "data.txt").exists()
    elif operation == "download":
        assert response.content == b"hello"
    elif operation == "list":
        assert [e["name"] for e in response.json()["entries"]] == ["data.txt"]
    elif operation == "list uploads":
        assert setup.upload in [u["id"] for u in response.json()["uploads"]]
    elif operation == "send chunk":
        assert (folder / "up.txt").read_bytes() == b"abc"
        assert response.json()["complete"] is True
    elif operation == "cancel upload":
        assert actors.owner("GET", f"uploads/{setup.upload}").status_code == 404


@pytest.mark.parametrize("operation", OPERATIONS)
def test_another_user_reaches_nothing_of_the_owner(hub, actors, setup, operation):
    response = call(actors.other, setup, operation)
    if operation == "list uploads":
        assert response.status_code == 200
        assert setup.upload not in [u["id"] for u in response.json()["uploads"]]
    else:
        # bob's own private domain has no such folder; uploads are their sender's
        assert_error(response, 404)
    assert_error(call(actors.other, setup, operation, {"as": "alice"}), 403)
    assert_untouched(hub, setup)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_admin_reaches_a_users_files_only_by_acting_as_them(hub, actors, setup, operation):
    if operation == "list uploads":
        response = call(actors.admin, setup, operation)
        assert setup.upload not in [u["id"] for u in response.json()["uploads"]]
        response = call(actors.admin, setup, operation, {"as": "alice"})
        assert setup.upload in [u["id"] for u in response.json()["uploads"]]
        return
    # uploads too are the acting user's: the admin's own have no such one
    assert_error(call(actors.admin, setup, operation), 404)
    assert_untouched(hub, setup)
    response = call(actors.admin, setup, operation, {"as": "alice"})
    assert response.status_code == operations(setup)[operation][3], response.text
    assert "admin acts as alice" in hub.log()


def test_admin_acting_as_nobody_is_refused(actors, setup):
    assert_error(actors.admin("GET", "files/private/", params={"as": "nosuchuser"}), 404)
    assert_error(actors.admin("GET", "files/private/", params={"as": "../alice"}), 404)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_anonymous(hub, actors, setup, operation):
    assert_error(call(actors.anonymous, setup, operation), 401)
    assert_untouched(hub, setup)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_token_without_the_scope(hub, actors, setup, operation):
    assert_error(call(actors.no_files, setup, operation), 403)
    assert_error(call(actors.no_access, setup, operation), 403)
    read_only = call(actors.read_only, setup, operation)
    if operation in READ_OPERATIONS:
        assert read_only.status_code == 200
    else:
        assert_error(read_only, 403)
        assert "custom:karvdash:files:write" in read_only.json()["message"]
    assert_untouched(hub, setup)


def test_a_token_asked_for_with_files_scopes_only_reaches_the_dashboard(actors):
    assert actors.files_only("GET", "files/private/").status_code == 200


def test_shared_domain_is_shared(hub, actors):
    name = "s" + uuid.uuid4().hex[:8]
    assert actors.owner("POST", f"files/shared/{name}", json={"type": "folder"}).status_code == 201
    listing = actors.other("GET", "files/shared/")
    assert name in [e["name"] for e in listing.json()["entries"]]
    assert actors.other("DELETE", f"files/shared/{name}").status_code == 204
    assert not (files_root(hub) / "shared" / name).exists()


def test_existing_names_conflict_unless_overwrite(hub, actors, setup):
    folder = private_folder(hub, "alice") / setup.folder
    (folder / "other.txt").write_text("other")
    move = actors.owner("PATCH", f"files/private/{setup.file}", json={"path": f"{setup.folder}/other.txt"})
    assert_error(move, 409)
    assert (folder / "other.txt").read_text() == "other"
    assert_error(actors.owner("POST", f"files/private/{setup.file}", json={"type": "folder"}), 409)
    start = actors.owner("POST", "uploads", json={"domain": "private", "path": setup.file, "size": 1})
    assert_error(start, 409)
    move = actors.owner(
        "PATCH", f"files/private/{setup.file}", json={"path": f"{setup.folder}/other.txt", "overwrite": True}
    )
    assert move.status_code == 200 and (folder / "other.txt").read_text() == "hello"


def test_move_across_domains(hub, actors, setup):
    target = "m" + uuid.uuid4().hex[:8]
    response = actors.owner("PATCH", f"files/private/{setup.file}", json={"domain": "shared", "path": target})
    assert response.status_code == 200
    assert response.json() == {**response.json(), "domain": "shared", "path": target, "type": "file", "size": 5}
    assert (files_root(hub) / "shared" / target).read_text() == "hello"


def test_bad_bodies_are_400(actors, setup):
    assert_error(actors.owner("POST", f"files/private/{setup.folder}/x", data=b"{not json"), 400)
    assert_error(actors.owner("POST", f"files/private/{setup.folder}/x", json={"type": "link"}), 400)
    assert_error(actors.owner("PATCH", f"files/private/{setup.file}", json={"path": 5}), 400)
    assert_error(actors.owner("PATCH", f"files/private/{setup.file}", json={"path": "x", "overwrite": "yes"}), 400)
    assert_error(actors.owner("POST", "uploads", json={"domain": "private", "path": "x", "size": -1}), 400)
    assert_error(actors.owner("POST", "uploads", json={"domain": "private", "path": "", "size": 1}), 400)
    assert_error(actors.owner("GET", "files/nodomain/"), 404)
    assert_error(actors.owner("DELETE", "files/private/"), 400)


def test_download_ranges(hub, actors, setup):
    path = f"download/private/{setup.file}"
    whole = actors.owner("GET", path)
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Disposition"].startswith('attachment; filename="data.txt"')
    part = actors.owner("GET", path, headers={"Range": "bytes=1-3"})
    assert (part.status_code, part.content, part.headers["Content-Range"]) == (206, b"ell", "bytes 1-3/5")
    tail = actors.owner("GET", path, headers={"Range": "bytes=-2"})
    assert tail.content == b"lo"
    stale = actors.owner("GET", path, headers={"Range": "bytes=1-3", "If-Range": '"other"'})
    assert (stale.status_code, stale.content) == (200, b"hello")
    assert_error(actors.owner("GET", path, headers={"Range": "bytes=10-"}), 416)
    head = actors.owner("HEAD", path)
    assert (head.status_code, head.headers["Content-Length"], head.content) == (200, "5", b"")


def test_a_large_download_is_sent_by_the_kernel_byte_for_byte_ranges_included(hub, actors, setup):
    import hashlib
    import os

    # from 16 MiB up the dashboard sends with sendfile and closes the
    # connection after it (its only outward sign: "Connection: close",
    # which the proxy replaces with its own, so asked here at its own port)
    data = os.urandom(40 * 1024 * 1024 + 7)
    (private_folder(hub, "alice") / setup.folder / "big.bin").write_bytes(data)
    service = hub.api("GET", "/services/karvdash", token=hub.token_for(hub.admin)).json()["url"].rstrip("/")
    direct = f"{service}/services/karvdash/api/download/private/{setup.folder}/big.bin"
    headers = {"Authorization": f"token {hub.token_for('alice')}"}
    whole = requests.get(direct, headers=headers, timeout=120)
    assert (whole.status_code, whole.headers["Content-Length"], whole.headers["Connection"]) == (
        200, str(len(data)), "close")
    assert hashlib.sha256(whole.content).digest() == hashlib.sha256(data).digest()
    # a range long enough for the kernel, and one short enough for the usual path
    long_range = requests.get(direct, headers={**headers, "Range": "bytes=1000-20000000"}, timeout=120)
    assert (long_range.status_code, long_range.headers["Content-Range"], long_range.headers["Connection"]) == (
        206, f"bytes 1000-20000000/{len(data)}", "close")
    assert long_range.content == data[1000:20000001]
    short_range = requests.get(direct, headers={**headers, "Range": "bytes=-100"}, timeout=120)
    assert (short_range.status_code, short_range.content) == (206, data[-100:])
    assert short_range.headers.get("Connection") != "close"
    # through the proxy, as a browser gets it; and a client that hangs up
    # half way leaves the dashboard serving
    through = actors.owner("GET", f"download/private/{setup.folder}/big.bin", stream=True)
    assert next(through.iter_content(1024 * 1024)) == data[: 1024 * 1024]
    through.close()
    again = actors.owner("GET", f"download/private/{setup.folder}/big.bin")
    assert (again.status_code, len(again.content), again.content[-5:]) == (200, len(data), data[-5:])
    head = requests.head(direct, headers=headers, timeout=60)
    assert (head.status_code, head.headers["Content-Length"], head.content) == (200, str(len(data)), b"")


def test_a_large_upload_chunk_is_received_by_the_kernel_and_answered_as_any(hub, actors, setup):
    import os
    import socket

    # from 4 MiB up a chunk goes from the socket to the staged file by splice,
    # on a connection closed after the answer (asked at the dashboard's own
    # port, as the proxy replaces "Connection" with its own)
    data = os.urandom(2 * 8 * 1024 * 1024 + 3)
    start = actors.owner("POST", "uploads", json={"domain": "private", "path": f"{setup.folder}/k.bin", "size": len(data)})
    upload = start.json()["id"]
    service = hub.api("GET", "/services/karvdash", token=hub.token_for(hub.admin)).json()["url"].rstrip("/")
    direct = f"{service}/services/karvdash/api/uploads/{upload}"
    headers = {"Authorization": f"token {hub.token_for('alice')}"}
    small = requests.put(direct, data=data[:3], headers={**headers, "Upload-Offset": "0"}, timeout=60)
    assert (small.status_code, small.json()["offset"]) == (200, 3) and small.headers.get("Connection") != "close"

    # a client that waits for "100 Continue" before its body (curl does, from 1 MiB)
    parts = urlsplit(service)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as s:
        s.sendall((f"PUT {urlsplit(direct).path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                   f"Authorization: token {hub.token_for('alice')}\r\nUpload-Offset: 3\r\n"
                   f"Content-Length: {8 * 1024 * 1024}\r\nExpect: 100-continue\r\n\r\n").encode())
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(data[3:3 + 8 * 1024 * 1024])
        answer = b""
        while piece := s.recv(65536):
            answer += piece
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    fields = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines[1:])}
    assert lines[0] == "HTTP/1.1 200 OK"
    assert (fields["content-type"], fields["cache-control"], fields["connection"]) == (
        "application/json; charset=UTF-8", "no-store", "close")
    assert int(fields["content-length"]) == len(body)
    assert json.loads(body) == {**small.json(), "offset": 3 + 8 * 1024 * 1024}

    # refusals before the body are answered as always; the last chunk, through the proxy
    assert_error(requests.put(direct, data=data[:5 * 1024 * 1024], headers={**headers, "Upload-Offset": "3"},
                              timeout=60), 409)
    last = actors.owner("PUT", f"uploads/{upload}", data=data[3 + 8 * 1024 * 1024:],
                        headers={"Upload-Offset": str(3 + 8 * 1024 * 1024)})
    assert (last.status_code, last.json()["complete"], last.json()["entry"]["size"]) == (201, True, len(data))
    assert (private_folder(hub, "alice") / setup.folder / "k.bin").read_bytes() == data


def test_folder_downloads_as_zip(actors, setup):
    import io
    import zipfile

    response = actors.owner("GET", f"download/private/{setup.folder}")
    assert response.headers["Content-Type"] == "application/zip"
    # made while it is sent (files may go meanwhile): no length up front
    assert "Content-Length" not in response.headers
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.namelist() == [f"{setup.folder}/", f"{setup.folder}/data.txt"]
        assert archive.read(f"{setup.folder}/data.txt") == b"hello"


def test_upload_chunks_resume_at_the_offset_the_server_has(hub, actors, setup):
    start = actors.owner("POST", "uploads", json={"domain": "private", "path": f"{setup.folder}/c.bin", "size": 10})
    upload = start.json()["id"]
    first = actors.owner("PUT", f"uploads/{upload}", data=b"0123", headers={"Upload-Offset": "0"})
    assert (first.status_code, first.json()["offset"], first.json()["complete"]) == (200, 4, False)
    wrong = actors.owner("PUT", f"uploads/{upload}", data=b"xx", headers={"Upload-Offset": "0"})
    assert_error(wrong, 409)
    assert wrong.json()["offset"] == 4
    too_much = actors.owner("PUT", f"uploads/{upload}", data=b"x" * 7, headers={"Upload-Offset": "4"})
    assert_error(too_much, 413)
    assert not (private_folder(hub, "alice") / setup.folder / "c.bin").exists()
    assert actors.owner("GET", f"uploads/{upload}").json()["offset"] == 4
    last = actors.owner("PUT", f"uploads/{upload}", data=b"456789", headers={"Upload-Offset": "4"})
    assert (last.status_code, last.json()["entry"]["size"]) == (201, 10)
    assert (private_folder(hub, "alice") / setup.folder / "c.bin").read_bytes() == b"0123456789"


def test_a_name_taken_during_an_upload_waits_for_overwrite(hub, actors, setup):
    folder = private_folder(hub, "alice") / setup.folder
    start = actors.owner("POST", "uploads", json={"domain": "private", "path": f"{setup.folder}/late.txt", "size": 2})
    upload = start.json()["id"]
    (folder / "late.txt").write_text("first")
    taken = actors.owner("PUT", f"uploads/{upload}", data=b"ok", headers={"Upload-Offset": "0"})
    assert_error(taken, 409)
    assert (folder / "late.txt").read_text() == "first"
    assert actors.owner("PATCH", f"uploads/{upload}", json={"overwrite": True}).status_code == 200
    done = actors.owner("PUT", f"uploads/{upload}", data=b"", headers={"Upload-Offset": "2"})
    assert done.status_code == 201
    assert (folder / "late.txt").read_text() == "ok"


def test_cookie_writes_need_the_xsrf_token(hub, actors, setup):
    session = browser_session(hub, "alice", PASSWORD)
    api = DashboardAPI(hub, session=session)
    assert api("GET", f"files/private/{setup.folder}").status_code == 200
    xsrf = session.headers.pop("X-XSRFToken")
    refused = api("POST", f"files/private/{setup.folder}/x", json={"type": "folder"})
    assert_error(refused, 403)
    assert "XSRF" in refused.json()["message"]
    assert not (private_folder(hub, "alice") / setup.folder / "x").exists()
    session.headers["X-XSRFToken"] = xsrf
    assert api("POST", f"files/private/{setup.folder}/x", json={"type": "folder"}).status_code == 201


def test_whoami_and_openapi(hub, actors):
    me = actors.read_only("GET", "").json()
    assert (me["user"], me["admin"], me["scopes"]) == ("alice", False, [FILES_READ])
    assert actors.admin("GET", "").json()["admin"] is True
    document = actors.anonymous("GET", "openapi.json")
    assert document.status_code == 200
    assert "/files/{domain}/{path}" in document.json()["paths"]


def test_pages_send_anonymous_people_to_the_hub_login(hub):
    response = requests.get(dashboard_url(hub, "files/private/"), allow_redirects=False, timeout=30)
    assert response.status_code == 302
    assert "/hub/api/oauth2/authorize" in response.headers["Location"]
    assert "client_id=service-karvdash" in response.headers["Location"]


def test_pages_for_a_logged_in_user(hub, actors):
    session = browser_session(hub, "alice", PASSWORD)
    page = session.get(dashboard_url(hub, "files/private/"), timeout=30)
    assert 'id="files-table"' in page.text and 'id="nav-files"' in page.text
    docs = session.get(dashboard_url(hub, "docs/"), timeout=30)
    assert docs.status_code == 200 and "<h1>User guide</h1>" in docs.text
    api_docs = session.get(dashboard_url(hub, "docs/api"), timeout=30)
    assert 'id="endpoint-table"' in api_docs.text and "/uploads/{id}" in api_docs.text
    missing = session.get(dashboard_url(hub, "files/private/no/such/folder"), timeout=30)
    assert missing.status_code == 404 and 'id="karvdash-error"' in missing.text
    others = session.get(dashboard_url(hub, "files/private/"), params={"as": "bob"}, timeout=30)
    assert others.status_code == 403


def test_a_file_page_address_sends_to_its_download_with_every_name_encoded(hub, actors, setup):
    (private_folder(hub, "alice") / setup.folder / "a #1?.txt").write_text("odd")
    session = browser_session(hub, "alice", PASSWORD)
    address = dashboard_url(hub, f"files/private/{setup.folder}/a%20%231%3F.txt")
    sent = session.get(address, allow_redirects=False, timeout=30)
    assert (sent.status_code, sent.headers["Location"]) == (
        302, f"/services/karvdash/api/download/private/{setup.folder}/a%20%231%3F.txt")
    assert session.get(hub.url + sent.headers["Location"], timeout=30).content == b"odd"
    admin = browser_session(hub, hub.admin, hub.admin_password)
    acting = admin.get(address, params={"as": "alice"}, allow_redirects=False, timeout=30)
    assert acting.headers["Location"] == f"/services/karvdash/api/download/private/{setup.folder}/a%20%231%3F.txt?as=alice"
    assert admin.get(hub.url + acting.headers["Location"], timeout=30).content == b"odd"
