"""Files: browse, create folders, rename, move and delete in the Private and
Shared domains (pages and REST API). Downloads and uploads are in
``transferpages.py``; path safety and the operations themselves in
``karvdash_hub.files``."""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from urllib.parse import quote

from jupyterhub.utils import url_path_join

from karvdash_hub.core.errors import KarvdashError
from karvdash_hub.core.scopes import scope
from karvdash_hub.files.listing import DEFAULT_LIMIT, MAX_LIMIT, SORTS, parse_query
from karvdash_hub.files.listing import PARAMETERS as LISTING_PARAMETERS
from karvdash_hub.files.operations import (
    BROWSABLE_DOMAINS,
    DOMAIN_TITLES,
    clean_relative_path,
)
from karvdash_hub.images.registry import IMAGE_ARCHIVE_SUFFIX
from karvdash_hub.services.templates import TEMPLATE_SUFFIX

from .context import DashboardContext
from .handlers import APIHandler, PageHandler
from .openapi import error_responses, json_body, json_response, scopes_note

log = logging.getLogger("karvdash.dashboard.files")

DOMAIN = r"([^/]+)"
# the path inside the domain: optional, tornado hands it over percent-decoded
PATH = r"(?:/(.*))?"


def quote_path(relative: PurePosixPath) -> str:
    """A path for a URL: every name percent-encoded (names may hold # ? %)."""
    return "/".join(quote(part, safe="") for part in relative.parts)


class FilesAPIHandler(APIHandler):
    """The acting user's files through ``context.storage`` (folders or S3)."""

    async def get(self, domain: str, path: str | None):
        self.require_scope("files", "read")
        query = parse_query(self.listing_arguments())
        user = await self.acting_user()
        self.write_json(await self.blocking(self.context.storage.describe, user, domain, path or "", query))

    def listing_arguments(self) -> dict[str, str]:
        """The listing's query arguments, each given at most once, as sent
        (tornado's own getters would turn control characters into spaces)."""
        arguments = {}
        for name in LISTING_PARAMETERS:
            values = self.request.query_arguments.get(name, [])
            if len(values) > 1:
                raise KarvdashError(400, f"give {name} once")
            if values:
                try:
                    arguments[name] = values[0].decode("utf-8")
                except UnicodeDecodeError:
                    raise KarvdashError(400, f"{name} must be UTF-8 text") from None
        return arguments

    async def post(self, domain: str, path: str | None):
        self.require_scope("files", "write")
        body = self.json_body()
        kind = body.get("type")
        if kind not in ("folder", "file"):
            raise KarvdashError(
                400, 'send {"type": "folder"} or {"type": "file"} (an empty file); contents are sent with /api/uploads'
            )
        user = await self.acting_user()
        entry = await self.blocking(self.context.storage.create, user, domain, path or "", kind)
        log.info("%s created %s %s/%s", self.username, kind, domain, entry["path"])
        self.set_location("api/files", domain, entry["path"])
        self.write_json(entry, status=201)

    async def patch(self, domain: str, path: str | None):
        self.require_scope("files", "write")
        body = self.json_body()
        target_path = body.get("path")
        if not isinstance(target_path, str) or not target_path.strip("/"):
            raise KarvdashError(400, 'send {"path": "<new path>"} (and optionally "domain" and "overwrite")')
        target_domain = body.get("domain", domain)
        overwrite = body.get("overwrite", False)
        if not isinstance(overwrite, bool):
            raise KarvdashError(400, '"overwrite" must be true or false')
        if not isinstance(target_domain, str):
            raise KarvdashError(400, '"domain" must be private or shared')
        user = await self.acting_user()
        entry = await self.blocking(
            self.context.storage.move, user, domain, path or "", target_domain, target_path, overwrite
        )
        log.info("%s moved %s/%s to %s/%s", self.username, domain, path or "", entry["domain"], entry["path"])
        self.write_json(entry)

    async def delete(self, domain: str, path: str | None):
        self.require_scope("files", "write")
        user = await self.acting_user()
        display = await self.blocking(self.context.storage.delete, user, domain, path or "")
        log.info("%s deleted %s", self.username, display)
        self.set_status(204)
        self.finish()


class FilesPageHandler(PageHandler):
    async def get(self, domain: str, path: str | None):
        self.require_scope("files", "read")
        relative = clean_relative_path(path or "")
        user = await self.acting_user()
        kind = await self.blocking(self.context.storage.entry_type, user, domain, str(relative) if relative.parts else "")
        if kind == "file":
            self.redirect(self.page_url(url_path_join("api/download", domain, quote_path(relative))))
            return
        if kind != "folder":
            raise KarvdashError(403, f"{domain}/{relative} leads outside the domain")
        settings = self.context.settings
        self.render_page(
            "files.html",
            files_config={
                "domain": domain,
                "path": str(relative) if relative.parts else "",
                "domains": [{"name": d, "title": DOMAIN_TITLES[d]} for d in BROWSABLE_DOMAINS],
                "canWrite": self.has_scope("files", "write"),
                # the row actions that hand a file to the Images and Templates features
                "canAddImage": bool(settings.dockerRegistryURL) and self.has_scope("images", "write"),
                "canAddTemplate": settings.mode == "kubernetes" and self.has_scope("templates", "write"),
                "imageSuffix": IMAGE_ARCHIVE_SUFFIX,
                "templateSuffix": TEMPLATE_SUFFIX,
            },
            domain_title=DOMAIN_TITLES.get(domain, domain),
            karvdash_active="files",
        )


class FilesHomeHandler(PageHandler):
    def get(self):
        query = self.request.query
        self.redirect(self.context.url("files/private/") + (f"?{query}" if query else ""))


def handlers(context: DashboardContext) -> list:
    return [
        (r"files/?", FilesHomeHandler),
        (rf"files/{DOMAIN}{PATH}", FilesPageHandler),
        (rf"api/files/{DOMAIN}{PATH}", FilesAPIHandler),
    ]


# --- OpenAPI ---------------------------------------------------------------------------------

READ = scope("files", "read")
WRITE = scope("files", "write")

ENTRY = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "type": {"type": "string", "enum": ["file", "folder", "link"]},
        "size": {"type": "integer", "description": "bytes (0 for folders)"},
        "modified": {"type": "number", "description": "seconds since the epoch"},
        "domain": {"type": "string"},
        "path": {"type": "string"},
    },
}
LISTING = {
    "type": "object",
    "properties": {
        **ENTRY["properties"],
        "entries": {"type": "array", "items": ENTRY,
                    "description": "only for folders: all of them, or one page with `limit` or `cursor`"},
        "next": {"type": ["string", "null"],
                 "description": "paged answers: the `cursor` of the next page, null on the last"},
        "limit": {"type": "integer", "description": "paged answers: the page's size"},
        "sort": {"type": "string", "enum": list(SORTS), "description": "paged answers"},
        "order": {"type": "string", "enum": ["asc", "desc"], "description": "paged answers"},
        "filter": {"type": "string", "description": "paged answers"},
    },
}
LISTING_QUERY = [
    {"name": "limit", "in": "query", "required": False,
     "description": f"Rows of one page (1 to {MAX_LIMIT}; {DEFAULT_LIMIT} when only `cursor` is given). "
     "With `limit` or `cursor` the answer is one page and has `next`; without both, every entry.",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
    {"name": "cursor", "in": "query", "required": False,
     "description": "The `next` of the page before, with the same path, `sort`, `order` and `filter` "
     "(another listing's cursor is a 400).", "schema": {"type": "string"}},
    {"name": "sort", "in": "query", "required": False,
     "description": "Folders first, then the rest, each by this (a name breaks ties).",
     "schema": {"type": "string", "enum": list(SORTS), "default": "name"}},
    {"name": "order", "in": "query", "required": False,
     "schema": {"type": "string", "enum": ["asc", "desc"], "default": "asc"}},
    {"name": "filter", "in": "query", "required": False,
     "description": "Only names holding this text, in any case.", "schema": {"type": "string"}},
]
DOMAIN_PARAMETER = {
    "name": "domain",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "enum": ["private", "shared"]},
}
PATH_PARAMETER = {
    "name": "path",
    "in": "path",
    "required": True,
    "description": "Path inside the domain, `/`-separated; empty for the top folder. "
    "`..`, `.`, absolute paths, NUL, control characters, backslashes, encoded separators, "
    "names over 255 bytes and paths leading outside the domain through symlinks are refused. "
    "A name to create (a new folder, a move's target) may hold letters of any script and is stored "
    "in Unicode NFC; look-alikes of / and \\ (U+2215, U+FF0F, ...), text-direction controls "
    "(U+202A-U+202E, U+2066-U+2069), invisible characters (U+200B-U+200D, U+2060) and the BOM are refused.",
    "schema": {"type": "string"},
}
AS = {"$ref": "#/components/parameters/as"}




def openapi(context: DashboardContext) -> dict:
    file_parameters = [DOMAIN_PARAMETER, PATH_PARAMETER, AS]
    return {
        "/files/{domain}/{path}": {
            "parameters": file_parameters,
            "get": {
                "summary": "A file's details, or a folder's details and entries (all, or one page)",
                "description": scopes_note(READ),
                "parameters": LISTING_QUERY,
                "responses": {"200": json_response("The file or folder", LISTING), **error_responses(400, 401, 403, 404)},
            },
            "post": {
                "summary": "Create a folder or an empty file",
                "description": scopes_note(WRITE)
                + " The parent folder must exist; an existing name is a 409. A file's contents go up with `/uploads`.",
                "requestBody": json_body(
                    {"type": "object", "required": ["type"], "properties": {"type": {"enum": ["folder", "file"]}}}
                ),
                "responses": {
                    "201": json_response("The new folder or file", ENTRY),
                    **error_responses(400, 401, 403, 404, 409),
                },
            },
            "patch": {
                "summary": "Rename or move (also to the other domain)",
                "description": scopes_note(WRITE)
                + " An existing target is a 409 unless `overwrite` is true; then it is replaced whole.",
                "requestBody": json_body(
                    {
                        "type": "object",
                        "required": ["path"],
                        "properties": {
                            "path": {"type": "string", "description": "new path inside the target domain"},
                            "domain": {"type": "string", "enum": ["private", "shared"], "description": "default: the same"},
                            "overwrite": {"type": "boolean", "default": False},
                        },
                    }
                ),
                "responses": {"200": json_response("The moved file or folder", ENTRY), **error_responses(400, 401, 403, 404, 409)},
            },
            "delete": {
                "summary": "Delete a file, or a folder with everything in it",
                "description": scopes_note(WRITE) + " The top folder of a domain cannot be deleted.",
                "responses": {"204": {"description": "Deleted"}, **error_responses(400, 401, 403, 404)},
            },
        },
    }
