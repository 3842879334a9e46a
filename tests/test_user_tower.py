"""A new user with side features: the feature two-tower's user tower exported to ONNX reproduces the trained TorchRec
path within 1e-5 on real MovieLens-100K users, raw feature values are encoded as in training, and the service
answers such a user with personalised results from the tower, not the popularity fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.realdata

USER_FEATURES = [{"column": "age", "kind": "bucket", "buckets": 6}, {"column": "gender"}, {"column": "occupation"},
                 {"column": "zip_region"}]
ITEM_FEATURES = [{"column": "genres", "kind": "multi"}, {"column": "year", "kind": "bucket", "buckets": 10,
                                                          "missing": "unknown"}]


@pytest.fixture(scope="module")
def trained(shared_data, tmp_path_factory):
    import lightning as L

    from fbrec.data.datamodule import FeedbackDataModule
    from fbrec.embeddings import register_strategies
    from fbrec.models import TwoTowerModule

    register_strategies()
    torch.manual_seed(0)
    dm = FeedbackDataModule(dataset="movielens-100k", data_dir=str(shared_data), min_rating=4.0, split="random",
                            batch_size=512, user_features=USER_FEATURES, item_features=ITEM_FEATURES, seed=0)
    model = TwoTowerModule(dm.num_users, dm.num_items, embedding_dim=16, hidden_dims=[32], output_dim=16, ks=(10,))
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, strategy="torchrec", logger=False,
                        enable_progress_bar=False, enable_checkpointing=False, use_distributed_sampler=False,
                        limit_val_batches=0, default_root_dir=tmp_path_factory.mktemp("tt"))
    trainer.fit(model, dm)
    return dm, model


def test_the_onnx_user_tower_matches_the_trained_torchrec_path_on_real_users(trained, tmp_path):
    import onnxruntime as ort

    from fbrec.models.export import write_user_tower

    dm, model = trained
    write_user_tower(model.user_feature_tower(), model.user_encoders, tmp_path)
    users = torch.arange(dm.num_users)
    reference = model.user_embeddings_without_id(users).numpy()
    session = ort.InferenceSession(str(tmp_path / "user_tower.onnx"), providers=["CPUExecutionProvider"])
    fs = dm.user_features()
    feeds = {}
    for f in range(1, len(fs.names)):
        bags = [fs.values[f][fs.offsets[f][u]:fs.offsets[f][u + 1]].tolist() for u in range(dm.num_users)]
        width = max(len(b) for b in bags)
        pad = fs.vocab_sizes[f]
        feeds[f"ids_{fs.names[f]}"] = np.array([b + [pad] * (width - len(b)) for b in bags], dtype=np.int64)
    onnx_out = session.run(["user"], feeds)[0]
    assert onnx_out.shape == reference.shape == (dm.num_users, 16)
    np.testing.assert_allclose(onnx_out, reference, atol=1e-5)
    # the side features alone still say something: not the same vector for everyone
    assert np.std(reference, axis=0).mean() > 1e-3


def test_raw_feature_values_reach_the_same_vector_through_the_service_encoder(trained, tmp_path):
    from fbrec.models.export import write_user_tower
    from fbrec.serving.tower import QueryTower

    dm, model = trained
    write_user_tower(model.user_feature_tower(), model.user_encoders, tmp_path)
    tower = QueryTower(tmp_path / "user_tower.onnx", tmp_path / "user_features.json")
    users = dm.data.users.sort("user_index").head(50)
    reference = model.user_embeddings_without_id(torch.as_tensor(users["user_index"].to_numpy())).numpy()
    for row, expected in zip(users.iter_rows(named=True), reference, strict=True):
        raw = {c["column"]: row[c["column"]] for c in USER_FEATURES}
        np.testing.assert_allclose(tower.embed(raw), expected, atol=1e-5)


@pytest.mark.slow
def test_a_new_user_with_features_gets_the_tower_through_export_and_serve(shared_data, tmp_path, mlflow_store, capsys):
    import json

    from test_cli import _run
    from test_serving import Server

    from fbrec.api.training import run_training

    config = tmp_path / "tt.yaml"
    config.write_text(f"""
seed_everything: 0
trainer: {{max_epochs: 1, devices: 1, enable_progress_bar: false}}
model:
  class_path: fbrec.models.TwoTowerModule
  init_args: {{embedding_dim: 16, hidden_dims: [32], output_dim: 16, ks: [10]}}
data:
  source: {{dataset: movielens-100k}}
  preparation: {{min_rating: 4.0, split: random}}
  sampling: {{batch_size: 512}}
  features: {{user: {json.dumps(USER_FEATURES)}, item: {json.dumps(ITEM_FEATURES)}}}
""")
    run_id = run_training(str(config), [])
    code, output = _run(["export", "--run", run_id, "--out", str(tmp_path / "bundle")], capsys)
    assert code == 0, output
    assert (tmp_path / "bundle" / "user_tower.onnx").exists()
    srv = Server(tmp_path / "bundle")
    try:
        writer = {"age": 34, "gender": "F", "occupation": "writer", "zip_region": "9"}
        r = srv.post("/recommend", {"user": "someone-new", "k": 10, "features": writer})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["query"] == "user_tower" and body["fallback"] is None and len(body["items"]) == 10
        popular = srv.post("/recommend", {"user": "someone-new", "k": 10}).json()
        assert popular["fallback"] == "popularity"
        assert [i["item"] for i in body["items"]] != [i["item"] for i in popular["items"]]
        student = srv.post("/recommend", {"user": "someone-new", "k": 10,
                                          "features": {"age": 19, "gender": "M", "occupation": "student"}}).json()
        assert [i["item"] for i in student["items"]] != [i["item"] for i in body["items"]], "features matter"
        bad = srv.post("/recommend", {"user": "x", "features": {"shoe_size": 44}})
        assert bad.status_code == 422 and "unknown user features ['shoe_size']" in bad.json()["error"]
        known = srv.post("/recommend", {"user": 1, "k": 5, "features": writer}).json()
        assert known["query"] == "user_embedding", "a known user keeps their trained embedding"
    finally:
        srv.stop()
