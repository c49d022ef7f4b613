"""Service instances on the real control plane (kube-apiserver, controller
manager with its garbage collector, kwok for pods).

kwok runs no containers: pods get Ready without any image, so "ready" here
means Kubernetes' bookkeeping works, and exec can only be tested up to the
API server (its error path and argument handling).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client as sync_client
from kubernetes.client.rest import ApiException
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from karvdash_hub.core.labels import INSTANCE_LABEL, OWNER_LABEL, TEMPLATE_LABEL, VALUES_ANNOTATION
from karvdash_hub.core.settings import load_settings
from karvdash_hub.namespaces import objects
from karvdash_hub.services import templates as st
from karvdash_hub.services.catalogue import file_catalogue
from karvdash_hub.services.store import (
    FIELD_MANAGER,
    RECORD_PREFIX,
    InstanceError,
    InstanceStore,
    UserTemplateStore,
)
from tests.kube.fixtures import new_api_client, wait_for

pytestmark = [pytest.mark.kube, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE, _ = file_catalogue(ROOT / "service_templates", ROOT / "no-admin-templates")
CRD = ROOT / "chart" / "karvdash-hub" / "crds" / "template-crd.yaml"
SETTINGS = load_settings(environ={"KARVDASH_MODE": "kubernetes", "KARVDASH_INGRESS_URL": "https://example.com"})
HUB_NAMESPACE = "karvdash-hub-test"
# every namespaced kind the shipped templates use
KINDS = sorted({(o["apiVersion"], o["kind"]) for t in CATALOGUE.values() for o in t.objects})


def base_context() -> st.RenderContext:
    return st.RenderContext(
        username="", namespace="", hostname="",
        auth_url="https://example.com/services/karvdash/ingress-auth/check",
        signin_url="https://example.com/services/karvdash/ingress-auth/signin",
    )


@pytest.fixture(scope="module")
def sync_api(kube_cluster):
    api = new_api_client(kube_cluster.kubeconfig)
    core = sync_client.CoreV1Api(api)
    try:
        core.create_namespace({"metadata": {"name": HUB_NAMESPACE}})
    except ApiException as error:
        if error.status != 409:
            raise
    extensions = sync_client.ApiextensionsV1Api(api)
    try:
        extensions.create_custom_resource_definition(yaml.safe_load(CRD.read_text()))
    except ApiException as error:
        if error.status != 409:
            raise

    def established():
        crd = extensions.read_custom_resource_definition("templates.karvdash.io")
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    wait_for(established, what="the Template CRD")
    # a cluster-scoped kind that no built-in list knows
    try:
        extensions.create_custom_resource_definition({
            "metadata": {"name": "widgets.karvdash-test.example.org"},
            "spec": {
                "group": "karvdash-test.example.org", "scope": "Cluster",
                "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                    "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
            },
        })
    except ApiException as error:
        if error.status != 409:
            raise
    yield api
    api.close()


@pytest.fixture
def new_user(sync_api):
    """Makes users with their namespaces (as the spawner would), removed afterwards."""
    core = sync_client.CoreV1Api(sync_api)
    made = []

    def make() -> tuple[str, str]:
        name = "u" + uuid.uuid4().hex[:10]
        core.create_namespace(objects.namespace(SETTINGS, name))
        made.append(name)
        return name, SETTINGS.user_namespace(name)

    yield make
    for name in made:
        try:
            core.delete_namespace(SETTINGS.user_namespace(name))
        except ApiException as error:
            if error.status != 404:
                raise


async def async_api(kube_cluster) -> k8s.ApiClient:
    configuration = k8s.Configuration()
    await k8s_config.load_kube_config(config_file=str(kube_cluster.kubeconfig), client_configuration=configuration)
    return k8s.ApiClient(configuration)


@pytest.fixture
async def store(kube_cluster, sync_api, tmp_path):
    api = await async_api(kube_cluster)
    yield InstanceStore(api, HUB_NAMESPACE, discovery_cache=str(tmp_path / "discovery.json"))
    await api.close()


async def create(store, user, namespace, template_id, prefixes=(), **values):
    template = CATALOGUE[template_id]
    values = {**template.form_defaults(), **values}
    return await store.create(template, values, owner=user, namespace=namespace, context=base_context(),
                              domain="example.com", url_prefixes=list(prefixes))


def objects_of(sync_api, namespace: str, instance: str | None = None) -> list[tuple[str, str, dict]]:
    """(kind, name, metadata) of every karvdash object in the namespace (of one instance)."""
    label = f"{INSTANCE_LABEL}={instance}" if instance else INSTANCE_LABEL
    found = []
    core = sync_client.CoreV1Api(sync_api)
    apps = sync_client.AppsV1Api(sync_api)
    rbac = sync_client.RbacAuthorizationV1Api(sync_api)
    networking = sync_client.NetworkingV1Api(sync_api)
    listers = {
        "ConfigMap": core.list_namespaced_config_map,
        "Secret": core.list_namespaced_secret,
        "Service": core.list_namespaced_service,
        "ServiceAccount": core.list_namespaced_service_account,
        "Pod": core.list_namespaced_pod,
        "Deployment": apps.list_namespaced_deployment,
        "StatefulSet": apps.list_namespaced_stateful_set,
        "ReplicaSet": apps.list_namespaced_replica_set,
        "Role": rbac.list_namespaced_role,
        "RoleBinding": rbac.list_namespaced_role_binding,
        "Ingress": networking.list_namespaced_ingress,
    }
    for kind, lister in listers.items():
        for item in lister(namespace, label_selector=label).items:
            found.append((kind, item.metadata.name, item.metadata))
    return found


# --- create, list, delete ------------------------------------------------------------------


async def test_create_list_delete(store, sync_api, new_user):
    user, namespace = new_user()
    instance = await create(store, user, namespace, "hello-kubernetes", NAME="hello", MESSAGE=" Hi: {there} ")
    assert instance.name == "hello"
    assert instance.url == f"https://hello-{user}.example.com"
    assert instance.values == {"NAME": "hello", "MESSAGE": "Hi: {there}"}

    made = objects_of(sync_api, namespace, "hello")
    kinds = sorted(kind for kind, _, _ in made if kind not in ("Pod", "ReplicaSet"))
    assert kinds == ["ConfigMap", "Deployment", "Ingress", "Service"]
    for kind, name, metadata in made:
        assert metadata.namespace == namespace
        assert metadata.labels[OWNER_LABEL] == user
        if kind not in ("Pod", "ReplicaSet"):
            assert metadata.labels[TEMPLATE_LABEL] == "hello-kubernetes"
    ingress = sync_client.NetworkingV1Api(sync_api).read_namespaced_ingress("hello", namespace)
    assert ingress.spec.ingress_class_name == "nginx"
    assert ingress.metadata.annotations["nginx.ingress.kubernetes.io/auth-url"] == (
        f"https://example.com/services/karvdash/ingress-auth/check/{user}/hello"
    )
    assert json.loads(ingress.metadata.annotations[VALUES_ANNOTATION])["MESSAGE"] == "Hi: {there}"
    assert [f.manager for f in ingress.metadata.managed_fields] == [FIELD_MANAGER]
    deployment = sync_client.AppsV1Api(sync_api).read_namespaced_deployment("hello", namespace)
    assert deployment.spec.template.spec.containers[0].env[0].value == "Hi: {there}"
    assert deployment.metadata.owner_references[0].name == RECORD_PREFIX + "hello"

    # kwok makes the pod ready; the list reads the status from the Deployment
    async def status():
        listed = await store.list(user, namespace)
        return listed[0].status == "ready" and listed

    listed = await async_wait(status, what="the service to be ready")
    assert [(i.name, i.template_id, i.template_name, i.url, i.auth) for i in listed] == [
        ("hello", "hello-kubernetes", "Hello Kubernetes", f"https://hello-{user}.example.com", True)
    ]
    assert listed[0].created.endswith("Z")

    await store.delete(user, namespace, "hello")
    assert await store.list(user, namespace) == []
    # pods go with their ReplicaSet through the garbage collector
    wait_for(lambda: objects_of(sync_api, namespace) == [], what="every object to be deleted")
    with pytest.raises(InstanceError) as error:
        await store.delete(user, namespace, "hello")
    assert error.value.status == 404


async def test_a_taken_name_gets_a_suffix_and_names_race_safely(store, new_user):
    user, namespace = new_user()
    first = await create(store, user, namespace, "hello-kubernetes", NAME="web")
    racing = await asyncio.gather(*(create(store, user, namespace, "hello-kubernetes", NAME="web") for _ in range(3)))
    names = [first.name] + [i.name for i in racing]
    assert names[0] == "web"
    assert len(set(names)) == 4 and all(n.startswith("web-") and len(n) == 8 for n in names[1:])
    assert sorted(i.name for i in await store.list(user, namespace)) == sorted(names)


async def test_singleton_conflicts_even_when_racing(store, new_user):
    user, namespace = new_user()
    results = await asyncio.gather(
        *(create(store, user, namespace, "argo", NAME=f"argo{i}") for i in range(3)), return_exceptions=True
    )
    created = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, InstanceError)]
    assert len(created) == 1 and len(refused) == 2, results
    assert all(r.status == 409 and "allows one service per user" in r.message for r in refused)
    with pytest.raises(InstanceError) as error:
        await create(store, user, namespace, "argo", NAME="another")
    assert error.value.status == 409
    assert f"you have one already ({created[0].name})" in error.value.message
    # the refused attempts left nothing behind
    assert [i.name for i in await store.list(user, namespace)] == [created[0].name]
    await store.delete(user, namespace, created[0].name)
    again = await create(store, user, namespace, "argo", NAME="argo")
    assert again.name == "argo"


async def test_other_users_can_neither_see_nor_delete(store, sync_api, new_user):
    alice, alice_ns = new_user()
    bob, bob_ns = new_user()
    await create(store, alice, alice_ns, "hello-kubernetes", NAME="mine")
    assert await store.list(bob, bob_ns) == []
    # even pointed at alice's namespace, bob's name matches nothing
    assert await store.list(bob, alice_ns) == []
    for namespace in (bob_ns, alice_ns):
        with pytest.raises(InstanceError) as error:
            await store.delete(bob, namespace, "mine")
        assert error.value.status == 404
        with pytest.raises(InstanceError) as error:
            await store.exec(bob, namespace, "mine", ["id"])
        assert error.value.status == 404
    assert [i.name for i in await store.list(alice, alice_ns)] == ["mine"]
    assert {kind for kind, _, _ in objects_of(sync_api, alice_ns, "mine")} >= {"Deployment", "Service", "Ingress"}


async def test_a_restarted_dashboard_loses_nothing(kube_cluster, sync_api, store, new_user, tmp_path):
    user, namespace = new_user()
    await create(store, user, namespace, "redis", NAME="cache")
    # a new process: new API client, new discovery, no memory of the first
    api = await async_api(kube_cluster)
    try:
        restarted = InstanceStore(api, HUB_NAMESPACE, discovery_cache=str(tmp_path / "other.json"))
        listed = await restarted.list(user, namespace)
        assert [(i.name, i.template_id, i.values) for i in listed] == [("cache", "redis", {"NAME": "cache"})]
        await restarted.delete(user, namespace, "cache")
    finally:
        await api.close()
    wait_for(lambda: objects_of(sync_api, namespace) == [], what="every object to be deleted")


async def test_url_prefixes_are_handed_out_once(store, sync_api, new_user):
    alice, alice_ns = new_user()
    bob, bob_ns = new_user()
    prefixes = [f"p{uuid.uuid4().hex[:6]}", f"q{uuid.uuid4().hex[:6]}"]
    results = await asyncio.gather(
        create(store, alice, alice_ns, "hello-kubernetes", NAME="a1", prefixes=prefixes),
        create(store, bob, bob_ns, "hello-kubernetes", NAME="b1", prefixes=prefixes),
        create(store, alice, alice_ns, "hello-kubernetes", NAME="a2", prefixes=prefixes),
        return_exceptions=True,
    )
    created = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, InstanceError)]
    assert len(created) == 2 and len(refused) == 1, results
    assert refused[0].status == 429
    assert sorted(i.url for i in created) == sorted(f"https://{p}.example.com" for p in prefixes)
    # a service without an ingress needs no prefix
    await create(store, alice, alice_ns, "redis", NAME="r", prefixes=prefixes)
    # deleting frees the prefix
    freed = created[0]
    owner, namespace = (alice, alice_ns) if freed.name.startswith("a") else (bob, bob_ns)
    await store.delete(owner, namespace, freed.name)
    again = await create(store, bob, bob_ns, "hello-kubernetes", NAME="b2", prefixes=prefixes)
    assert again.url == freed.url


async def test_prefix_claims_of_deleted_namespaces_are_released(store, sync_api, new_user):
    user, namespace = new_user()
    prefix = f"s{uuid.uuid4().hex[:6]}"
    await create(store, user, namespace, "hello-kubernetes", NAME="x", prefixes=[prefix])
    # the user's namespace disappears without the dashboard (user deleted)
    sync_client.CoreV1Api(sync_api).delete_namespace(namespace)

    def gone():
        try:
            sync_client.CoreV1Api(sync_api).read_namespace(namespace)
            return False
        except ApiException as error:
            return error.status == 404

    wait_for(gone, timeout=60, what="the namespace to go")
    other, other_ns = new_user()
    instance = await create(store, other, other_ns, "hello-kubernetes", NAME="y", prefixes=[prefix])
    assert instance.url == f"https://{prefix}.example.com"


async def refused(store, user, namespace, objects_yaml: str, name: str) -> InstanceError:
    """Create a one-off template made of ``objects_yaml``; return the 400 it gets."""
    template = st.parse_template(
        f"kind: Template\nname: T\nvariables:\n- name: NAME\n  default: {name}\n---\n" + objects_yaml,
        f"t{name}", "user",
    )
    with pytest.raises(InstanceError) as error:
        await store.create(template, {"NAME": name}, owner=user, namespace=namespace, context=base_context(),
                           domain="example.com")
    assert error.value.status == 400
    return error.value


# --- bad input leaves nothing behind ----------------------------------------------------------


async def test_bad_values_and_templates_leave_nothing(store, sync_api, new_user):
    user, namespace = new_user()
    with pytest.raises(InstanceError) as error:
        await create(store, user, namespace, "hello-kubernetes", NAME="Not A Label")
    assert error.value.status == 400 and error.value.message.startswith("NAME:")
    with pytest.raises(InstanceError) as error:
        await create(store, user, namespace, "minio", NAME="m", ROOT_PASSWORD="")
    assert error.value.status == 400

    error = await refused(store, user, namespace,
                          "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: $NAME-first}\n---\n"
                          "apiVersion: example.org/v1\nkind: Gadget\nmetadata: {name: $NAME}\n", "u")
    assert "no kind Gadget in example.org/v1" in error.message
    # the API server refuses a field it does not know (strict validation)
    error = await refused(store, user, namespace,
                          "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: $NAME-ok}\n---\n"
                          "apiVersion: v1\nkind: Service\nmetadata: {name: $NAME}\n"
                          "spec: {ports: [{port: 80}], bogus: 1}\n", "b")
    assert "Kubernetes refused Service b" in error.message and "bogus" in error.message
    # a cluster-scoped custom kind is refused by what discovery says
    error = await refused(store, user, namespace,
                          "apiVersion: karvdash-test.example.org/v1\nkind: Widget\nmetadata: {name: $NAME}\n", "c")
    assert "Widget c is cluster-scoped" in error.message
    assert objects_of(sync_api, namespace) == []
    assert await store.list(user, namespace) == []


async def test_objects_of_another_service_are_not_taken_over(store, sync_api, new_user):
    user, namespace = new_user()
    sync_client.CoreV1Api(sync_api).create_namespaced_config_map(
        namespace, {"metadata": {"name": "taken-config"}, "data": {"mine": "yes"}}
    )
    with pytest.raises(InstanceError) as error:
        await create(store, user, namespace, "nginx", NAME="taken")
    assert error.value.status == 409 and "ConfigMap taken-config exists already" in error.value.message
    assert sync_client.CoreV1Api(sync_api).read_namespaced_config_map("taken-config", namespace).data == {"mine": "yes"}
    assert objects_of(sync_api, namespace) == []


async def test_missing_namespace_is_reported(store, new_user):
    with pytest.raises(InstanceError) as error:
        await create(store, "nobody", "karvdash-nobody-here", "redis", NAME="r")
    assert error.value.status == 409 and "does not exist yet" in error.value.message


# --- every shipped template is accepted by the API server ---------------------------------------


async def test_every_shipped_template_passes_the_api_servers_validation(store, new_user):
    user, namespace = new_user()
    for template in CATALOGUE.values():
        values = template.form_defaults()
        rendered = st.render(template, values, st.RenderContext(
            username=user, namespace=namespace, hostname=st.hostname_for(values["NAME"], user, "example.com"),
            auth_url="https://example.com/check", signin_url="https://example.com/signin"))
        for obj in rendered.objects:
            resource = await store.resource(obj["apiVersion"], obj["kind"])
            assert resource.namespaced
            await store._call("server_side_apply", resource, body=obj, namespace=namespace,
                              field_manager=FIELD_MANAGER, dry_run="All",
                              query_params=[("fieldValidation", "Strict")])


# --- exec -------------------------------------------------------------------------------------------


async def test_exec_checks_arguments_and_reports_the_failure(store, new_user):
    user, namespace = new_user()
    await create(store, user, namespace, "hello-kubernetes", NAME="ex")
    for command, message in [
        ("ls -l", "non-empty list"),
        ([], "non-empty list"),
        (["ls", 1], "must be a string"),
        (["ls", "a\0b"], "NUL"),
        ([""], "program is empty"),
        (["x"] * 101, "more than 100 arguments"),
    ]:
        with pytest.raises(InstanceError) as error:
            await store.exec(user, namespace, "ex", command)
        assert error.value.status == 400 and message in error.value.message
    with pytest.raises(InstanceError) as error:
        await store.exec(user, namespace, "none", ["id"])
    assert error.value.status == 404

    async def running():
        pods = await store._list("v1", "Pod", namespace, f"{INSTANCE_LABEL}=ex")
        return any(p["status"].get("phase") == "Running" for p in pods)

    await async_wait(running, what="kwok to run the pod")
    # kwok runs the command as a local process (tests/kube/kwok-exec.yaml)
    ran = await store.exec(user, namespace, "ex", ["echo", "hello"], all_pods=True)
    assert ran and all((r["pod"].startswith("ex-"), r["output"], r["exit_code"], r["error"]) == (True, "hello\n", 0, None)
                       for r in ran), ran
    # a program that is not there: no exit code, and why
    [missing] = await store.exec(user, namespace, "ex", ["no-such-program-here"])
    assert (missing["exit_code"], missing["output"]) == (None, "") and "no-such-program-here" in missing["error"], missing


# --- users' templates -----------------------------------------------------------------------------


async def test_user_templates_as_custom_resources(store, sync_api, new_user):
    user, namespace = new_user()
    templates = UserTemplateStore(store)
    text = CATALOGUE["hello-kubernetes"].text.replace("name: Hello Kubernetes", "name: My Hello")
    first = await templates.add(user, namespace, text, taken_ids=CATALOGUE)
    second = await templates.add(user, namespace, text, taken_ids=CATALOGUE)
    assert first.id == "my-hello" and second.id.startswith("my-hello-") and first.source == "user"
    listed, problems = await templates.list(user, namespace)
    assert sorted(t.id for t in listed) == sorted([first.id, second.id]) and problems == []
    stored = sync_client.CustomObjectsApi(sync_api).get_namespaced_custom_object(
        "karvdash.io", "v1", namespace, "templates", first.id
    )
    assert stored["spec"]["data"] == text
    with pytest.raises(InstanceError) as error:
        await templates.add(user, namespace, "kind: Template\nname: x\n", taken_ids=())
    assert error.value.status == 400 and "'variables' is a required property" in error.value.message
    instance = await store.create(first, {"NAME": "h"}, owner=user, namespace=namespace, context=base_context(),
                                  domain="example.com")
    assert (await store.list(user, namespace))[0].template_id == first.id == instance.template_id
    await templates.delete(user, namespace, first.id)
    with pytest.raises(InstanceError) as error:
        await templates.delete(user, namespace, first.id)
    assert error.value.status == 404
    assert [t.id for t in (await templates.list(user, namespace))[0]] == [second.id]


async def async_wait(check, timeout: float = 60, what: str = "condition"):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.3)


# --- what the chart's dashboard account may not do: 403, saying how to allow it -------------------


@pytest.fixture(scope="module")
def dashboard_kubeconfig(kube_cluster, sync_api, tmp_path_factory):
    """A kubeconfig of the chart's dashboard service account with the chart's
    ClusterRole and nothing more (the pattern of test_chart_kube.py)."""
    from tests.integration.test_chart_kube import render_chart, service_account_kubeconfig

    directory = tmp_path_factory.mktemp("dashboard-account")
    release_namespace = "karvdash-rbac-" + uuid.uuid4().hex[:6]
    core = sync_client.CoreV1Api(sync_api)
    core.create_namespace({"metadata": {"name": release_namespace}})
    path = directory / "dashboard.kubeconfig"
    rendered = render_chart(kube_cluster, directory, {}, release_namespace)
    remove = service_account_kubeconfig(kube_cluster, sync_api, rendered, "dashboard", path)
    yield path
    remove()
    core.delete_namespace(release_namespace)


@pytest.fixture
async def dashboard_store(dashboard_kubeconfig, tmp_path):
    from karvdash_hub.core.kubeapi import api_client_from_environment

    async with await api_client_from_environment(str(dashboard_kubeconfig)) as api:
        yield InstanceStore(api, HUB_NAMESPACE, discovery_cache=str(tmp_path / "dashboard-discovery.json"))


NOT_ALLOWED = {
    # a kind outside the dashboard's ClusterRole
    "quota": ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: $NAME-config}\n---\n"
              "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: $NAME}\nspec: {hard: {pods: '100'}}\n",
              "ResourceQuota q", "resourcequotas \"q\" is forbidden"),
    # a Role granting more than the dashboard holds
    "role": ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: $NAME-config}\n---\n"
             "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: $NAME}\n"
             "rules: [{apiGroups: [''], resources: [resourcequotas], verbs: [update]}]\n",
             "Role q", "is attempting to grant RBAC permissions not currently held"),
}


@pytest.mark.parametrize("case", sorted(NOT_ALLOWED))
async def test_what_the_dashboard_may_not_create_is_403_with_the_way_to_allow_it(
    dashboard_store, store, sync_api, new_user, case
):
    objects_yaml, what, reason = NOT_ALLOWED[case]
    user, namespace = new_user()
    template = st.parse_template(
        f"kind: Template\nname: Q\nvariables:\n- name: NAME\n  default: q\n---\n{objects_yaml}", "q", "user")
    with pytest.raises(InstanceError) as error:
        await dashboard_store.create(template, {"NAME": "q"}, owner=user, namespace=namespace,
                                     context=base_context(), domain="example.com")
    assert error.value.status == 403
    message = error.value.message
    assert message.startswith(f"Kubernetes does not let the dashboard create {what} (")
    assert reason in message
    assert message.endswith("; an administrator can allow it with the chart value dashboard.extraRules")
    # nothing is left, the record included, though the dashboard may not even list that kind
    assert objects_of(sync_api, namespace) == []
    assert await store.list(user, namespace) == []
    assert sync_client.CoreV1Api(sync_api).list_namespaced_resource_quota(namespace).items == []


async def test_busy_answers_are_tried_a_bounded_number_of_times(kube_cluster, dashboard_kubeconfig, sync_api,
                                                               new_user, tmp_path):
    from tests.integration.test_datasets_kube import BusyApiServer

    user, namespace = new_user()
    token = yaml.safe_load(dashboard_kubeconfig.read_text())["users"][0]["user"]["token"]
    async with BusyApiServer(kube_cluster.server, kube_cluster.ca) as proxy:
        configuration = k8s.Configuration(host=proxy.url, api_key={"BearerToken": f"Bearer {token}"})
        async with k8s.ApiClient(configuration) as api:
            busy_store = InstanceStore(api, HUB_NAMESPACE, discovery_cache=str(tmp_path / "busy-discovery.json"))
            # the record is refused twice, then made; the service is made once
            proxy.busy = {("POST", "/configmaps"): 2}
            instance = await create(busy_store, user, namespace, "hello-kubernetes", NAME="busy")
            posts = [s for m, p, s in proxy.seen if m == "POST" and p.endswith("/configmaps")]
            assert posts == [429, 429, 201]
            assert [i.name for i in await busy_store.list(user, namespace)] == [instance.name] == ["busy"]
            # busy for good: four tries, then 503
            proxy.seen.clear()
            proxy.busy = {("GET", "/configmaps"): 100}
            with pytest.raises(InstanceError) as error:
                await busy_store.list(user, namespace)
            assert (error.value.status, error.value.message) == (
                503, "the Kubernetes API is busy (storage is (re)initializing); try again")
            assert [s for m, p, s in proxy.seen if p.endswith("/configmaps")] == [429, 429, 429, 429]
            proxy.busy = {}
            await busy_store.delete(user, namespace, "busy")
    wait_for(lambda: objects_of(sync_api, namespace) == [], what="every object to be deleted")
