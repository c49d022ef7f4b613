"""What a migration from Karvdash does, as data: :func:`make_plan` turns
what was read from Karvdash (:class:`Source`) and from the hub
(:class:`Target`) into :class:`Step` objects, each with its outcome
(``create``, ``update``, ``unchanged`` or ``skip`` with a reason), and
:func:`report` into the lines printed at the end. No I/O here: ``target``
carries the steps out, and a second run finds everything in place.

Karvdash's shapes (learnt from its source): accounts are Django users
(``auth_user``), each with at most one API token (``dashboard_apitoken``);
a user's namespace is ``karvdash-<user>`` labelled ``karvdash: enabled``;
user templates are ``Template`` objects of the group
``karvdash.carv.ics.forth.gr`` with the YAML text base64-encoded in
``spec.data``; the Service of a running service carries the label
``karvdash-template`` (the template's id) and the annotation
``karvdash-values`` (its values as JSON); pods (or pod templates) labelled
``karvdash-no-datasets`` get no datasets.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import Counter
from dataclasses import dataclass, field

from karvdash_hub.accounts.imports import email_problem
from karvdash_hub.core import labels
from karvdash_hub.core.scopes import user_scopes
from karvdash_hub.core.settings import USERNAME_PATTERN
from karvdash_hub.services import templates as st

from . import passwords

OLD_TEMPLATE_GROUP = "karvdash.carv.ics.forth.gr"
OLD_TEMPLATE_VERSION = "v1"
OLD_TEMPLATE_PLURAL = "templates"
OLD_TEMPLATE_LABEL = "karvdash-template"
OLD_VALUES_ANNOTATION = "karvdash-values"
OLD_NO_DATASETS_LABEL = "karvdash-no-datasets"
OLD_NAMESPACE_PREFIX = "karvdash-"
TOKEN_NOTE = "migrated from Karvdash"
# JupyterHub refuses shorter token values (orm.APIToken.min_length)
MIN_TOKEN_LENGTH = 8
# the workload kinds of a service and where their pod template is
WORKLOAD_KINDS = {kind: path for kind, path in st.POD_TEMPLATE_PATHS.items() if kind != "ReplicaSet"}
KINDS = ("user", "token", "template", "namespace", "service", "datasets opt-out")
RECORD_PART = "record"


# --- what was read -------------------------------------------------------------------------


@dataclass(frozen=True)
class OldUser:
    name: str
    email: str
    password: str
    admin: bool
    active: bool


@dataclass(frozen=True)
class OldToken:
    owner: str
    value: str


@dataclass(frozen=True)
class KubeObject:
    """An object of a user's namespace, as the API server gave it (a dict)."""

    body: dict

    @property
    def api_version(self) -> str:
        return self.body.get("apiVersion", "")

    @property
    def kind(self) -> str:
        return self.body.get("kind", "")

    @property
    def name(self) -> str:
        return self.body.get("metadata", {}).get("name", "")

    @property
    def namespace(self) -> str:
        return self.body.get("metadata", {}).get("namespace", "")

    @property
    def labels(self) -> dict:
        return self.body.get("metadata", {}).get("labels") or {}

    @property
    def annotations(self) -> dict:
        return self.body.get("metadata", {}).get("annotations") or {}

    def pod_template_labels(self) -> dict | None:
        """The labels of the pod template of a workload (None for other kinds)."""
        node = self.body
        for key in WORKLOAD_KINDS.get(self.kind, ()) or (None,):
            if key is None or not isinstance(node, dict):
                return None
            node = node.get(key)
        if not isinstance(node, dict):
            return None
        return (node.get("metadata") or {}).get("labels") or {}


@dataclass
class Source:
    """Karvdash's state: accounts and tokens from its database; per user
    namespace (by name) its labels and its objects, and its old templates."""

    users: list[OldUser]
    tokens: list[OldToken]
    namespaces: dict[str, dict] = field(default_factory=dict)
    objects: dict[str, list[KubeObject]] = field(default_factory=dict)
    old_templates: dict[str, list[KubeObject]] = field(default_factory=dict)


@dataclass
class Target:
    """What the hub has already: account names (hub users and
    NativeAuthenticator accounts), their emails, the owner of each old
    token value the hub knows, the product's templates (id -> text) and
    service records (names) per namespace, and the template names of the
    shipped and admin templates (id -> name)."""

    accounts: set[str]
    emails: set[str]
    token_owners: dict[str, str]
    templates: dict[str, dict[str, str]] = field(default_factory=dict)
    records: dict[str, dict[str, dict]] = field(default_factory=dict)
    file_templates: dict[str, str] = field(default_factory=dict)
    # the product's namespace of a user (namespaceTemplate), and the URL scheme of services
    namespace_of: object = None
    url_scheme: str = "https"


# --- what to do ----------------------------------------------------------------------------


@dataclass
class Step:
    kind: str
    subject: str
    outcome: str  # create, update, unchanged, skip
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    # what ``target`` needs to carry the step out
    data: dict = field(default_factory=dict)

    def line(self) -> str:
        text = f"{self.outcome:9} {self.kind} {self.subject}"
        if self.reason:
            text += f": {self.reason}"
        return text


@dataclass
class Plan:
    steps: list[Step]

    @property
    def changes(self) -> list[Step]:
        return [s for s in self.steps if s.outcome in ("create", "update")]

    def of(self, kind: str) -> list[Step]:
        return [s for s in self.steps if s.kind == kind]


def valid_username(name: str) -> bool:
    return bool(re.match(USERNAME_PATTERN, name))


def make_plan(source: Source, target: Target) -> Plan:
    steps: list[Step] = []
    migrated: dict[str, OldUser] = {}
    emails = {e.lower() for e in target.emails}
    for user in sorted(source.users, key=lambda u: u.name):
        step = _user_step(user, target, emails)
        steps.append(step)
        if step.outcome != "skip":
            migrated[user.name] = user
    steps += [_token_step(token, migrated, source.users, target) for token in sorted(
        source.tokens, key=lambda t: t.owner)]
    for username in sorted(migrated):
        steps += _namespace_steps(username, source, target)
    # namespaces that look like a user's whose user is not brought over
    for namespace in sorted(source.namespaces):
        owner = namespace[len(OLD_NAMESPACE_PREFIX):]
        if owner not in migrated:
            steps.append(Step("namespace", namespace, "skip", f"no account {owner!r} is brought over"))
    return Plan(steps)


def _user_step(user: OldUser, target: Target, emails: set[str]) -> Step:
    subject = user.name
    if not valid_username(user.name):
        return Step("user", repr(subject), "skip", "not a hub username (1 to 32 lowercase letters and digits)")
    if user.name in target.accounts:
        return Step("user", subject, "unchanged", "a hub account already (left as it is)")
    notes = []
    email = user.email.strip()
    if email and email_problem(email):
        notes.append(f"email {email!r} is not one the hub accepts: left out")
        email = ""
    elif email and email.lower() in emails:
        notes.append(f"email {email} belongs to another hub account: left out")
        email = ""
    elif email:
        emails.add(email.lower())
    if passwords.is_django_hash(user.password):
        password = user.password
    else:
        password = ""
        kind = passwords.algorithm(user.password)
        if kind:
            notes.append(f"its password hash ({kind}) cannot be checked by the hub: an administrator sets a new one")
        else:
            notes.append("no password in Karvdash (single sign-on or unusable): an administrator sets one")
    if not user.active:
        notes.append("inactive in Karvdash: waits for approval on the Sign-ups page")
    return Step("user", subject, "create", notes=notes, data={
        "name": user.name, "email": email, "password": password, "admin": user.admin, "approved": user.active,
    })


def _token_step(token: OldToken, migrated: dict[str, OldUser], users: list[OldUser], target: Target) -> Step:
    subject = f"of {token.owner} ({token.value[:4]}...)"
    owner = target.token_owners.get(token.value)
    if owner == token.owner:
        return Step("token", subject, "unchanged", "the hub has it already")
    if owner:
        return Step("token", subject, "skip", "the hub has this token value for another account")
    if token.owner not in migrated:
        return Step("token", subject, "skip", f"account {token.owner!r} is not brought over")
    if not migrated[token.owner].active:
        return Step("token", subject, "skip", "the account is inactive in Karvdash (new tokens once approved)")
    if len(token.value) < MIN_TOKEN_LENGTH:
        return Step("token", subject, "skip", f"shorter than the {MIN_TOKEN_LENGTH} characters the hub needs")
    return Step("token", subject, "create", data={
        "owner": token.owner, "value": token.value, "scopes": user_scopes(), "note": TOKEN_NOTE,
    })


def _namespace_steps(username: str, source: Source, target: Target) -> list[Step]:
    old_namespace = OLD_NAMESPACE_PREFIX + username
    if old_namespace not in source.namespaces:
        return []
    if target.namespace_of(username) != old_namespace:
        return [Step("namespace", old_namespace, "skip",
                     f"the hub's namespace of {username} is {target.namespace_of(username)} (namespaceTemplate): "
                     "its templates and services stay where they are")]
    steps = [_label_namespace(username, old_namespace, source.namespaces[old_namespace])]
    if steps[0].outcome == "skip":
        return steps
    templates = _template_steps(username, old_namespace, source, target)
    steps += templates
    names = dict(target.file_templates)
    names.update({s.data["id"]: s.data["name"] for s in templates if s.data})
    names.update({i: _template_name(text) for i, text in target.templates.get(old_namespace, {}).items()})
    objects = source.objects.get(old_namespace, [])
    steps += _service_steps(username, old_namespace, objects, names, target)
    steps += _opt_out_steps(old_namespace, objects)
    return steps


def _label_namespace(username: str, namespace: str, current: dict) -> Step:
    wanted = {labels.NAMESPACE_LABEL: labels.NAMESPACE_LABEL_VALUE, **labels.owner_labels(username)}
    owner = current.get(labels.OWNER_LABEL)
    if owner and owner != username:
        return Step("namespace", namespace, "skip", f"labelled as {owner}'s")
    missing = {k: v for k, v in wanted.items() if current.get(k) != v}
    if not missing:
        return Step("namespace", namespace, "unchanged")
    return Step("namespace", namespace, "update", data={"name": namespace, "labels": missing})


def _template_name(text: str) -> str:
    try:
        return st.parse_template(text, "probe", "user").name
    except st.TemplateError:
        return ""


def _template_steps(username: str, namespace: str, source: Source, target: Target) -> list[Step]:
    steps = []
    existing = target.templates.get(namespace, {})
    for old in sorted(source.old_templates.get(namespace, []), key=lambda o: o.name):
        subject = f"{namespace}/{old.name}"
        try:
            text = base64.b64decode((old.body.get("spec") or {}).get("data") or "", validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            steps.append(Step("template", subject, "skip", "spec.data is not base64 of UTF-8 text"))
            continue
        try:
            parsed = st.parse_template(text, old.name, "user")
        except st.TemplateError as error:
            steps.append(Step("template", subject, "skip", f"not a valid template here: {error}"))
            continue
        if old.name in existing:
            if existing[old.name] == text:
                steps.append(Step("template", subject, "unchanged"))
            else:
                steps.append(Step("template", subject, "skip", "a template with this id and other text exists"))
            continue
        steps.append(Step("template", subject, "create", data={
            "namespace": namespace, "id": old.name, "name": parsed.name, "owner": username, "text": text,
        }))
    return steps


def product_template_id(old_id: str) -> str:
    """Karvdash named shipped templates by file (``zeppelin.template.yaml``),
    the product by id (``zeppelin``); user templates keep their id."""
    if old_id.endswith(st.TEMPLATE_SUFFIX):
        return old_id[: -len(st.TEMPLATE_SUFFIX)]
    return old_id


def _service_steps(username: str, namespace: str, objects: list[KubeObject], template_names: dict[str, str],
                   target: Target) -> list[Step]:
    steps = []
    records = target.records.get(namespace, {})
    services = [o for o in objects if o.kind == "Service" and OLD_TEMPLATE_LABEL in o.labels]
    for service in sorted(services, key=lambda o: o.name):
        name = service.name
        subject = f"{namespace}/{name}"
        template_id = product_template_id(service.labels[OLD_TEMPLATE_LABEL])
        if not st.TEMPLATE_ID.match(template_id):
            steps.append(Step("service", subject, "skip", f"template id {template_id!r} is not one the hub can label"))
            continue
        parts = _service_parts(service, objects)
        wanted = labels.instance_labels(username, name, template_id)
        try:
            values = json.loads(service.annotations.get(OLD_VALUES_ANNOTATION) or "{}")
        except ValueError:
            values = {}
        if not isinstance(values, dict):
            values = {}
        values_text = json.dumps(values, sort_keys=True, separators=(",", ":"))
        record = records.get(name)
        if record is not None and (record.get(labels.OWNER_LABEL), record.get(labels.INSTANCE_PART_LABEL)) != (
                username, RECORD_PART):
            steps.append(Step("service", subject, "skip", "a ConfigMap of the record's name exists and is not its record"))
            continue
        patches = []
        for part in parts:
            patch = _label_patch(part, wanted, values_text)
            if patch:
                patches.append({"apiVersion": part.api_version, "kind": part.kind, "name": part.name, "patch": patch})
        if record is not None and not patches:
            steps.append(Step("service", subject, "unchanged"))
            continue
        listed = [[p.api_version, p.kind, p.name] for p in parts if p.kind != "Pod"]
        data = {
            "namespace": namespace, "name": name, "owner": username, "template": template_id, "patches": patches,
            "record": None if record is not None else {
                "labels": labels.instance_labels(username, name, template_id, RECORD_PART),
                "data": {
                    "template": template_id,
                    "template-name": template_names.get(template_id, template_id),
                    "state": "created",
                    "auth": "false",
                    "url": st.service_url([p.body for p in parts], target.url_scheme),
                    "values": values_text,
                    "objects": json.dumps(listed),
                    "prefix": "",
                    "adopted-from": "karvdash",
                },
            },
        }
        notes = [f"{len(patches)} objects labelled"] if patches else []
        steps.append(Step("service", subject, "create" if record is None else "update", notes=notes, data=data))
    return steps


def _service_parts(service: KubeObject, objects: list[KubeObject]) -> list[KubeObject]:
    """The objects of an old service: its Service, the Ingress of its name,
    the workloads of its name or labelled ``app=<name>`` and their pods."""
    name = service.name

    def belongs(obj: KubeObject) -> bool:
        if obj.kind == "Ingress":
            return obj.name == name
        if obj.kind in WORKLOAD_KINDS:
            return obj.name == name or obj.labels.get("app") == name
        return obj.kind == "Pod" and obj.labels.get("app") == name

    return [service, *(obj for obj in objects if obj is not service and belongs(obj))]


def _label_patch(obj: KubeObject, wanted: dict, values_text: str) -> dict:
    """The merge patch that labels ``obj`` as the instance's (empty when it is)."""
    patch: dict = {}
    missing = {k: v for k, v in wanted.items() if obj.labels.get(k) != v}
    if obj.kind == "Pod":
        # pods only carry who they belong to (the list's status, exec)
        missing = {k: v for k, v in missing.items() if k in (labels.OWNER_LABEL, labels.INSTANCE_LABEL)}
    if missing:
        patch["metadata"] = {"labels": missing}
    if obj.kind != "Pod" and obj.annotations.get(labels.VALUES_ANNOTATION) != values_text:
        patch.setdefault("metadata", {})["annotations"] = {labels.VALUES_ANNOTATION: values_text}
    return patch


def _opt_out_steps(namespace: str, objects: list[KubeObject]) -> list[Step]:
    """Pods and workload pod templates labelled ``karvdash-no-datasets`` get
    the product's opt-out label: a pod at once; a pod template too, which
    rolls the workload's pods once (new pods must keep opting out)."""
    steps = []
    for obj in sorted(objects, key=lambda o: (o.kind, o.name)):
        subject = f"{namespace}/{obj.kind.lower()}/{obj.name}"
        if obj.kind == "Pod":
            current = obj.labels
            path: tuple = ("metadata",)
        elif obj.pod_template_labels() is not None:
            current = obj.pod_template_labels()
            path = (*WORKLOAD_KINDS[obj.kind], "metadata")
        else:
            continue
        if OLD_NO_DATASETS_LABEL not in current:
            continue
        if str(current.get(labels.DATASETS_LABEL, "")).lower() == "false":
            steps.append(Step("datasets opt-out", subject, "unchanged"))
            continue
        patch = _nest(path, {labels.DATASETS_LABEL: "false"})
        notes = [] if obj.kind == "Pod" else ["its pods restart once with the label"]
        steps.append(Step("datasets opt-out", subject, "update", notes=notes, data={
            "namespace": namespace, "apiVersion": obj.api_version, "kind": obj.kind, "name": obj.name,
            "patch": patch,
        }))
    return steps


def _nest(path: tuple, new_labels: dict) -> dict:
    """``{"spec": {"template": {"metadata": {"labels": new_labels}}}}`` for the path of a pod template."""
    node: dict = {"labels": new_labels}
    for key in reversed(path):
        node = {key: node}
    return node


# --- what is said ---------------------------------------------------------------------------


DONE_WORDS = {"create": "created", "update": "updated", "unchanged": "unchanged", "skip": "skipped"}
DRY_RUN_WORDS = {**DONE_WORDS, "create": "to create", "update": "to update"}


def report(plan: Plan, dry_run: bool) -> list[str]:
    """Every step, then the counts per kind and whether anything changed."""
    lines = []
    for step in plan.steps:
        lines.append(step.line())
        lines += [f"          - {note}" for note in step.notes]
    lines.append("")
    for kind in KINDS:
        counted = Counter(s.outcome for s in plan.of(kind))
        if counted:
            words = DRY_RUN_WORDS if dry_run else DONE_WORDS
            parts = [f"{counted[o]} {words[o]}" for o in words if counted[o]]
            lines.append(f"{kind}s: {', '.join(parts)}")
    if not plan.changes:
        lines.append("Nothing to change: everything from Karvdash is in place already.")
    elif dry_run:
        lines.append(f"Dry run: {len(plan.changes)} changes would be made; nothing was changed.")
    else:
        lines.append(f"Done: {len(plan.changes)} changes made.")
    return lines
