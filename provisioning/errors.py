"""The service's one API error class, and the handler that answers every API error as JSON.

A view that refuses raises `ApiError(status_code, code, message, **extra)`; the handler
answers `{"code": ..., "message": ..., **extra}` with that status. `code` is for machines:
the product's codes where the device agent knows them (`REST007`, an MDM restriction), else
a snake_case name (`not_found`, `session_limit`). werkzeug's own HTTP errors (an unknown route,
a wrong method, a body too large, an unhandled exception's 500) take the same JSON shape on the
API paths (`/provision/`, `/api/`), so a client never has to parse an HTML error page; the
pages people open in a browser keep HTML errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

API_PREFIXES = ("/provision/", "/api/")


class ApiError(Exception):
    """A refusal of an API request: HTTP status, machine code, message for people, extras."""

    def __init__(self, status_code: int, code: str, message: str, *,
                 headers: Mapping[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})  # e.g. Retry-After with a 503
        self.extra: dict[str, Any] = extra

    def __repr__(self) -> str:
        return f"ApiError({self.status_code}, {self.code!r}, {self.message!r})"

    def as_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


def code_of(error: HTTPException) -> str:
    """werkzeug's error name as a machine code: "Method Not Allowed" -> "method_not_allowed"."""
    return re.sub(r"[^a-z0-9]+", "_", (error.name or "error").lower()).strip("_")


def is_api_path(path: str) -> bool:
    """Whether `path` is under /provision or /api (the bare prefix too)."""
    return f"{path}/".startswith(API_PREFIXES)


def api_error_response(error: ApiError) -> Response:
    response = jsonify(error.as_json())
    response.status_code = error.status_code
    response.headers.update(error.headers)
    return response


def _http_error(error: HTTPException) -> HTTPException | Response:
    if not is_api_path(request.path):
        return error  # a page: werkzeug's HTML answer
    headers = {name: value for name, value in error.get_headers()
               if name.lower() != "content-type"}  # keeps Allow, Retry-After, ...
    return api_error_response(ApiError(error.code or 500, code_of(error),
                                       error.description or error.name, headers=headers))


def register(app: Flask) -> None:
    """Install the handlers: ApiError anywhere, werkzeug's HTTP errors on the API paths."""
    app.register_error_handler(ApiError, api_error_response)
    app.register_error_handler(HTTPException, _http_error)
