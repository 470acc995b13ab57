"""The HTTP contract of ``optibridge serve`` as an OpenAPI 3.0 document, at ``/openapi.json``.

It holds no secret: the listener tokens and callback signatures are parameters. A test checks
that every route the app serves is in it, and CI runs schemathesis against a live ``serve``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from optibridge import __version__

JSON = "application/json"
ERROR = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": ERROR}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _text(description: str, media: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


def _path_param(name: str, description: str, schema: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema or {"type": "string"}}


def _query(name: str, description: str, schema: dict[str, Any] | None = None
           ) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


TENANT = _path_param("tenant", "The tenant's name in the configuration.")
TOKEN = _path_param("token", "The tenant's listener token (`optibridge listeners register` "
                    "puts it in the URL it registers; Optimove does not sign its calls).")
# {}: without an admin token configured, localhost needs neither.
ADMIN: list[dict[str, list[str]]] = [{"bearer": []}, {"cookie": []}, {}]
ADMIN_REFUSALS = {"401": _error("The admin token is missing or wrong."),
                  "403": _error("No admin token is configured and the caller is not on "
                                "this machine.")}
RECORDED = {"type": "object", "required": ["recorded"],
            "properties": {"recorded": {"type": "integer"}}}
PAGE_NOT_FOUND = {"description": "Not found: a page saying so (or JSON when the path is "
                                  "not a number).",
                  "content": {"text/html": {"schema": {"type": "string"}},
                              JSON: {"schema": ERROR}}}
TOO_LARGE = _error("The body is over the size limit.")
NOT_FOUND = _error("Unknown tenant or wrong token (which one is not said).")

NOTIFICATION = {
    "type": "object", "description": "Optimove's scheduled-campaign notification (keys in any "
    "case).", "required": ["EventTypeID"],
    "properties": {"EventTypeID": {"type": "integer", "enum": [1, 4, 13]},
                   "CampaignID": {"type": "integer"}, "ChannelID": {"type": "integer"}},
}
TRIGGER = {
    "type": "object", "description": "Optimove's EventTypeID 11 call, PascalCase or snake_case "
    "(README: Triggered campaigns).",
    "properties": {"CustomerID": {"type": "string"}, "CampaignID": {"type": "integer"},
                   "ActionID": {"type": "integer"}, "ChannelID": {"type": "integer"},
                   "TemplateID": {"type": "integer"}, "TriggerName": {"type": "string"},
                   "Personalization": {"type": "object"}},
}
CALLBACK = {
    "type": "object", "description": "The platform's event callback (seed 003): the event, "
    "when, and email[0..n] or telephone[0..n] addresses.", "required": ["event", "when"],
    "properties": {"event": {"type": "string", "enum": ["submitted", "delivered", "bounced",
                                                       "opened", "clicked"]},
                   "when": {"type": "string", "example": "2026-11-22 10:00:00"},
                   "email[0]": {"type": "string", "format": "email"},
                   "email[1]": {"type": "string", "format": "email"}},
}


def _operations() -> dict[str, Any]:
    return {
        "/listener/{tenant}/{token}": {"post": {
            "summary": "Optimove's notification (EventTypeIDs 13, 1, 4), recorded before the "
                       "answer.", "operationId": "listener",
            "parameters": [TENANT, TOKEN],
            "requestBody": {"required": True, "content": {JSON: {"schema": NOTIFICATION}}},
            "responses": {"200": _json("Recorded.", RECORDED),
                          "400": _error("Not a notification; says what is wrong."),
                          "404": NOT_FOUND, "413": TOO_LARGE}}},
        "/triggered/{tenant}/{token}": {"post": {
            "summary": "Optimove's EventTypeID 11 call, recorded before the answer.",
            "operationId": "triggered", "parameters": [TENANT, TOKEN],
            "requestBody": {"required": True, "content": {JSON: {"schema": TRIGGER}}},
            "responses": {"200": _json("Recorded.", RECORDED),
                          "400": _error("No customer, campaign or template, or not an object."),
                          "404": NOT_FOUND, "413": TOO_LARGE,
                          "422": _error("Not a triggered channel of the tenant, a template "
                                        "the platform lacks, or a non-scalar value.")}}},
        "/callbacks/{tenant}": {"post": {
            "summary": "The platform's event callback for one send, on the URL signed for it.",
            "operationId": "callback", "parameters": [
                TENANT,
                {"name": "send", "in": "query", "required": True, "schema": {"type": "string"},
                 "description": "The send the URL was signed for."},
                {"name": "sig", "in": "query", "required": True, "schema": {"type": "string"},
                 "description": "HMAC of tenant and send."}],
            "requestBody": {"required": True, "content": {
                "application/x-www-form-urlencoded": {"schema": CALLBACK}}},
            "responses": {
                "200": _json("Stored raw; mapped to customers afterwards.", {
                    "type": "object", "required": ["send", "event", "addresses"],
                    "properties": {"send": {"type": "integer"}, "event": {"type": "string"},
                                   "addresses": {"type": "integer"}}}),
                "400": _error("Signed but malformed: kept for inspection."),
                "403": _error("The signature is missing or wrong: stored nowhere."),
                "404": _error("Unknown tenant."), "413": TOO_LARGE}}},
        "/healthz": {"get": {"summary": "Alive.", "operationId": "healthz",
                             "responses": {"200": _text("ok")}}},
        "/readyz": {"get": {
            "summary": "Database reachable and migrations current.", "operationId": "readyz",
            "responses": {
                "200": _json("Ready.", {"type": "object", "required": ["ready"],
                                        "properties": {"ready": {"type": "boolean"}}}),
                "503": _json("Not ready; says why.", {
                    "type": "object", "required": ["ready", "database"],
                    "properties": {"ready": {"type": "boolean"},
                                   "database": {"type": "string"}}})}}},
        "/metrics": {"get": {
            "summary": "Prometheus metrics.", "operationId": "metrics", "security": ADMIN,
            "responses": {"200": _text("Prometheus text format."), **ADMIN_REFUSALS}}},
        "/ui": {"get": {
            "summary": "The status page.", "operationId": "ui", "security": ADMIN,
            "parameters": [{"name": "token", "in": "query", "required": False,
                            "schema": {"type": "string"},
                            "description": "The admin token, once: sets a cookie and "
                                           "redirects without it."}],
            "responses": {"200": _text("The page.", "text/html"),
                          "303": {"description": "The token was right: cookie set."},
                          **ADMIN_REFUSALS}}},
        "/ui/campaigns/{pk}": {"get": {
            "summary": "One campaign's page.", "operationId": "campaign_page",
            "security": ADMIN,
            "parameters": [_path_param("pk", "The campaign's number in the store.",
                                       {"type": "integer"})],
            "responses": {"200": _text("The page.", "text/html"),
                          "404": PAGE_NOT_FOUND,
                          **ADMIN_REFUSALS}}},
        "/ui/batches": {"get": {
            "summary": "A tenant's report batches, by state and campaign.",
            "operationId": "batches_page", "security": ADMIN,
            "parameters": [
                _query("tenant", "The tenant (default: the first configured)."),
                _query("state", "Comma-separated batch states (default: all)."),
                _query("campaign", "Only this Optimove CampaignID.", {"type": "integer"}),
                _query("after", "Paging: batches after this one.", {"type": "integer"})],
            "responses": {"200": _text("The page.", "text/html"),
                          "404": _text("No such tenant (a page saying so).", "text/html"),
                          **ADMIN_REFUSALS}}},
        "/ui/batches/{id}": {"get": {
            "summary": "One report batch: what it reports, its calls, read-backs and operator "
                       "actions.", "operationId": "batch_page", "security": ADMIN,
            "parameters": [_path_param("id", "The batch's number.", {"type": "integer"})],
            "responses": {"200": _text("The page.", "text/html"), "404": PAGE_NOT_FOUND,
                          **ADMIN_REFUSALS}}},
        "/ui/static/{path}": {"get": {
            "summary": "The status page's stylesheet and scripts.", "operationId": "ui_static",
            "parameters": [_path_param("path", "A file name.")],
            "responses": {"200": {"description": "The file."},
                          "404": _error("No such file.")}}},
        "/openapi.json": {"get": {"summary": "This document.", "operationId": "openapi",
                                  "responses": {"200": _json("OpenAPI 3.0.",
                                                             {"type": "object"})}}},
    }


def document() -> dict[str, Any]:
    """The OpenAPI document of every endpoint ``serve`` answers."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "optibridge", "version": __version__,
                 "description": "The endpoints Optimove and the platform call, the probes, "
                                "and the operator's pages. Every refusal is a 4xx whose JSON "
                                "body's `error` says what was wrong (the status pages answer "
                                "a missing campaign with a page)."},
        "paths": _operations(),
        "components": {
            "schemas": {"Error": {"type": "object", "required": ["error"],
                                  "properties": {"error": {"type": "string"}}}},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "server.admin_token"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "optibridge_admin"}}},
    }


async def openapi_endpoint(_: Request) -> Response:
    return JSONResponse(document())
