"""Pure parts of the dashboard: page rendering in the hub's look, the docs,
the OpenAPI document, ranges and download names, routes from features."""

from __future__ import annotations

import io
import json
import re
import zipfile
from types import SimpleNamespace

import pytest
from tornado import web

from karvdash_hub.core.settings import load_settings
from karvdash_hub.dashboard import app, docs, openapi
from karvdash_hub.dashboard.pages import PageRenderer, tojson_script
from karvdash_hub.files import downloads
from karvdash_hub.files.domains import FileDomains
from karvdash_hub.files.operations import DomainFolder, ensure_folders


@pytest.fixture
def settings(tmp_path):
    return load_settings(
        environ={"KARVDASH_STATE_DIR": str(tmp_path), "KARVDASH_DASHBOARD_TITLE": "Lab", "KARVDASH_DASHBOARD_THEME": "CARV"}
    )


@pytest.fixture
def renderer(settings):
    return PageRenderer(settings, base_url="/", hub_prefix="/hub/")


def render_files(renderer, user, acting_as=""):
    return renderer.render(
        "files.html",
        user=user,
        xsrf_token="XSRF123",
        karvdash_static=lambda path: f"/services/karvdash/static/{path}",
        karvdash_service_prefix="/services/karvdash/",
        karvdash_url=lambda path, **query: "/services/karvdash/" + path,
        files_config={"domain": "private", "path": "", "as": "", "domains": [{"name": "private", "title": "Private"}, {"name": "shared", "title": "Shared"}], "canWrite": True},
        acting_as=acting_as,
        domain_title="Private",
        karvdash_active="files",
    )


def test_pages_extend_the_hub_layout_with_hub_urls_and_settings(renderer):
    html = render_files(renderer, {"name": "alice", "admin": False, "scopes": []})
    assert "<title>Files - Lab</title>" in html
    assert 'href="/hub/static/css/style.min.css?v=' in html
    assert 'base_url: "/hub/"' in html
    assert 'xsrf_token: "XSRF123"' in html
    assert 'document.body.classList.add("karvdash-theme-carv")' in html
    for label, path in (("Files", "files"), ("Services", "services"), ("Templates", "templates")):
        assert f'id="nav-{path}" href="/services/karvdash/{path}">{label}</a>' in html
    assert 'href="/hub/logout"' in html
    assert 'href="/services/karvdash/docs/">Documentation' in html
    assert 'href="/hub/admin"' not in html
    assert 'id="upload-input"' in html and 'id="new-folder-button"' in html


def test_admins_see_the_admin_link_from_the_admin_flag(renderer):
    html = render_files(renderer, {"name": "root", "admin": True, "scopes": ["custom:karvdash:files:read"]})
    assert 'href="/hub/admin"' in html
    assert "admin_access: true" in html


def test_acting_as_another_user_shows_a_banner_and_the_scripts_keep_it(renderer):
    html = render_files(renderer, {"name": "root", "admin": True, "scopes": []}, acting_as="bob")
    assert 'id="acting-as"' in html and "You are acting as <strong>bob</strong>" in html
    assert '"as": "bob"' in html
    alone = render_files(renderer, {"name": "alice", "admin": False, "scopes": []})
    assert 'id="acting-as"' not in alone and '"as": ""' in alone


def test_json_in_a_script_element_cannot_close_it():
    assert str(tojson_script({"a": "</script><b>&"})) == '{"a": "\\u003c/script\\u003e\\u003cb\\u003e\\u0026"}'


def test_doc_pages_exist_and_render(tmp_path):
    names = [name for name, _ in docs.doc_pages()]
    assert names[:3] == ["user-guide", "api", "cli"]
    html = docs.render_page("user-guide")
    assert "<h1>User guide</h1>" in html
    with pytest.raises(Exception) as missing:
        docs.render_page("../README")
    assert missing.value.status == 404


def test_the_user_guide_and_api_reference_have_a_section_per_feature():
    from karvdash_hub.core.scopes import FEATURES

    guide, api = (docs.DOCS_DIR / "user-guide.md").read_text(), (docs.DOCS_DIR / "api.md").read_text()
    for feature in FEATURES:
        assert f"\n## {feature.capitalize()}\n" in guide, feature
        assert f"\n## {feature.capitalize()}\n" in api, feature
        assert f"`custom:karvdash:{feature}:" in guide


def fake_context(settings):
    return SimpleNamespace(settings=settings, url=lambda *parts: "/services/karvdash/" + "/".join(parts))


def test_openapi_document_lists_every_files_endpoint_with_the_error_shape(settings):
    modules = app.FEATURES
    document = openapi.document(fake_context(settings), modules)
    assert document["openapi"].startswith("3.")
    assert document["servers"] == [{"url": "/services/karvdash/api"}]
    assert {
        "/", "/openapi.json", "/files/{domain}/{path}", "/download/{domain}/{path}", "/uploads", "/uploads/{id}"
    } <= set(document["paths"])
    assert set(document["paths"]["/files/{domain}/{path}"]) == {"parameters", "get", "post", "patch", "delete"}
    assert document["components"]["schemas"]["Error"]["required"] == ["status", "message"]
    rows = docs.endpoint_rows(document)
    assert ("PUT", "/uploads/{id}") in [(r["method"], r["path"]) for r in rows]
    json.dumps(document)


HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def api_routes(context, modules) -> list[tuple[str, type]]:
    """(pattern, handler) of every route below api/, in the order tornado tries them."""
    return [(pattern, handler) for m in modules for pattern, handler in m.handlers(context) if pattern.startswith("api/")]


def handled_methods(handler: type) -> set[str]:
    return {m for m in HTTP_METHODS if getattr(handler, m) is not getattr(web.RequestHandler, m)}


def test_every_api_route_and_method_is_in_the_openapi_document(settings):
    """The API reference is generated from the OpenAPI document: every
    endpoint a feature serves must be in it, and nothing it does not serve."""
    modules = app.FEATURES
    context = fake_context(settings)
    assert all(hasattr(m, "openapi") for m in modules if any(p.startswith("api/") for p, _ in m.handlers(context)))
    document = openapi.document(context, modules)
    routes = api_routes(context, modules)
    served: dict[str, set[str]] = {}
    for path, item in document["paths"].items():
        if "servers" in item:
            continue  # served at another base (Karvdash 2.x's API): tests/unit/test_karvdash2.py
        # a documented path with every parameter filled in, as a client would send it
        url = "api" + re.sub(r"\{[^}]+\}", "x1", path)
        handler = next((h for pattern, h in routes if re.fullmatch(pattern, url)), None)
        assert handler is not None, f"{path} is documented but no route serves it"
        documented = {m for m in HTTP_METHODS if m in item}
        assert documented == handled_methods(handler), path
        served.setdefault(handler.__name__, set()).update(documented)
    for pattern, handler in routes:
        assert served.get(handler.__name__) == handled_methods(handler), f"{pattern} is not documented"
    rows = {(r["method"], r["path"]) for r in docs.endpoint_rows(document)}
    assert {("GET", "/services"), ("POST", "/services"), ("POST", "/services/{name}"), ("DELETE", "/services/{name}"),
            ("GET", "/templates"), ("POST", "/templates"), ("GET", "/templates/{id}"),
            ("DELETE", "/templates/{id}")} <= rows


def test_routes_come_from_the_feature_modules(settings):
    calls = []

    class Feature:
        @staticmethod
        def handlers(context):
            calls.append(context)
            return [(r"things/?", app.OAuthCallbackHandler)]

    context = SimpleNamespace(prefix="/services/karvdash/", hub=SimpleNamespace(api_token="t" * 32), hub_auth=SimpleNamespace(login_url="/hub/login"))
    application = app.make_app(context, features=[Feature])
    rules = {rule.matcher.regex.pattern: rule for rule in application.wildcard_router.rules}
    assert rules["/services/karvdash/things/?$"].target_kwargs == {"context": context}
    assert calls == [context]
    assert context.features == (Feature,)


@pytest.mark.parametrize(
    "header, expected",
    [
        ("bytes=0-9", (0, 10)),
        ("bytes=5-", (5, 100)),
        ("bytes=-10", (90, 100)),
        ("bytes=-1000", (0, 100)),
        ("bytes=90-1000", (90, 100)),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=-", None),
    ],
)
def test_parse_range(header, expected):
    assert downloads.parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=200-300", "bytes=9-3", "bytes=-0"])
def test_unsatisfiable_ranges(header):
    with pytest.raises(ValueError):
        downloads.parse_range(header, 100)


def test_content_disposition_is_ascii_safe():
    assert downloads.content_disposition('a "b".txt') == "attachment; filename=\"a _b_.txt\"; filename*=UTF-8''a%20%22b%22.txt"
    value = downloads.content_disposition("été.csv")
    assert value.isascii() and "filename*=UTF-8''%C3%A9t%C3%A9.csv" in value


def test_folder_zip_has_the_files(tmp_path):
    root = tmp_path / "files"
    domains = FileDomains(scheme="file", server="", export_path=str(root), root=root)
    ensure_folders(domains, "alice")
    folder = DomainFolder.for_user(domains, "private", "alice")
    (folder.root / "d" / "sub").mkdir(parents=True)
    (folder.root / "d" / "empty").mkdir()
    (folder.root / "d" / "a.txt").write_text("hello")
    (folder.root / "d" / "sub" / "b.bin").write_bytes(bytes(range(256)) * 1000)
    archive = downloads.build_zip(folder, [(folder.root / "d", "d")])
    data = b""
    while batch := downloads.next_batch(archive):
        data += batch
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert sorted(z.namelist()) == ["d/", "d/a.txt", "d/empty/", "d/sub/b.bin"]
        assert z.read("d/sub/b.bin") == bytes(range(256)) * 1000
        assert z.read("d/a.txt") == b"hello"
