"""The error a request can end in: a 4xx with the problem, the rule and the fix."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from fbrec.serving.schemas import ErrorBody


class RequestError(Exception):
    """A request the service cannot answer as asked: becomes a 4xx response with the problem, rule and fix."""

    def __init__(self, status: int, problem: str, rule: str = "", fix: str = "", headers: dict | None = None):
        super().__init__(problem)
        self.status, self.problem, self.rule, self.fix = status, problem, rule, fix
        self.headers = headers   # e.g. WWW-Authenticate with a 401, Allow with a 405


def error_response(status: int, problem: str, rule: str = "", fix: str = "", headers: dict | None = None,
                   **extra) -> JSONResponse:
    """The one JSON shape of every error the service answers (ErrorBody: the problem, the rule and the fix)."""
    body = ErrorBody(error=problem, rule=rule, fix=fix, **extra).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers)


_STATUS = {400: "a Host header this service does not answer to", 401: "a missing or wrong admin token",
           403: "a bundle outside the bundle root",
           404: "no such route, an unknown item id, or the admin endpoints are off",
           405: "a method the route does not take", 409: "a bundle refused (the old one keeps serving)",
           413: "a body over --max-body", 422: "a request that breaks the schema or the rules it states",
           500: "an internal error (counted in fbrec_http_errors_total)", 503: "no bundle loaded yet"}


def _responses(*codes: int) -> dict:
    """The error statuses a route can answer with, all in the one ErrorBody shape (for the OpenAPI)."""
    common = (400, 404, 405, 413, 500)
    shape = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    return {c: {"model": ErrorBody, "description": _STATUS[c], "content": shape} for c in sorted({*codes, *common})}
