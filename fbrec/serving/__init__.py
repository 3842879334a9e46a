"""HTTP retrieval service over an exported bundle (FastAPI + uvicorn; no torch or lightning imports)."""

from fbrec.serving.app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]
