"""More users start at once than the hub lets start: the others wait in the
spawn queue, see their place (the progress API and the spawn page in a real
browser), may stop while waiting, and all get their servers; a start that
fails gives its place on at once.

A real karvdash-hub in local mode with ``spawnConcurrency`` 1 and two admin
profiles: ``gated`` runs tests/integration/gatedserver.py, a server that
answers only once the test opens its gate (so a start holds its place as
long as the test needs), and ``broken``, whose server exits at once. The
storm test starts real JupyterLab servers.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from tests.hubprocess import start_hub

pytestmark = pytest.mark.integration

PASSWORD = "queue-test-password"
GATED_SERVER = Path(__file__).resolve().parent / "gatedserver.py"


def profiles(gate: Path) -> dict[str, str]:
    return {
        "gated.yaml": (
            "display_name: Gated\n"
            "local:\n"
            "  available: true\n"
            f"  cmd: [{json.dumps(sys.executable)}, {json.dumps(str(GATED_SERVER))}, {json.dumps(str(gate))}]\n"
        ),
        "broken.yaml": (
            "display_name: Broken\n"
            "local:\n"
            "  available: true\n"
            f"  cmd: [{json.dumps(sys.executable)}, -c, 'raise SystemExit(3)']\n"
        ),
    }


@pytest.fixture(scope="module")
def queue_hub(tmp_path_factory):
    state = tmp_path_factory.mktemp("queue-hub")
    gate = state / "gate-open"
    (state / "profiles").mkdir()
    for name, text in profiles(gate).items():
        (state / "profiles" / name).write_text(text)
    # a held start must outlast the test's steps: http_timeout well above them
    hub = start_hub(state, env={"KARVDASH_SPAWN_CONCURRENCY": "1"}, args=["--Spawner.http_timeout=180"])
    hub.gate = gate
    yield hub
    hub.stop()


def server_model(hub, user: str, token: str) -> dict:
    return hub.api("GET", f"/users/{user}", token).json()["servers"].get("") or {}


def wait_for(condition, what: str, hub, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"{what} within {timeout} s:\n{hub.log()[-4000:]}")


def start_in_background(hub, user: str, token: str, profile: str) -> dict:
    """POST the start (it answers once started or after slow_spawn_timeout)
    and return once the hub shows the server pending or ready."""
    answer: dict = {}

    def post():
        answer["response"] = hub.api("POST", f"/users/{user}/server", token, json={"profile": profile})

    threading.Thread(target=post, daemon=True).start()
    wait_for(lambda: server_model(hub, user, token).get("pending") == "spawn" or "response" in answer,
             f"{user}'s start pending", hub)
    return answer


def progress_messages(hub, user: str, token: str, until: str, timeout: float = 60) -> list[str]:
    """The messages of the hub's progress stream for ``user`` up to the first containing ``until``."""
    seen = []
    with requests.get(f"{hub.hub_api}/users/{user}/server/progress", headers={"Authorization": f"token {token}"},
                      stream=True, timeout=(10, timeout)) as stream:
        assert stream.status_code == 200, stream.text
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("data:"):
                seen.append(json.loads(line[5:])["message"])
                if until in seen[-1]:
                    return seen
    raise AssertionError(f"no {until!r} in {user}'s progress: {seen}")


def test_users_beyond_the_limit_wait_see_their_place_may_stop_and_all_get_servers(queue_hub, page):
    hub = queue_hub
    users = ["holder", "waiter", "leaver", "viewer"]
    for user in users:
        hub.create_user(user, PASSWORD)
    tokens = {user: hub.token_for(user, PASSWORD) for user in users}

    answers = {}
    # the one place, held until the gate opens; then three in line
    for user in ("holder", "waiter", "leaver"):
        answers[user] = start_in_background(hub, user, tokens[user], "gated")
        time.sleep(0.5)
    assert progress_messages(hub, "waiter", tokens["waiter"], "number 1 in the queue")[-1].startswith(
        "Waiting for a place to start: number 1 in the queue"
    )
    assert "number 2 in the queue" in progress_messages(hub, "leaver", tokens["leaver"], "number 2 in the queue")[-1]

    # the fourth starts from the browser and waits on the spawn page
    page.goto(hub.url + "/hub/login")
    page.fill("#username_input", "viewer")
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url("**/services/**")
    page.goto(hub.url + "/hub/spawn/viewer?profile=gated")
    page.wait_for_url("**/hub/spawn-pending/viewer**", timeout=60_000)
    expect(page.locator("#progress-message")).to_contain_text("number 3 in the queue", timeout=30_000)

    # one who stops while waiting (from the spawn page, their start request
    # answered 202) frees their place: the later one moves up
    wait_for(lambda: "response" in answers["leaver"], "leaver's start answered", hub)
    assert answers["leaver"]["response"].status_code == 202
    stopped = hub.api("DELETE", "/users/leaver/server", tokens["leaver"])
    assert stopped.status_code in (202, 204), stopped.text
    expect(page.locator("#progress-message")).to_contain_text("number 2 in the queue", timeout=30_000)
    wait_for(lambda: not server_model(hub, "leaver", tokens["leaver"]), "the stopped start gone", hub)

    hub.gate.write_text("open")
    for user in ("holder", "waiter", "viewer"):
        wait_for(lambda u=user: server_model(hub, u, tokens[u]).get("ready"), f"{user}'s server ready", hub)
    # the browser went on to the server once it was ready
    page.wait_for_url("**/user/viewer/**", timeout=60_000)
    expect(page.locator("body")).to_contain_text("gated test server")

    # the stopped user starts again: no place was lost to their stop
    hub.api("DELETE", "/users/holder/server", tokens["holder"])
    hub.api("DELETE", "/users/waiter/server", tokens["waiter"])
    hub.api("DELETE", "/users/viewer/server", tokens["viewer"])
    again = hub.api("POST", "/users/leaver/server", tokens["leaver"], json={"profile": "gated"})
    assert again.status_code in (201, 202), again.text
    wait_for(lambda: server_model(hub, "leaver", tokens["leaver"]).get("ready"), "leaver's new server ready", hub)
    hub.api("DELETE", "/users/leaver/server", tokens["leaver"])
    assert "Traceback" not in hub.log()


def test_a_start_that_fails_gives_its_place_on_at_once(queue_hub):
    hub = queue_hub
    hub.gate.write_text("open")
    for user in ("crasher", "patient"):
        hub.create_user(user, PASSWORD)
    crasher, patient = hub.token_for("crasher", PASSWORD), hub.token_for("patient", PASSWORD)
    start_in_background(hub, "crasher", crasher, "broken")
    start_in_background(hub, "patient", patient, "gated")
    # well within http_timeout (180 s), until which JupyterHub itself waits
    # for the crashed server to answer
    wait_for(lambda: server_model(hub, "patient", patient).get("ready"), "the waiting server ready", hub, timeout=45)
    hub.api("DELETE", "/users/crasher/server", crasher)
    wait_for(lambda: not server_model(hub, "crasher", crasher), "the failed start gone", hub)
    hub.api("DELETE", "/users/patient/server", patient)


def test_a_storm_of_jupyterlab_starts_all_succeed(queue_hub):
    hub = queue_hub
    users = [f"storm{i}" for i in range(4)]
    for user in users:
        hub.create_user(user, PASSWORD)
    tokens = {user: hub.token_for(user, PASSWORD) for user in users}
    answers = {}

    def post(user):
        answers[user] = hub.api("POST", f"/users/{user}/server", tokens[user], json={"profile": "jupyter"})

    threads = [threading.Thread(target=post, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(answer.status_code in (201, 202) for answer in answers.values()), {
        u: (a.status_code, a.text[:200]) for u, a in answers.items()
    }
    for user in users:
        wait_for(lambda u=user: server_model(hub, u, tokens[u]).get("ready"), f"{user}'s JupyterLab ready", hub,
                 timeout=300)
        status = requests.get(f"{hub.url}/user/{user}/api/status", headers={"Authorization": f"token {tokens[user]}"},
                              timeout=30)
        assert status.status_code == 200
    assert hub.log().count("waits to start: number") >= 1
    for user in users:
        hub.api("DELETE", f"/users/{user}/server", tokens[user])
