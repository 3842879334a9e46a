"""MLflow conventions (the only mlflow importer): store location, run names and tags, artifacts, plots."""

from fbrec.tracking.artifacts import (
    RunArtifacts,
    log_bundle,
    log_dataset_inputs,
    log_model_artifacts,
    log_table,
    read_run_artifacts,
)
from fbrec.tracking.lifecycle import (
    checkpoint_dir,
    download_config,
    end_run,
    mark_dead_runs,
    mark_dead_runs_in_store,
    owner_tags,
    reopen_run,
    store_root,
)
from fbrec.tracking.plots import log_calibration, log_learning_curves, log_report, log_sessions
from fbrec.tracking.store import (
    default_tracking_uri,
    find_run,
    flat_params,
    log_run,
    make_logger,
    resolve_run_id,
    set_run_tags,
    tracking_setup,
)

__all__ = ["checkpoint_dir", "download_config", "end_run", "mark_dead_runs", "mark_dead_runs_in_store", "owner_tags",
           "reopen_run", "store_root", "RunArtifacts", "default_tracking_uri", "find_run", "resolve_run_id", "flat_params", "log_calibration", "log_bundle", "log_dataset_inputs", "log_learning_curves", "log_model_artifacts", "log_report", "log_run", "log_sessions",
           "log_table", "make_logger", "read_run_artifacts", "set_run_tags", "tracking_setup"]
