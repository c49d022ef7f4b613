"""``karvdash-hub migrate --from-karvdash`` end to end: a Karvdash database
(Django's tables, written here with SQL, in SQLite and in a real PostgreSQL
server) and Karvdash's Kubernetes objects on the real API server (its old
Template CRD, a running service labelled the old way), then the real hub:
old passwords log in (and are re-hashed), old tokens work against the hub's
and the dashboard's APIs, the adopted service and the user template are
listed; the dry run changes nothing and a second run changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
import yaml
from kubernetes import client

from karvdash_hub.core import labels
from karvdash_hub.migration import source as migration_source
from tests.hubprocess import HUB_COMMAND, hub_environment
from tests.integration.dashboardsession import DashboardAPI, log_in_page
from tests.integration.test_chart_kube import install_crds
from tests.integration.test_templates_corpus_kube import start_patient_hub
from tests.postgres import binaries, start_postgres

pytestmark = [pytest.mark.kube, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_CRD = ROOT / "chart" / "karvdash-hub" / "crds" / "template-crd.yaml"
DOMAIN = "example.test"
# Karvdash's Template CRD (group karvdash.carv.ics.forth.gr), as its chart registered it
OLD_TEMPLATE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "templates.karvdash.carv.ics.forth.gr"},
    "spec": {
        "group": "karvdash.carv.ics.forth.gr",
        "scope": "Namespaced",
        "names": {"kind": "Template", "listKind": "TemplateList", "plural": "templates", "singular": "template"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
            "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}

# Django 3's tables of the accounts Karvdash kept, and its APIToken model's
DJANGO_SQLITE = [
    ('CREATE TABLE "auth_user" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "password" varchar(128) NOT NULL, '
     '"last_login" datetime NULL, "is_superuser" bool NOT NULL, "username" varchar(150) NOT NULL UNIQUE, '
     '"last_name" varchar(150) NOT NULL, "email" varchar(254) NOT NULL, "is_staff" bool NOT NULL, '
     '"is_active" bool NOT NULL, "date_joined" datetime NOT NULL, "first_name" varchar(150) NOT NULL)'),
    ('CREATE TABLE "dashboard_apitoken" ("user_id" integer NOT NULL PRIMARY KEY REFERENCES "auth_user" ("id") '
     'DEFERRABLE INITIALLY DEFERRED, "token" varchar(64) NOT NULL)'),
]
DJANGO_POSTGRES = [
    ('CREATE TABLE "auth_user" ("id" serial NOT NULL PRIMARY KEY, "password" varchar(128) NOT NULL, '
     '"last_login" timestamp with time zone NULL, "is_superuser" boolean NOT NULL, '
     '"username" varchar(150) NOT NULL UNIQUE, "first_name" varchar(150) NOT NULL, '
     '"last_name" varchar(150) NOT NULL, "email" varchar(254) NOT NULL, "is_staff" boolean NOT NULL, '
     '"is_active" boolean NOT NULL, "date_joined" timestamp with time zone NOT NULL)'),
    ('CREATE TABLE "dashboard_apitoken" ("user_id" integer NOT NULL PRIMARY KEY REFERENCES "auth_user" ("id") '
     'DEFERRABLE INITIALLY DEFERRED, "token" varchar(64) NOT NULL)'),
]

USER_TEMPLATE = """kind: Template
name: Static Web
description: A web server.
variables:
- name: NAME
  default: web
---
apiVersion: v1
kind: Service
metadata:
  name: $NAME
spec:
  selector:
    app: $NAME
  ports:
  - port: 80
"""


def django_hash(password: str, algorithm: str = "pbkdf2_sha256", iterations: int = 20000) -> str:
    """Django's PBKDF2 hashers' encoding, computed here."""
    salt = uuid.uuid4().hex[:12]
    digest = {"pbkdf2_sha256": "sha256", "pbkdf2_sha1": "sha1"}[algorithm]
    raw = hashlib.pbkdf2_hmac(digest, password.encode(), salt.encode(), iterations)
    return f"{algorithm}${iterations}${salt}${base64.b64encode(raw).decode()}"


def apr1_hash(password: str) -> str:
    """Karvdash's apr1 hasher's encoding (Apache's MD5-crypt without its
    leading "$"), computed by OpenSSL."""
    apache = subprocess.run(["openssl", "passwd", "-apr1", "-salt", uuid.uuid4().hex[:8], password],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert apache.startswith("$apr1$")
    return apache[1:]


class Karvdash:
    """The accounts of the Karvdash deployment the test migrates from."""

    def __init__(self):
        suffix = uuid.uuid4().hex[:6]
        self.alice, self.bob, self.carol = f"alice{suffix}", f"bob{suffix}", f"carol{suffix}"
        self.erin, self.bad = f"erin{suffix}", f"Dave.{suffix}"
        self.passwords = {self.alice: "alice-old-pw-1", self.bob: "bob-old-pw-1", self.carol: "carol-old-pw-1",
                          self.erin: "erin-old-pw-1", self.bad: "dave-old-pw-1"}
        self.tokens = {name: uuid.uuid4().hex + f"abcdef0{number}" for number, name in enumerate(self.passwords)}
        # (username, hash, is_staff, is_active)
        self.rows = [
            (self.alice, django_hash(self.passwords[self.alice]), True, True),
            (self.bob, django_hash(self.passwords[self.bob], "pbkdf2_sha1"), False, True),
            (self.carol, django_hash(self.passwords[self.carol]), False, False),
            (self.erin, apr1_hash(self.passwords[self.erin]), False, True),
            (self.bad, django_hash(self.passwords[self.bad]), False, True),
        ]

    def insert(self, execute) -> None:
        for number, (name, stored, staff, active) in enumerate(self.rows, start=1):
            execute(
                "INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name, email, "
                "is_staff, is_active, date_joined) VALUES (:id, :password, :superuser, :username, '', '', :email, "
                ":staff, :active, '2023-01-01 00:00:00')",
                {"id": number, "password": stored, "superuser": False, "username": name,
                 "email": f"{name.lower()}@example.org", "staff": staff, "active": active},
            )
            execute("INSERT INTO dashboard_apitoken (user_id, token) VALUES (:id, :token)",
                    {"id": number, "token": self.tokens[name]})

    def sqlite(self, path: Path) -> Path:
        with sqlite3.connect(path) as connection:
            for statement in DJANGO_SQLITE:
                connection.execute(statement)
            self.insert(connection.execute)
        return path


def old_namespace(name: str) -> str:
    return f"karvdash-{name}"


def create_karvdash_objects(api_client, people: Karvdash) -> None:
    """alice's namespace as Karvdash left it: a user template of the old
    group, and a running service (Service labelled karvdash-template,
    Ingress, Deployment, a pod that opts out of datasets the old way)."""
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    networking, custom = client.NetworkingV1Api(api_client), client.CustomObjectsApi(api_client)
    for name in (people.alice, people.bob):
        core.create_namespace({"metadata": {"name": old_namespace(name), "labels": {"karvdash": "enabled"}}})
    namespace = old_namespace(people.alice)
    custom.create_namespaced_custom_object("karvdash.carv.ics.forth.gr", "v1", namespace, "templates", {
        "apiVersion": "karvdash.carv.ics.forth.gr/v1", "kind": "Template",
        "metadata": {"name": "static-web-abcd"},
        "spec": {"data": base64.b64encode(USER_TEMPLATE.encode()).decode()},
    })
    values = json.dumps({"NAME": "site", "IMAGE": "nginx:1"})
    core.create_namespaced_service(namespace, {
        "metadata": {"name": "site", "labels": {"karvdash-template": "static-web-abcd", "app": "site"},
                     "annotations": {"karvdash-values": values}},
        "spec": {"selector": {"app": "site"}, "ports": [{"port": 80}]},
    })
    networking.create_namespaced_ingress(namespace, {
        "metadata": {"name": "site"},
        "spec": {"rules": [{"host": f"site-{people.alice}.{DOMAIN}", "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "site", "port": {"number": 80}}}}]}}]},
    })
    apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": "site", "labels": {"app": "site"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "site"}}, "template": {
            "metadata": {"labels": {"app": "site", "karvdash-no-datasets": "true"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}},
    })
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": "site-1", "labels": {"app": "site", "karvdash-no-datasets": "true"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1"}]},
    })


def snapshot(api_client, people: Karvdash, hub_db: Path) -> dict:
    """What a migration may change: the hub's tables and the objects of the namespaces."""
    core, apps, custom = client.CoreV1Api(api_client), client.AppsV1Api(api_client), client.CustomObjectsApi(api_client)
    namespace = old_namespace(people.alice)
    state = {
        "namespace": core.read_namespace(namespace).metadata.resource_version,
        "service": core.read_namespaced_service("site", namespace).metadata.resource_version,
        "deployment": apps.read_namespaced_deployment("site", namespace).metadata.resource_version,
        "pod": core.read_namespaced_pod("site-1", namespace).metadata.resource_version,
        "configmaps": sorted(c.metadata.name for c in core.list_namespaced_config_map(namespace).items),
        "uids": tuple(o.metadata.uid for o in (core.read_namespaced_service("site", namespace),
                                               apps.read_namespaced_deployment("site", namespace),
                                               core.read_namespaced_pod("site-1", namespace))),
        "templates": sorted(t["metadata"]["name"] for t in custom.list_namespaced_custom_object(
            "karvdash.io", "v1", namespace, "templates")["items"]),
    }
    with sqlite3.connect(hub_db) as connection:
        for table in ("users", "users_info", "api_tokens", "roles", "user_role_map"):
            state[table] = connection.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
    return state


def migrate(state: Path, env: dict, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([*HUB_COMMAND, "migrate", *arguments], env=hub_environment(state, env),
                          capture_output=True, text=True, timeout=300, cwd=state, check=False)


def stored_password(hub_db: Path, username: str) -> bytes:
    with sqlite3.connect(hub_db) as connection:
        return connection.execute("SELECT password FROM users_info WHERE username = ?", (username,)).fetchone()[0]


@pytest.fixture(scope="module")
def migrated(kube_cluster, kube_api_client, tmp_path_factory):
    """The hub started once (its database set up) and stopped; the dry run
    and the migration run; the hub started again."""
    people = Karvdash()
    install_crds(kube_cluster, kube_api_client, [TEMPLATE_CRD])
    crd_file = tmp_path_factory.mktemp("crd") / "old-template-crd.yaml"
    crd_file.write_text(yaml.safe_dump(OLD_TEMPLATE_CRD))
    install_crds(kube_cluster, kube_api_client, [crd_file])
    create_karvdash_objects(kube_api_client, people)
    state = tmp_path_factory.mktemp("hub")
    database = people.sqlite(tmp_path_factory.mktemp("karvdash") / "db.sqlite3")
    env = {
        "KUBECONFIG": str(kube_cluster.kubeconfig),
        "KARVDASH_MODE": "kubernetes",
        "KARVDASH_KUBECONFIG": str(kube_cluster.kubeconfig),
        # names hosts only; nothing is sent there
        "KARVDASH_INGRESS_URL": f"http://{DOMAIN}",
    }
    first = start_patient_hub(state, env)
    first.stop()
    hub_db = state / "jupyterhub.sqlite"
    before = snapshot(kube_api_client, people, hub_db)
    dry_run = migrate(state, env, "--from-karvdash", str(database), "--dry-run")
    after_dry_run = snapshot(kube_api_client, people, hub_db)
    run = migrate(state, env, "--from-karvdash", str(database))
    hub = start_patient_hub(state, env)
    result = {"people": people, "hub": hub, "state": state, "env": env, "database": database, "hub_db": hub_db,
              "before": before, "after_dry_run": after_dry_run, "dry_run": dry_run, "run": run}
    yield result
    hub.stop()
    core = client.CoreV1Api(kube_api_client)
    for name in (people.alice, people.bob):
        core.delete_namespace(old_namespace(name))


def test_the_dry_run_says_what_it_would_do_and_changes_nothing(migrated):
    people, dry_run = migrated["people"], migrated["dry_run"]
    assert dry_run.returncode == 0, dry_run.stderr
    out = dry_run.stdout
    assert migrated["after_dry_run"] == migrated["before"]
    assert f"create    user {people.alice}" in out
    assert f"skip      user {people.bad!r}: not a hub username" in out
    assert f"create    service karvdash-{people.alice}/site" in out
    assert "users: 4 to create, 1 skipped" in out
    assert "Dry run:" in out and "nothing was changed" in out


def test_the_migration_reports_each_kind(migrated):
    people, run = migrated["people"], migrated["run"]
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "users: 4 created, 1 skipped" in out
    # carol is inactive: her token waits for her approval; Dave's name is refused
    assert "tokens: 3 created, 2 skipped" in out
    assert "templates: 1 created" in out
    assert "services: 1 created" in out
    assert "namespaces: 2 updated" in out
    assert "datasets opt-outs: 2 updated" in out
    assert f"skip      token of {people.carol}" in out


def test_an_old_password_logs_in_and_is_rehashed(migrated):
    people, hub, hub_db = migrated["people"], migrated["hub"], migrated["hub_db"]
    assert stored_password(hub_db, people.bob).startswith(b"pbkdf2_sha1$")
    session = hub.login(people.bob, people.passwords[people.bob])
    assert session.get(hub.hub_api + "/user", timeout=30).json()["name"] == people.bob
    stored = stored_password(hub_db, people.bob)
    assert stored.startswith(b"$2")
    # the new hash takes the same password; a wrong one is a plain refusal, not an error
    hub.login(people.bob, people.passwords[people.bob])
    with pytest.raises(AssertionError, match="failed: 403"):
        hub.login(people.alice, "not-her-password")
    assert stored_password(hub_db, people.alice).startswith(b"pbkdf2_sha256$")
    # Karvdash's own apr1 hashes too
    assert stored_password(hub_db, people.erin).startswith(b"apr1$")
    hub.login(people.erin, people.passwords[people.erin])
    assert stored_password(hub_db, people.erin).startswith(b"$2")


@pytest.mark.browser
def test_an_old_password_logs_in_in_the_browser(migrated, page):
    """The hub's login page, as a person uses it, with alice's Karvdash password."""
    people, hub, hub_db = migrated["people"], migrated["hub"], migrated["hub_db"]
    assert stored_password(hub_db, people.alice).startswith(b"pbkdf2_sha256$")
    log_in_page(page, hub, people.alice, people.passwords[people.alice])
    assert "/hub/login" not in page.url
    assert stored_password(hub_db, people.alice).startswith(b"$2")


def test_an_inactive_account_waits_for_approval(migrated):
    people, hub = migrated["people"], migrated["hub"]
    browser = requests.Session()
    page = browser.get(hub.url + "/hub/login", timeout=30)
    answer = browser.post(hub.url + "/hub/login", data={
        "username": people.carol, "password": people.passwords[people.carol],
        "_xsrf": browser.cookies.get("_xsrf") or ""}, allow_redirects=False, timeout=30)
    assert page.status_code == 200 and answer.status_code == 403
    assert "waits for an administrator" in answer.text


def test_admin_flags_come_over(migrated):
    people, hub = migrated["people"], migrated["hub"]
    admin = hub.admin_session()
    assert admin.get(f"{hub.hub_api}/users/{people.alice}", timeout=30).json()["admin"] is True
    assert admin.get(f"{hub.hub_api}/users/{people.bob}", timeout=30).json()["admin"] is False


def test_an_old_token_works_against_the_hub_and_the_dashboard(migrated):
    people, hub = migrated["people"], migrated["hub"]
    token = people.tokens[people.alice]
    me = hub.api("GET", "/user", token=token)
    assert me.status_code == 200 and me.json()["name"] == people.alice
    api = DashboardAPI(hub, token=token)
    services = api("GET", "services")
    assert services.status_code == 200, services.text
    [site] = [s for s in services.json() if s["name"] == "site"]
    assert site["template"] == "static-web-abcd"
    assert site["url"] == f"http://site-{people.alice}.{DOMAIN}"
    assert site["values"] == {"NAME": "site", "IMAGE": "nginx:1"}
    templates = api("GET", "templates")
    assert templates.status_code == 200
    listed = {t["id"]: t for t in templates.json()}
    assert listed["static-web-abcd"]["name"] == "Static Web"
    # the token is described, and carol's (inactive) never came
    admin = hub.admin_session()
    notes = [t["note"] for t in admin.get(f"{hub.hub_api}/users/{people.alice}/tokens", timeout=30).json()["api_tokens"]]
    assert "migrated from Karvdash" in notes
    assert hub.api("GET", "/user", token=people.tokens[people.carol]).status_code == 403


def test_the_adopted_objects_are_labelled_not_recreated(migrated, kube_api_client):
    people, before = migrated["people"], migrated["before"]
    core, apps = client.CoreV1Api(kube_api_client), client.AppsV1Api(kube_api_client)
    namespace = old_namespace(people.alice)
    service = core.read_namespaced_service("site", namespace)
    assert service.metadata.labels[labels.INSTANCE_LABEL] == "site"
    assert service.metadata.labels[labels.OWNER_LABEL] == people.alice
    pod = core.read_namespaced_pod("site-1", namespace)
    assert pod.metadata.labels[labels.DATASETS_LABEL] == "false"
    assert pod.metadata.labels[labels.INSTANCE_LABEL] == "site"
    deployment = apps.read_namespaced_deployment("site", namespace)
    assert deployment.spec.template.metadata.labels[labels.DATASETS_LABEL] == "false"
    namespace_labels = core.read_namespace(namespace).metadata.labels
    assert namespace_labels[labels.NAMESPACE_LABEL] == labels.NAMESPACE_LABEL_VALUE
    assert namespace_labels[labels.OWNER_LABEL] == people.alice
    # the same objects, not new ones
    assert (service.metadata.uid, deployment.metadata.uid, pod.metadata.uid) == before["uids"]


def test_a_second_run_changes_nothing_and_says_so(migrated, kube_api_client):
    people = migrated["people"]
    before = snapshot(kube_api_client, people, migrated["hub_db"])
    again = migrate(migrated["state"], migrated["env"], "--from-karvdash", str(migrated["database"]))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Nothing to change: everything from Karvdash is in place already." in again.stdout
    assert "users: 4 unchanged, 1 skipped" in again.stdout
    assert snapshot(kube_api_client, people, migrated["hub_db"]) == before


@pytest.mark.skipif(binaries() is None, reason="PostgreSQL not installed: run make postgresql")
def test_a_karvdash_database_on_postgresql_is_read(migrated):
    people = Karvdash()
    server = start_postgres()
    try:
        engine = sa.create_engine(server.url().replace("postgresql://", "postgresql+psycopg://"))
        with engine.begin() as connection:
            for statement in DJANGO_POSTGRES:
                connection.execute(sa.text(statement))
            people.insert(lambda sql, values: connection.execute(sa.text(sql), values))
        engine.dispose()
        users, tokens = migration_source.read_database(server.url())
        assert [(u.name, u.password, u.admin, u.active) for u in users] == people.rows
        assert {t.owner: t.value for t in tokens} == people.tokens
        # the command reads it too (a dry run against the test's hub database)
        dry_run = migrate(migrated["state"], migrated["env"], "--from-karvdash", server.url(), "--dry-run",
                          "--no-kubernetes")
        assert dry_run.returncode == 0, dry_run.stdout + dry_run.stderr
        assert f"create    user {people.alice}" in dry_run.stdout
        assert "users: 4 to create, 1 skipped" in dry_run.stdout
    finally:
        server.stop()


def test_bad_sources_are_refused_with_a_reason(migrated, tmp_path):
    state, env = migrated["state"], migrated["env"]
    missing = migrate(state, env, "--from-karvdash", str(tmp_path / "nothing.sqlite3"), "--dry-run")
    assert missing.returncode == 1 and "no Karvdash database file at" in missing.stderr
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).close()
    wrong = migrate(state, env, "--from-karvdash", str(other), "--dry-run")
    assert wrong.returncode == 1 and "not a Karvdash database" in wrong.stderr
    mysql = migrate(state, env, "--from-karvdash", "mysql://x@127.0.0.1/db", "--dry-run")
    assert mysql.returncode == 1 and "SQLite or PostgreSQL" in mysql.stderr
    fresh = migrate(state, env, "--from-karvdash", str(migrated["database"]), "--dry-run",
                    "--hub-db", f"sqlite:///{tmp_path / 'fresh.sqlite'}")
    assert fresh.returncode == 1 and "start karvdash-hub once" in fresh.stderr
