"""Natural-language commands -> `Preferences` ("fewer horror films, more 90s comedies" -> boost Horror -1,
Comedy +1, years 1990-1999).

The offline parser reads the catalogue's own attribute vocabulary (genres, categories, brands; any string or list
column with a manageable number of distinct values), and matches words and word pairs of each clause against it,
exactly or fuzzily (difflib, plural forms folded). Each clause's cue decides what a match means:
    no / not / nothing / without / avoid / exclude / hate / never  -> exclude
    only / just                                                     -> include
    fewer / less                                                    -> boost -1
    more / like / love / want / prefer / into / show me (default)   -> boost +1
Years: "90s", "1990s" -> 1990-1999, "after|since 2000" -> min_year, "before 1980" -> max_year, "recent|new" ->
the last ten years of the catalogue. "popular|mainstream|hits" and "obscure|niche|lesser-known|hidden gems" set
popularity. The LLM parser sends the same command and vocabulary through the client interface and validates the
JSON answer as Preferences.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass

import polars as pl

from fbrec.data.preferences import Preferences
from fbrec.llm.client import Backend, Schema, Task

NEGATE = {"no", "not", "without", "avoid", "exclude", "hate", "never", "stop", "don't", "dont", "none", "skip",
          "nothing"}
ONLY = {"only", "just", "exclusively"}
FEWER = {"fewer", "less", "reduce"}
POPULAR = {"popular", "mainstream", "hits", "blockbusters", "bestsellers", "best-sellers", "well-known"}
NICHE = {"obscure", "niche", "lesser-known", "indie", "unknown", "underrated", "rare"}
STOP = {"the", "a", "an", "of", "and", "or", "some", "any", "please", "me", "show", "give", "i", "want", "like",
        "love", "more", "films", "film", "movies", "movie", "items", "products", "stuff", "things", "with", "from",
        "in", "for", "to", "by", "is", "are", "be", "but", "that", "this", "recommend", "prefer", "into", "s"}


@dataclass
class Vocabulary:
    """attribute -> {lower-case value: the catalogue's spelling}, and the catalogue's year range."""

    values: dict[str, dict[str, str]]
    years: tuple[int, int] | None = None

    @classmethod
    def from_items(cls, items: pl.DataFrame | None, max_values: int = 5000) -> Vocabulary:
        values: dict[str, dict[str, str]] = {}
        years = None
        if items is None:
            return cls(values)
        for c in items.columns:
            if c in ("item", "item_index", "title"):
                continue
            col = items[c]
            if c == "year" and col.dtype.is_numeric():
                ys = col.drop_nulls()
                years = (int(ys.min()), int(ys.max())) if ys.len() else None
                continue
            flat = col.explode() if isinstance(col.dtype, pl.List) else col
            if flat.dtype != pl.String:
                continue
            distinct = flat.drop_nulls().unique()
            if 0 < distinct.len() <= max_values:
                values[c] = {str(v).lower(): str(v) for v in distinct.to_list() if str(v).strip()}
        return cls(values, years)

    def summary(self, per_attribute: int = 40) -> str:
        parts = [f"{a}: {', '.join(sorted(v.values())[:per_attribute])}" for a, v in self.values.items()]
        if self.years:
            parts.append(f"year: {self.years[0]}-{self.years[1]}")
        return "; ".join(parts)


def _singular(word: str) -> str:
    for suffix, repl in (("ies", "y"), ("ses", "s"), ("s", "")):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            return word[: -len(suffix)] + repl
    return word


def _match(phrase: str, vocab: Vocabulary) -> list[tuple[str, str]]:
    """(attribute, value) pairs a phrase names: exact on the phrase or its singular, else close (ratio >= 0.85)."""
    out = []
    for attribute, values in vocab.values.items():
        for candidate in (phrase, _singular(phrase)):
            if candidate in values:
                out.append((attribute, values[candidate]))
                break
        else:
            close = difflib.get_close_matches(_singular(phrase), list(values), n=1, cutoff=0.85)
            if close and len(phrase) >= 4:
                out.append((attribute, values[close[0]]))
    return out


def _clauses(text: str) -> list[str]:
    return [c.strip() for c in re.split(r"[,;.!]|\bbut\b|\band\b(?=\s+(?:no|not|more|less|fewer|only|without))",
                                        text.lower()) if c.strip()]


def parse_command_offline(text: str, vocab: Vocabulary) -> Preferences:
    prefs = Preferences()
    for clause in _clauses(text):
        words = re.findall(r"[a-z0-9'\-&]+", clause)
        cue = ("exclude" if NEGATE & set(words) else "include" if ONLY & set(words)
               else "fewer" if FEWER & set(words) else "more")
        for w in words:
            if w in POPULAR:
                prefs.popularity = "niche" if cue in ("exclude", "fewer") else "popular"
            elif w in NICHE:
                prefs.popularity = "popular" if cue in ("exclude", "fewer") else "niche"
        _years(clause, vocab, prefs)
        used: set[int] = set()
        for size in (3, 2, 1):   # longest phrases first: "science fiction" before "science"
            for i in range(len(words) - size + 1):
                if any(j in used for j in range(i, i + size)):
                    continue
                phrase = " ".join(words[i:i + size])
                if size == 1 and (phrase in STOP or phrase in NEGATE | ONLY | FEWER | POPULAR | NICHE):
                    continue
                hits = _match(phrase, vocab)
                if not hits:
                    continue
                used.update(range(i, i + size))
                for attribute, value in hits:
                    if cue == "exclude":
                        prefs.exclude.setdefault(attribute, []).append(value)
                    elif cue == "include":
                        prefs.include.setdefault(attribute, []).append(value)
                    else:
                        prefs.boost.setdefault(attribute, {})[value] = -1.0 if cue == "fewer" else 1.0
    return prefs


def _years(clause: str, vocab: Vocabulary, prefs: Preferences) -> None:
    decade = re.search(r"\b(?:(19|20)?(\d)0)'?s\b", clause)
    if decade:
        century = decade.group(1) or ("19" if int(decade.group(2)) >= 3 else "20")
        start = int(f"{century}{decade.group(2)}0")
        prefs.min_year, prefs.max_year = start, start + 9
    after = re.search(r"\b(?:after|since|from)\s+((?:19|20)\d\d)\b", clause)
    if after:
        prefs.min_year = int(after.group(1)) + (1 if "after" in after.group(0) else 0)
    before = re.search(r"\bbefore\s+((?:19|20)\d\d)\b", clause)
    if before:
        prefs.max_year = int(before.group(1)) - 1
    if vocab.years and re.search(r"\b(recent|new|newer|latest)\b", clause):
        prefs.min_year = vocab.years[1] - 9


COMMAND_SCHEMA = Schema({"include": "object<array<string>>", "exclude": "object<array<string>>",
                         "boost": "object<object<number>>"})


def parse_command(text: str, vocab: Vocabulary, backend: Backend | None = None) -> Preferences:
    """Offline rules by default; with an LLM backend, its validated JSON answer."""
    if backend is None or not backend.is_language_model:
        return parse_command_offline(text, vocab)
    task = Task("parse_command", {"command": text, "vocabulary": vocab.summary()}, COMMAND_SCHEMA)
    answer = backend.run([task])[0].answer
    return Preferences.from_dict(json.loads(json.dumps(answer)))
