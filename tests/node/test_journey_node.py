"""A person's whole journey with the chart on the real node: sign-up,
approval and login in a real browser through the proxy's Service; the
Jupyter profile spawned from the notebook image (pulled from the node's
registry with the pull secret the hub writes into the user's namespace);
JupyterLab through the hub's proxy; a file written in the notebook seen and
changed from the dashboard and back; karvdashctl in the notebook with the
settings the webhook mounted; stopping the server; the hub pod killed in the
middle of a spawn; ``helm upgrade`` rolling the pods; deleting the user.

The tests run in file order and build on each other (one chart install for
the module). The browser runs on the host and reaches the proxy's ClusterIP
through tests/kube/nsrelay.py, listening on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from playwright.sync_api import expect

from karvdash_hub.core.labels import API_SETTINGS_MOUNT_PATH
from tests.hubprocess import RunningHub
from tests.kube.fixtures import wait_for
from tests.kube.realnode import REGISTRY, REGISTRY_USER
from tests.node.conftest import (
    CHART,
    NAME,
    RELEASE,
    describe_namespace,
    installed_chart,
    record_memory,
    record_timing,
    relay,
)

pytestmark = [pytest.mark.node, pytest.mark.integration]

NS = "karvdash-journey"
USER = "alice"
PASSWORD = "alice-password-1"
USER_NS = f"karvdash-{USER}"
POD = f"jupyter-{USER}"
SERVICE = "/services/karvdash/"
TIMINGS: dict[str, float] = {}


def keep_timing(what: str, started: float) -> None:
    TIMINGS[what] = round(time.monotonic() - started, 1)
    record_timing(f"journey: {what}", TIMINGS[what])
    print(f"{what}: {TIMINGS[what]:.1f} s")


@contextlib.contextmanager
def timed(what: str):
    started = time.monotonic()
    try:
        yield
    finally:
        keep_timing(what, started)


def jupyter_profile(image: str) -> str:
    """An admin profile (``<stateDir>/profiles/jupyter.yaml``) that replaces the
    shipped Jupyter profile: the same profile with the node's notebook image
    (quay.io is out of reach here)."""
    return yaml.safe_dump({
        "display_name": "Jupyter",
        "description": "JupyterLab from the karvdash notebook image.",
        "default": True,
        "kubespawner_override": {"image": image, "default_url": "/lab",
                                 "cpu_guarantee": 0.2, "mem_guarantee": "256M", "mem_limit": "1G"},
    })


def slow_profile(image: str) -> str:
    """The same with a pod that takes 60 s to start (an init container
    waits), as a large image pull would: a spawn still under way when the
    new hub checks it, which runs more than the hub's ``http_timeout``
    (30 s) after that check but within ``start_timeout`` (60 s)."""
    return yaml.safe_dump({
        "display_name": "Jupyter (slow start)",
        "kubespawner_override": {"image": image, "default_url": "/lab",
                                 "cpu_guarantee": 0.2, "mem_guarantee": "256M", "mem_limit": "1G",
                                 "init_containers": [{"name": "slow-start", "image": image,
                                                      "command": ["sleep", "60"]}]},
    })


@dataclass
class Journey:
    node: object
    hub: RunningHub
    ns: str
    work: Path
    notebook_image: str
    browser_context: object = None
    user_token: str = ""
    admin_token: str = ""

    @property
    def files(self) -> Path:
        return self.work / "files"

    def kubectl_json(self, *args: str) -> dict:
        return json.loads(self.node.kubectl(*args, "-o", "json").stdout)

    def pod(self, name: str = POD, ns: str = USER_NS) -> dict | None:
        out = self.node.kubectl("get", "pod", name, "-n", ns, "-o", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def hub_pods(self) -> list[dict]:
        return self.kubectl_json("get", "pods", "-n", self.ns, "-l",
                                 "app.kubernetes.io/component=hub")["items"]

    def exec(self, script: str, check: bool = True):
        """A shell command in the notebook container, as its user."""
        return self.node.kubectl("exec", "-n", USER_NS, POD, "-c", "notebook", "--", "bash", "-c", script,
                                 check=check)

    def user_api(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.hub.api(method, path, token=self.user_token, **kwargs)

    def server(self) -> dict:
        response = self.hub.api("GET", f"/users/{USER}", token=self.admin_token)
        response.raise_for_status()
        return response.json()["servers"].get("", {})

    def dashboard(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {self.user_token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.hub.url + SERVICE + "api/" + path, headers=headers, timeout=60,
                                **kwargs)

    def lab(self, path: str = "api/status") -> requests.Response:
        return requests.get(f"{self.hub.url}/user/{USER}/{path}", headers={"Authorization": f"token {self.user_token}"},
                            timeout=30, allow_redirects=False)

    def wait_ready(self, timeout: float, what: str) -> None:
        def ready():
            try:
                return self.server().get("ready")
            except requests.RequestException:  # a hub that is starting again
                return None

        try:
            wait_for(ready, timeout, what)
        except TimeoutError:
            pytest.fail(f"{what}: {self.server()}\n{describe_namespace(self.node, USER_NS)}\n"
                        f"{describe_namespace(self.node, self.ns)}")

    def wait_lab(self, timeout: float) -> requests.Response:
        def answers():
            try:
                response = self.lab()
            except requests.RequestException:
                return None
            return response if response.status_code == 200 else None

        return wait_for(answers, timeout, "JupyterLab through the hub's proxy")

    def upload(self, path: str, data: bytes) -> dict:
        """Replace (or create) a private file through the dashboard's upload API."""
        start = self.dashboard("POST", "uploads", json={"domain": "private", "path": path, "size": len(data),
                                                        "overwrite": True})
        assert start.status_code == 201, start.text
        done = self.dashboard("PUT", f"uploads/{start.json()['id']}", data=data, headers={"Upload-Offset": "0"})
        assert done.status_code == 201 and done.json()["complete"], done.text
        return done.json()["entry"]

    def download(self, path: str) -> bytes:
        response = self.dashboard("GET", f"download/private/{path}")
        assert response.status_code == 200, response.text
        return response.content


@pytest.fixture(scope="module")
def journey(real_node, hub_image, notebook_image, tmp_path_factory, browser):
    work = tmp_path_factory.mktemp("journey")
    values = {"karvdash": {
        "dashboardTitle": "Karvdash",
        # user pods pull the notebook image from the node's registry with the pull secret the hub writes
        "dockerRegistryURL": f"https://{REGISTRY_USER}:{real_node.registry_password}@{REGISTRY}",
        "dockerRegistryCert": real_node.registry_ca.read_text(),
    }}
    with contextlib.ExitStack() as stack:
        # users' namespaces are the hub's, not Helm's: they go after the uninstall
        stack.callback(real_node.kubectl, "delete", "namespace", USER_NS, "--wait=false", check=False)
        stack.callback(lambda: print("journey timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in TIMINGS.items())))
        with timed("install (helm install --wait)"):
            ns = stack.enter_context(installed_chart(
                real_node, hub_image, work, NS, values,
                state_files={"profiles/jupyter.yaml": jupyter_profile(notebook_image),
                             "profiles/jupyter-slow.yaml": slow_profile(notebook_image)}))
        service = json.loads(real_node.kubectl("get", "service", f"{NAME}-proxy-public", "-n", ns,
                                               "-o", "json").stdout)["spec"]
        port = stack.enter_context(relay(real_node, f"{service['clusterIP']}:{service['ports'][0]['port']}"))
        # the HTTP helpers of a test hub, on the chart's hub behind the relay
        hub = RunningHub(url=f"http://127.0.0.1:{port}", state_dir=work / "state", log_path=work / "none",
                         process=None, admin_password="admin-secret")
        # right after Ready the proxy may answer 503 for a moment
        wait_for(lambda: _answers(hub.url + "/hub/login"), 90, "/hub/login through the relay")
        context = browser.new_context()
        stack.callback(context.close)
        context.set_default_timeout(60_000)
        yield Journey(node=real_node, hub=hub, ns=ns, work=work, notebook_image=notebook_image,
                      browser_context=context)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


# --- 1. sign-up, approval, login ------------------------------------------------------------


def test_sign_up_approval_and_login_in_the_browser(journey):
    started = time.monotonic()
    hub = journey.hub
    page = journey.browser_context.new_page()
    page.goto(hub.url + "/hub/signup")
    page.fill("#username_input", USER)
    page.fill("#email_input", f"{USER}@example.org")
    page.fill("#password_input", PASSWORD)
    page.fill("#password_confirmation_input", PASSWORD)
    page.click("#signup_submit")
    expect(page.locator("#signup-message")).to_contain_text("sent to the admin")

    # not approved yet: no login
    page.goto(hub.url + "/hub/login")
    page.fill("#username_input", USER)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    expect(page.locator("body")).to_contain_text("Your account waits for an administrator's approval.")

    admin = journey.browser_context.browser.new_context()
    admin.set_default_timeout(60_000)
    admin_page = admin.new_page()
    admin_page.goto(hub.url + "/hub/login")
    admin_page.fill("#username_input", hub.admin)
    admin_page.fill("#password_input", hub.admin_password)
    admin_page.click("#login_submit")
    admin_page.wait_for_url(re.compile(r"^(?!.*/hub/login)"))
    admin_page.goto(hub.url + "/hub/authorize")
    admin_page.locator(f"tr#{USER}").get_by_role("button", name="Approve").click()
    expect(admin_page.locator("#signups-message")).to_have_text(f"{USER} is approved and can log in.")
    admin.close()

    page.goto(hub.url + "/hub/login")
    page.fill("#username_input", USER)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    # login lands on the dashboard's Home page, through the dashboard's OAuth with the hub
    page.wait_for_url(re.compile(r"/services/karvdash/(\?.*)?$"))
    expect(page.locator("nav")).to_contain_text("Karvdash")
    keep_timing("sign-up, approval, login (browser)", started)

    journey.user_token = hub.token_for(USER, PASSWORD)
    journey.admin_token = hub.token_for(hub.admin)


# --- 2. the Jupyter profile on the node ------------------------------------------------------


def test_jupyter_server_runs_on_the_node_with_the_notebook_image(journey):
    assert journey.user_token, "needs the login of the test before"
    with timed("spawn to ready (Jupyter profile, notebook image)"):
        response = journey.user_api("POST", f"/users/{USER}/server", json={"profile": "jupyter"})
        assert response.status_code in (201, 202), response.text
        journey.wait_ready(300, "alice's server ready")
    pod = journey.pod()
    assert pod["status"]["phase"] == "Running"
    notebook = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")
    assert notebook["image"] == journey.notebook_image
    # pulled with the registry pull secret the hub wrote into the user's namespace
    assert {"name": "karvdash-registry"} in pod["spec"]["imagePullSecrets"]
    secret = journey.kubectl_json("get", "secret", "karvdash-registry", "-n", USER_NS)
    assert secret["type"] == "kubernetes.io/dockerconfigjson"

    with timed("JupyterLab answers through the proxy"):
        status = journey.wait_lab(60)
    assert "started" in status.json()
    page = journey.browser_context.new_page()
    page.goto(f"{journey.hub.url}/user/{USER}/lab", wait_until="domcontentloaded")
    expect(page).to_have_title(re.compile("JupyterLab"))
    page.close()

    mounts = journey.exec("awk '{print $5}' /proc/self/mountinfo").stdout.split()
    assert "/private" in mounts and "/shared" in mounts and API_SETTINGS_MOUNT_PATH in mounts, mounts


def test_a_notebook_file_shows_in_the_dashboard_and_changes_both_ways(journey):
    host = journey.files / "private" / USER / "from-notebook.txt"
    journey.exec("echo written in the notebook > /private/from-notebook.txt")
    uid, gid = journey.exec("id -u; id -g").stdout.split()
    assert uid == "1000"
    stat = host.stat()
    assert (stat.st_uid, stat.st_gid) == (1000, int(gid)), (stat.st_uid, stat.st_gid)

    listing = journey.dashboard("GET", "files/private/")
    assert listing.status_code == 200, listing.text
    assert "from-notebook.txt" in [e["name"] for e in listing.json()["entries"]]
    page = journey.browser_context.new_page()
    page.goto(journey.hub.url + SERVICE + "files/private/")
    expect(page.locator("body")).to_contain_text("from-notebook.txt")
    page.close()

    # the dashboard replaces it, the notebook reads and changes it again
    journey.upload("from-notebook.txt", b"changed in the dashboard\n")
    assert journey.exec("cat /private/from-notebook.txt").stdout == "changed in the dashboard\n"
    journey.exec("echo and again in the notebook >> /private/from-notebook.txt")
    assert journey.download("from-notebook.txt") == b"changed in the dashboard\nand again in the notebook\n"

    # a file the dashboard makes is the notebook's to change, and the other way round
    made = journey.dashboard("POST", "files/private/from-dashboard.txt", json={"type": "file"})
    assert made.status_code == 201, made.text
    assert (journey.files / "private" / USER / "from-dashboard.txt").stat().st_uid == 1000
    journey.exec("echo notebook line > /private/from-dashboard.txt")
    assert journey.download("from-dashboard.txt") == b"notebook line\n"
    deleted = journey.dashboard("DELETE", "files/private/from-dashboard.txt")
    assert deleted.status_code in (200, 204), deleted.text
    assert journey.exec("test -e /private/from-dashboard.txt", check=False).returncode == 1


def test_karvdashctl_in_the_notebook_uses_the_injected_settings(journey):
    out = journey.exec("karvdashctl ls private/", check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "from-notebook.txt" in out.stdout
    # the settings came from the webhook's mount, with a token for the dashboard only
    ini = journey.exec(f"cat {API_SETTINGS_MOUNT_PATH}/config.ini").stdout
    assert "token" in ini and "base_url" in ini


# --- 3. stopping ---------------------------------------------------------------------------


def test_stop_server_deletes_the_pod(journey):
    with timed("stop server to pod gone"):
        response = journey.user_api("DELETE", f"/users/{USER}/server")
        assert response.status_code in (202, 204), response.text
        wait_for(lambda: journey.pod() is None, 120, "the notebook pod to go")
    wait_for(lambda: not journey.server(), 60, "the hub to report the server stopped")
    assert (journey.files / "private" / USER / "from-notebook.txt").exists()


# --- 4. the hub pod killed mid-spawn ---------------------------------------------------------


def test_killing_the_hub_mid_spawn_loses_no_server(journey):
    """A spawn under way when the hub pod dies (a node failure, an eviction):
    the new hub finds the pod the spawn had made, waits until it runs (up
    to ``start_timeout``, as a spawn would; its start-up check alone gives
    it ``http_timeout``, then stops it) and puts it
    behind the proxy, so the person's server runs and answers without them
    starting it again."""
    old = journey.hub_pods()
    assert len(old) == 1
    response = journey.user_api("POST", f"/users/{USER}/server", json={"profile": "jupyter-slow"})
    assert response.status_code == 202, response.text
    # the pod exists and has not started yet
    wait_for(lambda: journey.pod() is not None, 60, "the spawn to create its pod")
    first_pod = journey.pod()
    assert journey.server().get("pending") == "spawn", journey.server()
    with timed("hub pod killed mid-spawn to server ready"):
        journey.node.kubectl("delete", "pod", "-n", journey.ns, old[0]["metadata"]["name"], "--grace-period=0",
                             "--force")

        def new_hub_ready():
            pods = [p for p in journey.hub_pods() if p["metadata"]["uid"] != old[0]["metadata"]["uid"]]
            return pods and any(c.get("ready") for c in pods[0]["status"].get("containerStatuses", []))

        wait_for(new_hub_ready, 240, "a new hub pod ready")
        # still starting when the new hub is up: the hub's check is under way
        assert journey.pod()["status"]["phase"] == "Pending", journey.pod()["status"]
        journey.wait_ready(240, "alice's server after the hub restart")
        status = journey.wait_lab(60)
    assert status.status_code == 200
    # the same pod: adopted, not replaced
    assert journey.pod()["metadata"]["uid"] == first_pod["metadata"]["uid"]


# --- 5. helm upgrade ------------------------------------------------------------------------


def test_helm_upgrade_rolls_the_pods_and_keeps_users_servers_and_files(journey):
    node, ns = journey.node, journey.ns
    before = {p["metadata"]["labels"]["app.kubernetes.io/component"] + "/" + p["metadata"]["name"]: p["metadata"]["uid"]
              for p in journey.kubectl_json("get", "pods", "-n", ns)["items"]}
    notebook_uid = journey.pod()["metadata"]["uid"]
    with timed("helm upgrade --wait (dashboardTitle changed)"):
        node.helm("upgrade", RELEASE, str(CHART), "--namespace", ns, "--reuse-values",
                  "--set", "karvdash.dashboardTitle=Journey Lab", "--wait", "--timeout", "300s", timeout=360)
    history = json.loads(node.helm("history", RELEASE, "--namespace", ns, "-o", "json").stdout)
    assert history[-1]["revision"] == 2 and history[-1]["status"] == "deployed"

    def rolled():
        pods = journey.kubectl_json("get", "pods", "-n", ns)["items"]
        by_component = {}
        for p in pods:
            if p["metadata"].get("deletionTimestamp"):
                return None
            by_component.setdefault(p["metadata"]["labels"]["app.kubernetes.io/component"], []).append(p)
        return by_component

    after = wait_for(rolled, 120, "the old pods to go")
    old_uids = set(before.values())
    for component in ("hub", "dashboard", "webhook"):
        assert after[component] and all(p["metadata"]["uid"] not in old_uids for p in after[component]), component

    with timed("after upgrade: server ready and answering"):
        journey.wait_ready(180, "alice's server after the upgrade")
        journey.wait_lab(120)
    assert journey.pod()["metadata"]["uid"] == notebook_uid, "the running server was restarted"
    assert journey.hub.api("GET", f"/users/{USER}", token=journey.admin_token).status_code == 200
    assert journey.download("from-notebook.txt") == b"changed in the dashboard\nand again in the notebook\n"
    page = journey.browser_context.new_page()
    page.goto(journey.hub.url + SERVICE)
    expect(page.locator("nav")).to_contain_text("Journey Lab")
    page.close()
    record_memory(node, "after the journey's upgrade")


# --- 6. deleting the user -------------------------------------------------------------------


def test_deleting_the_user_removes_the_namespace(journey):
    with timed("delete user to namespace gone"):
        response = journey.hub.api("DELETE", f"/users/{USER}", token=journey.admin_token)
        assert response.status_code == 204, response.text

        def gone():
            return journey.node.api("GET", f"/api/v1/namespaces/{USER_NS}")[0] == 404

        wait_for(gone, 180, "the user's namespace to go")
    assert journey.hub.api("GET", f"/users/{USER}", token=journey.admin_token).status_code == 404
