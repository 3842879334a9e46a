"""A selected model that scores every item the same (collapsed embeddings) is said so on the console and tagged;
a learned one is not. The collapse is planted: WMF by ALS with a regularisation that swamps the planted data."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from fbrec.api.training import run_training
from fbrec.evaluation.degenerate import flat_user_share


def test_flat_scores_are_counted_per_user():
    rng = np.random.default_rng(0)
    users, items = rng.normal(size=(40, 4)), rng.normal(size=(30, 4))
    assert flat_user_share(users, items) == 0.0
    users[:30] = 1e-9                                   # 30 of 40 users: every item within 1e-6 of each other
    assert flat_user_share(users, items) == pytest.approx(0.75)
    assert flat_user_share(users * 0, items) == 1.0 and flat_user_share(users[:0], items) == 0.0


def _config(tmp_path, planted_dir, regularization: float) -> str:
    path = tmp_path / f"wmf_{regularization:g}.yaml"
    path.write_text(f"""
seed_everything: 0
trainer: {{max_epochs: 3, devices: 1, enable_progress_bar: false}}
model:
  class_path: fbrec.models.AllPairsMFModule
  init_args: {{embedding_dim: 8, objective: wmf, alpha: 5.0, regularization: {regularization}, ks: [1, 5]}}
data: {{source: {{prepared_dir: {planted_dir}}}}}
""")
    return str(path)


@pytest.mark.parametrize(("regularization", "degenerate"), [(1e12, True), (0.5, False)])
def test_a_collapsed_model_is_flagged_and_a_learned_one_is_not(regularization, degenerate, planted_dir, tmp_path,
                                                               mlflow_store):
    said: list[str] = []
    run_id = run_training(_config(tmp_path, planted_dir, regularization), [], progress=said.append)
    tags = MlflowClient(mlflow_store).get_run(run_id).data.tags
    assert tags["fbrec.degenerate"] == str(degenerate).lower()
    warned = [line for line in said if "scores every item the same" in line]
    if degenerate:
        assert tags["fbrec.degenerate.flat_user_share"] == "1.000"
        assert len(warned) == 1 and "for 100% of users" in warned[0] and "lower the regularisation" in warned[0]
    else:
        assert warned == [] and "fbrec.degenerate.flat_user_share" not in tags


def test_a_large_catalogue_is_checked_on_a_sample_of_items():
    rng = np.random.default_rng(1)
    users, items = rng.normal(size=(50, 4)), rng.normal(size=(30_000, 4))
    assert flat_user_share(users, items, item_sample=500) == 0.0
    assert flat_user_share(users * 1e-12, items, item_sample=500) == 1.0
