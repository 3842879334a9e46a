"""Top-k from a bundle for one user, optionally under preferences stated as JSON or in words (`fbrec retrieve`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fbrec.errors import ConfigError


@dataclass
class Recommendations:
    """A user's top-k: raw item ids and scores best first, each item's attributes, the preferences applied, and
    `fallback` ("popularity" for a user the bundle does not know or knows with no training items)."""

    user: object
    k: int
    items: list
    scores: list[float]
    attributes: list[dict]
    preferences: dict | None = None
    fallback: str | None = None


def retrieve(bundle: str | Path, user, k: int = 10, *, exact: bool = False, exclude_seen: bool = True,
             command: str | None = None, preferences: str | dict | None = None) -> Recommendations:
    """Top-k for `user` from the bundle's FAISS index (exact: brute force). command: what the user asks for in
    words, parsed offline over the bundle's attributes; preferences: structured preferences (a dict or JSON)."""
    from fbrec.bundle import Bundle
    from fbrec.data.preferences import Preferences

    if command is not None and preferences is not None:
        raise ConfigError("both a command and preferences", rule="preferences come from one of them",
                          fix="pass --command or --preferences")
    b = Bundle(bundle)
    prefs = None
    if command:
        from fbrec.llm.commands import Vocabulary, parse_command

        prefs = parse_command(command, Vocabulary.from_items(b.items))
    elif preferences:
        if isinstance(preferences, str):
            try:
                preferences = json.loads(preferences)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"--preferences is not JSON: {exc.msg} at character {exc.pos}",
                                  rule="a JSON object", fix='e.g. \'{"exclude": {"genres": ["Horror"]}}\'') from None
        prefs = Preferences.from_dict(preferences)
    ranked = b.rank(user, k, exclude_seen=exclude_seen, exact=exact, preferences=prefs)
    return Recommendations(user, k, b.item_map.decode(ranked.items), ranked.scores.tolist(),
                           b.item_attributes(ranked.items), prefs.to_dict() if prefs is not None else None,
                           ranked.fallback)
