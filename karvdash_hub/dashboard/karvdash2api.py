"""Karvdash 2.x's REST API, for its clients (``karvdash_client``, its
``karvdashctl``, scripts written for them), at ``karvdash2/api/`` below the
dashboard: a Karvdash ``config.ini`` with ``base_url =
https://<hub>/services/karvdash/karvdash2/api`` works unchanged.

Its own paths (``services/``, ``templates/`` and their details) would clash
with the dashboard's API at ``api/``, whose answers have other shapes, hence
the prefix of its own. The same hub tokens and scopes as the dashboard's API
(Karvdash's client sends ``Authorization: Token <token>``, which the hub's
login reads as well); the same stores and checks do the work; errors come
through the one error translation of :mod:`.handlers`, in Karvdash's shape
``{"error": "<message>"}``. :mod:`karvdash_hub.services.karvdash2` shapes
the answers.
"""

from __future__ import annotations

import logging

from karvdash_hub.core.errors import KarvdashError
from karvdash_hub.core.scopes import KARVDASH2_API_PATH, scope
from karvdash_hub.services import karvdash2 as k2

from .context import DashboardContext
from .handlers import NAME, APIHandler
from .openapi import json_body, json_response, scopes_note
from .servicepages import start_service
from .templatepages import add_template, delete_template

log = logging.getLogger("karvdash.dashboard.karvdash2")


class Karvdash2Handler(APIHandler):
    def error_body(self, status_code: int, message: str, extra: dict) -> dict:
        return k2.error_body(message)

    def namespace(self, user: str) -> str:
        return self.context.settings.user_namespace(user)


class ServicesHandler(Karvdash2Handler):
    async def get(self):
        self.require_scope("services", "read")
        user = await self.acting_user()
        store = await self.context.stores.instances()
        instances = await store.list(user, self.namespace(user))
        # each service names its template; one gone since is null, as in Karvdash
        templates = await self.context.stores.templates(user)
        self.write_json(k2.listing([k2.service_shape(i, templates.get(i.template_id)) for i in instances]))

    async def post(self):
        self.require_scope("services", "write")
        user = await self.acting_user()
        template, instance, generated = await start_service(self.context, user, self.json_body())
        self.write_json(k2.service_shape(instance, template, generated), status=201)


class ServiceHandler(Karvdash2Handler):
    async def post(self, name: str):
        """Run ``{"command": [...], "all_pods": 0}`` in the service's pods."""
        self.require_scope("services", "write")
        user = await self.acting_user()
        body = self.json_body()
        try:
            all_pods = k2.all_pods_flag(body.get("all_pods"))
        except ValueError as error:
            raise KarvdashError(400, str(error)) from None
        store = await self.context.stores.instances()
        results = await store.exec(user, self.namespace(user), name, body.get("command"), all_pods)
        log.info("%s ran %r in service %s", user, body.get("command"), name)
        self.write_json(k2.exec_shape(results))

    async def delete(self, name: str):
        self.require_scope("services", "write")
        user = await self.acting_user()
        store = await self.context.stores.instances()
        await store.delete(user, self.namespace(user), name)
        log.info("%s removed service %s", user, name)
        self.set_status(204)
        self.finish()


class TemplatesHandler(Karvdash2Handler):
    async def get(self):
        self.require_scope("templates", "read")
        templates = await self.context.stores.templates(await self.acting_user())
        self.write_json(k2.listing([k2.template_shape(t, listed=True) for t in templates.values()]))

    async def post(self):
        self.require_scope("templates", "write")
        user = await self.acting_user()
        data = self.json_body().get("data")
        if not isinstance(data, str):
            raise KarvdashError(400, 'send {"data": "<template YAML>"}')
        template = await add_template(self.context, user, data)
        # Karvdash answered 200 here, not 201
        self.write_json(k2.template_shape(template))


class TemplateHandler(Karvdash2Handler):
    async def get(self, template_id: str):
        self.require_scope("templates", "read")
        template = await self.context.stores.template(await self.acting_user(), template_id)
        self.write_json(k2.template_shape(template, with_data=True))

    async def delete(self, template_id: str):
        self.require_scope("templates", "write")
        await delete_template(self.context, await self.acting_user(), template_id)
        # Karvdash answered 200 with an empty body
        self.finish()


class UnknownHandler(Karvdash2Handler):
    """Anything else below the prefix: a 404 in Karvdash's shape, not a page."""

    def get(self, path: str):
        raise KarvdashError(404, f"the Karvdash 2.x API has no {path or 'index'}: it has services/ and templates/")

    post = put = patch = delete = get


def handlers(context: DashboardContext) -> list:
    base = KARVDASH2_API_PATH
    return [
        (rf"{base}services/?", ServicesHandler),
        (rf"{base}services/{NAME}/?", ServiceHandler),
        (rf"{base}templates/?", TemplatesHandler),
        (rf"{base}templates/{NAME}/?", TemplateHandler),
        (rf"{base}(.*)", UnknownHandler),
    ]


# --- OpenAPI ---------------------------------------------------------------------------------

ERROR = json_response("Refused; `error` says why (Karvdash's shape).", {
    "type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}})
VARIABLE = {"type": "object", "properties": {
    "name": {"type": "string"}, "default": {"type": "string"}, "label": {"type": "string"},
    "help": {"type": "string"}, "secret": {"type": "boolean"}}}
TEMPLATE = {
    "type": "object",
    "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "description": {"type": "string"},
        "singleton": {"type": "boolean"}, "auth": {"type": "boolean"}, "datasets": {"type": "boolean"},
        "variables": {"type": "array", "items": VARIABLE},
        "filename": {"type": "string", "description": "templates that come with the deployment"},
        "custom": {"type": "boolean", "description": "in listings: one of your own"},
    },
}
SERVICE = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "url": {"type": ["string", "null"]},
        "created": {"type": ["string", "null"], "description": "ISO 8601, e.g. 2021-06-28T10:00:00+00:00"},
        "actions": {"type": "boolean", "description": "always true: it may be removed"},
        "template": {"oneOf": [{"type": "null"}, {**TEMPLATE, "properties": {
            **TEMPLATE["properties"], "values": {"type": "object", "additionalProperties": {"type": "string"}}}}]},
    },
}
NEW_SERVICE = {
    "type": "object",
    "required": ["id"],
    "description": "The template's id and its variables, named in any case (`name` is `NAME`).",
    "properties": {"id": {"type": "string"}},
    "additionalProperties": {"type": "string"},
}
EXEC = {
    "type": "object",
    "required": ["command"],
    "properties": {
        "command": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "all_pods": {"oneOf": [{"type": "boolean"}, {"enum": [0, 1, "0", "1", "true", "false", "True", "False"]}],
                     "default": 0},
    },
}


def errors(*codes: int) -> dict:
    return {str(code): ERROR for code in codes}


def listed(schema: dict) -> dict:
    return {"type": "object", "properties": {"objects": {"type": "array", "items": schema}}}


def openapi(context: DashboardContext) -> dict:
    servers = [{"url": context.url(KARVDASH2_API_PATH.rstrip("/")), "description": "Karvdash 2.x API"}]
    services_read, services_write = scopes_note(scope("services", "read")), scopes_note(scope("services", "write"))
    templates_read, templates_write = scopes_note(scope("templates", "read")), scopes_note(scope("templates", "write"))
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "pattern": f"^{NAME}$"}}
    template_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": f"^{NAME}$"}}
    tag = ["Karvdash 2.x"]
    return {
        "/services/": {
            "servers": servers,
            "get": {
                "tags": tag, "summary": "Karvdash 2.x: your services with their templates and values",
                "description": services_read,
                "responses": {"200": json_response("Your services", listed(SERVICE)), **errors(401, 403, 502, 503)},
            },
            "post": {
                "tags": tag, "summary": "Karvdash 2.x: start a service from a template",
                "description": services_write + " 404 unknown template, 400 bad values, 409 a singleton "
                "template's service exists, 429 no free URL prefix.",
                "requestBody": json_body(NEW_SERVICE),
                "responses": {"201": json_response("The service", SERVICE),
                              **errors(400, 401, 403, 404, 409, 429, 502, 503)},
            },
        },
        "/services/{name}/": {
            "servers": servers,
            "post": {
                "tags": tag, "summary": "Karvdash 2.x: run a command in the service's first running pod (or all)",
                "description": services_write + " 409 when no pod runs.",
                "parameters": [name],
                "requestBody": json_body(EXEC),
                "responses": {"200": json_response("The output of each pod", {"type": "object", "properties": {
                    "result": {"type": "array", "items": {"type": "string"}}}}),
                    **errors(400, 401, 403, 404, 409, 502, 503)},
            },
            "delete": {
                "tags": tag, "summary": "Karvdash 2.x: remove a service",
                "description": services_write,
                "parameters": [name],
                "responses": {"204": {"description": "Removed"}, **errors(401, 403, 404, 502, 503)},
            },
        },
        "/templates/": {
            "servers": servers,
            "get": {
                "tags": tag, "summary": "Karvdash 2.x: the templates you may use",
                "description": templates_read,
                "responses": {"200": json_response("Templates", listed(TEMPLATE)), **errors(401, 403, 502)},
            },
            "post": {
                "tags": tag, "summary": "Karvdash 2.x: add a template of your own from its YAML",
                "description": templates_write + " Answers 200, as Karvdash did.",
                "requestBody": json_body({"type": "object", "required": ["data"],
                                          "properties": {"data": {"type": "string"}}}),
                "responses": {"200": json_response("The template", TEMPLATE),
                              **errors(400, 401, 403, 409, 502, 503)},
            },
        },
        "/templates/{id}/": {
            "servers": servers,
            "get": {
                "tags": tag, "summary": "Karvdash 2.x: one template, its YAML in `data`",
                "description": templates_read,
                "parameters": [template_id],
                "responses": {"200": json_response("The template", {**TEMPLATE, "properties": {
                    **TEMPLATE["properties"], "data": {"type": "string"}}}), **errors(401, 403, 404, 502)},
            },
            "delete": {
                "tags": tag, "summary": "Karvdash 2.x: delete a template you added (others: 403)",
                "description": templates_write + " Answers 200 with an empty body, as Karvdash did.",
                "parameters": [template_id],
                "responses": {"200": {"description": "Deleted"}, **errors(401, 403, 404, 502, 503)},
            },
        },
    }
