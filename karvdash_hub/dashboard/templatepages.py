"""Templates: list, download, add (upload or a ``*.template.yaml`` from
Files) and delete users' own templates (pages and REST API). Shipped and
admin templates are read-only (403 on delete)."""

from __future__ import annotations

import logging

from karvdash_hub.core.errors import KarvdashError
from karvdash_hub.core.scopes import scope
from karvdash_hub.services import catalogue
from karvdash_hub.services import templates as st

from .context import DashboardContext
from .handlers import NAME, APIHandler, PageHandler
from .openapi import error_responses, json_body, json_response, scopes_note
from .servicepages import render_context

log = logging.getLogger("karvdash.dashboard.templates")


async def add_template(context: DashboardContext, user: str, text: str) -> st.ServiceTemplate:
    """Add the template ``text`` as one of ``user``'s own (a taken id gets a suffix)."""
    taken = await context.stores.templates(user)
    store = await context.stores.user_templates()
    template = await store.add(user, context.settings.user_namespace(user), text, taken,
                               policy=render_context(context.settings, context.prefix))
    log.info("%s added template %s", user, template.id)
    for note in template.notes:
        log.warning("template %s of %s: %s", template.id, user, note)
    return template


async def delete_template(context: DashboardContext, user: str, template_id: str) -> None:
    """Delete one of ``user``'s own templates; the deployment's are refused (403)."""
    template = await context.stores.template(user, template_id)
    if not template.deletable:
        raise KarvdashError(403, f"{template.name} comes with the deployment and cannot be deleted")
    store = await context.stores.user_templates()
    await store.delete(user, context.settings.user_namespace(user), template_id)
    log.info("%s deleted template %s", user, template_id)


class TemplatesAPIHandler(APIHandler):
    async def get(self):
        self.require_scope("templates", "read")
        user = await self.acting_user()
        templates = await self.context.stores.templates(user)
        self.write_json([t.summary() for t in templates.values()])

    async def post(self):
        """Add a template: ``{"data": "<yaml>"}`` or ``{"domain": "private", "path": "x.template.yaml"}``."""
        self.require_scope("templates", "write")
        user = await self.acting_user()
        body = self.json_body()
        if isinstance(body.get("data"), str):
            text = body["data"]
        elif isinstance(body.get("path"), str):
            text = await self.blocking(
                catalogue.read_template_file, self.context.storage, body.get("domain", "private"), body["path"], user
            )
        else:
            raise KarvdashError(400, 'send {"data": "<template YAML>"} or {"domain": ..., "path": ...}')
        template = await add_template(self.context, user, text)
        self.set_location("api/templates", template.id)
        self.write_json(template.summary(), status=201)


class TemplateAPIHandler(APIHandler):
    async def get(self, template_id: str):
        self.require_scope("templates", "read")
        template = await self.context.stores.template(await self.acting_user(), template_id)
        if self.get_query_argument("download", ""):
            self.set_header("Content-Type", "application/yaml; charset=UTF-8")
            self.set_header("Content-Disposition", f'attachment; filename="{template.id}{st.TEMPLATE_SUFFIX}"')
            self.finish(template.text)
            return
        self.write_json({**template.summary(), "data": template.text})

    async def delete(self, template_id: str):
        self.require_scope("templates", "write")
        await delete_template(self.context, await self.acting_user(), template_id)
        self.set_status(204)
        self.finish()


class TemplatesPageHandler(PageHandler):
    async def get(self):
        self.require_scope("templates", "read")
        user = await self.acting_user()
        templates = await self.context.stores.templates(user)
        self.render_page(
            "templates.html",
            karvdash_active="templates",
            templates=list(templates.values()),
            can_add=self.context.stores.on_kubernetes and self.has_scope("templates", "write"),
            services_unavailable=self.context.stores.services_unavailable,
        )


def handlers(context: DashboardContext) -> list:
    return [
        (r"templates/?", TemplatesPageHandler),
        (r"api/templates/?", TemplatesAPIHandler),
        (rf"api/templates/{NAME}/?", TemplateAPIHandler),
    ]


# --- OpenAPI ---------------------------------------------------------------------------------

TEMPLATE = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "singleton": {"type": "boolean", "description": "at most one service per user"},
        "auth": {"type": "boolean", "description": "its services' addresses ask for the hub login"},
        "datasets": {"type": "boolean", "description": "your datasets are mounted into its pods"},
        "source": {"type": "string", "enum": ["system", "admin", "user"]},
        "custom": {"type": "boolean", "description": "added by you (only these can be deleted)"},
        "variables": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "default": {"type": "string"}, "help": {"type": "string"},
            "label": {"type": "string"}, "secret": {"type": "boolean"}}}},
    },
}
NEW_TEMPLATE = {
    "type": "object",
    "description": "The YAML itself, or a `*.template.yaml` file of your domains.",
    "oneOf": [
        {"required": ["data"], "properties": {"data": {"type": "string", "maxLength": st.MAX_TEMPLATE_BYTES}}},
        {"required": ["path"], "properties": {"domain": {"type": "string", "enum": ["private", "shared"],
                                                        "default": "private"}, "path": {"type": "string"}}},
    ],
}


def openapi(context: DashboardContext) -> dict:
    read, write = scopes_note(scope("templates", "read")), scopes_note(scope("templates", "write"))
    acting = {"$ref": "#/components/parameters/as"}
    template_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": f"^{NAME}$"}}
    return {
        "/templates": {
            "get": {
                "summary": "The templates you may start services from",
                "description": read,
                "parameters": [acting],
                "responses": {"200": json_response("Templates", {"type": "array", "items": TEMPLATE}),
                              **error_responses(401, 403, 502)},
            },
            "post": {
                "summary": "Add a template of your own (a taken id gets a random suffix)",
                "description": write + " Needs Kubernetes (503 in local mode).",
                "parameters": [acting],
                "requestBody": json_body(NEW_TEMPLATE),
                "responses": {"201": json_response("The template", TEMPLATE),
                              **error_responses(400, 401, 403, 404, 409, 502, 503)},
            },
        },
        "/templates/{id}": {
            "get": {
                "summary": "One template with its YAML in `data`; ?download=1 sends the YAML as a file",
                "description": read,
                "parameters": [template_id, acting, {"name": "download", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": json_response("The template", {**TEMPLATE, "properties": {
                    **TEMPLATE["properties"], "data": {"type": "string"}}}), **error_responses(401, 403, 404, 502)},
            },
            "delete": {
                "summary": "Delete a template you added (others: 403)",
                "description": write,
                "parameters": [template_id, acting],
                "responses": {"204": {"description": "Deleted"}, **error_responses(401, 403, 404, 502, 503)},
            },
        },
    }
