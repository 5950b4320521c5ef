"""RFC 9457 problem details: every error answer of the API is one of these
(`application/problem+json`, members type, title, status, detail, and `field` naming the
bad input: `body.timeout`, `query.state`, `path.ike_id`, `header.Authorization`)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

PROBLEM_TYPE = "urn:ikev2d:problem:"  # + kind, e.g. urn:ikev2d:problem:not-found
CONTENT_TYPE = "application/problem+json"

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}


class ApiError(Exception):
    """Raised by handlers; the middleware turns it into a problem response."""

    def __init__(
        self, status: int, kind: str, detail: str, *, field: str | None = None,
        extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.field = field
        self.extra = extra or {}
        self.headers = headers or {}


def problem_body(
    status: int, kind: str, detail: str, field: str | None = None,
    extra: dict[str, Any] | None = None, instance: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + kind,
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if field:
        body["field"] = field
    if extra:
        body.update(extra)
    return body


def problem_response(err: ApiError, instance: str | None = None) -> web.Response:
    body = problem_body(err.status, err.kind, err.detail, err.field, err.extra, instance)
    return web.Response(
        status=err.status, text=json.dumps(body), content_type=CONTENT_TYPE,
        headers=err.headers,
    )


def not_found(what: str, field: str) -> ApiError:
    return ApiError(404, "not-found", f"{what} does not exist", field=field)
