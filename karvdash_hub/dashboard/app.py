"""The dashboard's Tornado application.

Routes come from feature modules: each defines ``handlers(context)``
returning ``(pattern, handler)`` pairs with patterns relative to the
service prefix (every handler is given the context), and ``openapi(context)``
returning its part of the API document. A new feature is one module and
one entry in :data:`FEATURES`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import hmac
import logging
import os
import signal
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.ioloop import PeriodicCallback
from tornado.log import enable_pretty_logging

from karvdash_hub import __version__
from karvdash_hub.core.settings import SettingsError, load_settings
from karvdash_hub.files.domains import UPLOADS, FileDomains
from karvdash_hub.files.storage import open_storage
from karvdash_hub.files.uploads import UploadStore

from . import (
    apiindex,
    datasetpages,
    docs,
    filepages,
    homepages,
    imagepages,
    karvdash2api,
    servicepages,
    templatepages,
    transferpages,
)
from .context import DashboardContext, HubEnvironment
from .pages import PageRenderer
from .stores import Stores
from .supervisor import CONFIG_ERROR_STATUS

FEATURES = (
    homepages, filepages, transferpages, servicepages, templatepages, datasetpages, imagepages, docs, apiindex,
    karvdash2api,
)
STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_REQUEST_BODY = 256 * 1024 * 1024
# seconds between full garbage collections (see serve)
COLLECT_INTERVAL = 30
log = logging.getLogger("karvdash.dashboard")


def make_context(settings, hub: HubEnvironment) -> DashboardContext:
    domains = FileDomains.from_settings(settings)
    storage = open_storage(domains, settings)
    storage.ensure_folders()
    hub_auth = HubOAuth(api_url=hub.api_url, api_token=hub.api_token, base_url=hub.service_prefix, cache_max_age=60)
    return DashboardContext(
        settings=settings,
        hub=hub,
        hub_auth=hub_auth,
        domains=domains,
        pages=PageRenderer(settings, base_url=hub.base_url, hub_prefix=hub.hub_prefix),
        uploads=UploadStore(domains.local_path(UPLOADS) / "staged", expiry=settings.uploadExpiry, storage=storage),
        stores=Stores(settings, hub.api_url, hub.api_token),
        storage=storage,
    )


class OAuthCallbackHandler(HubOAuthCallbackHandler):
    """The end of the hub's OAuth login, with the same OAuth client (and its
    pending login states) as every other handler."""

    def initialize(self, context: DashboardContext):
        self.hub_auth = context.hub_auth


class HealthHandler(web.RequestHandler):
    """Whether the dashboard answers: public, for probes and the hub's admin
    page; the process id tells a restarted dashboard from the one before."""

    def get(self):
        self.set_header("Cache-Control", "no-store")
        self.finish({"status": "ok", "version": __version__, "pid": os.getpid()})


def make_app(context: DashboardContext, features=FEATURES) -> web.Application:
    prefix = context.prefix
    routes = [
        (url_path_join(prefix, "oauth_callback"), OAuthCallbackHandler, {"context": context}),
        (url_path_join(prefix, "health") + "$", HealthHandler),
    ]
    for feature in features:
        for pattern, handler in feature.handlers(context):
            routes.append((url_path_join(prefix, pattern) + "$", handler, {"context": context}))
    context.features = tuple(features)
    return web.Application(
        routes,
        # one secret for every replica, stable across restarts, known only to hub and dashboard
        cookie_secret=hmac.new(context.hub.api_token.encode(), b"karvdash-dashboard-cookies", hashlib.sha256).digest(),
        static_path=str(STATIC_DIR),
        static_url_prefix=url_path_join(prefix, "static/"),
        login_url=context.hub_auth.login_url,
        # xsrf is checked by the hub's OAuth mixin, which knows token requests need none
        xsrf_cookies=False,
        compress_response=False,
    )


def clean_up(context: DashboardContext) -> None:
    """Remove expired uploads and replaced folders left by a crash (blocking)."""
    removed = context.uploads.expire()
    if removed:
        log.info("removed %d expired uploads", len(removed))
    context.storage.clean_up(time.time() - context.uploads.expiry)


def listen_address(service_url: str, ip: str | None, port: int | None) -> tuple[str, int]:
    parts = urlsplit(service_url)
    return ip or parts.hostname or "127.0.0.1", port or parts.port or 8080


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="karvdash-dashboard",
        description="The karvdash dashboard service. Settings come from $KARVDASH_VALUES and KARVDASH_* "
        "variables, the hub connection from the JUPYTERHUB_* variables the hub sets for its services.",
    )
    parser.add_argument("--ip", help="address to listen on (default: the host of $JUPYTERHUB_SERVICE_URL)")
    parser.add_argument("--port", type=int, help="port to listen on (default: the port of $JUPYTERHUB_SERVICE_URL)")
    parser.add_argument("--debug", action="store_true", help="log debug messages")
    args = parser.parse_args(argv)

    enable_pretty_logging()
    logging.getLogger().setLevel(logging.DEBUG if args.debug else logging.INFO)
    try:
        settings = load_settings()
    except SettingsError as error:
        # a distinct status, so the supervisor does not start it again and again
        print(f"karvdash-dashboard: {error}", file=sys.stderr)
        raise SystemExit(CONFIG_ERROR_STATUS) from None
    if settings.debug:
        logging.getLogger().setLevel(logging.DEBUG)
    if settings.dashboardURL:
        # on its own (the chart); the hub that starts a dashboard has logged them
        for warning in settings.value_warnings:
            log.warning("%s", warning)
    hub = HubEnvironment.from_environ()
    context = make_context(settings, hub)
    ip, port = listen_address(hub.service_url, args.ip, args.port)
    asyncio.run(serve(context, ip, port))


async def serve(context: DashboardContext, ip: str, port: int) -> None:
    app = make_app(context)
    # bodies arrive in 1 MiB pieces (not tornado's 64 KiB): fewer Python calls per upload
    server = app.listen(
        port, address=ip, xheaders=True, max_body_size=MAX_REQUEST_BODY, chunk_size=1024 * 1024, max_buffer_size=MAX_REQUEST_BODY
    )
    log.info("karvdash dashboard at http://%s:%d%s", ip, port, context.prefix)
    loop = asyncio.get_running_loop()

    async def periodic_clean_up():
        await loop.run_in_executor(None, clean_up, context)

    cleaner = PeriodicCallback(periodic_clean_up, min(context.uploads.expiry / 4, 3600) * 1000)
    cleaner.start()
    # What start-up made lives as long as the process: frozen, collections
    # never walk it again (they walk only what came since, not ~0.3 s of
    # start-up objects). A full collection also empties the interpreter's
    # free lists, whose last few objects keep whole arenas of a large answer
    # resident (an unpaged listing of 100,000 entries: ~40 MiB); an idle
    # dashboard would never run one.
    gc.freeze()
    collector = PeriodicCallback(gc.collect, COLLECT_INTERVAL * 1000)
    collector.start()
    loop.create_task(periodic_clean_up())
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    cleaner.stop()
    collector.stop()
    server.stop()
    await context.stores.close()
    log.info("karvdash dashboard stopped")
