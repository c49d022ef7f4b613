"""Datashim ``Dataset`` objects, as plain dicts: the five kinds of dataset a
user can add, their validation, the Secret that holds S3 credentials and what
the dashboard shows (and lets people download) of a dataset.

Pure functions: ``store.py`` sends what they build. Credentials never
go into the Dataset itself: it names a Secret (``secret-name``) with the
``accessKeyID`` and ``secretAccessKey`` keys Datashim reads, and every view of
a Dataset (list, YAML download) leaves them out.
"""

from __future__ import annotations

import base64
import copy
import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import yaml

from karvdash_hub.core import names
from karvdash_hub.core.errors import KarvdashError
from karvdash_hub.core.labels import owner_labels
from karvdash_hub.core.names import DNS_LABEL

DATASET_KIND = "Dataset"
DATASET_VERSION = "v1alpha1"
DATASET_PLURAL = "datasets"
# the karvdash type of a Dataset (Datashim's own type does not say local or remote)
TYPE_ANNOTATION = "karvdash.io/dataset-type"
# on the credentials Secret: the Dataset it belongs to
DATASET_LABEL = "karvdash.io/dataset"
SECRET_PREFIX = "karvdash-dataset-"
ACCESS_KEY = "accessKeyID"
SECRET_KEY = "secretAccessKey"
REDACTED = "<redacted>"
# spec.local keys that hold credentials when someone wrote them inline
CREDENTIAL_KEYS = (ACCESS_KEY, SECRET_KEY)

# a dataset name is a PVC name (Datashim) and part of a volume name: a DNS label
MAX_NAME = 63
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
REGION = re.compile(r"^[a-z0-9-]{0,32}$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_CREDENTIAL = 1024
MAX_URL = 2048
ARCHIVE_FORMATS = ("application/x-tar",)


class DatasetError(KarvdashError):
    """A dataset request cannot be done."""


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str = "text"  # text, secret, url, service, select, boolean
    required: bool = True
    help: str = ""
    choices: tuple[str, ...] = ()

    def to_json(self) -> dict:
        value = {"name": self.name, "label": self.label, "kind": self.kind, "required": self.required, "help": self.help}
        if self.choices:
            value["choices"] = list(self.choices)
        return value


NAME_FIELD = Field("name", "Name", help="lowercase letters, digits and '-'; a taken name gets a suffix")
BUCKET_FIELD = Field("bucket", "Bucket")
S3_CREDENTIALS = (
    Field(ACCESS_KEY, "Access key", kind="secret", help="kept in a Secret, never shown again"),
    Field(SECRET_KEY, "Secret key", kind="secret", help="kept in a Secret, never shown again"),
)
S3_OPTIONS = (
    Field("region", "Region", required=False),
    Field("readonly", "Read-only", kind="boolean", required=False),
)


@dataclass(frozen=True)
class DatasetType:
    id: str
    title: str
    datashim_type: str
    fields: tuple[Field, ...]
    # the service template whose instances serve this type in the user's namespace
    local_template: str = ""
    local_port: int = 0
    description: str = ""

    def to_json(self, services: list[str] = ()) -> dict:
        value = {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "fields": [f.to_json() for f in self.fields],
        }
        if self.local_template:
            value["services"] = list(services)
            value["service_template"] = self.local_template
        return value


SERVICE_FIELD_MINIO = Field("service", "MinIO service", kind="service", help="one of your MinIO services")
SERVICE_FIELD_REDIS = Field("service", "Redis service", kind="service", help="one of your Redis services")

TYPES: dict[str, DatasetType] = {
    t.id: t
    for t in (
        DatasetType(
            "s3-local", "S3 (your MinIO service)", "COS",
            (NAME_FIELD, SERVICE_FIELD_MINIO, BUCKET_FIELD, *S3_CREDENTIALS, *S3_OPTIONS),
            local_template="minio", local_port=9000,
            description="A bucket of a MinIO service you started from the MinIO template.",
        ),
        DatasetType(
            "s3-remote", "S3 (remote)", "COS",
            (NAME_FIELD, Field("endpoint", "Endpoint URL", kind="url", help="e.g. https://s3.example.org"),
             BUCKET_FIELD, *S3_CREDENTIALS, *S3_OPTIONS),
            description="A bucket of any S3-compatible object store.",
        ),
        DatasetType(
            "h3-local", "H3 (your Redis service)", "H3",
            (NAME_FIELD, SERVICE_FIELD_REDIS, BUCKET_FIELD),
            local_template="redis", local_port=6379,
            description="An H3 bucket in a Redis service you started from the Redis template.",
        ),
        DatasetType(
            "h3-remote", "H3 (remote)", "H3",
            (NAME_FIELD, Field("storageUri", "Redis URI", kind="url", help="redis://host:port, without a password"),
             BUCKET_FIELD),
            description="An H3 bucket in any Redis server.",
        ),
        DatasetType(
            "archive", "Archive", "ARCHIVE",
            (NAME_FIELD, Field("url", "Archive URL", kind="url", help="an http(s) URL of a .tar file"),
             Field("format", "Format", kind="select", choices=ARCHIVE_FORMATS, required=False)),
            description="A tar archive on the web, unpacked into a dataset.",
        ),
    )
}


def enabled_types(disabled: list[str] | tuple[str, ...]) -> list[DatasetType]:
    """The types users may add (``disabledDatasetTemplates`` removed), in menu order."""
    return [t for t in TYPES.values() if t.id not in set(disabled)]


def dataset_type(type_id, disabled: list[str] | tuple[str, ...] = (), status: int = 400) -> DatasetType:
    """The type ``type_id``; an unknown or disabled one is refused with
    ``status`` (400 in a request body, 404 in an address)."""
    if not isinstance(type_id, str) or type_id not in TYPES:
        raise DatasetError(status, f"unknown dataset type {type_id!r}; types are {', '.join(TYPES)}")
    if type_id in disabled:
        raise DatasetError(status, f"dataset type {type_id} is disabled on this deployment")
    return TYPES[type_id]


# --- names -------------------------------------------------------------------------------


def check_name(name) -> str:
    if not isinstance(name, str) or not name:
        raise DatasetError(400, "name: a dataset needs a name")
    if len(name) > MAX_NAME or not DNS_LABEL.match(name):
        raise DatasetError(
            400, f"name: {name!r} is not a valid dataset name (up to {MAX_NAME} lowercase letters, "
            "digits and '-', starting and ending with a letter or digit)"
        )
    return name


def free_name(wanted: str, taken, choose=secrets.choice) -> str:
    """``wanted`` if it is free, else ``wanted-xxxx`` with a random suffix
    (shortened so the result is still a valid name)."""
    return names.free_name(
        wanted,
        taken,
        limit=MAX_NAME,
        error=DatasetError(409, f"no free name like {wanted!r}"),
        suffix=lambda: names.random_suffix(choose),
    )


def secret_name(dataset: str) -> str:
    return SECRET_PREFIX + dataset


# --- values --------------------------------------------------------------------------------


@dataclass
class DatasetRequest:
    """A checked request: the dataset's type, name, ``spec.local`` (no
    credentials) and, for S3, the credentials for its Secret."""

    type: DatasetType
    name: str
    local: dict
    credentials: dict = field(default_factory=dict)


def _text(values: dict, name: str, required: bool = True, limit: int = 256) -> str:
    value = values.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise DatasetError(400, f"{name}: must be text")
    value = value.strip()
    if required and not value:
        raise DatasetError(400, f"{name}: is required")
    if CONTROL.search(value):
        raise DatasetError(400, f"{name}: cannot contain control characters")
    if len(value) > limit:
        raise DatasetError(400, f"{name}: is longer than {limit} characters")
    return value


def _url(values: dict, name: str, schemes: tuple[str, ...]) -> str:
    value = _text(values, name, limit=MAX_URL)
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise DatasetError(400, f"{name}: {value!r} is not a {' or '.join(s + '://' for s in schemes)} URL with a host")
    if parts.username is not None or parts.password is not None:
        raise DatasetError(
            400, f"{name}: must not contain a user name or password (Datashim would keep them in clear)"
        )
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise DatasetError(400, f"{name}: {value!r} has a bad port") from None
    if any(c.isspace() for c in value):
        raise DatasetError(400, f"{name}: cannot contain spaces")
    return value


def _bucket(values: dict) -> str:
    value = _text(values, "bucket")
    if not BUCKET.match(value) or ".." in value:
        raise DatasetError(400, f"bucket: {value!r} is not a bucket name (3 to 63 lowercase letters, digits, '.' and '-')")
    return value


def _boolean(values: dict, name: str) -> bool:
    value = values.get(name, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("", "false", "no", "off", "0"):
        return False
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1"):
        return True
    raise DatasetError(400, f"{name}: must be true or false")


def _credentials(values: dict) -> dict:
    return {key: _text(values, key, limit=MAX_CREDENTIAL) for key in CREDENTIAL_KEYS}


def _service_endpoint(values: dict, kind: DatasetType, services: dict[str, str]) -> str:
    service = _text(values, "service")
    if service not in services:
        known = ", ".join(sorted(services)) or "none"
        raise DatasetError(
            400, f"service: you have no {kind.local_template} service named {service!r} (yours: {known})"
        )
    return services[service]


def check_request(body: dict, *, disabled=(), local_services: dict[str, dict[str, str]] | None = None) -> DatasetRequest:
    """Validate a request to add a dataset.

    ``body`` has ``type``, ``name`` and the type's fields;
    ``local_services`` maps a service template id to the user's instances of
    it (service name -> in-cluster endpoint).
    """
    if not isinstance(body, dict):
        raise DatasetError(400, "send a JSON object with type, name and the type's fields")
    kind = dataset_type(body.get("type"), disabled)
    known = {f.name for f in kind.fields} | {"type"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise DatasetError(400, f"{', '.join(unknown)}: not a field of {kind.id} datasets")
    name = check_name(body.get("name"))
    services = (local_services or {}).get(kind.local_template, {})
    local: dict = {"type": kind.datashim_type}
    credentials: dict = {}
    if kind.datashim_type == "COS":
        if kind.local_template:
            local["endpoint"] = _service_endpoint(body, kind, services)
        else:
            local["endpoint"] = _url(body, "endpoint", ("http", "https"))
        local["bucket"] = _bucket(body)
        region = _text(body, "region", required=False, limit=32)
        if not REGION.match(region):
            raise DatasetError(400, f"region: {region!r} is not a region name (lowercase letters, digits and '-')")
        if region:
            local["region"] = region
        if _boolean(body, "readonly"):
            local["readonly"] = "true"
        credentials = _credentials(body)
        local["secret-name"] = secret_name(name)
    elif kind.datashim_type == "H3":
        if kind.local_template:
            local["storageUri"] = _service_endpoint(body, kind, services)
        else:
            local["storageUri"] = _url(body, "storageUri", ("redis",))
        local["bucket"] = _bucket(body)
    else:
        local["url"] = _url(body, "url", ("http", "https"))
        archive_format = _text(body, "format", required=False) or ARCHIVE_FORMATS[0]
        if archive_format not in ARCHIVE_FORMATS:
            raise DatasetError(400, f"format: must be one of {', '.join(ARCHIVE_FORMATS)}")
        local["format"] = archive_format
    return DatasetRequest(type=kind, name=name, local=local, credentials=credentials)


def with_name(request: DatasetRequest, name: str) -> DatasetRequest:
    """The same request under another name (a taken name got a suffix)."""
    local = dict(request.local)
    if "secret-name" in local:
        local["secret-name"] = secret_name(name)
    return DatasetRequest(type=request.type, name=name, local=local, credentials=request.credentials)


# --- objects --------------------------------------------------------------------------------


def dataset_object(group: str, request: DatasetRequest, namespace: str, owner: str) -> dict:
    """The Datashim Dataset of ``request`` in ``namespace``."""
    return {
        "apiVersion": f"{group}/{DATASET_VERSION}",
        "kind": DATASET_KIND,
        "metadata": {
            "name": request.name,
            "namespace": namespace,
            "labels": owner_labels(owner),
            "annotations": {TYPE_ANNOTATION: request.type.id},
        },
        "spec": {"local": dict(request.local)},
    }


def credentials_secret(request: DatasetRequest, namespace: str, owner: str) -> dict:
    """The Secret the Dataset names in ``secret-name`` (S3 types only)."""
    data = {key: base64.b64encode(value.encode()).decode() for key, value in request.credentials.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(request.name),
            "namespace": namespace,
            "labels": {**owner_labels(owner), DATASET_LABEL: request.name},
        },
        "data": data,
    }


def owner_reference(dataset: dict) -> dict:
    """Makes the credentials Secret go when its Dataset goes (garbage collector)."""
    return {
        "apiVersion": dataset["apiVersion"],
        "kind": DATASET_KIND,
        "name": dataset["metadata"]["name"],
        "uid": dataset["metadata"]["uid"],
    }


# --- what people see -------------------------------------------------------------------------


def _type_id(obj: dict) -> str:
    annotated = ((obj.get("metadata") or {}).get("annotations") or {}).get(TYPE_ANNOTATION, "")
    if annotated in TYPES:
        return annotated
    datashim = (((obj.get("spec") or {}).get("local") or {}).get("type") or "").upper()
    return {"COS": "s3-remote", "H3": "h3-remote", "ARCHIVE": "archive"}.get(datashim, "")


def summary(obj: dict) -> dict:
    """One row of the dataset list (never a credential)."""
    metadata = obj.get("metadata") or {}
    local = (obj.get("spec") or {}).get("local") or {}
    type_id = _type_id(obj)
    endpoint = local.get("endpoint") or local.get("storageUri") or local.get("url") or ""
    status = ((obj.get("status") or {}).get("provision") or {}).get("status", "")
    return {
        "name": metadata.get("name", ""),
        "type": type_id,
        "type_title": TYPES[type_id].title if type_id in TYPES else str(local.get("type", "")),
        "endpoint": endpoint,
        "bucket": local.get("bucket", ""),
        "secret": local.get("secret-name", ""),
        "readonly": str(local.get("readonly", "")).lower() == "true",
        "created": metadata.get("creationTimestamp", ""),
        "status": status,
    }


def redacted(obj: dict) -> dict:
    """The Dataset as a person may download it: no server-side bookkeeping,
    and any credential written inline replaced by ``<redacted>``."""
    clean = copy.deepcopy(obj)
    metadata = clean.get("metadata") or {}
    for key in ("uid", "resourceVersion", "generation", "managedFields", "creationTimestamp", "selfLink"):
        metadata.pop(key, None)
    clean.pop("status", None)
    local = (clean.get("spec") or {}).get("local") or {}
    for key in CREDENTIAL_KEYS:
        if key in local:
            local[key] = REDACTED
    return clean


def dataset_yaml(obj: dict) -> str:
    return yaml.safe_dump(redacted(obj), sort_keys=False, default_flow_style=False)


def local_service_endpoints(services: list[dict], kind: DatasetType, namespace: str) -> dict[str, str]:
    """The user's services of ``kind``'s template (Kubernetes Service dicts)
    and the in-cluster endpoint a dataset of that kind uses for each."""
    endpoints = {}
    scheme = "http" if kind.datashim_type == "COS" else "redis"
    for service in services:
        name = (service.get("metadata") or {}).get("name")
        ports = [p.get("port") for p in (service.get("spec") or {}).get("ports") or []]
        if not name or kind.local_port not in ports:
            continue
        endpoints[name] = f"{scheme}://{name}.{namespace}.svc:{kind.local_port}"
    return endpoints
