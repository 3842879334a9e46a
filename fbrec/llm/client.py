"""One client interface for every text generator: a `Task` in, a validated `Completion` out.

A Task carries both what an LLM needs (messages rendered from a versioned prompt file, the JSON schema of the
answer) and what the offline template backend needs (the task name and its facts), so every feature runs on any
backend: `OpenAIBackend` (any OpenAI-compatible chat-completions server), `HFBackend` (a local transformers model
folder) and `OfflineBackend` (deterministic templates, the default, which says so in every answer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Protocol

from fbrec.errors import ConfigError, FbrecError


class LLMAnswerError(FbrecError):
    """A backend's answer stayed invalid after its re-asks."""


_PYTHON = {"string": str, "number": (int, float), "boolean": bool, "array": list, "object": dict}


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _kind_problems(value, kind: str, where: str) -> list[str]:
    """What keeps value from being a JSON value of kind (see fbrec.llm.jsonprefix for the kind grammar)."""
    from fbrec.llm.jsonprefix import split_kind

    base, child = split_kind(kind)
    if not isinstance(value, _PYTHON[base]) or (base == "number" and isinstance(value, bool)):
        return [f"{where} is {_a(type(value).__name__)}, not {_a(base)}"]
    if child is None:
        return []
    parts = value.items() if base == "object" else enumerate(value)
    return [p for k, v in parts for p in _kind_problems(v, child, f"{where}[{k!r}]")]


def kind_json_schema(kind: str) -> dict:
    """A kind as JSON Schema: "object<array<string>>" -> an object whose additionalProperties are string arrays."""
    from fbrec.llm.jsonprefix import split_kind

    base, child = split_kind(kind)
    out: dict = {"type": base}
    if child is not None:
        out["additionalProperties" if base == "object" else "items"] = kind_json_schema(child)
    return out


@dataclass(frozen=True)
class Schema:
    """The answer's JSON object: required keys and their kinds: "string", "number", "boolean", "array", "object", or
    a container of a kind ("array<string>", "object<array<string>>")."""

    required: dict[str, str]

    def describe(self) -> str:
        return json.dumps({k: f"<{t}>" for k, t in self.required.items()})

    def json_schema(self, name: str) -> dict:
        """The OpenAI `response_format` that constrains an answer to this object (json_schema, strict)."""
        properties = {k: kind_json_schema(t) for k, t in self.required.items()}
        return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": {
            "type": "object", "properties": properties, "required": list(self.required),
            "additionalProperties": False}}}

    def problems(self, answer) -> list[str]:
        if not isinstance(answer, dict):
            return [f"the answer is a {type(answer).__name__}, not a JSON object"]
        out = [f"missing key {k!r}" for k in self.required if k not in answer]
        for k, t in self.required.items():
            if k in answer:
                out += _kind_problems(answer[k], t, f"key {k!r}")
        out += [f"key {k!r} is empty" for k, t in self.required.items()
                if t == "string" and isinstance(answer.get(k), str) and not answer[k].strip()]
        return out


def parse_answer(text: str, schema: Schema | None) -> tuple[dict | str, list[str]]:
    """(answer, problems): the JSON object in `text` (the first {...} span, so a chatty model still parses) checked
    against the schema; free text when schema is None."""
    if schema is None:
        return text, []
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return text, ["no JSON object in the answer"]
    try:
        answer = json.loads(text[start:end + 1])
    except json.JSONDecodeError as exc:
        return text, [f"invalid JSON: {exc.msg} at character {exc.pos}"]
    return answer, schema.problems(answer)


def load_prompt(name: str, version: str) -> tuple[str, str]:
    """(system, user) templates of prompts/<name>.<version>.txt (sections split by a line '---user---')."""
    try:
        text = resources.files("fbrec.llm").joinpath("prompts", f"{name}.{version}.txt").read_text()
    except FileNotFoundError:
        raise ConfigError(f"no prompt {name!r} version {version!r}", rule="prompts are files fbrec/llm/prompts/"
                          "NAME.VERSION.txt", fix="use a shipped version (v1)") from None
    system, _, user = text.partition("---user---\n")
    return system.strip(), user.strip()


@dataclass(frozen=True)
class Task:
    """One generation: `name` + `version` pick the prompt file, `facts` fill it, `schema` checks the answer."""

    name: str
    facts: dict
    schema: Schema | None = None
    version: str = "v1"

    def messages(self) -> list[dict]:
        system, user = load_prompt(self.name, self.version)
        facts = {k: (", ".join(map(str, v)) if isinstance(v, list | tuple) else v) for k, v in self.facts.items()}
        user = user.format_map(facts)
        if self.schema is not None:
            user += f"\n\nAnswer with one JSON object only, exactly these keys: {self.schema.describe()}"
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]


@dataclass
class Completion:
    answer: dict | str
    text: str
    generated_by: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    attempts: int = 1


@dataclass
class Usage:
    """What a backend spent: requests, tokens, cache hits, re-asks, retries (logged to MLflow by the caller)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    reasks: int = 0
    retries: int = 0

    def add(self, c: Completion) -> None:
        if c.cached:
            self.cache_hits += 1
            return
        self.requests += c.attempts
        self.reasks += c.attempts - 1
        self.prompt_tokens += c.prompt_tokens
        self.completion_tokens += c.completion_tokens

    def as_metrics(self, prefix: str = "llm/") -> dict[str, float]:
        return {f"{prefix}{k}": float(v) for k, v in vars(self).items()}


class Backend(Protocol):
    name: str          # "offline" | "openai" | "hf"
    model: str
    is_language_model: bool
    usage: Usage

    def run(self, tasks: list[Task]) -> list[Completion]: ...
