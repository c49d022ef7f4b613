"""Images: the repositories and tags of the private Docker registry, tags
grouped by digest with their size, deleting a tag (administrators) and
pushing an image archive from the file domains (pages and REST API).

Shown when ``dockerRegistryURL`` is set. The registry work is in
``karvdash_hub.images.registry``; an archive is opened here, inside the user's
domain, and handed to the push as that open file, so a symlink swapped in
meanwhile cannot make it read anything else.
"""

from __future__ import annotations

import logging
import os

from karvdash_hub.core.errors import KarvdashError
from karvdash_hub.core.scopes import scope
from karvdash_hub.files.operations import BROWSABLE_DOMAINS
from karvdash_hub.images.registry import choose_reference, inspect_archive, plan_push

from .context import DashboardContext
from .handlers import APIHandler, PageHandler
from .openapi import error_responses, json_body, json_response, scopes_note

log = logging.getLogger("karvdash.dashboard.images")

REPOSITORY = r"([a-z0-9][a-z0-9._/-]{0,254})"
TAG = r"([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})"


def open_archive(storage, domain: str, path: str, user: str) -> tuple[int, str]:
    """The archive ``domain/path`` of ``user`` open for reading: (descriptor,
    display name). Blocking."""
    if domain not in BROWSABLE_DOMAINS:
        raise KarvdashError(400, f"domain must be one of {', '.join(BROWSABLE_DOMAINS)}")
    return storage.open_for_reading(user, domain, path, "an image archive (.tar)")


# --- REST API ----------------------------------------------------------------------------


class ImagesAPIHandler(APIHandler):
    async def get(self):
        self.require_scope("images", "read")
        async with self.context.stores.registry() as registry:
            self.write_json({"registry": registry.access.host, "images": await registry.overview()})

    async def post(self):
        """Push ``{"domain", "path", "name"?, "tag"?}``; name and tag default
        to the archive's own (``docker save``'s RepoTags)."""
        self.require_scope("images", "write")
        body = self.json_body()
        domain, path = body.get("domain", "private"), body.get("path")
        if not isinstance(domain, str) or not isinstance(path, str) or not path:
            raise KarvdashError(400, 'send {"domain": "private", "path": "<archive.tar>", "name": ..., "tag": ...}')
        user = await self.acting_user()
        descriptor, display = await self.blocking(open_archive, self.context.storage, domain, path, user)
        archive = f"/proc/self/fd/{descriptor}"
        try:
            info, name, tag = await self.blocking(plan_push, archive, display, path, body.get("name"), body.get("tag"))
            async with self.context.stores.registry() as registry:
                pushed = await registry.push_archive(archive, info, name, tag)
        finally:
            os.close(descriptor)
        log.info("%s pushed %s as %s:%s", self.username, display, name, tag)
        self.set_location("api/images", f"{name}:{tag}")
        self.write_json(pushed, status=201)


class ImageAPIHandler(APIHandler):
    async def get(self, name: str):
        self.require_scope("images", "read")
        async with self.context.stores.registry() as registry:
            image = await registry.image(name)
        self.write_json({**image, "registry": registry.access.host})


class ImageTagAPIHandler(APIHandler):
    async def get(self, name: str, tag: str):
        self.require_scope("images", "read")
        async with self.context.stores.registry() as registry:
            digest, size, media_type = await registry.tag_details(name, tag)
        self.write_json({"name": name, "tag": tag, "digest": digest, "size": size, "media_type": media_type,
                         "image": registry.access.image(name, tag)})

    async def delete(self, name: str, tag: str):
        self.require_scope("images", "write")
        if not self.is_admin:
            raise KarvdashError(403, "only administrators may delete images")
        async with self.context.stores.registry() as registry:
            await registry.delete_tag(name, tag)
        log.warning("%s deleted image %s:%s", self.username, name, tag)
        self.set_status(204)
        self.finish()


# --- pages -------------------------------------------------------------------------------


class ImagesPageHandler(PageHandler):
    async def get(self):
        self.require_scope("images", "read")
        registry = self.context.stores.registry()
        self.render_page(
            "images.html",
            karvdash_active="images",
            registry_host=registry.access.host,
            images_config={"canWrite": self.has_scope("images", "write")},
        )


class ImagePageHandler(PageHandler):
    async def get(self, name: str):
        self.require_scope("images", "read")
        registry = self.context.stores.registry()
        self.render_page(
            "image.html",
            karvdash_active="images",
            registry_host=registry.access.host,
            image_config={"name": name, "registry": registry.access.host,
                          "canDelete": self.is_admin and self.has_scope("images", "write")},
        )


def suggested_reference(storage, domain: str, path: str, user: str) -> tuple[str, str]:
    """The name and tag the add-image form proposes for an archive (its own
    when it can be read, else from the file name). Blocking."""
    try:
        descriptor, _ = open_archive(storage, domain, path, user)
    except KarvdashError:
        return choose_reference(None, path)
    try:
        return choose_reference(inspect_archive(f"/proc/self/fd/{descriptor}"), path)
    except KarvdashError:
        return choose_reference(None, path)
    finally:
        os.close(descriptor)


class AddImagePageHandler(PageHandler):
    async def get(self):
        self.require_scope("images", "write")
        registry = self.context.stores.registry()
        # whose files the archive comes from (an administrator's ?as=, kept by the form)
        user = await self.acting_user()
        # ?file=private/images/app.tar, as the Files page links it
        domain, _, path = self.get_query_argument("file", "").lstrip("/").partition("/")
        name = tag = ""
        if domain in BROWSABLE_DOMAINS and path:
            name, tag = await self.blocking(suggested_reference, self.context.storage, domain, path, user)
        self.render_page(
            "image-add.html",
            karvdash_active="images",
            registry_host=registry.access.host,
            domains=BROWSABLE_DOMAINS,
            domain=domain if domain in BROWSABLE_DOMAINS else "private",
            archive_path=path,
            image_name=name,
            image_tag=tag,
        )


def handlers(context: DashboardContext) -> list:
    return [
        (r"images/?", ImagesPageHandler),
        (r"images/add/?", AddImagePageHandler),
        (rf"images/view/{REPOSITORY}", ImagePageHandler),
        (r"api/images/?", ImagesAPIHandler),
        (rf"api/images/{REPOSITORY}:{TAG}", ImageTagAPIHandler),
        (rf"api/images/{REPOSITORY}", ImageAPIHandler),
    ]


# --- OpenAPI ---------------------------------------------------------------------------------

DIGEST_GROUP = {
    "type": "object",
    "properties": {
        "digest": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "size": {"type": "integer", "description": "bytes of the config and layers (compressed, as stored)"},
        "media_type": {"type": "string"},
    },
}
PUSHED = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "tag": {"type": "string"}, "digest": {"type": "string"},
                   "size": {"type": "integer"}, "image": {"type": "string", "description": "the reference pods pull"}},
}


def openapi(context: DashboardContext) -> dict:
    read, write = scopes_note(scope("images", "read")), scopes_note(scope("images", "write"))
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "repository, e.g. team/app (slashes allowed)"}
    tag = {"name": "tag", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/images": {
            "get": {
                "summary": "The registry's repositories and their tags",
                "description": read,
                "responses": {"200": json_response("Repositories", {"type": "object", "properties": {
                    "registry": {"type": "string"},
                    "images": {"type": "array", "items": {"type": "object", "properties": {
                        "name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}}}}}),
                    **error_responses(401, 403, 404, 502)},
            },
            "post": {
                "summary": "Push an image archive (docker save or OCI layout tar) from your files",
                "description": write + " An existing name:tag is refused (409); name and tag default to the archive's.",
                "parameters": [{"$ref": "#/components/parameters/as"}],
                "requestBody": json_body({"type": "object", "required": ["path"], "properties": {
                    "domain": {"type": "string", "enum": list(BROWSABLE_DOMAINS)}, "path": {"type": "string"},
                    "name": {"type": "string"}, "tag": {"type": "string"}}}),
                "responses": {"201": json_response("The pushed image", PUSHED),
                              **error_responses(400, 401, 403, 404, 409, 502, 503)},
            },
        },
        "/images/{name}": {
            "get": {
                "summary": "A repository's tags grouped by digest, with sizes",
                "description": read,
                "parameters": [name],
                "responses": {"200": json_response("The image", {"type": "object", "properties": {
                    "name": {"type": "string"}, "registry": {"type": "string"},
                    "digests": {"type": "array", "items": DIGEST_GROUP}}}), **error_responses(401, 403, 404, 502)},
            },
        },
        "/images/{name}:{tag}": {
            "get": {
                "summary": "One tag: digest and size",
                "description": read,
                "parameters": [name, tag],
                "responses": {"200": json_response("The tag", PUSHED), **error_responses(401, 403, 404, 502)},
            },
            "delete": {
                "summary": "Delete a tag (administrators); other tags of the same digest stay",
                "description": write,
                "parameters": [name, tag],
                "responses": {"204": {"description": "Deleted"}, **error_responses(401, 403, 404, 405, 502)},
            },
        },
    }
