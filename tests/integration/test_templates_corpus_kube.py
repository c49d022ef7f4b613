"""The corpus of malicious templates (tests/templates_corpus) on the real
API server: as one user (alice), through the stores and through a running
dashboard, with another user (bob) as the neighbour.

What must hold, and what the probe prints: 0 objects outside alice's
namespace, 0 cluster-scoped objects, 0 ingress hosts other than alice's own,
0 answers 500, every refusal a 400 naming the problem, and bob's requests
answered within 1 s while alice's worst templates are refused.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from kubernetes import client

from karvdash_hub.core.labels import OWNER_LABEL
from karvdash_hub.core.settings import load_settings
from karvdash_hub.namespaces import objects
from karvdash_hub.services import templates as st
from karvdash_hub.services.store import InstanceError, InstanceStore, UserTemplateStore
from tests.hubprocess import HUB_COMMAND, RunningHub, free_port, hub_environment
from tests.integration.dashboardsession import DashboardAPI, ensure_user
from tests.integration.test_chart_kube import install_crds
from tests.integration.test_instances_kube import async_api
from tests.templates_corpus import cases

pytestmark = [pytest.mark.kube, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_CRD = ROOT / "chart" / "karvdash-hub" / "crds" / "template-crd.yaml"
DOMAIN = "example.test"
CASES = cases()
# the templates that cost the most to refuse, sent again while bob is timed
WORST = [c for c in CASES if c.name in (
    "alias-bomb", "objects-3500", "nodes-12000", "nesting-20000", "block-nesting-20000", "size-300k",
    "value-amplification")]
NEIGHBOUR_SECONDS = 1.0


@pytest.fixture(scope="module")
def people(kube_cluster, kube_api_client):
    install_crds(kube_cluster, kube_api_client, [TEMPLATE_CRD])
    suffix = uuid.uuid4().hex[:6]
    names = (f"alice{suffix}", f"bob{suffix}")
    settings = load_settings(environ={})
    core = client.CoreV1Api(kube_api_client)
    for name in names:
        core.create_namespace(objects.namespace(settings, name))
    yield names
    for name in names:
        core.delete_namespace(settings.user_namespace(name))


def namespace_of(user: str) -> str:
    return load_settings(environ={}).user_namespace(user)


def counts(api_client, user: str) -> dict[str, int]:
    """What the probe counts, from the API server's point of view."""
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    networking, rbac = client.NetworkingV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    owned = f"{OWNER_LABEL}={user}"
    namespaced = [
        *core.list_config_map_for_all_namespaces(label_selector=owned).items,
        *core.list_secret_for_all_namespaces(label_selector=owned).items,
        *core.list_service_for_all_namespaces(label_selector=owned).items,
        *core.list_service_account_for_all_namespaces(label_selector=owned).items,
        *apps.list_deployment_for_all_namespaces(label_selector=owned).items,
        *networking.list_ingress_for_all_namespaces(label_selector=owned).items,
        *rbac.list_role_for_all_namespaces(label_selector=owned).items,
        *rbac.list_role_binding_for_all_namespaces(label_selector=owned).items,
    ]
    outside = [o for o in namespaced if o.metadata.namespace != namespace_of(user)]
    cluster_scoped = [
        *rbac.list_cluster_role(label_selector=owned).items,
        *rbac.list_cluster_role_binding(label_selector=owned).items,
        *(n for n in core.list_namespace(label_selector=owned).items if n.metadata.name != namespace_of(user)),
    ]
    hosts = []
    for ingress in networking.list_ingress_for_all_namespaces().items:
        if ingress.metadata.namespace != namespace_of(user):
            continue
        spec = ingress.spec
        hosts += [r.host for r in spec.rules or []] + [h for t in spec.tls or [] for h in t.hosts or []]
        if spec.default_backend is not None or any(r.host is None for r in spec.rules or []):
            hosts.append("*")
    foreign = [h for h in hosts if not (h or "").endswith(f"-{user}.{DOMAIN}")]
    return {"outside": len(outside), "cluster_scoped": len(cluster_scoped), "foreign_hosts": len(foreign),
            "hosts": len(hosts)}


# --- through the stores ---------------------------------------------------------------------


async def test_the_corpus_through_the_stores(kube_cluster, kube_api_client, people, tmp_path):
    alice, _ = people
    namespace = namespace_of(alice)
    api = await async_api(kube_cluster)
    try:
        store = InstanceStore(api, "default", discovery_cache=str(tmp_path / "discovery.json"))
        user_templates = UserTemplateStore(store)
        context = st.RenderContext(username="", namespace="", hostname="",
                                   auth_url=f"https://{DOMAIN}/services/karvdash/ingress-auth/check",
                                   signin_url=f"https://{DOMAIN}/services/karvdash/ingress-auth/signin")
        wrong = []
        for case in CASES:
            try:
                template = await user_templates.add(alice, namespace, case.text, taken_ids=(), policy=context)
                if case.stage == "add":
                    wrong.append((case.name, "added"))
                    continue
                values = {**template.form_defaults(), **case.values}
                instance = await store.create(template, values, owner=alice, namespace=namespace, context=context,
                                              domain=DOMAIN)
                if case.status != 201:
                    wrong.append((case.name, "created"))
                elif case.name == "emoji-value":
                    config = client.CoreV1Api(kube_api_client).read_namespaced_config_map(instance.name, namespace)
                    # stored as sent, emoji and joiners included
                    assert config.data["text"] == case.values["TEXT"]
            except InstanceError as error:
                if (error.status, case.message in error.message) != (case.status, True):
                    wrong.append((case.name, error.status, error.message))
        assert wrong == []
        # what was stored still reads back, and every refusal left nothing
        listed, problems = await user_templates.list(alice, namespace)
        assert problems == [] and len(listed) == sum(1 for c in CASES if c.stage == "create")
        found = counts(kube_api_client, alice)
        # the corpus' one legitimate ingress: its rule and TLS host, both alice's own
        assert found == {"outside": 0, "cluster_scoped": 0, "foreign_hosts": 0, "hosts": 2}
        # a template stored under an older, larger bound is refused when used
        many = st.parse_template("kind: Template\nname: Many\nvariables:\n- name: NAME\n  default: m\n" + "".join(
            f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: $NAME-{i}\n" for i in range(3)), "many", "user")
        with pytest.raises(InstanceError) as error:
            await store.create(many, {"NAME": "m"}, owner=alice, namespace=namespace,
                               context=st.RenderContext(username="", namespace="", hostname="", max_objects=2),
                               domain=DOMAIN)
        assert (error.value.status, error.value.message) == (
            400, "has 3 objects; a template may have at most 2 (templateMaxObjects)")
    finally:
        await api.close()


# --- through the dashboard, with a neighbour -------------------------------------------------


def start_patient_hub(state: Path, env: dict, timeout: float = 240) -> RunningHub:
    """start_hub, waiting through slow answers too: the control plane and
    other tests share two cores, and a first answer can take seconds."""
    state.mkdir(parents=True, exist_ok=True)
    port, hub_port, api_port = free_port(), free_port(), free_port()
    environment = hub_environment(state, env)
    with open(state / "hub.log", "wb") as log:
        process = subprocess.Popen(
            [*HUB_COMMAND, f"--port={port}", f"--JupyterHub.hub_port={hub_port}",
             f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{api_port}", "--ip=127.0.0.1"],
            env=environment, stdout=log, stderr=subprocess.STDOUT, cwd=state, start_new_session=True)
    hub = RunningHub(url=f"http://127.0.0.1:{port}", state_dir=state, log_path=state / "hub.log", process=process,
                     admin_password=environment["KARVDASH_ADMIN_PASSWORD"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(hub.hub_api, timeout=10).status_code == 200:
                return hub
        except requests.RequestException:
            pass
        time.sleep(0.5)
    hub.stop()
    raise RuntimeError(f"karvdash-hub did not start:\n{hub.log()}")


@pytest.fixture(scope="module")
def hub(kube_cluster, people, tmp_path_factory):
    state = tmp_path_factory.mktemp("hub")
    running = start_patient_hub(state, env={
        "KUBECONFIG": str(kube_cluster.kubeconfig),
        "KARVDASH_MODE": "kubernetes",
        "KARVDASH_KUBECONFIG": str(kube_cluster.kubeconfig),
        # names hosts only; nothing is sent there
        "KARVDASH_INGRESS_URL": f"http://{DOMAIN}",
    })
    for name in people:
        ensure_user(running, name)
    yield running
    running.stop()


class Neighbour(threading.Thread):
    """bob, asking for his services again and again, timing every answer."""

    def __init__(self, api: DashboardAPI):
        super().__init__(daemon=True)
        self.api = api
        self.stop = threading.Event()
        self.times: list[float] = []
        self.statuses: list[int] = []

    def run(self):
        while not self.stop.is_set():
            started = time.monotonic()
            response = self.api("GET", "services", timeout=30)
            self.times.append(time.monotonic() - started)
            self.statuses.append(response.status_code)


def test_the_dashboard_refuses_the_corpus_and_keeps_answering_the_neighbour(hub, people, kube_api_client):
    alice, bob = people
    alice_api = DashboardAPI(hub, token=hub.token_for(alice))
    bob_api = DashboardAPI(hub, token=hub.token_for(bob))
    assert bob_api("GET", "services").status_code == 200
    neighbour = Neighbour(bob_api)
    answers, wrong = [], []
    neighbour.start()
    try:
        for case in CASES + WORST * 3:
            added = alice_api("POST", "templates", json={"data": case.text})
            answers.append(added.status_code)
            if added.status_code == 201:
                created = alice_api("POST", "services", json={"id": added.json()["id"], **case.values})
                answers.append(created.status_code)
                outcome = (created.status_code, created.json().get("message", ""))
                expected_stage = "create"
            else:
                outcome = (added.status_code, added.json().get("message", ""))
                expected_stage = "add"
            if expected_stage != case.stage or outcome[0] != case.status or case.message not in outcome[1]:
                wrong.append((case.name, expected_stage, *outcome))
    finally:
        neighbour.stop.set()
        neighbour.join(timeout=60)
    found = counts(kube_api_client, alice)
    summary = {
        "cases": len(CASES), "requests": len(answers), "objects_outside_namespace": found["outside"],
        "cluster_scoped": found["cluster_scoped"], "foreign_hosts": found["foreign_hosts"],
        "answers_500": sum(1 for s in answers + neighbour.statuses if s >= 500),
        "neighbour_requests": len(neighbour.times), "neighbour_slowest_s": round(max(neighbour.times), 3),
    }
    print(f"\ntemplate corpus probe: {summary}")
    assert wrong == []
    assert set(neighbour.statuses) == {200}
    assert summary["objects_outside_namespace"] == summary["cluster_scoped"] == summary["foreign_hosts"] == 0
    assert summary["answers_500"] == 0
    assert summary["neighbour_slowest_s"] < NEIGHBOUR_SECONDS
