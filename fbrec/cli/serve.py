"""`fbrec serve`: the retrieval service over a bundle (fbrec.serving.serve)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer()


@app.command()
def serve(bundle: Annotated[Path, typer.Option("--bundle", help="bundle directory written by `fbrec export`")],
          host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="TCP port")] = 8000,
          workers: Annotated[int, typer.Option(help="worker processes (each loads the bundle)")] = 1,
          max_k: Annotated[int, typer.Option("--max-k", help="largest k a request may ask for")] = 1000,
          max_batch: Annotated[int, typer.Option("--max-batch", help="most users in one batch request")] = 256,
          max_body: Annotated[int, typer.Option("--max-body", help="largest request body in bytes")] = 1 << 20,
          threads: Annotated[int, typer.Option(help="concurrent FAISS searches per worker")] = 4,
          gpu: Annotated[bool, typer.Option("--gpu", help="search a GPU copy of the index (faiss-gpu + CUDA)")] = False,
          log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
          access_log: Annotated[bool, typer.Option("--access-log/--no-access-log",
                                                   help="log each request to stdout (as uvicorn does)")] = True,
          admin_token: Annotated[str | None, typer.Option(
              "--admin-token", envvar="FBREC_ADMIN_TOKEN", show_envvar=True,
              help="turns POST /admin/reload on; requests send 'Authorization: Bearer TOKEN' (prefer the env var: "
                   "a flag shows in `ps`)")] = None,
          bundle_root: Annotated[Path | None, typer.Option(
              "--bundle-root", help="reloads read bundles under this folder only [default: the bundle's parent]")
          ] = None,
          allowed_host: Annotated[list[str] | None, typer.Option(
              "--allowed-host", help="a Host name requests may use, besides loopback and --host (repeat; '*' "
                                     "turns the check off)")] = None,
          ) -> None:
    """Answer top-k requests over HTTP (JSON; OpenAPI at /docs); reload with SIGHUP, or POST /admin/reload with
    --admin-token."""
    from fbrec.serving import serve as run_service

    run_service(bundle, host=host, port=port, workers=workers, max_k=max_k, max_batch=max_batch, max_body=max_body,
                threads=threads, gpu=gpu, log_level=log_level, access_log=access_log,
                admin_token=admin_token, bundle_root=bundle_root, allowed_hosts=allowed_host or ())
