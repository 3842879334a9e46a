"""The all-pairs squared loss through the item Gramian, and its alternating least-squares solver, against dense
references that enumerate every pair (fbrec.losses.allpairs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fbrec.losses.allpairs import ObservedPairs, all_pairs_loss, enumerated_loss, solve_rows


def _problem(seed: int = 0, U: int = 13, I: int = 11, D: int = 4, density: float = 0.3, w0: float = 0.7):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(U, I, generator=g) < density
    row, col = mask.nonzero(as_tuple=True)
    n = len(row)
    pairs = ObservedPairs(row, col, 1 + 4 * torch.rand(n, generator=g, dtype=torch.float64),
                          0.5 + torch.rand(n, generator=g, dtype=torch.float64), w0)
    users = torch.randn(U, D, generator=g, dtype=torch.float64)
    items = torch.randn(I, D, generator=g, dtype=torch.float64)
    return users, items, pairs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gramian_loss_equals_the_enumerated_all_pairs_loss_and_its_gradients(seed):
    users, items, pairs = _problem(seed)
    grads = []
    for loss_fn in (all_pairs_loss, enumerated_loss):
        u, i = users.clone().requires_grad_(), items.clone().requires_grad_()
        loss = loss_fn(u, i, pairs, reg=0.3)
        loss.backward()
        grads.append((loss.detach(), u.grad, i.grad))
    (fast, gu, gi), (dense, du, di) = grads
    assert fast.item() == pytest.approx(dense.item(), rel=1e-9, abs=1e-6)
    torch.testing.assert_close(gu, du, rtol=1e-9, atol=1e-6)
    torch.testing.assert_close(gi, di, rtol=1e-9, atol=1e-6)


def _dense_row_solve(items: np.ndarray, pairs: ObservedPairs, reg: float, U: int) -> np.ndarray:
    """Each user's ridge regression over every item, the confidence matrix written out (NumPy)."""
    c = np.full((U, len(items)), pairs.w0)
    t = np.zeros((U, len(items)))
    c[pairs.row.numpy(), pairs.col.numpy()] = pairs.confidence.numpy()
    t[pairs.row.numpy(), pairs.col.numpy()] = pairs.target.numpy()
    D = items.shape[1]
    return np.stack([np.linalg.solve(items.T @ (c[u][:, None] * items) + reg * np.eye(D), items.T @ (c[u] * t[u]))
                     for u in range(U)])


@pytest.mark.parametrize("max_bytes", [1 << 28, 8 * 4 * 4 * 3])   # one chunk; three users per chunk
def test_exact_row_solve_equals_a_dense_numpy_solve(max_bytes):
    users, items, pairs = _problem(3)
    got = solve_rows(users, items, pairs, reg=0.1, max_bytes=max_bytes)
    np.testing.assert_allclose(got.numpy(), _dense_row_solve(items.numpy(), pairs, 0.1, len(users)), rtol=1e-8,
                               atol=1e-10)


def test_conjugate_gradient_reaches_the_exact_solve_in_d_steps_and_improves_on_its_start():
    users, items, pairs = _problem(4, D=5)
    exact = solve_rows(users, items, pairs, reg=0.1)
    torch.testing.assert_close(solve_rows(users, items, pairs, reg=0.1, cg_steps=5), exact, rtol=1e-6, atol=1e-8)
    one = solve_rows(users, items, pairs, reg=0.1, cg_steps=1)
    for rows in (users, one):   # a CG step never increases the loss it minimises
        assert all_pairs_loss(one, items, pairs, 0.1) <= all_pairs_loss(rows, items, pairs, 0.1) + 1e-9


def test_alternating_sweeps_never_increase_the_loss_and_items_solve_through_the_transpose():
    users, items, pairs = _problem(5, U=20, I=15)
    losses = [all_pairs_loss(users, items, pairs, 0.05).item()]
    cols = pairs.transposed()
    for _ in range(6):
        users = solve_rows(users, items, pairs, reg=0.05)
        items = solve_rows(items, users, cols, reg=0.05)
        losses.append(all_pairs_loss(users, items, pairs, 0.05).item())
    assert all(b <= a + 1e-9 for a, b in zip(losses, losses[1:], strict=False))
    assert losses[-1] < 0.5 * losses[0]
    # the item step is the exact minimiser given the users: the gradient in the items is zero
    i = items.clone().requires_grad_()
    all_pairs_loss(users, i, pairs, 0.05).backward()
    assert i.grad.abs().max().item() < 1e-8


# --- the recipe: AllPairsMFModule on its TorchRec tables ----------------------------------------------------------

import lightning as L  # noqa: E402

from fbrec.data.datamodule import FeedbackDataModule  # noqa: E402
from fbrec.embeddings import register_strategies, whole_table  # noqa: E402
from fbrec.errors import ConfigError  # noqa: E402
from fbrec.losses.allpairs import observed_pairs  # noqa: E402
from fbrec.models import AllPairsMFModule  # noqa: E402


def _trainer(tmp_path, epochs: int, **kw) -> L.Trainer:
    register_strategies()
    return L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, strategy="torchrec", logger=False,
                     enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
                     num_sanity_val_steps=0, default_root_dir=tmp_path, enable_checkpointing=False, **kw)


@pytest.mark.parametrize(("objective", "options", "confidence", "target"), [
    ("wmf", {"alpha": 2.0, "unobserved_weight": 0.5}, [4.5, 2.5, 2.5], [1.0, 1.0, 1.0]),   # w0 + alpha r, r summed
    ("relmf", {}, [1.0, 1.0, 1.0], [1 / 0.5, 1 / 0.01, 1 / 0.25]),
    ("relmf", {"clip": 0.1}, [1.0, 1.0, 1.0], [1 / 0.5, 1 / 0.1, 1 / 0.25]),
    ("mf", {}, [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]),
])
def test_training_rows_become_one_observed_pair_each_with_its_objectives_confidence_and_target(
        objective, options, confidence, target):
    users, items = np.array([1, 0, 0, 1]), np.array([2, 1, 1, 0])     # (0, 1) logged twice
    theta = np.array([0.25, 0.5, 0.5, 0.01])
    pairs, row_to_pair = observed_pairs(users, items, np.ones(4), theta, objective=objective, num_items=3, **options)
    assert pairs.row.tolist() == [0, 1, 1] and pairs.col.tolist() == [1, 0, 2]   # sorted by user, then item
    assert row_to_pair.tolist() == [2, 0, 0, 1]
    np.testing.assert_allclose(pairs.confidence.numpy(), confidence, rtol=1e-6)
    np.testing.assert_allclose(pairs.target.numpy(), target, rtol=1e-6)


def test_the_gradient_solvers_batches_sum_over_an_epoch_to_the_exact_loss(planted_dir, tmp_path):
    dm = FeedbackDataModule(prepared_dir=str(planted_dir), batch_size=16, num_negatives=1)
    model = AllPairsMFModule(dm.num_users, dm.num_items, embedding_dim=8, alpha=3.0, regularization=0.2,
                             solver="gradient", init_std=0.3)
    _trainer(tmp_path, 1).strategy.connect(model)
    model.prepare_from(dm)
    model.configure_model()
    dm.setup()
    with torch.no_grad():
        total = sum(model.loss(batch).double() * len(batch.user) for batch in dm.train_dataloader())
        exact = all_pairs_loss(whole_table(model.model, "user").double(), whole_table(model.model, "item").double(),
                               model.pairs._replace(confidence=model.pairs.confidence.double(),
                                                    target=model.pairs.target.double()), 0.2)
    assert total.item() == pytest.approx(exact.item(), rel=1e-5)


def test_each_als_sweep_lowers_the_logged_exact_loss(planted_dir, tmp_path):
    torch.manual_seed(0)
    dm = FeedbackDataModule(prepared_dir=str(planted_dir), batch_size=64, num_negatives=1)
    model = AllPairsMFModule(dm.num_users, dm.num_items, embedding_dim=8, alpha=3.0, regularization=0.5, ks=(1, 5),
                             cg_steps=None)
    losses = []

    class Record(L.Callback):
        def on_train_epoch_end(self, trainer, module):
            losses.append(float(trainer.callback_metrics["train/loss"]))

    trainer = _trainer(tmp_path, 6, callbacks=[Record()], limit_val_batches=0)
    trainer.fit(model, dm)
    assert trainer.num_training_batches == 1, "ALS draws one batch per epoch, not the whole sampled stream"
    assert len(losses) == 6 and all(b <= a + 1e-6 for a, b in zip(losses, losses[1:], strict=False)), losses
    users, items = (whole_table(model.model, n) for n in ("user", "item"))
    assert losses[-1] == pytest.approx(all_pairs_loss(users, items, model.pairs, 0.5).item() / len(model.pairs.row),
                                       rel=1e-4)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"objective": "ips"}, "objective is one of wmf, relmf, mf"),
    ({"solver": "sgd"}, "solver is one of als, gradient"),
    ({"clip": 0.0}, "clip"),
    ({"cg_steps": 0}, "cg_steps"),
])
def test_bad_settings_name_the_rule(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        AllPairsMFModule(3, 4, **kwargs)


def test_relmf_without_a_propensity_says_how_to_declare_one(planted_dir, tmp_path):
    dm = FeedbackDataModule(prepared_dir=str(planted_dir), batch_size=64)
    model = AllPairsMFModule(dm.num_users, dm.num_items, objective="relmf")
    with pytest.raises(ConfigError, match="data.propensity"):
        model.prepare_from(dm)
