"""The webhook's watches of namespaces and datasets recovering, against a
real kube-apiserver: a connection cut in the middle of the watches, and a
watch resumed from a resourceVersion the apiserver no longer has (410 Gone).

The cut is made by a TCP relay of the test's own between ``karvdash-webhook``
and the apiserver (TLS passes through it untouched): it resets every
connection and accepts none until it is restored, as a network outage or an
apiserver restart would. Pods are created through the apiserver, which calls
the webhook, so what the tests read is what the cluster stored.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import re
import socket
import struct
import threading
import uuid
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from kubernetes import client
from kubernetes_asyncio import client as aclient
from kubernetes_asyncio import config as aconfig

from karvdash_hub.admission.rules import parse_review
from karvdash_hub.core import labels
from karvdash_hub.webhook.clusterlookup import ClusterLookup
from karvdash_hub.webhook.reviews import Reviewer
from tests.integration.test_chart_kube import install_crds
from tests.integration.test_webhook_kube import (
    namespace,
    pod,
    refusal,
    running_webhook,
    wait_until_mutating,
)
from tests.kube.cluster import free_port
from tests.kube.fixtures import wait_for
from tests.unit.test_admission import review
from tests.unit.test_webhook import make_settings

pytestmark = [pytest.mark.kube, pytest.mark.integration]

CHART_NAMESPACE = "karvdash-webhook-watch-test"


class Relay:
    """127.0.0.1:port -> the apiserver, byte for byte; :meth:`cut` resets
    every connection and stops listening, :meth:`restore` listens again on
    the same port."""

    def __init__(self, target_port: int):
        self.port, self.target_port = free_port(), target_port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = None
        # each relayed connection: (the client's end, the apiserver's end)
        self.connections: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.restore()

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def restore(self) -> None:
        async def start():
            self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port, reuse_address=True)
        self._run(start())

    def cut(self) -> int:
        """Reset every connection (RST, as a dropped network does); returns how many."""
        async def cut():
            self.server.close()
            await self.server.wait_closed()
            cut = list(self.connections)
            for writer in (end for pair in cut for end in pair):
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            self.connections.clear()
            return len(cut)
        return self._run(cut())

    def close(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _relay(self, reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.connections.add((writer, up_writer))

        async def pipe(source, sink):
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.connections.discard((writer, up_writer))


@contextmanager
def relay_to(kube_cluster):
    relay = Relay(urlsplit(kube_cluster.server).port)
    try:
        yield relay
    finally:
        relay.close()


def dataset(core_custom, ns: str, name: str) -> dict:
    return core_custom.create_namespaced_custom_object("datashim.io", "v1alpha1", ns, "datasets", {
        "apiVersion": "datashim.io/v1alpha1", "kind": "Dataset", "metadata": {"name": name},
        "spec": {"local": {"type": "ARCHIVE", "url": f"https://data.example.test/{name}.tar",
                           "format": "application/x-tar"}},
    })


def added(created: client.V1Pod) -> str:
    return created.metadata.annotations[labels.ADDED_VOLUMES_ANNOTATION]


def private_folder(created: client.V1Pod) -> str:
    return next(v.host_path.path for v in created.spec.volumes if v.name == "karvdash-private")


def test_a_cut_connection_resumes_the_watches_and_the_next_pod_sees_what_changed_meanwhile(
        kube_cluster, kube_api_client, tmp_path_factory):
    core = client.CoreV1Api(kube_api_client)
    custom = client.CustomObjectsApi(kube_api_client)
    with relay_to(kube_cluster) as relay, running_webhook(
            kube_cluster, kube_api_client, tmp_path_factory, chart_namespace=CHART_NAMESPACE,
            api_server=f"https://127.0.0.1:{relay.port}") as webhook:
        ns = namespace(core, f"karvdash-alice-{uuid.uuid4().hex[:6]}",
                       {labels.NAMESPACE_LABEL: labels.NAMESPACE_LABEL_VALUE, labels.OWNER_LABEL: "alice"})
        try:
            wait_until_mutating(core, ns)

            def admitted() -> client.V1Pod:
                return core.create_namespaced_pod(ns, pod(f"p-{uuid.uuid4().hex[:6]}"))

            mnist = dataset(custom, ns, "mnist")
            wait_for(lambda: added(admitted()).endswith(",dataset-mnist"), timeout=30, what="mnist in pods")
            log = webhook.log.read_text()
            assert log.count("watching namespaces from resourceVersion") == 1
            assert log.count("watching datasets from resourceVersion") == 1

            assert relay.cut() >= 2  # both watches (and any kept-alive connection) reset
            wait_for(lambda: all(f"watch of {what} broke" in webhook.log.read_text()
                                 for what in ("namespaces", "datasets")), timeout=30, what="the breaks noticed")
            # each resumes from the last change it saw, not from a new list
            resume_from = dict(re.findall(r"watch of (namespaces|datasets) broke .*?resumes from "
                                          r"resourceVersion (\d+)", webhook.log.read_text()))
            assert int(resume_from["datasets"]) >= int(mnist["metadata"]["resourceVersion"])

            # while the webhook cannot see the cluster
            custom.delete_namespaced_custom_object("datashim.io", "v1alpha1", ns, "datasets", "mnist")
            dataset(custom, ns, "coco")
            core.patch_namespace(ns, {"metadata": {"labels": {labels.OWNER_LABEL: "bob"}}})
            # a pod now is refused (the webhook asks, and cannot reach the apiserver), never given
            # what the view held before the cut (alice's folder, mnist)
            status, message = refusal(admitted)
            assert "cannot read namespace" in message, (status, message)

            relay.restore()
            wait_for(lambda: all(f"watching {what} again, caught up at resourceVersion" in webhook.log.read_text()
                                 for what in ("namespaces", "datasets")), timeout=60, what="the watches caught up")
            after = admitted()
            assert added(after) == "karvdash-private,karvdash-shared,karvdash-api,dataset-coco"
            assert private_folder(after) == "/data/karvdash/private/bob"
            log = webhook.log.read_text()
            # resumed, not listed again: the changes arrived as the resumed watches' events
            assert log.count("watching namespaces from resourceVersion") == 1
            assert log.count("watching datasets from resourceVersion") == 1
            assert "listing again" not in log

            # and they keep watching: the next change reaches the next pod
            custom.delete_namespaced_custom_object("datashim.io", "v1alpha1", ns, "datasets", "coco")
            assert added(admitted()) == "karvdash-private,karvdash-shared,karvdash-api"
        finally:
            core.delete_namespace(ns)


async def test_a_resource_version_the_apiserver_no_longer_has_lists_again(kube_cluster, kube_api_client, caplog):
    """The lookup in this process, with the admin's credentials: its watches
    are stopped, and the datasets watch resumed from a resourceVersion older
    than the apiserver's watch cache of datasets (which began with the CRD;
    an apiserver restart or a long outage does the same). The apiserver
    answers 410 Gone ("too old resource version"); the lookup lists again,
    and the next admission sees what changed while it was not watching."""
    caplog.set_level(logging.INFO, logger="karvdash_hub.webhook")
    await asyncio.to_thread(install_crds, kube_cluster, kube_api_client)
    core = client.CoreV1Api(kube_api_client)
    custom = client.CustomObjectsApi(kube_api_client)
    ns = await asyncio.to_thread(namespace, core, f"karvdash-alice-{uuid.uuid4().hex[:6]}", {
        labels.NAMESPACE_LABEL: labels.NAMESPACE_LABEL_VALUE, labels.OWNER_LABEL: "alice"})
    configuration = aclient.Configuration()
    await aconfig.load_kube_config(config_file=str(kube_cluster.kubeconfig), client_configuration=configuration)
    api = aclient.ApiClient(configuration)
    lookup = ClusterLookup(api, "datashim.io")
    reviewer = Reviewer(make_settings(), lookup)
    request = copy.deepcopy(review("pod"))
    request["request"]["namespace"] = request["request"]["object"]["metadata"]["namespace"] = ns

    async def datasets_admitted() -> list[str]:
        answer = await reviewer.mutate(parse_review(request))
        assert answer["response"]["allowed"] is True, answer
        patch = json.loads(base64.b64decode(answer["response"]["patch"]))
        added = next(op["value"] for op in patch if op["path"].endswith("added-volumes"))
        return [v.removeprefix("dataset-") for v in added.split(",") if v.startswith("dataset-")]

    async def until(check, what: str, timeout: float = 30):
        for _ in range(int(timeout * 10)):
            if check():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    try:
        await asyncio.to_thread(dataset, custom, ns, "mnist")
        lookup.start_watching()
        await until(lambda: lookup.dataset_view.synced and lookup.dataset_view.of(ns) == ("mnist",), "mnist")
        assert await datasets_admitted() == ["mnist"]
        await lookup.close()  # not watching now
        assert not lookup.dataset_view.synced and not lookup.namespaces.synced

        await asyncio.to_thread(custom.delete_namespaced_custom_object,
                                "datashim.io", "v1alpha1", ns, "datasets", "mnist")
        await asyncio.to_thread(dataset, custom, ns, "coco")
        # not current: asked of the apiserver, which already says coco
        assert await datasets_admitted() == ["coco"]

        lookup.dataset_view.resource_version = "1"  # long before the CRD: not in the apiserver's cache
        caplog.clear()
        lookup.start_watching()
        await until(lambda: lookup.dataset_view.synced, "the datasets listed again")
        assert "datasets: resourceVersion too old, listing again" in caplog.messages
        assert lookup.dataset_view.of(ns) == ("coco",) and int(lookup.dataset_view.resource_version) > 1
        assert await datasets_admitted() == ["coco"]
        # watching on from the new list: the next change comes as an event
        await asyncio.to_thread(dataset, custom, ns, "cifar")
        await until(lambda: lookup.dataset_view.of(ns) == ("cifar", "coco"), "cifar")
        assert await datasets_admitted() == ["cifar", "coco"]
    finally:
        await lookup.close()
        await api.close()
        await asyncio.to_thread(core.delete_namespace, ns)
