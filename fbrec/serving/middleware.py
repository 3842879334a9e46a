"""ASGI middleware that refuses a request before any route runs: a Host the service does not answer to (DNS
rebinding), a body over the limit (by Content-Length, or counted as it streams)."""

from __future__ import annotations

from fbrec.serving.errors import error_response as _error


class _HostCheck:
    """Refuse requests whose Host header is not an allowed name (DNS rebinding), before any route runs."""

    def __init__(self, app, allowed: tuple[str, ...]):
        self.app, self.allowed = app, set(allowed)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or "*" in self.allowed:
            return await self.app(scope, receive, send)
        host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1").lower()
        name = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0] if ":" in host else host
        if name not in self.allowed:
            return await _error(400, f"Host {host[:100]!r} is not served here",
                                rule=f"requests name one of the allowed hosts: {', '.join(sorted(self.allowed))}",
                                fix="use one of those names, or start the service with --allowed-host NAME")(
                                    scope, receive, send)
        return await self.app(scope, receive, send)


class _BodyLimit:
    """Refuse bodies over the limit with 413 before they are parsed (Content-Length, or counted as they stream)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await _error(413, f"request body of {int(length)} bytes", rule=f"bodies up to {self.limit} bytes",
                                fix="send fewer users or a smaller filter per request")(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await _error(413, "request body too large", rule=f"bodies up to {self.limit} bytes",
                         fix="send smaller requests")(scope, receive, send)


class _TooLarge(Exception):
    pass
