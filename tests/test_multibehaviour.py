"""Multi-behaviour logs: the Tmall release's reader, the per-user validation carve, the papers' protocol (training buys
masked), and the two models that read a user's own level history (the history re-rank baseline and the cascade)."""

from __future__ import annotations

import math
import shutil

import lightning as L
import numpy as np
import polars as pl
import pytest
import torch

from fbrec.data.datamodule import FeedbackDataModule
from fbrec.data.datasets import RawDataset, load_raw
from fbrec.data.prepare import PrepareConfig, prepare_raw
from fbrec.data.split import carve_top_level
from fbrec.embeddings import register_strategies
from fbrec.errors import DataValidationError
from fbrec.evaluation import RankingEvaluator
from fbrec.models import CascadeModule, HistoryRerankModule
from fbrec.types import EVENTS, ITEM, LEVEL, USER

LEVELS = ["view", "cart", "buy"]
VIEW, CART, BUY = 1, 2, 4


def _log(rows) -> pl.DataFrame:
    """rows (user, item, events bitmask) -> a levelled log at each pair's highest level."""
    frame = pl.DataFrame(rows, schema={USER: pl.Int64, ITEM: pl.Int64, EVENTS: pl.UInt8}, orient="row")
    top = [max(k for k in range(3) if e & (1 << k)) for e in frame[EVENTS].to_list()]
    return frame.with_columns(pl.Series(LEVEL, [LEVELS[k] for k in top]).cast(pl.Enum(LEVELS))).select(
        USER, ITEM, LEVEL, EVENTS)


# --- the release ---------------------------------------------------------------------------------------------------
@pytest.mark.realdata
def test_tmall_reader_matches_the_release_counts(shared_data):
    raw = load_raw("tmall-mbcgcn", shared_data)
    events = raw.log[EVENTS]
    per_behaviour = {name: int(((events & (1 << k)) > 0).sum()) for k, name in enumerate(LEVELS)}
    assert per_behaviour == {"view": 858_505, "cart": 180_027, "buy": 92_180}   # SOURCE.md, train files
    assert raw.log.height == 938_679                                              # distinct training pairs
    assert dict(raw.log[LEVEL].cast(str).value_counts().iter_rows()) == {"view": 683_909, "cart": 162_590,
                                                                         "buy": 92_180}
    assert raw.test.height == 15_449 and raw.test[USER].n_unique() == 15_449
    assert raw.log[USER].n_unique() == 15_449 and len(raw.catalogue) == 11_953
    # the levels are not nested: buys with neither a view nor a cart in training exist and are kept
    assert ((events & (VIEW | CART)) == 0).sum() > 0


@pytest.mark.realdata
def test_tmall_reader_refuses_files_that_are_not_the_release(shared_data, tmp_path):
    src = shared_data / "tmall-mbcgcn"
    dst = tmp_path / "tmall-mbcgcn"
    shutil.copytree(src, dst)
    buy = dst / "buy" / "train.txt"
    buy.chmod(0o644)
    lines = buy.read_text().splitlines()
    buy.write_text("\n".join(lines[:-1]))   # one user's buys short
    with pytest.raises(DataValidationError, match=r"buy train pairs, the release has 92,180.*SOURCE.md"):
        load_raw("tmall-mbcgcn", tmp_path)
    buy.write_text("\n".join(["0\t1\tx", *lines[1:]]))
    with pytest.raises(DataValidationError, match="line 1 is not integer ids"):
        load_raw("tmall-mbcgcn", tmp_path)


@pytest.mark.realdata
def test_tmall_prepares_the_release_split_with_one_validation_buy_per_user(shared_data):
    from fbrec.data import prepare

    data = prepare("tmall-mbcgcn", root=shared_data)
    assert data.val.height == data.test.height == 15_449
    assert data.stats["train_pairs_per_behaviour"] == {"view": 858_505, "cart": 180_027, "buy": 76_731}
    # a carved buy the user had viewed or carted stays in training at that level: 936,100 = 938,679 - 2,579
    # carved buys with no other behaviour
    assert data.train.height == 936_100
    key = pl.col("user_index") * data.num_items + pl.col("item_index")
    kept = data.val.select(key)["user_index"].is_in(data.train.select(key)["user_index"].implode())
    assert kept.sum() == 15_449 - 2_579


# --- the validation carve ------------------------------------------------------------------------------------------
def test_carve_holds_out_one_top_level_pair_per_user_keeping_its_lower_behaviours():
    log = _log([(0, 1, VIEW | BUY), (1, 2, CART | BUY), (2, 3, BUY), (2, 4, VIEW), (3, 5, VIEW)])
    train, val = carve_top_level(log, seed=0)
    assert sorted(val.select(USER, ITEM).rows()) == [(0, 1), (1, 2), (2, 3)]   # user 3 has no buy: no validation
    assert set(val[LEVEL].cast(str)) == {"buy"}
    by_pair = {(u, i): (lvl, ev) for u, i, lvl, ev in train.select(USER, ITEM, pl.col(LEVEL).cast(str), EVENTS).rows()}
    assert by_pair == {(0, 1): ("view", VIEW), (1, 2): ("cart", CART), (2, 4): ("view", VIEW), (3, 5): ("view", VIEW)}


def test_carve_is_seeded_and_picks_among_the_users_buys():
    log = _log([(0, i, VIEW | BUY) for i in range(20)])
    picks = {carve_top_level(log, seed=s)[1][ITEM].item() for s in range(12)}
    assert len(picks) > 3 and carve_top_level(log, seed=5)[1].equals(carve_top_level(log, seed=5)[1])


def test_carve_without_events_treats_levels_as_nested():
    log = _log([(0, 1, BUY), (0, 2, VIEW)]).drop(EVENTS)
    train, val = carve_top_level(log, seed=0)
    assert val.select(USER, ITEM).rows() == [(0, 1)]
    assert sorted(train.select(ITEM, pl.col(LEVEL).cast(str)).rows()) == [(1, "cart"), (2, "view")]


# --- the papers' protocol ------------------------------------------------------------------------------------------
def _prepared(tmp_path, rows, test_rows):
    log = _log(rows)
    test = _log(test_rows)
    data = prepare_raw(RawDataset(log, test=test, catalogue=pl.Series(ITEM, np.arange(12))), "hand",
                       PrepareConfig(min_level="view", split="external_per_user"))
    return data.save(tmp_path / "prepared")


def test_the_published_protocol_masks_training_buys_only_and_hr_is_recall_with_one_held_out_buy(tmp_path):
    # user 0 bought items 0 and 1 (one of them carved to validation), viewed 2 and 3; the held-out buy is item 2
    path = _prepared(tmp_path, [(0, 0, BUY), (0, 1, BUY), (0, 2, VIEW), (0, 3, VIEW | CART)], [(0, 2, BUY)])
    papers = FeedbackDataModule(prepared_dir=str(path), evaluation={"mask_level": "buy"})
    test = papers.eval_set("test")
    assert sorted(test.exclude[0].indices.tolist()) == [0, 1]        # training + validation buys; 2, 3 stay
    unseen = papers.eval_views("test")["unseen"]
    assert sorted(unseen.exclude[0].indices.tolist()) == [0, 1, 2, 3]   # everything the user touched
    # scores: the masked buys first, then item 3, then the held-out item 2: rank 2 among the candidates
    scores = torch.tensor([[10.0, 9.0, 7.0, 8.0, *np.linspace(1, 0, 8)]])
    evaluator = RankingEvaluator(test, ks=(1, 10), auc=False)
    evaluator.update(torch.tensor([0]), scores)
    out = evaluator.summary()
    assert out["hit_rate_at_1"] == 0 and out["hit_rate_at_10"] == out["recall_at_10"] == 1
    assert out["ndcg_at_10"] == pytest.approx(1 / math.log2(3))      # rank 2: 1 / log2(2 + 1)
    seen_masked = RankingEvaluator(unseen, ks=(1, 10), auc=False)
    seen_masked.update(torch.tensor([0]), scores)
    assert not seen_masked.rows(), "the held-out buy was masked away: the view counts the user as a miss"


def test_mask_level_names_the_known_levels(tmp_path):
    from fbrec.errors import UnknownNameError

    path = _prepared(tmp_path, [(0, 0, BUY), (0, 1, BUY), (0, 2, VIEW)], [(0, 2, BUY)])
    with pytest.raises(UnknownNameError, match="'purchase'.*buy"):
        FeedbackDataModule(prepared_dir=str(path), evaluation={"mask_level": "purchase"}).eval_set("test")


# --- models that read the history ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def conversion_dir(tmp_path_factory):
    """Planted conversion: items 0-9 are bought after 80% of their views, items 10-59 after 5%. 300 users view 8
    random items (buying by those rates); 100 test users viewed one converter (not bought) and 7 other items, and
    their held-out buy is that converter. Nothing else tells the converter apart."""
    rng = np.random.default_rng(0)
    rate = np.where(np.arange(60) < 10, 0.8, 0.05)
    rows, test = [], []
    for user in range(300):
        for item in rng.choice(60, 8, replace=False):
            rows.append((user, int(item), VIEW | (BUY if rng.random() < rate[item] else 0)))
    for user in range(300, 400):
        converter = int(rng.integers(0, 10))
        rows.append((user, converter, VIEW))
        rows += [(user, int(i), VIEW) for i in rng.choice(np.arange(10, 60), 7, replace=False)]
        rows.append((user, 60 + user % 5, BUY))   # a buy of their own, which becomes their validation pair
        test.append((user, converter, BUY))
    log = _log(rows)
    data = prepare_raw(RawDataset(log, test=_log(test), catalogue=pl.Series(ITEM, np.arange(65))), "planted",
                       PrepareConfig(min_level="view", split="external_per_user"))
    return data.save(tmp_path_factory.mktemp("conversion") / "prepared")


def _fit_and_test(model, dm, tmp_path, epochs: int) -> dict:
    register_strategies()
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, strategy="torchrec", logger=False,
                        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
                        num_sanity_val_steps=0, default_root_dir=tmp_path, enable_checkpointing=False)
    trainer.fit(model, dm)
    return trainer.test(model, dm, verbose=False)[0]


def test_history_rerank_recovers_the_planted_conversion_rates(conversion_dir, tmp_path):
    dm = FeedbackDataModule(prepared_dir=str(conversion_dir), evaluation={"mask_level": "buy"}, batch_size=256)
    model = HistoryRerankModule(dm.num_users, dm.num_items, ks=(1, 5), auc=False)
    out = _fit_and_test(model, dm, tmp_path, 1)
    assert out["test/hit_rate_at_1"] >= 0.95
    conv = model.log_conversion.exp().numpy()
    assert conv[:10].min() > conv[10:60].max()   # every converter above every other item
    assert "test_unseen/hit_rate_at_1" in out and out["test_unseen/hit_rate_at_1"] < 0.05


def test_history_rerank_refuses_data_without_levels(planted_dir, tmp_path):
    from fbrec.errors import ConfigError

    dm = FeedbackDataModule(prepared_dir=str(planted_dir), batch_size=64)
    with pytest.raises(ConfigError, match="needs feedback levels"):
        HistoryRerankModule(dm.num_users, dm.num_items).history_and_target(dm)


def test_cascade_learns_the_planted_conversion_from_the_history_features(conversion_dir, tmp_path):
    torch.manual_seed(0)
    dm = FeedbackDataModule(prepared_dir=str(conversion_dir), evaluation={"mask_level": "buy"}, batch_size=128,
                            label="level", num_negatives=4)
    model = CascadeModule(dm.num_users, dm.num_items, embedding_dim=8, learning_rate=0.1, dense_learning_rate=0.05,
                          ks=(1, 5), auc=False)
    out = _fit_and_test(model, dm, tmp_path, 30)
    assert out["test/hit_rate_at_1"] >= 0.8
    buy = len(model.head["bias"]) - 1
    assert model.head["rate"][buy, 0].item() > 0, "a higher conversion after a view must raise P(buy)"


def test_a_history_run_says_it_keeps_no_embeddings_and_export_names_why(conversion_dir, tmp_path, mlflow_store):
    """Through `fbrec train` and `fbrec export`: a model that ranks through each user's history logs metrics and a
    report only, says so, and an export of it is refused naming the reason (not "train again")."""
    import fbrec.api
    from fbrec.api.training import run_training
    from fbrec.errors import ConfigError

    config = tmp_path / "history.yaml"
    config.write_text(f"""
seed_everything: 0
trainer: {{max_epochs: 1, devices: 1, enable_progress_bar: false}}
model: {{class_path: fbrec.models.HistoryRerankModule, init_args: {{ks: [1, 5], auc: false}}}}
data: {{source: {{prepared_dir: {conversion_dir}}}, evaluation: {{mask_level: buy}}}}
""")
    said: list[str] = []
    run_id = run_training(str(config), [], progress=said.append)
    assert any("no embeddings, model or bundle are logged" in line for line in said), said
    assert any("the test metrics and report below come from that checkpoint" in line for line in said), said
    assert not any("embeddings below" in line for line in said)
    with pytest.raises(ConfigError, match=r"\(HistoryRerankModule\) has no embeddings: it ranks through each user's "
                                          r"own history.*its test metrics and report are in the run"):
        fbrec.api.export(run_id, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()
