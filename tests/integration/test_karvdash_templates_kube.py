"""Karvdash 2.x templates (tests/karvdash_templates) and the whole shipped
catalogue, started as services on the real API server with the chart's
tenant policies (Pod Security baseline for pods and workloads) in force:
every object applied, in its current API version, under the instance's
names. kwok runs no containers, so what is checked is that Kubernetes takes
the objects, not that the programs in them work.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from kubernetes import client as sync_client

from karvdash_hub.services import templates as st
from karvdash_hub.services.catalogue import file_catalogue, load_folder
from karvdash_hub.services.store import RECORD_PREFIX, InstanceStore
from tests.integration.test_chart_kube import render_chart
from tests.integration.test_instances_kube import (  # noqa: F401 - fixtures
    HUB_NAMESPACE,
    async_api,
    base_context,
    new_user,
    sync_api,
)
from tests.integration.test_tenant_policy_kube import (
    POLICY_KINDS,
    PRIVILEGED_PROBE,
    VALUES,
    apply_policies,
    policy_in_force,
)

pytestmark = [pytest.mark.kube, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
SHIPPED, _ = file_catalogue(ROOT / "service_templates", ROOT / "no-admin-templates")
KARVDASH, PROBLEMS = load_folder(ROOT / "tests" / "karvdash_templates", "admin")
REMOVED_VERSIONS = {"extensions/v1beta1", "networking.k8s.io/v1beta1", "apps/v1beta1", "apps/v1beta2",
                    "batch/v1beta1", "policy/v1beta1", "rbac.authorization.k8s.io/v1beta1", "autoscaling/v2beta1"}


@pytest.fixture(scope="module")
def tenant_policies(kube_cluster, kube_api_client, sync_api, tmp_path_factory):  # noqa: F811
    """The chart's ValidatingAdmissionPolicies, for every user namespace."""
    directory = tmp_path_factory.mktemp("policies")
    rendered = [o for o in render_chart(kube_cluster, directory, VALUES, namespace="karvdash-templates-policy")
                if o["kind"] in POLICY_KINDS]
    apply_policies(kube_cluster, rendered, directory)
    yield next(o["metadata"]["name"] for o in rendered
               if o["kind"] == "ValidatingAdmissionPolicy" and o["metadata"]["name"].endswith("-tenant-pods"))
    admission = sync_client.AdmissionregistrationV1Api(kube_api_client)
    for obj in rendered:
        if obj["kind"] == "ValidatingAdmissionPolicyBinding":
            admission.delete_validating_admission_policy_binding(obj["metadata"]["name"])
        else:
            admission.delete_validating_admission_policy(obj["metadata"]["name"])


@pytest.fixture
async def store(kube_cluster, sync_api, tmp_path):  # noqa: F811
    api = await async_api(kube_cluster)
    yield InstanceStore(api, HUB_NAMESPACE, discovery_cache=str(tmp_path / "discovery.json"))
    await api.close()


@pytest.fixture
def policed_user(new_user, kube_api_client, tenant_policies):  # noqa: F811
    user, namespace = new_user()
    # policies reach admission asynchronously: wait until this namespace refuses a privileged pod
    policy_in_force(kube_api_client, namespace, PRIVILEGED_PROBE, tenant_policies)
    return user, namespace


async def created_objects(store, namespace: str, name: str) -> list[dict]:
    """What the API server holds of a service, by its record's list of objects."""
    records = await store.resource("v1", "ConfigMap")
    record = await store._call("get", records, name=RECORD_PREFIX + name, namespace=namespace)
    found = []
    for api_version, kind, object_name in json.loads(record["data"]["objects"]):
        resource = await store.resource(api_version, kind)
        found.append(await store._call("get", resource, name=object_name, namespace=namespace))
    return found


def test_the_karvdash_templates_are_read_without_problems():
    assert PROBLEMS == [] and set(KARVDASH) == {"web-v1beta1", "notebook-statefulset", "fixed-names", "kafka-shell"}
    assert all(t.notes for t in KARVDASH.values())


@pytest.mark.parametrize("source, template_id", [
    *(("karvdash", t) for t in sorted(KARVDASH)), *(("shipped", t) for t in sorted(SHIPPED))])
async def test_every_template_starts_a_service_the_api_server_accepts(store, policed_user, source, template_id):
    user, namespace = policed_user
    template = (KARVDASH if source == "karvdash" else SHIPPED)[template_id]
    instance = await store.create(template, template.form_defaults(), owner=user, namespace=namespace,
                                  context=base_context(), domain="example.com")
    objects = await created_objects(store, namespace, instance.name)
    assert len(objects) == len(template.objects)
    for obj in objects:
        assert obj["apiVersion"] not in REMOVED_VERSIONS
        assert obj["metadata"]["namespace"] == namespace
        assert instance.name in obj["metadata"]["name"], obj["metadata"]["name"]
    if template.has_ingress:
        assert instance.url == f"https://{instance.name}-{user}.example.com"


async def test_a_karvdash_ingress_and_deployment_on_the_server(store, policed_user):
    user, namespace = policed_user
    template = KARVDASH["web-v1beta1"]
    instance = await store.create(template, {"NAME": "site", "PORT": "8081"}, owner=user, namespace=namespace,
                                  context=base_context(), domain="example.com")
    ingress, service, deployment = await created_objects(store, namespace, instance.name)
    assert (ingress["apiVersion"], ingress["spec"]["ingressClassName"]) == ("networking.k8s.io/v1", "nginx")
    assert ingress["spec"]["rules"][0] == {"host": f"site-{user}.example.com", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "site", "port": {"number": 8081}}}}]}}
    assert "kubernetes.io/ingress.class" not in ingress["metadata"]["annotations"]
    assert service["spec"]["ports"][0]["port"] == 8081
    assert deployment["apiVersion"] == "apps/v1"
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "site"}}


async def test_objects_named_without_name_are_each_services_own(store, policed_user, sync_api):  # noqa: F811
    user, namespace = policed_user
    template = KARVDASH["fixed-names"]
    for name in ("daily", "hourly"):
        await store.create(template, {"NAME": name}, owner=user, namespace=namespace, context=base_context(),
                           domain="example.com")
    core = sync_client.CoreV1Api(sync_api)
    batch = sync_client.BatchV1Api(sync_api)
    rbac = sync_client.RbacAuthorizationV1Api(sync_api)
    for name in ("daily", "hourly"):
        assert core.read_namespaced_config_map(f"{name}-settings", namespace).data["LEVEL"] == "info"
        core.read_namespaced_secret(f"{name}-credentials", namespace)
        core.read_namespaced_persistent_volume_claim(f"{name}-reports", namespace)
        pod = batch.read_namespaced_cron_job(name, namespace).spec.job_template.spec.template.spec
        assert pod.service_account_name == f"{name}-reporter"
        container = pod.containers[0]
        assert container.env_from[0].config_map_ref.name == f"{name}-settings"
        assert container.env[0].value_from.secret_key_ref.name == f"{name}-credentials"
        assert [v.config_map.name if v.config_map else v.persistent_volume_claim.claim_name for v in pod.volumes] == [
            f"{name}-settings", f"{name}-reports"]
        binding = rbac.read_namespaced_role_binding(f"{name}-reporter-reads-pods", namespace)
        assert (binding.role_ref.name, binding.subjects[0].name, binding.subjects[0].namespace) == (
            f"{name}-pod-reader", f"{name}-reporter", namespace)


async def test_the_pods_own_hostname_survives_in_shell(store, policed_user, sync_api):  # noqa: F811
    user, namespace = policed_user
    instance = await store.create(KARVDASH["kafka-shell"], {"NAME": f"k{uuid.uuid4().hex[:4]}"}, owner=user,
                                  namespace=namespace, context=base_context(), domain="example.com")
    name = instance.name
    stateful = sync_client.AppsV1Api(sync_api).read_namespaced_stateful_set(name, namespace)
    container = stateful.spec.template.spec.containers[0]
    script = container.command[2]
    assert script.startswith("export KAFKA_CFG_BROKER_ID=${HOSTNAME##*-} && export KAFKA_CFG_ADVERTISED_LISTENERS="
                             f"PLAINTEXT://${{HOSTNAME}}.{name}.{namespace}.svc:9092 && echo \"starting on $HOSTNAME\"")
    assert container.env[0].value == f"{name}-zookeeper:2181"
    sync_client.CoreV1Api(sync_api).read_namespaced_service(f"{name}-zookeeper", namespace)


async def test_the_tenant_policy_refuses_what_baseline_refuses_in_a_converted_workload(store, policed_user):
    """The policy is in force for these services: a Karvdash workload asking
    for a privileged container is refused, converted or not."""
    user, namespace = policed_user
    text = KARVDASH["web-v1beta1"].text.replace("        ports:\n        - containerPort: 8080",
                                                 "        securityContext: {privileged: true}")
    template = st.parse_template(text, "privileged", "admin")
    from karvdash_hub.services.store import InstanceError

    with pytest.raises(InstanceError) as error:
        await store.create(template, {"NAME": "priv"}, owner=user, namespace=namespace, context=base_context(),
                           domain="example.com")
    assert error.value.status in (400, 403) and "privileged" in error.value.message, error.value.message
