"""Model parts a retrieval service runs without torch: the two-tower's user tower as ONNX, with the encoders that
turn a new user's raw side features into the tower's ids (fbrec.data.features.encode_row)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from fbrec.bundle import USER_FEATURES, USER_TOWER


def write_user_tower(tower: torch.nn.Module, encoders: list[dict], out_dir: str | Path) -> list[Path]:
    """`user_tower.onnx` (inputs ids_<feature> (B, L) int64 padded with the vocabulary size, output `user`
    (B, D)) and `user_features.json` (feature order, encoders, padding ids) in out_dir."""
    out_dir = Path(out_dir)
    features = [e for e in encoders if e["kind"] != "id"]
    names = [f"ids_{e['name']}" for e in features]
    example = tuple(torch.zeros(2, 1, dtype=torch.long) for _ in features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the TorchScript exporter announces its deprecation on every call
        torch.onnx.export(tower.eval(), example, str(out_dir / USER_TOWER), input_names=names, output_names=["user"],
                          dynamic_axes={**{n: {0: "batch", 1: f"len_{n}"} for n in names}, "user": {0: "batch"}},
                          dynamo=False, opset_version=17)
    meta = {"inputs": names, "features": features,
            "padding_ids": [len(e["vocabulary"]) for e in features], "output_dim": int(tower.tower[-1].out_features)}
    (out_dir / USER_FEATURES).write_text(json.dumps(meta, indent=2))
    return [out_dir / USER_TOWER, out_dir / USER_FEATURES]
