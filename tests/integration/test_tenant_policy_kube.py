"""The tenant policy of user namespaces on a real kube-apiserver: the chart's
ValidatingAdmissionPolicies (templates/admission/) refuse every pod and
Service of tests/integration/tenant/refused.yaml, whoever sends it (the
namespace's own service account with the ``edit`` role, the chart's
dashboard account, a cluster administrator), with or without the webhook,
and admit tests/integration/tenant/allowed.yaml; updates that add a
forbidden field are refused too. The namespace is set up by
``UserNamespaces.ensure`` with the chart's hub account, NetworkPolicy
included. No webhook runs here: the policy needs none.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from karvdash_hub.core import labels
from karvdash_hub.core.settings import load_settings
from karvdash_hub.namespaces import objects
from karvdash_hub.namespaces.store import UserNamespaces
from tests.integration.test_chart_kube import render_chart, service_account_kubeconfig
from tests.kube.cluster import free_port
from tests.kube.fixtures import delete_if_there, has_default_service_account, new_api_client, wait_for

pytestmark = [pytest.mark.kube, pytest.mark.integration]

HERE = Path(__file__).resolve().parent
REFUSED = yaml.safe_load((HERE / "tenant" / "refused.yaml").read_text())
ALLOWED = yaml.safe_load((HERE / "tenant" / "allowed.yaml").read_text())
CHART_NAMESPACE = "karvdash-tenant-test"
USER = "alice"
VALUES = {"karvdash": {"ingressURL": "https://example.test", "filesURL": "file:///data/karvdash",
                       "stateHostPath": "/mnt/karvdash/state", "allowedHostPathDirs": ["/opt/datasets"]}}
POLICY_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
PLURALS = {"Pod": "pods", "Service": "services", "PodTemplate": "podtemplates",
           "ReplicationController": "replicationcontrollers", "Deployment": "deployments",
           "DaemonSet": "daemonsets", "StatefulSet": "statefulsets", "ReplicaSet": "replicasets",
           "Job": "jobs", "CronJob": "cronjobs"}


def hub_settings():
    return load_settings(environ={"KARVDASH_MODE": "kubernetes", "KARVDASH_INGRESS_URL": "https://example.test",
                                  "KARVDASH_FILES_URL": "file:///data/karvdash",
                                  "KARVDASH_HUB_NAMESPACE": CHART_NAMESPACE})


def collection(manifest: dict, namespace: str) -> str:
    version = manifest["apiVersion"]
    base = "/api/v1" if version == "v1" else f"/apis/{version}"
    return f"{base}/namespaces/{namespace}/{PLURALS[manifest['kind']]}"


def send(api_client, method: str, path: str, body: dict, content_type: str = "application/json",
         query: list | None = None) -> dict:
    request = api_client.param_serialize(
        method, path, query_params=query or [], body=body, auth_settings=["BearerToken"],
        header_params={"Content-Type": content_type, "Accept": "application/json"})
    response = api_client.call_api(*request)
    response.read()
    return api_client.response_deserialize(response, {"2XX": "object"}).data


def create(api_client, namespace: str, manifest: dict, dry_run: bool = False) -> dict:
    body = json.loads(json.dumps(manifest))
    return send(api_client, "POST", collection(body, namespace), body, query=[("dryRun", "All")] if dry_run else None)


def refusal(call) -> tuple[int, str]:
    with pytest.raises(ApiException) as error:
        call()
    return error.value.status, json.loads(error.value.body)["message"]


def apply_policies(cluster, rendered: list[dict], directory: Path) -> None:
    manifest = directory / f"policies-{uuid.uuid4().hex[:6]}.yaml"
    manifest.write_text(yaml.safe_dump_all([o for o in rendered if o["kind"] in POLICY_KINDS]))
    cluster.kubectl("apply", "-f", str(manifest))


def policy_in_force(api_client, namespace: str, probe: dict, policy: str) -> None:
    """Policies reach the API server's admission asynchronously."""
    def refused():
        try:
            create(api_client, namespace, probe, dry_run=True)
        except ApiException as e:
            return e.status == 403 and policy in e.body
        return False

    wait_for(refused, timeout=30, interval=0.3, what=f"{policy} in force")


NOT_GRANTED = {"user": {"PodTemplate"}, "dashboard": {"PodTemplate", "ReplicationController", "ReplicaSet"},
               "admin": set()}
PRIVILEGED_PROBE = next(e["manifest"] for e in REFUSED if e["name"] == "privileged")
NODE_PORT_PROBE = next(e["manifest"] for e in REFUSED if e["name"] == "service-node-port")


def token_kubeconfig(cluster, token: str, path: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": cluster.server, "certificate-authority": str(cluster.ca)}}],
        "users": [{"name": "user", "user": {"token": token}}],
        "contexts": [{"name": "user", "context": {"cluster": "test", "user": "user"}}],
        "current-context": "user",
    }))
    return path


class Tenant:
    def __init__(self, namespace, rendered, identities, directory):
        self.namespace = namespace
        self.rendered = rendered
        self.identities = identities
        self.directory = directory

    def policy(self, suffix: str) -> str:
        return next(o["metadata"]["name"] for o in self.rendered
                    if o["kind"] == "ValidatingAdmissionPolicy" and o["metadata"]["name"].endswith(suffix))


@pytest.fixture(scope="module")
def tenant(kube_cluster, kube_api_client, tmp_path_factory):
    directory = tmp_path_factory.mktemp("tenant")
    core = client.CoreV1Api(kube_api_client)
    admission = client.AdmissionregistrationV1Api(kube_api_client)
    core.create_namespace({"metadata": {"name": CHART_NAMESPACE}})
    rendered = render_chart(kube_cluster, directory, VALUES, namespace=CHART_NAMESPACE)
    settings = hub_settings()
    namespace = settings.user_namespace(USER)
    removals, clients = [], []
    # undone whatever the set-up reached: cluster-wide policies left behind
    # would refuse the pods of every later test
    try:
        apply_policies(kube_cluster, rendered, directory)
        removals = [service_account_kubeconfig(kube_cluster, kube_api_client, rendered, component,
                                               directory / f"{component}.kubeconfig")
                    for component in ("hub", "dashboard")]

        async def set_up():
            from kubernetes_asyncio import client as aclient
            from kubernetes_asyncio import config as aconfig

            configuration = aclient.Configuration()
            await aconfig.load_kube_config(config_file=str(directory / "hub.kubeconfig"),
                                           client_configuration=configuration)
            async with aclient.ApiClient(configuration) as api:
                spaces = UserNamespaces(settings, aclient.CoreV1Api(api), aclient.RbacAuthorizationV1Api(api),
                                        aclient.CustomObjectsApi(api))
                await spaces.ensure(USER, lambda current: current or "token")

        asyncio.run(set_up())
        # the person: the namespace's default service account, which the hub
        # bound to edit
        wait_for(lambda: has_default_service_account(core, namespace), timeout=60,
                 what=f"the default service account of {namespace}")
        token = core.create_namespaced_service_account_token(
            "default", namespace, {"spec": {"expirationSeconds": 3600}}).status.token
        user_client = new_api_client(token_kubeconfig(kube_cluster, token, directory / "user.kubeconfig"))
        clients.append(user_client)
        dashboard_client = new_api_client(directory / "dashboard.kubeconfig")
        clients.append(dashboard_client)
        identities = {"user": user_client, "dashboard": dashboard_client, "admin": kube_api_client}
        tenant = Tenant(namespace, rendered, identities, directory)
        policy_in_force(kube_api_client, namespace, PRIVILEGED_PROBE, tenant.policy("-tenant-pods"))
        policy_in_force(kube_api_client, namespace, NODE_PORT_PROBE, tenant.policy("-tenant-services"))
        yield tenant
    finally:
        for api_client in clients:
            api_client.close()
        for remove in removals:
            remove()
        for obj in rendered:
            delete = {"ValidatingAdmissionPolicyBinding": admission.delete_validating_admission_policy_binding,
                      "ValidatingAdmissionPolicy": admission.delete_validating_admission_policy}.get(obj["kind"])
            if delete:
                delete_if_there(delete, obj["metadata"]["name"])
        delete_if_there(core.delete_namespace, namespace)
        delete_if_there(core.delete_namespace, CHART_NAMESPACE)


def test_the_user_holds_the_edit_role_only_in_the_namespace(tenant, kube_cluster):
    account = f"system:serviceaccount:{tenant.namespace}:default"
    can = [kube_cluster.kubectl("auth", "can-i", verb, resource, "-n", tenant.namespace, f"--as={account}",
                                check=False).stdout.strip()
           for verb, resource in (("create", "pods"), ("create", "deployments.apps"), ("create", "services"))]
    assert can == ["yes", "yes", "yes"]
    assert kube_cluster.kubectl("auth", "can-i", "create", "pods", "-n", "default", f"--as={account}",
                                check=False).stdout.strip() == "no"


@pytest.mark.parametrize("identity", ["user", "dashboard", "admin"])
@pytest.mark.parametrize("entry", REFUSED, ids=[e["name"] for e in REFUSED])
def test_each_forbidden_shape_is_refused_whoever_sends_it(tenant, identity, entry):
    api_client = tenant.identities[identity]
    kind = entry["manifest"]["kind"]
    policy = tenant.policy("-tenant-services" if kind == "Service" else "-tenant-pods")
    status, message = refusal(lambda: create(api_client, tenant.namespace, entry["manifest"]))
    assert status == 403, message
    if "cannot create resource" in message:
        # kinds the account may not create at all (edit has no podtemplates,
        # no template may hold the others): its role refuses them first; the
        # administrator's try shows the policy's refusal
        assert kind in NOT_GRANTED[identity], message
        return
    assert f"ValidatingAdmissionPolicy '{policy}' with binding '{policy}' denied request: karvdash: " in message
    assert entry["refusal"] in message


@pytest.mark.parametrize("entry", ALLOWED, ids=[e["name"] for e in ALLOWED])
def test_ordinary_pods_and_services_are_admitted(tenant, entry):
    created = create(tenant.identities["user"], tenant.namespace, entry["manifest"])
    assert created["metadata"]["name"] == entry["manifest"]["metadata"]["name"]
    assert created["metadata"]["namespace"] == tenant.namespace


def test_no_privileged_or_host_namespace_pod_was_admitted(tenant, kube_api_client):
    # after every refused shape was sent three times: what the namespace holds
    core = client.CoreV1Api(kube_api_client)
    pods = core.list_namespaced_pod(tenant.namespace).items
    names = {p.metadata.name for p in pods}
    assert not names & {e["manifest"]["metadata"]["name"] for e in REFUSED}
    for pod in pods:
        spec = pod.spec
        assert not (spec.host_network or spec.host_pid or spec.host_ipc), pod.metadata.name
        for container in (spec.containers or []) + (spec.init_containers or []):
            context = container.security_context
            assert not (context and context.privileged), pod.metadata.name
    apps = client.AppsV1Api(kube_api_client)
    assert not [d.metadata.name for d in apps.list_namespaced_daemon_set(tenant.namespace).items]
    services = core.list_namespaced_service(tenant.namespace).items
    assert sorted(s.spec.type for s in services) == ["ClusterIP", "ClusterIP"]


def patch(api_client, path: str, body: dict) -> dict:
    return send(api_client, "PATCH", path, body, content_type="application/strategic-merge-patch+json")


def test_updates_that_add_a_forbidden_field_are_refused(tenant, kube_api_client):
    user = tenant.identities["user"]
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "grows"},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "grows"}},
                           "template": {"metadata": {"labels": {"app": "grows"}},
                                        "spec": {"containers": [{"name": "main", "image": "registry.invalid/x:1"}]}}}}
    create(user, tenant.namespace, deployment)
    path = collection(deployment, tenant.namespace) + "/grows"
    for change, words in [
        ({"containers": [{"name": "main", "securityContext": {"privileged": True}}]}, "privileged containers"),
        ({"hostNetwork": True}, "(hostNetwork)"),
        ({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}, "root (/)"),
        ({"nodeName": "kwok-node-0"}, "(nodeName)"),
    ]:
        status, message = refusal(lambda: patch(user, path, {"spec": {"template": {"spec": change}}}))
        assert status == 403 and words in message, message
    # what leaves the pod template alone still goes through
    assert patch(user, path, {"spec": {"replicas": 2}})["spec"]["replicas"] == 2
    assert patch(user, path, {"metadata": {"labels": {"team": "a"}}})["metadata"]["labels"] == {"team": "a"}

    # a running pod: its labels may change, and a debugging container may be
    # added, but not a privileged one (pods/ephemeralcontainers, which edit
    # does not grant: the administrator tries)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "running"},
           "spec": {"containers": [{"name": "main", "image": "registry.invalid/x:1"}]}}
    create(user, tenant.namespace, pod)
    core = client.CoreV1Api(kube_api_client)
    wait_for(lambda: core.read_namespaced_pod("running", tenant.namespace).spec.node_name, what="pod scheduled")
    pod_path = collection(pod, tenant.namespace) + "/running"
    assert patch(user, pod_path, {"metadata": {"labels": {"seen": "yes"}}})["metadata"]["labels"] == {"seen": "yes"}
    status, message = refusal(lambda: patch(user, pod_path, {"spec": {"activeDeadlineSeconds": 60,
                                                                      "nodeName": "elsewhere"}}))
    assert status in (403, 422), message
    debug = {"name": "debug", "image": "registry.invalid/busybox:1", "securityContext": {"privileged": True}}
    status, message = refusal(lambda: patch(kube_api_client, pod_path + "/ephemeralcontainers",
                                            {"spec": {"ephemeralContainers": [debug]}}))
    assert status == 403 and "privileged containers are not allowed in user namespaces: debug" in message
    debug["securityContext"] = {"allowPrivilegeEscalation": False}
    updated = patch(kube_api_client, pod_path + "/ephemeralcontainers", {"spec": {"ephemeralContainers": [debug]}})
    assert [c["name"] for c in updated["spec"]["ephemeralContainers"]] == ["debug"]


def test_a_host_path_deployment_is_refused_while_the_webhook_is_down(tenant, kube_api_client):
    # the chart's webhook configurations, pointed at a port where nothing answers
    admission = client.AdmissionregistrationV1Api(kube_api_client)
    dead = f"https://127.0.0.1:{free_port()}"
    created = []
    for obj in tenant.rendered:
        if obj["kind"] not in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            continue
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["name"] += f"-{uuid.uuid4().hex[:6]}"
        obj["metadata"].pop("annotations", None)
        for hook in obj["webhooks"]:
            hook["clientConfig"] = {"url": dead + hook["clientConfig"]["service"]["path"],
                                    "caBundle": base64.b64encode(b"not used: nothing answers").decode()}
        if obj["kind"] == "MutatingWebhookConfiguration":
            admission.create_mutating_webhook_configuration(obj)
        else:
            admission.create_validating_webhook_configuration(obj)
        created.append(obj)
    assert len(created) == 2
    try:
        user = tenant.identities["user"]
        ordinary = next(e["manifest"] for e in ALLOWED if e["name"] == "job")
        fresh = {**ordinary, "metadata": {"name": "probe-" + uuid.uuid4().hex[:6]}}

        def webhook_called():
            try:
                create(user, tenant.namespace, fresh, dry_run=True)
            except ApiException as e:
                return "failed calling webhook" in e.body
            return False

        wait_for(webhook_called, timeout=30, interval=0.3, what="the dead webhook called")
        root = next(e["manifest"] for e in REFUSED if e["name"] == "deployment-host-path-root")
        status, message = refusal(lambda: create(user, tenant.namespace, root))
        policy = tenant.policy("-tenant-pods")
        assert status == 403
        assert message == (f"deployments.apps \"root-deployment\" is forbidden: ValidatingAdmissionPolicy '{policy}' "
                           f"with binding '{policy}' denied request: karvdash: host paths outside the allowed folders: "
                           f"root (/) (allowed: /data/karvdash/private/alice, /data/karvdash/shared, /opt/datasets)")
    finally:
        for obj in created:
            if obj["kind"] == "MutatingWebhookConfiguration":
                admission.delete_mutating_webhook_configuration(obj["metadata"]["name"])
            else:
                admission.delete_validating_webhook_configuration(obj["metadata"]["name"])


def test_the_namespace_has_its_network_policy_exactly(tenant, kube_api_client, kube_cluster):
    networking = client.NetworkingV1Api(kube_api_client)
    expected = objects.network_policy(hub_settings(), USER, CHART_NAMESPACE)

    def stored():
        policy = kube_api_client.sanitize_for_serialization(
            networking.read_namespaced_network_policy(objects.NETWORK_POLICY, tenant.namespace))
        return {"apiVersion": policy["apiVersion"], "kind": policy["kind"],
                "metadata": {k: policy["metadata"][k] for k in ("name", "namespace", "labels")},
                "spec": policy["spec"]}

    assert stored() == expected
    assert expected["spec"]["ingress"][0]["from"][1:] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": CHART_NAMESPACE}}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
    ]
    # the user may loosen it (edit grants networkpolicies); the next start puts it back
    opened = {"spec": {"ingress": [{}]}}
    send(tenant.identities["user"], "PATCH",
         f"/apis/networking.k8s.io/v1/namespaces/{tenant.namespace}/networkpolicies/{objects.NETWORK_POLICY}",
         opened, content_type="application/merge-patch+json")
    assert stored()["spec"]["ingress"] == [{}]

    async def start_again():
        from kubernetes_asyncio import client as aclient
        from kubernetes_asyncio import config as aconfig

        configuration = aclient.Configuration()
        await aconfig.load_kube_config(config_file=str(tenant.directory / "hub.kubeconfig"),
                                       client_configuration=configuration)
        async with aclient.ApiClient(configuration) as api:
            await UserNamespaces(hub_settings(), aclient.CoreV1Api(api), aclient.RbacAuthorizationV1Api(api),
                                 aclient.CustomObjectsApi(api)).ensure(USER, lambda current: current)

    asyncio.run(start_again())
    assert stored() == expected


def test_namespaces_without_the_label_are_not_matched(tenant, kube_api_client, kube_namespace):
    # system and plain namespaces are the administrator's: the policy stays out
    created = create(kube_api_client, kube_namespace, PRIVILEGED_PROBE, dry_run=True)
    assert created["spec"]["containers"][0]["securityContext"]["privileged"] is True
    assert labels.NAMESPACE_LABEL not in (client.CoreV1Api(kube_api_client).read_namespace(
        kube_namespace).metadata.labels or {})


def test_the_settings_open_what_they_name(tenant, kube_cluster, kube_api_client):
    # last in this module: it changes the policies, then puts them back
    open_values = json.loads(json.dumps(VALUES))
    open_values["karvdash"].update({"allowedServiceTypes": ["NodePort", "LoadBalancer", "ExternalName"],
                                    "allowServiceExternalIPs": True, "allowedPriorityClasses": ["research"]})
    opened = render_chart(kube_cluster, tenant.directory, open_values, namespace=CHART_NAMESPACE)
    scheduling = client.SchedulingV1Api(kube_api_client)
    scheduling.create_priority_class({"metadata": {"name": "research"}, "value": 1000})
    user = tenant.identities["user"]
    try:
        apply_policies(kube_cluster, opened, tenant.directory)

        def node_port_admitted():
            try:
                create(user, tenant.namespace, NODE_PORT_PROBE, dry_run=True)
            except ApiException:
                return False
            return True

        wait_for(node_port_admitted, timeout=30, interval=0.3, what="the opened policy in force")
        for name in ("service-load-balancer", "service-external-ips"):
            manifest = next(e["manifest"] for e in REFUSED if e["name"] == name)
            assert create(user, tenant.namespace, manifest, dry_run=True)["metadata"]["name"]
        own = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "alias"},
               "spec": {"type": "ExternalName", "externalName": f"web.{tenant.namespace}.svc.cluster.local"}}
        assert create(user, tenant.namespace, own, dry_run=True)["spec"]["externalName"] == own["spec"]["externalName"]
        outside = {**own, "spec": {"type": "ExternalName", "externalName": "example.org"}}
        assert create(user, tenant.namespace, outside, dry_run=True)["spec"]["type"] == "ExternalName"
        # another user's Service stays out of reach, by any of its DNS names
        for target in ("notebook.karvdash-bob.svc.cluster.local", "notebook.karvdash-bob.svc",
                       "10-42-0-7.karvdash-bob.pod.cluster.local"):
            theirs = {**own, "spec": {"type": "ExternalName", "externalName": target}}
            status, message = refusal(lambda: create(user, tenant.namespace, theirs, dry_run=True))
            assert status == 403 and f"the ExternalName {target} names a Service or pod of another namespace" in message
        research = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "research"},
                    "spec": {"priorityClassName": "research",
                             "containers": [{"name": "main", "image": "registry.invalid/x:1"}]}}
        assert create(user, tenant.namespace, research, dry_run=True)["spec"]["priority"] == 1000
        critical = next(e["manifest"] for e in REFUSED if e["name"] == "system-node-critical")
        status, message = refusal(lambda: create(user, tenant.namespace, critical, dry_run=True))
        assert status == 403 and "system-node-critical is not allowed in user namespaces (allowed: research)" in message
    finally:
        apply_policies(kube_cluster, tenant.rendered, tenant.directory)
        scheduling.delete_priority_class("research")
    policy_in_force(kube_api_client, tenant.namespace, NODE_PORT_PROBE, tenant.policy("-tenant-services"))
