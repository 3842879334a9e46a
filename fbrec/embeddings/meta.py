"""The non-tensor part of a Lightning checkpoint (epoch, loop progress, callback and hyper-parameter state) as JSON.

Lightning's own format pickles this dict; reading a pickle runs code, so fbrec writes JSON instead. Tensors (a
monitored score, an RNG state) are tagged `{"__tensor__": [...], "dtype": ...}` and come back as tensors; anything
else JSON cannot hold (paths, enums, dataclasses) is written as its plain value or string.
"""

from __future__ import annotations

import enum
import json
import os
from dataclasses import asdict, is_dataclass
from pathlib import Path

import torch

META_FILE = "lightning_meta.json"


def _encode(value):
    if isinstance(value, torch.Tensor):
        return {"__tensor__": value.detach().cpu().tolist(), "dtype": str(value.dtype).removeprefix("torch.")}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, enum.Enum):
        return _encode(value.value)
    if is_dataclass(value) and not isinstance(value, type):
        return _encode(asdict(value))
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and callable(value.item):   # numpy scalars
        return value.item()
    return str(value)


def _decode(value):
    if isinstance(value, dict):
        if set(value) == {"__tensor__", "dtype"}:
            return torch.tensor(value["__tensor__"], dtype=getattr(torch, value["dtype"]))
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def write_meta(path: Path, checkpoint: dict) -> None:
    path = Path(path)
    text = json.dumps(_encode(checkpoint), allow_nan=True)
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def read_meta(path: Path) -> dict:
    return _decode(json.loads(Path(path).read_text()))
