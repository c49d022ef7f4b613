"""The API's front door: who am I (``GET api/``) and the OpenAPI document."""

from __future__ import annotations

from karvdash_hub import __version__
from karvdash_hub.core.scopes import CUSTOM_SCOPE_PREFIX

from .context import DashboardContext
from .handlers import APIHandler
from .openapi import document, error_responses, json_response


class APIIndexHandler(APIHandler):
    def get(self):
        self.write_json(
            {
                "version": __version__,
                "user": self.username,
                "admin": self.is_admin,
                "scopes": sorted(s for s in self.current_user.get("scopes", []) if s.startswith(CUSTOM_SCOPE_PREFIX)),
                "openapi": self.context.url("api/openapi.json"),
            }
        )


class OpenAPIHandler(APIHandler):
    """The API document; public, so tools can read it before logging in."""

    async def prepare(self):
        pass

    def get(self):
        self.write_json(document(self.context, self.context.features))


def handlers(context: DashboardContext) -> list:
    return [
        (r"api/?", APIIndexHandler),
        (r"api/openapi.json", OpenAPIHandler),
    ]


def openapi(context: DashboardContext) -> dict:
    return {
        "/": {
            "get": {
                "summary": "Who the caller is and which dashboard scopes it holds",
                "responses": {
                    "200": json_response(
                        "The caller",
                        {
                            "type": "object",
                            "properties": {
                                "version": {"type": "string"},
                                "user": {"type": "string"},
                                "admin": {"type": "boolean"},
                                "scopes": {"type": "array", "items": {"type": "string"}},
                                "openapi": {"type": "string"},
                            },
                        },
                    ),
                    **error_responses(401, 403),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "The OpenAPI document"}},
            }
        },
    }
