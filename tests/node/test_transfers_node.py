"""Downloads and uploads past the proxy on the real node: the chart's second
Ingress (``ingress.direct``) sends the dashboard's bulk paths straight to
the dashboard's Service, and the dashboard checks the hub's login itself.

A real nginx pod in ``ingress-nginx`` serves both of the chart's Ingresses
as ingress-nginx would (tests/ingressnginx.py: one server for the host,
the longest path first, the direct Ingress's body size and buffering
annotations); ``networkPolicy.ingressControllers`` names that namespace, so
the dashboard's port is open to it (and the chart's proxy and hub) only,
enforced by kube-router. A second host on the same nginx serves the
proxy's Ingress alone: every path through configurable-http-proxy, for
the comparison.

alice, logged in (the hub's login and the dashboard's OAuth cookie, as a
browser has them, or her API token), downloads and uploads through the
direct path; an anonymous request and bob are refused; with the proxy's
Deployment scaled to 0 the direct paths still answer while every other
path fails: nothing on them passes the proxy. The download of a large file
is timed (direct, through the proxy, a raw copy), and so is an upload of it
(direct, a raw copy), printed with the run's timings; nothing asserts on time.

The tests run in file order and build on each other (one chart install for
the module)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import statistics
import time
import uuid

import pytest

from tests.kube.fixtures import wait_for
from tests.node.chartusers import chart_hub
from tests.node.conftest import NAME, build_image, installed_chart, record_timing
from tests.ingressnginx import LISTEN_PORT
from tests.node.test_real_node import describe
from tests.node.test_service_auth_node import INGRESS_NS, ingress_nginx

pytestmark = [pytest.mark.node, pytest.mark.integration]

NS = "karvdash-transfers"
DOMAIN = "karvdash.example.test"  # installed_chart's ingressURL host
PROXIED = "proxied.example.test"  # the proxy's Ingress alone, on the same nginx
API = "/services/karvdash/api/"
OWNER, OWNER_PASSWORD = "alice", "alice-password-1"
OTHER, OTHER_PASSWORD = "bob", "bob-password-1"
MIB = 1024 * 1024
LARGE = 256 * MIB
CHUNK = 64 * MIB  # over ingress-nginx's default body size (1 MiB), within the direct Ingress's
ROUNDS = 3


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(MIB):
            digest.update(piece)
    return digest.hexdigest()


def fsync(path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@pytest.fixture(scope="module")
def deployment(real_node, hub_image, tmp_path_factory):
    """The chart with the ingress controller's namespace named in its
    NetworkPolicy; alice and bob signed up; the nginx pod serving the
    chart's Ingresses (``DOMAIN``) and the proxy's alone (``PROXIED``)."""
    nginx = build_image("nginx")
    ingress_image = real_node.push_image(nginx, "karvdash-base/nginx:1.22-bookworm")
    work = tmp_path_factory.mktemp("transfers")
    controller = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": INGRESS_NS}}}
    with contextlib.ExitStack() as stack:
        ns = stack.enter_context(installed_chart(real_node, hub_image, work, NS,
                                                 {"networkPolicy": {"ingressControllers": [controller]}}))
        hub = stack.enter_context(chart_hub(real_node, ns, work))
        hub.create_user(OWNER, OWNER_PASSWORD)
        hub.create_user(OTHER, OTHER_PASSWORD)
        ingresses = json.loads(real_node.kubectl("get", "ingress", "-n", ns, "-o", "json").stdout)["items"]
        services = json.loads(real_node.kubectl("get", "service", "-n", ns, "-o", "json").stdout)["items"]
        [proxied] = [json.loads(json.dumps(i)) for i in ingresses if i["metadata"]["name"] == NAME]
        proxied["spec"]["rules"][0]["host"] = PROXIED
        pod_ip = stack.enter_context(ingress_nginx(real_node, ingress_image, [*ingresses, proxied], services))
        yield {"ns": ns, "hub": hub, "ingresses": ingresses, "nginx": pod_ip, "work": work,
               "private": work / "files" / "private", "state": {}}


def curl(cluster, deployment, path: str, *args: str, host: str = DOMAIN, output=None,
         timeout: float = 600) -> tuple[int, bytes]:
    """curl in the node's namespace to the ingress nginx with ``Host: host``;
    (status, body, unless written to ``output``)."""
    target = output or deployment["work"] / f"answer-{uuid.uuid4().hex}"
    proc = cluster.exec_in_netns("curl", "-sS", "-o", str(target), "-w", "%{http_code}", "-H", f"Host: {host}",
                                 *args, f"http://{deployment['nginx']}:{LISTEN_PORT}{path}",
                                 check=False, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    body = b""
    if output is None:
        body = target.read_bytes() if target.exists() else b""
        target.unlink(missing_ok=True)
    return int(proc.stdout.strip()), body


def token(value: str) -> tuple[str, str]:
    return "-H", f"Authorization: token {value}"


def browser_cookie(hub, username: str, password: str) -> str:
    """The Cookie header of a browser that logged in to the hub and opened
    the dashboard (its OAuth round trip, through the proxy)."""
    session = hub.login(username, password)
    response = session.get(f"{hub.url}/services/karvdash/", timeout=60)
    assert response.status_code == 200, (response.status_code, response.url)
    names = {cookie.name for cookie in session.cookies}
    # HubOAuth's cookie is named after the dashboard's OAuth client
    assert any(name.endswith("service-karvdash") for name in names), names
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in session.cookies)


def start_upload(cluster, deployment, auth: tuple[str, str], path: str, size: int) -> tuple[int, dict]:
    status, body = curl(cluster, deployment, f"{API}uploads", "-X", "POST", *auth,
                        "-H", "Content-Type: application/json",
                        "--data", json.dumps({"domain": "private", "path": path, "size": size}))
    return status, json.loads(body) if body.startswith(b"{") else {}


def send_chunks(cluster, deployment, auth, upload_id: str, source, host: str = DOMAIN) -> list[int]:
    """PUT ``source`` in CHUNK pieces (each a file curl streams); the statuses."""
    statuses, size = [], os.path.getsize(source)
    with open(source, "rb") as f:
        for offset in range(0, size, CHUNK):
            part = deployment["work"] / "part.bin"
            part.write_bytes(os.pread(f.fileno(), min(CHUNK, size - offset), offset))
            status, _ = curl(cluster, deployment, f"{API}uploads/{upload_id}", "-T", str(part), *auth,
                                "-H", f"Upload-Offset: {offset}", "-H", "Content-Type: application/octet-stream",
                                "-H", "Expect:", host=host)
            statuses.append(status)
            if status not in (200, 201):
                break
    return statuses


def test_the_chart_sends_bulk_paths_to_the_dashboard(real_node, deployment):
    direct = {i["metadata"]["name"]: i for i in deployment["ingresses"]}[f"{NAME}-dashboard"]
    paths = {p["path"]: p["backend"]["service"]["name"] for p in direct["spec"]["rules"][0]["http"]["paths"]}
    assert paths == {f"{API}download": f"{NAME}-dashboard", f"{API}download-zip": f"{NAME}-dashboard",
                     f"{API}uploads": f"{NAME}-dashboard"}
    assert direct["spec"]["rules"][0]["host"] == DOMAIN


def test_a_logged_in_user_downloads_and_uploads_on_the_direct_path(real_node, deployment):
    hub = deployment["hub"]
    folder = deployment["private"] / OWNER
    for made in (folder.parent, folder):  # as the dashboard makes them (uid 1000 in the image)
        made.mkdir(exist_ok=True)
        os.chown(made, 1000, 1000)
    large = folder / "large.bin"
    block = os.urandom(MIB)
    with open(large, "wb") as f:
        f.writelines(block for _ in range(LARGE // MIB))
    os.chown(large, 1000, 1000)
    expected = sha256_of(large)
    cookie = browser_cookie(hub, OWNER, OWNER_PASSWORD)
    alice = token(hub.token_for(OWNER, OWNER_PASSWORD))
    deployment["state"].update(alice=alice, expected=expected, large=large)

    # the browser's download link: its cookie is the login
    received = deployment["work"] / "received.bin"
    status, _ = curl(real_node, deployment, f"{API}download/private/large.bin", "-H", f"Cookie: {cookie}",
                     output=received)
    assert status == 200 and sha256_of(received) == expected
    received.unlink()
    # a range, and a folder as a zip
    status, body = curl(real_node, deployment, f"{API}download/private/large.bin", *alice,
                        "-H", "Range: bytes=0-1023")
    with open(large, "rb") as f:
        assert (status, body) == (206, f.read(1024))
    status, body = curl(real_node, deployment, f"{API}download-zip/private?path=large.bin", *alice)
    assert status == 200 and body[:4] == b"PK\x03\x04"

    # an upload in chunks bigger than ingress-nginx's default body size
    status, upload = start_upload(real_node, deployment, alice, "copy.bin", LARGE)
    assert status == 201, upload
    assert send_chunks(real_node, deployment, alice, upload["id"], large) == [200] * (LARGE // CHUNK - 1) + [201]
    placed = folder / "copy.bin"
    assert sha256_of(placed) == expected
    placed.unlink()

    # the chunks reached the dashboard's own pod (its access log)
    log = real_node.kubectl("logs", "-n", deployment["ns"], f"deployment/{NAME}-dashboard", "--tail=200").stdout
    assert f"PUT {API}uploads/{upload['id']}" in log, log[-3000:]


def test_anonymous_and_another_user_are_refused(real_node, deployment):
    state = deployment["state"]
    status, body = curl(real_node, deployment, f"{API}download/private/large.bin")
    assert status in (401, 403) and len(body) < 10_000, (status, body[:200])
    status, _ = curl(real_node, deployment, f"{API}download-zip/private?path=large.bin")
    assert status in (401, 403)
    status, _ = start_upload(real_node, deployment, ("-H", "X-None: 1"), "anon.bin", 10)
    assert status in (401, 403)
    # a forged token is no login either
    status, _ = curl(real_node, deployment, f"{API}download/private/large.bin", *token("forged-" + "0" * 32))
    assert status in (401, 403)

    bob = token(deployment["hub"].token_for(OTHER, OTHER_PASSWORD))
    # bob's private domain is his own: alice's file is not in it, and acting as her is refused
    status, _ = curl(real_node, deployment, f"{API}download/private/large.bin", *bob)
    assert status == 404
    status, body = curl(real_node, deployment, f"{API}download/private/large.bin?as={OWNER}", *bob)
    assert status == 403, body[:500]
    # alice's unfinished upload: bob can neither see it nor send bytes into it
    status, upload = start_upload(real_node, deployment, state["alice"], "pending.bin", 4)
    assert status == 201
    status, _ = curl(real_node, deployment, f"{API}uploads/{upload['id']}", *bob)
    assert status == 404
    part = deployment["work"] / "four.bin"
    part.write_bytes(b"evil")
    status, _ = curl(real_node, deployment, f"{API}uploads/{upload['id']}", "-T", str(part), *bob,
                     "-H", "Upload-Offset: 0", "-H", "Expect:")
    assert status == 404
    status, body = curl(real_node, deployment, f"{API}uploads/{upload['id']}", *state["alice"])
    assert status == 200 and json.loads(body)["offset"] == 0
    assert not (deployment["private"] / OWNER / "pending.bin").exists()


def test_the_dashboard_port_is_closed_to_other_pods(real_node, deployment, python_image, node_namespace):
    """The NetworkPolicy: the ingress controller's namespace gets in (the
    tests above), a pod elsewhere does not."""
    url = f"http://{NAME}-dashboard.{deployment['ns']}.svc:8080/services/karvdash/health"
    script = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=5)"
    real_node.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe", "namespace": node_namespace},
                     "spec": {"restartPolicy": "Never", "imagePullSecrets": [{"name": "karvdash-node-registry"}],
                              "containers": [{"name": "probe", "image": python_image,
                                              "command": ["python3", "-c", script]}]}})

    def phase():
        pod = json.loads(real_node.kubectl("get", "pod", "probe", "-n", node_namespace, "-o", "json").stdout)
        return pod["status"].get("phase") if pod["status"].get("phase") in ("Succeeded", "Failed") else None

    try:
        assert wait_for(phase, 120, "the probe pod done") == "Failed"
    except TimeoutError:
        pytest.fail(describe(real_node, node_namespace))
    logs = real_node.kubectl("logs", "probe", "-n", node_namespace).stdout
    assert "timed out" in logs or "Connection refused" in logs or "URLError" in logs, logs


def test_download_times_direct_proxied_and_raw(real_node, deployment):
    state = deployment["state"]
    large, work = state["large"], deployment["work"]
    received = work / "timed.bin"
    times: dict[str, list[float]] = {"raw copy": [], "direct": [], "through the proxy": []}

    def download(host: str) -> None:
        status, _ = curl(real_node, deployment, f"{API}download/private/large.bin", *state["alice"],
                         host=host, output=received)
        assert status == 200
        fsync(received)

    def raw() -> None:
        shutil.copyfile(large, received)
        fsync(received)

    for _ in range(ROUNDS):  # interleaved: the machine's load falls on every way alike
        for what, run in (("raw copy", raw), ("direct", lambda: download(DOMAIN)),
                          ("through the proxy", lambda: download(PROXIED))):
            started = time.perf_counter()
            run()
            times[what].append(time.perf_counter() - started)
            assert os.path.getsize(received) == LARGE
            received.unlink()
    report_times("download", times)


def test_upload_times_direct_and_raw(real_node, deployment):
    """256 MiB in 64 MiB chunks on the direct path (the proxy's Ingress
    takes ingress-nginx's 1 MiB bodies only), against a raw copy."""
    state = deployment["state"]
    large, work = state["large"], deployment["work"]
    copied = work / "copied.bin"
    parts = []  # the chunks as the files curl sends, made before any clock starts
    with open(large, "rb") as f:
        for offset in range(0, LARGE, CHUNK):
            part = work / f"timed-part-{offset // CHUNK}.bin"
            part.write_bytes(os.pread(f.fileno(), CHUNK, offset))
            parts.append((offset, part))
    times: dict[str, list[float]] = {"raw copy": [], "direct": []}

    def upload(name: str) -> None:
        status, started = start_upload(real_node, deployment, state["alice"], name, LARGE)
        assert status == 201, started
        for offset, part in parts:
            status, _ = curl(real_node, deployment, f"{API}uploads/{started['id']}", "-T", str(part),
                             *state["alice"], "-H", f"Upload-Offset: {offset}", "-H", "Expect:")
            assert status == (201 if offset + CHUNK >= LARGE else 200)

    def raw() -> None:
        shutil.copyfile(large, copied)
        fsync(copied)
        copied.unlink()

    for round_ in range(ROUNDS):
        for what, run in (("raw copy", raw), ("direct", lambda: upload(f"timed-{round_}.bin"))):
            started = time.perf_counter()
            run()
            times[what].append(time.perf_counter() - started)
    for round_ in range(ROUNDS):
        uploaded = deployment["private"] / OWNER / f"timed-{round_}.bin"
        assert uploaded.stat().st_size == LARGE
        uploaded.unlink()
    report_times("upload", times)


def report_times(operation: str, times: dict[str, list[float]]) -> None:
    medians = {what: statistics.median(seconds) for what, seconds in times.items()}
    for what, seconds in medians.items():
        record_timing(f"{operation} of {LARGE // MIB} MiB through the ingress, {what}", seconds)
    print(f"{operation} of {LARGE // MIB} MiB, median of {ROUNDS}: "
          + ", ".join(f"{what} {seconds:.2f} s ({seconds / medians['raw copy']:.2f}x raw)"
                      for what, seconds in medians.items())
          + f"; load average {os.getloadavg()[0]:.2f}")


def test_the_direct_paths_do_not_pass_the_proxy(real_node, deployment):
    """With no proxy running, downloads and uploads still work through the
    ingress; every other path of the dashboard fails."""
    ns, state = deployment["ns"], deployment["state"]
    real_node.kubectl("scale", "deployment", f"{NAME}-proxy", "-n", ns, "--replicas=0")
    try:
        wait_for(lambda: not json.loads(real_node.kubectl("get", "pods", "-n", ns, "-l",
                                                          "app.kubernetes.io/component=proxy", "-o",
                                                          "json").stdout)["items"] or None,
                 120, "the proxy's pods gone")
        status, _ = curl(real_node, deployment, f"{API}files/private/", *state["alice"])
        assert status in (502, 503, 504), status
        received = deployment["work"] / "noproxy.bin"
        status, _ = curl(real_node, deployment, f"{API}download/private/large.bin", *state["alice"],
                         output=received)
        assert status == 200 and sha256_of(received) == state["expected"]
        received.unlink()
        source = deployment["work"] / "small.bin"
        source.write_bytes(os.urandom(3 * MIB))
        status, upload = start_upload(real_node, deployment, state["alice"], "noproxy.bin", 3 * MIB)
        assert status == 201, upload
        assert send_chunks(real_node, deployment, state["alice"], upload["id"], source) == [201]
        assert (deployment["private"] / OWNER / "noproxy.bin").read_bytes() == source.read_bytes()
    finally:
        real_node.kubectl("scale", "deployment", f"{NAME}-proxy", "-n", ns, "--replicas=1")
