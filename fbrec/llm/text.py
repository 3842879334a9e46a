"""Item text for encoders and prompts, assembled from the dataset's own columns by a declared template."""

from __future__ import annotations

import re
import string

import polars as pl

from fbrec.errors import ConfigError
from fbrec.types import ITEM, ITEM_INDEX

# What each registered dataset's item table holds, in the words a reader (or an LLM) would use.
ITEM_TEMPLATES = {
    "movielens-100k": "{title} ({year}). Genres: {genres}.",
    "movielens-100k-semisynthetic": "{title} ({year}). Genres: {genres}.",
    "amazon-scientific-text": "{title}. Category: {category}. Brand: {brand}.",
    "taobao-userbehavior-sample": "Item in category {category}.",
    "coat": "A {color} {jackettype} coat for {gender}.",
}


def template_fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def default_template(dataset: str, items: pl.DataFrame) -> str:
    """The dataset's declared template, else every attribute column as 'name: value'."""
    if dataset in ITEM_TEMPLATES:
        return ITEM_TEMPLATES[dataset]
    columns = [c for c in items.columns if c not in (ITEM, ITEM_INDEX)]
    return ". ".join(f"{c}: {{{c}}}" for c in columns) + "."


def _value(v) -> str:
    if v is None:
        return "unknown"
    if isinstance(v, list | tuple):
        return ", ".join(str(x) for x in v) if v else "none"
    return str(v)


def item_texts(items: pl.DataFrame, template: str) -> list[str]:
    """One text per row of `items`; a field the table lacks is refused naming the columns it has."""
    fields = template_fields(template)
    missing = [f for f in fields if f not in items.columns]
    if missing:
        raise ConfigError(f"item text template {template!r} names column(s) {missing}",
                          rule=f"template fields are item-table columns: {[c for c in items.columns]}",
                          fix="fix --item-template")
    rows = items.select(fields).to_dicts()
    return [re.sub(r"\s+", " ", template.format_map({k: _value(v) for k, v in row.items()})).strip() for row in rows]
