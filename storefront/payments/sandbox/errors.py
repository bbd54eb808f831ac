"""Stripe's error object (``{"error": {...}}``) and the HTTP status that goes with it.

Keys that do not apply are left out, never sent as null: Stripe's spec types
``code``, ``param``, ``message`` and ``decline_code`` as non-nullable strings.
"""

from __future__ import annotations

from typing import Any

DOC_URL = "https://docs.stripe.com/error-codes/"


class ApiError(Exception):
    """An error the API answers with; ``body()`` is the JSON Stripe would send."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = DOC_URL + self.code.replace("_", "-")
        if self.param:
            error["param"] = self.param
        if self.decline_code:
            error["decline_code"] = self.decline_code
        error.update(self.extra)
        return {"error": error}


def invalid_request(message: str, *, param: str | None = None, code: str | None = None, status: int = 400) -> ApiError:
    """A 400 ``invalid_request_error`` (Stripe names the offending ``param``)."""
    return ApiError(status, "invalid_request_error", message, code=code, param=param)


def missing_param(param: str) -> ApiError:
    return ApiError(
        400, "invalid_request_error", f"Missing required param: {param}.", code="parameter_missing", param=param
    )


def unknown_param(param: str) -> ApiError:
    return ApiError(
        400, "invalid_request_error", f"Received unknown parameter: {param}", code="parameter_unknown", param=param
    )


def resource_missing(kind: str, object_id: str, *, param: str = "id", status: int = 404) -> ApiError:
    """404 for a path id; lists use 400 with the filter's ``param``."""
    return ApiError(
        status, "invalid_request_error", f"No such {kind}: '{object_id}'", code="resource_missing", param=param
    )


def authentication(message: str) -> ApiError:
    return ApiError(401, "invalid_request_error", message)


def api_error(message: str = "An unknown error occurred", status: int = 500) -> ApiError:
    return ApiError(status, "api_error", message)
