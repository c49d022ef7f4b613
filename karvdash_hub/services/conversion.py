"""Manifests written for API versions Kubernetes no longer serves, turned
into their current form when a template is read.

Karvdash's templates were written for Kubernetes before 1.22: Ingresses of
``extensions/v1beta1`` or ``networking.k8s.io/v1beta1``, workloads of
``apps/v1beta1``, ``apps/v1beta2`` or ``extensions/v1beta1``, CronJobs of
``batch/v1beta1`` and so on. The API server answers those with "no matches
for kind", so an administrator's templates would stop working; converted
here, they run unchanged. Every conversion is reported in one sentence that
names the object and what changed, for the log and ``check-template``.

Pure: :func:`convert` takes one parsed object and returns a converted copy
with its notes; objects of current versions come back as they are.
"""

from __future__ import annotations

import copy
import re
from typing import Mapping

INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
USE_REGEX_ANNOTATION = "nginx.ingress.kubernetes.io/use-regex"
# a whole ``$VAR`` / ``${VAR}`` reference, and references inside a text
_WHOLE_REFERENCE = re.compile(r"^\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})$")
_REFERENCES = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*\})")
# what makes an ingress-nginx path a regular expression
_REGEX_CHARACTERS = re.compile(r"[\^$()\[\]*+?{}|\\]")
_DIGITS = re.compile(r"^[0-9]+$")

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")
# (old apiVersion, kind) -> current apiVersion, for kinds whose fields did not change
_SAME_FIELDS = {
    **{(version, kind): "apps/v1" for version in ("apps/v1beta1", "apps/v1beta2", "extensions/v1beta1")
       for kind in WORKLOAD_KINDS},
    ("batch/v1beta1", "CronJob"): "batch/v1",
    ("batch/v2alpha1", "CronJob"): "batch/v1",
    ("policy/v1beta1", "PodDisruptionBudget"): "policy/v1",
    ("extensions/v1beta1", "NetworkPolicy"): "networking.k8s.io/v1",
    ("autoscaling/v2beta2", "HorizontalPodAutoscaler"): "autoscaling/v2",
    ("coordination.k8s.io/v1beta1", "Lease"): "coordination.k8s.io/v1",
    **{(f"rbac.authorization.k8s.io/{version}", kind): "rbac.authorization.k8s.io/v1"
       for version in ("v1beta1", "v1alpha1") for kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")},
}
INGRESS_VERSIONS = ("extensions/v1beta1", "networking.k8s.io/v1beta1")
# fields the current versions no longer have (they did nothing useful in a template)
_DROPPED_SPEC_FIELDS = {
    "Deployment": ("rollbackTo",),
    "DaemonSet": ("templateGeneration",),
}


def convert(obj, defaults: Mapping[str, str] | None = None) -> tuple[object, list[str]]:
    """``obj`` in its current API version, and one note per conversion.

    ``defaults`` are the template's variables' defaults: a ``servicePort``
    written as ``$PORT`` becomes a port number or a port name by the type
    of its default. Anything not a removed version (or not an object at
    all) is returned as it is, for the template checks to judge.
    """
    if not isinstance(obj, dict) or not isinstance(obj.get("apiVersion"), str) or not isinstance(obj.get("kind"), str):
        return obj, []
    version, kind = obj["apiVersion"], obj["kind"]
    if kind == "Ingress" and version in INGRESS_VERSIONS:
        return _convert_ingress(obj, defaults or {})
    if (version, kind) == ("autoscaling/v2beta1", "HorizontalPodAutoscaler"):
        return _convert_autoscaler_v2beta1(obj)
    if (version, kind) == ("discovery.k8s.io/v1beta1", "EndpointSlice"):
        return _convert_endpoint_slice(obj)
    target = _SAME_FIELDS.get((version, kind))
    if target is None:
        return obj, []
    result = copy.deepcopy(obj)
    result["apiVersion"] = target
    changes = []
    spec = result.get("spec")
    if isinstance(spec, dict):
        for dropped in _DROPPED_SPEC_FIELDS.get(kind, ()):
            if dropped in spec:
                del spec[dropped]
                changes.append(f"spec.{dropped} dropped ({target} has no such field)")
        if kind in WORKLOAD_KINDS and spec.get("selector") is None:
            labels = _get(spec, "template", "metadata", "labels")
            if isinstance(labels, dict) and labels:
                spec["selector"] = {"matchLabels": dict(labels)}
                changes.append("spec.selector set from the pod template's labels")
        if kind == "PodDisruptionBudget" and spec.get("selector") == {}:
            changes.append("its empty spec.selector selects every pod of the namespace in policy/v1, none before")
    return result, [_note(obj, target, changes)]


def convert_all(objects, defaults: Mapping[str, str] | None = None) -> tuple[list, list[str]]:
    """:func:`convert` for every object of a template."""
    converted, notes = [], []
    for obj in objects:
        new, more = convert(obj, defaults)
        converted.append(new)
        notes.extend(more)
    return converted, notes


def _note(obj: dict, target: str, changes: list[str]) -> str:
    name = _get(obj, "metadata", "name")
    what = f"{obj['kind']} {name}" if isinstance(name, str) else obj["kind"]
    details = f" ({'; '.join(changes)})" if changes else ""
    return f"{what}: {obj['apiVersion']} converted to {target}{details}"


def _get(node, *path):
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


# --- Ingress -------------------------------------------------------------------------------


def _convert_ingress(obj: dict, defaults: Mapping[str, str]) -> tuple[dict, list[str]]:
    result = copy.deepcopy(obj)
    result["apiVersion"] = "networking.k8s.io/v1"
    changes = []
    metadata = result.get("metadata") if isinstance(result.get("metadata"), dict) else {}
    annotations = metadata.get("annotations") if isinstance(metadata.get("annotations"), dict) else {}
    spec = result.get("spec")
    if not isinstance(spec, dict):
        return result, [_note(obj, "networking.k8s.io/v1", changes)]
    ingress_class = annotations.get(INGRESS_CLASS_ANNOTATION)
    if isinstance(ingress_class, str) and ingress_class:
        del annotations[INGRESS_CLASS_ANNOTATION]
        if "ingressClassName" not in spec:
            spec["ingressClassName"] = ingress_class
            changes.append(f"annotation {INGRESS_CLASS_ANNOTATION} became spec.ingressClassName")
        else:
            changes.append(f"annotation {INGRESS_CLASS_ANNOTATION} dropped (spec.ingressClassName is set)")
        if not annotations:
            del metadata["annotations"]
    if "backend" in spec:
        spec["defaultBackend"] = _convert_backend(spec.pop("backend"), defaults)
        changes.append("spec.backend became spec.defaultBackend")
    regex = str(annotations.get(USE_REGEX_ANNOTATION, "")).lower() == "true"
    backends = 0
    added: set[str] = set()
    rules = spec.get("rules")
    for rule in rules if isinstance(rules, list) else []:
        paths = _get(rule, "http", "paths")
        for path in paths if isinstance(paths, list) else []:
            if not isinstance(path, dict):
                continue
            if "backend" in path:
                path["backend"] = _convert_backend(path["backend"], defaults)
                backends += 1
            if "pathType" not in path:
                path["pathType"] = _path_type(path.get("path"), regex)
                added.add(path["pathType"])
    if backends:
        changes.append("backend.serviceName/servicePort became backend.service.name/port")
    if added:
        changes.append(f"pathType {'/'.join(sorted(added))} added")
    return result, [_note(obj, "networking.k8s.io/v1", changes)]


def _convert_backend(backend, defaults: Mapping[str, str]):
    if not isinstance(backend, dict) or not ("serviceName" in backend or "servicePort" in backend):
        return backend  # a resource backend, or already in the current form
    converted = {key: value for key, value in backend.items() if key not in ("serviceName", "servicePort")}
    service = {}
    if "serviceName" in backend:
        service["name"] = backend["serviceName"]
    if "servicePort" in backend:
        port = backend["servicePort"]
        if isinstance(port, str) and _DIGITS.match(port):
            port = int(port)
        service["port"] = {"number" if _is_port_number(port, defaults) else "name": port}
    converted["service"] = service
    return converted


def _is_port_number(port, defaults: Mapping[str, str]) -> bool:
    """servicePort was int-or-string: a number, digits, or ``$VAR`` whose
    default is a number stands for a port number; anything else names a port."""
    if isinstance(port, bool):
        return False
    if isinstance(port, int):
        return True
    if not isinstance(port, str):
        return False
    match = _WHOLE_REFERENCE.match(port)
    if match:
        return bool(_DIGITS.match(str(defaults.get(match.group(1) or match.group(2), "")).strip()))
    return bool(_DIGITS.match(port))


def _path_type(path, regex: bool) -> str:
    """v1beta1 paths were "implementation specific" (a prefix for
    ingress-nginx, a regular expression with use-regex). Prefix where that
    is what the path says; ImplementationSpecific for no path, a regular
    expression, or a path Prefix cannot take."""
    if not isinstance(path, str) or regex:
        return "ImplementationSpecific"
    plain = _REFERENCES.sub("x", path)
    if not plain.startswith("/") and not _WHOLE_REFERENCE.match(path) or _REGEX_CHARACTERS.search(plain):
        return "ImplementationSpecific"
    return "Prefix"


# --- HorizontalPodAutoscaler autoscaling/v2beta1 -----------------------------------------------


def _convert_autoscaler_v2beta1(obj: dict) -> tuple[dict, list[str]]:
    result = copy.deepcopy(obj)
    result["apiVersion"] = "autoscaling/v2"
    metrics = _get(result, "spec", "metrics")
    changes = []
    if isinstance(metrics, list):
        result["spec"]["metrics"] = [_convert_metric(m) for m in metrics]
        changes.append("metrics' targets written as target: {type, value}")
    if isinstance(result.get("spec"), dict) and "targetCPUUtilizationPercentage" in result["spec"]:
        percent = result["spec"].pop("targetCPUUtilizationPercentage")
        result["spec"].setdefault("metrics", []).append({"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": percent}}})
        changes.append("targetCPUUtilizationPercentage became a cpu metric")
    return result, [_note(obj, "autoscaling/v2", changes)]


def _target(source: dict, value_key: str, average_key: str, utilization_key: str = "") -> dict:
    if utilization_key and utilization_key in source:
        return {"type": "Utilization", "averageUtilization": source[utilization_key]}
    if average_key in source:
        return {"type": "AverageValue", "averageValue": source[average_key]}
    if value_key and value_key in source:
        return {"type": "Value", "value": source[value_key]}
    return {}


def _metric_id(source: dict, selector_key: str) -> dict:
    metric = {"name": source.get("metricName")}
    if source.get(selector_key) is not None:
        metric["selector"] = source[selector_key]
    return metric


def _convert_metric(metric):
    if not isinstance(metric, dict):
        return metric
    kind = metric.get("type")
    source = metric.get({"Resource": "resource", "Pods": "pods", "Object": "object", "External": "external"}
                        .get(kind, ""))
    if not isinstance(source, dict):
        return metric
    if kind == "Resource":
        new = {"name": source.get("name"),
               "target": _target(source, "", "targetAverageValue", "targetAverageUtilization")}
        return {"type": kind, "resource": new}
    if kind == "Pods":
        return {"type": kind, "pods": {"metric": _metric_id(source, "selector"),
                                       "target": _target(source, "", "targetAverageValue")}}
    if kind == "Object":
        return {"type": kind, "object": {"describedObject": source.get("target"),
                                         "metric": _metric_id(source, "selector"),
                                         "target": _target(source, "targetValue", "averageValue")}}
    return {"type": kind, "external": {"metric": _metric_id(source, "metricSelector"),
                                       "target": _target(source, "targetValue", "targetAverageValue")}}


# --- EndpointSlice discovery.k8s.io/v1beta1 ----------------------------------------------------


def _convert_endpoint_slice(obj: dict) -> tuple[dict, list[str]]:
    result = copy.deepcopy(obj)
    result["apiVersion"] = "discovery.k8s.io/v1"
    changes = []
    endpoints = result.get("endpoints")
    for endpoint in endpoints if isinstance(endpoints, list) else []:
        if isinstance(endpoint, dict) and "topology" in endpoint:
            endpoint["deprecatedTopology"] = endpoint.pop("topology")
            changes.append("endpoints[].topology became deprecatedTopology")
    return result, [_note(obj, "discovery.k8s.io/v1", sorted(set(changes)))]
