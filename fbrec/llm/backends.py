"""The backend factory, apart from the protocol in fbrec.llm.client that every backend implements (so the backends
import the protocol and nothing imports them back)."""

from __future__ import annotations

from fbrec.llm.client import Backend

BACKENDS = ("offline", "openai", "hf")


def make_backend(name: str, **options) -> Backend:
    """offline (default, no options), openai (base_url, model, api_key_env, ...), hf (model_dir, ...)."""
    if name == "offline":
        from fbrec.llm.offline import OfflineBackend

        return OfflineBackend()
    if name == "openai":
        from fbrec.llm.openai import OpenAIBackend

        return OpenAIBackend(**options)
    if name == "hf":
        from fbrec.llm.hf import HFBackend

        return HFBackend(**options)
    from fbrec.errors import UnknownNameError

    raise UnknownNameError("LLM backend", name, BACKENDS)
