"""The webhook's view of the cluster (owners and datasets from list and watch
events) and the additions kept per namespace state.

The views are filled with the JSON a list and a watch return; the API client
points at a closed port on 127.0.0.1, so any request the webhook made to the
API server would come back as a 503 answer: a patch proves it answered from
the view. tests/integration/test_webhook_kube.py runs the watches against a
real kube-apiserver.
"""

from __future__ import annotations

import base64
import copy
import json
import socket

import pytest
from kubernetes_asyncio import client

from karvdash_hub.admission.rules import parse_review
from karvdash_hub.webhook.clusterlookup import ClusterLookup
from karvdash_hub.webhook.clusterview import DatasetsView, NamespacesView
from karvdash_hub.webhook.reviews import Reviewer
from tests.unit.test_admission import review
from tests.unit.test_webhook import make_settings

NS = "karvdash-alice"


def namespace(name: str, owner: str | None = "alice", rv: str = "10") -> dict:
    labels = {"karvdash.io/user-namespace": "enabled"}
    if owner:
        labels["karvdash.io/owner"] = owner
    return {"metadata": {"name": name, "labels": labels, "resourceVersion": rv}}


def dataset(name: str, ns: str = NS, rv: str = "20") -> dict:
    return {"apiVersion": "datashim.io/v1alpha1", "kind": "Dataset",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": rv}}


def test_namespaces_view_follows_list_and_events():
    view = NamespacesView()
    assert not view.synced
    view.replace([namespace(NS), namespace("plain", owner=None), namespace("karvdash-bob", "bob")], "100")
    assert (view.synced, view.resource_version) == (True, "100")
    assert view.owners == {NS: "alice", "plain": None, "karvdash-bob": "bob"}

    view.apply("MODIFIED", namespace(NS, owner="carol", rv="101"))
    view.apply("DELETED", namespace("karvdash-bob", "bob", rv="102"))
    view.apply("ADDED", namespace("karvdash-dave", "dave", rv="103"))
    view.apply("BOOKMARK", {"metadata": {"resourceVersion": "150"}})
    assert view.owners == {NS: "carol", "plain": None, "karvdash-dave": "dave"}
    assert view.resource_version == "150"

    view.lost()
    assert (view.synced, view.resource_version) == (False, "")


def test_datasets_view_follows_list_and_events():
    view = DatasetsView()
    view.replace([dataset("mnist"), dataset("cifar"), dataset("imagenet", "karvdash-bob")], "200")
    assert view.names == {NS: ("cifar", "mnist"), "karvdash-bob": ("imagenet",)}
    handed_out = view.of(NS)

    view.apply("DELETED", dataset("mnist", rv="201"))
    view.apply("ADDED", dataset("coco", rv="202"))
    view.apply("MODIFIED", dataset("coco", rv="203"))  # status updates change nothing
    view.apply("DELETED", dataset("imagenet", "karvdash-bob", rv="204"))
    assert view.names == {NS: ("cifar", "coco")}
    assert view.of("karvdash-bob") == () and view.resource_version == "204"
    # what an admission already read is left as it was
    assert handed_out == ("cifar", "mnist")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def lookup():
    configuration = client.Configuration(host=f"http://127.0.0.1:{closed_port()}")
    api = client.ApiClient(configuration)
    lookup = ClusterLookup(api, "datashim.io", timeout=1.0)
    lookup.namespaces.replace([namespace(NS), namespace("karvdash-bob", "bob")], "100")
    lookup.dataset_view.replace([dataset("mnist")], "200")
    yield lookup
    await api.close()


def pod_review() -> dict:
    return parse_review(review("pod"))


async def mutate(reviewer: Reviewer) -> dict:
    return (await reviewer.mutate(pod_review()))


def patch_of(answer: dict) -> list[dict]:
    assert answer["response"]["allowed"] is True, answer
    return json.loads(base64.b64decode(answer["response"]["patch"]))


def expected_patch(owner: str | None, datasets: list[str]) -> list[dict]:
    """The patch of tests/unit/admission/pod-create.json (a container with a
    mount, a sidecar without, an annotation), written out."""
    volumes, mounts = [], []
    if owner:
        volumes += [
            {"name": "karvdash-private", "hostPath": {"path": f"/data/karvdash/private/{owner}", "type": "DirectoryOrCreate"}},
            {"name": "karvdash-shared", "hostPath": {"path": "/data/karvdash/shared", "type": "DirectoryOrCreate"}},
        ]
        mounts += [{"name": "karvdash-private", "mountPath": "/private"},
                   {"name": "karvdash-shared", "mountPath": "/shared"}]
    volumes.append({"name": "karvdash-api", "secret": {"secretName": "karvdash-api", "optional": True}})
    mounts.append({"name": "karvdash-api", "mountPath": "/var/lib/karvdash", "readOnly": True})
    for name in datasets:
        volumes.append({"name": f"dataset-{name}", "persistentVolumeClaim": {"claimName": name}})
        mounts.append({"name": f"dataset-{name}", "mountPath": f"/mnt/datasets/{name}"})
    return [
        *({"op": "add", "path": "/spec/volumes/-", "value": v} for v in volumes),
        *({"op": "add", "path": "/spec/containers/0/volumeMounts/-", "value": m} for m in mounts),
        {"op": "add", "path": "/spec/containers/1/volumeMounts", "value": mounts},
        {"op": "add", "path": "/metadata/annotations/karvdash.io~1added-volumes",
         "value": ",".join(v["name"] for v in volumes)},
    ]


async def test_admissions_are_answered_from_the_view_and_share_the_additions(lookup):
    reviewer = Reviewer(make_settings(), lookup)
    first = await mutate(reviewer)
    second = await mutate(reviewer)
    assert patch_of(first) == patch_of(second) == expected_patch("alice", ["mnist"])
    assert reviewer.additions.cache_info()[:2] == (1, 1)  # (hits, misses)
    # the same built volumes, not a copy per pod
    assert reviewer.additions("alice", ("mnist",)) is reviewer.additions("alice", ("mnist",))


async def test_a_removed_dataset_is_not_mounted_by_the_next_admission(lookup):
    reviewer = Reviewer(make_settings(), lookup)
    assert patch_of(await mutate(reviewer)) == expected_patch("alice", ["mnist"])
    lookup.dataset_view.apply("DELETED", dataset("mnist", rv="201"))
    assert patch_of(await mutate(reviewer)) == expected_patch("alice", [])
    lookup.dataset_view.apply("ADDED", dataset("coco", rv="202"))
    lookup.dataset_view.apply("ADDED", dataset("mnist", rv="203"))
    assert patch_of(await mutate(reviewer)) == expected_patch("alice", ["coco", "mnist"])


async def test_a_changed_owner_label_is_used_by_the_next_admission(lookup):
    reviewer = Reviewer(make_settings(), lookup)
    assert patch_of(await mutate(reviewer)) == expected_patch("alice", ["mnist"])
    lookup.namespaces.apply("MODIFIED", namespace(NS, owner="carol", rv="101"))
    assert patch_of(await mutate(reviewer)) == expected_patch("carol", ["mnist"])


async def test_without_a_current_answer_in_the_view_the_api_server_is_asked(lookup):
    reviewer = Reviewer(make_settings(), lookup)
    unavailable = {"uid": "b0c5ab13-4c1c-4d39-8f55-8a5a4f0d7e01", "allowed": False}

    async def asked_the_api() -> bool:
        answer = (await mutate(reviewer))["response"]
        if answer["allowed"]:
            return False
        assert {k: answer[k] for k in unavailable} == unavailable
        assert answer["status"]["code"] == 503
        assert answer["status"]["message"].startswith("karvdash webhook: cannot read namespace karvdash-alice:")
        return True

    assert not await asked_the_api()
    # the owner label taken off: it may be back a moment later, so it is asked, not assumed
    lookup.namespaces.apply("MODIFIED", namespace(NS, owner=None, rv="101"))
    assert await asked_the_api()
    lookup.namespaces.apply("MODIFIED", namespace(NS, rv="102"))
    assert not await asked_the_api()
    # a broken watch: events may be missed until the next list
    lookup.namespaces.lost()
    assert await asked_the_api()
    lookup.namespaces.replace([namespace(NS)], "300")
    assert not await asked_the_api()
    # a namespace the watch has not reported yet
    lookup.namespaces.apply("DELETED", namespace(NS, rv="301"))
    assert await asked_the_api()


async def test_a_broken_datasets_watch_asks_for_the_datasets(lookup):
    reviewer = Reviewer(make_settings(), lookup)
    lookup.dataset_view.lost()
    answer = (await mutate(reviewer))["response"]
    assert answer["allowed"] is False and answer["status"]["code"] == 503
    assert answer["status"]["message"].startswith("karvdash webhook: cannot list datasets in karvdash-alice:")
    # a pod without datasets needs no list
    opted_out = copy.deepcopy(review("pod"))
    opted_out["request"]["object"]["metadata"]["labels"] = {"karvdash.io/datasets": "false"}
    assert patch_of(await reviewer.mutate(parse_review(opted_out))) == expected_patch("alice", [])
