"""``karvdash-hub migrate --from-karvdash DATABASE``: read Karvdash, plan,
print the plan, carry it out (unless ``--dry-run``), print the report."""

from __future__ import annotations

import argparse
import asyncio
import sys

from karvdash_hub.core.errors import KarvdashError
from karvdash_hub.core.kubeapi import api_client_from_environment
from karvdash_hub.core.settings import SettingsError, load_settings

from . import plan as model
from . import source, target
from .kube import Kube

DESCRIPTION = """Bring a Karvdash 2.x deployment over: its accounts (with their
passwords, checked at first login and then re-hashed), API tokens (same
values), user templates and running services (adopted, not recreated). The
hub must have started once; restart it afterwards. A second run changes
nothing. docs/deployment.md, "Migrating from Karvdash", has the details."""


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="karvdash-hub migrate", description=DESCRIPTION)
    parser.add_argument("--from-karvdash", required=True, metavar="DATABASE",
                        help="Karvdash's database: its db.sqlite3 file, or a postgresql:// URL")
    parser.add_argument("--hub-db", metavar="URL",
                        help="the hub's database URL (default: the hub's own, from the settings)")
    parser.add_argument("--kubeconfig", default="", metavar="FILE",
                        help="kubeconfig of the cluster (default: the settings' kubeconfig, in-cluster, $KUBECONFIG)")
    parser.add_argument("--no-kubernetes", action="store_true",
                        help="accounts and tokens only (also what local mode does)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be done; change nothing")
    return parser


def main(argv: list[str]) -> int:
    options = parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"karvdash-hub migrate: {error}", file=sys.stderr)
        return 2
    try:
        lines, problems = asyncio.run(migrate(options, settings))
    except KarvdashError as error:
        print(f"karvdash-hub migrate: {error.message}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    for problem in problems:
        print(f"karvdash-hub migrate: not done: {problem}", file=sys.stderr)
    return 1 if problems else 0


async def migrate(options, settings) -> tuple[list[str], list[str]]:
    users, tokens = source.read_database(options.from_karvdash)
    found = model.Source(users=users, tokens=tokens)
    db = target.open_hub_database(options.hub_db or settings.hub_db_url)
    api_client = kube = None
    try:
        if not options.no_kubernetes and settings.mode != "local":
            api_client = await api_client_from_environment(options.kubeconfig or settings.kubeconfig,
                                                           persist_config=False)
            kube = Kube(api_client)
            await source.read_cluster(kube, found)
        planned = model.make_plan(found, await target.read_target(db, kube, settings, found))
        problems = [] if options.dry_run else await target.apply(planned, db, kube)
        lines = model.report(planned, options.dry_run)
        if kube is None:
            lines.append("Kubernetes not asked: templates, services and namespaces were left out.")
        return lines, problems
    finally:
        db.close()
        if kube is not None:
            kube.close()
        if api_client is not None:
            await api_client.close()
