"""What the webhook asks the Kubernetes API: who owns a namespace, which
datasets it has. The thin I/O layer under :mod:`karvdash_hub.webhook.reviews`.

The owner comes from the namespace's ``karvdash.io/owner`` label (set by the
spawner when it creates the namespace) rather than from the namespace name,
so a change of the naming scheme cannot hand one user's files to another.

Both are read from a list and watch of namespaces and of datasets (the
:mod:`~karvdash_hub.webhook.clusterview`), so an admission asks the API
server nothing while the watches are current. A namespace the view does not
have yet (created a moment ago) or has without an owner (labelled a moment
later), and everything while a watch is down, is asked of the API server
directly, as before the view existed.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import orjson
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from karvdash_hub.core.kubeapi import retry_delay
from karvdash_hub.datasets.model import DATASET_PLURAL, DATASET_VERSION

from .clusterview import DatasetsView, KindView, NamespacesView, owner_of

log = logging.getLogger("karvdash_hub.webhook")

# The API server ends a watch after this long; it is then resumed from the
# last resourceVersion (a few minutes, as client-go's reflectors do).
WATCH_SECONDS = 240
# No byte (not even a bookmark) for this much longer than a watch: the connection is dead.
WATCH_READ_MARGIN = 30
# The watch that resumes after a broken connection: the view is current again
# at its first bookmark or when the API server ends it (which it does after
# sending what changed meanwhile, if it has sent no bookmark; kube-apiserver
# sends one only when its cache has moved past the last event sent).
CATCH_UP_SECONDS = 5
# The first wait before the next attempt after a failure (doubling to 30 s).
RETRY_SECONDS = 0.5
# Datashim not installed: look for it again this often.
DATASETS_ABSENT_RETRY = 60.0


class ClusterUnavailable(RuntimeError):
    """The Kubernetes API could not answer."""


class ClusterLookup:
    def __init__(self, api: client.ApiClient, datasets_group: str, *, timeout: float = 5.0):
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.datasets_group = datasets_group
        self.timeout = timeout
        self.namespaces = NamespacesView()
        self.dataset_view = DatasetsView()
        self._watches: list[asyncio.Task] = []

    # --- answers -------------------------------------------------------------------

    async def owner(self, namespace: str) -> str | None:
        """The namespace's owner, or None if it has no owner label (or is gone)."""
        if self.namespaces.synced:
            owner = self.namespaces.owners.get(namespace)
            if owner:
                return owner
        try:
            ns = await self._request(f"read namespace {namespace}", lambda: self.core.read_namespace(namespace))
        except ApiException:  # 404
            return None
        return owner_of(ns.metadata.labels)

    async def datasets(self, namespace: str) -> tuple[str, ...]:
        """Names of the namespace's Datashim Datasets, sorted (none without Datashim)."""
        if self.dataset_view.synced:
            return self.dataset_view.of(namespace)
        try:
            listing = await self._request(
                f"list datasets in {namespace}",
                lambda: self.custom.list_namespaced_custom_object(
                    self.datasets_group, DATASET_VERSION, namespace, DATASET_PLURAL))
        except ApiException:  # 404
            log.warning("no %s/%s datasets in the cluster (is Datashim installed?)",
                        self.datasets_group, DATASET_VERSION)
            return ()
        return tuple(sorted(item["metadata"]["name"] for item in listing.get("items", [])))

    # --- the watches -----------------------------------------------------------------

    def start_watching(self, datasets: bool = True) -> None:
        """Keep the views current until :meth:`close` (datasets only if they are used)."""
        self._watches = [
            asyncio.create_task(self._keep_watching("namespaces", self.namespaces, self.core.list_namespace)),
        ]
        if datasets:
            self._watches.append(asyncio.create_task(self._keep_watching(
                "datasets", self.dataset_view,
                lambda **kw: self.custom.list_cluster_custom_object(
                    self.datasets_group, DATASET_VERSION, DATASET_PLURAL, **kw))))

    async def close(self) -> None:
        for task in self._watches:
            task.cancel()
        await asyncio.gather(*self._watches, return_exceptions=True)
        self._watches = []
        # no longer watched: asked of the API server (a new start_watching resumes them)
        self.namespaces.interrupted()
        self.dataset_view.interrupted()

    async def _keep_watching(self, what: str, view: KindView, list_call) -> None:
        """List, then watch from the list's resourceVersion; after a broken
        connection resume from the last resourceVersion; list again when it is
        too old (410) or the events cannot be read."""
        delay = RETRY_SECONDS
        while True:
            try:
                if not view.resource_version:
                    # raw JSON: no model objects for every namespace of the cluster
                    response = await list_call(_preload_content=False, _request_timeout=self.timeout * 6)
                    body = await response.read()
                    if response.status != 200:
                        raise ApiException(status=response.status, reason=response.reason)
                    listing = orjson.loads(body)
                    view.replace(listing.get("items") or [], listing["metadata"]["resourceVersion"])
                    log.info("watching %s from resourceVersion %s", what, view.resource_version)
                catching_up, started = not view.synced, time.monotonic()
                seconds = CATCH_UP_SECONDS if catching_up else WATCH_SECONDS
                await self._watch(view, list_call, seconds)
                if catching_up:
                    if not view.synced and time.monotonic() - started >= 0.8 * seconds:
                        view.caught_up()
                    if view.synced:
                        log.info("watching %s again, caught up at resourceVersion %s", what, view.resource_version)
                if time.monotonic() - started >= min(1, 0.8 * seconds):
                    # the API server's end of a watch: the next resumes at once
                    delay = RETRY_SECONDS
                    continue
            except asyncio.CancelledError:
                raise
            except ApiException as e:
                if e.status == 410:
                    view.lost()
                    log.info("%s: resourceVersion too old, listing again", what)
                    continue
                if e.status == 404:
                    view.lost()
                    # no such resource (Datashim not installed): one request per admission until it is
                    log.warning("cannot watch %s: not in the cluster; asking at each admission", what)
                    await asyncio.sleep(DATASETS_ABSENT_RETRY)
                    continue
                view.interrupted()
                log.warning("watch of %s: %s %s; asking at each admission until it is back", what, e.status, e.reason)
            except (TimeoutError, OSError, aiohttp.ClientError) as e:
                view.interrupted()
                log.warning("watch of %s broke (%s); asking at each admission until it resumes from "
                            "resourceVersion %s", what, e or type(e).__name__, view.resource_version or "a new list")
            except Exception:
                # an answer that cannot be read (not JSON, no name...): it may have
                # cost an event, so start again from a list; never end the watching
                view.lost()
                log.exception("watch of %s: unreadable answer; asking at each admission until a new list", what)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _watch(self, view: KindView, list_call, seconds: float) -> None:
        """Apply one watch's events until the API server ends it."""
        async with watch.Watch(return_type="object") as stream:
            async for event in stream.stream(
                    list_call, resource_version=view.resource_version, allow_watch_bookmarks=True,
                    timeout_seconds=seconds, _request_timeout=(self.timeout, seconds + WATCH_READ_MARGIN)):
                view.apply(event["type"], event["raw_object"])

    # --- requests ----------------------------------------------------------------------

    async def _request(self, what: str, call):
        """``await call()``, again after a 429/503 (the API server sheds load
        or has just started serving a resource) until ``timeout`` is spent.
        404 goes to the caller; anything else is ClusterUnavailable."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return await asyncio.wait_for(call(), max(deadline - time.monotonic(), 0.1))
            except ApiException as e:
                if e.status == 404:
                    raise
                # short waits: the API server waits for this answer
                retry_after = retry_delay(e.headers, default=0.2, shortest=0.05, longest=1.0)
                if e.status not in (429, 503) or time.monotonic() + retry_after >= deadline:
                    raise ClusterUnavailable(f"cannot {what}: {e.status} {e.reason}") from None
                log.info("%s: %s %s, trying again in %.1f s", what, e.status, e.reason, retry_after)
                await asyncio.sleep(retry_after)
            except (asyncio.TimeoutError, OSError, aiohttp.ClientError) as e:
                raise ClusterUnavailable(f"cannot {what}: {e or 'timed out'}") from None
