"""The README's Python blocks run as written (the user's clicks.parquet supplied, as the README says)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fbrec.data.synthetic import SyntheticConfig, generate

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 2 and all("import fbrec" in b for b in BLOCKS)


@pytest.mark.realdata
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs_as_written(index, shared_data, mlflow_store, capsys):
    # the user's own log for the "your own click log" block: user, item, timestamp columns
    log = generate(SyntheticConfig(num_users=300, num_items=200, seed=0)).log.select("user", "item", "timestamp")
    log.write_parquet("clicks.parquet")
    exec(compile(BLOCKS[index], f"README.md python block {index + 1}", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.strip(), "every block prints what it shows"
    if "Bundle(" in BLOCKS[index]:
        assert Path("bundle/manifest.json").is_file()
