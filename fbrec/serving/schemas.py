"""Request and response bodies of the retrieval service. Unknown fields and wrong types are refused (422), strictly:
no coercion, so `"k": true` is not k=1, `"user": true` is not user 1 and `"exclude_seen": 0` is not false."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field


def _whole(value):
    """JSON has one number type: 57.0 is the integer 57 (as JSON Schema says); 57.5 and true stay refused."""
    return int(value) if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 63 else value


Int = Annotated[int, BeforeValidator(_whole)]
Id = Annotated[int | str, BeforeValidator(_whole)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ItemFilter(_Strict):
    """Which items may be returned: ids to include (only these) or exclude, and attribute values, e.g.
    {"genres": ["Comedy"]}: an item passes when its attribute (or, for a list attribute, any of its values) is one of
    the given values."""

    include_items: list[Id] | None = None
    exclude_items: list[Id] = Field(default_factory=list)
    attributes: dict[str, list[Any]] = Field(default_factory=dict)


class RecommendRequest(_Strict):
    user: Id
    k: Int = 10
    exclude_seen: bool = True
    filter: ItemFilter | None = None
    features: dict[str, Any] | None = None   # a new user's side features, e.g. {"age": 34, "occupation": "writer"}
    # stated preferences (fbrec.data.preferences), e.g. {"exclude": {"genres": ["Horror"]}, "boost": {...}};
    # `fbrec llm parse "no horror, more comedies" --bundle DIR` writes them from words
    preferences: dict[str, Any] | None = None


class BatchRecommendRequest(_Strict):
    users: list[Id] = Field(min_length=1)
    k: Int = 10
    exclude_seen: bool = True
    filter: ItemFilter | None = None


class SimilarRequest(_Strict):
    item: Id
    k: Int = 10
    filter: ItemFilter | None = None


class VectorRequest(_Strict):
    vector: list[float]
    k: Int = 10
    filter: ItemFilter | None = None


def _named(value):
    """An empty or blank name would resolve to the bundle root itself, which is not a bundle."""
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"the bundle name {value!r} is empty: send a folder's name, or {{}} to reload the current one")
    return value


class ReloadRequest(_Strict):
    # a bundle folder under the service's --bundle-root (a name relative to it, or a path inside it);
    # None reloads the current one
    bundle: Annotated[str, AfterValidator(_named), Field(json_schema_extra={"pattern": r"\S"})] | None = None


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer: the problem, the rule it broke and how to fix it (`serving`: after a refused reload,
    the bundle version still served)."""

    error: str
    rule: str = ""
    fix: str = ""
    serving: str | None = None


class Item(BaseModel):
    item: Id
    score: float
    attributes: dict[str, Any] = Field(default_factory=dict)


class Recommendations(BaseModel):
    user: Id | None = None
    items: list[Item]
    fallback: str | None = None          # "popularity" when the user is unknown (or cold) and sent no features
    query: str = "user_embedding"        # what ranked the items: user_embedding | user_tower | popularity
    bundle_version: str


class BatchRecommendations(BaseModel):
    results: list[Recommendations]
    bundle_version: str
