"""`fbrec serve`: the retrieval service over a bundle, in this process (uvicorn) or several workers."""

from __future__ import annotations

import os
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(bundle: Path = typer.Option(..., "--bundle", help="bundle directory written by `fbrec export`"),
              host: str = typer.Option("127.0.0.1", help="interface to listen on"),
              port: int = typer.Option(8000, help="TCP port"),
              workers: int = typer.Option(1, help="worker processes (each loads the bundle)"),
              max_k: int = typer.Option(1000, "--max-k", help="largest k a request may ask for"),
              max_batch: int = typer.Option(256, "--max-batch", help="most users in one batch request"),
              max_body: int = typer.Option(1 << 20, "--max-body", help="largest request body in bytes"),
              threads: int = typer.Option(4, help="concurrent FAISS searches per worker"),
              gpu: bool = typer.Option(False, "--gpu", help="search a GPU copy of the index (faiss-gpu + CUDA)"),
              log_level: str = typer.Option("info", help="uvicorn log level"),
              access_log: bool = typer.Option(True, "--access-log/--no-access-log",
                                              help="log each request to stdout (as uvicorn does)")) -> None:
        """Answer top-k requests over HTTP (JSON; OpenAPI at /docs); reload with POST /admin/reload or SIGHUP."""
        from fbrec.bundle import Bundle
        from fbrec.errors import ConfigError, MissingExtraError

        try:
            import fastapi  # noqa: F401
            import uvicorn
        except ImportError as exc:
            raise MissingExtraError(exc.name or "fastapi", "serve", "fbrec serve") from exc
        from fbrec.serving import ServeSettings, create_app

        for name, value in (("--workers", workers), ("--max-k", max_k), ("--max-batch", max_batch),
                            ("--max-body", max_body), ("--threads", threads)):
            if value < 1:
                raise ConfigError(f"{name} {value}", rule=f"{name} >= 1", fix=f"pass {name} 1 or more")
        Bundle(bundle)   # refuse a bad bundle here, as one line, before any server starts
        if gpu:
            from fbrec.retrieval import gpu_available

            if not gpu_available():
                raise ConfigError("--gpu, but FAISS sees no GPU", rule="--gpu needs faiss-gpu and a CUDA device",
                                  fix="install the GPU variant (README) or drop --gpu")
        settings = ServeSettings(bundle, max_k=max_k, max_batch=max_batch, max_body_bytes=max_body,
                                 search_threads=threads, gpu=gpu)
        if workers == 1:
            uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=access_log)
        else:
            os.environ.update(settings.to_env())
            uvicorn.run("fbrec.serving.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                        log_level=log_level, access_log=access_log)
