"""In-app documentation: the Markdown pages of the project's ``docs/``
folder, rendered in the hub's look (the user menu links here). The API
page also lists every endpoint from the OpenAPI document, so it cannot
fall behind the code."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from markupsafe import Markup

from karvdash_hub.core.errors import KarvdashError
from karvdash_hub.core.paths import PROJECT_ROOT

from .context import DashboardContext
from .handlers import PageHandler
from .openapi import document

DOCS_DIR = PROJECT_ROOT / "docs"
PAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
HOME_PAGE = "user-guide"
# order of the side menu; other pages follow alphabetically
PAGE_ORDER = ["user-guide", "api", "cli", "benchmarks"]
METHODS = ("get", "post", "put", "patch", "delete")


@lru_cache(maxsize=1)
def markdown():
    """The Markdown renderer, made when the first page is asked for (mistune
    and its plugins are not loaded by a dashboard nobody reads docs on)."""
    import mistune

    return mistune.create_markdown(escape=True, plugins=["table", "strikethrough", "url"])


def page_title(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("-", " ").capitalize()


def doc_pages(folder: Path = DOCS_DIR) -> list[tuple[str, str]]:
    """(name, title) of every page, in menu order."""
    if not folder.is_dir():
        return []
    names = sorted(p.stem for p in folder.glob("*.md") if PAGE_NAME.match(p.stem))
    ordered = [n for n in PAGE_ORDER if n in names] + [n for n in names if n not in PAGE_ORDER]
    return [(name, page_title(folder / f"{name}.md")) for name in ordered]


@lru_cache(maxsize=32)
def _render(path: Path, mtime: float) -> str:
    return markdown()(path.read_text())


def render_page(name: str, folder: Path = DOCS_DIR) -> str:
    path = folder / f"{name}.md"
    if not PAGE_NAME.match(name) or not path.is_file():
        raise KarvdashError(404, f"no documentation page {name!r}")
    return _render(path, path.stat().st_mtime)


def endpoint_rows(api: dict) -> list[dict]:
    rows = []
    for path, item in api["paths"].items():
        # a path served at another base (Karvdash 2.x's API) is shown whole
        shown = item["servers"][0]["url"] + path if item.get("servers") else path
        for method in METHODS:
            if method in item:
                operation = item[method]
                rows.append(
                    {
                        "method": method.upper(),
                        "path": shown,
                        "summary": operation.get("summary", ""),
                        "description": operation.get("description", ""),
                        "codes": ", ".join(sorted(operation.get("responses", {}))),
                    }
                )
    return rows


class DocsHandler(PageHandler):
    def get(self, name: str | None = None):
        name = name or HOME_PAGE
        body = render_page(name)
        variables = {}
        if name == "api":
            api = document(self.context, self.context.features)
            variables["endpoints"] = endpoint_rows(api)
            variables["api_base"] = api["servers"][0]["url"]
        self.render_page(
            "docs.html",
            doc_body=Markup(body),
            doc_name=name,
            doc_pages=doc_pages(),
            docs_prefix=self.context.url("docs/"),
            openapi_url=self.context.url("api/openapi.json"),
            **variables,
        )


def handlers(context: DashboardContext) -> list:
    return [
        (r"docs/?", DocsHandler),
        (r"docs/([^/]+)/?", DocsHandler),
    ]


def openapi(context: DashboardContext) -> dict:
    return {}  # pages only, no API
