"""The hub's route for the deployment's logo and favicon files
(:mod:`karvdash_hub.theme.images`): public, since the login page shows them,
and served from memory (read once at start-up)."""

from __future__ import annotations

from tornado import web

from karvdash_hub.theme.images import IMAGES, THEME_PATH

from . import deployment


class ThemeImageHandler(web.RequestHandler):
    """``GET /hub/theme/logo`` and ``/hub/theme/favicon``."""

    def get(self, name):
        image = deployment.current().theme_images.get(name)
        if image is None:
            raise web.HTTPError(404)
        self.set_header("Content-Type", image.content_type)
        self.set_header("ETag", image.etag)
        self.set_header("Cache-Control", "public, max-age=3600")
        self.set_header("X-Content-Type-Options", "nosniff")
        # an SVG opened on its own runs no script and loads nothing
        self.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
        if self.check_etag_header():
            self.set_status(304)
            return
        self.finish(image.content)

    head = get

    def compute_etag(self):
        return None  # set in get, from the content read at start-up


def theme_handlers() -> list[tuple[str, type]]:
    names = "|".join(IMAGES)
    return [(rf"{THEME_PATH.removeprefix('/hub')}({names})", ThemeImageHandler)]
