"""`fbrec llm serve`: a local language model behind the OpenAI chat-completions API, on loopback by default.

POST /v1/chat/completions takes {model, messages, max_tokens, temperature, response_format}; a response_format of
type json_schema (an object schema with typed properties) or json_object is decoded under constraint
(fbrec.llm.hf), so the answer always parses. Decoding is greedy whatever the temperature (stated in each answer's
`system_fingerprint`). Requests that arrive together are decoded together (`Batcher`: up to the backend's batch size,
gathered for at most `window` seconds after the first), so a client with requests in flight gets them for about the
price of one. GET /v1/models lists the one model, GET /health answers ok.
fbrec's `openai` backend, vLLM's clients and the `openai` package talk to it unchanged."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from concurrent.futures import Future

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from fbrec.llm.decode import Request, Result
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


class Batcher:
    """One decoding thread: it takes the first waiting request, gathers those that arrive within `window` seconds
    (up to the backend's batch size) and decodes them as one batch; each caller waits for its own result."""

    def __init__(self, backend: HFBackend, window: float = 0.02):
        self.backend, self.window = backend, window
        self.waiting: queue.Queue[tuple[Request, Future]] = queue.Queue()
        self.batches = self.largest = 0   # batches decoded and the largest one (GET /health reports them)
        threading.Thread(target=self._work, name="fbrec-llm-batcher", daemon=True).start()

    def submit(self, request: Request) -> Result:
        future: Future = Future()
        self.waiting.put((request, future))
        return future.result()

    def _gather(self) -> list[tuple[Request, Future]]:
        batch = [self.waiting.get()]
        deadline = time.monotonic() + self.window
        while len(batch) < self.backend.batch_size:
            try:
                batch.append(self.waiting.get(timeout=max(deadline - time.monotonic(), 0.0)))
            except queue.Empty:
                break
        return batch

    def _work(self) -> None:
        while True:
            batch = self._gather()
            self.batches, self.largest = self.batches + 1, max(self.largest, len(batch))
            try:
                results = self.backend.generate([request for request, _ in batch])
            except Exception as exc:   # every caller of the batch gets the error (a 500 with its message)
                for _, future in batch:
                    future.set_exception(exc)
            else:
                for (_, future), result in zip(batch, results, strict=True):
                    future.set_result(result)


def create_app(backend: HFBackend, window: float = 0.02) -> FastAPI:
    app = FastAPI(title="fbrec local language model", version="1")
    batcher = Batcher(backend, window)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": backend.model, "batch_size": backend.batch_size,
                "batches": batcher.batches, "largest_batch": batcher.largest}

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
        result = batcher.submit(backend.request(messages, constrained=constrained, required=types,
                                                max_new_tokens=request.max_tokens))
        text, prompt_tokens, completion_tokens = result.text, result.prompt_tokens, result.completion_tokens
        return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
                "model": backend.model, "system_fingerprint": "fbrec-greedy" + ("-constrained" if constrained else ""),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}

    return app
