"""The two-tower's pieces as specifications: logQ-corrected in-batch softmax, the streaming frequency estimator,
SSL losses, complementary RFM/CFM masks, KJT bag helpers, and the recipe's configuration errors."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from conftest import PLANTED_ITEM_FEATURES

from fbrec.data.datamodule import FeedbackDataModule
from fbrec.embeddings import drop_values, gather_bags, register_strategies
from fbrec.errors import ConfigError, UnknownNameError
from fbrec.losses import StreamingFrequencyEstimator, in_batch_softmax, info_nce, spread_out
from fbrec.models import TwoTowerModule
from fbrec.nn import correlated_feature_mask, mi_order, random_feature_mask


def _logits(B=6, C=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, C, generator=g)


def test_uniform_sampling_gives_no_logq_correction():
    logits, ids = _logits(), torch.arange(6)
    plain = in_batch_softmax(logits, None, ids, ids)
    uniform = in_batch_softmax(logits, torch.full((6,), -3.7), ids, ids)
    assert uniform == pytest.approx(plain.item(), abs=1e-6)


def test_logq_correction_subtracts_log_q_from_every_column_positive_included():
    logits, ids = _logits(), torch.arange(6)
    log_q = torch.log(torch.tensor([0.5, 0.1, 0.1, 0.1, 0.1, 0.1]))
    expected = F.cross_entropy(logits - log_q[None, :], torch.arange(6))
    assert in_batch_softmax(logits, log_q, ids, ids) == pytest.approx(expected.item(), abs=1e-6)
    # popular columns are penalised less as negatives: the corrected loss differs from the plain one
    assert in_batch_softmax(logits, log_q, ids, ids) != pytest.approx(in_batch_softmax(logits, None, ids, ids).item())


def test_accidental_hits_leave_the_softmax():
    logits = _logits(B=3, C=4)
    positives = torch.tensor([7, 8, 7])                 # rows 0 and 2 share their positive item
    candidates = torch.tensor([7, 8, 7, 9])             # three in-batch columns and one extra negative
    loss = in_batch_softmax(logits, None, positives, candidates)
    keep0, keep2 = torch.tensor([0, 1, 3]), torch.tensor([1, 2, 3])
    expected = torch.stack([F.cross_entropy(logits[0, keep0][None], torch.tensor([0])),
                            F.cross_entropy(logits[1][None], torch.tensor([1])),
                            F.cross_entropy(logits[2, keep2][None], torch.tensor([1]))]).mean()
    assert loss == pytest.approx(expected.item(), abs=1e-6)
    assert in_batch_softmax(logits, None, positives, candidates, mask_accidental_hits=False) != pytest.approx(
        expected.item())


def test_streaming_estimator_learns_how_often_an_item_occurs():
    est = StreamingFrequencyEstimator(num_buckets=1024, alpha=0.05)
    for step in range(1, 2001):
        items = [1]                                     # in every batch
        if step % 4 == 0:
            items.append(2)                             # every 4th batch
        if step % 10 == 0:
            items.append(3)
        est.update(torch.tensor(items))
    p = est.probability(torch.tensor([1, 2, 3, 99]))
    assert p[:3].tolist() == pytest.approx([1.0, 0.25, 0.1], rel=0.05)
    assert p[3] == 1.0, "unseen items get the largest probability (no correction boost)"


def test_info_nce_rewards_agreeing_views_and_spread_out_is_zero_for_orthonormal_vectors():
    eye = torch.eye(4)
    agree = info_nce(eye, eye, temperature=0.1)
    disagree = info_nce(eye, eye.roll(1, 0), temperature=0.1)
    assert agree < 0.01 < disagree
    assert spread_out(eye) == pytest.approx(0.0, abs=1e-7)
    same = F.normalize(torch.ones(4, 4), dim=-1)
    assert spread_out(same) > 0.5                      # collapsed embeddings are penalised


def test_random_masks_have_the_asked_size_and_their_complement_covers_the_rest():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        view_one = random_feature_mask(5, 2, generator=g)
        view_two = ~view_one
        assert view_one.sum() == 2 and view_two.sum() == 3
        assert not (view_one & view_two).any() and (view_one | view_two).all()


def test_correlated_masks_hide_a_seed_with_its_most_informative_features():
    # features 0-1 inform each other, 2-3 inform each other; 4 is alone
    mi = torch.tensor([[1.0, 0.9, 0.1, 0.0, 0.0], [0.9, 1.0, 0.0, 0.1, 0.0], [0.1, 0.0, 1.0, 0.8, 0.0],
                       [0.0, 0.1, 0.8, 1.0, 0.05], [0.0, 0.0, 0.0, 0.05, 1.0]])
    order = mi_order(mi)
    assert order[0, 0] == 1 and order[2, 0] == 3 and order.shape == (5, 4)
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(50):
        mask = correlated_feature_mask(order, 2, generator=g)
        seen.add(tuple(torch.nonzero(mask).flatten().tolist()))
    assert seen == {(0, 1), (2, 3), (3, 4)}, "each seed masks itself and its top-MI partner"


def test_gather_and_drop_bags():
    offsets, values = torch.tensor([0, 2, 2, 5]), torch.tensor([10, 11, 20, 21, 22])
    lengths, gathered = gather_bags(offsets, values, torch.tensor([2, 1, 0, 2]))
    assert lengths.tolist() == [3, 0, 2, 3] and gathered.tolist() == [20, 21, 22, 10, 11, 20, 21, 22]
    kept_lengths, kept = drop_values(lengths, gathered, 0.5, torch.Generator().manual_seed(1))
    assert int(kept_lengths.sum()) == len(kept) < len(gathered)
    assert drop_values(lengths, gathered, 0.0)[1] is gathered


@pytest.mark.parametrize(("kwargs", "error", "pattern"), [
    ({"temperature": 0.0}, ConfigError, r"temperature=0.0"),
    ({"temperature": -1.0}, ConfigError, r"temperature=-1.0"),
    ({"ssl_temperature": 0.0}, ConfigError, r"ssl_temperature=0.0"),
    ({"ssl": "cfn"}, UnknownNameError, r"'cfn'.*did you mean 'cfm'"),
    ({"logq": "count"}, UnknownNameError, r"did you mean 'counts'"),
    ({"loss": "softmx"}, UnknownNameError, r"did you mean 'softmax'"),
    ({"value_dropout": 1.0}, ConfigError, r"value_dropout=1.0.*\[0, 1\)"),
])
def test_bad_two_tower_settings_are_refused(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        TwoTowerModule(10, 10, **kwargs)


def _dm(planted_dir, **kw) -> FeedbackDataModule:
    return FeedbackDataModule(prepared_dir=str(planted_dir), batch_size=64, num_negatives=4,
                              item_features=PLANTED_ITEM_FEATURES, **kw)


@pytest.mark.parametrize(("mask_features", "item_features", "pattern"), [
    (3, PLANTED_ITEM_FEATURES, r"mask_features=3 with 3 item features.*between 1 and 2"),
    (0, PLANTED_ITEM_FEATURES, r"mask_features=0"),
    (None, [], r"over 1 feature.*at least 2 item features"),
])
def test_ssl_cannot_mask_more_features_than_exist(mask_features, item_features, pattern, planted_dir):
    dm = FeedbackDataModule(prepared_dir=str(planted_dir), item_features=item_features)
    model = TwoTowerModule(dm.num_users, dm.num_items, ssl="cfm", mask_features=mask_features)
    with pytest.raises(ConfigError, match=pattern):
        model.prepare_from(dm)


def _one_step(model, dm, tmp_path):
    register_strategies()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0, accelerator="cpu", devices=1,
                        strategy="torchrec", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=False, num_sanity_val_steps=0, enable_checkpointing=False,
                        default_root_dir=tmp_path)
    trainer.fit(model, dm)


@pytest.mark.parametrize("ssl", ["rfm", "cfm"])
def test_ssl_views_mask_complementary_features_that_cover_all_features(ssl, planted_dir, tmp_path):
    torch.manual_seed(0)
    dm = _dm(planted_dir)
    model = TwoTowerModule(dm.num_users, dm.num_items, embedding_dim=8, output_dim=8, ssl=ssl, ssl_batch_size=16)
    calls = []
    encode = model.encode

    def spy(users, items, item_mask=None, dropout_from=None):
        calls.append((len(items), item_mask.clone() if item_mask is not None else None, dropout_from))
        return encode(users, items, item_mask, dropout_from)

    model.encode = spy
    _one_step(model, dm, tmp_path)
    n_items, mask, dropout_from = calls[0]
    main = n_items - 2 * 16
    assert dropout_from == main
    assert not mask[:main].any(), "the main task sees every feature"
    one, two = mask[main:main + 16], mask[main + 16:]
    assert (one == one[0]).all() and (two == two[0]).all(), "one mask per batch"
    assert not (one[0] & two[0]).any() and (one[0] | two[0]).all(), "complementary and covering all features"
    assert one[0].sum() == 3 // 2


def test_two_tower_trains_with_an_unbiased_loss_and_propensities(planted_dir, tmp_path):
    torch.manual_seed(0)
    dm = _dm(planted_dir, propensity="popularity")
    model = TwoTowerModule(dm.num_users, dm.num_items, embedding_dim=8, output_dim=8, loss="relmf",
                           loss_options={"clip": 0.1}, temperature=0.2)
    seen = {}
    original = model._pair_loss

    def spy(positive, negative, batch):
        seen["propensity"] = batch.propensity.clone()
        return original(positive, negative, batch)

    model._pair_loss = spy
    _one_step(model, dm, tmp_path)
    assert seen["propensity"].lt(1).any(), "Rel-MF received the estimated propensities"


@pytest.mark.parametrize("kwargs", [
    {"logq": "streaming", "mixed_negatives": True},
    {"logq": None, "feature_dropout": 0.3, "spread_out_weight": 0.5},
    {"ssl": "rfm", "ssl_sampling": "batch", "value_dropout": 0.5},
    {"loss": "bpr"},
], ids=["streaming_logq_mixed", "feature_dropout_spread_out", "rfm_batch_sampling", "bpr"])
def test_every_two_tower_variant_takes_a_finite_step_that_moves_the_towers(kwargs, planted_dir, tmp_path):
    torch.manual_seed(0)
    dm = _dm(planted_dir)
    model = TwoTowerModule(dm.num_users, dm.num_items, embedding_dim=8, output_dim=8, ssl_batch_size=16, **kwargs)
    model.prepare_from(dm)
    before = None
    register_strategies()

    class _Snapshot(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            nonlocal before
            before = {k: v.detach().clone() for k, v in module.model.named_parameters() if "tower" in k}

    trainer = L.Trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=0, accelerator="cpu", devices=1,
                        strategy="torchrec", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=False, num_sanity_val_steps=0, enable_checkpointing=False,
                        default_root_dir=tmp_path, callbacks=[_Snapshot()])
    trainer.fit(model, dm)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    after = dict(model.model.named_parameters())
    assert before and all(not torch.equal(before[k], after[k].detach()) for k in before)
    if kwargs.get("logq") == "streaming":
        assert model.frequency.step == 1 and model.frequency.gap.max() == 1.0


def test_sorted_accidental_hits_equal_the_dense_comparison():
    from fbrec.losses.softmax import accidental_hits

    g = torch.Generator().manual_seed(0)
    positives = torch.randint(0, 30, (64,), generator=g)
    candidates = torch.cat([positives, torch.randint(0, 30, (40,), generator=g)])
    rows, cols = accidental_hits(positives, candidates)
    dense = candidates[None, :] == positives[:, None]
    dense[:, :64].fill_diagonal_(False)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == sorted(map(tuple, torch.nonzero(dense).tolist()))


def test_plain_mi_pairs_every_feature_with_the_id_and_normalised_mi_groups_side_features():
    import numpy as np
    import polars as pl

    from fbrec.data.features import FeatureSpec, build_features, id_only

    # b is a with two of sixteen values flipped (so MI(a, b) < H(a) = MI(a, id)); c is independent of both
    n = 16
    table = pl.DataFrame({"item_index": np.arange(n), "a": [f"x{i % 2}" for i in range(n)],
                          "b": [f"y{(i % 2) ^ (i in (3, 8))}" for i in range(n)], "c": [f"z{(i // 2) % 4}" for i in range(n)]})
    items = build_features(table, [FeatureSpec("a"), FeatureSpec("b"), FeatureSpec("c")], n, index_column="item_index")
    orders = {}
    for measure in ("mutual_information", "normalized"):
        model = TwoTowerModule(4, n, ssl="cfm", cfm_mi=measure)
        model.set_features(id_only(4), items, np.ones(n))
        orders[measure] = model.item_mi_order
    a, b = items.names.index("a"), items.names.index("b")
    assert orders["mutual_information"][a, 0] == 0 and orders["mutual_information"][b, 0] == 0
    assert orders["normalized"][a, 0] == b and orders["normalized"][b, 0] == a
