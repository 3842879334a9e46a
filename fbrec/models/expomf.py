"""ExpoMF (Liang, Charlin, McInerney, Blei, WWW 2016): exposure as a latent variable, fitted by EM.

    a_ui ~ Bernoulli(mu_i)                        was item i exposed to user u?
    y_ui | a_ui = 1 ~ N(theta_u . beta_i, 1/lam_y)  and  y_ui = 0 when a_ui = 0
E-step, for unclicked pairs: p_ui = mu_i N(0 | theta_u . beta_i, 1/lam_y) / (mu_i N(0 | ...) + 1 - mu_i); p = 1
for clicks. M-step: exposure-weighted ridge regressions for theta and beta, and
mu_i = (a1 + sum_u p_ui - 1) / (a1 + a2 + U - 2) (Beta(a1, a2) prior).

The EM updates are closed-form over the dense user x item matrix, so this recipe keeps its factors as plain
tensors rather than TorchRec tables (dense EM does not shard; it is meant for catalogues that fit in memory).
Each Trainer epoch is one EM iteration, so validation, checkpoint selection and MLflow logging work as for
every other recipe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from fbrec._checks import check_positive
from fbrec.errors import ConfigError
from fbrec.models.base import RankingModule
from fbrec.types import InteractionBatch


class ExpoMFModule(RankingModule):
    def __init__(self, num_users: int = 0, num_items: int = 0, embedding_dim: int = 32, lam_y: float = 1.0,
                 lam_theta: float = 1e-2, lam_beta: float = 1e-2, prior_a: float = 1.0, prior_b: float = 1.0,
                 init_mu: float = 0.01, init_std: float = 0.01, ks: Sequence[int] = (10, 20, 50), auc: bool = True):
        super().__init__(ks=ks, auc=auc)
        if num_users < 1 or num_items < 1:
            raise ConfigError(f"num_users={num_users}, num_items={num_items}", rule="the catalogue size is needed",
                              fix="train through `fbrec train`, which links it from the data")
        for name, value in (("embedding_dim", embedding_dim), ("lam_y", lam_y), ("init_mu", init_mu)):
            check_positive(name, value)
        self.save_hyperparameters()
        g = torch.Generator().manual_seed(torch.initial_seed() % 2**31)
        self.register_buffer("theta", init_std * torch.randn(num_users, embedding_dim, generator=g))
        self.register_buffer("beta", init_std * torch.randn(num_items, embedding_dim, generator=g))
        self.register_buffer("mu", torch.full((num_items,), init_mu))
        self.automatic_optimization = False
        self._clicks: torch.Tensor | None = None

    def configure_optimizers(self):
        return None

    def _click_matrix(self) -> torch.Tensor:
        if self._clicks is None:
            d = self.trainer.datamodule.data
            y = torch.zeros(self.hparams.num_users, self.hparams.num_items)
            y[torch.as_tensor(d.train["user_index"].to_numpy().copy()), torch.as_tensor(d.train["item_index"].to_numpy().copy())] = 1
            self._clicks = y
        return self._clicks

    @torch.no_grad()
    def posterior_exposure(self, y: torch.Tensor) -> torch.Tensor:
        """E-step: P(a_ui = 1 | y_ui, theta, beta, mu), (U, I); 1 for clicked pairs."""
        lam_y = self.hparams.lam_y
        pred = self.theta @ self.beta.T                                          # (U, D) x (D, I) -> (U, I)
        log_n0 = 0.5 * math.log(lam_y / (2 * math.pi)) - 0.5 * lam_y * pred**2
        log_num = torch.log(self.mu)[None, :] + log_n0
        p = torch.sigmoid(log_num - torch.log1p(-self.mu)[None, :])             # num / (num + 1 - mu)
        return torch.where(y > 0, torch.ones_like(p), p)

    @torch.no_grad()
    def em_step(self, y: torch.Tensor) -> None:
        h = self.hparams
        p = self.posterior_exposure(y)
        # M-step: exposure-weighted ridge regressions, batched over users / items
        D = self.theta.shape[1]
        eye = torch.eye(D)
        a_u = h.lam_y * torch.einsum("ui,id,ie->ude", p, self.beta, self.beta) + h.lam_theta * eye
        b_u = h.lam_y * (p * y) @ self.beta
        self.theta = torch.linalg.solve(a_u, b_u)
        a_i = h.lam_y * torch.einsum("ui,ud,ue->ide", p, self.theta, self.theta) + h.lam_beta * eye
        b_i = h.lam_y * (p * y).T @ self.theta
        self.beta = torch.linalg.solve(a_i, b_i)
        U = y.shape[0]
        self.mu = ((h.prior_a + p.sum(0) - 1) / (h.prior_a + h.prior_b + U - 2)).clamp(1e-6, 1 - 1e-6)

    def on_train_epoch_start(self) -> None:
        self.em_step(self._click_matrix())

    def training_step(self, batch: InteractionBatch, batch_idx: int) -> None:
        return None   # the EM step ran at the start of the epoch; batches are not used

    def user_embeddings(self, users: torch.Tensor) -> torch.Tensor:
        return self.theta[users]

    def item_embeddings(self, items: torch.Tensor) -> torch.Tensor:
        return self.beta[items]
