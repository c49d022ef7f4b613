"""namespaces/store.py without a cluster: the order of the namespace set-up.

The API objects here are stand-ins recording calls (unit tests have no API
server); tests/integration/test_spawner_kube.py applies the same set-up to a
real kube-apiserver with the hub's documented permissions.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from kubernetes_asyncio.client import ApiException

from karvdash_hub.core.labels import owner_labels
from karvdash_hub.core.settings import load_settings
from karvdash_hub.namespaces.spawnfailures import SpawnFailure
from karvdash_hub.namespaces.store import UserNamespaces


class Recorder:
    """Every call is recorded by name and answered by ``answers[name]`` (an
    async function of its arguments); else a read finds nothing (404) and
    anything else is accepted."""

    def __init__(self, calls: list, answers: dict | None = None):
        self.calls = calls
        self.answers = answers or {}

    def __getattr__(self, name: str):
        async def call(*args):
            self.calls.append(name)
            if name in self.answers:
                return await self.answers[name](*args)
            if name.startswith("read_"):
                raise ApiException(status=404, reason="Not Found")
            return None

        return call


def spaces(calls, core=None, rbac=None, networking=None) -> UserNamespaces:
    settings = load_settings(environ={"KARVDASH_MODE": "kubernetes", "KARVDASH_INGRESS_URL": "https://example.test"})
    return UserNamespaces(settings, core or Recorder(calls), rbac or Recorder(calls), Recorder(calls),
                          networking=networking or Recorder(calls))


async def test_the_namespaces_objects_are_applied_at_once_and_a_refusal_stops_the_others():
    calls, cancelled = [], []
    never = asyncio.Event()

    async def hangs(namespace, body):
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.append(body["metadata"]["name"])
            raise

    async def refused(namespace, body):
        raise ApiException(status=403, reason="Forbidden")

    store = spaces(
        calls,
        networking=Recorder(calls, {"create_namespaced_network_policy": hangs}),
        rbac=Recorder(calls, {"create_namespaced_role_binding": refused}),
    )
    # one after the other, the RoleBinding would wait for the NetworkPolicy forever
    with pytest.raises(SpawnFailure) as failure:
        await asyncio.wait_for(store.ensure("ann", lambda current: "token"), timeout=5)
    assert "Kubernetes did not allow the hub to give the service account of karvdash-ann the edit role" in str(
        failure.value.jupyterhub_message)
    assert calls[0] == "create_namespace"
    assert {"create_namespaced_network_policy", "create_namespaced_role_binding"} <= set(calls)
    # the step still waiting was cancelled, not left running behind the failed start
    assert len(cancelled) == 1


async def test_the_namespace_comes_before_anything_in_it():
    calls = []
    created = asyncio.Event()

    async def namespace_made(body):
        await asyncio.sleep(0.01)
        created.set()

    async def needs_the_namespace(namespace, body):
        assert created.is_set(), "an object was created before its namespace"

    core = Recorder(calls, {"create_namespace": namespace_made, "create_namespaced_secret": needs_the_namespace})
    store = spaces(
        calls, core=core,
        networking=Recorder(calls, {"create_namespaced_network_policy": needs_the_namespace}),
        rbac=Recorder(calls, {"create_namespaced_role_binding": needs_the_namespace}),
    )
    await store.ensure("ann", lambda current: "token")
    assert calls[0] == "create_namespace"
    assert {"create_namespaced_network_policy", "create_namespaced_role_binding", "create_namespaced_secret"} <= set(
        calls)


async def test_a_new_namespace_gets_its_default_service_account_made_with_the_rest():
    calls, made = [], []

    async def create_account(namespace, body):
        made.append((namespace, body))

    store = spaces(calls, core=Recorder(calls, {"create_namespaced_service_account": create_account}))
    await store.ensure("ann", lambda current: "token")
    assert made == [("karvdash-ann", {"apiVersion": "v1", "kind": "ServiceAccount",
                                      "metadata": {"name": "default", "namespace": "karvdash-ann"}})]


@pytest.mark.parametrize("status, fails", [(409, False), (403, True)])
async def test_the_controller_managers_account_first_is_fine_a_refusal_is_not(status, fails):
    async def answer(namespace, body):
        raise ApiException(status=status, reason="Conflict" if status == 409 else "Forbidden")

    calls = []
    store = spaces(calls, core=Recorder(calls, {"create_namespaced_service_account": answer}))
    if not fails:
        await store.ensure("ann", lambda current: "token")
        return
    with pytest.raises(SpawnFailure) as failure:
        await store.ensure("ann", lambda current: "token")
    assert "create the service account of karvdash-ann" in str(failure.value.jupyterhub_message)


async def test_a_namespace_there_already_has_its_service_account_left_alone():
    async def exists(body):
        raise ApiException(status=409, reason="Conflict")

    async def read_namespace(name):
        return SimpleNamespace(metadata=SimpleNamespace(labels=owner_labels("ann")), status=None)

    calls = []
    store = spaces(calls, core=Recorder(calls, {"create_namespace": exists, "read_namespace": read_namespace}))
    await store.ensure("ann", lambda current: "token")
    assert "create_namespaced_service_account" not in calls
