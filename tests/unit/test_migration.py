"""The migration from Karvdash, pure parts: Django password hashes (computed
here with Django's documented algorithm) and the plan made from what was read."""

from __future__ import annotations

import base64
import hashlib
import json
from types import SimpleNamespace

import bcrypt
import pytest

from karvdash_hub.core import labels
from karvdash_hub.core.scopes import user_scopes
from karvdash_hub.migration import passwords
from karvdash_hub.migration import plan as mp


def django_hash(password: str, salt: str = "s4ltS4lt", iterations: int = 1000, algorithm: str = "pbkdf2_sha256") -> str:
    """Django's PBKDF2PasswordHasher.encode: algorithm$iterations$salt$base64(pbkdf2_hmac)."""
    digest = {"pbkdf2_sha256": "sha256", "pbkdf2_sha1": "sha1"}[algorithm]
    raw = hashlib.pbkdf2_hmac(digest, password.encode(), salt.encode(), iterations)
    return f"{algorithm}${iterations}${salt}${base64.b64encode(raw).decode()}"


# --- passwords -------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["pbkdf2_sha256", "pbkdf2_sha1"])
def test_django_hashes_are_checked(algorithm):
    stored = django_hash("correct horse", algorithm=algorithm)
    assert passwords.is_django_hash(stored) and passwords.is_django_hash(stored.encode())
    assert passwords.verify("correct horse", stored)
    assert passwords.verify("correct horse", stored.encode())
    assert not passwords.verify("correct hors", stored)
    assert not passwords.verify("", stored)


def test_a_known_django_hash_verifies():
    # the example hash of Django's documentation style, computed independently once:
    # pbkdf2_sha256, 1 iteration, salt "salt", password "password" (RFC 7914's PBKDF2-HMAC-SHA256 vector)
    stored = "pbkdf2_sha256$1$salt$" + base64.b64encode(bytes.fromhex(
        "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b")).decode()
    assert passwords.verify("password", stored)
    assert not passwords.verify("Password", stored)


# `openssl passwd -apr1 -salt Ab12Cd34 old-apr1-pw`, without the leading "$" (Karvdash's apr1 hasher)
APR1_VECTOR = "apr1$Ab12Cd34$/C3xMwrcjB.1XGFqf6313."


def test_karvdash_apr1_hashes_are_checked():
    assert passwords.is_django_hash(APR1_VECTOR) and passwords.algorithm(APR1_VECTOR) == "apr1"
    assert passwords.verify("old-apr1-pw", APR1_VECTOR)
    assert passwords.verify("old-apr1-pw", APR1_VECTOR.encode())
    assert not passwords.verify("old-apr1-pW", APR1_VECTOR)
    info, db = account(APR1_VECTOR), FakeDB()
    assert passwords.upgrade(db, info, "old-apr1-pw") and bcrypt.checkpw(b"old-apr1-pw", info.password)


@pytest.mark.parametrize("stored", [
    "", "!unusablepasswordtext", "md5$salt$abc", "apr1$x$y", "apr1$$", "apr1$toolongsalt$/C3xMwrcjB.1XGFqf6313.",
    "$apr1$Ab12Cd34$/C3xMwrcjB.1XGFqf6313.", "apr1$Ab12Cd34$/C3xMwrcjB.1XGFqf6313.x", "pbkdf2_sha256$abc$salt$AAAA",
    "pbkdf2_sha256$0$salt$" + base64.b64encode(b"x" * 32).decode(),
    "pbkdf2_sha256$99999999999$salt$" + base64.b64encode(b"x" * 32).decode(),
    "pbkdf2_sha256$10$salt$" + base64.b64encode(b"short").decode(),
    "pbkdf2_sha256$10$salt$not base64!",
    "pbkdf2_sha256$10$$" + base64.b64encode(b"x" * 32).decode(),
    bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)),
])
def test_other_texts_are_not_django_hashes(stored):
    assert not passwords.is_django_hash(stored)
    assert not passwords.verify("pw", stored)


def test_algorithm_names_the_kind_of_hash():
    assert passwords.algorithm(django_hash("x")) == "pbkdf2_sha256"
    assert passwords.algorithm("argon2$argon2id$v=19$...") == "argon2"
    assert passwords.algorithm("!abc") == ""
    assert passwords.algorithm("") == ""


class FakeDB:
    """Counts commits; the account object is NativeAuthenticator's UserInfo
    shape (password bytes, is_valid_password) without a database."""

    def __init__(self):
        self.commits = 0

    def commit(self):
        self.commits += 1


def account(stored) -> SimpleNamespace:
    info = SimpleNamespace(password=stored.encode() if isinstance(stored, str) else stored)
    info.is_valid_password = lambda pw: bcrypt.checkpw(pw.encode(), info.password)
    return info


def test_upgrade_replaces_a_matching_django_hash_with_bcrypt():
    info, db = account(django_hash("old-secret-1")), FakeDB()
    assert not passwords.upgrade(db, info, "wrong")
    assert passwords.is_django_hash(info.password) and db.commits == 0
    assert passwords.upgrade(db, info, "old-secret-1")
    assert info.password.startswith(b"$2") and bcrypt.checkpw(b"old-secret-1", info.password)
    assert db.commits == 1
    # once re-hashed, nothing more to do
    assert not passwords.upgrade(db, info, "old-secret-1")
    assert passwords.matches(info, "old-secret-1") and not passwords.matches(info, "wrong")


def test_matches_reads_both_kinds_without_raising():
    assert passwords.matches(account(django_hash("pw-1")), "pw-1")
    assert not passwords.matches(account(django_hash("pw-1")), "pw-2")
    assert not passwords.matches(account(passwords.unusable()), "")


# --- the plan --------------------------------------------------------------------------------


def target(**overrides) -> mp.Target:
    values = {"accounts": {"admin"}, "emails": {"admin@example.org"}, "token_owners": {},
              "file_templates": {"zeppelin": "Zeppelin"}, "namespace_of": lambda user: f"karvdash-{user}",
              "url_scheme": "https"}
    values.update(overrides)
    return mp.Target(**values)


def user(name, **overrides) -> mp.OldUser:
    values = {"name": name, "email": f"{name}@example.org", "password": django_hash("pw"), "admin": False,
              "active": True}
    values.update(overrides)
    return mp.OldUser(**values)


def outcomes(plan: mp.Plan, kind: str) -> dict[str, tuple[str, str]]:
    return {s.subject: (s.outcome, s.reason) for s in plan.of(kind)}


def test_accounts_are_created_skipped_or_left():
    source = mp.Source(users=[
        user("alice", admin=True), user("bob", active=False), user("Carol"), user("dave.smith"),
        user("admin"), user("erin", email="ADMIN@example.org"), user("frank", password="!unusable"),
        user("gina", password="argon2$argon2id$v=19$m=102400,t=2,p=8$c2FsdA$aGFzaA"),
        user("hank", email="not an address"),
    ], tokens=[])
    plan = mp.make_plan(source, target())
    found = outcomes(plan, "user")
    assert found["alice"] == ("create", "")
    assert found["bob"] == ("create", "")
    assert found["'Carol'"][0] == "skip" and "lowercase" in found["'Carol'"][1]
    assert found["'dave.smith'"][0] == "skip"
    assert found["admin"] == ("unchanged", "a hub account already (left as it is)")
    steps = {s.subject: s for s in plan.of("user")}
    assert steps["alice"].data == {"name": "alice", "email": "alice@example.org", "password": django_hash("pw"),
                                   "admin": True, "approved": True}
    assert steps["bob"].data["approved"] is False and "approval" in steps["bob"].notes[0]
    # emails are unique on the hub, in any case
    assert steps["erin"].data["email"] == "" and "another hub account" in steps["erin"].notes[0]
    assert steps["hank"].data["email"] == "" and "not one the hub accepts" in steps["hank"].notes[0]
    # passwords the hub cannot check: the account comes, locked
    assert steps["frank"].data["password"] == "" and "no password" in steps["frank"].notes[0]
    assert steps["gina"].data["password"] == "" and "(argon2)" in steps["gina"].notes[0]


def test_tokens_keep_their_value_and_get_the_dashboard_scopes():
    value = "0123456789abcdef0123456789abcdef01234567"
    source = mp.Source(users=[user("alice"), user("bob", active=False), user("Carol")], tokens=[
        mp.OldToken("alice", value), mp.OldToken("bob", "b" * 40), mp.OldToken("Carol", "c" * 40)])
    plan = mp.make_plan(source, target())
    steps = {s.subject: s for s in plan.of("token")}
    alice = steps["of alice (0123...)"]
    assert alice.outcome == "create"
    assert alice.data == {"owner": "alice", "value": value, "scopes": user_scopes(), "note": "migrated from Karvdash"}
    assert steps["of bob (bbbb...)"].outcome == "skip" and "inactive" in steps["of bob (bbbb...)"].reason
    assert steps["of Carol (cccc...)"].outcome == "skip"
    # known to the hub already: for the same owner unchanged, for another refused
    again = mp.make_plan(source, target(token_owners={value: "alice", "b" * 40: "eve"}))
    steps = {s.subject: s for s in again.of("token")}
    assert steps["of alice (0123...)"].outcome == "unchanged"
    assert steps["of bob (bbbb...)"].reason == "the hub has this token value for another account"


TEMPLATE = """kind: Template
name: My Web
variables:
- name: NAME
  default: web
---
apiVersion: v1
kind: Service
metadata:
  name: $NAME
spec:
  ports:
  - port: 80
"""


def old_template(name: str, text: str, namespace: str = "karvdash-alice") -> mp.KubeObject:
    return mp.KubeObject({"apiVersion": "karvdash.carv.ics.forth.gr/v1", "kind": "Template",
                          "metadata": {"name": name, "namespace": namespace},
                          "spec": {"data": base64.b64encode(text.encode()).decode()}})


def cluster_source(objects=(), templates=(), namespace_labels=None) -> mp.Source:
    return mp.Source(
        users=[user("alice")], tokens=[],
        namespaces={"karvdash-alice": {"karvdash": "enabled"} if namespace_labels is None else namespace_labels},
        objects={"karvdash-alice": list(objects)}, old_templates={"karvdash-alice": list(templates)},
    )


def test_namespaces_get_the_products_labels_once():
    plan = mp.make_plan(cluster_source(), target())
    [step] = plan.of("namespace")
    assert step.outcome == "update"
    assert step.data == {"name": "karvdash-alice", "labels": {
        labels.NAMESPACE_LABEL: labels.NAMESPACE_LABEL_VALUE, **labels.owner_labels("alice")}}
    done = cluster_source(namespace_labels={"karvdash": "enabled", labels.NAMESPACE_LABEL: "enabled",
                                            **labels.owner_labels("alice")})
    assert [s.outcome for s in mp.make_plan(done, target()).of("namespace")] == ["unchanged"]
    other = cluster_source(namespace_labels={labels.OWNER_LABEL: "bob"})
    [refused] = mp.make_plan(other, target()).of("namespace")
    assert (refused.outcome, refused.reason) == ("skip", "labelled as bob's")
    # another namespaceTemplate: the old namespace is not the user's any more
    [elsewhere] = mp.make_plan(cluster_source(), target(namespace_of=lambda u: f"hub-{u}")).of("namespace")
    assert elsewhere.outcome == "skip" and "hub-alice" in elsewhere.reason


def test_namespaces_of_accounts_not_brought_over_are_skipped():
    source = cluster_source()
    source.namespaces["karvdash-zed"] = {"karvdash": "enabled"}
    steps = {s.subject: s for s in mp.make_plan(source, target()).of("namespace")}
    assert steps["karvdash-zed"].outcome == "skip" and "zed" in steps["karvdash-zed"].reason


def test_user_templates_move_to_the_products_group_as_text():
    broken = old_template("broken", "kind: Template\nname: x\n")
    source = cluster_source(templates=[old_template("my-web-abcd", TEMPLATE), broken,
                                       mp.KubeObject({"metadata": {"name": "junk"}, "spec": {"data": "%%%"}})])
    steps = {s.subject: s for s in mp.make_plan(source, target()).of("template")}
    web = steps["karvdash-alice/my-web-abcd"]
    assert web.outcome == "create"
    assert web.data == {"namespace": "karvdash-alice", "id": "my-web-abcd", "name": "My Web", "owner": "alice",
                        "text": TEMPLATE}
    assert steps["karvdash-alice/broken"].outcome == "skip"
    assert "not a valid template" in steps["karvdash-alice/broken"].reason
    assert steps["karvdash-alice/junk"].reason == "spec.data is not base64 of UTF-8 text"
    # there already: unchanged; another text under the id: left alone
    same = mp.make_plan(source, target(templates={"karvdash-alice": {"my-web-abcd": TEMPLATE}}))
    assert {s.subject: s.outcome for s in same.of("template")}["karvdash-alice/my-web-abcd"] == "unchanged"
    other = mp.make_plan(source, target(templates={"karvdash-alice": {"my-web-abcd": "other"}}))
    assert {s.subject: s.outcome for s in other.of("template")}["karvdash-alice/my-web-abcd"] == "skip"


def kube(api_version, kind, name, labels_=None, annotations=None, **rest) -> mp.KubeObject:
    metadata = {"name": name, "namespace": "karvdash-alice", "labels": labels_ or {}}
    if annotations:
        metadata["annotations"] = annotations
    return mp.KubeObject({"apiVersion": api_version, "kind": kind, "metadata": metadata, **rest})


def old_service_objects(template_label="zeppelin.template.yaml", pod_labels=None):
    values = json.dumps({"NAME": "zep", "IMAGE": "zeppelin:1"})
    return [
        kube("v1", "Service", "zep", {"karvdash-template": template_label, "app": "zep"}, {"karvdash-values": values}),
        kube("networking.k8s.io/v1", "Ingress", "zep", spec={"rules": [{"host": "zep-alice.example.test"}]}),
        kube("apps/v1", "Deployment", "zep", {"app": "zep"},
             spec={"template": {"metadata": {"labels": {"app": "zep", **(pod_labels or {})}}}}),
        kube("v1", "Pod", "zep-123", {"app": "zep", **(pod_labels or {})}),
        kube("v1", "Service", "unrelated", {"app": "other"}),
        kube("apps/v1", "Deployment", "other", {"app": "other"}),
    ]


def test_running_services_are_adopted_with_a_record_and_labels():
    plan = mp.make_plan(cluster_source(objects=old_service_objects()), target())
    [step] = plan.of("service")
    assert (step.subject, step.outcome) == ("karvdash-alice/zep", "create")
    wanted = labels.instance_labels("alice", "zep", "zeppelin")
    values = '{"IMAGE":"zeppelin:1","NAME":"zep"}'
    patches = {(p["kind"], p["name"]): p["patch"] for p in step.data["patches"]}
    assert set(patches) == {("Service", "zep"), ("Ingress", "zep"), ("Deployment", "zep"), ("Pod", "zep-123")}
    assert patches[("Service", "zep")] == {"metadata": {"labels": wanted, "annotations": {labels.VALUES_ANNOTATION: values}}}
    # pods: who they belong to only; their workloads' pod templates are left alone
    assert patches[("Pod", "zep-123")] == {"metadata": {"labels": {
        labels.OWNER_LABEL: "alice", labels.INSTANCE_LABEL: "zep"}}}
    record = step.data["record"]
    assert record["labels"] == labels.instance_labels("alice", "zep", "zeppelin", "record")
    assert record["data"] == {
        "template": "zeppelin", "template-name": "Zeppelin", "state": "created", "auth": "false",
        "url": "https://zep-alice.example.test", "values": values,
        "objects": json.dumps([["v1", "Service", "zep"], ["networking.k8s.io/v1", "Ingress", "zep"],
                               ["apps/v1", "Deployment", "zep"]]),
        "prefix": "", "adopted-from": "karvdash",
    }


def test_an_adopted_service_is_left_as_it_is():
    wanted = labels.instance_labels("alice", "zep", "zeppelin")
    values = '{"IMAGE":"zeppelin:1","NAME":"zep"}'
    objects = []
    for obj in old_service_objects():
        if obj.body["metadata"]["name"] in ("zep", "zep-123"):
            extra = wanted if obj.kind != "Pod" else {k: wanted[k] for k in (labels.OWNER_LABEL, labels.INSTANCE_LABEL)}
            obj.body["metadata"]["labels"].update(extra)
            if obj.kind != "Pod":
                obj.body["metadata"].setdefault("annotations", {})[labels.VALUES_ANNOTATION] = values
        objects.append(obj)
    record = labels.instance_labels("alice", "zep", "zeppelin", "record")
    [step] = mp.make_plan(cluster_source(objects=objects), target(records={"karvdash-alice": {"zep": record}})).of("service")
    assert step.outcome == "unchanged"
    # a record whose labels say it is not this service's: refused, nothing touched
    [refused] = mp.make_plan(cluster_source(objects=old_service_objects()),
                             target(records={"karvdash-alice": {"zep": {}}})).of("service")
    assert refused.outcome == "skip" and not refused.data


def test_user_template_names_reach_the_record():
    objects = old_service_objects(template_label="my-web-abcd")
    plan = mp.make_plan(cluster_source(objects=objects, templates=[old_template("my-web-abcd", TEMPLATE)]), target())
    [step] = plan.of("service")
    assert step.data["record"]["data"]["template"] == "my-web-abcd"
    assert step.data["record"]["data"]["template-name"] == "My Web"


def test_the_old_datasets_opt_out_maps_to_the_products_label():
    objects = old_service_objects(pod_labels={"karvdash-no-datasets": "true"})
    steps = {s.subject: s for s in mp.make_plan(cluster_source(objects=objects), target()).of("datasets opt-out")}
    assert set(steps) == {"karvdash-alice/deployment/zep", "karvdash-alice/pod/zep-123"}
    assert steps["karvdash-alice/pod/zep-123"].data["patch"] == {"metadata": {"labels": {labels.DATASETS_LABEL: "false"}}}
    assert steps["karvdash-alice/deployment/zep"].data["patch"] == {
        "spec": {"template": {"metadata": {"labels": {labels.DATASETS_LABEL: "false"}}}}}
    assert "restart" in steps["karvdash-alice/deployment/zep"].notes[0]
    done = old_service_objects(pod_labels={"karvdash-no-datasets": "true", labels.DATASETS_LABEL: "false"})
    assert {s.outcome for s in mp.make_plan(cluster_source(objects=done), target()).of("datasets opt-out")} == {
        "unchanged"}


def test_the_report_counts_each_kind_and_says_when_nothing_changes():
    plan = mp.make_plan(mp.Source(users=[user("alice"), user("Bad"), user("admin")], tokens=[]), target())
    lines = mp.report(plan, dry_run=True)
    assert "users: 1 to create, 1 unchanged, 1 skipped" in lines
    assert "skip      user 'Bad': not a hub username (1 to 32 lowercase letters and digits)" in lines
    assert "users: 1 created, 1 unchanged, 1 skipped" in mp.report(plan, dry_run=False)
    assert lines[-1] == "Dry run: 1 changes would be made; nothing was changed."
    assert mp.report(plan, dry_run=False)[-1] == "Done: 1 changes made."
    nothing = mp.make_plan(mp.Source(users=[user("admin")], tokens=[]), target())
    assert mp.report(nothing, dry_run=False)[-1] == "Nothing to change: everything from Karvdash is in place already."
