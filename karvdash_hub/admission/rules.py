"""Admission logic for pods in user namespaces, free of I/O.

The webhook server (``karvdash_hub.webhook``) reads an ``admission.k8s.io/v1``
AdmissionReview, asks the cluster who owns the namespace and which datasets
it has, and calls the functions here to decide:

- :func:`parse_review` checks the review and returns an :class:`AdmissionRequest`
  (or raises :class:`ReviewError` with a clear reason);
- :func:`pod_additions` lists the volumes and mounts every pod of a user gets
  (file domains, the API settings, datasets), :class:`PodAdditions` holds
  them with the registry's pull secret, and :func:`mount_patch` turns them
  into an RFC 6902 JSONPatch that adds only what the pod lacks, so a
  second pass adds nothing;
- :func:`pod_templates` finds the pod spec of a Pod or of the pod template of
  a workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob,
  ReplicationController, PodTemplate), and :func:`volume_refusals` says which
  of their volumes the host-path policy refuses, and why;
- :func:`review_response` wraps the answer in an AdmissionReview.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from functools import cached_property

import orjson
from jsonpointer import escape

from karvdash_hub.core.labels import (
    ADDED_VOLUMES_ANNOTATION,
    API_SETTINGS_MOUNT_PATH,
    API_SETTINGS_SECRET,
    DATASETS_LABEL,
)
from karvdash_hub.datasets.mounts import dataset_volumes
from karvdash_hub.files.domains import VOLUME_PREFIX, FileDomains

from .hostpaths import HostPathPolicy

API_VERSION = "admission.k8s.io/v1"
API_SETTINGS_VOLUME = VOLUME_PREFIX + "api"

# (API group, kind) -> where the pod spec is inside the object
POD_SPEC_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): ("spec",),
    ("", "PodTemplate"): ("template", "spec"),
    ("", "ReplicationController"): ("spec", "template", "spec"),
    ("apps", "Deployment"): ("spec", "template", "spec"),
    ("apps", "StatefulSet"): ("spec", "template", "spec"),
    ("apps", "DaemonSet"): ("spec", "template", "spec"),
    ("apps", "ReplicaSet"): ("spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
}


class ReviewError(ValueError):
    """The AdmissionReview (or the object in it) cannot be read."""


@dataclass(frozen=True)
class AdmissionRequest:
    uid: str
    group: str
    kind: str
    namespace: str
    operation: str
    object: dict
    name: str = ""
    username: str = ""

    @property
    def display_name(self) -> str:
        name = self.name or (self.object.get("metadata") or {}).get("name") or ""
        if not name:
            name = ((self.object.get("metadata") or {}).get("generateName") or "") + "*"
        return f"{self.kind} {name}"


def pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901) with ``/`` and ``~`` in keys escaped."""
    # jsonpointer's own escaping, without building a JsonPointer per patch
    # operation (it was most of a mutation's time)
    return "".join("/" + escape(str(p)) for p in parts)


def parse_review(body: bytes | str | dict) -> AdmissionRequest:
    """Read an AdmissionReview; raise ReviewError saying what is wrong."""
    if isinstance(body, (bytes, str)):
        try:
            review = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise ReviewError(f"the body is not JSON: {e}") from None
    else:
        review = body
    if not isinstance(review, dict):
        raise ReviewError("the body is not a JSON object")
    if review.get("kind") != "AdmissionReview" or review.get("apiVersion") != API_VERSION:
        raise ReviewError(f"expected an AdmissionReview of {API_VERSION}, got "
                          f"kind={review.get('kind')!r} apiVersion={review.get('apiVersion')!r}")
    request = review.get("request")
    if not isinstance(request, dict):
        raise ReviewError("the AdmissionReview has no request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("the request has no uid")
    kind = request.get("kind")
    if not isinstance(kind, dict) or not isinstance(kind.get("kind"), str):
        raise ReviewError("the request has no kind")
    obj = request.get("object")
    if not isinstance(obj, dict):
        raise ReviewError("the request has no object")
    namespace = request.get("namespace") or (obj.get("metadata") or {}).get("namespace") or ""
    if not isinstance(namespace, str):
        raise ReviewError("the request's namespace is not a string")
    user_info = request.get("userInfo") if isinstance(request.get("userInfo"), dict) else {}
    return AdmissionRequest(
        uid=uid,
        group=str(kind.get("group") or ""),
        kind=kind["kind"],
        namespace=namespace,
        operation=str(request.get("operation") or ""),
        object=obj,
        name=str(request.get("name") or ""),
        username=str(user_info.get("username") or ""),
    )


def review_response(uid: str, *, allowed: bool = True, message: str = "", code: int | None = None,
                    patch: list[dict] | None = None, warnings: list[str] | None = None) -> dict:
    """An AdmissionReview answering request ``uid``."""
    response: dict = {"uid": uid, "allowed": allowed}
    if not allowed or message:
        status: dict = {"message": message}
        if not allowed:
            status["code"] = code or 403
        response["status"] = status
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(orjson.dumps(patch)).decode()
    if warnings:
        response["warnings"] = warnings
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}


# --- pod templates --------------------------------------------------------------


def pod_templates(group: str, kind: str, obj: dict) -> list[tuple[tuple[str, ...], dict]]:
    """(path, pod spec) of the object's pod spec; [] for kinds without one.

    Raises ReviewError when the object has the kind's shape only in part
    (e.g. ``spec.template`` is not an object).
    """
    path = POD_SPEC_PATHS.get((group, kind))
    if path is None:
        return []
    node = obj
    for depth, key in enumerate(path):
        node = node.get(key)
        if node is None:
            # a spec-less object has no volumes; the apiserver refuses it anyway
            return []
        if not isinstance(node, dict):
            raise ReviewError(f"{'.'.join(path[: depth + 1])} of the {kind} is not an object")
    return [(path, node)]


def _list_of_objects(spec: dict, key: str, where: str) -> list[dict]:
    items = spec.get(key)
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ReviewError(f"{where}.{key} is not a list of objects")
    return items


def volume_refusals(request: AdmissionRequest, policy: HostPathPolicy, owner: str | None) -> list[str]:
    """One message per volume the policy refuses, naming the volume and why."""
    messages = []
    for path, spec in pod_templates(request.group, request.kind, request.object):
        where = "" if path == ("spec",) else f" (in {'.'.join(path[:-1])})"
        for index, volume in enumerate(_list_of_objects(spec, "volumes", ".".join(path))):
            reason = policy.volume_refusal(volume, owner)
            if reason:
                name = volume.get("name") or f"#{index}"
                messages.append(f"volume {name!r} of {request.display_name}{where} {reason}")
    return messages


# --- what the mutating webhook adds -----------------------------------------------


def api_settings_volume() -> tuple[dict, dict]:
    """The namespace's API settings Secret, mounted where karvdashctl looks.

    ``optional`` so that a pod created before the Secret still starts.
    """
    volume = {"name": API_SETTINGS_VOLUME, "secret": {"secretName": API_SETTINGS_SECRET, "optional": True}}
    mount = {"name": API_SETTINGS_VOLUME, "mountPath": API_SETTINGS_MOUNT_PATH, "readOnly": True}
    return volume, mount


def wants_datasets(pod: dict) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return str(labels.get(DATASETS_LABEL, "")).strip().lower() != "false"


def pod_additions(domains: FileDomains | None, owner: str | None,
                  datasets: list[str] = ()) -> tuple[list[dict], list[dict]]:
    """(volumes, mounts) every pod of ``owner`` gets: file domains (when the
    owner is known), the API settings, then the datasets."""
    volumes: list[dict] = []
    mounts: list[dict] = []
    if domains is not None and owner:
        volumes += domains.volumes(owner)
        mounts += domains.volume_mounts()
    api_volume, api_mount = api_settings_volume()
    volumes.append(api_volume)
    mounts.append(api_mount)
    dataset_vols, dataset_mounts = dataset_volumes(list(datasets))
    return volumes + dataset_vols, mounts + dataset_mounts


@dataclass(frozen=True)
class PodAdditions:
    """:func:`pod_additions` of one owner and set of datasets, and the pull
    secrets of the deployment's registry (``pull_secrets``: the names of the
    namespace's Secrets), built once and shared by every pod admitted with
    them (nothing may change them)."""

    volumes: tuple[dict, ...]
    mounts: tuple[dict, ...]
    pull_secrets: tuple[str, ...] = ()

    @classmethod
    def build(cls, domains: FileDomains | None, owner: str | None, datasets: tuple[str, ...] = (),
              pull_secrets: tuple[str, ...] = ()) -> PodAdditions:
        volumes, mounts = pod_additions(domains, owner, list(datasets))
        return cls(tuple(volumes), tuple(mounts), pull_secrets)

    @cached_property
    def volume_names(self) -> frozenset[str]:
        return frozenset(v["name"] for v in self.volumes)

    @cached_property
    def mount_keys(self) -> tuple[tuple[str, str, dict], ...]:
        """(volume name, mount path without a trailing /, mount) of each mount."""
        return tuple((m["name"], m["mountPath"].rstrip("/"), m) for m in self.mounts)


@dataclass
class _PatchBuilder:
    ops: list[dict] = field(default_factory=list)

    def append_all(self, base: tuple, key: str, existing, items: list[dict]) -> None:
        if not items:
            return
        path = pointer(*base, key)
        if existing is None:
            self.ops.append({"op": "add", "path": path, "value": items})
        else:
            self.ops += [{"op": "add", "path": path + "/-", "value": item} for item in items]


def mount_patch(pod: dict, volumes: list[dict] | PodAdditions, mounts: list[dict] | None = None) -> list[dict]:
    """JSONPatch adding to ``pod`` the volumes it lacks (by name), in each of
    its containers the mounts it lacks, and the pull secrets it lacks.

    A mount is skipped where the container already mounts that volume or
    already uses that mount path (the pod's own choice wins), and where its
    volume is neither in the pod nor added. Init containers are left alone:
    they prepare the pod and have no use for the user's files.

    ``volumes`` may be :class:`PodAdditions` (then without ``mounts``).
    """
    additions = volumes if isinstance(volumes, PodAdditions) else PodAdditions(tuple(volumes), tuple(mounts or ()))
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        raise ReviewError("the pod has no spec")
    current_volumes = _list_of_objects(spec, "volumes", "spec")
    containers = _list_of_objects(spec, "containers", "spec")
    present = {v.get("name") for v in current_volumes}
    new_volumes = [v for v in additions.volumes if v["name"] not in present]
    available = present | additions.volume_names

    builder = _PatchBuilder()
    builder.append_all(("spec",), "volumes", spec.get("volumes"), new_volumes)
    # images of the deployment's registry pull in every pod (services from
    # templates, workflows), not only in the servers the spawner makes
    secrets = {s.get("name") for s in _list_of_objects(spec, "imagePullSecrets", "spec")}
    builder.append_all(("spec",), "imagePullSecrets", spec.get("imagePullSecrets"),
                       [{"name": name} for name in additions.pull_secrets if name not in secrets])
    for index, container in enumerate(containers):
        current = _list_of_objects(container, "volumeMounts", f"spec.containers[{index}]")
        names = {m.get("name") for m in current}
        paths = {str(m.get("mountPath", "")).rstrip("/") for m in current}
        missing = [
            mount for name, path, mount in additions.mount_keys
            if name in available and name not in names and path not in paths
        ]
        builder.append_all(("spec", "containers", index), "volumeMounts", container.get("volumeMounts"), missing)

    if new_volumes:
        # say what was added, for people reading the pod (and its owner's support)
        added = ",".join(v["name"] for v in new_volumes)
        metadata = pod.get("metadata")
        annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
        if not isinstance(metadata, dict):
            builder.ops.append({"op": "add", "path": "/metadata",
                                "value": {"annotations": {ADDED_VOLUMES_ANNOTATION: added}}})
        elif not isinstance(annotations, dict):
            builder.ops.append({"op": "add", "path": "/metadata/annotations",
                                "value": {ADDED_VOLUMES_ANNOTATION: added}})
        else:
            earlier = annotations.get(ADDED_VOLUMES_ANNOTATION)
            builder.ops.append({"op": "add", "path": pointer("metadata", "annotations", ADDED_VOLUMES_ANNOTATION),
                                "value": f"{earlier},{added}" if earlier else added})
    return builder.ops
