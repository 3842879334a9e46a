"""A new user's query vector from side features: the bundle's ONNX user tower run by onnxruntime (no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fbrec.data.features import encode_row
from fbrec.serving.errors import RequestError


class QueryTower:
    """Encodes raw feature values exactly as training did (fbrec.data.features.encode_row), then runs the tower."""

    def __init__(self, onnx_path: Path, features_path: Path):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            from fbrec.errors import MissingExtraError

            raise MissingExtraError("onnxruntime", "serve", "a bundle's user tower") from exc

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1   # requests run concurrently; one thread each
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        meta = json.loads(Path(features_path).read_text())
        self.inputs, self.features, self.padding = meta["inputs"], meta["features"], meta["padding_ids"]
        self.names = [f["name"] for f in self.features]

    def embed(self, values: dict) -> np.ndarray:
        """{feature name: raw value} -> (D,) unit vector; absent features count as missing."""
        unknown = sorted(set(values) - set(self.names))
        if unknown:
            raise RequestError(422, f"unknown user features {unknown}", rule=f"this bundle's user tower reads "
                               f"{self.names}", fix="send those feature names")
        feeds = {}
        for name, encoder, pad in zip(self.inputs, self.features, self.padding, strict=True):
            try:
                ids = encode_row(encoder, values.get(encoder["name"]))
            except Exception as exc:   # noqa: BLE001 - any value polars cannot read is the client's to fix
                raise RequestError(422, f"user feature {encoder['name']!r}: cannot read {values.get(encoder['name'])!r}"
                                   f" ({type(exc).__name__})", rule=f"a {encoder['kind']} feature value",
                                   fix="send a number, a string or (multi) a list of strings") from None
            feeds[name] = np.asarray([ids or [pad]], dtype=np.int64)
        return self.session.run(["user"], feeds)[0][0]
