"""The FastAPI app of `fbrec serve`: top-k over HTTP from a bundle, hot reload, health and Prometheus metrics.

Searches run in worker threads behind a bounded limiter (FAISS releases the GIL; the event loop never blocks on
it). Bad requests get 4xx with a JSON body naming the problem, the rule and the fix; every response is counted and
timed in /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from fbrec.errors import BundleError
from fbrec.retrieval import set_search_threads
from fbrec.serving.errors import RequestError
from fbrec.serving.metrics import Metrics
from fbrec.serving.schemas import (
    BatchRecommendations,
    BatchRecommendRequest,
    Recommendations,
    RecommendRequest,
    ReloadRequest,
    SimilarRequest,
    VectorRequest,
)
from fbrec.serving.state import LiveBundle, ServedBundle

log = logging.getLogger("fbrec.serving")


class ServeSettings:
    """Limits of one service process (the CLI flags of `fbrec serve`)."""

    def __init__(self, bundle: str | Path, *, max_k: int = 1000, max_batch: int = 256,
                 max_body_bytes: int = 1 << 20, search_threads: int = 4, gpu: bool = False):
        self.bundle, self.max_k, self.max_batch = Path(bundle), max_k, max_batch
        self.max_body_bytes, self.search_threads, self.gpu = max_body_bytes, search_threads, gpu

    @classmethod
    def from_env(cls) -> ServeSettings:
        env = os.environ
        return cls(env["FBREC_SERVE_BUNDLE"], max_k=int(env.get("FBREC_SERVE_MAX_K", 1000)),
                   max_batch=int(env.get("FBREC_SERVE_MAX_BATCH", 256)),
                   max_body_bytes=int(env.get("FBREC_SERVE_MAX_BODY", 1 << 20)),
                   search_threads=int(env.get("FBREC_SERVE_THREADS", 4)), gpu=env.get("FBREC_SERVE_GPU") == "1")

    def to_env(self) -> dict[str, str]:
        return {"FBREC_SERVE_BUNDLE": str(self.bundle), "FBREC_SERVE_MAX_K": str(self.max_k),
                "FBREC_SERVE_MAX_BATCH": str(self.max_batch), "FBREC_SERVE_MAX_BODY": str(self.max_body_bytes),
                "FBREC_SERVE_THREADS": str(self.search_threads), "FBREC_SERVE_GPU": "1" if self.gpu else "0"}


def _error(status: int, problem: str, rule: str = "", fix: str = "") -> JSONResponse:
    return JSONResponse({"error": problem, "rule": rule, "fix": fix}, status_code=status)


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


def create_app(settings: ServeSettings) -> FastAPI:
    metrics = Metrics()
    # every counter exists from the start (a dashboard's rate() needs the zero before the first error)
    metrics.inc("fbrec_http_errors_total", "5xx responses", value=0.0)
    metrics.inc("fbrec_fallback_total", "answers from the popularity fallback", value=0.0)
    live = LiveBundle(settings.bundle, metrics, gpu=settings.gpu)
    limiter = anyio.CapacityLimiter(settings.search_threads)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        set_search_threads(1)   # parallelism comes from concurrent requests, not from OpenMP inside one search
        await anyio.to_thread.run_sync(live.reload)
        loop = asyncio.get_running_loop()
        try:   # SIGHUP reloads the bundle path (as nginx and friends do)
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(_reload_quietly()))
        except (NotImplementedError, RuntimeError):
            pass
        yield

    async def _reload_quietly():
        try:
            await anyio.to_thread.run_sync(live.reload)
        except (BundleError, OSError):
            pass   # refused: logged and counted; the old bundle keeps serving

    app = FastAPI(title="fbrec retrieval service", lifespan=lifespan,
                  description="Top-k recommendations from an fbrec bundle (embeddings + FAISS index).")
    app.state.live, app.state.metrics, app.state.settings = live, metrics, settings

    @app.middleware("http")
    async def count_and_time(request: Request, call_next):
        start = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:
            log.exception("unhandled error on %s", request.url.path)
            response = _error(500, "internal error", fix="see the service log")
        route = request.scope.get("route")
        path = route.path if route is not None else "unmatched"
        metrics.inc("fbrec_http_requests_total", "HTTP requests by path and status", path=path,
                    status=str(response.status_code))
        if response.status_code >= 500:
            metrics.inc("fbrec_http_errors_total", "5xx responses", path=path)
        metrics.observe("fbrec_http_request_seconds", "request latency", time.perf_counter() - start, path=path)
        return response

    app.add_middleware(_BodyLimit, limit=settings.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, f"{where or 'body'}: {first.get('msg', 'invalid request')}",
                      rule="see the request schema at /docs", fix="fix that field")

    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError):
        return _error(exc.status, exc.problem, exc.rule, exc.fix)

    def served() -> ServedBundle:
        current = live.current
        if current is None:
            raise RequestError(503, "no bundle is loaded yet", fix="wait for /readyz")
        return current

    def check_k(k: int) -> None:
        if not 1 <= k <= settings.max_k:
            raise RequestError(422, f"k={k}", rule=f"1 <= k <= {settings.max_k} (--max-k)", fix="pass k=10")

    async def run(fn, *args):
        return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)

    @app.get("/healthz")
    async def healthz():
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz():
        current = live.current
        if current is None:
            return _error(503, "bundle not loaded", fix="wait")
        return {"status": "ready", "bundle_version": current.version}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/version")
    async def version():
        current = served()
        # the bundle's identity is its run id and manifest checksum (bundle_version), never a filesystem path
        return {"bundle_version": current.version, "manifest": asdict(current.bundle.manifest),
                "loaded_at": current.loaded_at}

    @app.post("/recommend", response_model=Recommendations)
    async def recommend(body: RecommendRequest):
        check_k(body.k)
        current = served()   # this request's bundle, whatever a reload does meanwhile
        out = await run(current.recommend, body.user, body.k, body.exclude_seen, body.filter, body.features,
                        body.preferences)
        if out["fallback"]:
            metrics.inc("fbrec_fallback_total", "answers from the popularity fallback", reason="unknown_or_cold")
        return out

    @app.get("/recommend/batch", include_in_schema=False)
    async def recommend_batch_get():   # not a user named "batch": the batch route takes POST only
        return _error(405, "GET /recommend/batch", rule="batches are sent with POST /recommend/batch",
                      fix='POST {"users": [...]} to /recommend/batch')

    @app.get("/recommend/{user}", response_model=Recommendations)
    async def recommend_get(user: str, k: int = 10, exclude_seen: bool = True):
        return await recommend(RecommendRequest(user=user, k=k, exclude_seen=exclude_seen))

    @app.post("/recommend/batch", response_model=BatchRecommendations)
    async def recommend_batch(body: BatchRecommendRequest):
        check_k(body.k)
        if len(body.users) > settings.max_batch:
            raise RequestError(422, f"{len(body.users)} users in one batch", rule=f"at most {settings.max_batch} "
                               "(--max-batch)", fix="split the batch")
        current = served()

        def answer():
            return [current.recommend(u, body.k, body.exclude_seen, body.filter) for u in body.users]

        results = await run(answer)
        return {"results": results, "bundle_version": current.version}

    @app.post("/similar")
    async def similar(body: SimilarRequest):
        check_k(body.k)
        current = served()
        return await run(current.similar, body.item, body.k, body.filter)

    @app.post("/search")
    async def search(body: VectorRequest):
        check_k(body.k)
        current = served()
        return await run(current.by_vector, body.vector, body.k, body.filter)

    @app.post("/admin/reload")
    async def reload(body: ReloadRequest | None = None):
        target = body.bundle if body is not None else None
        try:
            new = await anyio.to_thread.run_sync(live.reload, target)
        except BundleError as exc:
            still = live.current.version if live.current else None
            return JSONResponse({"error": f"bundle refused: {exc.problem}", "rule": exc.rule, "fix": exc.fix,
                                 "serving": still}, status_code=409)
        except (OSError, ValueError) as exc:   # ValueError: a path Python cannot open (an embedded NUL byte)
            return _error(409, f"bundle refused: {type(exc).__name__}", rule="a bundle folder fbrec exported",
                          fix="check the path")
        return {"status": "reloaded", "bundle_version": new.version}

    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` with several workers (settings travel in FBREC_SERVE_* variables)."""
    return create_app(ServeSettings.from_env())
