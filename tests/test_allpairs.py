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
