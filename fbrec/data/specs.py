"""The data config as a few small typed specs (what `FeedbackData` takes and LightningCLI nests in YAML):

    data:
      source: {dataset: movielens-100k}                 # or {log: clicks.parquet, integer_ids: true} or {prepared_dir: D}
      preparation: {min_rating: 4.0, split: random}     # fbrec.data.prepare.PrepareConfig
      propensity: {class_path: fbrec.data.specs.PopularityExposure, init_args: {eta: 0.5}}
      sampling: {num_negatives: 4, batch_size: 4096}
      evaluation: {val_users: 5000}
      features: {item: [{column: genres, kind: multi}]}

The flat keys of earlier releases (`data.batch_size`, `data.propensity: popularity`, ...) still work for one
release: `translate_flat` rewrites them into these specs with a one-line note naming the new key.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from fbrec.data.features import FeatureSpec
from fbrec.errors import ConfigError


@dataclass
class Source:
    """Where the clicks come from: a registered dataset (`dataset`, with generator `options` for "synthetic"), a folder
    written by `fbrec data prepare` (`prepared_dir`), or your own log (`log`: parquet/CSV/NDJSON, with optional side
    tables `items` / `users`, `columns` mapping canonical names to yours, ordered `levels`, and how the file is read:
    `separator`, `timestamp_format`, `timestamp_unit` in s | ms | us | ns, `integer_ids`)."""

    dataset: str = "synthetic"
    data_dir: str | None = None
    options: dict | None = None
    prepared_dir: str | None = None
    log: str | None = None
    items: str | None = None
    users: str | None = None
    columns: dict[str, str] | None = None
    levels: list[str] | None = None
    separator: str | None = None
    timestamp_format: str | None = None
    timestamp_unit: str = "s"
    integer_ids: bool = False


@dataclass
class Sampling:
    """How training examples are drawn: `num_negatives` uniform negatives per positive; `batch_size` examples per
    step (per process); `positive_pool` k > 0 adds k of the user's training items to every batch for PLD's resampling
    of the positive; `noise_rate` rho adds floor(rho x |u's training items|) random never-interacted items to each
    user's training pairs (the denoising protocol; validation and test stay clean); `label` "binary" or "level" (each
    positive labelled with the highest level it reached, counted from min_level, for ordinal recipes);
    `merge_validation` trains on training + validation pairs (the refit, `fbrec train --refit`)."""

    num_negatives: int = 1
    batch_size: int = 1024
    positive_pool: int = 0
    noise_rate: float = 0.0
    label: str = "binary"
    merge_validation: bool = False


@dataclass
class Evaluation:
    """The evaluation protocol: `candidates` "all" ranks the whole catalogue, "test_items" only each user's logged
    test items (the MCAR protocol of Coat / Yahoo! R3). `val_users` N validates each epoch on a seeded sample of N
    users (`val_users<N>/...`); `sampled_metrics` N ranks each user's relevant items among N sampled unseen items
    (`val_sampled<N>/...`; cheap, and not consistent with full ranking, Krichene & Rendle KDD 2020); the test always
    ranks every item for every user. `batch_size`: users per full-ranking chunk; `head_fraction`: the share of items
    (by training popularity) in the head slice; `cold_max_interactions`: the cold slice's bound.
    `mask_level`: rank without each user's training pairs at this level or above only (the multi-behaviour papers'
    protocol masks the training buys, `mask_level: buy`: items a user only viewed stay candidates), and report the
    test once more with every training pair masked (`test_unseen/...`, what a product that never re-shows a seen item
    would get); None masks every training pair."""

    candidates: str = "all"
    val_users: int | None = None
    sampled_metrics: int | None = None
    batch_size: int = 256
    head_fraction: float = 0.2
    cold_max_interactions: int = 5
    mask_level: str | None = None


@dataclass
class Features:
    """Side features of the item and user towers (fbrec.data.features.FeatureSpec); the id is always the first."""

    item: list[FeatureSpec] | None = None
    user: list[FeatureSpec] | None = None


class Exposure:
    """Where exposure probabilities come from (chosen by class path in YAML). Subclasses say how."""

    name = "none"

    def as_config(self) -> dict:
        args = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return {"class_path": f"{type(self).__module__}.{type(self).__qualname__}", "init_args": args}

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class PopularityExposure(Exposure):
    """Each item's propensity estimated on the training split, (n_i / N)^eta floored at min_propensity, with N the
    most clicked item's count (normalise "max") or the number of users ("users"), or the users form scaled so the
    exposures explain the clicks given the relevant share of a small MCAR sample ("calibrated", with
    relevance_rate): fbrec.propensity."""

    name = "popularity"

    def __init__(self, eta: float = 0.5, min_propensity: float = 1e-3, normalise: str = "max",
                 relevance_rate: float | None = None):
        self.eta, self.min_propensity, self.normalise = eta, min_propensity, normalise
        if relevance_rate is not None:   # (only when set: configs logged before it existed compare equal)
            self.relevance_rate = relevance_rate


class DatasetExposure(Exposure):
    """The pair propensities the dataset ships (Coat's propensities.ascii)."""

    name = "dataset"


class FileExposure(Exposure):
    """Your (user, item, propensity) table: parquet, CSV or NDJSON, names mapped by the source's `columns`."""

    name = "file"

    def __init__(self, path: str):
        self.path = path


def coerce(kind, value):
    """A spec from what a YAML, a logged run or a caller gives: the spec itself, a dict of its fields, or None."""
    if value is None or isinstance(value, kind):
        return kind() if value is None else value
    if isinstance(value, dict):
        return kind(**value)
    return value


def coerce_exposure(value) -> Exposure | None:
    """An Exposure from an object, a {class_path, init_args} dict, or a legacy name ("popularity", ...)."""
    if value is None or isinstance(value, Exposure):
        return value
    if isinstance(value, str):
        if value == "file":
            raise ConfigError("propensity='file' without propensity_path",
                              rule="propensity_path goes with propensity: file, and only with it",
                              fix="use propensity: {class_path: fbrec.data.specs.FileExposure, init_args: {path: PATH}}")
        cls = EXPOSURES.get(value)
        return cls() if cls is not None else value   # an unknown name: FeedbackData names it
    if isinstance(value, dict) and "class_path" in value:
        import importlib

        module, _, name = value["class_path"].rpartition(".")
        cls = getattr(importlib.import_module(module or __name__), name)
        try:
            return cls(**(value.get("init_args") or {}))
        except TypeError as exc:
            raise ConfigError(f"propensity {name}: {exc}", rule="init_args are the class's constructor arguments",
                              fix="see fbrec.data.specs (FileExposure takes path)") from None
    return value


# flat key of earlier releases -> (spec, field)
FLAT = {
    **{k: ("source", v) for k, v in (("dataset", "dataset"), ("data_dir", "data_dir"), ("dataset_options", "options"),
                                     ("prepared_dir", "prepared_dir"), ("log_path", "log"), ("items_path", "items"),
                                     ("users_path", "users"), ("columns", "columns"), ("levels", "levels"),
                                     ("separator", "separator"), ("timestamp_format", "timestamp_format"),
                                     ("timestamp_unit", "timestamp_unit"), ("integer_ids", "integer_ids"))},
    **{k: ("preparation", k) for k in ("min_level", "min_rating", "min_user", "min_item", "split", "test_fraction",
                                       "val_fraction")},
    **{k: ("sampling", k) for k in ("num_negatives", "batch_size", "positive_pool", "noise_rate", "label",
                                    "merge_validation")},
    **{k: ("evaluation", v) for k, v in (("eval_candidates", "candidates"), ("val_users", "val_users"),
                                         ("sampled_metrics", "sampled_metrics"), ("eval_batch_size", "batch_size"),
                                         ("head_fraction", "head_fraction"),
                                         ("cold_max_interactions", "cold_max_interactions"),
                                         ("mask_level", "mask_level"))},
    "item_features": ("features", "item"), "user_features": ("features", "user"),
}
EXPOSURES = {"popularity": PopularityExposure, "dataset": DatasetExposure, "file": FileExposure}   # legacy names
EXPOSURE_FLAT = {"propensity_eta": "eta", "min_propensity": "min_propensity", "propensity_normalise": "normalise",
                  "propensity_path": "path"}
SPECS = ("source", "preparation", "propensity", "sampling", "evaluation", "features", "seed")


def translate_flat(block: dict, note=None) -> dict:
    """A data block with flat keys of earlier releases rewritten into the specs (nested keys pass through);
    `note(old, new)` is told about each rewritten key."""
    out: dict = {k: (dict(v) if isinstance(v, dict) and k != "propensity" else v) for k, v in block.items()
                 if k in SPECS}
    exposure_args = {}
    for key, value in block.items():
        if key in SPECS:
            continue
        if key in FLAT:
            spec, field = FLAT[key]
            out.setdefault(spec, {})
            out[spec][field] = value
            if note:
                note(f"data.{key}", f"data.{spec}.{field}")
        elif key in EXPOSURE_FLAT:
            exposure_args[EXPOSURE_FLAT[key]] = value
            if note:
                note(f"data.{key}", f"data.propensity.init_args.{EXPOSURE_FLAT[key]}")
        else:
            out[key] = value   # unknown: the parser names it
    prop = out.get("propensity")
    if isinstance(prop, str) or (prop is None and "path" in exposure_args):
        cls = EXPOSURES.get(prop or "file")
        if cls is None:
            out["propensity"] = prop   # FeedbackData names the unknown source
        else:
            import inspect

            allowed = set(inspect.signature(cls).parameters)
            args = {k: v for k, v in exposure_args.items() if k in allowed}
            if ("path" in exposure_args) != ("path" in allowed):
                raise ConfigError(f"propensity={prop!r} with propensity_path={exposure_args.get('path')!r}",
                                  rule="propensity_path goes with propensity: file, and only with it",
                                  fix="use propensity: {class_path: fbrec.data.specs.FileExposure, init_args: "
                                      "{path: PATH}}")
            out["propensity"] = {"class_path": f"{__name__}.{cls.__name__}", **({"init_args": args} if args else {})}
            if note and isinstance(prop, str):
                note(f"data.propensity: {prop}", f"data.propensity.class_path: {__name__}.{cls.__name__}")
    return {**{k: out[k] for k in SPECS if k in out}, **{k: v for k, v in out.items() if k not in SPECS}}


def spec_fields(kind) -> list[str]:
    return [f.name for f in fields(kind)]


def _deprecation_note(old: str, new: str) -> None:
    import sys

    print(f"note: {old} is deprecated and will be removed in the next release; use {new}", file=sys.stderr)


def resolve_specs(source, preparation, propensity, sampling, evaluation, features, seed, flat: dict):
    """FeedbackData's arguments as specs: a dataset name as its source, dicts as their specs, and the flat keys of
    the last release (each with a one-line note) folded into the specs given alongside them."""
    from dataclasses import asdict

    from fbrec.data.prepare import PrepareConfig

    if isinstance(source, str):   # FeedbackData("movielens-100k")
        source = Source(dataset=source)
    if isinstance(propensity, str) and flat:   # a legacy name with its legacy options: translated together
        flat, propensity = {"propensity": propensity, **flat}, None
    if flat:
        given = {"source": source, "preparation": preparation, "sampling": sampling, "evaluation": evaluation,
                 "features": features}
        nested = translate_flat(flat, note=_deprecation_note)
        unknown = sorted(set(nested) - set(SPECS))
        if unknown:
            raise ConfigError(f"unknown data option {unknown[0]!r}", rule=f"the data config's keys are "
                              f"{', '.join(SPECS)}", fix="see fbrec.data.specs for what each spec holds")
        for key, value in nested.items():
            if key == "seed":
                seed = value
            elif key == "propensity":
                propensity = value
            else:   # flat fields fill in the spec given alongside them (if any)
                base = given[key]
                base = asdict(base) if hasattr(base, "__dataclass_fields__") else dict(base or {})
                given[key] = {**base, **value}
        source, preparation, sampling, evaluation, features = (given[k] for k in ("source", "preparation",
                                                                                 "sampling", "evaluation", "features"))
    return (coerce(Source, source), coerce(PrepareConfig, preparation), coerce_exposure(propensity),
            coerce(Sampling, sampling), coerce(Evaluation, evaluation), coerce(Features, features), seed)
