"""Structured preferences a user states at retrieval time ("fewer horror films, more 90s comedies"), validated like
any other input and applied to a catalogue's item attributes as a filter mask and score boosts.

    include     {attribute: [values]}   keep only items that have one of the values (for each attribute given)
    exclude     {attribute: [values]}   drop items that have any of the values
    boost       {attribute: {value: w}} add w (in standard deviations of the candidates' scores) per matching value
    min_year / max_year                 keep items whose `year` attribute lies in the range (min_year > max_year is
                                        an empty range: it keeps no item)
    popularity  "popular" | "niche"     add +-popularity_weight x the standardised log training count
    similar_to  [titles]                add similar_weight x the standardised cosine similarity of each item's
                                        embedding to the named items' mean direction; the named items themselves
                                        are left out ("more like Star Wars" is not Star Wars again)

An item "has" a value when its attribute equals it or, for a list attribute (genres), contains it; matching is
case-insensitive. A similar_to value names an item by its `title`, or by "title (year)" where the catalogue has a
year column (how the parser writes it, so remakes stay apart). Natural-language commands become Preferences in
fbrec.llm.commands (offline rules or an LLM).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from fbrec.errors import ConfigError

KEYS = ("include", "exclude", "boost", "min_year", "max_year", "popularity", "popularity_weight", "similar_to",
        "similar_weight")
POPULARITY = ("popular", "niche")
BOOST_LIMIT = 100.0   # |weight| of a boost or of popularity: in standard deviations of scores, finite by far


def _is_weight(w) -> bool:
    return isinstance(w, int | float) and not isinstance(w, bool) and bool(np.isfinite(w)) and abs(w) <= BOOST_LIMIT


@dataclass
class Preferences:
    include: dict[str, list] = field(default_factory=dict)
    exclude: dict[str, list] = field(default_factory=dict)
    boost: dict[str, dict[str, float]] = field(default_factory=dict)
    min_year: int | None = None
    max_year: int | None = None
    popularity: str | None = None
    popularity_weight: float = 0.5
    similar_to: list[str] = field(default_factory=list)
    similar_weight: float = 1.0

    @classmethod
    def from_dict(cls, data: dict) -> Preferences:
        """Validate a JSON-like dict; errors name the key, the rule and the fix."""
        if not isinstance(data, dict):
            raise ConfigError(f"preferences are a {type(data).__name__}", rule="preferences are a JSON object",
                              fix='send e.g. {"exclude": {"genres": ["Horror"]}}')
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            raise ConfigError(f"preferences key {unknown[0]!r}", rule=f"known keys: {', '.join(KEYS)}",
                              fix="remove it or fix its spelling")
        for key in ("include", "exclude"):
            value = data.get(key, {})
            if not isinstance(value, dict) or not all(
                    isinstance(v, list) and all(isinstance(x, str | int | float) for x in v) for v in value.values()):
                raise ConfigError(f"preferences.{key} = {value!r}", rule=f"{key} maps an attribute to a list of values "
                                  "(text or numbers, matched as text without case)",
                                  fix=f'e.g. {{"{key}": {{"genres": ["Comedy"]}}}}')
        boost = data.get("boost", {})
        if not isinstance(boost, dict) or not all(
                isinstance(v, dict) and all(_is_weight(w) for w in v.values()) for v in boost.values()):
            raise ConfigError(f"preferences.boost = {boost!r}", rule="boost maps an attribute to {value: number}, "
                              f"each within +-{BOOST_LIMIT:g}", fix='e.g. {"boost": {"genres": {"Comedy": 1.0}}}')
        for key, example in (("popularity_weight", 0.5), ("similar_weight", 1.0)):
            if key in data and not _is_weight(data[key]):
                raise ConfigError(f"preferences.{key} = {data[key]!r}", rule=f"a number within +-{BOOST_LIMIT:g}",
                                  fix=f'e.g. {{"{key}": {example}}}')
        similar = data.get("similar_to", [])
        if not isinstance(similar, list) or not all(isinstance(v, str) and v.strip() for v in similar):
            raise ConfigError(f"preferences.similar_to = {similar!r}", rule="similar_to is a list of item titles",
                              fix='e.g. {"similar_to": ["Toy Story (1995)"]}')
        for key in ("min_year", "max_year"):
            v = data.get(key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                raise ConfigError(f"preferences.{key} = {v!r}", rule=f"{key} is an integer year or null",
                                  fix=f'e.g. {{"{key}": 1990}}')
        if data.get("popularity") not in (None, *POPULARITY):
            raise ConfigError(f"preferences.popularity = {data['popularity']!r}",
                              rule="popularity is 'popular', 'niche' or null", fix='e.g. {"popularity": "niche"}')
        return cls(**{k: data[k] for k in KEYS if k in data})

    def to_dict(self) -> dict:
        """The stated fields only (defaults left out), JSON-ready."""
        default = Preferences()
        return {k: v for k, v in asdict(self).items() if v != getattr(default, k)}

    @property
    def empty(self) -> bool:
        return not (self.include or self.exclude or self.boost or self.min_year is not None
                    or self.max_year is not None or self.popularity or self.similar_to)

    @property
    def reranks(self) -> bool:
        return bool(self.boost or self.popularity or self.similar_to)


def _has(column: pl.Series, values: list) -> np.ndarray:
    wanted = {str(v).lower() for v in values}
    if column.dtype == pl.List(pl.String) or isinstance(column.dtype, pl.List):
        lowered = column.list.eval(pl.element().cast(pl.String).str.to_lowercase())
        return lowered.list.eval(pl.element().is_in(list(wanted))).list.any().fill_null(False).to_numpy()
    return column.cast(pl.String).str.to_lowercase().is_in(list(wanted)).fill_null(False).to_numpy()


def _column(items: pl.DataFrame | None, name: str, key: str) -> pl.Series:
    if items is None or name not in items.columns:
        known = [c for c in (items.columns if items is not None else []) if c != "item_index"]
        raise ConfigError(f"preferences.{key} names attribute {name!r}", rule=f"attributes of this catalogue: "
                          f"{known or 'none'}", fix="use one of them (or export the bundle with item attributes)")
    return items[name]


def item_names(items: pl.DataFrame) -> pl.Series:
    """Each item's name as similar_to spells it: "title (year)" where the year is known, else the title."""
    title = pl.col("title").cast(pl.String)
    if "year" in items.columns:
        year = pl.col("year").cast(pl.Int64, strict=False).cast(pl.String)
        title = pl.when(year.is_not_null()).then(pl.format("{} ({})", title, year)).otherwise(title)
    return items.select(title.alias("name"))["name"]


def similar_items(names: list[str], items: pl.DataFrame | None) -> np.ndarray:
    """Item indices a similar_to list names (title or "title (year)", without case); one error for a name that is
    not in the catalogue."""
    titles = _column(items, "title", "similar_to").cast(pl.String).str.to_lowercase().to_numpy()
    full = item_names(items).str.to_lowercase().to_numpy()
    found = []
    for name in names:
        hit = np.flatnonzero((full == name.lower()) | (titles == name.lower()))
        if not len(hit):
            raise ConfigError(f"preferences.similar_to names {name!r}", rule="each name is an item title of this "
                              "catalogue (or \"title (year)\")", fix="spell it as the catalogue does, e.g. "
                              f"{item_names(items.head(1))[0]!r}")
        found.append(hit)
    return np.unique(np.concatenate(found)) if found else np.empty(0, np.int64)


def apply_preferences(prefs: Preferences, items: pl.DataFrame | None, num_items: int,
                      item_counts: np.ndarray | None = None, item_embeddings: np.ndarray | None = None,
                      ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(allowed mask (num_items,) or None, boost vector (num_items,) or None) over item indices 0..num_items-1.
    `items` holds one row per item index (column item_index) with the attributes; similar_to needs the items'
    embeddings (num_items, D)."""
    if items is not None:
        items = pl.DataFrame({"item_index": np.arange(num_items)}).join(items, on="item_index", how="left")
    mask = None
    for name, values in prefs.include.items():
        m = _has(_column(items, name, "include"), values)
        mask = m if mask is None else mask & m
    for name, values in prefs.exclude.items():
        m = ~_has(_column(items, name, "exclude"), values)
        mask = m if mask is None else mask & m
    if prefs.min_year is not None or prefs.max_year is not None:
        year = _column(items, "year", "min_year/max_year").cast(pl.Float64).fill_null(np.nan).to_numpy()
        m = (year >= (prefs.min_year if prefs.min_year is not None else -np.inf)) & \
            (year <= (prefs.max_year if prefs.max_year is not None else np.inf))
        mask = m if mask is None else mask & m
    boost = None
    if prefs.reranks:
        boost = np.zeros(num_items)
        for name, weights in prefs.boost.items():
            column = _column(items, name, "boost")
            for value, w in weights.items():
                boost += w * _has(column, [value])
        if prefs.popularity and item_counts is not None:
            pop = np.log1p(np.asarray(item_counts, np.float64))
            z = (pop - pop.mean()) / (pop.std() or 1.0)
            boost += (1 if prefs.popularity == "popular" else -1) * prefs.popularity_weight * z
        if prefs.similar_to:
            named = similar_items(prefs.similar_to, items)
            boost += prefs.similar_weight * _similarity(named, item_embeddings, num_items)
            m = np.ones(num_items, bool)
            m[named] = False
            mask = m if mask is None else mask & m
    return mask, boost


def _similarity(named: np.ndarray, item_embeddings: np.ndarray | None, num_items: int) -> np.ndarray:
    """Standardised cosine similarity of every item to the mean direction of the named items."""
    if item_embeddings is None or len(item_embeddings) != num_items:
        raise ConfigError("preferences.similar_to without the items' embeddings", rule="similar items are found "
                          "by their embeddings", fix="use it where a model's item embeddings are loaded (a bundle, "
                          "`fbrec simulate`)")
    unit = np.asarray(item_embeddings, np.float64)
    unit = unit / np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    cosine = unit @ unit[named].mean(axis=0)
    return (cosine - cosine.mean()) / (cosine.std() or 1.0)


def rerank(items: np.ndarray, scores: np.ndarray, boost: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Standardise the candidates' scores, add their boosts, keep the k best (scores returned are the adjusted)."""
    z = (scores - scores.mean()) / (scores.std() or 1.0) if len(scores) > 1 else scores * 0.0
    adjusted = z + boost[items]
    order = np.argsort(-adjusted, kind="stable")[:k]
    return items[order], adjusted[order]
