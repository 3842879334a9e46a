"""What one service process allows: its limits, its admin token and bundle root, and the Host names it answers to
(the CLI flags of `fbrec serve`, carried to uvicorn's workers through the environment)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def default_allowed_hosts(host: str) -> tuple[str, ...]:
    """The Host names a request may carry: loopback, plus the listening address (or, on a wildcard address, this
    machine's name). Anything else (a DNS-rebinding page, a typo) is refused; `--allowed-host` adds names."""
    if host in WILDCARD_HOSTS:
        return (*LOOPBACK_HOSTS, socket.gethostname().lower(), socket.getfqdn().lower())
    return tuple(dict.fromkeys((*LOOPBACK_HOSTS, host.lower())))


class ServeSettings:
    """Limits and access rules of one service process (the CLI flags of `fbrec serve`)."""

    def __init__(self, bundle: str | Path, *, max_k: int = 1000, max_batch: int = 256,
                 max_body_bytes: int = 1 << 20, search_threads: int = 4, gpu: bool = False,
                 admin_token: str | None = None, bundle_root: str | Path | None = None,
                 allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS):
        self.bundle, self.max_k, self.max_batch = Path(bundle), max_k, max_batch
        self.max_body_bytes, self.search_threads, self.gpu = max_body_bytes, search_threads, gpu
        self.admin_token = admin_token or None
        # reloads read folders under this root only (default: the folder holding the served bundle)
        self.bundle_root = Path(bundle_root) if bundle_root else self.bundle.resolve().parent
        self.allowed_hosts = tuple(h.lower() for h in allowed_hosts)

    @classmethod
    def from_env(cls) -> ServeSettings:
        env = os.environ
        return cls(env["FBREC_SERVE_BUNDLE"], max_k=int(env.get("FBREC_SERVE_MAX_K", 1000)),
                   max_batch=int(env.get("FBREC_SERVE_MAX_BATCH", 256)),
                   max_body_bytes=int(env.get("FBREC_SERVE_MAX_BODY", 1 << 20)),
                   search_threads=int(env.get("FBREC_SERVE_THREADS", 4)), gpu=env.get("FBREC_SERVE_GPU") == "1",
                   admin_token=env.get("FBREC_ADMIN_TOKEN"), bundle_root=env.get("FBREC_SERVE_BUNDLE_ROOT"),
                   allowed_hosts=tuple(env.get("FBREC_SERVE_HOSTS", ",".join(LOOPBACK_HOSTS)).split(",")))

    def to_env(self) -> dict[str, str]:
        env = {"FBREC_SERVE_BUNDLE": str(self.bundle), "FBREC_SERVE_MAX_K": str(self.max_k),
               "FBREC_SERVE_MAX_BATCH": str(self.max_batch), "FBREC_SERVE_MAX_BODY": str(self.max_body_bytes),
               "FBREC_SERVE_THREADS": str(self.search_threads), "FBREC_SERVE_GPU": "1" if self.gpu else "0",
               "FBREC_SERVE_BUNDLE_ROOT": str(self.bundle_root), "FBREC_SERVE_HOSTS": ",".join(self.allowed_hosts)}
        if self.admin_token:
            env["FBREC_ADMIN_TOKEN"] = self.admin_token
        return env
