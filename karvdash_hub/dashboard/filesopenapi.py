"""The Files part of the OpenAPI document."""

from __future__ import annotations

from .openapi import error_responses, json_body, json_response, scopes_note

READ = "custom:karvdash:files:read"
WRITE = "custom:karvdash:files:write"

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
        "entries": {"type": "array", "items": ENTRY, "description": "only for folders"},
    },
}
UPLOAD = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "domain": {"type": "string"},
        "path": {"type": "string"},
        "size": {"type": "integer"},
        "offset": {"type": "integer", "description": "bytes received so far; the next chunk starts here"},
        "overwrite": {"type": "boolean"},
        "created": {"type": "number"},
        "complete": {"type": "boolean"},
        "entry": ENTRY,
    },
}
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
    "names over 255 bytes and paths leading outside the domain through symlinks are refused.",
    "schema": {"type": "string"},
}
UPLOAD_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
AS = {"$ref": "#/components/parameters/as"}


def paths() -> dict:
    file_parameters = [DOMAIN_PARAMETER, PATH_PARAMETER, AS]
    return {
        "/files/{domain}/{path}": {
            "parameters": file_parameters,
            "get": {
                "summary": "A file's details, or a folder's details and entries",
                "description": scopes_note(READ),
                "responses": {"200": json_response("The file or folder", LISTING), **error_responses(400, 401, 403, 404)},
            },
            "post": {
                "summary": "Create a folder",
                "description": scopes_note(WRITE) + " The parent folder must exist; an existing name is a 409.",
                "requestBody": json_body({"type": "object", "required": ["type"], "properties": {"type": {"const": "folder"}}}),
                "responses": {"201": json_response("The new folder", ENTRY), **error_responses(400, 401, 403, 404, 409)},
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
        "/download/{domain}/{path}": {
            "parameters": file_parameters,
            "get": {
                "summary": "Download a file (HTTP Range supported) or a folder as a zip",
                "description": scopes_note(READ) + " Streamed; a folder arrives as `<name>.zip` (stored, not compressed).",
                "parameters": [
                    {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"}, "example": "bytes=0-1023"}
                ],
                "responses": {
                    "200": {"description": "The file or zip", "content": {"application/octet-stream": {}}},
                    "206": {"description": "The requested range"},
                    **error_responses(400, 401, 403, 404, 416),
                },
            },
        },
        "/uploads": {
            "get": {
                "summary": "The caller's unfinished uploads",
                "description": scopes_note(WRITE),
                "responses": {
                    "200": json_response("Uploads", {"type": "object", "properties": {"uploads": {"type": "array", "items": UPLOAD}}}),
                    **error_responses(401, 403),
                },
            },
            "post": {
                "summary": "Start an upload",
                "description": scopes_note(WRITE)
                + " The bytes are staged under `uploads/` and appear at `path` in one step when the last one "
                "arrives. An existing name is a 409 unless `overwrite` is true; a folder there is always a 409.",
                "parameters": [AS],
                "requestBody": json_body(
                    {
                        "type": "object",
                        "required": ["domain", "path", "size"],
                        "properties": {
                            "domain": {"type": "string", "enum": ["private", "shared"]},
                            "path": {"type": "string"},
                            "size": {"type": "integer", "minimum": 0},
                            "overwrite": {"type": "boolean", "default": False},
                        },
                    }
                ),
                "responses": {"201": json_response("The upload", UPLOAD), **error_responses(400, 401, 403, 404, 409, 507)},
            },
        },
        "/uploads/{id}": {
            "parameters": [UPLOAD_ID],
            "get": {
                "summary": "An upload's state (the offset to continue from)",
                "description": scopes_note(WRITE),
                "responses": {"200": json_response("The upload", UPLOAD), **error_responses(401, 403, 404)},
            },
            "put": {
                "summary": "Send the next chunk",
                "description": scopes_note(WRITE)
                + " The body is the raw bytes; `Upload-Offset` must equal the upload's offset (else 409 with "
                "the right `offset`). The chunk with the last byte answers 201 with the placed file's `entry`; "
                "an empty chunk at the end retries placing it (after a 409 and a PATCH with overwrite).",
                "parameters": [{"name": "Upload-Offset", "in": "header", "required": True, "schema": {"type": "integer"}}],
                "requestBody": {"required": True, "content": {"application/octet-stream": {}}},
                "responses": {
                    "200": json_response("Chunk stored", UPLOAD),
                    "201": json_response("Upload complete; the file is in place", UPLOAD),
                    **error_responses(400, 401, 403, 404, 409, 413),
                },
            },
            "patch": {
                "summary": "Allow or forbid replacing an existing file",
                "description": scopes_note(WRITE),
                "requestBody": json_body({"type": "object", "required": ["overwrite"], "properties": {"overwrite": {"type": "boolean"}}}),
                "responses": {"200": json_response("The upload", UPLOAD), **error_responses(400, 401, 403, 404)},
            },
            "delete": {
                "summary": "Cancel an upload (its staged bytes are removed)",
                "description": scopes_note(WRITE),
                "responses": {"204": {"description": "Cancelled"}, **error_responses(401, 403, 404, 409)},
            },
        },
    }
