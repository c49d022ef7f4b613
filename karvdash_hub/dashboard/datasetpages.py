"""Datasets: list, add, download (YAML without credentials) and remove the
Datashim Datasets of the user's namespace (pages and REST API).

Shown when ``datasetsAvailable`` is set; needs Kubernetes. The work is done
by ``karvdash_hub.datasets.store`` (Kubernetes) and ``karvdash_hub.datasets.model``
(objects and checks); this module checks who asks and which scope they hold.
"""

from __future__ import annotations

import logging

from karvdash_hub.core.names import DNS_LABEL
from karvdash_hub.core.scopes import scope
from karvdash_hub.datasets import model as ds

from .context import DashboardContext
from .handlers import NAME, APIHandler, PageHandler
from .openapi import error_responses, json_body, json_response, scopes_note

log = logging.getLogger("karvdash.dashboard.datasets")

TYPE_ID = r"([a-z0-9-]{1,32})"


# --- REST API ----------------------------------------------------------------------------


class DatasetsAPIHandler(APIHandler):
    async def get(self):
        self.require_scope("datasets", "read")
        user = await self.acting_user()
        store = await self.context.stores.datasets()
        self.write_json(await store.list(user))

    async def post(self):
        self.require_scope("datasets", "write")
        user = await self.acting_user()
        body = self.json_body()
        store = await self.context.stores.datasets()
        created = await store.create(user, body)
        self.set_location("api/datasets", created["name"])
        self.write_json(created, status=201)


class DatasetAPIHandler(APIHandler):
    async def get(self, name: str):
        self.require_scope("datasets", "read")
        user = await self.acting_user()
        store = await self.context.stores.datasets()
        obj = await store.get(user, name)
        text = ds.dataset_yaml(obj)
        if self.get_query_argument("download", ""):
            self.set_header("Content-Type", "application/yaml; charset=UTF-8")
            self.set_header("Content-Disposition", f'attachment; filename="{name}.yaml"')
            self.finish(text)
            return
        self.write_json({**ds.summary(obj), "yaml": text})

    async def delete(self, name: str):
        self.require_scope("datasets", "write")
        user = await self.acting_user()
        store = await self.context.stores.datasets()
        await store.delete(user, name)
        self.set_status(204)
        self.finish()


class DatasetTypesAPIHandler(APIHandler):
    async def get(self):
        self.require_scope("datasets", "read")
        user = await self.acting_user()
        store = await self.context.stores.datasets()
        self.write_json(await store.type_descriptions(user))


# --- pages -------------------------------------------------------------------------------


class DatasetsPageHandler(PageHandler):
    async def get(self):
        self.require_scope("datasets", "read")
        self.context.stores.check_datasets()
        await self.acting_user()
        self.render_page(
            "datasets.html",
            karvdash_active="datasets",
            types=ds.enabled_types(self.context.settings.disabledDatasetTemplates),
            datasets_config={
                "canWrite": self.has_scope("datasets", "write"),
            },
        )


class NewDatasetPageHandler(PageHandler):
    async def get(self, type_id: str):
        self.require_scope("datasets", "write")
        acting_as = await self.acting_user()
        kind = ds.dataset_type(type_id, self.context.settings.disabledDatasetTemplates, status=404)
        store = await self.context.stores.datasets()
        services = await store.local_services(acting_as)
        self.render_page(
            "dataset-new.html",
            karvdash_active="datasets",
            kind=kind,
            services=sorted(services.get(kind.local_template, {})),
            name_pattern=DNS_LABEL.pattern,
            max_name=ds.MAX_NAME,
        )


def handlers(context: DashboardContext) -> list:
    return [
        (r"datasets/?", DatasetsPageHandler),
        (rf"datasets/new/{TYPE_ID}/?", NewDatasetPageHandler),
        (r"api/datasets/?", DatasetsAPIHandler),
        (rf"api/datasets/{NAME}/?", DatasetAPIHandler),
        (r"api/dataset-types/?", DatasetTypesAPIHandler),
    ]


# --- OpenAPI ---------------------------------------------------------------------------------

SUMMARY = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "type": {"type": "string", "enum": list(ds.TYPES)},
        "type_title": {"type": "string"},
        "endpoint": {"type": "string"},
        "bucket": {"type": "string"},
        "secret": {"type": "string", "description": "the Secret holding the credentials (never their values)"},
        "readonly": {"type": "boolean"},
        "created": {"type": "string"},
        "status": {"type": "string"},
    },
}
NEW_DATASET = {
    "type": "object",
    "required": ["type", "name"],
    "description": "The type's fields (see GET /dataset-types); S3 types need accessKeyID and secretAccessKey, "
    "which go into a Secret and are never shown again.",
    "properties": {
        "type": {"type": "string", "enum": list(ds.TYPES)},
        "name": {"type": "string", "pattern": DNS_LABEL.pattern, "maxLength": ds.MAX_NAME},
        "service": {"type": "string", "description": "s3-local, h3-local: your MinIO or Redis service"},
        "endpoint": {"type": "string"},
        "storageUri": {"type": "string"},
        "url": {"type": "string"},
        "bucket": {"type": "string"},
        "accessKeyID": {"type": "string", "writeOnly": True},
        "secretAccessKey": {"type": "string", "writeOnly": True},
        "region": {"type": "string"},
        "readonly": {"type": "boolean"},
        "format": {"type": "string", "enum": list(ds.ARCHIVE_FORMATS)},
    },
}


def openapi(context: DashboardContext) -> dict:
    read, write = scopes_note(scope("datasets", "read")), scopes_note(scope("datasets", "write"))
    name = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
            {"$ref": "#/components/parameters/as"}]
    return {
        "/datasets": {
            "get": {
                "summary": "List your datasets",
                "description": read,
                "parameters": [{"$ref": "#/components/parameters/as"}],
                "responses": {"200": json_response("Your datasets", {"type": "array", "items": SUMMARY}),
                              **error_responses(401, 403, 404, 502, 503)},
            },
            "post": {
                "summary": "Add a dataset (a taken name gets a random suffix)",
                "description": write,
                "parameters": [{"$ref": "#/components/parameters/as"}],
                "requestBody": json_body(NEW_DATASET),
                "responses": {"201": json_response("The dataset", SUMMARY),
                              **error_responses(400, 401, 403, 404, 409, 502, 503)},
            },
        },
        "/datasets/{name}": {
            "get": {
                "summary": "One dataset with its YAML (credentials left out); ?download=1 sends the YAML as a file",
                "description": read,
                "parameters": [*name, {"name": "download", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": json_response("The dataset", {**SUMMARY, "properties": {
                    **SUMMARY["properties"], "yaml": {"type": "string"}}}), **error_responses(401, 403, 404, 502)},
            },
            "delete": {
                "summary": "Remove a dataset and its credentials Secret",
                "description": write,
                "parameters": name,
                "responses": {"204": {"description": "Removed"}, **error_responses(401, 403, 404, 502)},
            },
        },
        "/dataset-types": {
            "get": {
                "summary": "The dataset types you may add, their fields and your services that can serve them",
                "description": read,
                "parameters": [{"$ref": "#/components/parameters/as"}],
                "responses": {"200": json_response("Types", {"type": "array", "items": {"type": "object"}}),
                              **error_responses(401, 403, 404, 503)},
            },
        },
    }
