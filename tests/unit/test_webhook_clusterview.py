"""The webhook's view of the cluster (owners and datasets from list and watch
events) and the additions kept per namespace state.

The views are filled with the JSON a list and a watch return; the API client
points at a closed port on 127.0.0.1, so any request the webhook made to the
API server would come back as a 503 answer: a patch proves it answered from
the view. tests/integration/test_webhook_kube.py runs the watches against a
real kube-apiserver.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import socket

import aiohttp
import pytest
from kubernetes_asyncio import client

from karvdash_hub.admission.rules import parse_review
from karvdash_hub.webhook import clusterlookup
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


# --- recovery of the watches ------------------------------------------------------------
#
# The lookup's own list-then-watch loop and kubernetes_asyncio's watch run as
# they are; only the API server's side of the list and watch requests is
# played (FakeApiServer): broken connections, 410s and unreadable answers
# cannot be made on demand by a real one in a unit test.
# tests/integration/test_webhook_kube.py does it with a real kube-apiserver.


class WatchAnswer:
    """The body of one watch request, one line at a time as the test sends it."""

    def __init__(self):
        self.content = self  # kubernetes_asyncio reads resp.content.readline()
        self.lines: asyncio.Queue = asyncio.Queue()

    def event(self, event_type: str, obj: dict) -> None:
        self.lines.put_nowait(json.dumps({"type": event_type, "object": obj}).encode() + b"\n")

    def bookmark(self, rv: str) -> None:
        self.event("BOOKMARK", {"kind": "Namespace", "metadata": {"resourceVersion": rv}})

    def expired(self) -> None:
        """What kube-apiserver sends for a resourceVersion older than it keeps."""
        self.event("ERROR", {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                             "message": "too old resource version: 100 (300)", "reason": "Expired", "code": 410})

    def send(self, raw: bytes) -> None:
        self.lines.put_nowait(raw)

    def end(self) -> None:
        """The API server ends the watch (its timeoutSeconds have passed)."""
        self.lines.put_nowait(b"")

    def fail(self, error: BaseException) -> None:
        """The connection breaks."""
        self.lines.put_nowait(error)

    async def readline(self) -> bytes:
        line = await self.lines.get()
        if isinstance(line, BaseException):
            raise line
        return line

    def close(self):
        pass

    def release(self):
        pass


class ListAnswer:
    def __init__(self, body: dict, status: int = 200):
        self.status, self.reason, self.body = status, "OK" if status == 200 else "Gone", body

    async def read(self) -> bytes:
        return json.dumps(self.body).encode()


class FakeApiServer:
    """Answers the lookup's list and watch calls: ``items`` at ``rv`` to a
    list, a :class:`WatchAnswer` the test writes to for each watch."""

    def __init__(self, items: list[dict], rv: str):
        self.items, self.rv = items, rv
        self.requests: list[tuple] = []
        self.watches: asyncio.Queue = asyncio.Queue()

    async def __call__(self, *args, watch=False, resource_version=None, timeout_seconds=None, **kwargs):
        if not watch:
            self.requests.append(("list",))
            return ListAnswer({"metadata": {"resourceVersion": self.rv}, "items": copy.deepcopy(self.items)})
        self.requests.append(("watch", resource_version, timeout_seconds))
        answer = WatchAnswer()
        self.watches.put_nowait(answer)
        return answer

    async def next_watch(self) -> WatchAnswer:
        return await asyncio.wait_for(self.watches.get(), 5)


async def until(check, what: str) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def watching(monkeypatch):
    """A lookup whose namespaces come from a FakeApiServer's list and watches
    (datasets: a list given once, no watch); anything else it asks goes to a
    closed port."""
    monkeypatch.setattr(clusterlookup, "RETRY_SECONDS", 0.01)
    monkeypatch.setattr(clusterlookup, "CATCH_UP_SECONDS", 0.3)
    api = client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{closed_port()}"))
    lookup = ClusterLookup(api, "datashim.io", timeout=1.0)
    lookup.dataset_view.replace([dataset("mnist")], "200")
    server = FakeApiServer([namespace(NS, rv="90"), namespace("karvdash-bob", "bob", rv="95")], "100")
    lookup.core.list_namespace = server
    lookup.start_watching(datasets=False)
    yield lookup, server
    await lookup.close()
    await api.close()


async def reset_and_resumed(server):
    """The first watch's connection reset; the watch that resumes after it."""
    stream = await server.next_watch()
    stream.fail(ConnectionResetError(104, "Connection reset by peer"))
    return await server.next_watch()


async def owner_admitted(reviewer: Reviewer) -> str | None:
    """The owner whose folders the next pod of karvdash-alice gets; None:
    refused because the API server was asked and could not answer."""
    reviewed = await mutate(reviewer)
    answer = reviewed["response"]
    if not answer["allowed"]:
        assert answer["status"]["code"] == 503, answer
        assert answer["status"]["message"].startswith("karvdash webhook: cannot read namespace karvdash-alice:")
        return None
    private = next(op["value"] for op in patch_of(reviewed) if op["value"].get("name") == "karvdash-private")
    return private["hostPath"]["path"].rsplit("/", 1)[1]


def test_a_view_resumed_after_a_broken_connection_is_current_again_at_its_bookmark():
    view = NamespacesView()
    view.replace([namespace(NS)], "100")
    view.apply("MODIFIED", namespace(NS, owner="carol", rv="101"))
    view.interrupted()
    # what it knows and where the next watch starts are kept; it is not current
    assert (view.synced, view.resource_version, view.owners) == (False, "101", {NS: "carol"})
    view.apply("MODIFIED", namespace(NS, owner="dave", rv="102"))
    assert (view.synced, view.resource_version, view.owners) == (False, "102", {NS: "dave"})
    # the bookmark comes after every change up to it
    view.apply("BOOKMARK", {"metadata": {"resourceVersion": "110"}})
    assert (view.synced, view.resource_version) == (True, "110")

    datasets = DatasetsView()
    datasets.replace([dataset("mnist")], "200")
    datasets.interrupted()
    datasets.apply("ADDED", dataset("coco", rv="201"))
    assert (datasets.synced, datasets.of(NS)) == (False, ("coco", "mnist"))
    datasets.apply("BOOKMARK", {"metadata": {"resourceVersion": "205"}})
    assert (datasets.synced, datasets.resource_version) == (True, "205")


def test_an_event_that_cannot_be_applied_does_not_move_the_resource_version():
    view = DatasetsView()
    view.replace([dataset("mnist")], "200")
    with pytest.raises(KeyError):
        view.apply("ADDED", {"metadata": {"name": "coco", "resourceVersion": "201"}})  # no namespace
    # a watch resuming from here would not send that change again
    assert view.resource_version == "200"


@pytest.mark.parametrize("breaks", [
    aiohttp.ClientPayloadError("Response payload is not completed"),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError(),  # nothing read for the watch's length and more
], ids=["stream-cut", "connection-reset", "read-timeout"])
async def test_a_broken_watch_resumes_from_the_last_resource_version_and_misses_nothing(watching, breaks):
    lookup, server = watching
    reviewer = Reviewer(make_settings(), lookup)
    stream = await server.next_watch()
    assert server.requests == [("list",), ("watch", "100", clusterlookup.WATCH_SECONDS)]
    assert await owner_admitted(reviewer) == "alice"
    stream.event("MODIFIED", namespace(NS, owner="carol", rv="101"))
    await until(lambda: lookup.namespaces.owners[NS] == "carol", "the event applied")

    stream.fail(breaks)
    resumed = await server.next_watch()
    # from the last change seen: none of its events again, none skipped; no new list
    assert server.requests[2:] == [("watch", "101", clusterlookup.CATCH_UP_SECONDS)]
    # until it has caught up the view is not used: the API server is asked (here: cannot answer)
    assert not lookup.namespaces.synced
    assert await owner_admitted(reviewer) is None

    # what changed while the connection was down arrives on the resumed watch
    resumed.event("MODIFIED", namespace(NS, owner="dave", rv="102"))
    await until(lambda: lookup.namespaces.owners[NS] == "dave", "the missed change applied")
    assert await owner_admitted(reviewer) is None  # more may be on the way
    resumed.bookmark("110")
    await until(lambda: lookup.namespaces.synced, "caught up")
    assert await owner_admitted(reviewer) == "dave"

    resumed.end()  # the short watch's end: watching on as usual, current all along
    again = await server.next_watch()
    assert server.requests[3:] == [("watch", "110", clusterlookup.WATCH_SECONDS)]
    assert lookup.namespaces.synced
    again.event("DELETED", namespace("karvdash-bob", "bob", rv="111"))
    await until(lambda: "karvdash-bob" not in lookup.namespaces.owners, "the next event applied")
    assert [r[0] for r in server.requests].count("list") == 1


async def test_the_end_of_a_watch_by_the_api_server_resumes_it_and_stays_current(watching):
    lookup, server = watching
    stream = await server.next_watch()
    stream.event("MODIFIED", namespace(NS, owner="carol", rv="101"))
    stream.end()
    again = await server.next_watch()
    assert server.requests == [("list",), ("watch", "100", clusterlookup.WATCH_SECONDS),
                               ("watch", "101", clusterlookup.WATCH_SECONDS)]
    assert lookup.namespaces.synced and lookup.namespaces.owners[NS] == "carol"
    again.event("MODIFIED", namespace(NS, owner="dave", rv="102"))
    await until(lambda: lookup.namespaces.owners[NS] == "dave", "the event applied")


async def test_a_resumed_watch_without_a_bookmark_is_current_when_it_has_run_its_course(watching):
    lookup, server = watching
    reviewer = Reviewer(make_settings(), lookup)
    resumed = await reset_and_resumed(server)
    resumed.event("MODIFIED", namespace(NS, owner="erin", rv="120"))
    await until(lambda: lookup.namespaces.owners[NS] == "erin", "the missed change applied")
    assert not lookup.namespaces.synced and await owner_admitted(reviewer) is None
    # no bookmark (kube-apiserver sends none when nothing newer than the last event is
    # in its cache); the API server ends the short watch after sending what it had
    await asyncio.sleep(clusterlookup.CATCH_UP_SECONDS)
    resumed.end()
    await server.next_watch()
    assert server.requests == [("list",), ("watch", "100", clusterlookup.WATCH_SECONDS),
                               ("watch", "100", clusterlookup.CATCH_UP_SECONDS),
                               ("watch", "120", clusterlookup.WATCH_SECONDS)]
    assert lookup.namespaces.synced and await owner_admitted(reviewer) == "erin"


async def test_a_resumed_watch_ended_early_does_not_count_as_caught_up(watching):
    lookup, server = watching
    reviewer = Reviewer(make_settings(), lookup)
    resumed = await reset_and_resumed(server)
    resumed.end()  # at once: the API server going away, not a watch run out
    again = await server.next_watch()
    assert server.requests[2:] == [("watch", "100", clusterlookup.CATCH_UP_SECONDS)] * 2
    assert not lookup.namespaces.synced and await owner_admitted(reviewer) is None
    again.event("MODIFIED", namespace(NS, owner="erin", rv="120"))
    again.bookmark("125")
    await until(lambda: lookup.namespaces.synced, "caught up")
    assert await owner_admitted(reviewer) == "erin"


def status_answer(code: int) -> bytes:
    """A watch request refused as a whole: one Status object as the body."""
    return json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": "too old resource version", "reason": "Expired", "code": code}).encode() + b"\n"


@pytest.mark.parametrize("gone", ["error-event", "status-answer"])
async def test_a_resource_version_too_old_lists_again_and_carries_on(watching, gone):
    lookup, server = watching
    reviewer = Reviewer(make_settings(), lookup)
    resumed = await reset_and_resumed(server)
    # while the watch was down: alice's namespace changed hands, bob's was deleted
    server.items, server.rv = [namespace(NS, owner="frank", rv="250")], "300"
    if gone == "error-event":
        resumed.expired()
    else:
        resumed.send(status_answer(410))
    after = await server.next_watch()
    assert server.requests == [("list",), ("watch", "100", clusterlookup.WATCH_SECONDS),
                               ("watch", "100", clusterlookup.CATCH_UP_SECONDS),
                               ("list",), ("watch", "300", clusterlookup.WATCH_SECONDS)]
    assert lookup.namespaces.synced and lookup.namespaces.owners == {NS: "frank"}
    assert await owner_admitted(reviewer) == "frank"
    after.event("MODIFIED", namespace(NS, owner="gina", rv="301"))
    await until(lambda: lookup.namespaces.owners[NS] == "gina", "the next event applied")
    assert await owner_admitted(reviewer) == "gina"


@pytest.mark.parametrize("unreadable", [
    b"<html><body>502 Bad Gateway</body></html>\n",
    json.dumps({"type": "MODIFIED", "object": {"metadata": {"resourceVersion": "101"}}}).encode() + b"\n",
], ids=["not-json", "no-name"])
async def test_an_unreadable_watch_answer_is_not_trusted_and_watching_goes_on(watching, unreadable):
    lookup, server = watching
    reviewer = Reviewer(make_settings(), lookup)
    stream = await server.next_watch()
    server.items, server.rv = [namespace(NS, owner="hana", rv="140")], "150"
    stream.send(unreadable)
    # an event may have been lost with it: listed again, not resumed
    await server.next_watch()
    assert server.requests == [("list",), ("watch", "100", clusterlookup.WATCH_SECONDS),
                               ("list",), ("watch", "150", clusterlookup.WATCH_SECONDS)]
    assert lookup.namespaces.synced and lookup.namespaces.owners == {NS: "hana"}
    assert await owner_admitted(reviewer) == "hana"


async def test_a_closed_lookup_asks_the_api_server(watching):
    lookup, server = watching
    reviewer = Reviewer(make_settings(), lookup)
    await server.next_watch()
    assert await owner_admitted(reviewer) == "alice"
    await lookup.close()
    # nothing keeps the view current any more
    assert not lookup.namespaces.synced and not lookup.dataset_view.synced
    assert await owner_admitted(reviewer) is None
