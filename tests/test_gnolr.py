"""GNOLR recipe: one unified inner-product space that ranks exactly like each level's cumulative logit."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from conftest import LEVELS  # noqa: F401  (leveled_dir, the planted ordinal data, lives in conftest)

from fbrec.data.datamodule import FeedbackDataModule
from fbrec.embeddings import register_strategies
from fbrec.errors import UnknownNameError
from fbrec.models import GNOLRModule
from fbrec.retrieval import build_index, search


def _fit(leveled_dir, tmp_path, variant="gnolr", epochs=30):
    register_strategies()
    torch.manual_seed(0)
    dm = FeedbackDataModule(prepared_dir=str(leveled_dir), label="level", batch_size=64, num_negatives=4)
    model = GNOLRModule(dm.num_users, dm.num_items, embedding_dim=8, variant=variant, learning_rate=0.2,
                        ks=(1, 5))
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, strategy="torchrec", logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                        use_distributed_sampler=False, num_sanity_val_steps=0, check_val_every_n_epoch=epochs,
                        default_root_dir=tmp_path)
    trainer.fit(model, dm)
    return model, dm, trainer


def test_gnolr_learns_planted_levels_and_reports_each_level(leveled_dir, tmp_path):
    model, dm, trainer = _fit(leveled_dir, tmp_path)
    assert dm.level_names() == ["click", "buy"]
    for stage in ("val", "test"):   # level 2 keeps only the pairs that reached "buy"
        assert 0 < dm.eval_set(stage, level=2).truth.nnz < dm.eval_set(stage).truth.nnz
    metrics = trainer.callback_metrics
    assert metrics["val/hit_rate_at_5"] >= 0.8
    assert "val/level_buy/recall_at_5" in metrics and "val/level_buy/auc" in metrics


def test_unified_index_equals_exact_per_level_ranking(leveled_dir, tmp_path):
    model, dm, _ = _fit(leveled_dir, tmp_path, epochs=3)
    users = torch.arange(dm.num_users)
    items = model._all(model.item_embeddings, dm.num_items).detach()
    raw_u = super(GNOLRModule, model).user_embeddings(users).detach()
    raw_i = super(GNOLRModule, model).item_embeddings(torch.arange(dm.num_items)).detach()
    cos = torch.einsum("ukd,ikd->uik", model._blocks(raw_u), model._blocks(raw_i))     # (U, I, K)
    z = (cos * model.scales).cumsum(-1)                                                    # cumulative logits
    index = build_index(items.numpy(), "Flat")
    for level in (1, 2):
        query = model.user_embeddings_at_level(users, level).detach()
        scores = query @ items.T
        torch.testing.assert_close(scores, z[..., level - 1], rtol=1e-4, atol=1e-5)
        _, top = search(index, query.numpy(), 5)
        exact = z[..., level - 1].topk(5, dim=1).indices.numpy()
        assert (top == exact).mean() > 0.99


def test_unknown_variant_suggests_the_closest():
    with pytest.raises(UnknownNameError, match="did you mean 'nolr'"):
        GNOLRModule(10, 10, variant="nolrr")


@pytest.mark.parametrize("name", ["NSBModule", "ESMMModule"])
def test_per_level_baselines_train_one_head_per_level(leveled_dir, tmp_path, name):
    import fbrec.models

    register_strategies()
    torch.manual_seed(0)
    dm = FeedbackDataModule(prepared_dir=str(leveled_dir), label="level", batch_size=64, num_negatives=4)
    model = getattr(fbrec.models, name)(dm.num_users, dm.num_items, embedding_dim=8, learning_rate=0.2, ks=(1, 5))
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, strategy="torchrec", logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                        use_distributed_sampler=False, num_sanity_val_steps=0, check_val_every_n_epoch=30,
                        default_root_dir=tmp_path)
    heads_before = model.num_levels
    trainer.fit(model, dm)
    assert heads_before == 0 and model.num_levels == 2
    assert trainer.callback_metrics["val/hit_rate_at_5"] >= 0.8
    assert "val/level_buy/recall_at_5" in trainer.callback_metrics
    # the exported vectors rank by inner product exactly as the model ranks its base level
    users, items = model.export_embeddings(dm.num_users, dm.num_items)
    with torch.no_grad():
        scores = model.score_users(torch.arange(dm.num_users), torch.as_tensor(items))
    exported = torch.as_tensor(users) @ torch.as_tensor(items).T
    assert (scores.topk(5).indices == exported.topk(5).indices).float().mean() > 0.99


def test_learnable_thresholds_move_and_stay_ordered(leveled_dir, tmp_path):
    model, _, trainer = _fit(leveled_dir, tmp_path, variant="learnable_thresholds", epochs=10)
    learned = model.threshold_logits.exp().cumsum(0).detach()
    assert not torch.allclose(learned, model.thresholds.clamp_min(1e-3), atol=1e-4), "thresholds were trained"
    assert (learned[1:] > learned[:-1]).all()
    assert trainer.callback_metrics["val/hit_rate_at_5"] >= 0.5


def test_pooled_level_auc_scores_every_logged_row_against_all_others(leveled_dir, tmp_path):
    # the papers' protocol: one AUC per level over all logged test rows, each row scored with its level query
    from sklearn.metrics import roc_auc_score

    model, dm, trainer = _fit(leveled_dir, tmp_path)
    trainer.test(model, dm, verbose=False)
    logged = dm.logged_levels("test").tocoo()
    with torch.no_grad():
        query = model.user_embeddings_at_level(torch.as_tensor(logged.row, dtype=torch.long), 2)
        items = model.item_embeddings(torch.as_tensor(logged.col, dtype=torch.long))
    expected = roc_auc_score(logged.data >= 2, (query * items).sum(-1).numpy())
    got = trainer.callback_metrics["test/level_buy/pooled_auc"].item()
    assert got == pytest.approx(expected, abs=1e-6) and got > 0.6
    assert trainer.callback_metrics["test/pooled_auc_product"].item() == pytest.approx(got, abs=1e-6)


def test_pooled_auc_counts_ties_as_half_like_sklearn():
    from sklearn.metrics import roc_auc_score

    from fbrec.evaluation.pooled import pooled_auc

    rng = np.random.default_rng(0)
    scores, labels = rng.integers(0, 4, 300).astype(float), rng.random(300) < 0.3   # many ties
    assert pooled_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert np.isnan(pooled_auc(scores, np.ones(300, bool)))
