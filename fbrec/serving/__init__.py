"""HTTP retrieval service over an exported bundle (FastAPI + uvicorn; no torch or lightning imports).

`fbrec.serving.serve(...)` starts it (what `fbrec serve` calls); `create_app(ServeSettings(...))` builds the ASGI
app. FastAPI is imported when one of those is used, so a missing `serve` extra is one clear error."""

from __future__ import annotations


def __getattr__(name: str):
    if name in ("ServeSettings", "create_app"):
        from fbrec.serving import app

        return getattr(app, name)
    if name == "serve":
        from fbrec.serving.launch import serve

        return serve
    raise AttributeError(f"module 'fbrec.serving' has no attribute {name!r}")


__all__ = ["ServeSettings", "create_app", "serve"]
