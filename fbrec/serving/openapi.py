"""The service's OpenAPI, made exact: the generated schema plus the limits the handlers enforce (k, batch size, the
vector's length and range), the served bundle's attributes with their types, real ids as examples and the admin
token's security scheme, so a client (or a fuzzer) sees the rules the service applies."""

from __future__ import annotations

import polars as pl

from fbrec.data.preferences import BOOST_LIMIT, item_names
from fbrec.serving.state import VECTOR_LIMIT, ServedBundle


def _attribute_schema(dtype) -> dict:
    inner = dtype.inner if isinstance(dtype, pl.List) else dtype
    kind = ("boolean" if inner == pl.Boolean else "integer" if inner.is_integer() else
            "number" if inner.is_float() else "string")
    return {"type": "array", "items": {"type": kind}}


NAMES_IN_SCHEMA = 5000   # a catalogue's item names listed as the enum of similar_to up to this many


def _similar_schema(items: pl.DataFrame | None) -> dict:
    """similar_to names items by title ("title (year)"): the catalogue's names as an enum where there are few enough
    to list, free text (an unknown one is a 422) where there are more, nothing where the bundle has no titles."""
    if items is None or "title" not in items.columns:
        return {"type": "array", "maxItems": 0, "description": "this bundle has no item titles"}
    names = item_names(items).drop_nulls().unique().sort().to_list()
    if len(names) <= NAMES_IN_SCHEMA:
        return {"type": "array", "items": {"enum": names}, "description": "items named by \"title (year)\""}
    return {"type": "array", "items": {"type": "string", "pattern": "\\S"},
            "description": "item titles, or \"title (year)\", of this catalogue (another is a 422)"}


def declare_limits(schema: dict, max_k: int, max_batch: int, current: ServedBundle | None) -> None:
    """Write the limits the handlers enforce into the generated schema, so a client (or a fuzzer) sees the same
    rules the service applies."""
    models = schema.get("components", {}).get("schemas", {})
    schema["components"]["securitySchemes"] = {"adminToken": {"type": "http", "scheme": "bearer",
                                                              "description": "the service's --admin-token"}}
    schema["paths"]["/admin/reload"]["post"]["security"] = [{"adminToken": []}]
    for name in ("RecommendRequest", "BatchRecommendRequest", "SimilarRequest", "VectorRequest"):
        models[name]["properties"]["k"].update(minimum=1, maximum=max_k)
    models["BatchRecommendRequest"]["properties"]["users"]["maxItems"] = max_batch
    get_user = schema["paths"]["/recommend/{user}"]["get"]
    for param in get_user["parameters"]:
        if param["name"] == "k":
            param["schema"].update(minimum=1, maximum=max_k)
    vector = models["VectorRequest"]["properties"]["vector"]
    vector["items"].update(minimum=-VECTOR_LIMIT, maximum=VECTOR_LIMIT)
    if current is None:
        return
    vector.update(minItems=current.dim, maxItems=current.dim)
    bundle = current.bundle   # real ids as examples: a reader of /docs (or a fuzzer) reaches known users and items
    users, some_items = bundle.user_map.raw.head(3).to_list(), bundle.item_map.raw.head(3).to_list()
    models["RecommendRequest"]["properties"]["user"]["examples"] = users
    models["BatchRecommendRequest"]["properties"]["users"]["examples"] = [users]
    models["SimilarRequest"]["properties"]["item"]["examples"] = some_items
    request = models["RecommendRequest"]["properties"]
    if current.tower is None:   # features are read by an exported user tower only
        request["features"] = {"type": "null", "description": "this bundle has no user tower: leave features out"}
    items = bundle.items
    values = {} if items is None else {c: _attribute_schema(items[c].dtype) for c in items.columns
                                       if c != "item_index"}
    # filters and stated preferences name the bundle's attributes, with values of each attribute's type
    attrs = models["ItemFilter"]["properties"]["attributes"]
    attrs.pop("additionalProperties", None)
    attrs.update(properties=values, additionalProperties=False)
    scalars = {"type": "array", "items": {"type": ["string", "number", "boolean"]}}   # matched as text
    by_attribute = {"type": "object", "properties": {c: scalars for c in values}, "additionalProperties": False}
    weights = {"type": "object", "additionalProperties": {"type": "number", "minimum": -BOOST_LIMIT,
                                                          "maximum": BOOST_LIMIT}}
    year = {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    request["preferences"] = {"anyOf": [{"type": "null"}, {
        "type": "object", "additionalProperties": False,
        "description": "stated preferences (docs/llm-feedback.md); min_year > max_year is an empty range: no item "
                       "is kept",
        "properties": {"include": by_attribute, "exclude": by_attribute,
                       "boost": {"type": "object", "additionalProperties": False,
                                 "properties": {c: weights for c in values}},
                       "min_year": year, "max_year": year,
                       "popularity": {"anyOf": [{"enum": ["popular", "niche"]}, {"type": "null"}]},
                       "popularity_weight": {"type": "number", "minimum": -BOOST_LIMIT, "maximum": BOOST_LIMIT},
                       "similar_to": _similar_schema(items),
                       "similar_weight": {"type": "number", "minimum": -BOOST_LIMIT, "maximum": BOOST_LIMIT}}}]}
