"""Reading a Karvdash 2.x deployment: its database (SQLite file or
PostgreSQL, through SQLAlchemy, read only) and its Kubernetes objects.
Nothing here changes Karvdash's state."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from karvdash_hub.core.errors import KarvdashError

from .kube import Kube
from .plan import (
    OLD_NAMESPACE_PREFIX,
    OLD_TEMPLATE_GROUP,
    OLD_TEMPLATE_VERSION,
    KubeObject,
    OldToken,
    OldUser,
    Source,
)

# what a user namespace of Karvdash holds that the migration looks at
OBJECT_KINDS = [
    ("v1", "Service"), ("networking.k8s.io/v1", "Ingress"), ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"), ("batch/v1", "Job"), ("batch/v1", "CronJob"),
    ("v1", "Pod"),
]
OLD_NAMESPACE_SELECTOR = "karvdash=enabled"


class SourceError(KarvdashError):
    """Karvdash's state cannot be read."""


def database_url(value: str) -> sa.URL:
    """The SQLAlchemy URL of ``--from-karvdash``: a file path (Karvdash's
    ``db.sqlite3``, opened read only) or a ``postgresql://`` URL."""
    if "://" not in value:
        path = Path(value)
        if not path.is_file():
            raise SourceError(400, f"no Karvdash database file at {value}")
        return sa.URL.create("sqlite", database=f"file:{path.resolve()}?mode=ro", query={"uri": "true"})
    try:
        url = make_url(value)
    except ArgumentError:
        raise SourceError(400, f"{value!r} is neither a database file nor a database URL") from None
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    if not url.drivername.startswith(("postgresql", "sqlite")):
        raise SourceError(400, f"Karvdash kept its accounts in SQLite or PostgreSQL, not {url.drivername}")
    return url


def read_database(value: str) -> tuple[list[OldUser], list[OldToken]]:
    """Accounts (Django's ``auth_user``) and API tokens
    (``dashboard_apitoken``, one per user) of a Karvdash database."""
    url = database_url(value)
    try:
        engine = sa.create_engine(url)
    except NoSuchModuleError as error:
        raise SourceError(400, f"cannot open {url.drivername} databases here ({error})") from None
    except ModuleNotFoundError as error:
        raise SourceError(400, f"cannot open {url.drivername} databases here: install karvdash-hub[postgresql] "
                          f"({error})") from None
    try:
        with engine.connect() as connection:
            tables = set(sa.inspect(connection).get_table_names())
            if "auth_user" not in tables:
                raise SourceError(400, f"{url.render_as_string()} is not a Karvdash database (no auth_user table)")
            users = [
                OldUser(name=row.username, email=row.email or "", password=row.password or "",
                        admin=bool(row.is_staff or row.is_superuser), active=bool(row.is_active))
                for row in connection.execute(sa.text(
                    "SELECT username, email, password, is_staff, is_superuser, is_active FROM auth_user ORDER BY id"))
            ]
            tokens = []
            if "dashboard_apitoken" in tables:
                tokens = [
                    OldToken(owner=row.username, value=(row.token or "").strip().lower())
                    for row in connection.execute(sa.text(
                        "SELECT auth_user.username AS username, dashboard_apitoken.token AS token "
                        "FROM dashboard_apitoken JOIN auth_user ON auth_user.id = dashboard_apitoken.user_id"))
                ]
    except SQLAlchemyError as error:
        raise SourceError(400, f"cannot read the Karvdash database: {error.__class__.__name__}: {error}") from None
    finally:
        engine.dispose()
    return users, tokens


async def read_cluster(kube: Kube, source: Source) -> None:
    """Karvdash's user namespaces (``karvdash-<user>``, labelled
    ``karvdash: enabled``) with their objects and old templates, into ``source``."""
    for namespace in await kube.list("v1", "Namespace", label_selector=OLD_NAMESPACE_SELECTOR):
        name = namespace["metadata"]["name"]
        if not name.startswith(OLD_NAMESPACE_PREFIX):
            continue
        source.namespaces[name] = namespace["metadata"].get("labels") or {}
        objects = []
        for api_version, kind in OBJECT_KINDS:
            objects += [KubeObject(item) for item in await kube.list(api_version, kind, name)]
        source.objects[name] = objects
        source.old_templates[name] = [
            KubeObject(item) for item in await kube.list(f"{OLD_TEMPLATE_GROUP}/{OLD_TEMPLATE_VERSION}", "Template", name)
        ]
