"""A protected service on the real node, behind a real nginx doing what
ingress-nginx does with the annotations the product writes: alice starts the
shipped nginx template through the dashboard's API; it serves her private
folder; its Ingress carries auth-url and auth-signin; nginx asks the
dashboard on every request (auth_request): anonymous is sent to sign in
(and from there to the hub's login), alice gets in after signing in, bob
gets 403.

nginx runs as a pod in the namespace ``ingress-nginx`` (the
``ingressControllerNamespace`` default), not as a process in the node's
network namespace: the NetworkPolicy the hub puts in every user namespace
lets the ingress controller in by its namespace, so a pod there goes through
that rule (enforced by kube-router) as a real controller does, and it finds
the dashboard and the service by their cluster DNS names. Its configuration
comes from the Ingress the product made (tests/ingressnginx.py).

Docker Hub is out of reach: the template's image (``nginx:1.27-alpine``) is
an image of that name that the node already holds, built from Debian's nginx
(tools/images/build.sh nginx) and loaded into containerd the way ``kind
load`` does, so the template runs unchanged with IfNotPresent. The same
image, from the node's registry, is the ingress nginx.

The tests run in file order and build on each other (one chart install for
the module)."""

from __future__ import annotations

import contextlib
import http.client
import json
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from karvdash_hub.services.ingressauth import COOKIE_NAME
from tests.kube.fixtures import wait_for
from tests.node.chartusers import (
    chart_hub,
    notebook_profile_files,
    registry_values,
    start_server,
    stop_server,
)
from tests.node.conftest import build_image, installed_chart
from tests.ingressnginx import LISTEN_PORT, nginx_conf
from tests.node.test_real_node import describe, pod_ready

pytestmark = [pytest.mark.node, pytest.mark.integration]

NS = "karvdash-services"
OWNER, OWNER_PASSWORD = "alice", "alice-password-1"
OTHER, OTHER_PASSWORD = "bob", "bob-password-1"
OWNER_NS = f"karvdash-{OWNER}"
INGRESS_NS = "ingress-nginx"
DOMAIN = "karvdash.example.test"  # installed_chart's ingressURL host
TEMPLATE_IMAGE = "docker.io/library/nginx:1.27-alpine"  # service_templates/nginx.template.yaml
SITE = "<h1>alice's site</h1>\n"
DASHBOARD = "/services/karvdash/"


def load_image(cluster, archive, name: str) -> None:
    """Put an OCI archive into the node's containerd under ``name`` (as ``kind load`` does)."""
    cluster.ctr("images", "import", "--local", str(archive), timeout=300)
    # the archive names itself (tools/images/oci.py's io.containerd.image.name)
    cluster.ctr("images", "tag", "--force", "localhost/karvdash-base/nginx:1.22-bookworm", name)


@contextlib.contextmanager
def ingress_nginx(cluster, image: str, ingresses: list[dict], services: list[dict] = ()):
    """An nginx pod in ``ingress-nginx`` serving ``ingresses`` (``services``:
    those whose ports they name); yields its pod IP."""
    cluster.kubectl("create", "namespace", INGRESS_NS)
    try:
        secret = cluster.pull_secret(INGRESS_NS)
        cluster.apply({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "nginx", "namespace": INGRESS_NS},
                       "data": {"nginx.conf": nginx_conf(ingresses, services=services)}})
        cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx", "namespace": INGRESS_NS},
                       "spec": {"imagePullSecrets": [{"name": secret}], "terminationGracePeriodSeconds": 1,
                                "containers": [{"name": "nginx", "image": image,
                                                "command": ["nginx", "-c", "/etc/ingress/nginx.conf",
                                                            "-g", "daemon off;"],
                                                "ports": [{"containerPort": LISTEN_PORT}],
                                                "readinessProbe": {"tcpSocket": {"port": LISTEN_PORT},
                                                                   "periodSeconds": 1},
                                                "volumeMounts": [{"name": "conf", "mountPath": "/etc/ingress"}]}],
                                "volumes": [{"name": "conf", "configMap": {"name": "nginx"}}]}})
        try:
            wait_for(lambda: pod_ready(cluster, INGRESS_NS, "nginx") or None, 120, "the ingress nginx ready")
        except TimeoutError:
            pytest.fail(describe(cluster, INGRESS_NS))
        pod = json.loads(cluster.kubectl("get", "pod", "nginx", "-n", INGRESS_NS, "-o", "json").stdout)
        yield pod["status"]["podIP"]
    finally:
        cluster.kubectl("delete", "namespace", INGRESS_NS, "--wait=false", check=False)


@pytest.fixture(scope="module")
def site(real_node, hub_image, notebook_image, tmp_path_factory):
    """The chart; alice and bob signed up; alice's namespace made by the hub
    (her server started and stopped); the template's image on the node."""
    nginx = build_image("nginx")
    load_image(real_node, nginx, TEMPLATE_IMAGE)
    ingress_image = real_node.push_image(nginx, "karvdash-base/nginx:1.22-bookworm")
    work = tmp_path_factory.mktemp("services")
    with contextlib.ExitStack() as stack:
        stack.callback(real_node.kubectl, "delete", "namespace", OWNER_NS, "--wait=false", check=False)
        ns = stack.enter_context(installed_chart(real_node, hub_image, work, NS,
                                                 {"karvdash": registry_values(real_node)},
                                                 state_files=notebook_profile_files(notebook_image)))
        hub = stack.enter_context(chart_hub(real_node, ns, work))
        hub.create_user(OWNER, OWNER_PASSWORD)
        hub.create_user(OTHER, OTHER_PASSWORD)
        token = hub.token_for(OWNER, OWNER_PASSWORD)
        start_server(real_node, hub, OWNER, token)
        stop_server(real_node, hub, OWNER, token)
        yield {"ns": ns, "hub": hub, "token": token, "files": work / "files", "ingress_image": ingress_image,
               "state": {}}


def service_get(cluster, pod_ip: str, host: str, cookie: str | None = None, path: str = "/"):
    """GET through the ingress nginx with ``Host: host``, as a browser asking
    for the service's URL; (status, headers, body)."""

    def request():
        conn = http.client.HTTPConnection(pod_ip, LISTEN_PORT, timeout=15)
        try:
            headers = {"Host": host}
            if cookie:
                headers["Cookie"] = f"{COOKIE_NAME}={cookie}"
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    return cluster.in_netns(request)


def sign_in(hub, username: str, password: str, rd: str) -> tuple[str, str]:
    """What a browser does at ``auth-signin``: the hub's login, the
    dashboard's sign-in page; returns (the service cookie's value, where the
    sign-in page sends the browser)."""
    session = hub.login(username, password)
    url = f"{hub.url}{DASHBOARD}ingress-auth/signin?rd={rd}"
    for _ in range(10):
        response = session.get(url, allow_redirects=False, timeout=30)
        for header in response.raw.headers.getlist("Set-Cookie"):
            cookie = SimpleCookie(header)
            if COOKIE_NAME in cookie:
                morsel = cookie[COOKIE_NAME]
                assert morsel["domain"].lstrip(".") == DOMAIN and morsel["httponly"], header
                return morsel.value, response.headers["Location"]
        assert response.status_code in (301, 302, 303), (response.status_code, response.text[:2000])
        location = response.headers["Location"]
        parts = urlsplit(location)
        # the hub's OAuth round trip: same-site paths, followed through the relay
        url = hub.url + parts.path + (f"?{parts.query}" if parts.query else "") if not parts.netloc or \
            parts.hostname in ("127.0.0.1", DOMAIN) else location
    raise AssertionError(f"no {COOKIE_NAME} cookie after signing in as {username}")


def test_the_nginx_template_runs_through_the_dashboard_api(real_node, site):
    www = site["files"] / "private" / OWNER / "www"
    www.mkdir(parents=True)
    (www / "index.html").write_text(SITE)
    hub = site["hub"]
    response = requests.post(f"{hub.url}{DASHBOARD}api/services", json={"id": "nginx", "NAME": "site"},
                             headers={"Authorization": f"token {site['token']}"}, timeout=60)
    assert response.status_code == 201, response.text
    instance = response.json()
    assert instance["url"] == f"https://site-{OWNER}.{DOMAIN}" and instance["auth"] is True, instance

    def ready():
        listed = requests.get(f"{hub.url}{DASHBOARD}api/services", timeout=30,
                              headers={"Authorization": f"token {site['token']}"}).json()
        status = {s["name"]: s["status"] for s in listed}.get(instance["name"])
        assert status != "failed", listed
        return status == "ready" or None

    try:
        wait_for(ready, 120, "the nginx service ready")
    except (TimeoutError, AssertionError):
        pytest.fail(describe(real_node, OWNER_NS))
    pods = json.loads(real_node.kubectl("get", "pods", "-n", OWNER_NS, "-l", f"app={instance['name']}",
                                        "-o", "json").stdout)["items"]
    assert [p["spec"]["containers"][0]["image"] for p in pods] == ["nginx:1.27-alpine"]
    site["state"]["instance"] = instance["name"]


def test_the_ingress_carries_the_hubs_login(real_node, site):
    name = site["state"]["instance"]
    ingress = json.loads(real_node.kubectl("get", "ingress", name, "-n", OWNER_NS, "-o", "json").stdout)
    annotations = ingress["metadata"]["annotations"]
    dashboard = f"http://kd-karvdash-hub-dashboard.{site['ns']}.svc:8080{DASHBOARD}"
    assert annotations["nginx.ingress.kubernetes.io/auth-url"] == f"{dashboard}ingress-auth/check/{OWNER}/{name}"
    assert annotations["nginx.ingress.kubernetes.io/auth-signin"] == f"https://{DOMAIN}{DASHBOARD}ingress-auth/signin"
    assert ingress["spec"]["rules"][0]["host"] == f"{name}-{OWNER}.{DOMAIN}"
    site["state"]["ingress"] = ingress


@pytest.fixture(scope="module")
def ingress(real_node, site):
    with ingress_nginx(real_node, site["ingress_image"], [site["state"]["ingress"]]) as pod_ip:
        yield pod_ip


def test_anonymous_is_sent_to_sign_in(real_node, site, ingress):
    host = f"{site['state']['instance']}-{OWNER}.{DOMAIN}"
    status, headers, _ = service_get(real_node, ingress, host, path="/index.html")
    assert status == 302, (status, headers)
    location = urlsplit(headers["Location"])
    assert (location.scheme, location.netloc, location.path) == ("https", DOMAIN, f"{DASHBOARD}ingress-auth/signin")
    assert parse_qs(location.query) == {"rd": [f"http://{host}/index.html"]}
    # a forged or foreign cookie is no sign-in either
    status, _, _ = service_get(real_node, ingress, host, cookie="alice|forged")
    assert status == 302
    # and the sign-in page itself is behind the hub's login
    hub = site["hub"]
    response = requests.get(f"{hub.url}{location.path}?{location.query}", allow_redirects=True, timeout=30)
    assert response.status_code == 200 and "/hub/login" in response.url, response.url


def test_the_owner_gets_in_after_signing_in(real_node, site, ingress):
    host = f"{site['state']['instance']}-{OWNER}.{DOMAIN}"
    rd = f"http://{host}/index.html"
    cookie, back = sign_in(site["hub"], OWNER, OWNER_PASSWORD, rd)
    assert back == rd
    status, _, body = service_get(real_node, ingress, host, cookie=cookie, path="/index.html")
    assert (status, body.decode()) == (200, SITE)
    # the site is the folder itself: a change on the host shows at once
    (site["files"] / "private" / OWNER / "www" / "index.html").write_text("<h1>changed</h1>\n")
    status, _, body = service_get(real_node, ingress, host, cookie=cookie, path="/index.html")
    assert (status, body) == (200, b"<h1>changed</h1>\n")


def test_another_user_gets_403(real_node, site, ingress):
    host = f"{site['state']['instance']}-{OWNER}.{DOMAIN}"
    cookie, _ = sign_in(site["hub"], OTHER, OTHER_PASSWORD, f"http://{host}/")
    status, _, body = service_get(real_node, ingress, host, cookie=cookie)
    assert status == 403, (status, body)
    assert b"changed" not in body
