"""The Helm chart on a real API server: every rendered object passes a
server-side dry run (with stand-ins for the cert-manager and Datashim CRDs,
tests/integration/crds/), `helm install` brings every Deployment to
available (kwok plays the node; no container runs), `helm uninstall`
leaves nothing but the CRDs, and the dashboard's Kubernetes code (services
from every shipped template, users' templates, datasets of both Datashim API
groups, exec) works with the chart's dashboard service account and nothing
more, while what docs/kubernetes-permissions.md says it must not do is
refused."""

from __future__ import annotations

import base64
import json
import re
import shlex
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from karvdash_hub.core.kubeapi import api_client_from_environment
from karvdash_hub.core.labels import INSTANCE_LABEL
from karvdash_hub.core.settings import env_names, load_settings
from karvdash_hub.datasets import model as ds
from karvdash_hub.datasets.store import DatasetStore
from karvdash_hub.namespaces import objects
from karvdash_hub.services import templates as st
from karvdash_hub.services.catalogue import file_catalogue
from karvdash_hub.services.store import (
    URL_PREFIX_CLAIM,
    InstanceError,
    InstanceStore,
    UserTemplateStore,
)
from tests.kube.fixtures import wait_for

pytestmark = [pytest.mark.kube, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "chart" / "karvdash-hub"
CRDS = Path(__file__).resolve().parent / "crds"
BASE = {
    "karvdash": {"ingressURL": "https://example.test", "filesURL": "file:///mnt/karvdash/files",
                 "stateHostPath": "/mnt/karvdash/state"},
}
VALUE_SETS = {
    "file": {},
    "nfs": {"karvdash": {"filesURL": "nfs://nfs.example.test/export/karvdash"}},
    "datasets-on": {"karvdash": {"datasetsAvailable": True}},
    "datasets-off": {"karvdash": {"datasetsAvailable": False}, "networkPolicy": {"enabled": False}},
    "oauth": {"karvdash": {"authenticator": "oauth"},
              "hub": {"config": {"GenericOAuthenticator": {"client_id": "karvdash", "client_secret": "s3cret"}},
                      "db": {"url": "postgresql://hub@db.example.test/hub"}}},
    "no-cert-manager": {"webhook": {"certManager": {"enabled": False},
                                    "tls": {"secretName": "webhook-tls", "caBundle": "not checked by the API"}}},
    # a Karvdash 2.x values file, every key of Karvdash's README table
    "karvdash-2": yaml.safe_load((ROOT / "tests" / "values" / "karvdash-2.yaml").read_text()),
}


def merged(values: dict) -> dict:
    out = json.loads(json.dumps(BASE))
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def install_crds(cluster, api_client, paths: list[Path] | None = None) -> None:
    """CRDs from ``paths`` (files), by default the cert-manager and Datashim
    stand-ins; idempotent (apply)."""
    paths = paths or sorted(CRDS.glob("*.yaml"))
    for path in paths:
        cluster.kubectl("apply", "-f", str(path))
    ext = client.ApiextensionsV1Api(api_client)
    crds = [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]

    def established():
        for name in (crd["metadata"]["name"] for crd in crds):
            crd = ext.read_custom_resource_definition(name)
            if not any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])):
                return False
        return True

    wait_for(established, timeout=30, what="test CRDs established")

    def served():
        # a new kind's storage answers 429 for a moment after Established
        for spec in (crd["spec"] for crd in crds):
            version = next(v["name"] for v in spec["versions"] if v.get("served"))
            if cluster.api("GET", f"/apis/{spec['group']}/{version}/{spec['names']['plural']}")[0] != 200:
                return False
        return True

    wait_for(served, timeout=30, what="test CRDs served")


def render_chart(cluster, directory: Path, values: dict, namespace: str, include_crds: bool = False) -> list[dict]:
    path = directory / f"values-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(merged(values)))
    args = ["template", "kd", str(CHART), "--namespace", namespace, "-f", str(path)]
    if include_crds:
        args.append("--include-crds")
    return [doc for doc in yaml.safe_load_all(cluster.helm(*args).stdout) if doc]


@pytest.fixture(scope="module")
def crds(kube_cluster, kube_api_client):
    install_crds(kube_cluster, kube_api_client)


def test_helm_lint(kube_cluster, tmp_path):
    for name, values in VALUE_SETS.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(merged(values)))
        out = kube_cluster.helm("lint", "--strict", str(CHART), "-f", str(path)).stdout
        assert "0 chart(s) failed" in out, (name, out)


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_rendered_object_passes_a_server_side_dry_run(kube_cluster, crds, kube_namespace, tmp_path, name):
    objects = render_chart(kube_cluster, tmp_path, VALUE_SETS[name], kube_namespace, include_crds=True)
    kinds = sorted({o["kind"] for o in objects})
    assert {"Deployment", "Service", "Secret", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
            "CustomResourceDefinition"} <= set(kinds)
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    proc = kube_cluster.kubectl("apply", "--dry-run=server", "--namespace", kube_namespace, "-f", str(manifest),
                                "-o", "name", check=False)
    assert proc.returncode == 0, proc.stderr
    accepted = proc.stdout.split()
    assert len(accepted) == len(objects), (accepted, kinds)


NAMESPACED = ("deployments,replicasets,pods,services,secrets,configmaps,serviceaccounts,roles,rolebindings,"
              "networkpolicies,ingresses,poddisruptionbudgets,persistentvolumeclaims,issuers,certificates")
CLUSTER_SCOPED = ("clusterroles,clusterrolebindings,mutatingwebhookconfigurations,validatingwebhookconfigurations,"
                  "persistentvolumes")


def labelled(cluster, kinds: str, namespace: str | None = None) -> list[str]:
    args = ["get", kinds, "-l", "app.kubernetes.io/instance=kd", "-o", "name"]
    if namespace:
        args += ["--namespace", namespace]
    return cluster.kubectl(*args).stdout.split()


def test_install_and_uninstall(kube_cluster, kube_api_client, crds, kube_namespace, tmp_path):
    apps = client.AppsV1Api(kube_api_client)
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(merged({"webhook": {"replicas": 2}})))
    try:
        kube_cluster.helm("install", "kd", str(CHART), "--namespace", kube_namespace, "-f", str(values),
                          "--wait", "--timeout", "120s", timeout=180)
        deployments = {d.metadata.name: d for d in apps.list_namespaced_deployment(kube_namespace).items}
        assert set(deployments) == {f"kd-karvdash-hub-{c}" for c in ("hub", "proxy", "dashboard", "webhook")}
        for name, deployment in deployments.items():
            available = [c for c in deployment.status.conditions or [] if c.type == "Available"]
            assert available and available[0].status == "True", name
            assert deployment.status.available_replicas == deployment.spec.replicas, name
        assert deployments["kd-karvdash-hub-webhook"].status.available_replicas == 2
        # the values file in the cluster is the one the hub reads
        secret = client.CoreV1Api(kube_api_client).read_namespaced_secret("kd-karvdash-hub-secrets", kube_namespace)
        rendered = tmp_path / "from-cluster.yaml"
        rendered.write_bytes(base64.b64decode(secret.data["values.yaml"]))
        assert load_settings(values_file=rendered, environ={}).mode == "kubernetes"
        # an upgrade keeps the generated tokens
        token = secret.data["dashboard-token"]
        kube_cluster.helm("upgrade", "kd", str(CHART), "--namespace", kube_namespace, "-f", str(values),
                          "--set", "karvdash.dashboardTitle=Lab", "--wait", "--timeout", "120s", timeout=180)
        again = client.CoreV1Api(kube_api_client).read_namespaced_secret("kd-karvdash-hub-secrets", kube_namespace)
        assert again.data["dashboard-token"] == token
        assert labelled(kube_cluster, CLUSTER_SCOPED)
    finally:
        kube_cluster.helm("uninstall", "kd", "--namespace", kube_namespace, "--wait", "--timeout", "120s",
                          check=False, timeout=180)

    def nothing_left():
        return not labelled(kube_cluster, NAMESPACED, kube_namespace) and not labelled(kube_cluster, CLUSTER_SCOPED)

    wait_for(nothing_left, timeout=60, what="every object of the release gone")
    remaining = kube_cluster.kubectl("get", "all,secrets,configmaps,serviceaccounts,roles,rolebindings,"
                                     "networkpolicies,ingresses,certificates,issuers", "--namespace", kube_namespace,
                                     "-o", "name").stdout.split()
    # only what Kubernetes itself keeps in every namespace
    assert [r for r in remaining if r not in ("serviceaccount/default", "configmap/kube-root-ca.crt")] == []
    # the CRDs stay (Helm never deletes them)
    try:
        client.ApiextensionsV1Api(kube_api_client).read_custom_resource_definition("templates.karvdash.io")
    except ApiException as e:  # pragma: no cover - reported as a failure
        pytest.fail(f"the Template CRD is gone: {e.status}")


# --- the dashboard with the chart's permissions and nothing more -------------------------------------

RBAC_NAMESPACE = "karvdash-chart-rbac"
PERMISSIONS_DOC = ROOT / "docs" / "kubernetes-permissions.md"
TEMPLATE_CRD = CHART / "crds" / "template-crd.yaml"
S3_DATASET = {"type": "s3-remote", "name": "climate", "endpoint": "https://s3.example.test", "bucket": "climate-data",
              "accessKeyID": "AKIACHARTTEST", "secretAccessKey": "chart-secret-value"}


def dashboard_settings(**settings):
    names = env_names()
    environ = {"KARVDASH_MODE": "kubernetes", "KARVDASH_INGRESS_URL": "https://example.test",
               **{names[key]: value for key, value in settings.items()}}
    return load_settings(environ=environ)


def service_account_kubeconfig(cluster, api_client, rendered: list[dict], component: str, path: Path):
    """Create the chart's service account of ``component`` with its ClusterRole
    and binding (as rendered for the namespace they name) and write a
    kubeconfig with a token of that account to ``path``. Returns a function
    that removes the cluster-wide objects."""
    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)

    def of_component(kind):
        return next(o for o in rendered if o["kind"] == kind and o["metadata"]["name"].endswith(f"-{component}"))

    account, role, binding = of_component("ServiceAccount"), of_component("ClusterRole"), of_component("ClusterRoleBinding")
    namespace = binding["subjects"][0]["namespace"]
    suffix = uuid.uuid4().hex[:6]
    role["metadata"]["name"] += f"-{suffix}"
    binding["metadata"]["name"] += f"-{suffix}"
    binding["roleRef"]["name"] = role["metadata"]["name"]
    core.create_namespaced_service_account(namespace, account)
    rbac.create_cluster_role(role)
    rbac.create_cluster_role_binding(binding)
    token = core.create_namespaced_service_account_token(
        account["metadata"]["name"], namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": cluster.server, "certificate-authority": str(cluster.ca)}}],
        "users": [{"name": component, "user": {"token": token}}],
        "contexts": [{"name": component, "context": {"cluster": "test", "user": component}}],
        "current-context": component,
    }))

    def remove():
        rbac.delete_cluster_role_binding(binding["metadata"]["name"])
        rbac.delete_cluster_role(role["metadata"]["name"])

    return remove


@pytest.fixture(scope="module")
def dashboard_account(kube_cluster, kube_api_client, crds, tmp_path_factory):
    """(kubeconfig of the chart's dashboard account, its user name); the
    Template CRD and the Dataset CRDs of both Datashim API groups exist."""
    directory = tmp_path_factory.mktemp("dashboard-rbac")
    older_datashim = directory / "datashim-hpsys.yaml"
    older_datashim.write_text((CRDS / "datashim.yaml").read_text().replace("datashim.io", "com.ie.ibm.hpsys"))
    install_crds(kube_cluster, kube_api_client, [TEMPLATE_CRD, older_datashim])
    core = client.CoreV1Api(kube_api_client)
    core.create_namespace({"metadata": {"name": RBAC_NAMESPACE}})
    rendered = render_chart(kube_cluster, directory, {}, RBAC_NAMESPACE)
    path = directory / "dashboard.kubeconfig"
    remove = service_account_kubeconfig(kube_cluster, kube_api_client, rendered, "dashboard", path)
    try:
        yield path, f"system:serviceaccount:{RBAC_NAMESPACE}:kd-karvdash-hub-dashboard"
    finally:
        remove()
        core.delete_namespace(RBAC_NAMESPACE)


@pytest.fixture
async def dashboard_api(dashboard_account):
    # the dashboard's own way to its API client, with the kubeconfig setting
    async with await api_client_from_environment(str(dashboard_account[0])) as api_client:
        yield api_client


@pytest.fixture
def user_namespace(kube_api_client):
    """A user with a namespace as the spawner makes it."""
    core = client.CoreV1Api(kube_api_client)
    settings = dashboard_settings()
    name = "c" + uuid.uuid4().hex[:10]
    core.create_namespace(objects.namespace(settings, name))
    yield name, settings.user_namespace(name)
    core.delete_namespace(settings.user_namespace(name))


def shipped_templates(tmp_path):
    catalogue, problems = file_catalogue(ROOT / "service_templates", tmp_path / "no-admin-templates")
    assert problems == []
    return catalogue


def render_context():
    check = f"http://kd-karvdash-hub-dashboard.{RBAC_NAMESPACE}.svc:8080/services/karvdash/ingress-auth/check"
    return st.RenderContext(username="", namespace="", hostname="", auth_url=check,
                            signin_url="https://example.test/services/karvdash/ingress-auth/signin")


def karvdash_objects(cluster, namespace: str) -> list[str]:
    """Every object of a service in ``namespace``, as the admin sees them."""
    kinds = "configmaps,secrets,services,serviceaccounts,deployments,statefulsets,ingresses,roles,rolebindings"
    return cluster.kubectl("get", kinds, "--namespace", namespace, "-l", INSTANCE_LABEL, "-o", "name").stdout.split()


async def test_every_shipped_template_as_the_dashboard(kube_cluster, dashboard_api, user_namespace, tmp_path):
    user, namespace = user_namespace
    store = InstanceStore(dashboard_api, RBAC_NAMESPACE, discovery_cache=str(tmp_path / "discovery.json"))
    catalogue = shipped_templates(tmp_path)
    prefixes = [f"lab{i}" for i in range(len(catalogue))]
    created = {}
    for template in catalogue.values():
        instance = await store.create(template, template.form_defaults(), owner=user, namespace=namespace,
                                      context=render_context(), domain="example.test", url_prefixes=prefixes)
        created[instance.name] = template.id
    assert {i.name: i.template_id for i in await store.list(user, namespace)} == created
    made = karvdash_objects(kube_cluster, namespace)
    # the Argo template's Roles and RoleBindings too: the dashboard holds what they grant
    assert [o for o in made if o.startswith("role.")] and [o for o in made if o.startswith("rolebinding.")]

    def claims():
        names = kube_cluster.kubectl("get", "configmaps", "--namespace", RBAC_NAMESPACE, "-o", "name").stdout.split()
        return [n for n in names if n.startswith("configmap/" + URL_PREFIX_CLAIM)]

    # URL prefixes are claimed in the hub's namespace, one per service with an ingress
    assert len(claims()) == len([t for t in catalogue.values() if t.has_ingress]) > 0
    for name in created:
        await store.delete(user, namespace, name)
    assert await store.list(user, namespace) == []
    assert claims() == []
    wait_for(lambda: not karvdash_objects(kube_cluster, namespace), timeout=60, what="every object of the services gone")


async def test_users_templates_as_the_dashboard(kube_cluster, dashboard_api, user_namespace, tmp_path):
    user, namespace = user_namespace
    store = InstanceStore(dashboard_api, RBAC_NAMESPACE, discovery_cache=str(tmp_path / "discovery.json"))
    templates = UserTemplateStore(store)
    catalogue = shipped_templates(tmp_path)
    text = catalogue["hello-kubernetes"].text.replace("name: Hello Kubernetes", "name: Chart Hello")
    added = await templates.add(user, namespace, text, taken_ids=catalogue)
    listed, problems = await templates.list(user, namespace)
    assert ([t.id for t in listed], problems) == ([added.id], [])
    instance = await store.create(added, {"NAME": "mine"}, owner=user, namespace=namespace, context=render_context(),
                                  domain="example.test")
    assert [i.template_id for i in await store.list(user, namespace)] == [added.id]
    await store.delete(user, namespace, instance.name)
    await templates.delete(user, namespace, added.id)
    assert await templates.list(user, namespace) == ([], [])


TEMPLATE_HEADER = """kind: Template
name: Wider
variables:
  - name: NAME
    default: wider
---
"""
# Roles and bindings a template could use to give its pods more than the dashboard holds
WIDER_THAN_HELD = {
    "quota-role": """apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: $NAME
rules:
  - apiGroups: [""]
    resources: [resourcequotas]
    verbs: [update]
""",
    "admin-binding": """apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: $NAME
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: admin
subjects:
  - kind: ServiceAccount
    name: default
    namespace: $NAMESPACE
""",
}


@pytest.mark.parametrize("name", sorted(WIDER_THAN_HELD))
async def test_a_template_cannot_grant_more_than_the_dashboard_holds(kube_cluster, dashboard_api, user_namespace,
                                                                     tmp_path, name):
    user, namespace = user_namespace
    store = InstanceStore(dashboard_api, RBAC_NAMESPACE, discovery_cache=str(tmp_path / "discovery.json"))
    template = st.parse_template(TEMPLATE_HEADER + WIDER_THAN_HELD[name], name, "user")
    with pytest.raises(InstanceError) as error:
        await store.create(template, {"NAME": "wider"}, owner=user, namespace=namespace, context=render_context(),
                           domain="example.test")
    assert "is attempting to grant RBAC permissions not currently held" in error.value.message
    assert await store.list(user, namespace) == []
    wait_for(lambda: not karvdash_objects(kube_cluster, namespace), timeout=60, what="the refused service cleaned up")


async def test_exec_is_authorised(kube_cluster, kube_api_client, dashboard_api, user_namespace, tmp_path):
    # kwok runs the command as a local process (tests/kube/kwok-exec.yaml): what
    # is tested is that the API server lets the dashboard through to the node
    # and that the output and exit status come back from its exec stream
    user, namespace = user_namespace
    store = InstanceStore(dashboard_api, RBAC_NAMESPACE, discovery_cache=str(tmp_path / "discovery.json"))
    template = shipped_templates(tmp_path)["hello-kubernetes"]
    await store.create(template, {**template.form_defaults(), "NAME": "ex"}, owner=user, namespace=namespace,
                       context=render_context(), domain="example.test")

    def running():
        pods = client.CoreV1Api(kube_api_client).list_namespaced_pod(namespace).items
        return [p.metadata.name for p in pods if p.status.phase == "Running"]

    wait_for(running, timeout=60, what="kwok to run the service's pod")
    [ran] = await store.exec(user, namespace, "ex", ["echo", "hello"])
    assert (ran["pod"], ran["output"], ran["exit_code"]) == (running()[0], "hello\n", 0)
    assert ran["error"] is None
    # kwok reports a command that failed as an InternalError without its code (a
    # kubelet sends NonZeroExitCode with it: tests/unit/test_services_exec.py)
    [failed] = await store.exec(user, namespace, "ex", ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (sorted(failed["output"].split()), failed["exit_code"]) == (["err", "out"], None)
    assert "exit status 3" in failed["error"], failed

    # the same call by an account without pods/exec (the chart's webhook) is refused as such
    rendered = render_chart(kube_cluster, tmp_path, {}, RBAC_NAMESPACE)
    remove = service_account_kubeconfig(kube_cluster, kube_api_client, rendered, "webhook", tmp_path / "webhook.kubeconfig")
    try:
        async with await api_client_from_environment(str(tmp_path / "webhook.kubeconfig")) as webhook_api:
            other = InstanceStore(webhook_api, RBAC_NAMESPACE, discovery_cache=str(tmp_path / "webhook-discovery.json"))
            with pytest.raises(InstanceError) as refused:
                await other._exec_in_pod(namespace, running()[0], "hello-kubernetes", ["echo", "hello"])
    finally:
        remove()
        client.CoreV1Api(kube_api_client).delete_namespaced_service_account("kd-karvdash-hub-webhook", RBAC_NAMESPACE)
    assert refused.value.status == 502 and "403" in refused.value.message, refused.value.message


@pytest.mark.parametrize("group", ["datashim.io", "com.ie.ibm.hpsys"])
async def test_datasets_of_both_api_groups_as_the_dashboard(kube_api_client, dashboard_api, user_namespace, group):
    user, namespace = user_namespace
    settings = dashboard_settings(datasetsAvailable="true", datasetsAPIGroup=group)
    assert settings.datasetsAPIGroup == group
    store = DatasetStore(settings, dashboard_api)
    summary = await store.create(user, dict(S3_DATASET))
    assert (summary["name"], summary["bucket"]) == ("climate", "climate-data")
    assert [d["name"] for d in await store.list(user)] == ["climate"]
    dataset = await store.get(user, "climate")
    assert dataset["apiVersion"] == f"{group}/{ds.DATASET_VERSION}"
    core = client.CoreV1Api(kube_api_client)
    secret = core.read_namespaced_secret(ds.secret_name("climate"), namespace)
    assert [r.uid for r in secret.metadata.owner_references] == [dataset["metadata"]["uid"]]
    await store.delete(user, "climate")
    assert await store.list(user) == []
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_secret(ds.secret_name("climate"), namespace)
    assert gone.value.status == 404


def test_the_documented_checks_hold(kube_cluster, dashboard_account):
    # the `kubectl auth can-i` lines of docs/kubernetes-permissions.md, for the chart's account
    _, account = dashboard_account
    section = PERMISSIONS_DOC.read_text().split("### The dashboard's rules", 1)[1]
    yes_block, no_block = re.findall(r"```sh\n(.*?)```", section, re.S)[:2]
    checked = 0
    for block, expected in ((yes_block, "yes"), (no_block, "no")):
        for line in block.splitlines():
            if not line.startswith("kubectl auth can-i "):
                continue
            args = [f"--as={account}" if a == "--as=$as" else a for a in shlex.split(line)[1:]]
            assert f"--as={account}" in args, line
            proc = kube_cluster.kubectl(*args, check=False)
            assert proc.stdout.strip() == expected, (line, proc.stdout, proc.stderr)
            checked += 1
    assert checked >= 6
