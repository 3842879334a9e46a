"""Denoising: the noise-injection protocol, candidate pools, and PLD / T-CE / R-CE on per-example losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fbrec.data.transforms import inject_noise
from fbrec.errors import ConfigError, UnknownNameError
from fbrec.models.denoise import Denoise, split_terms


def test_noise_injection_adds_floor_rate_times_each_users_items_never_interacted():
    rng = np.random.default_rng(0)
    user = np.repeat(np.arange(50), rng.integers(1, 30, 50))
    item = np.concatenate([rng.choice(200, (user == u).sum(), replace=False) for u in range(50)])
    nu, ni = inject_noise(user, item, 50, 200, 0.3, seed=1)
    np.testing.assert_array_equal(np.bincount(nu, minlength=50), np.floor(0.3 * np.bincount(user, minlength=50)))
    keys = nu * 200 + ni
    assert len(np.unique(keys)) == len(keys) and not np.isin(keys, user * 200 + item).any()
    again = inject_noise(user, item, 50, 200, 0.3, seed=1)
    np.testing.assert_array_equal(again[1], ni)                       # the data seed fixes the noise
    with pytest.raises(ConfigError, match=r"noise_rate=1.0.*lies in \[0, 1\)"):
        inject_noise(user, item, 50, 200, 1.0, seed=1)


def test_datamodule_trains_on_noise_masks_it_in_evaluation_and_pools_users_own_items(planted_dir):
    from fbrec.data.datamodule import FeedbackDataModule

    clean = FeedbackDataModule(prepared_dir=str(planted_dir), batch_size=32, num_negatives=2)
    noisy = FeedbackDataModule(prepared_dir=str(planted_dir), batch_size=32, num_negatives=2, noise_rate=0.4,
                               positive_pool=3)
    clean.setup(), noisy.setup()
    nu, ni = noisy.noise_pairs()
    assert len(nu) > 0 and len(noisy._train.user) == len(clean._train.user) + len(nu)
    assert (noisy.eval_set("val").exclude[nu, ni] > 0).all()        # masked as seen, like any training pair
    assert noisy.eval_set("val").truth.nnz == clean.eval_set("val").truth.nnz
    batch = next(iter(noisy.train_dataloader()))
    own = {(u, i) for u, i in zip(noisy._train.user.tolist(), noisy._train.item.tolist(), strict=True)}
    assert batch.pool.shape == (len(batch.user), 3)
    assert all((u, i) in own for u, row in zip(batch.user.tolist(), batch.pool.tolist(), strict=True) for i in row)


def _embed_with_scores(scores):
    """embed(user, items) whose inner products are scores[items] (one user, 1-d vectors)."""
    def embed(user, items):
        return torch.ones(*items.shape, 1), torch.as_tensor(scores, dtype=torch.float32)[items][..., None]
    return embed


def test_pld_draws_low_loss_candidates_and_leaves_warmup_epochs_alone():
    # item 0..3 score 3 (clean), item 4 scores -3 (a noisy positive); the negative (item 5) scores 0
    embed = _embed_with_scores([3, 3, 3, 3, -3, 0])
    d = Denoise("pld", temperature=0.1, warmup=2)
    pool = torch.tensor([[0, 1, 2, 4]]).repeat(2000, 1)
    user, negative, positive = torch.zeros(2000, dtype=torch.long), torch.full((2000,), 5), torch.full((2000,), 4)
    torch.manual_seed(0)
    picked = d.pick_positive(embed, user, pool, negative, positive, epoch=2)
    assert (picked == 4).float().mean() < 0.01 and set(picked.tolist()) <= {0, 1, 2, 4}
    assert torch.equal(d.pick_positive(embed, user, pool, negative, positive, epoch=1), positive)
    with pytest.raises(ConfigError, match="set data.positive_pool"):
        d.pick_positive(embed, user, None, negative, positive, epoch=2)


def test_tce_drops_the_largest_positive_losses_and_rce_reweights_them():
    pos_term, rest, logit = torch.tensor([1.0, 2.0, 3.0, 10.0]), torch.zeros(4), torch.zeros(4)
    tce = Denoise("tce", max_drop=0.25, ramp_epochs=1)
    assert tce.reduce(pos_term, rest, logit, epoch=0).item() == pytest.approx((1 + 2 + 3) / 4)
    ramp = Denoise("tce", max_drop=0.5, ramp_epochs=4)                 # epoch 0: 0.125 of 4 rounds to 0 dropped
    assert ramp.reduce(pos_term, rest, logit, epoch=0).item() == pytest.approx(16 / 4)
    rce = Denoise("rce", beta=1.0)
    logit = torch.tensor([0.0, 0.0, 0.0, -100.0])                       # sigmoid 0.5 x3, ~0 for the last
    assert rce.reduce(pos_term, rest, logit, epoch=0).item() == pytest.approx(0.5 * 6 / 4, rel=1e-4)


def test_split_terms_recover_bpr_and_bce():
    pos, neg = torch.tensor([1.0]), torch.tensor([[0.0, 2.0]])
    sp_ = torch.nn.functional.softplus
    p, r = split_terms("bpr", pos, neg)
    assert p.item() == pytest.approx(((sp_(torch.tensor(-1.0)) + sp_(torch.tensor(1.0))) / 2).item())
    p, r = split_terms("bce", pos, neg)
    assert p.item() == pytest.approx(sp_(torch.tensor(-1.0)).item())
    assert r.item() == pytest.approx((sp_(torch.tensor(0.0)) + sp_(torch.tensor(2.0))).item())


@pytest.mark.parametrize("config,loss,error,pattern", [
    ({"method": "pldd"}, "bpr", UnknownNameError, "did you mean 'pld'"),
    ({"method": "pld"}, "relmf", ConfigError, r"denoising applies to loss: bpr or bce"),
    ({"method": "pld", "temp": 0.1}, "bpr", ConfigError, r"keys: method, temperature"),
    ({"method": "tce", "max_drop": 1.0}, "bce", ConfigError, r"max_drop=1.0 is out of range"),
])
def test_bad_denoise_settings_name_the_rule(config, loss, error, pattern):
    with pytest.raises(error, match=pattern):
        Denoise.from_config(config, loss)
