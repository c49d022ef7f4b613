"""Files: browse, create folders, rename, move and delete in the Private and
Shared domains (pages and REST API). Downloads and uploads are in
``transfers.py``; path safety and the operations themselves in
``karvdash_hub.files.operations``."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import PurePosixPath
from urllib.parse import quote

from jupyterhub.utils import url_path_join

from karvdash_hub.files import operations as fileops
from karvdash_hub.files.domains import is_path_within
from karvdash_hub.files.operations import BROWSABLE_DOMAINS, DOMAIN_TITLES, DomainFolder, clean_relative_path
from karvdash_hub.services.templates import TEMPLATE_SUFFIX

from .context import DashboardContext
from .handlers import APIHandler, DashboardError, PageHandler
from .transferpages import DownloadHandler, UploadHandler, UploadListHandler

log = logging.getLogger("karvdash.dashboard.files")

DOMAIN = r"([^/]+)"
# the path inside the domain: optional, tornado hands it over percent-decoded
PATH = r"(?:/(.*))?"
# the files the Files page offers to push to the registry (docker save, OCI layout)
IMAGE_ARCHIVE_SUFFIX = ".tar"


class FileHandlerMixin:
    """Resolving ``<domain>/<path>`` of the URL for the acting user."""

    async def domain_folder(self, domain: str) -> DomainFolder:
        user = await self.acting_user()
        return await self.blocking(DomainFolder.for_user, self.context.domains, domain, user)

    async def located(self, domain: str, path: str | None, *, follow: bool):
        """(domain folder, clean relative path, location on disk)."""
        relative = clean_relative_path(path or "")
        folder = await self.domain_folder(domain)
        location = await self.blocking(folder.resolve if follow else folder.locate, relative)
        return folder, relative, location


def path_text(relative: PurePosixPath) -> str:
    return str(relative) if relative.parts else ""


def quote_path(relative: PurePosixPath) -> str:
    """A path for a URL: every name percent-encoded (names may hold # ? %)."""
    return "/".join(quote(part, safe="") for part in relative.parts)


def entry_json(folder: DomainFolder, location, entry: fileops.Entry) -> dict:
    return {**entry.to_json(), "domain": folder.domain, "path": path_text(folder.relative(location))}


def open_for_reading(folder: DomainFolder, relative: PurePosixPath, what: str = "a file") -> int:
    """A descriptor of the file ``relative`` in ``folder``, for features that
    read a user's file (image archives, templates); blocking.

    The last part is opened without following a link, and what was opened
    is checked to be a file inside the domain: a link swapped in after the
    path was checked cannot make the dashboard read anything else.
    """
    if not relative.parts:
        raise fileops.BadPath(f"give the path of {what}")
    location = folder.resolve(relative)
    try:
        descriptor = os.open(location, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise fileops.NotFound(f"{folder.display(relative)} does not exist") from None
    except OSError as error:
        raise fileops.BadPath(f"cannot open {folder.display(relative)}: {error.strerror}") from None
    real = os.path.realpath(f"/proc/self/fd/{descriptor}")
    if not is_path_within(real, str(folder.root)):
        os.close(descriptor)
        raise fileops.OutsideDomain(f"{folder.display(relative)} leads outside the {folder.domain} domain")
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise fileops.BadPath(f"{folder.display(relative)} is a folder, not {what}")
    return descriptor


class FilesAPIHandler(FileHandlerMixin, APIHandler):
    async def get(self, domain: str, path: str | None):
        self.require_scope("files", "read")
        folder, relative, location = await self.located(domain, path, follow=True)
        entry = await self.blocking(fileops.entry_for, folder, location, relative.name or folder.domain)
        result = entry_json(folder, location, entry)
        if entry.type == "folder":
            entries = await self.blocking(fileops.list_folder, folder, location)
            result["path"] = path_text(relative)
            result["entries"] = [e.to_json() for e in entries]
        self.write_json(result)

    async def post(self, domain: str, path: str | None):
        self.require_scope("files", "write")
        body = self.json_body()
        if body.get("type") != "folder":
            raise DashboardError(400, 'send {"type": "folder"} to create a folder; files are sent with /api/uploads')
        folder, relative, location = await self.located(domain, path, follow=False)
        if not relative.parts:
            raise DashboardError(409, f"{folder.display('')} already exists")
        entry = await self.blocking(fileops.make_folder, folder, location)
        log.info("%s created folder %s", self.username, folder.display(relative))
        self.set_header("Location", self.context.url("api/files", domain, str(relative)))
        self.write_json(entry_json(folder, location, entry), status=201)

    async def patch(self, domain: str, path: str | None):
        self.require_scope("files", "write")
        body = self.json_body()
        target_path = body.get("path")
        if not isinstance(target_path, str) or not target_path.strip("/"):
            raise DashboardError(400, 'send {"path": "<new path>"} (and optionally "domain" and "overwrite")')
        target_domain = body.get("domain", domain)
        overwrite = body.get("overwrite", False)
        if not isinstance(overwrite, bool):
            raise DashboardError(400, '"overwrite" must be true or false')
        folder, relative, location = await self.located(domain, path, follow=False)
        target_folder, target_relative, target = await self.located(target_domain, target_path, follow=False)
        trash = await self.blocking(fileops.trash_folder, self.context.domains)
        entry = await self.blocking(
            fileops.move, folder, location, target_folder, target, overwrite=overwrite, trash=trash
        )
        log.info(
            "%s moved %s to %s", self.username, folder.display(relative), target_folder.display(target_relative)
        )
        self.write_json(entry_json(target_folder, target, entry))

    async def delete(self, domain: str, path: str | None):
        self.require_scope("files", "write")
        folder, relative, location = await self.located(domain, path, follow=False)
        await self.blocking(fileops.delete, folder, location)
        log.info("%s deleted %s", self.username, folder.display(relative))
        self.set_status(204)
        self.finish()


class FilesPageHandler(FileHandlerMixin, PageHandler):
    async def get(self, domain: str, path: str | None):
        self.require_scope("files", "read")
        folder, relative, location = await self.located(domain, path, follow=True)
        entry = await self.blocking(fileops.entry_for, folder, location, relative.name or domain)
        await self.acting_user()
        if entry.type == "file":
            self.redirect(self.page_url(url_path_join("api/download", domain, quote_path(relative))))
            return
        if entry.type != "folder":
            raise DashboardError(403, f"{folder.display(relative)} leads outside the domain")
        settings = self.context.settings
        self.render_page(
            "files.html",
            files_config={
                "domain": domain,
                "path": path_text(relative),
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
        (rf"api/download/{DOMAIN}{PATH}", DownloadHandler),
        (r"api/uploads/?", UploadListHandler),
        (r"api/uploads/([^/]+)/?", UploadHandler),
    ]


def openapi(context: DashboardContext) -> dict:
    """This feature's part of the OpenAPI document."""
    from .filesopenapi import paths

    return paths()

