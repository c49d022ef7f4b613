"""Objects of a template named without ``$NAME``, renamed after the service.

Two services from one template must not share an object, so every object
name contains ``$NAME``. Karvdash's templates did not always do that (a
``ConfigMap`` called ``settings``, a ``Service`` called ``zookeeper``):
instead of refusing them, such objects are named ``$NAME-<name>``, and
every reference to them in the template's objects is renamed with them,
where Kubernetes has a field for it (volumes, ``envFrom``, ``env``
``valueFrom``, image pull secrets, service accounts, a StatefulSet's
``serviceName``, ingress backends and TLS secrets, RoleBinding subjects
and roles, autoscaler targets ...), and a renamed Service's name where text
uses it as a host (``zookeeper:2181``, ``zookeeper.$NAMESPACE.svc``,
``http://zookeeper/``, an env value that is just ``zookeeper``) in env
values, commands, arguments and ConfigMap data. Any other mention stays as
written; the notes say what was renamed and how many references with it.

Pure: :func:`prefix_fixed_names` returns renamed copies and the notes.
"""

from __future__ import annotations

import copy
import re
from typing import Callable, Iterable

PREFIX = "$NAME-"
_MENTIONS_NAME = re.compile(r"\$(?:NAME\b|\{NAME\})")

# where a workload keeps its pod spec
POD_SPEC_PATHS = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")

Rename = Callable[[dict, str, str], None]


def mentions_name(text) -> bool:
    return isinstance(text, str) and _MENTIONS_NAME.search(text) is not None


def prefix_fixed_names(objects: Iterable[dict]) -> tuple[list[dict], list[str]]:
    """Copies of ``objects`` in which each object whose ``metadata.name``
    lacks ``$NAME`` is named ``$NAME-<name>``, with the references to it;
    and one note per renamed object. Objects are expected to have passed
    the basic checks (a mapping with kind and a text metadata.name)."""
    objects = [copy.deepcopy(obj) for obj in objects]
    renamed: dict[tuple[str, str], str] = {}
    for obj in objects:
        name = obj["metadata"]["name"]
        if not mentions_name(name):
            renamed[(obj["kind"], name)] = PREFIX + str(name)
    if not renamed:
        return objects, []
    counts = {key: 0 for key in renamed}

    def rename(node: dict, key: str, kind: str) -> None:
        value = node.get(key) if isinstance(node, dict) else None
        if isinstance(value, str) and (kind, value) in renamed:
            node[key] = renamed[(kind, value)]
            counts[(kind, value)] += 1

    services = [name for kind, name in renamed if kind == "Service"]
    in_text, whole = _host_pattern(services, whole=False), _host_pattern(services, whole=True)

    def rename_hosts(node, key, entire: bool) -> None:
        pattern = whole if entire else in_text
        if pattern is None or not isinstance(node[key], str):
            return

        def new_name(match: re.Match) -> str:
            counts[("Service", match.group(0))] += 1
            return renamed[("Service", match.group(0))]

        node[key] = pattern.sub(new_name, node[key])

    for obj in objects:
        _rename_references(obj, rename)
        _rename_service_hosts(obj, rename_hosts)
    for obj in objects:
        key = (obj["kind"], obj["metadata"]["name"])
        if key in renamed:
            obj["metadata"]["name"] = renamed[key]
    notes = []
    for (kind, name), new in renamed.items():
        references = counts[(kind, name)]
        what = f"{references} reference{'' if references == 1 else 's'}" if references else "no references"
        notes.append(f"{kind} {name} renamed to {new} (a name without $NAME would be shared by every service "
                     f"of the template); {what} renamed with it")
    return objects, notes


def _host_pattern(services: list[str], whole: bool):
    """Where a text names one of ``services`` as a host: ``zk:2181``,
    ``zk.$NAMESPACE``, ``zk.svc``, ``//zk`` (a URL), and with ``whole`` the
    entire text (an env value, a configuration entry). Other words that
    happen to be the name (``zk.properties``, ``zk-start.sh``, ``/data/zk``)
    stay."""
    names = [re.escape(name) for name in services if isinstance(name, str) and name]
    if not names:
        return None
    alternatives = "|".join(sorted(names, key=len, reverse=True))
    before = r"(?<![\w.$/-])"
    forms = [
        rf"{before}(?:{alternatives})(?=:[0-9$])",
        rf"{before}(?:{alternatives})(?=\.(?:\$NAMESPACE\b|\$\{{NAMESPACE\}}|svc\b))",
        rf"(?<=//)(?:{alternatives})(?=[:/?#]|\s|$)",
    ]
    if whole:
        forms.append(rf"^(?:{alternatives})$")
    return re.compile("|".join(forms))


def _rename_service_hosts(obj: dict, rename_hosts) -> None:
    """Service host names in ConfigMap data (configuration files) and in
    containers' env values, commands and arguments (where a whole word is
    not taken for a host: ``args: [server]`` is a subcommand)."""
    if obj["kind"] == "ConfigMap":
        data = obj.get("data")
        for key in list(data) if isinstance(data, dict) else []:
            rename_hosts(data, key, True)
        return
    path = POD_SPEC_PATHS.get(obj["kind"])
    pod = _child(obj, *path) if path else None
    for containers in CONTAINER_LISTS:
        for container in _items(pod, containers):
            for variable in _items(container, "env"):
                if "value" in variable:
                    rename_hosts(variable, "value", True)
            for key in ("command", "args"):
                words = container.get(key)
                for index in range(len(words)) if isinstance(words, list) else []:
                    rename_hosts(words, index, False)


def _items(node, key: str) -> list:
    value = node.get(key) if isinstance(node, dict) else None
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _child(node, *path):
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _rename_references(obj: dict, rename: Rename) -> None:
    kind = obj["kind"]
    path = POD_SPEC_PATHS.get(kind)
    if path:
        pod = _child(obj, *path)
        if pod is not None:
            _rename_in_pod_spec(pod, rename)
    spec = _child(obj, "spec")
    if spec is None:
        spec = {}
    if kind == "StatefulSet":
        rename(spec, "serviceName", "Service")
    elif kind == "Ingress":
        _rename_backend(_child(spec, "defaultBackend"), rename)
        _rename_backend(_child(spec, "backend"), rename)
        for rule in _items(spec, "rules"):
            for http_path in _items(_child(rule, "http"), "paths"):
                _rename_backend(_child(http_path, "backend"), rename)
        for tls in _items(spec, "tls"):
            rename(tls, "secretName", "Secret")
    elif kind == "RoleBinding":
        role = _child(obj, "roleRef")
        if role is not None and role.get("kind") == "Role":
            rename(role, "name", "Role")
        for subject in _items(obj, "subjects"):
            # a service account of the user's namespace (not another namespace's)
            if subject.get("kind") == "ServiceAccount" and subject.get("namespace") in (None, "$NAMESPACE",
                                                                                         "${NAMESPACE}"):
                rename(subject, "name", "ServiceAccount")
    elif kind == "HorizontalPodAutoscaler":
        target = _child(spec, "scaleTargetRef")
        if target is not None and isinstance(target.get("kind"), str):
            rename(target, "name", target["kind"])
    elif kind == "PersistentVolumeClaim":
        for source in ("dataSource", "dataSourceRef"):
            ref = _child(spec, source)
            if ref is not None and ref.get("kind") == "PersistentVolumeClaim":
                rename(ref, "name", "PersistentVolumeClaim")


def _rename_backend(backend, rename: Rename) -> None:
    if backend is None:
        return
    rename(_child(backend, "service") or {}, "name", "Service")
    rename(backend, "serviceName", "Service")


def _rename_in_pod_spec(pod: dict, rename: Rename) -> None:
    rename(pod, "serviceAccountName", "ServiceAccount")
    rename(pod, "serviceAccount", "ServiceAccount")
    rename(pod, "subdomain", "Service")
    for secret in _items(pod, "imagePullSecrets"):
        rename(secret, "name", "Secret")
    for volume in _items(pod, "volumes"):
        rename(_child(volume, "configMap") or {}, "name", "ConfigMap")
        rename(_child(volume, "secret") or {}, "secretName", "Secret")
        rename(_child(volume, "persistentVolumeClaim") or {}, "claimName", "PersistentVolumeClaim")
        rename(_child(volume, "csi", "nodePublishSecretRef") or {}, "name", "Secret")
        for source in _items(_child(volume, "projected"), "sources"):
            rename(_child(source, "configMap") or {}, "name", "ConfigMap")
            rename(_child(source, "secret") or {}, "name", "Secret")
    for containers in CONTAINER_LISTS:
        for container in _items(pod, containers):
            for source in _items(container, "envFrom"):
                rename(_child(source, "configMapRef") or {}, "name", "ConfigMap")
                rename(_child(source, "secretRef") or {}, "name", "Secret")
            for variable in _items(container, "env"):
                rename(_child(variable, "valueFrom", "configMapKeyRef") or {}, "name", "ConfigMap")
                rename(_child(variable, "valueFrom", "secretKeyRef") or {}, "name", "Secret")
