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

import copy
import difflib
import json
import re
import secrets
import string
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Iterable

import jsonschema
import yaml

from karvdash_hub.core.labels import DATASETS_LABEL, INSTANCE_LABEL, OWNER_LABEL, VALUES_ANNOTATION, instance_labels
from karvdash_hub.core.names import DNS_LABEL, DNS_SUBDOMAIN, LABEL_VALUE, SUFFIX_LENGTH
from karvdash_hub.core.names import free_name as _free_name

TEMPLATE_SUFFIX = ".template.yaml"
# a template is a text file of a few kilobytes; anything much larger is refused
MAX_TEMPLATE_BYTES = 256 * 1024

# Filled by the system, hidden from the form.
RESERVED_VARIABLES = ("NAMESPACE", "HOSTNAME", "REGISTRY", "PRIVATE", "SHARED")

VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# NAME ends up in object names, label values and host names: a DNS-1035
# label (Service names must start with a letter), short enough to take a
# "-<user>" host suffix and "-xxxx" when taken.
NAME_PATTERN = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME_LENGTH = 40
MAX_VALUE_LENGTH = 1024
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


class _TemplateLoader(yaml.SafeLoader):
    """SafeLoader that marks plain whole-variable scalars as :class:`_Reference`."""


_WHOLE_REFERENCE = re.compile(r"^\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})$")


def _construct_str(loader, node):
    value = loader.construct_scalar(node)
    if node.style is None and _WHOLE_REFERENCE.match(value):
        return _Reference(value)
    return value


_TemplateLoader.add_constructor("tag:yaml.org,2002:str", _construct_str)


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


def parse_template(text: str, template_id: str, source: str, filename: str = "") -> ServiceTemplate:
    """Parse and validate a template; raise TemplateError saying what is wrong."""
    if not TEMPLATE_ID.match(template_id):
        raise TemplateError(f"{template_id!r} is not a template id (lowercase letters, digits and '-')")
    try:
        documents = [d for d in yaml.load_all(text, Loader=_TemplateLoader) if d is not None]
    except yaml.YAMLError as e:
        raise TemplateError(f"not valid YAML: {e}") from None
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
    seen = set()
    for index, obj in enumerate(objects, start=1):
        where = _check_object(obj, index, singleton)
        key = (_api_group(obj["apiVersion"]), obj["kind"], obj["metadata"]["name"])
        if key in seen:
            raise TemplateError(f"{where}: another object has the same kind and name")
        seen.add(key)
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
    )


def _check_header(header: dict) -> None:
    validator = jsonschema.Draft202012Validator(TEMPLATE_SCHEMA)
    errors = sorted(validator.iter_errors(header), key=lambda e: list(e.absolute_path))
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


def _mentions(text: str, variable: str) -> bool:
    return re.search(rf"\$(?:{variable}\b|\{{{variable}\}})", text) is not None


def _check_object(obj, index: int, singleton: bool) -> str:
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
    if not singleton and not _mentions(metadata["name"], "NAME"):
        raise TemplateError(
            f"{where}: metadata.name must contain $NAME, so that two services from this template do not "
            "share objects (or mark the template singleton)"
        )
    return where


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
        if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in value):
            raise ValuesError(name, "must not contain control characters or line breaks")
        value = value.strip()
        if not value:
            raise ValuesError(name, "must not be empty")
        if len(value) > MAX_VALUE_LENGTH:
            raise ValuesError(name, f"is longer than {MAX_VALUE_LENGTH} characters")
        checked[name] = value
    check_name(checked["NAME"])
    return checked


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
    checked = check_values(template, values)
    substitutions = {**{v.name: v.default for v in template.variables if v.reserved}, **checked}
    substitutions.update(context.reserved_values())
    # the type a whole-reference scalar must have, from the template's defaults
    expected = {
        name: type(_typed(value)) for name, value in
        {**{v.name: v.default for v in template.variables}, **context.reserved_values()}.items()
    }
    name = checked["NAME"]
    labels = instance_labels(context.username, name, template.id)
    secret = {v.name for v in template.variables if v.secret}
    public = {k: v for k, v in checked.items() if k not in secret}
    annotations = {VALUES_ANNOTATION: json.dumps(public, sort_keys=True, separators=(",", ":"))}
    objects = []
    for original in template.objects:
        obj = _substitute(copy.deepcopy(original), substitutions, expected, where=_describe(original))
        _check_rendered(obj, context.namespace)
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


def _substitute(node, values: dict[str, str], expected: dict[str, type], where: str):
    if isinstance(node, dict):
        result = {}
        for key, value in node.items():
            new_key = _Substitution(key).safe_substitute(values) if isinstance(key, str) else key
            if new_key in result:
                raise ValuesError(None, f"{where}: two keys became {new_key!r}")
            result[new_key] = _substitute(value, values, expected, where)
        return result
    if isinstance(node, list):
        return [_substitute(item, values, expected, where) for item in node]
    if isinstance(node, _Reference):
        variable = _reference_name(node)
        if variable not in values:
            return str(node)
        value = _typed(values[variable])
        wanted = expected.get(variable, str)
        if wanted is str:
            return values[variable]
        if wanted is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not wanted:
            kind = {int: "a whole number", float: "a number", bool: "true or false"}[wanted]
            raise ValuesError(variable, f"must be {kind}")
        return value
    if isinstance(node, str):
        return _Substitution(node).safe_substitute(values)
    return node


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
