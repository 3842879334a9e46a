"""The FastAPI app of `fbrec serve`: top-k over HTTP from a bundle, hot reload, health and Prometheus metrics.

Searches run in worker threads behind a bounded limiter (FAISS releases the GIL; the event loop never blocks on
it). Every error is one JSON shape (`ErrorBody`: the problem, the rule and the fix), documented in the OpenAPI for
each status a route returns, with the limits (k, batch, vector dimension) in the schema. Requests must name an
allowed Host (DNS rebinding); the admin endpoints are off unless a token is set and reload only folders under the
bundle root. Every response is counted and timed in /metrics.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
import time
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from fbrec.errors import BundleError
from fbrec.retrieval import set_search_threads
from fbrec.serving.errors import RequestError, _responses
from fbrec.serving.errors import error_response as _error
from fbrec.serving.metrics import Metrics
from fbrec.serving.middleware import _BodyLimit, _HostCheck
from fbrec.serving.openapi import declare_limits
from fbrec.serving.schemas import (
    BatchRecommendations,
    BatchRecommendRequest,
    Recommendations,
    RecommendRequest,
    ReloadRequest,
    SimilarRequest,
    VectorRequest,
)
from fbrec.serving.settings import ServeSettings
from fbrec.serving.state import LiveBundle, ServedBundle

log = logging.getLogger("fbrec.serving")


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
        path = _route_path(app, request.scope)
        metrics.inc("fbrec_http_requests_total", "HTTP requests by path and status", path=path,
                    status=str(response.status_code))
        if response.status_code >= 500:
            metrics.inc("fbrec_http_errors_total", "5xx responses", path=path)
        metrics.observe("fbrec_http_request_seconds", "request latency", time.perf_counter() - start, path=path)
        return response

    app.add_middleware(_BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(_HostCheck, allowed=settings.allowed_hosts)   # outermost: a foreign Host gets nothing else

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, f"{where or 'body'}: {first.get('msg', 'invalid request')}",
                      rule="see the request schema at /docs", fix="fix that field")

    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError):
        return _error(exc.status, exc.problem, exc.rule, exc.fix, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):   # 404 and 405 from routing: one shape
        rules = {404: ("routes are listed at /docs", "check the path"),
                 405: ("each route takes the methods listed at /docs", "use the route's method")}
        rule, fix = rules.get(exc.status_code, ("", ""))
        return _error(exc.status_code, f"{request.method} {request.url.path[:200]}: {exc.detail}", rule, fix,
                      headers=getattr(exc, "headers", None))

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

    def check_admin(request: Request) -> None:
        if settings.admin_token is None:
            raise RequestError(404, "the admin endpoints are off", rule="they are on when the service starts with "
                               "--admin-token TOKEN (or FBREC_ADMIN_TOKEN)",
                               fix="restart with a token; `kill -HUP` reloads the bundle path without one")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), settings.admin_token.encode()):
            raise RequestError(401, "missing or wrong admin token", rule="admin requests carry the header "
                               "'Authorization: Bearer TOKEN'", fix="send the token the service was started with",
                               headers={"WWW-Authenticate": "Bearer"})

    def under_root(name: str) -> Path:
        """The folder a reload names, resolved (symlinks too) and refused unless it lies under the bundle root."""
        if "\x00" in name:
            raise RequestError(422, "the bundle name holds a NUL byte", rule="a bundle is a folder under the bundle "
                               "root", fix="send the folder's name")
        if not name.strip():   # it would resolve to the bundle root itself, which is not a bundle
            raise RequestError(422, f"the bundle name {name!r} is empty", rule="a bundle is a folder under the "
                               "bundle root", fix='send the folder\'s name, or {} to reload the current bundle')
        root = settings.bundle_root.resolve()
        target = (root / name).resolve()   # a relative name is taken under the root; an absolute one must be in it
        if not target.is_relative_to(root):
            raise RequestError(403, "that bundle is outside the bundle root", rule="reloads read folders under "
                               "--bundle-root only (default: the folder holding the served bundle)",
                               fix="export the bundle under the root, or restart with --bundle-root")
        return target

    @app.get("/healthz", responses=_responses())
    async def healthz():
        return {"status": "alive"}

    @app.get("/readyz", responses=_responses(503))
    async def readyz():
        current = live.current
        if current is None:
            return _error(503, "bundle not loaded", fix="wait")
        return {"status": "ready", "bundle_version": current.version}

    @app.get("/metrics", responses={200: {"description": "Prometheus text format 0.0.4",
                                          "content": {"text/plain": {"schema": {"type": "string"}}}},
                                     **_responses()})
    async def prometheus():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/version", responses=_responses(503))
    async def version():
        current = served()
        # the bundle's identity is its run id and manifest checksum (bundle_version), never a filesystem path
        return {"bundle_version": current.version, "manifest": asdict(current.bundle.manifest),
                "loaded_at": current.loaded_at}

    @app.post("/recommend", response_model=Recommendations, responses=_responses(422, 503))
    async def recommend(body: RecommendRequest):
        check_k(body.k)
        current = served()   # this request's bundle, whatever a reload does meanwhile
        out = await run(current.recommend, body.user, body.k, body.exclude_seen, body.filter, body.features,
                        body.preferences)
        if out["fallback"]:
            metrics.inc("fbrec_fallback_total", "answers from the popularity fallback", reason="unknown_or_cold")
        return out

    @app.post("/recommend/batch", response_model=BatchRecommendations, responses=_responses(422, 503))
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

    @app.get("/recommend/{user}", response_model=Recommendations, responses=_responses(422, 503))
    async def recommend_get(user: str, k: int = 10, exclude_seen: bool = True):
        if user == "batch":   # not a user named "batch": the batch route takes POST only
            raise RequestError(405, "GET /recommend/batch", rule="batches are sent with POST /recommend/batch "
                               "(a user whose id is 'batch' is asked for with POST /recommend)",
                               fix='POST {"users": [...]} to /recommend/batch', headers={"Allow": "POST"})
        return await recommend(RecommendRequest(user=user, k=k, exclude_seen=exclude_seen))

    @app.post("/similar", responses=_responses(422, 503))
    async def similar(body: SimilarRequest):
        check_k(body.k)
        current = served()
        return await run(current.similar, body.item, body.k, body.filter)

    @app.post("/search", responses=_responses(422, 503))
    async def search(body: VectorRequest):
        check_k(body.k)
        current = served()
        return await run(current.by_vector, body.vector, body.k, body.filter)

    # the token is checked before the body is read: an unauthenticated request learns nothing about the schema
    @app.post("/admin/reload", responses=_responses(401, 403, 409, 422), dependencies=[Depends(check_admin)])
    async def reload(body: ReloadRequest | None = None):
        name = body.bundle if body is not None else None
        target = under_root(name) if name is not None else None
        try:
            new = await anyio.to_thread.run_sync(live.reload, target)
        except (BundleError, OSError, ValueError) as exc:   # ValueError: a path Python cannot open
            still = live.current.version if live.current else None
            problem = exc.problem if isinstance(exc, BundleError) else \
                f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"   # e.g. "File name too long"
            for path in {str(target or live.path), str((target or live.path).resolve())}:   # never echo a path
                problem = problem.replace(path, name or "the current bundle")
            return _error(409, f"bundle refused: {problem}", getattr(exc, "rule", "") or "a folder `fbrec export` "
                          "wrote", getattr(exc, "fix", "") or "re-export the bundle", serving=still)
        return {"status": "reloaded", "bundle_version": new.version}

    def openapi() -> dict:
        """The generated schema plus the limits this process enforces (k, batch size, vector dimension and range)
        and, once a bundle is loaded, its attribute names and types for filters."""
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        declare_limits(schema, settings.max_k, settings.max_batch, live.current)
        if live.current is not None:
            app.openapi_schema = schema   # the dimension and attributes are fixed across reloads: cache
        return schema

    app.openapi = openapi

    return app


def _route_path(app: FastAPI, scope) -> str:
    """The route template a request matched (a bounded metric label: /recommend/{user}, /docs); "unmatched" for a
    404. FastAPI's own routes put themselves in the scope; Starlette's (/docs, /openapi.json) are matched here."""
    route = scope.get("route")
    if route is not None:
        return route.path
    for candidate in app.routes:
        if candidate.matches(scope)[0] == Match.FULL:
            return candidate.path
    return "unmatched"


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` with several workers (settings travel in FBREC_SERVE_* variables)."""
    return create_app(ServeSettings.from_env())
