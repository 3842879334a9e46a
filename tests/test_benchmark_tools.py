"""The benchmark helpers that edit committed files: tune writes the chosen setting into a recipe, comments kept."""

from __future__ import annotations

import pytest

from benchmarks.tune import Search, write_setting

RECIPE = """model:
  init_args:
    embedding_dim: 64      # width
    learning_rate: 0.05
    loss_options: {kind: log}
checkpoint:
  monitor: val/ndcg_at_5
"""


def test_write_setting_replaces_values_and_keeps_comments(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(RECIPE)
    write_setting(path, {"model.init_args.embedding_dim": "200", "model.init_args.loss_options": "{kind: square}"})
    text = path.read_text()
    assert "    embedding_dim: 200      # width\n" in text and "loss_options: {kind: square}\n" in text
    assert "learning_rate: 0.05" in text


def test_write_setting_refuses_a_key_the_recipe_lacks(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(RECIPE)
    with pytest.raises(SystemExit, match="'init_std' must appear exactly once"):
        write_setting(path, {"model.init_args.init_std": "0.1"})
    assert path.read_text() == RECIPE


def test_search_chooses_the_best_validation_value_and_marks_it():
    s = Search("r", "val/x", [({"a": "1"}, 0.2), ({"a": "2"}, 0.5), ({"a": "3"}, 0.4)])
    assert s.best == {"a": "2"} and s.overrides() == ["--a=2"]
    assert "0.5000 **chosen**" in s.markdown(0) and s.markdown(0).count("chosen") == 1


def test_a_degenerate_setting_is_never_selected_and_is_labelled_so():
    from benchmarks.tune import DEGENERATE, selectable_value

    assert selectable_value({}, [0.1, 0.3]) == 0.3
    assert selectable_value({"fbrec.degenerate": "false"}, [0.2]) == 0.2
    collapsed = selectable_value({"fbrec.degenerate": "true"}, [0.9])     # it won validation by the tie-break
    assert collapsed == DEGENERATE
    search = Search("relmf_als_coat", "val/x", [({"reg": "1"}, 0.02), ({"reg": "5000"}, collapsed)])
    assert search.best == {"reg": "1"}
    assert "degenerate (flat scores)" in search.markdown(0) and "0.0200 **chosen**" in search.markdown(0)
