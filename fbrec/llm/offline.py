"""The offline default backend: deterministic templates over item metadata and the user's training interactions.

It is not a language model and says so in every answer (`generated_by`); every fbrec.llm feature runs on it, so
the whole pipeline works without a network or a model. Same facts in, same text out."""

from __future__ import annotations

from collections.abc import Callable

from fbrec.errors import ConfigError
from fbrec.llm.client import Completion, Task, Usage

GENERATED_BY = "offline-template/v1 (deterministic template, not a language model)"


def _item_profile(f: dict) -> str:
    band = f["popularity_band"]
    return f"{f['item_text']} {'An' if band[0] in 'aeiou' else 'A'} {band} item ({f['interactions']} interactions " \
           "in training)."


def _user_profile(f: dict) -> str:
    top = f["top_attributes"]
    liked = ", ".join(top) if top else "no recurring attribute"
    recent = "; ".join(f.get("recent_titles", [])[:5]) or "nothing yet"
    share = float(f["mainstream_share"])
    taste = "mainstream" if share >= 0.6 else "niche" if share <= 0.3 else "mixed, mainstream and niche"
    return (f"Mostly interested in {liked}. Recently chose {recent}. Taste: {taste} "
            f"({share:.0%} popular items among {f['num_items']}).")


TEMPLATES: dict[str, Callable[[dict], str]] = {"item_profile": _item_profile, "user_profile": _user_profile}


class OfflineBackend:
    name, model, is_language_model = "offline", "offline-template/v1", False

    def __init__(self):
        self.usage = Usage()

    def run(self, tasks: list[Task]) -> list[Completion]:
        out = []
        for task in tasks:
            if task.name not in TEMPLATES:
                raise ConfigError(f"the offline backend has no template for task {task.name!r}",
                                  rule=f"offline tasks: {sorted(TEMPLATES)}", fix="use an LLM backend for it")
            text = TEMPLATES[task.name](task.facts)
            answer = {"profile": text} if task.schema is not None else text
            out.append(Completion(answer, text, GENERATED_BY, attempts=0))   # a template: no request was sent
        return out
