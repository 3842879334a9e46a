"""Greedy decoding of many prompts at once, free text and JSON under constraint, with one KV cache.

Decoding a small model on a CPU is bound by memory: one step reads every weight once whatever the number of rows,
so a batch of 32 prompts costs little more per step than one. `decode(lm, tokenizer, requests)` left-pads the
prompts (position ids from the attention mask, so a padded row sees exactly what it would see alone), then steps
every row by one token per forward pass (several when every row has text to read that nobody chose: the braces and
keys fbrec writes itself). A row that finishes leaves the batch and the cache. Each row keeps its own state:

- free text: the most likely token until an end-of-sequence token or the row's budget;
- JSON under constraint (fbrec.llm.jsonprefix): fbrec writes `{"key": ` itself and the model writes each value,
  keeping at every step the most likely of the `CANDIDATES` top tokens that still continues a JSON value of the
  key's kind; a value ends when the model chooses a token that starts with `,` `}` `]` or whitespace once the value
  can end, or is closed by fbrec when its budget (max_new_tokens per value) runs out or no likely token fits.

Batch size one is one-at-a-time greedy decoding: no padding, the same tokens read in the same order. Batched rows
differ from it only where padded float arithmetic flips a near-tie between two tokens (tests/test_local_lm.py
bounds how often on the real model)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from fbrec.llm.jsonprefix import JsonPrefix

CANDIDATES = 64          # tokens tried per constrained step, most likely first


@dataclass(frozen=True)
class Request:
    """One generation: rendered prompt text, a token budget (per value under constraint), and the answer's shape:
    free text (`constrained=False`), any JSON object (`required=None`), or an object of these keys and kinds."""

    prompt: str
    max_new_tokens: int
    constrained: bool = False
    required: dict[str, str] | None = None


@dataclass(frozen=True)
class Result:
    text: str
    prompt_tokens: int
    completion_tokens: int     # every token the model read or wrote after the prompt


class _Row:
    """One request's decoding state: the tokens it must read next (`queue`), its text, its JSON checker."""

    def __init__(self, request: Request, prompt_ids: list[int], encode, pieces: list[str], eos: set[int]):
        self.request, self.prompt_ids, self.encode, self.pieces, self.eos = request, prompt_ids, encode, pieces, eos
        self.queue: list[int] = []
        self.count = 0
        self.done = False
        self.text = ""
        self.new: list[int] = []             # free text: the tokens written
        self.keys = list((request.required or {}).items())
        self.key = 0
        self.checker: JsonPrefix | None = None
        if request.constrained:
            if request.required is None:
                self._begin(JsonPrefix("object"))
            else:
                self._next_key()

    # --- text fbrec writes itself ---------------------------------------------------------------------------
    def _force(self, text: str) -> None:
        ids = self.encode(text)
        self.queue.extend(ids)
        self.count += len(ids)

    def _begin(self, checker: JsonPrefix) -> None:
        self.checker, self.start, self.steps = checker, len(checker.text), 0

    def _next_key(self) -> None:
        if self.key == len(self.keys):
            self.text += "}"
            self.done = True
            return
        name, kind = self.keys[self.key]
        head = ("{" if self.key == 0 else ", ") + json.dumps(name) + ": "
        self.key += 1
        self.text += head
        self._force(head)
        self._begin(JsonPrefix(kind))

    def _end_value(self) -> None:
        self.text += self.checker.text[self.start:]
        if self.request.required is None:
            self.done = True
        else:
            self._next_key()

    def _close_value(self) -> None:
        """The budget ran out (or no likely token fitted): fbrec writes the shortest text that ends the value."""
        tail = self.checker.closing()
        self.checker.feed_text(tail)
        self._force(tail)
        self._end_value()

    # --- one step ---------------------------------------------------------------------------------------------
    def choose(self, candidates: list[int]) -> None:
        """Take the model's next token from its candidates (most likely first); leaves the row done or with a
        token to read."""
        if not self.request.constrained:
            token = candidates[0]
            self.new.append(token)
            self.count += 1
            if token in self.eos or len(self.new) >= self.request.max_new_tokens:
                self.done = True
            else:
                self.queue.append(token)
            return
        if self.steps >= self.request.max_new_tokens:
            self._close_value()
            return
        checker = self.checker
        for token in candidates:
            piece = self.pieces[token]
            if not piece:
                continue
            if checker.can_end() and not checker.done and piece[0] in ",}] \n":
                self._end_value()   # a top-level number the model chose to end
                return
            if checker.feed_text(piece):
                self.queue.append(token)
                self.count += 1
                self.steps += 1
                if checker.done:
                    self._end_value()
                return
        self._close_value()

    def result(self, decode_new) -> Result:
        text = self.text if self.request.constrained else decode_new(self.new)
        return Result(text, len(self.prompt_ids), self.count)


def decode(lm, tokenizer, requests: list[Request], pieces: list[str] | None = None) -> list[Result]:
    """Greedy answers to `requests`, decoded together as one batch (callers choose the batch size); results in the
    order of the requests. `pieces` (each token's text, "" for special tokens) is needed for constrained rows."""
    import torch

    if not requests:
        return []
    device = next(lm.parameters()).device
    eos = tokenizer_eos(lm, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos)

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    prompt_ids = [tokenizer(r.prompt)["input_ids"] for r in requests]
    rows = [_Row(r, ids, encode, pieces or [], eos) for r, ids in zip(requests, prompt_ids, strict=True)]
    width = max(len(ids) for ids in prompt_ids)
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompt_ids], device=device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompt_ids], device=device)
    active = list(range(len(rows)))
    with torch.no_grad():
        out = lm(input_ids=input_ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0),
                 use_cache=True, logits_to_keep=1)   # the last position's logits only (not prompt x vocabulary)
        cache, logits = out.cache, out.logits[:, -1]
        position = mask.sum(1) - 1
        while active:
            need = [j for j, i in enumerate(active) if not rows[i].queue]
            if need:
                top = torch.topk(logits[need], min(CANDIDATES, logits.shape[-1])).indices.tolist()
                for j, candidates in zip(need, top, strict=True):
                    rows[active[j]].choose(candidates)
            keep = [j for j, i in enumerate(active) if not rows[i].done]
            if len(keep) < len(active):   # finished rows leave the batch and the cache
                if not keep:
                    break
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                mask, position = mask[index], position[index]
                active = [active[j] for j in keep]
            n = min(len(rows[i].queue) for i in active)
            step = torch.tensor([rows[i].queue[:n] for i in active], device=device)
            for i in active:
                del rows[i].queue[:n]
            mask = torch.cat([mask, mask.new_ones(len(active), n)], dim=1)
            positions = position[:, None] + torch.arange(1, n + 1, device=device)
            out = lm(input_ids=step, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                     logits_to_keep=1)
            cache, logits, position = out.cache, out.logits[:, -1], positions[:, -1]
    return [row.result(lambda ids: tokenizer.decode(ids, skip_special_tokens=True)) for row in rows]


def tokenizer_eos(lm, tokenizer) -> set[int]:
    """The tokens that end a free answer: the model's generation config, else the tokenizer's end of sequence."""
    configured = getattr(getattr(lm, "generation_config", None), "eos_token_id", None)
    if configured is None:
        configured = tokenizer.eos_token_id
    return set(configured if isinstance(configured, list | tuple) else [configured])
