"""``karvdash-webhook``: the admission webhook's HTTPS server.

Routes: ``POST /mutate`` and ``POST /validate`` take an ``admission.k8s.io/v1``
AdmissionReview; ``GET /healthz`` answers while the server runs. Settings come
from the same values file and ``KARVDASH_*`` environment as the hub's
(``webhookAddress``, ``webhookPort``, ``webhookCertFile``, ``webhookKeyFile``).
The server is its own process and Deployment, so it keeps answering while the
hub restarts. It lists and watches namespaces and datasets, so an admission
is answered without a request to the API server.

usage: karvdash-webhook [--debug]
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable

import orjson
from tornado import httpserver, web
from tornado.ioloop import PeriodicCallback

from karvdash_hub import __version__
from karvdash_hub.admission.rules import (
    AdmissionRequest,
    ReviewError,
    parse_review,
    review_response,
)
from karvdash_hub.core.kubeapi import api_client_from_environment
from karvdash_hub.core.settings import KarvdashConfig, SettingsError, load_settings

from .clusterlookup import ClusterLookup
from .reviews import Reviewer

log = logging.getLogger("karvdash_hub.webhook")

# AdmissionReviews of pods are a few kB; the apiserver caps objects at 3 MiB.
MAX_BODY = 4 * 1024 * 1024
CERT_CHECK_SECONDS = 30

Decision = Callable[[AdmissionRequest], Awaitable[dict]]


class AdmissionHandler(web.RequestHandler):
    """POST an AdmissionReview, get one back."""

    def initialize(self, decide: Decision):
        self.decide = decide

    def _json(self, status: int, body: dict) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(body))

    async def post(self):
        try:
            request = parse_review(self.request.body)
        except ReviewError as e:
            # no uid to answer to: the apiserver reports this as a webhook error
            log.warning("bad AdmissionReview from %s: %s", self.request.remote_ip, e)
            return self._json(400, {"error": str(e)})
        try:
            review = await self.decide(request)
        except ReviewError as e:
            review = review_response(request.uid, allowed=False, code=400,
                                     message=f"karvdash: cannot read {request.display_name}: {e}")
        self._json(200, review)

    def write_error(self, status_code, **kwargs):
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps({"error": self._reason}))


class HealthHandler(web.RequestHandler):
    def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps({"status": "ok", "version": __version__}))


def make_app(mutate: Decision, validate: Decision) -> web.Application:
    return web.Application(
        [
            (r"/mutate", AdmissionHandler, {"decide": mutate}),
            (r"/validate", AdmissionHandler, {"decide": validate}),
            (r"/healthz", HealthHandler),
        ],
        log_function=_log_request,
    )


def _log_request(handler: web.RequestHandler) -> None:
    # health probes every few seconds would drown the log
    if handler.get_status() < 400 and handler.request.path == "/healthz":
        return
    level = logging.INFO if handler.get_status() < 400 else logging.WARNING
    log.log(level, "%d %s %s %.1fms", handler.get_status(), handler.request.method, handler.request.path,
            1000 * handler.request.request_time())


class ServingCertificate:
    """A server TLS context that picks up a renewed certificate file.

    cert-manager renews the Secret and the kubelet updates the mounted files;
    loading them into the same context serves the new pair to new connections.
    """

    def __init__(self, cert_file: str, key_file: str):
        self.cert_file, self.key_file = cert_file, key_file
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._stamp = None
        self.reload()

    def _current_stamp(self):
        return tuple(os.stat(p).st_mtime_ns for p in (self.cert_file, self.key_file))

    def reload(self) -> bool:
        """Load the pair if the files changed; True if loaded."""
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return False
        self.context.load_cert_chain(self.cert_file, self.key_file)
        self._stamp = stamp
        return True

    def check(self) -> None:
        try:
            if self.reload():
                log.info("loaded the serving certificate from %s", self.cert_file)
        except (OSError, ssl.SSLError) as e:
            # half-written during an update: keep the old pair, try again later
            log.warning("cannot reload %s: %s", self.cert_file, e)


def check_tls_settings(settings: KarvdashConfig) -> None:
    for name in ("webhookCertFile", "webhookKeyFile"):
        path = getattr(settings, name)
        if not path:
            raise SettingsError(name, "is required: the webhook serves HTTPS only")
        if not os.access(path, os.R_OK):
            raise SettingsError(name, f"cannot read {path}")


async def serve(settings: KarvdashConfig, stop: asyncio.Event) -> None:
    certificate = ServingCertificate(settings.webhookCertFile, settings.webhookKeyFile)
    # the pod's service account, else $KUBECONFIG (never written back)
    api = await api_client_from_environment(persist_config=False)
    lookup = ClusterLookup(api, settings.datasetsAPIGroup)
    lookup.start_watching(datasets=settings.datasetsAvailable)
    reviewer = Reviewer(settings, lookup)
    server = httpserver.HTTPServer(make_app(reviewer.mutate, reviewer.validate),
                                   ssl_options=certificate.context, max_body_size=MAX_BODY)
    server.listen(settings.webhookPort, address=settings.webhookAddress)
    reload = PeriodicCallback(certificate.check, CERT_CHECK_SECONDS * 1000)
    reload.start()
    log.info("karvdash webhook %s listening on https://%s:%d", __version__, settings.webhookAddress,
             settings.webhookPort)
    try:
        await stop.wait()
    finally:
        reload.stop()
        server.stop()
        await server.close_all_connections()
        await lookup.close()
        await api.close()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return
    debug = argv[:1] == ["--debug"]
    if argv[debug:]:
        sys.exit(f"karvdash-webhook: unexpected arguments {argv[debug:]}; "
                 "settings come from $KARVDASH_VALUES and KARVDASH_* (see --help)")
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings()
        check_tls_settings(settings)
    except SettingsError as e:
        sys.exit(f"karvdash-webhook: {e}")
    if settings.debug:
        logging.getLogger().setLevel(logging.DEBUG)
    for warning in settings.value_warnings:
        log.warning("%s", warning)

    async def run():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
