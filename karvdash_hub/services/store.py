"""Service instances in Kubernetes: create, list, delete, exec, and users'
own templates (``Template`` custom resources). Thin I/O over
kubernetes_asyncio; what gets applied comes from ``templates``.

All state is in Kubernetes, so a restarted dashboard loses nothing:

- a *record* ConfigMap ``karvdash-service-<name>`` per instance in the
  user's namespace, created first with create-only semantics, so two
  requests cannot take the same name; every object of the instance has an
  owner reference to it (the garbage collector's backstop) and the
  instance's labels (how delete finds them);
- for singleton templates a ConfigMap ``karvdash-singleton-<template>``,
  also create-only: the second instance gets 409 from the API server;
- for ``serviceURLPrefixes`` a ConfigMap ``karvdash-url-prefix-<prefix>``
  in the hub's namespace: whoever creates it owns the prefix.

Objects are applied server-side (field manager ``karvdash-hub``, strict
field validation) into the user's namespace only; the API server's
discovery says whether a kind is namespaced.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import os
import re
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable

from aiohttp import WSMsgType
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.rest import ApiException
from kubernetes_asyncio.dynamic import DynamicClient
from kubernetes_asyncio.dynamic.exceptions import ResourceNotFoundError
from kubernetes_asyncio.stream import WsApiClient

from karvdash_hub.core.errors import KarvdashError
from karvdash_hub.core.kubeapi import RETRIES_ON_BUSY, api_message, retry_delay
from karvdash_hub.core.labels import (
    INSTANCE_LABEL,
    INSTANCE_PART_LABEL,
    OWNER_LABEL,
    TEMPLATE_LABEL,
    instance_labels,
    owner_labels,
)

from . import templates as st
from .ingressauth import auth_annotations_urls

log = logging.getLogger("karvdash.instances")

FIELD_MANAGER = "karvdash-hub"
RECORD_PREFIX = "karvdash-service-"
SINGLETON_PREFIX = "karvdash-singleton-"
URL_PREFIX_CLAIM = "karvdash-url-prefix-"
TEMPLATE_API_VERSION = "karvdash.io/v1"
TEMPLATE_KIND = "Template"
WORKLOADS = [("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"), ("batch/v1", "Job")]
# container states that will not get better by waiting
FAILED_WAITING_REASONS = {
    "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CrashLoopBackOff",
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
}
MAX_COMMAND_ARGS = 100
MAX_COMMAND_LENGTH = 16384
# Parsing and rendering templates is CPU work: it runs in these threads, not
# on the event loop, so one user's large template never holds up another
# user's request, and gives up after this long (the bounds in templates.py
# keep the worst case far below it).
TEMPLATE_SECONDS = 10.0
_TEMPLATE_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="karvdash-templates")
# non-ASCII characters of the Basic Multilingual Plane, escaped in apply bodies
_BMP_NON_ASCII = re.compile("[\u0080-\uffff]")


class InstanceError(KarvdashError):
    """A request about services (instances) or users' templates failed."""


@dataclass
class Instance:
    name: str
    template_id: str
    template_name: str
    url: str
    created: str
    values: dict
    status: str
    auth: bool

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "template": self.template_id,
            "template_name": self.template_name,
            "url": self.url,
            "created": self.created,
            "values": self.values,
            "status": self.status,
            "auth": self.auth,
        }


# --- pure parts --------------------------------------------------------------------------


def selector(labels: dict[str, str], *extra: str) -> str:
    return ",".join([f"{k}={v}" for k, v in labels.items()] + list(extra))


def workload_status(obj: dict) -> str:
    """``ready``, ``progressing`` or ``failed`` for one workload object."""
    kind, spec, status = obj.get("kind"), obj.get("spec") or {}, obj.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    if kind == "Job":
        if conditions.get("Failed", {}).get("status") == "True":
            return "failed"
        return "ready" if conditions.get("Complete", {}).get("status") == "True" else "progressing"
    if kind == "Deployment":
        progressing = conditions.get("Progressing", {})
        if progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded":
            return "failed"
        if conditions.get("ReplicaFailure", {}).get("status") == "True":
            return "failed"
    if kind == "DaemonSet":
        wanted, ready = status.get("desiredNumberScheduled", 0), status.get("numberReady", 0)
        return "ready" if wanted and ready >= wanted else "progressing"
    wanted = spec.get("replicas", 1)
    if obj.get("metadata", {}).get("generation", 0) > status.get("observedGeneration", 0):
        return "progressing"
    return "ready" if status.get("readyReplicas", 0) >= wanted else "progressing"


def pod_failed(pod: dict) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        return True
    for container in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FAILED_WAITING_REASONS:
            return True
    return False


def combined_status(statuses: Iterable[str]) -> str:
    statuses = list(statuses)
    if "failed" in statuses:
        return "failed"
    if "progressing" in statuses:
        return "progressing"
    return "ready"


def check_command(command) -> list[str]:
    """A command for exec: a non-empty list of strings (no shell involved)."""
    if isinstance(command, str) or not isinstance(command, list) or not command:
        raise InstanceError(400, "command must be a non-empty list of strings, e.g. [\"ls\", \"-l\"]")
    if len(command) > MAX_COMMAND_ARGS:
        raise InstanceError(400, f"command has more than {MAX_COMMAND_ARGS} arguments")
    for argument in command:
        if not isinstance(argument, str):
            raise InstanceError(400, "every argument of the command must be a string")
        if "\0" in argument:
            raise InstanceError(400, "an argument of the command contains a NUL character")
    if not command[0]:
        raise InstanceError(400, "the command's program is empty")
    if sum(len(a) for a in command) > MAX_COMMAND_LENGTH:
        raise InstanceError(400, f"command is longer than {MAX_COMMAND_LENGTH} characters")
    return command


async def off_loop(function, *args, seconds: float | None = None, **kwargs):
    """``function(*args, **kwargs)`` in the template threads; 400 when it takes
    longer than ``seconds`` (TEMPLATE_SECONDS), and a 400 naming the problem
    for a template or values error."""
    loop = asyncio.get_running_loop()
    work = loop.run_in_executor(_TEMPLATE_THREADS, functools.partial(function, *args, **kwargs))
    try:
        return await asyncio.wait_for(work, TEMPLATE_SECONDS if seconds is None else seconds)
    except asyncio.TimeoutError:
        raise InstanceError(400, "the template takes too long to render") from None
    except st.TemplateError as error:
        raise InstanceError(400, f"not a valid template: {error}") from None
    except st.ValuesError as error:
        raise InstanceError(400, str(error)) from None


def apply_body(obj: dict) -> bytes:
    """``obj`` as the body of a server-side apply, which the API server reads
    as YAML: JSON, with characters outside the Basic Multilingual Plane
    (emoji) as UTF-8, since YAML has no surrogate-pair escapes (``\\ud83d``
    is refused), and the rest of non-ASCII escaped, so that no character is
    read as a YAML line break (U+0085, U+2028)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return _BMP_NON_ASCII.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8")


def not_allowed(what: str, error: ApiException) -> InstanceError:
    """The dashboard's account may not make ``what``: a kind outside its
    ClusterRole, or a Role granting more than it holds."""
    return InstanceError(
        403,
        f"Kubernetes does not let the dashboard create {what} ({api_message(error)}); "
        "an administrator can allow it with the chart value dashboard.extraRules",
    )


# --- I/O ------------------------------------------------------------------------------------


class InstanceStore:
    """Instances of one deployment; every call names the user and namespace."""

    def __init__(self, api_client: k8s.ApiClient, hub_namespace: str, discovery_cache: str | None = None):
        self.api_client = api_client
        self.hub_namespace = hub_namespace
        self.discovery_cache = discovery_cache or os.path.join(
            tempfile.gettempdir(), f"karvdash-discovery-{os.getuid()}-{id(self)}.json"
        )
        self._dynamic: DynamicClient | None = None
        self._lock = asyncio.Lock()

    async def dynamic(self) -> DynamicClient:
        async with self._lock:
            if self._dynamic is None:
                self._dynamic = await DynamicClient(self.api_client, cache_file=self.discovery_cache)
            return self._dynamic

    async def resource(self, api_version: str, kind: str):
        dynamic = await self.dynamic()
        try:
            return await dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            raise InstanceError(
                400, f"the cluster has no kind {kind} in {api_version}; an administrator must install it first"
            ) from None

    async def _call(self, method: str, *args, **kwargs):
        dynamic = await self.dynamic()
        for attempt in range(RETRIES_ON_BUSY + 1):
            # the dynamic client reads responses itself and does not raise on
            # error statuses: check them here
            response = await getattr(dynamic, method)(*args, serialize=False, **kwargs)
            body = await response.read()
            if 200 <= response.status <= 299:
                return json.loads(body) if body else {}
            if response.status == 429 and attempt < RETRIES_ON_BUSY:
                await asyncio.sleep(retry_delay(response.headers))
                continue
            error = ApiException(status=response.status, reason=response.reason)
            error.body = body
            if response.status == 429:
                # still busy after the retries; the request changed nothing
                raise InstanceError(503, f"the Kubernetes API is busy ({api_message(error)}); try again")
            raise error

    async def _list(self, api_version: str, kind: str, namespace: str, label_selector: str) -> list[dict]:
        resource = await self.resource(api_version, kind)
        result = await self._call("get", resource, namespace=namespace, label_selector=label_selector or None)
        return result.get("items") or []

    async def _delete(self, resource, name: str, namespace: str, **kwargs) -> None:
        try:
            await self._call("delete", resource, name=name, namespace=namespace, **kwargs)
        except ApiException as error:
            if error.status != 404:
                raise

    # --- create ----------------------------------------------------------------------

    async def create(
        self,
        template: st.ServiceTemplate,
        values: dict,
        *,
        owner: str,
        namespace: str,
        context: st.RenderContext,
        domain: str,
        url_prefixes: list[str] = (),
    ) -> Instance:
        """Render and apply ``template``; return the new instance.

        ``context`` carries the deployment's part (registry, ingress class,
        auth check and sign-in URLs); the hostname and the auth URL of the
        instance are filled in here once its name is known.
        """
        try:
            # what needs no name: refused before anything is made
            st.check_policy(template, context)
            checked = st.check_values(template, values)
        except (st.TemplateError, st.ValuesError) as error:
            raise InstanceError(400, str(error)) from None
        record = await self._claim_record(template, checked["NAME"], owner, namespace)
        name = record["metadata"]["labels"][INSTANCE_LABEL]
        try:
            if template.singleton:
                await self._claim_singleton(template, name, owner, namespace, record)
            prefix = ""
            if url_prefixes and template.has_ingress:
                prefix = await self._claim_url_prefix(url_prefixes, template, name, owner, namespace)
            try:
                hostname = st.hostname_for(name, owner, domain, prefix)
            except st.ValuesError as error:
                raise InstanceError(400, str(error)) from None
            auth_url = context.auth_url and auth_annotations_urls(context.auth_url, context.signin_url, owner, name)[0]
            rendered = await off_loop(
                st.render,
                template,
                {**checked, "NAME": name},
                dataclasses.replace(context, hostname=hostname, auth_url=auth_url, namespace=namespace, username=owner),
            )
            resources = [await self._namespaced(obj) for obj in rendered.objects]
            await self._check_free(resources, rendered.objects, name, owner, namespace)
            reference = _owner_reference(record)
            for resource, obj in zip(resources, rendered.objects):
                obj["metadata"]["ownerReferences"] = [reference]
                await self._apply(resource, obj, namespace)
            record = await self._finish_record(record, rendered, prefix, namespace)
        except BaseException:
            # leave nothing behind, also when the request is cancelled
            kinds = [(o["apiVersion"], o["kind"]) for o in template.objects]
            try:
                await asyncio.shield(self._remove(name, owner, namespace, kinds))
            except Exception:  # noqa: BLE001 - report the first failure, not the clean-up's
                log.exception("cannot clean up after the failed creation of %s/%s", namespace, name)
            raise
        return _instance_from(record, {})

    async def create_under_free_name(self, resource, namespace: str, first: str, body_for, next_name, what: str):
        """Create ``body_for(name)`` with create-only semantics, trying
        ``next_name(taken)`` while the name is taken: the API server decides
        races. Returns (name, created object)."""
        taken: set[str] = set()
        name = first
        for _ in range(8):
            try:
                return name, await self._call("create", resource, body=body_for(name), namespace=namespace)
            except ApiException as error:
                if error.status == 404:
                    raise InstanceError(409, f"namespace {namespace} does not exist yet; start your server once") from None
                if error.status != 409:
                    raise InstanceError(502, f"cannot store the {what}: {api_message(error)}") from None
            taken.add(name)
            try:
                name = next_name(taken)
            except st.ValuesError as error:
                raise InstanceError(409, str(error)) from None
        raise InstanceError(409, f"no free name for the {what}")

    async def _claim_record(self, template: st.ServiceTemplate, wanted: str, owner: str, namespace: str) -> dict:
        resource = await self.resource("v1", "ConfigMap")

        def record(name: str) -> dict:
            return {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": RECORD_PREFIX + name,
                    "namespace": namespace,
                    "labels": instance_labels(owner, name, template.id, "record"),
                },
                "data": {"template": template.id, "template-name": template.name, "state": "creating",
                         "auth": json.dumps(template.auth and template.has_ingress)},
            }

        _, created = await self.create_under_free_name(
            resource, namespace, wanted, record, lambda taken: st.free_name(wanted, taken), "service"
        )
        return created

    async def _claim_singleton(self, template, name, owner, namespace, record) -> None:
        resource = await self.resource("v1", "ConfigMap")
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": SINGLETON_PREFIX + template.id,
                "namespace": namespace,
                "labels": instance_labels(owner, name, template.id, "singleton"),
                "ownerReferences": [_owner_reference(record)],
            },
        }
        try:
            await self._call("create", resource, body=body, namespace=namespace)
        except ApiException as error:
            if error.status != 409:
                raise InstanceError(502, f"cannot claim the template: {api_message(error)}") from None
            existing = await self._call("get", resource, name=SINGLETON_PREFIX + template.id, namespace=namespace)
            other = existing["metadata"].get("labels", {}).get(INSTANCE_LABEL, "?")
            raise InstanceError(
                409, f"{template.name} allows one service per user, and you have one already ({other})"
            ) from None

    async def _claim_url_prefix(self, prefixes, template, name, owner, namespace) -> str:
        resource = await self.resource("v1", "ConfigMap")
        for stale_pass in (False, True):
            for prefix in prefixes:
                claim = URL_PREFIX_CLAIM + prefix
                if stale_pass and not await self._release_if_stale(resource, claim):
                    continue
                body = {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": claim,
                        "namespace": self.hub_namespace,
                        "labels": instance_labels(owner, name, template.id, "url-prefix"),
                    },
                    "data": {"namespace": namespace, "instance": name, "prefix": prefix},
                }
                try:
                    await self._call("create", resource, body=body, namespace=self.hub_namespace)
                    return prefix
                except ApiException as error:
                    if error.status != 409:
                        raise InstanceError(502, f"cannot claim a service URL: {api_message(error)}") from None
        raise InstanceError(429, "all service URL prefixes are taken; remove a service or ask an administrator for more")

    async def _release_if_stale(self, resource, claim: str) -> bool:
        """Delete a prefix claim whose instance no longer exists (its namespace
        was deleted with the user, say); True if the prefix is free now."""
        try:
            existing = await self._call("get", resource, name=claim, namespace=self.hub_namespace)
        except ApiException as error:
            return error.status == 404
        data = existing.get("data") or {}
        try:
            await self._call("get", resource, name=RECORD_PREFIX + data.get("instance", ""), namespace=data.get("namespace", ""))
            return False
        except ApiException as error:
            if error.status != 404:
                return False
        body = {"preconditions": {"uid": existing["metadata"]["uid"]}}
        try:
            await self._call("delete", resource, name=claim, namespace=self.hub_namespace, body=body)
        except ApiException:
            return False
        log.info("released URL prefix claim %s of a service that no longer exists", claim)
        return True

    async def _namespaced(self, obj: dict):
        resource = await self.resource(obj["apiVersion"], obj["kind"])
        if not resource.namespaced:
            raise InstanceError(
                400, f"{obj['kind']} {obj['metadata']['name']} is cluster-scoped; services may only create "
                "objects in your namespace"
            )
        return resource

    async def _check_free(self, resources, objects, name, owner, namespace) -> None:
        """Refuse to take over objects of another instance (singleton
        templates may use fixed names) or objects made by hand."""
        for resource, obj in zip(resources, objects):
            try:
                existing = await self._call("get", resource, name=obj["metadata"]["name"], namespace=namespace)
            except ApiException as error:
                if error.status == 404:
                    continue
                if error.status == 403:
                    raise not_allowed(f"{obj['kind']} {obj['metadata']['name']}", error) from None
                raise InstanceError(502, api_message(error)) from None
            labels = existing["metadata"].get("labels") or {}
            if labels.get(OWNER_LABEL) == owner and labels.get(INSTANCE_LABEL) == name:
                continue  # left by a failed attempt with this name
            holder = labels.get(INSTANCE_LABEL)
            raise InstanceError(
                409, f"{obj['kind']} {obj['metadata']['name']} exists already"
                + (f" and belongs to service {holder}" if holder else "")
            )

    async def _apply(self, resource, obj: dict, namespace: str) -> None:
        try:
            # the body goes as bytes: the client's own JSON escapes emoji as
            # surrogate pairs, which the API server's YAML reader refuses
            await self._call(
                "request",
                "patch",
                resource.path(name=obj["metadata"]["name"], namespace=namespace),
                body=apply_body(obj),
                content_type="application/apply-patch+yaml; charset=utf-8",
                field_manager=FIELD_MANAGER,
                query_params=[("fieldValidation", "Strict")],
            )
        except ApiException as error:
            what = f"{obj['kind']} {obj['metadata']['name']}"
            message = api_message(error)
            # server-side apply answers 500 when the object does not fit the
            # kind's schema: that is the template's fault, not the server's
            if error.status in (400, 422) or (error.status == 500 and "failed to create typed patch object" in message):
                raise InstanceError(400, f"Kubernetes refused {what}: {api_message(error)}") from None
            if error.status == 409:
                raise InstanceError(409, f"{what} is managed by someone else: {api_message(error)}") from None
            if error.status == 403:
                raise not_allowed(what, error) from None
            raise InstanceError(502, f"cannot create {what}: {api_message(error)}") from None

    async def _finish_record(self, record: dict, rendered: st.RenderedService, prefix: str, namespace: str) -> dict:
        resource = await self.resource("v1", "ConfigMap")
        data = {
            "state": "created",
            "url": rendered.url,
            "values": json.dumps(rendered.public_values, sort_keys=True),
            "objects": json.dumps([[o["apiVersion"], o["kind"], o["metadata"]["name"]] for o in rendered.objects]),
            "prefix": prefix,
        }
        return await self._call(
            "patch",
            resource,
            body={"data": data},
            name=record["metadata"]["name"],
            namespace=namespace,
            content_type="application/merge-patch+json",
        )

    # --- list -----------------------------------------------------------------------------

    async def list(self, owner: str, namespace: str) -> list[Instance]:
        owned = {OWNER_LABEL: owner}
        try:
            records = await self._list("v1", "ConfigMap", namespace, selector(owned, f"{INSTANCE_PART_LABEL}=record"))
            statuses: dict[str, list[str]] = {}
            workload_lists = await asyncio.gather(
                *(self._list(v, k, namespace, selector(owned, INSTANCE_LABEL)) for v, k in WORKLOADS),
                self._list("v1", "Pod", namespace, selector(owned, INSTANCE_LABEL)),
            )
        except ApiException as error:
            if error.status == 404:
                return []
            raise InstanceError(502, f"cannot list services: {api_message(error)}") from None
        *workloads, pods = workload_lists
        for obj in (o for items in workloads for o in items):
            statuses.setdefault(obj["metadata"]["labels"][INSTANCE_LABEL], []).append(workload_status(obj))
        for pod in pods:
            if pod_failed(pod):
                statuses.setdefault(pod["metadata"]["labels"][INSTANCE_LABEL], []).append("failed")
        instances = [_instance_from(r, statuses) for r in records]
        return sorted(instances, key=lambda i: i.name)

    async def get(self, owner: str, namespace: str, name: str) -> dict:
        """The record of ``owner``'s instance ``name``; 404 if there is none."""
        resource = await self.resource("v1", "ConfigMap")
        try:
            record = await self._call("get", resource, name=RECORD_PREFIX + name, namespace=namespace)
        except ApiException as error:
            if error.status == 404:
                raise InstanceError(404, f"no service named {name}") from None
            raise InstanceError(502, api_message(error)) from None
        labels = record["metadata"].get("labels") or {}
        if labels.get(OWNER_LABEL) != owner or labels.get(INSTANCE_PART_LABEL) != "record":
            raise InstanceError(404, f"no service named {name}")
        return record

    # --- delete ---------------------------------------------------------------------------

    async def delete(self, owner: str, namespace: str, name: str) -> None:
        record = await self.get(owner, namespace, name)
        kinds = [tuple(o[:2]) for o in json.loads((record.get("data") or {}).get("objects") or "[]")]
        await self._remove(name, owner, namespace, kinds)

    async def _remove(self, name: str, owner: str, namespace: str, kinds: list[tuple[str, str]]) -> None:
        """Delete every object of an instance by label, its claims, then its record."""
        labels = {OWNER_LABEL: owner, INSTANCE_LABEL: name}
        objects = selector(labels, f"!{INSTANCE_PART_LABEL}")
        for api_version, kind in dict.fromkeys(kinds):
            try:
                resource = await self.resource(api_version, kind)
            except InstanceError:
                continue  # a kind the cluster does not have holds no objects
            if not resource.namespaced:
                continue  # never applied: services have namespaced objects only
            try:
                found = await self._list(api_version, kind, namespace, objects)
            except ApiException as error:
                if error.status != 403:
                    raise
                # a kind the dashboard may not use holds none of its objects; if
                # it once could, the garbage collector removes them with the record
                log.warning("cannot list %s in %s to remove service %s: %s", kind, namespace, name, api_message(error))
                continue
            for obj in found:
                await self._delete(resource, obj["metadata"]["name"], namespace, propagation_policy="Background")
        configmaps = await self.resource("v1", "ConfigMap")
        for claim in await self._list("v1", "ConfigMap", self.hub_namespace, selector(labels, f"{INSTANCE_PART_LABEL}=url-prefix")):
            if (claim.get("data") or {}).get("namespace") == namespace:
                await self._delete(configmaps, claim["metadata"]["name"], self.hub_namespace)
        for part in ("singleton", "record"):
            for obj in await self._list("v1", "ConfigMap", namespace, selector(labels, f"{INSTANCE_PART_LABEL}={part}")):
                # the garbage collector removes whatever else points at the record
                await self._delete(configmaps, obj["metadata"]["name"], namespace, propagation_policy="Background")

    # --- exec -----------------------------------------------------------------------------

    async def exec(self, owner: str, namespace: str, name: str, command, all_pods: bool = False) -> list[dict]:
        """Run ``command`` in the first (or every) running pod of the instance.

        Returns ``[{"pod", "output", "exit_code", "error"}]``: ``error`` says
        why when the command failed without an exit code, else None.
        """
        command = check_command(command)
        await self.get(owner, namespace, name)
        pods = await self._list("v1", "Pod", namespace, selector({OWNER_LABEL: owner, INSTANCE_LABEL: name}))
        running = sorted(
            (p for p in pods if (p.get("status") or {}).get("phase") == "Running"), key=lambda p: p["metadata"]["name"]
        )
        if not running:
            raise InstanceError(409, f"service {name} has no running pod")
        results = []
        for pod in running if all_pods else running[:1]:
            pod_name = pod["metadata"]["name"]
            container = pod["spec"]["containers"][0]["name"]
            output, status = await self._exec_in_pod(namespace, pod_name, container, command)
            exit_code, error = exec_outcome(status)
            results.append({"pod": pod_name, "output": output, "exit_code": exit_code, "error": error})
        return results

    async def _exec_in_pod(self, namespace: str, pod: str, container: str, command: list[str]) -> tuple[str, bytes | None]:
        """The command's output (stdout and stderr as they came) and the
        status its stream ended with, if any."""
        async with WsApiClient(configuration=self.api_client.configuration) as ws_client:
            core = k8s.CoreV1Api(ws_client)
            try:
                connection = await core.connect_get_namespaced_pod_exec(
                    pod, namespace, command=command, container=container,
                    stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False,
                )
                output, status = [], None
                async with connection as ws:
                    async for message in ws:
                        if message.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                            break
                        data = message.data if isinstance(message.data, bytes) else message.data.encode()
                        if len(data) < 1:
                            continue
                        channel, payload = data[0], data[1:]
                        if channel in (1, 2):
                            output.append(payload.decode("utf-8", errors="replace"))
                        elif channel == 3 and payload:
                            status = payload
            except ApiException as error:
                raise InstanceError(502, f"cannot run the command in pod {pod}: {api_message(error)}") from None
            except Exception as error:  # noqa: BLE001 - websocket and connection errors of any kind
                raise InstanceError(502, f"cannot run the command in pod {pod}: {error}") from None
        return "".join(output), status


def exec_outcome(status: bytes | None) -> tuple[int | None, str | None]:
    """The exit code of an exec and, when there is none, why: from the
    Status its stream ends with. A kubelet sends Success, or a Failure with
    reason NonZeroExitCode and the code as a cause; any other Failure (a
    command that could not start, a node that reports no code) has only a
    message."""
    if status is None:
        return None, "the node did not say how the command ended"
    try:
        answer = json.loads(status)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        return None, "the node's answer on how the command ended is not readable"
    if answer.get("status") == "Success":
        return 0, None
    for cause in (answer.get("details") or {}).get("causes") or []:
        if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message")), None
            except (TypeError, ValueError):
                break
    return None, str(answer.get("message") or answer.get("reason") or "the command failed")


def _owner_reference(record: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": record["metadata"]["name"],
        "uid": record["metadata"]["uid"],
    }


def _instance_from(record: dict, statuses: dict[str, list[str]]) -> Instance:
    metadata, data = record["metadata"], record.get("data") or {}
    name = metadata["labels"][INSTANCE_LABEL]
    if data.get("state") != "created":
        status = "progressing"
    else:
        status = combined_status(statuses.get(name, []))
    try:
        values = json.loads(data.get("values") or "{}")
    except ValueError:
        values = {}
    return Instance(
        name=name,
        template_id=data.get("template", metadata["labels"].get(TEMPLATE_LABEL, "")),
        template_name=data.get("template-name", ""),
        url=data.get("url", ""),
        created=metadata.get("creationTimestamp", ""),
        values=values,
        status=status,
        auth=data.get("auth") == "true",
    )


# --- users' own templates ------------------------------------------------------------------


class UserTemplateStore:
    """Templates users add, as ``Template`` custom resources (group
    ``karvdash.io``) in their namespace; ``spec.data`` holds the YAML text."""

    def __init__(self, instances: InstanceStore):
        self.instances = instances

    async def _resource(self):
        return await self.instances.resource(TEMPLATE_API_VERSION, TEMPLATE_KIND)

    async def list(self, owner: str, namespace: str) -> tuple[list[st.ServiceTemplate], list[str]]:
        """The user's templates, and a message for each one that no longer parses."""
        try:
            items = await self.instances._list(TEMPLATE_API_VERSION, TEMPLATE_KIND, namespace, "")
        except InstanceError as error:
            # without the CRD there are no user templates; the rest still works
            return [], [error.message]
        except ApiException as error:
            if error.status == 404:
                return [], []
            raise InstanceError(502, f"cannot list templates: {api_message(error)}") from None
        try:
            return await off_loop(_parse_stored, items)
        except InstanceError as error:
            # stored templates too slow to read (not added under today's bounds)
            return [], [f"your templates: {error.message}"]

    async def add(
        self, owner: str, namespace: str, text: str, taken_ids: Iterable[str],
        policy: st.RenderContext | None = None,
    ) -> st.ServiceTemplate:
        """Validate ``text`` and store it under a free id derived from its name.

        ``policy`` carries the deployment's bounds (templateMaxObjects,
        serviceAuthOptional), as the context of rendering does.
        """
        policy = policy or st.RenderContext(username=owner, namespace=namespace, hostname="")
        # parsed once for the name (with the bounds), then again under its id
        probe = await off_loop(_parse_new, text, policy)
        resource = await self._resource()
        wanted = st.slug(probe.name)
        taken_before = set(taken_ids)

        def stored(template_id: str) -> dict:
            return {
                "apiVersion": TEMPLATE_API_VERSION,
                "kind": TEMPLATE_KIND,
                "metadata": {
                    "name": template_id,
                    "namespace": namespace,
                    "labels": owner_labels(owner),
                },
                "spec": {"data": text},
            }

        template_id, _ = await self.instances.create_under_free_name(
            resource, namespace, st.free_id(wanted, taken_before), stored,
            lambda taken: st.free_id(wanted, taken | taken_before), "template",
        )
        return dataclasses.replace(probe, id=template_id)

    async def delete(self, owner: str, namespace: str, template_id: str) -> None:
        resource = await self._resource()
        try:
            await self.instances._call("delete", resource, name=template_id, namespace=namespace)
        except ApiException as error:
            if error.status == 404:
                raise InstanceError(404, f"no template {template_id}") from None
            raise InstanceError(502, f"cannot delete the template: {api_message(error)}") from None


def _parse_stored(items: list[dict]) -> tuple[list[st.ServiceTemplate], list[str]]:
    templates, problems = [], []
    for item in items:
        metadata = item["metadata"]
        parsed = _parse_version(metadata["name"], metadata.get("uid", ""), metadata.get("resourceVersion", ""),
                                (item.get("spec") or {}).get("data", ""))
        if isinstance(parsed, str):
            problems.append(f"{metadata['name']}: {parsed}")
        else:
            templates.append(parsed)
    return templates, problems


# parsed stored templates by (uid, resourceVersion): a list of a user's
# templates, made for nearly every request, parses only what changed
_PARSED: dict[tuple[str, str], st.ServiceTemplate | str] = {}
_PARSED_MOST = 64
_PARSED_LOCK = threading.Lock()


def _parse_version(template_id: str, uid: str, version: str, text: str) -> st.ServiceTemplate | str:
    """A stored template, or its problem; parsed once per version of it."""
    key = (uid, version)
    with _PARSED_LOCK:
        if uid and version and key in _PARSED:
            return _PARSED[key]
    try:
        parsed: st.ServiceTemplate | str = st.parse_template(text, template_id, "user")
    except st.TemplateError as error:
        parsed = str(error)
    if uid and version:
        with _PARSED_LOCK:
            while len(_PARSED) >= _PARSED_MOST:
                _PARSED.pop(next(iter(_PARSED)))
            _PARSED[key] = parsed
    return parsed


def _parse_new(text: str, policy: st.RenderContext) -> st.ServiceTemplate:
    template = st.parse_template(text, "new", "user", max_objects=policy.max_objects)
    st.check_policy(template, policy)
    return template
