"""The hub's side of a migration: what its database and the product's
Kubernetes objects hold already (:func:`read_target`), and carrying out the
steps of a plan (:func:`apply`). The hub's own models write its database
(jupyterhub.orm, NativeAuthenticator's UserInfo)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa
from jupyterhub import orm, roles
from jupyterhub.scopes import define_custom_scopes, scope_definitions
from nativeauthenticator.orm import UserInfo

from karvdash_hub.core import labels
from karvdash_hub.core.errors import KarvdashError
from karvdash_hub.core.paths import SHIPPED_TEMPLATES_DIR
from karvdash_hub.core.scopes import custom_scopes
from karvdash_hub.core.settings import KarvdashConfig
from karvdash_hub.services import catalogue
from karvdash_hub.services.store import (
    RECORD_PREFIX,
    TEMPLATE_API_VERSION,
    TEMPLATE_KIND,
)

from . import passwords
from .kube import Kube
from .plan import Plan, Source, Step, Target

# what the hub makes in its database on its first start, and the migration needs
HUB_TABLES = {"users", "roles", "api_tokens", "oauth_clients", UserInfo.__tablename__}


class TargetError(KarvdashError):
    """The hub's side cannot be read or written."""


def open_hub_database(url: str):
    """A session of the hub's database; it must have been set up by the hub
    (its roles, its OAuth client) with native accounts."""
    engine = sa.create_engine(url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    except sa.exc.SQLAlchemyError as error:
        raise TargetError(400, f"cannot open the hub's database {url}: {error}") from None
    finally:
        engine.dispose()
    missing = HUB_TABLES - tables
    if missing:
        raise TargetError(400, f"the hub's database {url} is not set up (no {', '.join(sorted(missing))}): "
                          "start karvdash-hub once with native accounts, stop it, then migrate")
    try:
        db = orm.new_session_factory(url)()
    except (orm.DatabaseSchemaMismatch, sa.exc.SQLAlchemyError) as error:
        raise TargetError(400, f"cannot use the hub's database {url}: {error}") from None
    if orm.Role.find(db, "user") is None or db.query(orm.OAuthClient).filter_by(identifier="jupyterhub").first() is None:
        db.close()
        raise TargetError(400, f"the hub's database {url} is not set up: start karvdash-hub once, stop it, then migrate")
    # the dashboard's scopes, as the hub defines them at start-up (tokens carry them)
    missing_scopes = {name: spec for name, spec in custom_scopes().items() if name not in scope_definitions}
    if missing_scopes:
        define_custom_scopes(missing_scopes)
    return db


async def read_target(db, kube: Kube | None, settings: KarvdashConfig, source: Source) -> Target:
    infos = UserInfo.all_users(db)
    accounts = {u.name for u in db.query(orm.User)} | {i.username for i in infos}
    owners = {}
    for token in source.tokens:
        if len(token.value) >= orm.APIToken.min_length:
            found = orm.APIToken.find(db, token.value)
            if found is not None:
                owners[token.value] = found.user.name if found.user else f"service {found.service.name}"
    shipped, _ = catalogue.file_catalogue(SHIPPED_TEMPLATES_DIR, Path(settings.stateDir) / "templates",
                                          settings.disabledServiceTemplates)
    target = Target(
        accounts=accounts,
        emails={i.email for i in infos if i.email},
        token_owners=owners,
        file_templates={template_id: template.name for template_id, template in shipped.items()},
        namespace_of=settings.user_namespace,
        url_scheme=urlsplit(settings.ingressURL).scheme or "https",
    )
    if kube is not None:
        for namespace in source.namespaces:
            target.templates[namespace] = {
                item["metadata"]["name"]: (item.get("spec") or {}).get("data", "")
                for item in await kube.list(TEMPLATE_API_VERSION, TEMPLATE_KIND, namespace)
            }
            target.records[namespace] = {
                item["metadata"]["name"][len(RECORD_PREFIX):]: item["metadata"].get("labels") or {}
                for item in await kube.list("v1", "ConfigMap", namespace)
                if item["metadata"]["name"].startswith(RECORD_PREFIX)
            }
    return target


async def apply(plan: Plan, db, kube: Kube | None) -> list[str]:
    """Carry out the plan's changes; the problems met (each one a step not
    done; the rest goes on)."""
    problems = []
    for step in plan.changes:
        try:
            if step.kind == "user":
                add_account(db, step)
            elif step.kind == "token":
                add_token(db, step)
            elif kube is not None:
                await apply_kube(kube, step)
        except KarvdashError as error:
            problems.append(f"{step.kind} {step.subject}: {error.message}")
        except (ValueError, sa.exc.SQLAlchemyError) as error:
            db.rollback()
            problems.append(f"{step.kind} {step.subject}: {error}")
    return problems


def add_account(db, step: Step) -> None:
    data = step.data
    user = orm.User(name=data["name"], admin=data["admin"])
    db.add(user)
    db.flush()
    roles.assign_default_roles(db, user)
    db.add(UserInfo(
        username=data["name"],
        password=(data["password"].encode("ascii") if data["password"] else passwords.unusable()),
        is_authorized=data["approved"],
        email=data["email"] or None,
    ))
    db.commit()


def add_token(db, step: Step) -> None:
    data = step.data
    user = orm.User.find(db, data["owner"])
    if user is None:
        raise TargetError(409, f"no hub account {data['owner']}")
    # generated=False: a value chosen outside the hub is hashed with a salt
    orm.APIToken.new(token=data["value"], user=user, scopes=data["scopes"], note=data["note"], generated=False)


async def apply_kube(kube: Kube, step: Step) -> None:
    data = step.data
    if step.kind == "namespace":
        await kube.patch("v1", "Namespace", data["name"], None, {"metadata": {"labels": data["labels"]}})
    elif step.kind == "template":
        await kube.create({
            "apiVersion": TEMPLATE_API_VERSION,
            "kind": TEMPLATE_KIND,
            "metadata": {"name": data["id"], "namespace": data["namespace"], "labels": labels.owner_labels(data["owner"])},
            "spec": {"data": data["text"]},
        })
    elif step.kind == "service":
        # the objects first: a record is what makes the service listed
        for part in data["patches"]:
            await kube.patch(part["apiVersion"], part["kind"], part["name"], data["namespace"], part["patch"])
        if data["record"] is not None:
            await kube.create({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": RECORD_PREFIX + data["name"], "namespace": data["namespace"],
                             "labels": data["record"]["labels"]},
                "data": data["record"]["data"],
            })
    elif step.kind == "datasets opt-out":
        await kube.patch(data["apiVersion"], data["kind"], data["name"], data["namespace"], data["patch"])
