"""An OpenAI-compatible chat-completions client (what vLLM, Ollama, llama.cpp's server and hosted APIs speak).

Base URL and model from the arguments or FBREC_LLM_BASE_URL / FBREC_LLM_MODEL; the key only from the environment
variable named by api_key_env (never from a file or a flag). `timeout` bounds each whole request (connect, wait and
the body, however slowly it trickles); answers over MAX_RESPONSE_BYTES are refused; retries with exponential backoff
on connection errors, broken or malformed bodies, 429 and 5xx (Retry-After honoured); a concurrency limit; answers
validated against the task's schema with re-asks; a response cache on disk keyed by server, model and prompt (a
second run sends nothing); token accounting in `usage`, kept for the answers that came back when a batch fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Lock

import requests
import urllib3

from fbrec.errors import ConfigError
from fbrec.llm.client import Completion, LLMAnswerError, Task, Usage, parse_answer

RETRY_STATUS = (429, 500, 502, 503, 504)
MAX_RESPONSE_BYTES = 8 << 20   # a chat completion is kilobytes; a body this large is not one


class _Malformed(Exception):
    """A 200 whose body is not a chat completion (HTML, truncated, a list, cut short): retried, then one error."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("FBREC_CACHE_DIR", Path.home() / ".cache" / "fbrec")) / "llm-responses"


class OpenAIBackend:
    name, is_language_model = "openai", True

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 60.0, max_retries: int = 4, backoff: float = 0.5, concurrency: int = 4,
                 reasks: int = 2, temperature: float = 0.0, max_tokens: int = 256, json_mode: str | bool = "schema",
                 cache_dir: str | Path | None = None):
        self.base_url = (base_url or os.environ.get("FBREC_LLM_BASE_URL") or "").rstrip("/")
        self.model = model or os.environ.get("FBREC_LLM_MODEL") or ""
        if not self.base_url or not self.model:
            raise ConfigError(f"the openai backend needs a base URL and a model (got base_url={self.base_url!r}, "
                              f"model={self.model!r})", rule="any OpenAI-compatible server: vLLM, Ollama, llama.cpp, "
                              "a hosted API", fix="pass --base-url http://host:port/v1 --model NAME, or set "
                              "FBREC_LLM_BASE_URL and FBREC_LLM_MODEL")
        self.api_key_env, self.api_key = api_key_env, os.environ.get(api_key_env, "")
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self.concurrency, self.reasks, self.temperature = max(1, concurrency), reasks, temperature
        # "schema": response_format json_schema with the task's keys (OpenAI, vLLM, `fbrec llm serve`); "object":
        # json_object, for servers without schemas; "off": no response_format
        self.json_mode = {True: "schema", False: "off"}.get(json_mode, json_mode)
        if self.json_mode not in ("schema", "object", "off"):
            raise ConfigError(f"json_mode={json_mode!r}", rule="json_mode is schema, object or off",
                              fix="use schema unless the server refuses response_format json_schema")
        self.max_tokens = max_tokens
        self.cache = None if cache_dir == "" else Path(cache_dir or default_cache_dir())
        self.usage = Usage()
        self._lock = Lock()
        self._session = requests.Session()

    # --- one request ---------------------------------------------------------------------------------------
    def _post(self, messages: list[dict], task: Task) -> dict:
        body = {"model": self.model, "messages": messages, "temperature": self.temperature,
                "max_tokens": self.max_tokens}
        if task.schema is not None and self.json_mode == "schema":
            body["response_format"] = task.schema.json_schema(task.name)
        elif task.schema is not None and self.json_mode == "object":
            body["response_format"] = {"type": "json_object"}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        url = f"{self.base_url}/chat/completions"
        problem = ""
        for attempt in range(self.max_retries + 1):
            wait = self.backoff * 2 ** attempt
            try:
                status, payload, retry_after = self._request(url, body, headers)
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, _Malformed) as exc:
                problem = str(exc) if isinstance(exc, _Malformed) else type(exc).__name__
                if attempt == self.max_retries:
                    if isinstance(exc, _Malformed):
                        raise ConfigError(f"LLM server {self.base_url} answered HTTP 200 with a body that is not a "
                                          f"chat completion ({problem}) after {attempt + 1} tries",
                                          rule="an OpenAI-compatible server answers a JSON object with "
                                          "choices[0].message.content", fix="check that --base-url is the server's "
                                          "/v1 API (not a web page or a proxy) and the server's log") from None
                    raise ConfigError(f"LLM server {self.base_url} unreachable or not answering within "
                                      f"{self.timeout:g} s after {attempt + 1} tries: {problem}",
                                      rule="the openai backend needs a running server that answers in time",
                                      fix="start the server, fix --base-url, or raise --timeout") from None
            else:
                if status == 200:
                    return payload
                if status not in RETRY_STATUS or attempt == self.max_retries:
                    hint = f"check the key in ${self.api_key_env}" if status in (401, 403) else \
                        "check --model and the server's log"
                    tries = f"after {attempt + 1} tries" if attempt else "on the first try (not retried)"
                    raise ConfigError(f"LLM server {self.base_url} answered HTTP {status} {tries}: {payload[:200]}",
                                      rule="chat completions must answer 200 (429 and 5xx are retried "
                                           f"{self.max_retries} times with backoff)", fix=hint)
                wait = min(float(retry_after), 30.0) if retry_after.replace(".", "", 1).isdigit() else wait
            with self._lock:
                self.usage.retries += 1
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _request(self, url: str, body: dict, headers: dict) -> tuple[int, dict | str, str]:
        """One POST within one deadline for everything (a server that trickles bytes is cut off at `timeout`) and a
        size cap; (status, the completion as a dict for a 200 else the body's text, Retry-After)."""
        deadline = time.monotonic() + self.timeout
        with self._session.post(url, json=body, headers=headers, stream=True,
                                timeout=(min(self.timeout, 10.0), self.timeout)) as r:
            data = bytearray()
            while chunk := r.raw.read1(65536, decode_content=True):   # what has arrived, not a full block
                data += chunk
                if len(data) > MAX_RESPONSE_BYTES:
                    raise ConfigError(f"LLM server {self.base_url} sent an answer over {MAX_RESPONSE_BYTES} bytes",
                                      rule="a chat completion is a small JSON object",
                                      fix="check --base-url and --max-tokens")
                if time.monotonic() > deadline:
                    raise requests.Timeout(f"the answer took over {self.timeout:g} s")
            if r.status_code != 200:
                return r.status_code, data.decode("utf-8", "replace"), r.headers.get("Retry-After", "")
            try:
                payload = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise _Malformed(f"{len(data)} bytes of {r.headers.get('Content-Type', 'unknown type')}: "
                                 f"{bytes(data[:80])!r}") from None
            if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
                raise _Malformed(f"a JSON {type(payload).__name__} without choices: {bytes(data[:80])!r}")
            return 200, payload, ""

    def _cache_path(self, task: Task) -> Path | None:
        if self.cache is None:
            return None
        key = json.dumps({"server": self.base_url, "model": self.model, "messages": task.messages(),
                          "temperature": self.temperature,
                          "max_tokens": self.max_tokens, "schema": task.schema.required if task.schema else None},
                         sort_keys=True)
        return self.cache / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def _one(self, task: Task) -> Completion:
        path = self._cache_path(task)
        if path is not None and path.is_file():
            c = json.loads(path.read_text())
            return Completion(c["answer"], c["text"], c["generated_by"], c["prompt_tokens"], c["completion_tokens"],
                              cached=True, attempts=c["attempts"])
        messages = task.messages()
        prompt_tokens = completion_tokens = 0
        for attempt in range(1, self.reasks + 2):
            reply = self._post(messages, task)
            usage = reply.get("usage") or {}
            prompt_tokens += int(usage.get("prompt_tokens", 0))
            completion_tokens += int(usage.get("completion_tokens", 0))
            text = (reply.get("choices") or [{}])[0].get("message", {}).get("content") or ""
            answer, problems = parse_answer(text, task.schema)
            if not problems:
                c = Completion(answer, text, f"{self.name}:{self.model}", prompt_tokens, completion_tokens,
                               attempts=attempt)
                self._store(path, c)
                return c
            messages = [*messages, {"role": "assistant", "content": text},
                        {"role": "user", "content": f"That answer was not usable: {'; '.join(problems)}. Answer "
                                                    f"again with one JSON object only, exactly these keys: "
                                                    f"{task.schema.describe()}"}]
        raise LLMAnswerError(f"task {task.name!r}: the answer stayed invalid after {self.reasks} re-asks "
                             f"({'; '.join(problems)}); last answer {text[:120]!r}",
                             rule=f"answers are JSON objects with keys {task.schema.describe()}",
                             fix="use a model that follows JSON instructions, or raise --reasks")

    def _store(self, path: Path | None, c: Completion) -> None:
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps({"answer": c.answer, "text": c.text, "generated_by": c.generated_by,
                                   "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                                   "attempts": c.attempts}))
        os.replace(tmp, path)

    def run(self, tasks: list[Task]) -> list[Completion]:
        """Every task's completion, in order. When one fails, the tokens of those that came back are still counted
        in `usage` before the first failure is raised."""
        with ThreadPoolExecutor(self.concurrency) as pool:
            futures = [pool.submit(self._one, t) for t in tasks]
            out, failure = [], None
            for f in futures:
                try:
                    out.append(f.result())
                except Exception as exc:   # noqa: BLE001 - re-raised below, after the usage is counted
                    failure = failure or exc
        for c in out:
            self.usage.add(c)
        if failure is not None:
            raise failure
        return out
