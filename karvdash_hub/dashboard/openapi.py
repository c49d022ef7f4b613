"""The OpenAPI document of the dashboard's REST API, assembled from the
``openapi(context)`` part of every feature module."""

from __future__ import annotations

from karvdash_hub import __version__
from karvdash_hub.core.scopes import ACCESS_SCOPE, CUSTOM_SCOPE_PREFIX, SERVICE_NAME

ERROR = {"$ref": "#/components/responses/Error"}


def error_responses(*codes: int) -> dict:
    return {str(code): ERROR for code in codes}


def json_response(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def json_body(schema: dict, required: bool = True) -> dict:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def scopes_note(*scopes: str) -> str:
    return "Needs " + " and ".join(f"`{s}`" for s in scopes) + "."


def document(context, features) -> dict:
    paths: dict = {}
    for feature in features:
        paths.update(feature.openapi(context))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{context.settings.dashboardTitle} dashboard API",
            "version": __version__,
            "description": (
                "JSON API of the karvdash dashboard. Authenticate with a JupyterHub API token "
                "(`Authorization: token <token>`); the token needs "
                f"`{ACCESS_SCOPE}` and the `{CUSTOM_SCOPE_PREFIX}<feature>:<read|write>` "
                "scope of what it does. Browsers use the dashboard's login cookie and send the "
                "`_xsrf` cookie's value in `X-XSRFToken`. Every error answers "
                '`{"status": <code>, "message": "..."}`. Administrators may add `?as=<user>` to '
                "act as another user (logged)."
            ),
        },
        "servers": [{"url": context.url("api")}],
        "security": [{"hubToken": []}, {"hubCookie": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "hubToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`token <JupyterHub API token>`",
                },
                "hubCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": f"service-{SERVICE_NAME}",
                    "description": "Set by the hub's OAuth login; writes also need X-XSRFToken.",
                },
            },
            "parameters": {
                "as": {
                    "name": "as",
                    "in": "query",
                    "required": False,
                    "description": "Administrators only: act as this user (logged).",
                    "schema": {"type": "string"},
                },
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["status", "message"],
                    "properties": {"status": {"type": "integer"}, "message": {"type": "string"}},
                },
            },
            "responses": {
                "Error": json_response("The request was refused; `message` says why.", {"$ref": "#/components/schemas/Error"}),
            },
        },
    }
