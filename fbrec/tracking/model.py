"""A run's bundle as an MLflow model: a pyfunc, so `mlflow.pyfunc.load_model` and `mlflow models serve` answer top-k
requests, the run shows under "Logged models", and `--register NAME` puts it in the model registry.

The pyfunc is a model from code (fbrec/tracking/bundle_model_code.py, nothing pickled); the fbrec source travels
with the model (code_paths), so loading needs numpy, polars, pyarrow, pandas and faiss, not torch.
"""

from __future__ import annotations

import warnings
from importlib import metadata
from pathlib import Path

import mlflow
import mlflow.pyfunc
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

from fbrec.tracking.store import no_artifact_progress, use_tracking_uri

MODEL_NAME = "fbrec_bundle"
_REQUIREMENTS = ("numpy", "polars", "pyarrow", "faiss-cpu", "pandas")


def _requirements() -> list[str]:
    out = []
    for name in _REQUIREMENTS:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(name)
    return out


def log_bundle_model(run_id: str, bundle_dir: str | Path, tracking_uri: str, *, user_id_type: str = "string",
                     item_id_type: str = "string", register: str | None = None) -> str:
    """Log `bundle_dir` as the run's MLflow model (and register it under `register`); returns its model URI."""
    use_tracking_uri(tracking_uri)
    signature = ModelSignature(
        inputs=Schema([ColSpec(user_id_type, "user"), ColSpec("long", "k", required=False)]),
        outputs=Schema([ColSpec(user_id_type, "user"), ColSpec("long", "rank"), ColSpec(item_id_type, "item"),
                        ColSpec("double", "score")]),
        params=ParamSchema([ParamSpec("k", "long", 10), ParamSpec("exclude_seen", "boolean", True)]))
    with no_artifact_progress(), mlflow.start_run(run_id=run_id), warnings.catch_warnings():
        # the signature is explicit, so MLflow's advice on input examples is noise here
        warnings.filterwarnings("ignore", message=".*(input example|input_example).*")
        info = _log(bundle_dir, signature, register)
    return info.model_uri


def _log(bundle_dir, signature, register):
    import fbrec

    code = Path(__file__).with_name("bundle_model_code.py")   # a model from code: nothing is pickled
    return mlflow.pyfunc.log_model(name=MODEL_NAME, python_model=str(code), artifacts={"bundle": str(bundle_dir)},
                                   code_paths=[str(Path(fbrec.__file__).parent)], pip_requirements=_requirements(),
                                   signature=signature, registered_model_name=register)
