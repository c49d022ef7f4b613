"""Service templates: parse, validate and render Karvdash's ``*.template.yaml``.

A template is a multi-document YAML file: ordinary namespaced Kubernetes
manifests plus one ``kind: Template`` document (name, description,
singleton, auth, datasets, variables). ``service_templates/README.md``
documents the format.

Values never touch YAML text: the template is parsed once, and rendering
substitutes ``$VAR`` / ``${VAR}`` inside the parsed objects' string scalars
(and mapping keys). A value therefore cannot add objects, change an object's
structure or its namespace, whatever characters it holds. Undeclared
``$...`` stays as it is (shell and nginx variables survive); ``$$`` is a
literal ``$``, as in Karvdash (``string.Template`` rules).

Everything here is pure: ``catalogue.py`` reads the template folders,
``store.py`` applies what :func:`render` returns.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
import secrets
import string
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Iterable

import yaml

from karvdash_hub.core.labels import (
    DATASETS_LABEL,
    INSTANCE_LABEL,
    OWNER_LABEL,
    VALUES_ANNOTATION,
    instance_labels,
)
from karvdash_hub.core.names import DNS_LABEL, DNS_SUBDOMAIN, LABEL_VALUE, SUFFIX_LENGTH
from karvdash_hub.core.names import free_name as _free_name

from .conversion import convert_all
from .renaming import prefix_fixed_names

TEMPLATE_SUFFIX = ".template.yaml"
# a template is a text file of a few kilobytes; anything much larger is refused
MAX_TEMPLATE_BYTES = 256 * 1024
# Bounds on the parsed tree, checked on the parser's events before anything
# is built, so that no template can make parsing or rendering expensive. The
# largest shipped template has about 600 nodes, 15 documents and depth 10.
MAX_TEMPLATE_NODES = 10_000
MAX_TEMPLATE_DEPTH = 40
# objects per template unless the setting templateMaxObjects says otherwise
DEFAULT_MAX_OBJECTS = 50
# characters of all rendered strings together: values repeated by many
# references cannot blow a template up (the API server takes 3 MiB a request)
MAX_RENDERED_CHARS = 2 * 1024 * 1024

# Filled by the system, hidden from the form.
RESERVED_VARIABLES = ("NAMESPACE", "HOSTNAME", "REGISTRY", "PRIVATE", "SHARED")

VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# NAME ends up in object names, label values and host names: a DNS-1035
# label (Service names must start with a letter), short enough to take a
# "-<user>" host suffix and "-xxxx" when taken.
NAME_PATTERN = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME_LENGTH = 40
MAX_VALUE_LENGTH = 1024
# Refused in every value: control characters (Cc: C0, DEL, C1 with NEL
# U+0085 and the separators U+001C-U+001E), the line and paragraph
# separators U+2028/U+2029 (Zl, Zp; line breaks to YAML and JavaScript) and
# lone surrogates (Cs, not text). Every other character is allowed.
REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
# Bounds of a value substituted where a whole number is written, by the key
# it is the value of; other whole numbers are 32-bit, as most of Kubernetes'.
PORT_KEYS = frozenset({"port", "targetPort", "containerPort", "hostPort", "nodePort"})
REPLICA_KEYS = frozenset({"replicas", "parallelism", "completions"})
MAX_REPLICAS = 100
INTEGER_BOUNDS = (-(2**31), 2**31 - 1)
_DECIMAL = re.compile(r"^-?(0|[1-9][0-9]*)$")
_NUMBER = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$")
# a template id is the file name without .template.yaml: a label value and object-name part
TEMPLATE_ID = DNS_LABEL

# Kinds that are not namespaced. The I/O layer asks the API server as well
# (custom resources can be cluster-scoped); this list gives a clear message
# when a template is added, before any cluster is involved.
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "CertificateSigningRequest",
        "ClusterIssuer",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterTrustBundle",
        "ClusterWorkflowTemplate",
        "ComponentStatus",
        "CSIDriver",
        "CSINode",
        "CustomResourceDefinition",
        "DeviceClass",
        "FlowSchema",
        "IngressClass",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PodSecurityPolicy",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "ResourceSlice",
        "RuntimeClass",
        "StorageClass",
        "StorageVersion",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
        "VolumeAttributesClass",
    }
)

# Workloads whose pod template gets the instance's labels (for status, exec
# and the datasets opt-out); path to the pod template's metadata.
POD_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}

AUTH_URL_ANNOTATION = "nginx.ingress.kubernetes.io/auth-url"
AUTH_SIGNIN_ANNOTATION = "nginx.ingress.kubernetes.io/auth-signin"
NGINX_ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/"
# The ingress-nginx annotations a user's template may set: tuning of the
# proxy in front of its own service. Everything else of ingress-nginx is
# configuration of the shared controller (``*-snippet`` is raw nginx
# configuration, ``auth-*`` would replace the hub's login, ``mirror-*``,
# ``permanent-redirect``, ``upstream-vhost`` ... reach elsewhere), so it is
# refused; shipped and admin templates are the administrator's and may set any.
USER_NGINX_ANNOTATIONS = frozenset({
    "backend-protocol",
    "force-ssl-redirect",
    "proxy-body-size",
    "proxy-buffer-size",
    "proxy-buffering",
    "proxy-connect-timeout",
    "proxy-read-timeout",
    "proxy-request-buffering",
    "proxy-send-timeout",
    "ssl-redirect",
})
# their values: sizes, seconds, on/off, true/false, HTTP/HTTPS/GRPC
USER_NGINX_ANNOTATION_VALUE = re.compile(r"^[A-Za-z0-9.]{1,32}$")
# other controllers' configuration annotations
FOREIGN_INGRESS_ANNOTATION_PREFIXES = ("ingress.kubernetes.io/", "nginx.org/", "kubernetes.io/ingress.class")

_VARIABLE_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": VARIABLE_NAME.pattern},
        "default": {"type": ["string", "integer", "number", "boolean"]},
        "help": {"type": "string"},
        "label": {"type": "string"},
        "secret": {"type": "boolean"},
    },
}

TEMPLATE_SCHEMA = {
    "type": "object",
    "required": ["kind", "name", "variables"],
    "additionalProperties": False,
    "properties": {
        "kind": {"const": "Template"},
        "apiVersion": {"type": "string"},
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "description": {"type": "string", "maxLength": 1000},
        "singleton": {"type": "boolean"},
        "auth": {"type": "boolean"},
        "datasets": {"type": "boolean"},
        "variables": {"type": "array", "items": _VARIABLE_SCHEMA},
    },
}


class TemplateError(ValueError):
    """A template file is not valid; the message says what and where."""


class ValuesError(ValueError):
    """Values for a template are not acceptable; ``variable`` names the culprit."""

    def __init__(self, variable: str | None, message: str):
        self.variable = variable
        super().__init__(f"{variable}: {message}" if variable else message)


class _Reference(str):
    """A plain (unquoted) YAML scalar that is exactly one ``$VAR`` reference:
    after substitution it takes the type of the value (``replicas: $N``)."""


# libyaml when it is there: the pure-Python parser takes seconds for a large file
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _TemplateLoader(_SafeLoader):
    """SafeLoader that marks plain whole-variable scalars as :class:`_Reference`."""


_WHOLE_REFERENCE = re.compile(r"^\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})$")


def _construct_str(loader, node):
    value = loader.construct_scalar(node)
    # plain style: None from the Python parser, "" from libyaml
    if not node.style and _WHOLE_REFERENCE.match(value):
        return _Reference(value)
    return value


_TemplateLoader.add_constructor("tag:yaml.org,2002:str", _construct_str)
# Kubernetes reads YAML as JSON: a date or time stays the text it is
_TemplateLoader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))


def _check_json(node, where: str) -> None:
    """Only what JSON can carry: no sets, binary data, infinities (!!set,
    !!binary, .inf), which would fail only when applied."""
    stack = [(node, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if not isinstance(key, (str, int, float, bool)) or isinstance(key, float) and not math.isfinite(key):
                    raise TemplateError(f"{path}: the key {key!r} is not text or a number")
                stack.append((value, f"{path}.{key}"))
        elif isinstance(item, list):
            stack.extend((value, f"{path}[{i}]") for i, value in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            raise TemplateError(f"{path}: {item} is not a number JSON can carry")
        elif not isinstance(item, (str, int, float, bool)) and item is not None:
            raise TemplateError(f"{path}: a {type(item).__name__} value cannot be sent to Kubernetes")


@dataclass(frozen=True)
class Variable:
    name: str
    default: str = ""
    help: str = ""
    label: str = ""
    # a credential: generated default, kept out of the values annotation
    secret: bool = False

    @property
    def reserved(self) -> bool:
        return self.name in RESERVED_VARIABLES

    @property
    def title(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class ServiceTemplate:
    """One parsed template. ``source`` is ``system``, ``admin`` or ``user``."""

    id: str
    name: str
    description: str
    singleton: bool
    auth: bool
    datasets: bool
    variables: tuple[Variable, ...]
    objects: tuple[dict, ...]
    source: str
    text: str = field(repr=False)
    filename: str = ""
    # what reading it changed: API versions converted, objects renamed after $NAME
    notes: tuple[str, ...] = ()

    @property
    def form_variables(self) -> list[Variable]:
        """The variables a person fills in (reserved ones are the system's)."""
        return [v for v in self.variables if not v.reserved]

    @property
    def deletable(self) -> bool:
        return self.source == "user"

    @property
    def has_ingress(self) -> bool:
        return any(obj.get("kind") == "Ingress" for obj in self.objects)

    def form_defaults(self, token: Callable[[], str] | None = None) -> dict[str, str]:
        """Initial form values; secret variables get a fresh random default."""
        token = token or generate_secret
        return {v.name: (token() if v.secret else v.default) for v in self.form_variables}

    def summary(self) -> dict:
        """The template as the REST API lists it."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "singleton": self.singleton,
            "auth": self.auth,
            "datasets": self.datasets,
            "source": self.source,
            "custom": self.source == "user",
            "variables": [
                {"name": v.name, "default": "" if v.secret else v.default, "help": v.help, "label": v.title,
                 "secret": v.secret}
                for v in self.form_variables
            ],
        }


def generate_secret() -> str:
    return secrets.token_urlsafe(18)


# --- parsing --------------------------------------------------------------------------


def template_id_from_filename(filename: str) -> str:
    """``jupyter.template.yaml`` -> ``jupyter``."""
    if not filename.endswith(TEMPLATE_SUFFIX):
        raise TemplateError(f"{filename}: template files end with {TEMPLATE_SUFFIX}")
    template_id = filename[: -len(TEMPLATE_SUFFIX)]
    if not TEMPLATE_ID.match(template_id):
        raise TemplateError(
            f"{filename}: the name before {TEMPLATE_SUFFIX} must be lowercase letters, digits and '-'"
        )
    return template_id


def slug(text: str, fallback: str = "template") -> str:
    """A template id from a display name: ``My Service`` -> ``my-service``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    value = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:50].strip("-")
    return value or fallback


def parse_template(
    text: str, template_id: str, source: str, filename: str = "", max_objects: int | None = None
) -> ServiceTemplate:
    """Parse and validate a template; raise TemplateError saying what is wrong.

    ``max_objects`` (the setting templateMaxObjects) is checked where a
    template is added; stored templates are read without it, and rendering
    checks it again.
    """
    if not TEMPLATE_ID.match(template_id):
        raise TemplateError(f"{template_id!r} is not a template id (lowercase letters, digits and '-')")
    if not isinstance(text, str):
        raise TemplateError("a template is text")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_TEMPLATE_BYTES:
        raise TemplateError(f"is larger than {MAX_TEMPLATE_BYTES // 1024} KiB")
    try:
        _check_shape(text, max_objects)
        documents = [d for d in yaml.load_all(text, Loader=_TemplateLoader) if d is not None]
    except TemplateError:
        raise
    except yaml.YAMLError as e:
        raise TemplateError(f"not valid YAML: {e}") from None
    except (ValueError, TypeError, AttributeError, KeyError, OverflowError) as e:
        # PyYAML's constructors raise these for values such as !!int 0xZZ or 2024-13-45
        raise TemplateError(f"not valid YAML: a value cannot be read ({e})") from None
    except (RecursionError, MemoryError):
        # the shape check bounds both; this is the last line of defence
        raise TemplateError("is nested too deeply or too large to read") from None
    for index, document in enumerate(documents, start=1):
        _check_json(document, f"document {index}")
    headers = [d for d in documents if isinstance(d, dict) and d.get("kind") == "Template"]
    if len(headers) != 1:
        raise TemplateError(f"needs exactly one document of kind Template, found {len(headers)}")
    header = headers[0]
    _check_header(header)
    variables = tuple(
        Variable(
            name=v["name"],
            default=_scalar_text(v.get("default", "")),
            help=v.get("help", ""),
            label=v.get("label", ""),
            secret=v.get("secret", False),
        )
        for v in header["variables"]
    )
    names = [v.name for v in variables]
    if "NAME" not in names:
        raise TemplateError("variables: NAME must be declared (it names the service)")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise TemplateError(f"variables: declared more than once: {', '.join(duplicates)}")
    singleton = header.get("singleton", False)
    objects = [d for d in documents if d is not header]
    if not objects:
        raise TemplateError("has no Kubernetes objects besides the Template document")
    if max_objects is not None and len(objects) > max_objects:
        raise TemplateError(f"has {len(objects)} objects; a template may have at most {max_objects}")
    # removed API versions (Karvdash's templates) in their current form
    objects, notes = convert_all(objects, {v.name: v.default for v in variables})
    wheres = [_check_object(obj, index, source) for index, obj in enumerate(objects, start=1)]
    if not singleton:
        objects, renamed = prefix_fixed_names(objects)
        notes += renamed
    seen = set()
    for where, obj in zip(wheres, objects, strict=True):
        key = (_api_group(obj["apiVersion"]), obj["kind"], obj["metadata"]["name"])
        if key in seen:
            raise TemplateError(f"{where}: another object has the same kind and name")
        seen.add(key)
        if obj["kind"] == "Ingress" and "HOSTNAME" not in names:
            # reserved variables are filled only where declared (as in Karvdash)
            raise TemplateError(f"{where}: its hosts are $HOSTNAME, which is filled in only where the template "
                                "declares it: add HOSTNAME to variables (- name: HOSTNAME)")
    return ServiceTemplate(
        id=template_id,
        name=header["name"],
        description=header.get("description", ""),
        singleton=singleton,
        auth=header.get("auth", True),
        datasets=header.get("datasets", True),
        variables=variables,
        objects=tuple(objects),
        source=source,
        text=text,
        filename=filename,
        notes=tuple(notes),
    )


def _check_shape(text: str, max_objects: int | None) -> None:
    """Refuse anchors and aliases, and trees too large or too deep, from the
    parser's events: before any object is built, reading only as far as the
    first bound broken. An alias repeats a whole subtree, so a few hundred
    bytes of aliases of aliases render to billions of nodes."""
    try:
        _check_events(yaml.parse(text, Loader=_SafeLoader), max_objects)
    except yaml.YAMLError as error:
        # libyaml has a nesting limit of its own, met first in flow style ([[[...)
        mark = getattr(error, "problem_mark", None)
        if "nesting depth" in str(error) and mark is not None:
            raise TemplateError(f"line {mark.line + 1}: nested more than {MAX_TEMPLATE_DEPTH} levels deep") from None
        raise


def _check_events(events, max_objects: int | None) -> None:
    nodes = depth = documents = 0
    most_objects = max_objects if max_objects is not None else MAX_TEMPLATE_NODES
    for event in events:
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise TemplateError(
                f"line {line}: YAML anchors and aliases (&name, *name, <<: *name) are not supported in templates; "
                "write the repeated part out"
            )
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_TEMPLATE_DEPTH:
                raise TemplateError(f"line {line}: nested more than {MAX_TEMPLATE_DEPTH} levels deep")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            # the Template document, the objects, and an empty one at the end
            if documents > most_objects + 2:
                raise TemplateError(f"has more than {most_objects} objects; a template may have at most {most_objects}")
        if isinstance(event, (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            nodes += 1
            if nodes > MAX_TEMPLATE_NODES:
                raise TemplateError(f"has more than {MAX_TEMPLATE_NODES} YAML nodes (keys, values and items)")


@functools.cache
def _header_validator():
    # jsonschema is imported when the first template is checked, not with this
    # module: loading it costs ~2 s of CPU and ~20 MiB (its format grammars)
    import jsonschema

    return jsonschema.Draft202012Validator(TEMPLATE_SCHEMA)


def _check_header(header: dict) -> None:
    errors = sorted(_header_validator().iter_errors(header), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    error = errors[0]
    where = "/".join(str(p) for p in error.absolute_path) or "Template"
    if error.validator == "additionalProperties":
        allowed = error.schema.get("properties", {})
        extra = sorted(set(error.instance) - set(allowed))
        hints = [difflib.get_close_matches(e, allowed, n=1) for e in extra]
        hint = "".join(f"; did you mean {h[0]!r}?" for h in hints if h)
        raise TemplateError(f"{where}: unknown field(s) {', '.join(extra)}{hint}")
    raise TemplateError(f"{where}: {error.message}")


def _reference_name(value) -> str | None:
    """``NAME`` for ``$NAME`` or ``${NAME}``, else None."""
    match = _WHOLE_REFERENCE.match(value) if isinstance(value, str) else None
    return (match.group(1) or match.group(2)) if match else None


def _scalar_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _api_group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _check_object(obj, index: int, source: str = "user") -> str:
    if not isinstance(obj, dict):
        raise TemplateError(f"document {index} is not a mapping")
    where = f"object {index}"
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            raise TemplateError(f"{where}: {key} is missing")
    kind = obj["kind"]
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        raise TemplateError(f"{where} ({kind}): metadata.name is missing")
    where = f"object {index} ({kind} {metadata['name']})"
    if kind.endswith("List"):
        raise TemplateError(f"{where}: lists are not supported; write each object as its own document")
    if kind in CLUSTER_SCOPED_KINDS:
        raise TemplateError(f"{where}: {kind} is cluster-scoped; templates may only create objects in the user's namespace")
    if "generateName" in metadata:
        raise TemplateError(f"{where}: metadata.generateName is not supported; set metadata.name")
    namespace = metadata.get("namespace")
    if namespace is not None and _reference_name(namespace) != "NAMESPACE":
        raise TemplateError(
            f"{where}: targets namespace {namespace!r}; templates may only create objects in the user's "
            "namespace (leave metadata.namespace out or write $NAMESPACE)"
        )
    if kind == "Ingress":
        try:
            check_ingress(obj, source, hostname=None)
        except ValuesError as error:
            raise TemplateError(f"{where}: {error}") from None
    return where


def check_ingress(obj: dict, source: str, hostname: str | None, ingress_class: str = "") -> None:
    """An Ingress may only serve the service's own host: every rule and TLS
    host is ``$HOSTNAME`` in the template (``hostname is None``) and the
    service's generated host once rendered; no catch-all rules, no default
    backend. In user templates, no ingress-nginx configuration beyond
    :data:`USER_NGINX_ANNOTATIONS`, and no other ingress class.
    Raises ValuesError naming the host or annotation."""
    spec = obj.get("spec")
    spec = spec if isinstance(spec, dict) else {}

    def own(host) -> bool:
        if hostname is None:
            return _reference_name(host) == "HOSTNAME"
        return host == hostname

    wanted = "$HOSTNAME" if hostname is None else hostname
    if spec.get("defaultBackend") is not None:
        raise ValuesError(None, "spec.defaultBackend would catch requests for every host; write a rule for "
                          f"host {wanted} instead")
    rules = spec.get("rules")
    for rule in rules if isinstance(rules, list) else [rules] if rules is not None else []:
        host = rule.get("host") if isinstance(rule, dict) else None
        if host is None:
            raise ValuesError(None, f"a rule without host would catch requests for every host; set host: {wanted}")
        if not own(host):
            raise ValuesError(None, f"host {host!r} is not this service's own host; an Ingress may only use {wanted}")
    tls = spec.get("tls")
    for entry in tls if isinstance(tls, list) else [tls] if tls is not None else []:
        hosts = entry.get("hosts") if isinstance(entry, dict) else None
        for host in hosts if isinstance(hosts, list) else [hosts] if hosts is not None else []:
            if not own(host):
                raise ValuesError(None, f"TLS host {host!r} is not this service's own host; an Ingress may only "
                                  f"use {wanted}")
    if source != "user":
        return
    annotations = (obj.get("metadata") or {}).get("annotations")
    for key, value in (annotations if isinstance(annotations, dict) else {}).items():
        key = str(key)
        if key.startswith(NGINX_ANNOTATION_PREFIX):
            option = key[len(NGINX_ANNOTATION_PREFIX):]
            if option not in USER_NGINX_ANNOTATIONS:
                why = ("raw nginx configuration" if option.endswith("-snippet") else
                       "the hub's login protects services" if option.startswith("auth-") else
                       "ingress-nginx configuration")
                raise ValuesError(None, f"annotation {key} is not allowed in your templates ({why}); allowed: "
                                  + ", ".join(sorted(USER_NGINX_ANNOTATIONS)))
            text = _scalar_text(value)
            if not USER_NGINX_ANNOTATION_VALUE.match(text) and not (hostname is None and "$" in text):
                raise ValuesError(None, f"annotation {key}: {text!r} is not a plain value (letters, digits, '.')")
        elif key.startswith(FOREIGN_INGRESS_ANNOTATION_PREFIXES):
            raise ValuesError(None, f"annotation {key} is not allowed in your templates (ingress controller "
                              "configuration)")
    named = spec.get("ingressClassName")
    if hostname is not None and named is not None and ingress_class and named != ingress_class:
        raise ValuesError(None, f"ingressClassName {named!r}: your templates' ingresses use {ingress_class!r}")


def check_policy(template: "ServiceTemplate", context: "RenderContext") -> None:
    """The deployment's bounds, where a template is added and where it is
    rendered: at most templateMaxObjects objects; ``auth: false`` (a service
    open without the hub's login) in shipped and admin templates, in users'
    own only where serviceAuthOptional allows it."""
    if len(template.objects) > context.max_objects:
        raise TemplateError(
            f"has {len(template.objects)} objects; a template may have at most {context.max_objects} "
            "(templateMaxObjects)"
        )
    if template.source == "user" and not template.auth and template.has_ingress and not context.auth_optional:
        raise TemplateError(
            "auth: false is not allowed in your templates on this deployment (serviceAuthOptional): "
            "its services would be open without the hub's login"
        )


def free_id(wanted: str, taken: Iterable[str], token: Callable[[], str] | None = None) -> str:
    """``wanted`` if free, else ``wanted-xxxx`` (a template id is a DNS label)."""
    return _free_name(wanted, taken, limit=63, error=ValuesError("NAME", "no free name found"), suffix=token)


# --- values -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderContext:
    """What the system knows when it renders: the user and the deployment."""

    username: str
    namespace: str
    hostname: str
    registry: str = ""
    private: str = "/private"
    shared: str = "/shared"
    ingress_class: str = "nginx"
    url_scheme: str = "https"
    # ingress-nginx external auth; empty leaves ingresses as they are
    auth_url: str = ""
    signin_url: str = ""
    # settings templateMaxObjects and serviceAuthOptional
    max_objects: int = DEFAULT_MAX_OBJECTS
    auth_optional: bool = False

    def reserved_values(self) -> dict[str, str]:
        return {
            "NAMESPACE": self.namespace,
            "HOSTNAME": self.hostname,
            "REGISTRY": self.registry,
            "PRIVATE": self.private,
            "SHARED": self.shared,
        }


def hostname_for(name: str, username: str, domain: str, prefix: str = "") -> str:
    """``<name>-<user>.<domain>``, or ``<prefix>.<domain>`` with a URL prefix."""
    label = prefix or f"{name}-{username}"
    if len(label) > 63:
        raise ValuesError("NAME", f"too long: the host name label {label!r} has more than 63 characters")
    return f"{label}.{domain}" if domain else label


def check_values(template: ServiceTemplate, values: dict) -> dict[str, str]:
    """Complete ``values`` with defaults and validate them; return strings.

    Refuses unknown and reserved variables, empty values, control
    characters, overlong values and a NAME that is not a DNS label.
    """
    if not isinstance(values, dict):
        raise ValuesError(None, "values must be a mapping of variable names to values")
    declared = {v.name: v for v in template.form_variables}
    for key in values:
        if key in RESERVED_VARIABLES:
            raise ValuesError(key, "is filled in by the system and cannot be set")
        if key not in declared:
            raise ValuesError(key, f"is not a variable of template {template.id!r}")
    checked = {}
    for name, variable in declared.items():
        value = values.get(name, None)
        if value is None:
            if variable.secret:
                raise ValuesError(name, "is a credential and must be given")
            value = variable.default
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = str(value)
        elif not isinstance(value, str):
            raise ValuesError(name, "must be text")
        bad = next((c for c in value if unicodedata.category(c) in REFUSED_CATEGORIES), None)
        if bad is not None:
            raise ValuesError(name, f"must not contain control characters or line breaks (U+{ord(bad):04X})")
        value = value.strip()
        if not value:
            raise ValuesError(name, "must not be empty")
        if len(value) > MAX_VALUE_LENGTH:
            raise ValuesError(name, f"is longer than {MAX_VALUE_LENGTH} characters")
        checked[name] = value
    check_name(checked["NAME"])
    return checked


def match_variables(template: ServiceTemplate, values: dict) -> dict:
    """``values`` with every key spelled as the template declares it.

    A key names its variable whatever its case (``name=web`` is ``NAME``:
    Karvdash's client upper-cased them, people type them in lower case).
    The exact spelling wins; a key that matches several variables by case
    alone, or two keys for one variable, are refused. Keys that match
    nothing stay as they are, for :func:`check_values` to refuse.
    """
    if not isinstance(values, dict):
        raise ValuesError(None, "values must be a mapping of variable names to values")
    declared = {v.name for v in template.variables}
    by_lower: dict[str, list[str]] = {}
    for name in sorted(declared):
        by_lower.setdefault(name.lower(), []).append(name)
    matched = {}
    for key, value in values.items():
        name = key
        if key not in declared:
            candidates = by_lower.get(key.lower(), [])
            if len(candidates) > 1:
                raise ValuesError(key, f"matches {' and '.join(candidates)}: spell it as one of them")
            name = candidates[0] if candidates else key
        if name in matched:
            raise ValuesError(name, "is given twice (names of variables are matched whatever their case)")
        matched[name] = value
    return matched


def check_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH:
        raise ValuesError("NAME", f"is longer than {MAX_NAME_LENGTH} characters")
    if not NAME_PATTERN.match(name):
        raise ValuesError(
            "NAME", "must be lowercase letters, digits and '-', start with a letter and end with a letter or digit"
        )
    return name


def free_name(wanted: str, taken: Iterable[str], token: Callable[[], str] | None = None) -> str:
    """NAME if free, else ``NAME-xxxx`` (as Karvdash did)."""
    return _free_name(
        wanted, taken, limit=MAX_NAME_LENGTH + 1 + SUFFIX_LENGTH, error=ValuesError("NAME", "no free name found"),
        suffix=token,
    )


# --- rendering ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedService:
    name: str
    template: ServiceTemplate
    values: dict[str, str]
    # values without credentials: shown, and kept in the values annotation
    public_values: dict[str, str]
    objects: list[dict]
    url: str


def render(template: ServiceTemplate, values: dict, context: RenderContext) -> RenderedService:
    """The template's objects for ``values``, ready to apply in ``context.namespace``."""
    check_policy(template, context)
    checked = check_values(template, values)
    # reserved variables only where the template declares them, as in
    # Karvdash: elsewhere $HOSTNAME is the shell's (a pod's host name)
    declared = {variable.name for variable in template.variables}
    reserved = {key: value for key, value in context.reserved_values().items() if key in declared}
    substitutions = {**checked, **reserved}
    # the type a whole-reference scalar must have, from the template's defaults
    expected = {
        name: type(_typed(value)) for name, value in
        {**{v.name: v.default for v in template.variables}, **reserved}.items()
    }
    name = checked["NAME"]
    labels = instance_labels(context.username, name, template.id)
    secret = {v.name for v in template.variables if v.secret}
    public = {k: v for k, v in checked.items() if k not in secret}
    annotations = {VALUES_ANNOTATION: json.dumps(public, sort_keys=True, separators=(",", ":"))}
    objects = []
    budget = [MAX_RENDERED_CHARS]
    for original in template.objects:
        # absent or $NAMESPACE (parse_template checks): it is the user's namespace either way
        original = {**original, "metadata": {k: v for k, v in original["metadata"].items() if k != "namespace"}}
        obj = _substitute(original, substitutions, expected, where=_describe(original), budget=budget)
        _check_rendered(obj, context.namespace)
        if obj["kind"] == "Ingress":
            try:
                check_ingress(obj, template.source, context.hostname, context.ingress_class)
            except ValuesError as error:
                raise ValuesError(error.variable, f"Ingress {obj['metadata']['name']}: {error}") from None
        obj["metadata"]["namespace"] = context.namespace
        _merge(obj["metadata"], "labels", labels)
        _merge(obj["metadata"], "annotations", annotations)
        _label_pod_template(obj, labels, template.datasets)
        if obj["kind"] == "Ingress":
            _prepare_ingress(obj, template.auth, context)
        objects.append(obj)
    return RenderedService(
        name=name,
        template=template,
        values=checked,
        public_values=public,
        objects=objects,
        url=service_url(objects, context.url_scheme),
    )


def _describe(obj: dict) -> str:
    return f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}"


def _typed(text: str):
    """A value as YAML would read it, limited to scalars: int, float, bool or str."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, (bool, int, float)):
        return value
    return text


class _Substitution(string.Template):
    # Karvdash's variables are identifiers; $$ is a literal $
    idpattern = r"[A-Za-z_][A-Za-z0-9_]*"
    flags = 0


def _substitute(node, values: dict[str, str], expected: dict[str, type], where: str, budget: list[int],
                key: str = ""):
    """A copy of ``node`` with the values in; ``key`` is the mapping key
    ``node`` is the value of (it bounds whole numbers), ``budget`` the
    characters rendered strings may still take."""
    if isinstance(node, dict):
        result = {}
        for name, value in node.items():
            new_key = _substitute_text(name, values, budget) if isinstance(name, str) else name
            if new_key in result:
                raise ValuesError(None, f"{where}: two keys became {new_key!r}")
            result[new_key] = _substitute(value, values, expected, where, budget, str(name))
        return result
    if isinstance(node, list):
        return [_substitute(item, values, expected, where, budget, key) for item in node]
    if isinstance(node, _Reference):
        variable = _reference_name(node)
        if variable not in values:
            return str(node)
        wanted = expected.get(variable, str)
        if wanted is str:
            return _substitute_text(str(node), values, budget)
        return _typed_value(variable, values[variable], wanted, key)
    if isinstance(node, str):
        return _substitute_text(node, values, budget)
    return node


def _substitute_text(text: str, values: dict[str, str], budget: list[int]) -> str:
    # what the references would add, counted before the string is built
    grown = len(text) + sum(
        len(values.get(m.group("named") or m.group("braced") or "", ""))
        for m in _Substitution.pattern.finditer(text)
    )
    budget[0] -= grown
    if budget[0] < 0:
        raise ValuesError(None, f"the rendered objects would be larger than {MAX_RENDERED_CHARS // 1024} KiB")
    return _Substitution(text).safe_substitute(values)


def _typed_value(variable: str, text: str, wanted: type, key: str):
    """A value where a plain reference takes the default's type: a plain
    decimal within the bounds of its key, a decimal number, true or false
    (not YAML's wider forms such as ``1_000``, ``0x10``, ``1:30`` or ``yes``)."""
    if wanted is bool:
        if text not in ("true", "false"):
            raise ValuesError(variable, "must be true or false")
        return text == "true"
    if wanted is float:
        if not _NUMBER.match(text) or len(text) > 32:
            raise ValuesError(variable, "must be a number")
        return float(text)
    if key in PORT_KEYS:
        low, high, what = 1, 65535, " (a port)"
    elif key in REPLICA_KEYS:
        low, high, what = 0, MAX_REPLICAS, f" ({key})"
    else:
        (low, high), what = INTEGER_BOUNDS, ""
    if not _DECIMAL.match(text) or len(text) > 12 or not low <= int(text) <= high:
        raise ValuesError(variable, f"must be a whole number from {low} to {high}{what}")
    return int(text)


def _check_rendered(obj: dict, namespace: str) -> None:
    metadata = obj["metadata"]
    name = metadata["name"]
    if not isinstance(name, str) or not DNS_SUBDOMAIN.match(name):
        raise ValuesError("NAME", f"gives {obj['kind']} the name {name!r}, which is not a valid object name")
    if metadata.get("namespace", namespace) != namespace:
        # only $NAMESPACE passes parse_template; this guards the rendering itself
        raise ValuesError(None, f"{obj['kind']} {name} would leave namespace {namespace}")
    for key, value in (metadata.get("labels") or {}).items():
        if not isinstance(value, str) or not LABEL_VALUE.match(value):
            raise ValuesError(None, f"{obj['kind']} {name}: label {key} would get the invalid value {value!r}")


def _merge(mapping: dict, key: str, extra: dict) -> None:
    current = mapping.get(key)
    if not isinstance(current, dict):
        current = {}
    mapping[key] = {**current, **extra}


def _label_pod_template(obj: dict, labels: dict, datasets: bool) -> None:
    path = POD_TEMPLATE_PATHS.get(obj["kind"])
    if not path or not obj.get("apiVersion", "").startswith(("apps/", "batch/")):
        return
    node = obj
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return
    metadata = node.setdefault("metadata", {})
    pod_labels = {OWNER_LABEL: labels[OWNER_LABEL], INSTANCE_LABEL: labels[INSTANCE_LABEL]}
    if not datasets:
        pod_labels[DATASETS_LABEL] = "false"
    _merge(metadata, "labels", pod_labels)


def _prepare_ingress(obj: dict, auth: bool, context: RenderContext) -> None:
    spec = obj.setdefault("spec", {})
    if context.ingress_class:
        spec.setdefault("ingressClassName", context.ingress_class)
    if auth and context.auth_url:
        _merge(
            obj["metadata"],
            "annotations",
            {AUTH_URL_ANNOTATION: context.auth_url, AUTH_SIGNIN_ANNOTATION: context.signin_url},
        )


def service_url(objects: list[dict], scheme: str = "https") -> str:
    """URL of a service: the first host of the Ingress named like the first
    Service (Karvdash's rule), else of the first Ingress; '' without one."""
    ingresses = [o for o in objects if o.get("kind") == "Ingress"]
    if not ingresses:
        return ""
    services = [o for o in objects if o.get("kind") == "Service" and o.get("apiVersion") == "v1"]
    chosen = ingresses[0]
    if services:
        for ingress in ingresses:
            if ingress["metadata"]["name"] == services[0]["metadata"]["name"]:
                chosen = ingress
                break
    for rule in chosen.get("spec", {}).get("rules", []) or []:
        if rule.get("host"):
            return f"{scheme}://{rule['host']}"
    return ""
