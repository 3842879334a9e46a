"""Start the service: check the settings and the bundle first (one line each), then run uvicorn in this process or in
several workers."""

from __future__ import annotations

import os
from pathlib import Path

from fbrec.errors import ConfigError, MissingExtraError


def serve(bundle: str | Path, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, max_k: int = 1000,
          max_batch: int = 256, max_body: int = 1 << 20, threads: int = 4, gpu: bool = False,
          log_level: str = "info", access_log: bool = True, admin_token: str | None = None,
          bundle_root: str | Path | None = None, allowed_hosts: tuple[str, ...] | list[str] = ()) -> None:
    """Serve `bundle` until stopped. A bad setting or bundle is refused before any server starts.

    `admin_token` turns the admin endpoints on (off without one); reloads read folders under `bundle_root` only
    (default: the bundle's parent); requests must name loopback, `host` or one of `allowed_hosts` ('*': any)."""
    from fbrec.bundle import Bundle

    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise MissingExtraError(exc.name or "fastapi", "serve", "fbrec serve") from exc
    from fbrec.serving.app import create_app
    from fbrec.serving.settings import ServeSettings, default_allowed_hosts

    for name, value in (("--workers", workers), ("--max-k", max_k), ("--max-batch", max_batch),
                        ("--max-body", max_body), ("--threads", threads)):
        if value < 1:
            raise ConfigError(f"{name} {value}", rule=f"{name} >= 1", fix=f"pass {name} 1 or more")
    Bundle(bundle)   # refuse a bad bundle here, as one line, before any server starts
    root = Path(bundle_root) if bundle_root is not None else Path(bundle).resolve().parent
    if not root.is_dir() or not Path(bundle).resolve().is_relative_to(root.resolve()):
        raise ConfigError(f"--bundle-root {root}", rule="the bundle root is a folder holding the served bundle",
                          fix="pass the folder the bundle lies in (or leave --bundle-root out)")
    if gpu:
        from fbrec.retrieval import gpu_available

        if not gpu_available():
            raise ConfigError("--gpu, but FAISS sees no GPU", rule="--gpu needs faiss-gpu and a CUDA device",
                              fix="install the GPU variant (docs/gpu.md) or drop --gpu")
    settings = ServeSettings(bundle, max_k=max_k, max_batch=max_batch, max_body_bytes=max_body,
                             search_threads=threads, gpu=gpu, admin_token=admin_token, bundle_root=root,
                             allowed_hosts=(*default_allowed_hosts(host), *allowed_hosts))
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=access_log)
    else:
        os.environ.update(settings.to_env())
        uvicorn.run("fbrec.serving.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, access_log=access_log)
