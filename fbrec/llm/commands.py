"""Natural-language commands -> `Preferences` ("fewer horror films, more 90s comedies" -> boost Horror -1,
Comedy +1, years 1990-1999; "like Fargo but funnier" -> similar_to Fargo (1996), boost Comedy +1).

The offline parser reads the catalogue's own vocabulary (genres, categories, brands: any string or list column with a
manageable number of distinct values; titles; the year range) and matches words and word runs of each clause against
it: exactly, through a small documented lexicon (funny -> comedy), or fuzzily (difflib, plural forms folded). The
rules (cues and their scope, years, popularity, titles) are in fbrec.llm.command_rules. The LLM parser sends the same
command and vocabulary through the client interface and validates the JSON answer as Preferences.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field

import polars as pl

from fbrec.data.preferences import Preferences, item_names
from fbrec.llm import command_rules as rules
from fbrec.llm.client import Backend, Schema, Task


@dataclass
class Vocabulary:
    """attribute -> {lower-case value: the catalogue's spelling}, the catalogue's year range, and title words ->
    the items' names ("title (year)")."""

    values: dict[str, dict[str, str]]
    years: tuple[int, int] | None = None
    titles: dict[str, list[str]] = field(default_factory=dict)

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
        titles: dict[str, list[str]] = {}
        if "title" in items.columns:
            for title, name in zip(items["title"].cast(pl.String).to_list(), item_names(items).to_list(),
                                   strict=True):
                if title and (key := rules.title_key(title)) and name not in titles.get(key, []):
                    titles.setdefault(key, []).append(name)
        return cls(values, years, titles)

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
    """(attribute, value) pairs a phrase names: exact on the phrase or its singular, else through the lexicon, else
    close (ratio >= 0.85)."""
    out = []
    meant = rules.LEXICON.get(phrase) or rules.LEXICON.get(_singular(phrase))
    for attribute, values in vocab.values.items():
        for candidate in (phrase, _singular(phrase), meant):
            if candidate in values:
                out.append((attribute, values[candidate]))
                break
        else:
            close = difflib.get_close_matches(_singular(phrase), list(values), n=1, cutoff=0.85)
            if close and len(phrase) >= 4:
                out.append((attribute, values[close[0]]))
    return out


def _clauses(text: str) -> list[str]:
    for phrase, cue in rules.CUE_PHRASES:
        text = re.sub(rf"\b{re.escape(phrase)}\b", cue, text)
    return [c.strip() for c in re.split(r"[,;.!?]|\b(?:but|though|although|however)\b|"
                                        r"\band\b(?=\s+(?:no|not|more|less|fewer|only|without))", text) if c.strip()]


def parse_command_offline(text: str, vocab: Vocabulary) -> Preferences:
    prefs = Preferences()
    clauses = _clauses(text.lower())
    explicit = False
    for clause in clauses:
        lo, hi, stated = rules.years_of(clause, vocab.years)
        if stated:
            prefs.min_year, prefs.max_year, explicit = lo, hi, True
        words = re.findall(r"[a-z0-9'\-&]+", clause)
        cues = rules.cues_of(words)
        prefs.popularity = rules.popularity_of(clause, words, cues) or prefs.popularity
        used: set[int] = set()
        for start, end, names in rules.similar_spans(words, vocab.titles):
            single = end - start == 1 and _match(words[start], vocab)
            if not single:       # a one-word title that is also a value ("I like Horror") stays the value
                prefs.similar_to += [n for n in names if n not in prefs.similar_to]
                used.update(range(start, end))
        for size in (3, 2, 1):   # longest phrases first: "science fiction" before "science"
            for i in range(len(words) - size + 1):
                if any(j in used for j in range(i, i + size)):
                    continue
                phrase = " ".join(words[i:i + size])
                if size == 1 and (phrase in rules.STOP or phrase in rules.NEGATE | rules.ONLY | rules.FEWER
                                  | rules.MORE | rules.POPULAR | rules.NICHE):
                    continue
                hits = _match(phrase, vocab)
                if not hits:
                    continue
                used.update(range(i, i + size))
                cue = cues[i] or next((c for c in cues[i:] if c in ("include", "fewer")), "more")
                for attribute, value in hits:
                    if cue == "exclude":
                        if value not in prefs.exclude.get(attribute, []):
                            prefs.exclude.setdefault(attribute, []).append(value)
                    elif cue == "include":
                        if value not in prefs.include.get(attribute, []):
                            prefs.include.setdefault(attribute, []).append(value)
                    else:
                        prefs.boost.setdefault(attribute, {})[value] = -1.0 if cue == "fewer" else 1.0
    if not explicit:
        prefs.min_year = rules.relative_years(text.lower(), vocab.years)
    _welcome_wins(prefs)
    return prefs


def _welcome_wins(prefs: Preferences) -> None:
    """A value the command welcomes (boost > 0) is not also excluded: in "comedy is fine, just not romantic comedy"
    the exclusion is of the romance, not of the comedy just welcomed."""
    for attribute in list(prefs.exclude):
        welcomed = {v for v, w in prefs.boost.get(attribute, {}).items() if w > 0}
        kept = [v for v in prefs.exclude[attribute] if v not in welcomed]
        if kept:
            prefs.exclude[attribute] = kept
        else:
            del prefs.exclude[attribute]


COMMAND_SCHEMA = Schema({"include": "object<array<string>>", "exclude": "object<array<string>>",
                         "boost": "object<object<number>>", "min_year": "number", "max_year": "number",
                         "popularity": "string", "similar_to": "array<string>"})


def parse_command(text: str, vocab: Vocabulary, backend: Backend | None = None) -> Preferences:
    """Offline rules by default; with an LLM backend, its validated JSON answer (prompt parse_command v2: a year of 0
    and popularity "any" mean not stated; similar_to titles resolved against the catalogue's where they match)."""
    if backend is None or not backend.is_language_model:
        return parse_command_offline(text, vocab)
    task = Task("parse_command", {"command": text, "vocabulary": vocab.summary()}, COMMAND_SCHEMA, version="v2")
    answer = dict(json.loads(json.dumps(backend.run([task])[0].answer)))
    for key in ("min_year", "max_year"):
        year = answer.get(key)
        if isinstance(year, float) and year.is_integer():
            year = int(year)
        answer[key] = None if year == 0 else year
    if answer.get("popularity") in ("any", ""):
        answer["popularity"] = None
    answer["similar_to"] = [n for title in answer.get("similar_to", []) for n in
                            vocab.titles.get(rules.title_key(re.sub(r"\s*\(\d{4}\)\s*$", "", str(title))),
                                             [title])]
    return Preferences.from_dict(answer)
