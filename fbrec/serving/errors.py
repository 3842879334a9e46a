"""The error a request can end in: a 4xx with the problem, the rule and the fix."""

from __future__ import annotations


class RequestError(Exception):
    """A request the service cannot answer as asked: becomes a 4xx response with the problem, rule and fix."""

    def __init__(self, status: int, problem: str, rule: str = "", fix: str = "", headers: dict | None = None):
        super().__init__(problem)
        self.status, self.problem, self.rule, self.fix = status, problem, rule, fix
        self.headers = headers   # e.g. WWW-Authenticate with a 401, Allow with a 405
