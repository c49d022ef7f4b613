"""Users' Argo Workflows accounts (argoNamespace) on a real kube-apiserver.

The hub's part runs as a service account holding only the ClusterRole of
docs/kubernetes-permissions.md (the fixtures of test_spawner_kube.py), so the
API server's RBAC escalation check on the Role it makes is real. Argo itself
cannot run here (no container runs): a minimal ``workflows.argoproj.io`` CRD
stands in for its API, and the tokens argo-server would use (the account's
token Secret, filled in by the controller manager) and a TokenRequest token
of the same account are used directly against the API server, as
argo-server uses them.
"""

from __future__ import annotations

import base64
import re
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from karvdash_hub.namespaces import objects
from karvdash_hub.namespaces.store import UserNamespaces
from tests.integration.test_spawner_kube import _settings, admin, hub_clients, hub_kubeconfig  # noqa: F401 - fixtures
from tests.kube.fixtures import wait_for

pytestmark = [pytest.mark.kube, pytest.mark.integration]

ARGO_DOC = Path(__file__).resolve().parents[2] / "docs" / "argo.md"
ARGO_NAMESPACE = "argo"
WORKFLOW_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "workflows.argoproj.io"},
    "spec": {
        "group": "argoproj.io",
        "scope": "Namespaced",
        "names": {"plural": "workflows", "singular": "workflow", "kind": "Workflow", "shortNames": ["wf"]},
        "versions": [{
            "name": "v1alpha1",
            "served": True,
            "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        }],
    },
}


def workflow(name: str) -> dict:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox"}}]},
    }


@pytest.fixture(scope="module")
def workflow_api(kube_cluster, admin):  # noqa: F811 - fixture
    """The Workflow kind, served; the Argo install namespace."""
    extensions = client.ApiextensionsV1Api(admin)
    try:
        extensions.create_custom_resource_definition(WORKFLOW_CRD)
    except ApiException as e:
        if e.status != 409:
            raise
    # a new kind's storage answers 429 for a moment after it is Established
    wait_for(lambda: kube_cluster.api("GET", "/apis/argoproj.io/v1alpha1/workflows")[0] == 200,
             timeout=30, what="the Workflow kind served")
    try:
        client.CoreV1Api(admin).create_namespace({"metadata": {"name": ARGO_NAMESPACE}})
    except ApiException as e:
        if e.status != 409:
            raise


def token_client(cluster, token: str) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = cluster.server
    configuration.ssl_ca_cert = str(cluster.ca)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(configuration)


def secret_token(core, name: str, namespace: str) -> str:
    """The token the controller manager put in a service-account-token Secret."""
    def filled():
        data = core.read_namespaced_secret(name, namespace).data or {}
        return data.get("token")

    return base64.b64decode(wait_for(filled, timeout=30, what=f"the token in {namespace}/{name}")).decode()


def status_of(call, *args, **kwargs) -> int:
    try:
        call(*args, **kwargs)
        return 200
    except ApiException as e:
        return e.status


def user() -> str:
    return "a" + uuid.uuid4().hex[:8]


def resource_versions(admin, namespace: str) -> dict[str, str]:  # noqa: F811 - fixture name
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    return {
        "account": core.read_namespaced_service_account(objects.ARGO_ACCOUNT, namespace).metadata.resource_version,
        "token": core.read_namespaced_secret(objects.ARGO_TOKEN_SECRET, namespace).metadata.resource_version,
        "role": rbac.read_namespaced_role(objects.ARGO_ACCOUNT, namespace).metadata.resource_version,
        "binding": rbac.read_namespaced_role_binding(objects.ARGO_ACCOUNT, namespace).metadata.resource_version,
    }


async def test_the_hub_makes_the_account_and_keeps_it_matching_its_owner(
    tmp_path, hub_clients, admin, workflow_api  # noqa: F811
):
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    name = user()
    namespace = f"karvdash-{name}"
    settings = _settings(tmp_path, KARVDASH_ARGO_NAMESPACE=ARGO_NAMESPACE)
    spaces = UserNamespaces(settings, *hub_clients)
    messages = []
    await spaces.ensure(name, lambda current: "t", report=messages.append)
    assert f"Giving you an Argo Workflows account in {namespace}" in messages
    account, token, role, binding = objects.argo_objects(settings, name)

    made = core.read_namespaced_service_account(objects.ARGO_ACCOUNT, namespace)
    assert made.metadata.annotations == account["metadata"]["annotations"]
    assert made.metadata.annotations["workflows.argoproj.io/rbac-rule"] == f"preferred_username == '{name}'"
    assert made.metadata.labels == account["metadata"]["labels"]
    secret = core.read_namespaced_secret(objects.ARGO_TOKEN_SECRET, namespace)
    assert secret.type == "kubernetes.io/service-account-token"
    assert secret_token(core, objects.ARGO_TOKEN_SECRET, namespace)
    made_role = rbac.read_namespaced_role(objects.ARGO_ACCOUNT, namespace)
    assert admin.sanitize_for_serialization(made_role.rules) == role["rules"]
    made_binding = rbac.read_namespaced_role_binding(objects.ARGO_ACCOUNT, namespace)
    assert (made_binding.role_ref.kind, made_binding.role_ref.name) == ("Role", objects.ARGO_ACCOUNT)
    assert [(s.kind, s.name, s.namespace) for s in made_binding.subjects] == [
        ("ServiceAccount", objects.ARGO_ACCOUNT, namespace)]

    # every start runs it again: nothing changes
    before = resource_versions(admin, namespace)
    await spaces.ensure(name, lambda current: "t")
    assert resource_versions(admin, namespace) == before

    # an edited rule, a deleted token and a rebound binding are put right on the next start
    core.patch_namespaced_service_account(
        objects.ARGO_ACCOUNT, namespace,
        {"metadata": {"annotations": {"workflows.argoproj.io/rbac-rule": "true",
                                      "workflows.argoproj.io/rbac-rule-precedence": "100"}}})
    core.delete_namespaced_secret(objects.ARGO_TOKEN_SECRET, namespace)
    rbac.delete_namespaced_role_binding(objects.ARGO_ACCOUNT, namespace)
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": objects.ARGO_ACCOUNT},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": objects.ARGO_ACCOUNT, "namespace": namespace}]})
    await spaces.ensure(name, lambda current: "t")
    again = core.read_namespaced_service_account(objects.ARGO_ACCOUNT, namespace)
    assert again.metadata.annotations == account["metadata"]["annotations"]
    assert secret_token(core, objects.ARGO_TOKEN_SECRET, namespace)
    rebound = rbac.read_namespaced_role_binding(objects.ARGO_ACCOUNT, namespace)
    assert (rebound.role_ref.kind, rebound.role_ref.name) == ("Role", objects.ARGO_ACCOUNT)


async def test_nothing_for_argo_without_argo_namespace(tmp_path, hub_clients, admin):  # noqa: F811
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    name = user()
    namespace = f"karvdash-{name}"
    messages = []
    await UserNamespaces(_settings(tmp_path), *hub_clients).ensure(name, lambda current: "t", report=messages.append)
    assert not [m for m in messages if "Argo" in m]
    accounts = [a.metadata.name for a in core.list_namespaced_service_account(namespace).items]
    assert objects.ARGO_ACCOUNT not in accounts
    assert status_of(core.read_namespaced_secret, objects.ARGO_TOKEN_SECRET, namespace) == 404
    assert rbac.list_namespaced_role(namespace).items == []
    assert [b.metadata.name for b in rbac.list_namespaced_role_binding(namespace).items] == [objects.ROLE_BINDING]


async def test_a_users_account_may_use_workflows_in_their_namespace_only(
    kube_cluster, tmp_path, hub_clients, admin, workflow_api  # noqa: F811
):
    core = client.CoreV1Api(admin)
    spaces = UserNamespaces(_settings(tmp_path, KARVDASH_ARGO_NAMESPACE=ARGO_NAMESPACE), *hub_clients)
    alice, bob = user(), user()
    for name in (alice, bob):
        await spaces.ensure(name, lambda current: "t")
    own, other = f"karvdash-{alice}", f"karvdash-{bob}"
    requested = core.create_namespaced_service_account_token(
        objects.ARGO_ACCOUNT, own, {"spec": {"expirationSeconds": 3600}}).status.token
    # the TokenRequest token, and the long-lived one argo-server reads from the Secret
    for token in (requested, secret_token(core, objects.ARGO_TOKEN_SECRET, own)):
        api = token_client(kube_cluster, token)
        custom, as_core = client.CustomObjectsApi(api), client.CoreV1Api(api)
        wf = "wf-" + uuid.uuid4().hex[:6]
        created = custom.create_namespaced_custom_object("argoproj.io", "v1alpha1", own, "workflows", workflow(wf))
        assert created["metadata"]["namespace"] == own
        listed = custom.list_namespaced_custom_object("argoproj.io", "v1alpha1", own, "workflows")["items"]
        assert wf in [w["metadata"]["name"] for w in listed]
        custom.patch_namespaced_custom_object("argoproj.io", "v1alpha1", own, "workflows", wf,
                                              {"spec": {"suspend": True}})
        assert status_of(as_core.list_namespaced_pod, own) == 200
        assert status_of(as_core.list_namespaced_event, own) == 200
        custom.delete_namespaced_custom_object("argoproj.io", "v1alpha1", own, "workflows", wf)
        # another user's namespace: nothing
        assert status_of(custom.create_namespaced_custom_object, "argoproj.io", "v1alpha1", other, "workflows",
                         workflow(wf)) == 403
        assert status_of(custom.list_namespaced_custom_object, "argoproj.io", "v1alpha1", other, "workflows") == 403
        assert status_of(as_core.list_namespaced_pod, other) == 403
        assert status_of(custom.list_cluster_custom_object, "argoproj.io", "v1alpha1", "workflows") == 403
        # and in its own namespace no more than workflows: no secrets, no pods of its own making
        assert status_of(as_core.list_namespaced_secret, own) == 403
        assert status_of(as_core.create_namespaced_pod, own, {
            "metadata": {"name": "x"}, "spec": {"containers": [{"name": "x", "image": "busybox"}]}}) == 403
        api.close()
    assert client.CustomObjectsApi(admin).list_namespaced_custom_object(
        "argoproj.io", "v1alpha1", other, "workflows")["items"] == []


def documented_login_account() -> list[dict]:
    blocks = re.findall(r"```yaml\n(.*?)```", ARGO_DOC.read_text(), re.S)
    [documents] = [list(yaml.safe_load_all(b)) for b in blocks if "rbac-rule-precedence" in b]
    return documents


async def test_the_documented_login_account_lets_in_and_allows_nothing(
    kube_cluster, tmp_path, hub_clients, admin, workflow_api  # noqa: F811
):
    account, secret = documented_login_account()
    assert account["metadata"]["annotations"] == {"workflows.argoproj.io/rbac-rule": "true",
                                                  "workflows.argoproj.io/rbac-rule-precedence": "0"}
    # below every user account, which argo-server's namespace delegation requires
    precedence = objects.argo_service_account(_settings(tmp_path, KARVDASH_ARGO_NAMESPACE=ARGO_NAMESPACE), "alice")[
        "metadata"]["annotations"]["workflows.argoproj.io/rbac-rule-precedence"]
    assert int(precedence) > int(account["metadata"]["annotations"]["workflows.argoproj.io/rbac-rule-precedence"])
    core = client.CoreV1Api(admin)
    for obj, create in ((account, core.create_namespaced_service_account), (secret, core.create_namespaced_secret)):
        try:
            create(ARGO_NAMESPACE, obj)
        except ApiException as e:
            if e.status != 409:
                raise
    name = user()
    await UserNamespaces(_settings(tmp_path, KARVDASH_ARGO_NAMESPACE=ARGO_NAMESPACE), *hub_clients).ensure(
        name, lambda current: "t")
    api = token_client(kube_cluster, secret_token(core, secret["metadata"]["name"], ARGO_NAMESPACE))
    custom = client.CustomObjectsApi(api)
    for namespace in (f"karvdash-{name}", ARGO_NAMESPACE):
        assert status_of(custom.list_namespaced_custom_object, "argoproj.io", "v1alpha1", namespace, "workflows") == 403
        assert status_of(custom.create_namespaced_custom_object, "argoproj.io", "v1alpha1", namespace, "workflows",
                         workflow("login")) == 403
    assert status_of(custom.list_cluster_custom_object, "argoproj.io", "v1alpha1", "workflows") == 403
    api.close()


def test_the_documented_hub_checks_hold(kube_cluster, hub_kubeconfig, workflow_api):  # noqa: F811
    # docs/kubernetes-permissions.md, "Checking a cluster": the hub's account
    # (made by hub_kubeconfig with only the documented ClusterRole) may make
    # users' Argo Roles and workflows, and may not bind cluster-admin
    section = (ARGO_DOC.parent / "kubernetes-permissions.md").read_text().split("## Checking a cluster", 1)[1]
    section = section.split("\n## ", 1)[0]
    [block] = re.findall(r"```sh\n(.*?)```", section, re.S)
    account = re.search(r"^as=(\S+)$", block, re.M).group(1)
    expected = [(line, "yes") for line in block.splitlines() if line.startswith("kubectl auth can-i ")]
    expected += [(line, "no") for line in re.findall(r"`(kubectl auth can-i [^`]+)` should\s+say `no`", section)]
    assert ("kubectl auth can-i create roles -n karvdash-alice --as=$as", "yes") in expected
    assert len([e for e in expected if e[1] == "no"]) == 1
    for line, answer in expected:
        args = [f"--as={account}" if a == "--as=$as" else a for a in line.split()[1:]]
        proc = kube_cluster.kubectl(*args, check=False)
        assert proc.stdout.strip() == answer, (line, proc.stdout, proc.stderr)
