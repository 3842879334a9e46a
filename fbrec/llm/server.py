"""`fbrec llm serve`: a local language model behind the OpenAI chat-completions API, on loopback by default.

POST /v1/chat/completions takes {model, messages, max_tokens, temperature, response_format}; a response_format of
type json_schema (an object schema with typed properties) or json_object is decoded under constraint
(fbrec.llm.hf), so the answer always parses. Decoding is greedy whatever the temperature (stated in each answer's
`system_fingerprint`). One generation at a time. GET /v1/models lists the one model, GET /health answers ok.
fbrec's `openai` backend, vLLM's clients and the `openai` package talk to it unchanged."""

from __future__ import annotations

import time
import uuid
from threading import Lock

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from fbrec.llm.hf import HFBackend

_TYPES = {"string": "string", "number": "number", "integer": "number", "boolean": "boolean", "array": "array",
          "object": "object"}


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")   # OpenAI clients send more fields (n, stream, seed, ...)
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float | None = None
    response_format: dict | None = None


def schema_kind(schema: dict, where: str) -> str:
    """A JSON Schema (type, items, additionalProperties) as a kind of fbrec.llm.jsonprefix."""
    declared = schema.get("type")
    if declared not in _TYPES:
        raise HTTPException(400, f"{where} has type {declared!r}; one of {sorted(_TYPES)} is needed")
    inner = schema.get("items") if declared == "array" else schema.get("additionalProperties")
    if isinstance(inner, dict) and inner.get("type"):
        return f"{_TYPES[declared]}<{schema_kind(inner, where + ' values')}>"
    return _TYPES[declared]


def required_types(response_format: dict | None) -> tuple[bool, dict[str, str] | None]:
    """(constrained?, key -> kind) of a response_format; (True, None) = any JSON object."""
    if not response_format or response_format.get("type") == "text":
        return False, None
    kind = response_format.get("type")
    if kind == "json_object":
        return True, None
    if kind != "json_schema":
        raise HTTPException(400, f"response_format type {kind!r} is not text, json_object or json_schema")
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    props = schema.get("properties") or {}
    if schema.get("type") != "object" or not isinstance(props, dict):
        raise HTTPException(400, "json_schema.schema must be an object schema with properties")
    keys = schema.get("required") or list(props)
    return True, {key: schema_kind(props.get(key) or {}, f"property {key!r}") for key in keys}


def create_app(backend: HFBackend) -> FastAPI:
    app = FastAPI(title="fbrec local language model", version="1")
    lock = Lock()

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": backend.model}

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": backend.model, "object": "model", "owned_by": "fbrec",
                                            "description": backend.description}]}

    @app.post("/v1/chat/completions")
    def chat(request: ChatRequest) -> dict:
        if request.model not in (None, backend.model):
            raise HTTPException(404, f"model {request.model!r} is not served here; this server has {backend.model!r}")
        constrained, types = required_types(request.response_format)
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        with lock:
            if constrained:
                text, prompt_tokens, completion_tokens = backend.generate_json(messages, types, request.max_tokens)
            else:
                text, prompt_tokens, completion_tokens = backend.generate_text(messages, request.max_tokens)
        return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
                "model": backend.model, "system_fingerprint": "fbrec-greedy" + ("-constrained" if constrained else ""),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}

    return app
