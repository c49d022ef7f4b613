"""Services: start services from templates, list, delete and exec (pages
and REST API), and the ingress-auth endpoint that protects them.

The work is done by ``karvdash_hub.services.store`` (Kubernetes) and
``karvdash_hub.services.templates`` (rendering), which answer with their
own statuses: 404 unknown template or service, 400 bad values, 409
singleton or name conflict, 429 no free URL prefix. This module checks who
asks and which scope they hold.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from jupyterhub.utils import url_path_join
from tornado import web

from karvdash_hub.core.errors import KarvdashError
from karvdash_hub.core.scopes import scope
from karvdash_hub.services import ingressauth
from karvdash_hub.services import templates as st

if TYPE_CHECKING:
    # a type only: services.store loads kubernetes_asyncio (context.stores makes it when needed)
    from karvdash_hub.services.store import Instance

from .context import DashboardContext
from .handlers import NAME, APIHandler, PageHandler
from .openapi import error_responses, json_body, json_response, scopes_note

log = logging.getLogger("karvdash.dashboard.services")


def render_context(settings, prefix: str) -> st.RenderContext:
    """The deployment's part of rendering (the instance's part comes later):
    the ingress-auth endpoints of this dashboard, the registry, the ingress."""
    check = settings.serviceAuthURL or url_path_join(settings.ingressURL or "http://localhost", prefix,
                                                     ingressauth.CHECK_PATH)
    signin = url_path_join(settings.ingressURL or "http://localhost", prefix, ingressauth.SIGNIN_PATH)
    registry = urlsplit(settings.dockerRegistryURL)
    return st.RenderContext(
        username="",
        namespace="",
        hostname="",
        registry=(registry.hostname or "") + (f":{registry.port}" if registry.port else ""),
        ingress_class=settings.ingressClassName,
        url_scheme=urlsplit(settings.ingressURL).scheme or "https",
        auth_url=check,
        signin_url=signin,
        max_objects=settings.templateMaxObjects,
        auth_optional=settings.serviceAuthOptional,
    )


# --- REST API ----------------------------------------------------------------------------


async def start_service(
    context: DashboardContext, user: str, body: dict
) -> tuple[st.ServiceTemplate, Instance, dict[str, str]]:
    """Start a service for ``user`` from an API body ``{"id": <template>,
    <variable>: <value>...}`` (variables named in any case, the rest take
    their defaults): its template, the new instance and the secrets
    generated for it."""
    variables = dict(body)
    template_id = variables.pop("id", None)
    if not isinstance(template_id, str) or not template_id:
        raise KarvdashError(400, 'send {"id": "<template id>", "NAME": ..., <variables>}')
    template = await context.stores.template(user, template_id)
    try:
        given = st.match_variables(template, variables)
    except st.ValuesError as error:
        raise KarvdashError(400, str(error)) from None
    store = await context.stores.instances()
    settings = context.settings
    values = {**template.form_defaults(), **given}
    instance = await store.create(
        template,
        values,
        owner=user,
        namespace=settings.user_namespace(user),
        context=render_context(settings, context.prefix),
        domain=settings.ingress_domain,
        url_prefixes=settings.serviceURLPrefixes,
    )
    log.info("%s started service %s from template %s", user, instance.name, template.id)
    generated = {v.name: values[v.name] for v in template.form_variables if v.secret and v.name not in given}
    return template, instance, generated


class ServicesAPIHandler(APIHandler):
    async def get(self):
        self.require_scope("services", "read")
        user = await self.acting_user()
        store = await self.context.stores.instances()
        instances = await store.list(user, self.context.settings.user_namespace(user))
        self.write_json([i.to_json() for i in instances])

    async def post(self):
        self.require_scope("services", "write")
        user = await self.acting_user()
        _, instance, generated = await start_service(self.context, user, self.json_body())
        self.set_location("api/services", instance.name)
        # credentials generated here are shown this once (they are kept only in a Secret)
        self.write_json({**instance.to_json(), **({"credentials": generated} if generated else {})}, status=201)


class ServiceAPIHandler(APIHandler):
    async def post(self, name: str):
        """Run a command in the service's pods: ``{"command": [...], "all_pods": false}``."""
        self.require_scope("services", "write")
        user = await self.acting_user()
        body = self.json_body()
        all_pods = body.get("all_pods", False)
        if not isinstance(all_pods, bool):
            raise KarvdashError(400, '"all_pods" must be true or false')
        store = await self.context.stores.instances()
        results = await store.exec(user, self.context.settings.user_namespace(user), name, body.get("command"), all_pods)
        log.info("%s ran %r in service %s", user, body.get("command"), name)
        self.write_json(results)

    async def delete(self, name: str):
        self.require_scope("services", "write")
        user = await self.acting_user()
        store = await self.context.stores.instances()
        await store.delete(user, self.context.settings.user_namespace(user), name)
        log.info("%s removed service %s", user, name)
        self.set_status(204)
        self.finish()


# --- pages -------------------------------------------------------------------------------


class ServicesPageHandler(PageHandler):
    async def get(self):
        self.require_scope("services", "read")
        user = await self.acting_user()
        templates = await self.context.stores.templates(user)
        self.render_page(
            "services.html",
            karvdash_active="services",
            services_unavailable=self.context.stores.services_unavailable,
            templates=list(templates.values()),
            services_config={"canWrite": self.has_scope("services", "write")},
        )


class NewServicePageHandler(PageHandler):
    async def get(self, template_id: str):
        self.require_scope("services", "write")
        user = await self.acting_user()
        template = await self.context.stores.template(user, template_id)
        self.render_page(
            "service-new.html",
            karvdash_active="services",
            template=template,
            defaults=template.form_defaults(),
            services_unavailable=self.context.stores.services_unavailable,
            name_pattern=st.NAME_PATTERN.pattern,
            max_name=st.MAX_NAME_LENGTH,
            max_value=st.MAX_VALUE_LENGTH,
        )


# --- ingress auth ---------------------------------------------------------------------------


class IngressAuthCheckHandler(web.RequestHandler):
    """What ingress-nginx asks before each request to a protected service.

    No hub login here: ingress-nginx forwards the browser's cookies, and the
    domain cookie set by the sign-in page says who it is.
    """

    def initialize(self, context: DashboardContext):
        self.context = context

    async def get(self, owner: str, instance: str):
        decision = await ingressauth.check(
            self.get_cookie(ingressauth.COOKIE_NAME),
            owner,
            self.application.settings["cookie_secret"],
            self.context.stores.hub_users,
            allow_admins=self.context.settings.serviceAuthAdmins,
        )
        self.set_status(decision.status)
        self.set_header("Cache-Control", "no-store")
        if decision.user:
            self.set_header("X-Auth-Request-User", decision.user)
        self.finish(decision.reason)

    head = get


class IngressAuthSignInHandler(PageHandler):
    """Where ingress-nginx sends a browser without a valid cookie: after the
    hub's login, set the cookie for the ingress domain and go back."""

    async def get(self):
        settings = self.context.settings
        domain = ingressauth.cookie_domain(settings.ingressURL)
        if not domain:
            raise KarvdashError(503, "ingressURL is not set: services have no host names to sign in to")
        self.set_cookie(
            ingressauth.COOKIE_NAME,
            ingressauth.cookie_value(self.application.settings["cookie_secret"], self.username),
            domain=domain,
            path="/",
            expires_days=ingressauth.COOKIE_MAX_AGE_DAYS,
            secure=settings.ingressURL.startswith("https://"),
            httponly=True,
            samesite="Lax",
        )
        target = ingressauth.safe_redirect(self.get_query_argument("rd", ""), domain)
        self.redirect(target or self.context.url("services"))


def handlers(context: DashboardContext) -> list:
    return [
        (r"services/?", ServicesPageHandler),
        (rf"services/new/{NAME}/?", NewServicePageHandler),
        (r"api/services/?", ServicesAPIHandler),
        (rf"api/services/{NAME}/?", ServiceAPIHandler),
        (rf"{ingressauth.CHECK_PATH}/([a-z0-9]{{1,32}})/{NAME}", IngressAuthCheckHandler),
        (ingressauth.SIGNIN_PATH, IngressAuthSignInHandler),
    ]


# --- OpenAPI ---------------------------------------------------------------------------------

SERVICE = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "template": {"type": "string", "description": "the template's id"},
        "template_name": {"type": "string"},
        "url": {"type": "string", "description": "the address of its ingress (empty without one)"},
        "created": {"type": "string", "description": "ISO 8601 time"},
        "values": {"type": "object", "description": "the values it was made with (secrets left out)"},
        "status": {"type": "string", "enum": ["ready", "progressing", "failed"]},
        "auth": {"type": "boolean", "description": "its address asks for the hub login"},
    },
}
NEW_SERVICE = {
    "type": "object",
    "required": ["id"],
    "description": "The template's id and its variables (GET /templates lists them); variables left out take "
    "their defaults, a secret left out is generated and returned once under `credentials`.",
    "properties": {"id": {"type": "string"}, "NAME": {"type": "string", "pattern": st.NAME_PATTERN.pattern}},
    "additionalProperties": {"type": "string"},
}
EXEC = {
    "type": "object",
    "required": ["command"],
    "properties": {
        "command": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "all_pods": {"type": "boolean", "default": False, "description": "every running pod, not only the first"},
    },
}
EXEC_RESULT = {
    "type": "array",
    "items": {"type": "object", "properties": {
        "pod": {"type": "string"}, "output": {"type": "string"}, "exit_code": {"type": ["integer", "null"]},
        "error": {"type": ["string", "null"], "description": "why the command failed, when no exit code came back"}}},
}


def openapi(context: DashboardContext) -> dict:
    read, write = scopes_note(scope("services", "read")), scopes_note(scope("services", "write"))
    acting = {"$ref": "#/components/parameters/as"}
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "pattern": f"^{NAME}$"}}
    return {
        "/services": {
            "get": {
                "summary": "List your services with their status",
                "description": read + " Needs Kubernetes (503 in local mode).",
                "parameters": [acting],
                "responses": {"200": json_response("Your services", {"type": "array", "items": SERVICE}),
                              **error_responses(401, 403, 502, 503)},
            },
            "post": {
                "summary": "Start a service from a template (a taken NAME gets a random suffix)",
                "description": write + " 404 unknown template, 400 bad values, 409 a singleton template's "
                "service exists, 429 no free URL prefix.",
                "parameters": [acting],
                "requestBody": json_body(NEW_SERVICE),
                "responses": {"201": json_response("The service", {**SERVICE, "properties": {
                    **SERVICE["properties"], "credentials": {"type": "object", "description": "generated secrets"}}}),
                    **error_responses(400, 401, 403, 404, 409, 429, 502, 503)},
            },
        },
        "/services/{name}": {
            "post": {
                "summary": "Run a command in the service's first running pod (or all of them)",
                "description": write + " 409 when no pod runs.",
                "parameters": [name, acting],
                "requestBody": json_body(EXEC),
                "responses": {"200": json_response("Output per pod", EXEC_RESULT),
                              **error_responses(400, 401, 403, 404, 409, 502, 503)},
            },
            "delete": {
                "summary": "Remove a service and everything it runs",
                "description": write,
                "parameters": [name, acting],
                "responses": {"204": {"description": "Removed"}, **error_responses(401, 403, 404, 502, 503)},
            },
        },
    }
