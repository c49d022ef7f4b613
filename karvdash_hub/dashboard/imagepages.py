"""Images: the repositories and tags of the private Docker registry, tags
grouped by digest with their size, deleting a tag (administrators) and
pushing an image archive from the file domains (pages and REST API).

Shown when ``dockerRegistryURL`` is set. The registry work is in
``karvdash_hub.images.registry``; an archive is opened here, inside the user's
domain, and handed to the push as that open file, so a symlink swapped in
meanwhile cannot make it read anything else.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import ClassVar

from karvdash_hub.core.scopes import scope
from karvdash_hub.files.operations import BROWSABLE_DOMAINS, DomainFolder, FileError, clean_relative_path
from karvdash_hub.images.registry import (
    RegistryAccess,
    RegistryClient,
    RegistryError,
    check_repository,
    check_tag,
    inspect_archive,
)

from .context import DashboardContext, Feature
from .filepages import open_for_reading
from .handlers import APIHandler, DashboardError, PageHandler
from .openapi import error_responses, json_body, json_response, scopes_note

log = logging.getLogger("karvdash.dashboard.images")

REPOSITORY = r"([a-z0-9][a-z0-9._/-]{0,254})"
TAG = r"([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})"
CONCURRENT_TAG_LISTS = 8


@dataclass
class ImagesFeature(Feature):
    key: ClassVar[str] = "images"
    context: DashboardContext
    access: RegistryAccess | None = None

    def registry(self) -> RegistryClient:
        """A client for one request (its connections close with it)."""
        if self.access is None:
            self.access = RegistryAccess.from_settings(self.context.settings)
            if self.access is None:
                raise DashboardError(404, "no registry is configured on this deployment (dockerRegistryURL)")
        return RegistryClient(self.access)


class ImagesMixin:
    @property
    def feature(self) -> ImagesFeature:
        return ImagesFeature.of(self.context)

    async def run(self, call, *args):
        try:
            return await call(*args)
        except RegistryError as error:
            raise DashboardError(error.status, error.message) from None

    async def overview(self, registry: RegistryClient) -> list[dict]:
        """Every repository with its tags."""
        names = await self.run(registry.repositories)
        limit = asyncio.Semaphore(CONCURRENT_TAG_LISTS)

        async def one(name: str) -> dict:
            async with limit:
                try:
                    return {"name": name, "tags": await registry.tags(name)}
                except RegistryError as error:
                    if error.status == 404:
                        return {"name": name, "tags": []}
                    raise DashboardError(error.status, error.message) from None

        return list(await asyncio.gather(*(one(n) for n in names)))

    async def open_archive(self, domain: str, path: str) -> tuple[int, str]:
        """Open the archive ``domain/path`` of the acting user for reading:
        (descriptor, display name)."""
        if domain not in BROWSABLE_DOMAINS:
            raise DashboardError(400, f"domain must be one of {', '.join(BROWSABLE_DOMAINS)}")
        user = await self.acting_user()

        def opened():
            folder = DomainFolder.for_user(self.context.domains, domain, user)
            relative = clean_relative_path(path)
            return open_for_reading(folder, relative, "an image archive (.tar)"), folder.display(relative)

        try:
            return await self.blocking(opened)
        except FileError as error:
            raise DashboardError(error.status, error.message) from None


def archive_name_hint(path: str) -> str:
    """A name to suggest from the file name: ``images/My_App.tar`` -> ``my-app``."""
    stem = PurePosixPath(path).name.split(".")[0].lower()
    cleaned = "".join(c if c.isalnum() else "-" for c in stem).strip("-")
    return "-".join(part for part in cleaned.split("-") if part)


# --- REST API ----------------------------------------------------------------------------


class ImagesAPIHandler(ImagesMixin, APIHandler):
    async def get(self):
        self.require_scope("images", "read")
        async with self.feature.registry() as registry:
            self.write_json({"registry": registry.access.host, "images": await self.overview(registry)})

    async def post(self):
        """Push ``{"domain", "path", "name"?, "tag"?}``; name and tag default
        to the archive's own (``docker save``'s RepoTags)."""
        self.require_scope("images", "write")
        body = self.json_body()
        domain, path = body.get("domain", "private"), body.get("path")
        if not isinstance(domain, str) or not isinstance(path, str) or not path:
            raise DashboardError(400, 'send {"domain": "private", "path": "<archive.tar>", "name": ..., "tag": ...}')
        descriptor, display = await self.open_archive(domain, path)
        try:
            try:
                info = await self.blocking(inspect_archive, f"/proc/self/fd/{descriptor}")
            except RegistryError as error:
                raise DashboardError(400, f"{display}: {error.message}") from None
            name, tag = body.get("name"), body.get("tag")
            suggested = info.suggestion()
            if not name:
                name = suggested[0] if suggested else archive_name_hint(path)
            if not tag:
                tag = suggested[1] if suggested and suggested[0] == name else "latest"
            try:
                check_repository(name)
                check_tag(tag)
            except RegistryError as error:
                raise DashboardError(400, error.message) from None
            async with self.feature.registry() as registry:
                pushed = await self.run(registry.push_archive, f"/proc/self/fd/{descriptor}", info, name, tag)
        finally:
            os.close(descriptor)
        log.info("%s pushed %s as %s:%s", self.username, display, name, tag)
        self.set_header("Location", self.context.url("api/images", f"{name}:{tag}"))
        self.write_json(pushed, status=201)


class ImageAPIHandler(ImagesMixin, APIHandler):
    async def get(self, name: str):
        self.require_scope("images", "read")
        async with self.feature.registry() as registry:
            image = await self.run(registry.image, name)
        self.write_json({**image, "registry": registry.access.host})


class ImageTagAPIHandler(ImagesMixin, APIHandler):
    async def get(self, name: str, tag: str):
        self.require_scope("images", "read")
        try:
            async with self.feature.registry() as registry:
                digest, size, media_type = await registry.tag_details(name, tag)
        except RegistryError as error:
            if error.status == 404:
                raise DashboardError(404, f"no image {name}:{tag} in the registry") from None
            raise DashboardError(error.status, error.message) from None
        self.write_json({"name": name, "tag": tag, "digest": digest, "size": size, "media_type": media_type,
                         "image": registry.access.image(name, tag)})

    async def delete(self, name: str, tag: str):
        self.require_scope("images", "write")
        if not self.is_admin:
            raise DashboardError(403, "only administrators may delete images")
        async with self.feature.registry() as registry:
            await self.run(registry.delete_tag, name, tag)
        log.warning("%s deleted image %s:%s", self.username, name, tag)
        self.set_status(204)
        self.finish()


# --- pages -------------------------------------------------------------------------------


class ImagesPageHandler(ImagesMixin, PageHandler):
    async def get(self):
        self.require_scope("images", "read")
        registry = self.feature.registry()
        self.render_page(
            "images.html",
            karvdash_active="images",
            registry_host=registry.access.host,
            images_config={"canWrite": self.has_scope("images", "write")},
        )


class ImagePageHandler(ImagesMixin, PageHandler):
    async def get(self, name: str):
        self.require_scope("images", "read")
        registry = self.feature.registry()
        self.render_page(
            "image.html",
            karvdash_active="images",
            registry_host=registry.access.host,
            image_config={"name": name, "registry": registry.access.host,
                          "canDelete": self.is_admin and self.has_scope("images", "write")},
        )


class AddImagePageHandler(ImagesMixin, PageHandler):
    async def get(self):
        self.require_scope("images", "write")
        registry = self.feature.registry()
        # whose files the archive comes from (an administrator's ?as=, kept by the form)
        await self.acting_user()
        # ?file=private/images/app.tar, as the Files page links it
        domain, _, path = self.get_query_argument("file", "").lstrip("/").partition("/")
        name = tag = ""
        if domain in BROWSABLE_DOMAINS and path:
            try:
                descriptor, _ = await self.open_archive(domain, path)
            except DashboardError:
                descriptor = None
            if descriptor is not None:
                try:
                    suggested = (await self.blocking(inspect_archive, f"/proc/self/fd/{descriptor}")).suggestion()
                except RegistryError:
                    suggested = None
                finally:
                    os.close(descriptor)
                name, tag = suggested or (archive_name_hint(path), "latest")
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
