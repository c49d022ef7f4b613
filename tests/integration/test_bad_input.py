"""Odd and hostile input through the real proxy, hub and dashboard: names
in any script and names that show as others, bodies that are huge, deep or
unauthenticated, cookie requests without the XSRF token, folders changing
while they download, sign-up names that are not what they look like,
addresses that are not UTF-8, karvdashctl given the hub's address, and
pages after logging out. Every answer is a clear 4xx, never a 500, and
nothing is half done."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import unicodedata
import uuid
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from playwright.sync_api import expect

from tests.hubprocess import _xsrf_from
from tests.integration.dashboardsession import (
    PASSWORD,
    DashboardAPI,
    browser_session,
    dashboard_url,
    ensure_user,
    log_in_page,
    private_folder,
    service_pid,
)

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
KARVDASHCTL = str(Path(sys.executable).parent / "karvdashctl")


@pytest.fixture(scope="module")
def alice(hub) -> DashboardAPI:
    ensure_user(hub, "alice")
    ensure_user(hub, "bob")
    return DashboardAPI(hub, hub.token_for("alice"))


@pytest.fixture
def folder(hub, alice) -> str:
    name = "b" + uuid.uuid4().hex[:8]
    (private_folder(hub, "alice") / name).mkdir(parents=True)
    return name


def assert_error(response: requests.Response, status: int, words: str = "") -> dict:
    assert response.status_code == status, (response.status_code, response.text[:500])
    body = response.json()
    assert body["status"] == status and words in body["message"], body
    return body


# --- request bodies: refused before they are read -----------------------------------


def status_of(pid: int) -> dict:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def kib(pid: int, field: str) -> int:
    return int(status_of(pid)[field].split()[0])


class Zeros:
    """A request body of ``size`` zero bytes, handed out a piece at a time."""

    def __init__(self, size: int):
        self.size = self.left = size
        self.piece = bytes(256 * 1024)

    def __len__(self):
        return self.size

    def read(self, wanted: int = -1) -> bytes:
        count = min(self.left, len(self.piece) if wanted is None or wanted < 0 else min(wanted, len(self.piece)))
        self.left -= count
        return self.piece[:count]


def chunked_zeros(size: int):
    piece = bytes(MiB)
    for _ in range(size // MiB):
        yield piece


def test_huge_bodies_are_refused_without_being_held_in_memory(hub, alice, folder):
    """Three anonymous 200 MiB bodies at once, then one of a logged-in user
    that is no JSON an endpoint would take: 401s and a 413, and the
    dashboard's memory stays where it was (VmHWM, its peak, is reset
    first)."""
    pid = service_pid(hub)
    target = dashboard_url(hub, f"api/files/private/{folder}/x")
    assert requests.post(target, json={"type": "folder"}, timeout=30).status_code == 401  # warm
    rss_before = kib(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    answers = []

    def send(body, method="POST", url=target, headers=None):
        response = requests.request(method, url, data=body, headers=headers or {}, timeout=600)
        answers.append((response.status_code, response.json()))

    senders = [
        threading.Thread(target=send, args=(Zeros(200 * MiB),)),
        threading.Thread(target=send, args=(Zeros(200 * MiB), "PUT", dashboard_url(hub, "api/uploads/x"))),
        threading.Thread(target=send, args=(chunked_zeros(200 * MiB), "PATCH")),
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    assert sorted(status for status, _ in answers) == [401, 401, 401], answers
    assert all("authentication required" in body["message"] for _, body in answers)

    oversized = alice("POST", f"files/private/{folder}/x", data=Zeros(200 * MiB),
                      headers={"Content-Type": "application/json"})
    assert_error(oversized, 413, "too large")
    peak, rss_after = kib(pid, "VmHWM"), kib(pid, "VmRSS")
    print(f"dashboard VmRSS before {rss_before} KiB, peak while refusing {peak} KiB, after {rss_after} KiB")
    assert peak - rss_before < 50 * 1024, (rss_before, peak)
    assert not (private_folder(hub, "alice") / folder / "x").exists()
    # the dashboard still works, and small bodies still arrive
    assert alice("POST", f"files/private/{folder}/x", json={"type": "folder"}).status_code == 201


def test_a_json_body_over_the_limit_is_a_413(alice, folder):
    body = json.dumps({"type": "folder", "padding": "x" * (MiB + 1)}).encode()
    assert_error(alice("POST", f"files/private/{folder}/y", data=body), 413, "at most 1024 KiB")
    chunked = alice("POST", f"files/private/{folder}/y", data=iter([body[:MiB], body[MiB:]]))
    assert_error(chunked, 413, "at most 1024 KiB")


def test_deeply_nested_json_is_a_400(hub, alice, folder):
    deep = b"[" * 100_000 + b"]" * 100_000
    refused = assert_error(alice("POST", f"files/private/{folder}/n", data=deep), 400, "nested too deeply")
    assert refused["message"] == "the body is nested too deeply to be read as JSON"
    assert not (private_folder(hub, "alice") / folder / "n").exists()
    assert_error(alice("PATCH", f"files/private/{folder}", data=b'{"a":' * 50_000 + b"1" + b"}" * 50_000), 400)


# --- names ---------------------------------------------------------------------------

NAMES = ["数据", "Ελληνικά", "Данные", "été 100% #1?"]


@pytest.mark.parametrize("name", NAMES)
def test_new_folders_in_any_script(hub, alice, folder, name):
    made = alice("POST", f"files/private/{folder}/{quote(name)}", json={"type": "folder"})
    assert made.status_code == 201, made.text
    assert made.headers["Location"] == f"/services/karvdash/api/files/private/{folder}/{quote(name, safe='')}"
    assert made.json()["name"] == name
    assert (private_folder(hub, "alice") / folder / name).is_dir()
    # the address it gives leads to it
    assert requests.get(hub.url + made.headers["Location"], headers=alice.session.headers, timeout=30).json()["name"] == name
    assert_error(alice("POST", f"files/private/{folder}/{quote(name)}", json={"type": "folder"}), 409, "already exists")


@pytest.mark.parametrize("name", NAMES)
def test_renames_and_uploads_in_any_script(hub, alice, folder, name):
    home = private_folder(hub, "alice") / folder
    (home / "a.txt").write_text("a")
    moved = alice("PATCH", f"files/private/{folder}/a.txt", json={"path": f"{folder}/{name}.txt"})
    assert moved.status_code == 200, moved.text
    assert (home / f"{name}.txt").read_text() == "a"
    start = alice("POST", "uploads", json={"domain": "private", "path": f"{folder}/{name}", "size": 2})
    assert start.status_code == 201, start.text
    sent = alice("PUT", f"uploads/{start.json()['id']}", data=b"ok", headers={"Upload-Offset": "0"})
    assert sent.status_code == 201, sent.text
    assert (home / name).read_bytes() == b"ok"


def test_an_admin_acting_as_someone_gets_their_address_back(hub, alice, folder):
    admin = DashboardAPI(hub, hub.token_for(hub.admin))
    made = admin("POST", f"files/private/{folder}/{quote('数据')}", params={"as": "alice"}, json={"type": "folder"})
    assert made.status_code == 201, made.text
    assert made.headers["Location"] == f"/services/karvdash/api/files/private/{folder}/%E6%95%B0%E6%8D%AE?as=alice"


@pytest.mark.parametrize(
    "name, words",
    [
        ("a\u2215b", "U+2215 (DIVISION SLASH)"),
        ("a\uff0fb", "U+FF0F (FULLWIDTH SOLIDUS)"),
        ("a\u2044b", "U+2044"),
        ("a\u29f8b", "U+29F8"),
        ("report\u202efdp.exe", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ("a\u2067b", "U+2067"),
        ("a\u200bb", "U+200B (ZERO WIDTH SPACE)"),
        ("a\u2060b", "U+2060"),
        ("\ufeffa", "U+FEFF"),
    ],
)
def test_names_that_show_as_others_are_refused(hub, alice, folder, name, words):
    home = private_folder(hub, "alice") / folder
    (home / "a.txt").write_text("a")
    assert_error(alice("POST", f"files/private/{folder}/{quote(name)}", json={"type": "folder"}), 400, words)
    assert_error(alice("PATCH", f"files/private/{folder}/a.txt", json={"path": f"{folder}/{name}"}), 400, words)
    assert_error(alice("POST", "uploads", json={"domain": "private", "path": f"{folder}/{name}", "size": 1}), 400, words)
    assert sorted(p.name for p in home.iterdir()) == ["a.txt"]


def test_a_name_typed_in_nfd_lands_in_nfc(hub, alice, folder):
    typed = unicodedata.normalize("NFD", "été")
    assert typed != "été"
    made = alice("POST", f"files/private/{folder}/{quote(typed)}", json={"type": "folder"})
    assert (made.status_code, made.json()["name"]) == (201, "été")
    start = alice("POST", "uploads", json={"domain": "private", "path": f"{folder}/{typed}.txt", "size": 1})
    alice("PUT", f"uploads/{start.json()['id']}", data=b"x", headers={"Upload-Offset": "0"})
    assert sorted(os.listdir(private_folder(hub, "alice") / folder)) == ["été", "été.txt"]


def test_a_file_named_in_nfd_outside_the_dashboard_is_still_reached(hub, alice, folder):
    typed = unicodedata.normalize("NFD", "café.txt")
    (private_folder(hub, "alice") / folder / typed).write_text("c")
    listed = alice("GET", f"files/private/{folder}").json()["entries"]
    assert [e["name"] for e in listed] == [typed]
    assert alice("GET", f"download/private/{folder}/{quote(typed)}").content == b"c"
    assert alice("DELETE", f"files/private/{folder}/{quote(typed)}").status_code == 204


# --- addresses the proxy could not decode ---------------------------------------------


@pytest.mark.parametrize("path", ["/services/karvdash/files/%c0%af", "/hub/%c0%af", "/services/karvdash/api/files/private/%ff"])
def test_percent_encoding_that_is_not_utf8_is_a_400(hub, path):
    response = requests.get(hub.url + path, timeout=30, allow_redirects=False)
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert "bad percent-encoding" in response.text


# --- downloads of folders that change -----------------------------------------------


def test_a_folder_zip_completes_while_its_files_are_deleted(hub, alice, folder):
    home = private_folder(hub, "alice") / folder
    names = [f"f{i:02d}.bin" for i in range(40)]
    for name in names:
        (home / name).write_bytes(os.urandom(2 * MiB))
    first = (home / names[0]).read_bytes()
    response = alice("GET", f"download/private/{folder}", stream=True)
    assert response.status_code == 200
    pieces = response.iter_content(64 * 1024)
    data = next(pieces)
    for name in names[1:]:
        (home / name).unlink()
    data += b"".join(pieces)  # no error: the stream ends as a zip ends
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        listed = archive.namelist()
        assert listed[:2] == [f"{folder}/", f"{folder}/{names[0]}"]
        assert archive.read(f"{folder}/{names[0]}") == first
        # the proxy and the sockets hold a few MiB, not the 80 of the folder
        assert len(listed) < len(names)


# --- uploads of the user an admin acts as ------------------------------------------


def test_uploads_are_the_acting_users(hub, alice):
    bob = DashboardAPI(hub, hub.token_for("bob"))
    admin = DashboardAPI(hub, hub.token_for(hub.admin))
    name = "u" + uuid.uuid4().hex[:8]
    upload = alice("POST", "uploads", json={"domain": "private", "path": f"{name}.txt", "size": 2}).json()["id"]
    for method, path in [("GET", "uploads"), ("GET", f"uploads/{upload}"), ("DELETE", f"uploads/{upload}")]:
        assert_error(bob(method, path, params={"as": "alice"}), 403, "only administrators")
    listed = admin("GET", "uploads", params={"as": "alice"})
    assert upload in [u["id"] for u in listed.json()["uploads"]]
    assert upload not in [u["id"] for u in admin("GET", "uploads").json()["uploads"]]
    assert admin("GET", f"uploads/{upload}", params={"as": "alice"}).json()["offset"] == 0
    sent = admin("PUT", f"uploads/{upload}", params={"as": "alice"}, data=b"hi", headers={"Upload-Offset": "0"})
    assert sent.status_code == 201, sent.text
    assert (private_folder(hub, "alice") / f"{name}.txt").read_bytes() == b"hi"
    # an upload an admin starts as alice is hers, and its address says so
    started = admin("POST", "uploads", params={"as": "alice"}, json={"domain": "private", "path": f"{name}.2", "size": 1})
    assert started.headers["Location"] == f"/services/karvdash/api/uploads/{started.json()['id']}?as=alice"
    assert started.json()["id"] in [u["id"] for u in alice("GET", "uploads").json()["uploads"]]


# --- the login cookie without the XSRF token ------------------------------------------


def test_a_cookie_fetch_without_the_xsrf_token_is_told_so(hub, alice, folder):
    session = browser_session(hub, "alice", PASSWORD)
    api = DashboardAPI(hub, session=session)
    xsrf = session.headers.pop("X-XSRFToken")
    fetch = {"Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "same-origin"}
    for method in ("GET", "POST", "DELETE"):
        refused = api(method, f"files/private/{folder}", headers=fetch, json={"type": "folder"} if method == "POST" else None)
        assert_error(refused, 403, "XSRF check failed")
    assert api("GET", f"files/private/{folder}", headers={**fetch, "X-XSRFToken": xsrf}).status_code == 200
    # once logged out, the cookie logs nobody in: that is a 401, whatever the token
    session.get(hub.url + "/hub/logout", timeout=30)
    assert_error(api("GET", f"files/private/{folder}", headers=fetch), 401, "authentication required")
    assert_error(api("GET", f"files/private/{folder}", headers={**fetch, "X-XSRFToken": xsrf}), 401)


def test_pages_are_never_kept_in_the_browsers_cache(hub, alice):
    session = browser_session(hub, "alice", PASSWORD)
    for path in ("files/private/", "docs/"):
        page = session.get(dashboard_url(hub, path), timeout=30)
        assert (page.status_code, page.headers["Cache-Control"]) == (200, "no-store")


# --- sign-up --------------------------------------------------------------------------


def sign_up(hub, username: str, email: str) -> requests.Response:
    session = requests.Session()
    page = session.get(hub.url + "/hub/signup", timeout=30)
    return session.post(
        hub.url + "/hub/signup",
        data={
            "username": username,
            "email": email,
            "signup_password": "a-long-pass-phrase-1",
            "signup_password_confirmation": "a-long-pass-phrase-1",
            "_xsrf": session.cookies.get("_xsrf") or _xsrf_from(page.text),
        },
        timeout=30,
    )


SPACES = "cannot contain spaces or control characters"


@pytest.mark.parametrize(
    "shape, words",
    [(" {} ", SPACES), ("{}\n", SPACES), ("{}\x00", SPACES), ("{} x", SPACES), ("N{}", "lowercase letters and digits only")],
    ids=["spaces around", "trailing newline", "NUL", "space inside", "capital"],
)
def test_sign_up_names_are_taken_as_typed_or_refused(hub, shape, words):
    name = "n" + uuid.uuid4().hex[:8]
    typed = shape.format(name[1:]) if shape.startswith("N") else shape.format(name)
    email = f"{name}@example.org"
    refused = sign_up(hub, typed, email)
    assert refused.status_code == 400 and words in refused.text, refused.text[-2000:]
    # the form keeps what was typed (but the passwords)
    assert f'value="{email}"' in refused.text
    kept = re.search(r'name="username" value="([^"]*)"', refused.text).group(1)
    assert kept.strip() == typed.strip().replace("\x00", "")
    assert "a-long-pass-phrase-1" not in refused.text
    # no account was made: the name and the address are still free
    signed_up = sign_up(hub, name, email)
    assert signed_up.status_code == 200 and "sent to the admin" in signed_up.text, signed_up.text[-2000:]


# --- karvdashctl ---------------------------------------------------------------------


def test_karvdashctl_finds_the_dashboard_from_the_hubs_address(hub, alice, folder, tmp_path):
    (private_folder(hub, "alice") / folder / "r.csv").write_text("1")
    environment = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    for url in (hub.url, hub.url + "/"):
        done = subprocess.run(
            [KARVDASHCTL, "--url", url, "--token", hub.token_for("alice"), "ls", f"private/{folder}"],
            env=environment, capture_output=True, text=True, timeout=120,
        )
        assert (done.returncode, done.stderr) == (0, "")
        assert done.stdout.rstrip().endswith("r.csv")


# --- after logging out (a browser) ----------------------------------------------------


@pytest.mark.browser
def test_back_after_logging_out_shows_the_login_page(page, hub, alice):
    log_in_page(page, hub, "alice")
    page.goto(dashboard_url(hub, "files/private/"))
    expect(page.locator("#files-loading")).to_be_hidden()
    page.goto(hub.url + "/hub/logout")
    page.wait_for_url(re.compile(r"/hub/login"))
    page.go_back()
    page.wait_for_url(re.compile(r"/hub/login"))
    expect(page.locator("#username_input")).to_be_visible()
    expect(page.locator("text=authentication required")).to_have_count(0)


@pytest.mark.browser
def test_a_page_whose_login_ended_sends_the_browser_to_log_in(page, hub, alice, folder):
    (private_folder(hub, "alice") / folder).mkdir(exist_ok=True)
    log_in_page(page, hub, "alice")
    page.goto(dashboard_url(hub, "files/private/"))
    expect(page.locator("#files-loading")).to_be_hidden()
    # logged out elsewhere (another tab of the same browser)
    other = page.context.new_page()
    other.goto(hub.url + "/hub/logout")
    other.wait_for_url(re.compile(r"/hub/login"))
    other.close()
    page.locator(f'#files-table tbody tr[data-name="{folder}"] a.file-link').click()
    page.wait_for_url(re.compile(r"/hub/login"))
    expect(page.locator("#username_input")).to_be_visible()
    # and logging in again comes back to the dashboard
    page.fill("#username_input", "alice")
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"/services/karvdash/files/private/"))


def test_a_browser_form_carries_its_xsrf_token_in_its_body(hub, alice, folder):
    # a form cannot set headers: its _xsrf field is checked once the (small) body is in
    (private_folder(hub, "alice") / folder / "f.txt").write_text("f")
    session = browser_session(hub, "alice", PASSWORD)
    xsrf = session.headers.pop("X-XSRFToken")
    address = dashboard_url(hub, "api/download-zip/private")
    fetch = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "same-origin"}
    sent = session.post(address, data={"_xsrf": xsrf, "path": f"{folder}/f.txt"}, headers=fetch, timeout=60)
    assert (sent.status_code, sent.headers["Content-Type"]) == (200, "application/zip")
    assert zipfile.ZipFile(io.BytesIO(sent.content)).read("f.txt") == b"f"
    refused = session.post(address, data={"path": f"{folder}/f.txt"}, headers=fetch, timeout=60)
    assert_error(refused, 403, "XSRF check failed")
    assert_error(requests.post(address, data={"path": f"{folder}/f.txt"}, timeout=60), 401)
