"""A recipe YAML (or a recipe name under models/) plus overrides -> LightningCLI's model, datamodule and Trainer, with
one-line errors that name the key, the value and the fix, and a quiet console."""

from __future__ import annotations

import difflib
import logging
import os
import re
import warnings
from pathlib import Path

from lightning.pytorch.cli import LightningCLI

from fbrec.data.datamodule import FeedbackDataModule
from fbrec.errors import ConfigError, FbrecError, UnknownNameError
from fbrec.models import RankingModule
from fbrec.models.selection import BestCheckpoint


def recipes_dir() -> Path:
    """Where the recipes are: FBREC_RECIPES_DIR, else the copy an installed wheel carries (`fbrec/recipes`), else the
    checkout's `models/` (an editable install)."""
    env = os.environ.get("FBREC_RECIPES_DIR")
    if env:
        return Path(env)
    packaged = Path(__file__).resolve().parents[1] / "recipes"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "models"


def recipe_name(path: Path) -> str:
    """models/<recipe>/config.yaml -> <recipe>; any other file -> its stem (config.yaml anywhere -> its folder)."""
    path = Path(path).resolve()
    return (path.parent.name or "config") if path.name in ("config.yaml", "config.yml") else path.stem


def known_recipes() -> list[str]:
    root = recipes_dir()
    return sorted(p.parent.name for p in root.glob("*/config.yaml")) if root.is_dir() else []


def resolve_config(config: str) -> Path:
    """A path to a YAML file, or a recipe name under models/."""
    path = Path(config)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise ConfigError(f"config {config!r} does not exist", rule="--config is a YAML file or a recipe name",
                              fix=f"known recipes: {', '.join(known_recipes())}")
        return path
    known = known_recipes()
    if not known:
        root = recipes_dir()
        raise ConfigError(f"unknown recipe {config!r}: no recipes were found in {str(root)!r}",
                          rule="recipes are the folders holding a config.yaml in the wheel's fbrec/recipes, the "
                               "checkout's models/, or FBREC_RECIPES_DIR",
                          fix="point FBREC_RECIPES_DIR at a folder of recipes, pass --config PATH.yaml, or reinstall "
                              "fbrec from a wheel built with its recipes")
    if config not in known:
        raise UnknownNameError("recipe", config, known)
    return recipes_dir() / config / "config.yaml"


class FbrecCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_users", "model.init_args.num_users", apply_on="instantiate")
        parser.link_arguments("data.num_items", "model.init_args.num_items", apply_on="instantiate")
        parser.add_argument("--experiment", type=str, default="fbrec", help="MLflow experiment name")
        parser.add_argument("--run_name", type=str | None, default=None, help="MLflow run name")
        parser.add_argument("--patience", type=int | None, default=None,
                            help="stop after this many validations without improving the monitored metric")
        parser.add_lightning_class_args(BestCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.mode": "max", "checkpoint.save_top_k": 1, "checkpoint.save_last": True})


# third-party notices that say nothing actionable to an fbrec user (each was seen on every run)
_NOISE = ("LightningCLI's args parameter is intended", "isinstance(treespec, LeafSpec)", "IterableDataset` has `__len__`",
          "is smaller than the logging interval", "Please use DTensor instead", "HeuristicalStorageReservation",
          "`LightningModule.configure_optimizers` returned `None`", "It is recommended to use `self.log",
          "exists and is not empty")   # the last: a resumed run's own checkpoint folder
_NOISY_LOG_LINES = ("💡 Tip:", "Initializing distributed:", "distributed_backend=", "All distributed processes "
                    "registered", "-" * 20, "Creating initial MLflow database tables", "Updating database tables")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in _NOISY_LOG_LINES) and message.strip() != ""


def quiet_third_parties() -> None:
    """Keep the console to what fbrec and the user care about: errors, progress, validation lines, results
    (`fbrec --verbose` / FBREC_VERBOSE=1 leaves every third-party warning and log line as it is)."""
    if os.environ.get("FBREC_VERBOSE"):
        return
    for text in _NOISE:
        warnings.filterwarnings("ignore", message=f".*{re.escape(text)}")
    for name in ("torchrec.distributed.planner", "torch.fx._symbolic_trace", "torch.distributed.checkpoint"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in ("lightning.pytorch", "lightning.fabric"):
        # the console Lightning sets up when it is imported first (its own handler, no propagation); imported after a
        # library that configured the root logger (fbgemm_gpu does, on a resume), every line would print twice
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(logging.StreamHandler())
        logger.propagate = False
    for name in ("lightning.pytorch", "lightning.fabric", "mlflow.store.db.utils", "alembic"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())
        for handler in logger.handlers:
            if not any(isinstance(f, _DropNoise) for f in handler.filters):
                handler.addFilter(_DropNoise())


def build_cli(args: list[str]) -> FbrecCLI:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return _build_cli(translate_flat_args(args, Path(tmp)))


def translate_flat_args(args: list[str], tmp: Path) -> list[str]:
    """The flat data keys of earlier releases, in the --config YAML and on the command line, rewritten into the
    data specs (fbrec.data.specs), each with a one-line note naming the new key."""
    import yaml

    from fbrec.data.specs import EXPOSURE_FLAT, EXPOSURES, FLAT, SPECS, translate_flat
    from fbrec.data.specs import _deprecation_note as _note

    out = list(args)
    if "--config" in out and out.index("--config") + 1 < len(out):
        at = out.index("--config") + 1
        doc = yaml.safe_load(Path(out[at]).read_text()) or {}
        block = doc.get("data")
        if isinstance(block, dict) and any(k not in SPECS for k in block):
            doc["data"] = translate_flat(block, note=_note)
            path = tmp / recipe_name(Path(out[at])) / "config.yaml"   # the run keeps the recipe's name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            out[at] = str(path)
    classes = {name: f"{cls.__module__}.{cls.__name__}" for name, cls in EXPOSURES.items()}
    for i, arg in enumerate(out):
        if not arg.startswith("--data."):
            continue
        key, sep, value = arg[len("--data."):].partition("=")
        if key in FLAT:
            spec, field = FLAT[key]
            new = f"data.{spec}.{field}"
        elif key in EXPOSURE_FLAT:
            new = f"data.propensity.init_args.{EXPOSURE_FLAT[key]}"
        elif key == "propensity" and (value or (out[i + 1] if i + 1 < len(out) else "")) in classes:
            if sep:
                out[i] = f"--data.propensity={classes[value]}"
            else:
                out[i + 1] = classes[out[i + 1]]
            _note("--data.propensity NAME", "--data.propensity fbrec.data.specs.<Name>Exposure")
            continue
        else:
            continue
        out[i] = f"--{new}{sep}{value}"
        _note(f"--data.{key}", f"--{new}")
    return out


def _build_cli(args: list[str]) -> FbrecCLI:
    from fbrec.embeddings import register_strategies

    register_strategies()
    quiet_third_parties()
    defaults = {"accelerator": "cpu", "strategy": "torchrec", "use_distributed_sampler": False, "logger": False,
                "enable_model_summary": False, "num_sanity_val_steps": 0, "log_every_n_steps": 10}
    try:
        return FbrecCLI(RankingModule, FeedbackDataModule, subclass_mode_model=True, run=False, args=args,
                        trainer_defaults=defaults, save_config_callback=None, seed_everything_default=0,
                        parser_kwargs={"exit_on_error": False}, auto_configure_optimizers=False)
    except Exception as exc:   # jsonargparse.ArgumentError: unknown key, bad type, missing class
        from jsonargparse import ArgumentError

        cause = _fbrec_cause(exc)
        if cause is not None:   # a recipe class refused a value (temperature <= 0, ...): show its own message
            raise cause from None
        if not isinstance(exc, ArgumentError):
            raise
        typed = _type_error(exc, args) or _class_path_error(exc)
        if typed is not None:
            raise typed from None
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        first = next((line for line in lines if "is not accepted" in line or "unrecognized" in line
                      or "Expected a" in line and "NoneType" not in line), lines[0] if lines else str(exc))
        close = _closest_key(first)
        hint = f"did you mean {close!r}?" if close else \
            "compare the keys with `fbrec train --config X --print_config`"
        raise ConfigError(f"invalid training config: {first}", rule="keys and types follow the recipe classes' "
                          "__init__ signatures", fix=hint) from exc


def _class_path_error(exc: BaseException) -> ConfigError | None:
    """jsonargparse's "Problem with given class_path 'fbrec.models.MatrixFactorisationModule': module ... has no
    attribute" as one line naming the key, the class path, the reason and the closest class of that module."""
    import difflib
    import importlib
    import re

    text = str(exc)
    key = re.search(r'Parser key "([^"]+)"', text)
    kind = re.search(r"Import path (\S+) does not correspond to a subclass of (\w+)", text)
    if kind is not None:
        return ConfigError(f"{key.group(1) if key else 'a'}.class_path {kind.group(1)!r} is not a {kind.group(2)}",
                           rule=f"this key takes a subclass of {kind.group(2)}",
                           fix="see the recipes in models/ for the classes fbrec ships")
    found = re.search(r"Problem with given class_path '([^']+)':\s*(.+)", text)
    if found is None:
        return None
    path, reason = found.group(1), found.group(2).strip()
    if not any(why in reason for why in ("has no attribute", "No module named", "import", "subclass")):
        return None   # the class is fine, one of its arguments is not: the caller names that one
    module_name, _, name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        classes = [n for n in dir(module) if n[:1].isupper() and isinstance(getattr(module, n), type)]
    except ImportError:
        classes = []
    close = difflib.get_close_matches(name, classes, n=1)
    return ConfigError(f"{key.group(1) if key else 'a'}.class_path {path!r} cannot be used: {reason}",
                       rule="class_path names an importable class of the right kind (module.Class)",
                       fix=f"did you mean {module_name}.{close[0]}?" if close else
                       "check the spelling; recipes in models/ show the class paths fbrec ships")


def _type_error(exc: BaseException, args: list[str]) -> ConfigError | None:
    """jsonargparse's "Parser key "data.batch_size": Expected a <class 'int'>" as one line naming the key, the value
    given and the type expected."""
    import re

    text = "\n".join(str(e) for e in (exc, exc.__cause__, exc.__context__) if e is not None)
    keys = re.findall(r'Parser key "([^"]+)"', text)
    expected = [k for k in re.findall(r"Expected a <class '(\w+)'>", text) if k != "NoneType"]
    if not keys or not expected or "is not accepted" in text or "unrecognized" in text:
        return None   # an unknown key, not a bad value: the caller suggests the closest key
    key = keys[-1]   # the innermost: "embedding_dim" inside "model"; name it as the user wrote it
    options = [a.split("=", 1)[0].removeprefix("--") for a in args if a.startswith("--")]
    key = next((o for o in options if o == key or o.endswith(f".{key}")), key)
    value = next((a.split("=", 1)[1] for a in args if a.startswith(f"--{key}=")), None)
    if value is None and f"--{key}" in args and args.index(f"--{key}") + 1 < len(args):
        value = args[args.index(f"--{key}") + 1]
    got = re.search(r"Got value: (.*)", text)
    shown = value if value is not None else (got.group(1).strip() if got else "?")
    kinds = " or ".join(dict.fromkeys(expected))
    return ConfigError(f"{key}={shown!r} is not a valid {kinds}", rule=f"{key} takes a value of type {kinds}",
                       fix=f"pass e.g. --{key} " + {"int": "10", "float": "0.5", "bool": "true"}.get(kinds, "VALUE"))


def _fbrec_cause(exc: BaseException) -> FbrecError | None:
    """The FbrecError a class raised while jsonargparse instantiated it, found along the exception chain."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, FbrecError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _closest_key(message: str) -> str | None:
    import re

    from fbrec.data.datamodule import FeedbackDataModule as DM
    from fbrec.models import RECIPES

    words = re.findall(r"[A-Za-z_]+", message)
    from fbrec.data.specs import Evaluation, Features, Sampling, Source, spec_fields

    known = set(DM.__init__.__code__.co_varnames) | {v for m in RECIPES.values() for v in m.__init__.__code__.co_varnames}
    known |= {f for kind in (Source, Sampling, Evaluation, Features) for f in spec_fields(kind)}
    known -= {"self"}
    for w in words[::-1]:
        if w in known or len(w) <= 3:
            continue
        close = difflib.get_close_matches(w, sorted(known), n=1, cutoff=0.75)
        if close:
            return close[0]
    return None
