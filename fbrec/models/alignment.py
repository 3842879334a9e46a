"""RLMRec (Ren et al., WWW 2024) as a regulariser of any EmbeddingModule: align collaborative embeddings with the
text embeddings of LLM (or template) profiles read from a profile folder.

mode "con" (RLMRec-Con): InfoNCE between each batch user's / item's CF embedding e_x and its projected profile
    sigma_up(s_x); candidates are the other batch rows' projected profiles plus `negatives` sampled users / items
    (the paper's denominator runs over every user, sampled here as its pitfalls advise on CPU).
mode "gen" (RLMRec-Gen): a share `mask_ratio` of the input embeddings is replaced by a learned mask token before
    propagation (in models that propagate, LightGCN), and the masked nodes' outputs are mapped back to text space,
    sigma_down(e_x), and must pick their own s_x by InfoNCE among the set. Models without propagation (MF, the
    two-tower) have no neighbours to reconstruct from, so there every batch row is reconstructed from its own
    embedding, unmasked.
Anchors: the distinct users and items of the batch, at most `anchors` of each (a random subset beyond that; the
B x B logits dominate the cost). Total loss: main + weight * alignment. Rows without a profile take no part. shuffled_seed permutes the profiles
across users and across items: the control that tells a lift from the profiles from a lift from the extra loss.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from fbrec._checks import check_fraction, check_positive
from fbrec.data.profiles import MANIFEST, ProfileSet
from fbrec.errors import ConfigError, UnknownNameError
from fbrec.losses import alignment_nce
from fbrec.nn import Projection

ALIGNMENT_MODES = ("con", "gen")


class ProfileAlignment(nn.Module):
    def __init__(self, profiles: str, mode: str = "con", weight: float = 0.01, temperature: float = 0.2,
                 negatives: int = 256, mask_ratio: float = 0.15, anchors: int = 1024,
                 shuffled_seed: int | None = None):
        super().__init__()
        if mode not in ALIGNMENT_MODES:
            raise UnknownNameError("alignment mode", mode, ALIGNMENT_MODES)
        check_positive("alignment.weight", weight, strict=False)
        check_positive("alignment.temperature", temperature)
        check_positive("alignment.negatives", negatives, strict=False)
        check_fraction("alignment.mask_ratio", mask_ratio)
        check_positive("alignment.anchors", anchors)
        self.profiles, self.mode, self.weight, self.temperature = str(profiles), mode, weight, temperature
        self.negatives, self.mask_ratio, self.shuffled_seed = int(negatives), mask_ratio, shuffled_seed
        self.anchors = int(anchors)
        self.projection: Projection | None = None
        self.mask_token: nn.Parameter | None = None
        self.manifest: dict = {}

    @classmethod
    def from_config(cls, config: dict | None) -> ProfileAlignment | None:
        if not config:
            return None
        if "profiles" not in config:
            raise ConfigError("alignment without 'profiles'", rule="alignment reads a profile folder",
                              fix="set alignment: {profiles: DIR, mode: con} (DIR from `fbrec llm profiles`)")
        try:
            return cls(**config)
        except TypeError as exc:
            raise ConfigError(f"alignment options {sorted(config)}: {exc}", rule="options: profiles, mode, weight, "
                              "temperature, negatives, mask_ratio, anchors, shuffled_seed",
                              fix="fix the alignment block") from None

    def attach(self, data, cf_dim: int) -> None:
        """Read the profile folder onto the run's indices (refusing one built from another split) and build the
        projection; called once in the model's setup, before the optimizers exist."""
        if self.projection is not None:
            return
        profiles = ProfileSet.load(self.profiles)
        profiles.check_split(data.train)
        if self.shuffled_seed is not None:
            profiles = profiles.shuffled(self.shuffled_seed)
        self.manifest = profiles.manifest
        m = profiles.manifest
        # where the profiles came from, for the run's tags (fbrec.api.training logs them)
        self.provenance = {"profiles.backend": str(m.get("backend")), "profiles.model": str(m.get("model")),
                           "profiles.is_language_model": str(bool(m.get("is_language_model"))).lower(),
                           "profiles.generated_by": ",".join(m.get("generated_by", [])),
                           "profiles.manifest_sha256": hashlib.sha256(
                               (Path(self.profiles) / MANIFEST).read_bytes()).hexdigest(),
                           "profiles.shuffled_seed": str(self.shuffled_seed)}
        users, user_mask, items, item_mask = profiles.aligned(data.user_map, data.item_map)
        for name, value in (("user_profiles", users), ("item_profiles", items), ("user_has", user_mask),
                            ("item_has", item_mask)):
            self.register_buffer(name, torch.as_tensor(value), persistent=False)
        self.projection = (Projection(profiles.dim, cf_dim) if self.mode == "con"
                           else Projection(cf_dim, profiles.dim))
        if self.mode == "gen":
            self.mask_token = nn.Parameter(torch.zeros(cf_dim))
            nn.init.normal_(self.mask_token, std=0.1)

    # --- losses ----------------------------------------------------------------------------------------------
    def loss(self, users: torch.Tensor, user_vectors: torch.Tensor, items: torch.Tensor,
             item_vectors: torch.Tensor) -> torch.Tensor:
        """users (Bu,) with their CF vectors (Bu, D), items (Bi,) with theirs (Bi, D); repeated ids count once."""
        return (self._side(users, user_vectors, self.user_profiles, self.user_has)
                + self._side(items, item_vectors, self.item_profiles, self.item_has))

    def _side(self, ids: torch.Tensor, vectors: torch.Tensor, profiles: torch.Tensor, has: torch.Tensor
              ) -> torch.Tensor:
        ids, rows = _first_rows(ids)
        keep = has[ids]
        ids, rows = ids[keep], rows[keep]
        if len(ids) > self.anchors:
            pick = torch.randperm(len(ids), device=ids.device)[: self.anchors]
            ids, rows = ids[pick], rows[pick]
        vectors = vectors[rows]
        if len(ids) < 2:
            return vectors.sum() * 0.0
        if self.mode == "gen":   # reconstruct the text embedding; in-set negatives
            return alignment_nce(self.projection(vectors), profiles[ids], self.temperature)
        negatives = None
        if self.negatives:
            pool = torch.nonzero(has).squeeze(1)
            negatives = self.projection(profiles[pool[torch.randint(0, len(pool), (self.negatives,),
                                                                   device=pool.device)]])
        return alignment_nce(vectors, self.projection(profiles[ids]), self.temperature, negatives)

    def mask_inputs(self, layer0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """gen in propagating models: replace a random mask_ratio share of the (N, D) input rows by the mask token;
        returns the masked input and the masked row indices."""
        masked = torch.nonzero(torch.rand(len(layer0), device=layer0.device) < self.mask_ratio).squeeze(1)
        out = layer0.clone()
        out[masked] = self.mask_token.to(layer0.dtype)
        return out, masked


def _first_rows(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct ids and, for each, the first row where it occurs."""
    unique, inverse = torch.unique(ids, return_inverse=True)
    first = torch.full((len(unique),), len(ids), dtype=torch.long, device=ids.device)
    first.scatter_reduce_(0, inverse, torch.arange(len(ids), device=ids.device), reduce="amin")
    return unique, first
